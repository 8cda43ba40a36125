//! Response objects in the Responses format, whole or as they stand mid-stream.

use freeway_types::{ChatResponse, ContentPart, FinishReason, Message, ToolCall, Usage};
use serde_json::{Map, Value, json};

/// What every response object of one request shares: its id, when it was made, the model the
/// client asked for, and the request parameters it repeats back.
pub struct Envelope {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    pub echo: Map<String, Value>,
    pub tool_names: ToolNames,
}

/// Tools declared in shapes providers do not have, and how their calls go back to the client:
/// the function tools of `namespace` groups, flattened as `<namespace>__<name>`, and `custom`
/// (freeform) tools, run as functions taking one `input` string.
#[derive(Debug, Default, Clone)]
pub struct ToolNames(std::collections::HashMap<String, Declared>);

#[derive(Debug, Clone)]
enum Declared {
    Namespaced { namespace: String, name: String },
    Custom,
}

impl ToolNames {
    pub fn flat(namespace: &str, name: &str) -> String {
        format!("{namespace}__{name}")
    }

    pub fn insert(&mut self, namespace: &str, name: &str) -> String {
        let flat = Self::flat(namespace, name);
        let declared = Declared::Namespaced {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        self.0.insert(flat.clone(), declared);
        flat
    }

    pub fn custom(&mut self, name: &str) {
        self.0.insert(name.to_owned(), Declared::Custom);
    }

    pub fn is_custom(&self, called: &str) -> bool {
        matches!(self.0.get(called), Some(Declared::Custom))
    }

    /// A new output item id for a call: `ctc_…` for a custom tool, `fc_…` for a function.
    pub fn item_id(&self, called: &str) -> String {
        freeway_types::random_id(if self.is_custom(called) {
            "ctc_"
        } else {
            "fc_"
        })
    }

    /// The namespace (if any) and the name the client declared, for a name the model called.
    pub fn wire<'a>(&'a self, called: &'a str) -> (Option<&'a str>, &'a str) {
        match self.0.get(called) {
            Some(Declared::Namespaced { namespace, name }) => (Some(namespace), name),
            _ => (None, called),
        }
    }
}

/// The free text a custom tool call carries: the `input` of the arguments the model wrote, or
/// the arguments themselves when they are not that JSON object.
pub fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut o)) => match o.remove("input") {
            Some(Value::String(input)) => input,
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

/// How a response ended, in the Responses vocabulary.
pub enum Status {
    InProgress,
    Completed,
    /// Cut short; the reason is `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    Failed {
        code: &'static str,
        message: String,
    },
}

impl Status {
    pub fn of(reason: FinishReason) -> Self {
        match reason {
            FinishReason::Length => Status::Incomplete("max_output_tokens"),
            FinishReason::ContentFilter => Status::Incomplete("content_filter"),
            FinishReason::Stop | FinishReason::StopSequence | FinishReason::ToolCalls => {
                Status::Completed
            }
        }
    }

    /// The status an output item ends with.
    pub fn item_status(&self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) | Status::Failed { .. } => "incomplete",
        }
    }
}

impl Envelope {
    /// The response object. `usage` is absent until the response is done.
    pub fn object(
        &self,
        status: &Status,
        output: Vec<Value>,
        usage: Option<&Usage>,
        completed_at: Option<u64>,
    ) -> Value {
        let mut o = Map::with_capacity(self.echo.len() + 12);
        o.insert("id".into(), self.id.clone().into());
        o.insert("object".into(), "response".into());
        o.insert("created_at".into(), self.created_at.into());
        let (status, error, incomplete) = match status {
            Status::InProgress => ("in_progress", Value::Null, Value::Null),
            Status::Completed => ("completed", Value::Null, Value::Null),
            Status::Incomplete(reason) => ("incomplete", Value::Null, json!({ "reason": reason })),
            Status::Failed { code, message } => (
                "failed",
                json!({ "code": code, "message": message }),
                Value::Null,
            ),
        };
        o.insert("status".into(), status.into());
        o.insert("background".into(), false.into());
        o.insert("completed_at".into(), completed_at.into());
        o.insert("error".into(), error);
        o.insert("incomplete_details".into(), incomplete);
        o.insert("model".into(), self.model.clone().into());
        o.insert("output".into(), Value::Array(output));
        for (k, v) in &self.echo {
            o.insert(k.clone(), v.clone());
        }
        o.insert("usage".into(), usage.map_or(Value::Null, wire_usage));
        Value::Object(o)
    }
}

/// Usage as the Responses API counts it: `input_tokens` includes cached ones.
fn wire_usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": { "reasoning_tokens": 0 },
        "total_tokens": u.total_tokens(),
    })
}

pub fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

pub fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(t) => vec![text_part(t)],
        None => Vec::new(),
    };
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

pub fn call_item(id: &str, status: &str, call: &ToolCall, names: &ToolNames) -> Value {
    if names.is_custom(&call.name) {
        return json!({
            "id": id,
            "type": "custom_tool_call",
            "status": status,
            "call_id": call.id,
            "name": call.name,
            "input": custom_input(&call.arguments),
        });
    }
    let (namespace, name) = names.wire(&call.name);
    let mut item = json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": name,
        "arguments": call.arguments,
    });
    if let (Some(namespace), Value::Object(o)) = (namespace, &mut item) {
        o.insert("namespace".into(), namespace.into());
    }
    item
}

/// The output items of a whole answer: its text as one message, then its function calls.
pub fn output(r: &ChatResponse, status: &Status, names: &ToolNames) -> Vec<Value> {
    let mut out = Vec::with_capacity(1 + r.tool_calls.len());
    let text = r.text();
    if !text.is_empty() {
        let id = freeway_types::random_id("msg_");
        out.push(message_item(&id, status.item_status(), Some(&text)));
    }
    for call in &r.tool_calls {
        let id = names.item_id(&call.name);
        out.push(call_item(&id, status.item_status(), call, names));
    }
    out
}

/// The assistant turn a response adds to the conversation, if it said or called anything.
pub fn assistant_turn(text: String, tool_calls: Vec<ToolCall>) -> Option<Message> {
    if text.is_empty() && tool_calls.is_empty() {
        return None;
    }
    let content = if text.is_empty() {
        Vec::new()
    } else {
        vec![ContentPart::Text { text }]
    };
    Some(Message::Assistant {
        content,
        tool_calls,
    })
}
