//! Input items as `GET /v1/responses/{id}/input_items` lists them: this request's `input`,
//! each item in its full form (`type` named, message text as content parts) and with an id.
//!
//! The items are kept as the client sent them otherwise, so what the list shows is what was
//! asked, not freeway's reading of it. The turns of `previous_response_id` are not repeated:
//! they are the earlier response's input items.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// `input` (a string or an array of items) as the stored list of items.
pub fn normalize(input: Option<&Value>) -> Vec<Value> {
    match input {
        Some(Value::String(text)) => vec![message_item(Map::from_iter([
            ("role".to_owned(), Value::from("user")),
            ("content".to_owned(), Value::from(text.as_str())),
        ]))],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::Object(item) => Some(item_of(item.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn item_of(mut item: Map<String, Value>) -> Value {
    match item.get("type").and_then(Value::as_str) {
        None | Some("message") => message_item(item),
        Some(kind) => {
            if !item.contains_key("id") {
                let prefix = match kind {
                    "function_call" => "fc_",
                    "function_call_output" => "fco_",
                    "custom_tool_call" => "ctc_",
                    "custom_tool_call_output" => "ctco_",
                    "reasoning" => "rs_",
                    _ => "item_",
                };
                item.insert("id".into(), freeway_types::random_id(prefix).into());
            }
            Value::Object(item)
        }
    }
}

/// A message item with its `type`, an id, and string content as one text part.
fn message_item(mut item: Map<String, Value>) -> Value {
    item.insert("type".into(), "message".into());
    if !item.contains_key("id") {
        item.insert("id".into(), freeway_types::random_id("msg_").into());
    }
    if let Some(Value::String(text)) = item.get("content") {
        let part = match item.get("role").and_then(Value::as_str) {
            Some("assistant") => "output_text",
            _ => "input_text",
        };
        let content = json!([{ "type": part, "text": text }]);
        item.insert("content".into(), content);
    }
    item.entry("status").or_insert_with(|| "completed".into());
    Value::Object(item)
}

/// One page of a list: `limit`, `order`, `after` and `before` as in OpenAI's list endpoints.
#[derive(Debug, PartialEq)]
pub struct Page {
    limit: usize,
    descending: bool,
    after: Option<String>,
    before: Option<String>,
}

impl Page {
    pub fn from_query(query: &HashMap<String, String>) -> Result<Page, ApiError> {
        let limit = match query.get("limit") {
            None => 20,
            Some(l) => match l.parse::<usize>() {
                Ok(n @ 1..=100) => n,
                _ => {
                    return Err(ApiError::invalid(
                        "limit",
                        format!("must be an integer from 1 to 100, not `{l}`"),
                    ));
                }
            },
        };
        let descending = match query.get("order").map(String::as_str) {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(other) => {
                return Err(ApiError::invalid(
                    "order",
                    format!("must be `asc` or `desc`, not `{other}`"),
                ));
            }
        };
        Ok(Page {
            limit,
            descending,
            after: query.get("after").cloned(),
            before: query.get("before").cloned(),
        })
    }

    /// The list object of this page of `items` (stored in input order).
    pub fn list(&self, mut items: Vec<Value>) -> Result<Value, ApiError> {
        if self.descending {
            items.reverse();
        }
        let position = |field: &str, id: &str| {
            items
                .iter()
                .position(|item| item.get("id").and_then(Value::as_str) == Some(id))
                .ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        format!("no input item of this response has id `{id}`"),
                    )
                })
        };
        let start = match &self.after {
            Some(id) => position("after", id)? + 1,
            None => 0,
        };
        let end = match &self.before {
            Some(id) => position("before", id)?,
            None => items.len(),
        };
        let window = items.get(start..end.max(start)).unwrap_or_default();
        let has_more = window.len() > self.limit;
        let data = &window[..window.len().min(self.limit)];
        let id_of = |item: Option<&Value>| item.and_then(|i| i.get("id")).cloned();
        Ok(json!({
            "object": "list",
            "data": data,
            "first_id": id_of(data.first()),
            "last_id": id_of(data.last()),
            "has_more": has_more,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ids(list: &Value) -> Vec<&str> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_string_input_is_one_user_message_with_an_id() {
        let items = normalize(Some(&json!("hello")));
        assert_eq!(items.len(), 1);
        let item = &items[0];
        assert_eq!(item["type"], "message");
        assert_eq!(item["role"], "user");
        assert_eq!(item["status"], "completed");
        assert_eq!(
            item["content"],
            json!([{ "type": "input_text", "text": "hello" }])
        );
        assert!(item["id"].as_str().unwrap().starts_with("msg_"));
    }

    #[test]
    fn items_keep_their_fields_and_ids_and_gain_what_is_missing() {
        let items = normalize(Some(&json!([
            { "role": "assistant", "content": "Checking." },
            { "type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}" },
            { "type": "function_call_output", "id": "mine", "call_id": "c1", "output": "sunny" },
            { "type": "message", "role": "user", "content": [{ "type": "input_text", "text": "ok" }] },
        ])));
        assert_eq!(items[0]["content"][0]["type"], "output_text");
        assert!(items[1]["id"].as_str().unwrap().starts_with("fc_"));
        assert_eq!(items[1]["call_id"], "c1");
        assert_eq!(items[2]["id"], "mine");
        assert_eq!(items[3]["content"][0]["text"], "ok");
        assert_eq!(items[3]["type"], "message");
    }

    fn five() -> Vec<Value> {
        (1..=5).map(|i| json!({ "id": format!("i{i}") })).collect()
    }

    #[test]
    fn pages_are_newest_first_by_default_and_walk_with_after() {
        let page = Page::from_query(&query(&[("limit", "2")])).unwrap();
        let list = page.list(five()).unwrap();
        assert_eq!(ids(&list), ["i5", "i4"]);
        assert_eq!(list["first_id"], "i5");
        assert_eq!(list["last_id"], "i4");
        assert_eq!(list["has_more"], true);

        let page = Page::from_query(&query(&[("limit", "2"), ("after", "i2")])).unwrap();
        let list = page.list(five()).unwrap();
        assert_eq!(ids(&list), ["i1"]);
        assert_eq!(list["has_more"], false);
    }

    #[test]
    fn ascending_pages_and_before_bound_the_window() {
        let page = Page::from_query(&query(&[("order", "asc"), ("before", "i4")])).unwrap();
        let list = page.list(five()).unwrap();
        assert_eq!(ids(&list), ["i1", "i2", "i3"]);
        let page = Page::from_query(&query(&[
            ("order", "asc"),
            ("after", "i3"),
            ("before", "i2"),
        ]))
        .unwrap();
        let list = page.list(five()).unwrap();
        assert!(ids(&list).is_empty());
        assert_eq!(list["first_id"], Value::Null);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (q, param) in [
            (query(&[("limit", "0")]), "limit"),
            (query(&[("limit", "101")]), "limit"),
            (query(&[("limit", "ten")]), "limit"),
            (query(&[("order", "up")]), "order"),
        ] {
            let err = Page::from_query(&q).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{q:?}");
        }
        let page = Page::from_query(&query(&[("after", "nope")])).unwrap();
        assert_eq!(
            page.list(five()).unwrap_err().param.as_deref(),
            Some("after")
        );
    }
}
