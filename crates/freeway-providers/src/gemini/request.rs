//! generateContent request body.

use std::collections::HashMap;

use freeway_types::{
    ChatRequest, ContentPart, EmbeddingInput, EmbeddingRequest, ImageSource, Message,
    ResponseFormat, ToolChoice,
};
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<WireContent<'a>>,
    contents: Vec<WireContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTools>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<Value>,
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct WireContent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<WirePart<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum WirePart<'a> {
    Text(&'a str),
    InlineData {
        #[serde(rename = "mimeType")]
        mime_type: &'a str,
        data: &'a str,
    },
    FileData {
        #[serde(rename = "mimeType")]
        mime_type: &'static str,
        #[serde(rename = "fileUri")]
        file_uri: &'a str,
    },
    FunctionCall {
        name: &'a str,
        args: Value,
    },
    FunctionResponse {
        name: &'a str,
        response: Value,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireTools {
    function_declarations: Vec<Value>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_schema: Option<Value>,
}

pub(super) struct Unsayable(pub(super) String);

/// Gemini's `Schema` is an OpenAPI subset: JSON Schema keywords it does not know make it reject
/// the request, so they are removed (recursively, keeping property names intact).
pub(super) fn clean_schema(schema: &Value) -> Value {
    const DROP: [&str; 6] = [
        "$schema",
        "$id",
        "additionalProperties",
        "strict",
        "$comment",
        "examples",
    ];
    match schema {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map {
                if DROP.contains(&k.as_str()) {
                    continue;
                }
                let v = if k == "properties" {
                    match v {
                        Value::Object(props) => Value::Object(
                            props
                                .iter()
                                .map(|(name, s)| (name.clone(), clean_schema(s)))
                                .collect(),
                        ),
                        other => other.clone(),
                    }
                } else {
                    clean_schema(v)
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

fn parts(content: &[ContentPart]) -> Vec<WirePart<'_>> {
    content
        .iter()
        .filter(|p| !matches!(p, ContentPart::Text { text } if text.is_empty()))
        .map(|p| match p {
            ContentPart::Text { text } => WirePart::Text(text),
            ContentPart::Image { source, .. } => match source {
                ImageSource::Base64 { media_type, data } => WirePart::InlineData {
                    mime_type: media_type,
                    data,
                },
                ImageSource::Url { url } => WirePart::FileData {
                    mime_type: mime_from_url(url),
                    file_uri: url,
                },
            },
        })
        .collect()
}

fn mime_from_url(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else {
        "image/jpeg"
    }
}

/// A tool result as the object `functionResponse.response` must be: a JSON object result is
/// passed as is, anything else is wrapped.
fn tool_response(text: &str, is_error: bool) -> Value {
    if !is_error && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
        return Value::Object(map);
    }
    let key = if is_error { "error" } else { "result" };
    serde_json::json!({ key: text })
}

fn push<'a>(contents: &mut Vec<WireContent<'a>>, role: &'static str, new: Vec<WirePart<'a>>) {
    if new.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(last) if last.role == Some(role) => last.parts.extend(new),
        _ => contents.push(WireContent {
            role: Some(role),
            parts: new,
        }),
    }
}

pub(super) fn chat_body(request: &ChatRequest) -> Result<Vec<u8>, Unsayable> {
    // Gemini answers a function call by name, not id: remember which name each id called.
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut system: Vec<WirePart<'_>> = Vec::new();
    let mut contents: Vec<WireContent<'_>> = Vec::with_capacity(request.messages.len());
    for m in &request.messages {
        match m {
            Message::System { content } => system.push(WirePart::Text(content)),
            Message::User { content } => push(&mut contents, "user", parts(content)),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut p = parts(content);
                for call in tool_calls {
                    names.insert(&call.id, &call.name);
                    let args = if call.arguments.trim().is_empty() {
                        Value::Object(Map::new())
                    } else {
                        serde_json::from_str(&call.arguments).map_err(|e| {
                            Unsayable(format!("tool call arguments are not valid JSON: {e}"))
                        })?
                    };
                    p.push(WirePart::FunctionCall {
                        name: &call.name,
                        args,
                    });
                }
                push(&mut contents, "model", p);
            }
            Message::Tool {
                tool_call_id,
                content,
                is_error,
            } => {
                let name = names.get(tool_call_id.as_str()).copied().ok_or_else(|| {
                    Unsayable(format!(
                        "tool result `{tool_call_id}` answers no earlier tool call; Gemini needs \
                         the function name"
                    ))
                })?;
                let text = freeway_types::join_text(content);
                push(
                    &mut contents,
                    "user",
                    vec![WirePart::FunctionResponse {
                        name,
                        response: tool_response(&text, *is_error),
                    }],
                );
            }
        }
    }

    let tools = if request.tools.is_empty() {
        Vec::new()
    } else {
        vec![WireTools {
            function_declarations: request
                .tools
                .iter()
                .map(|t| {
                    let mut decl = serde_json::json!({ "name": t.name });
                    if let Some(d) = &t.description {
                        decl["description"] = Value::from(d.as_str());
                    }
                    let empty = t.parameters.as_object().is_some_and(|o| {
                        o.get("properties")
                            .and_then(Value::as_object)
                            .is_none_or(|p| p.is_empty())
                    });
                    // A function without parameters must omit them: Gemini rejects an empty object schema.
                    if !empty {
                        decl["parameters"] = clean_schema(&t.parameters);
                    }
                    decl
                })
                .collect(),
        }]
    };
    let tool_config = request.tool_choice.as_ref().map(|c| {
        let config = match c {
            ToolChoice::Auto => serde_json::json!({ "mode": "AUTO" }),
            ToolChoice::None => serde_json::json!({ "mode": "NONE" }),
            ToolChoice::Required => serde_json::json!({ "mode": "ANY" }),
            ToolChoice::Tool { name } => {
                serde_json::json!({ "mode": "ANY", "allowedFunctionNames": [name] })
            }
        };
        serde_json::json!({ "functionCallingConfig": config })
    });
    let (response_mime_type, response_schema) = match &request.response_format {
        None | Some(ResponseFormat::Text) => (None, None),
        Some(ResponseFormat::JsonObject) => (Some("application/json"), None),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            (Some("application/json"), Some(clean_schema(schema)))
        }
    };

    let wire = WireRequest {
        system_instruction: (!system.is_empty()).then_some(WireContent {
            role: None,
            parts: system,
        }),
        contents,
        tools,
        tool_config,
        generation_config: GenerationConfig {
            temperature: request.temperature,
            top_p: request.top_p,
            top_k: request.top_k,
            max_output_tokens: request.max_tokens,
            stop_sequences: &request.stop,
            seed: request.seed,
            presence_penalty: request.presence_penalty,
            frequency_penalty: request.frequency_penalty,
            response_mime_type,
            response_schema,
        },
    };
    serde_json::to_vec(&wire)
        .map_err(|e| Unsayable(format!("the request could not be encoded: {e}")))
}

pub(super) fn embedding_body(request: &EmbeddingRequest) -> Result<Vec<u8>, Unsayable> {
    let EmbeddingInput::Text(texts) = &request.input else {
        return Err(Unsayable(
            "token-array embedding input; Gemini accepts text only".into(),
        ));
    };
    let model = format!("models/{}", request.model);
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut r = serde_json::json!({
                "model": model,
                "content": { "parts": [{ "text": t }] },
            });
            if let Some(d) = request.dimensions {
                r["outputDimensionality"] = Value::from(d);
            }
            r
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "requests": requests }))
        .map_err(|e| Unsayable(format!("the request could not be encoded: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_schema_keywords_gemini_rejects_are_removed_but_property_names_kept() {
        let schema = serde_json::json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "strict": { "type": "string", "additionalProperties": false },
                "items": { "type": "array", "items": { "type": "object", "additionalProperties": true } }
            }
        });
        assert_eq!(
            clean_schema(&schema),
            serde_json::json!({
                "type": "object",
                "properties": {
                    "strict": { "type": "string" },
                    "items": { "type": "array", "items": { "type": "object" } }
                }
            })
        );
    }
}
