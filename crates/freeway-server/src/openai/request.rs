//! OpenAI Chat Completions requests into [`ChatRequest`]s, with errors that name the field.

use freeway_types::{
    ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, ToolCall, ToolChoice,
    ToolDefinition,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

#[derive(Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    tools: Option<Vec<WireTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    frequency_penalty: Option<f32>,
    #[serde(default)]
    presence_penalty: Option<f32>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: String,
    function: WireFunctionCall,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct WireTool {
    #[serde(rename = "type", default = "function_type")]
    kind: String,
    function: WireFunction,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

impl ChatCompletionRequest {
    /// Whether the client asked for a usage chunk at the end of the stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    pub fn into_chat(self) -> Result<ChatRequest, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::invalid("n", "only n = 1 is supported"));
        }
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                "messages",
                "must contain at least one message",
            ));
        }
        let messages = self
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        let tools = self
            .tools
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                if t.kind != "function" {
                    return Err(ApiError::invalid(
                        format!("tools[{i}].type"),
                        format!("`{}` tools are not supported; use `function`", t.kind),
                    ));
                }
                Ok(function_tool(
                    t.function.name,
                    t.function.description,
                    t.function.parameters,
                    t.function.strict,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChatRequest {
            model: self.model,
            messages,
            tool_choice: self.tool_choice.map(tool_choice).transpose()?,
            tools,
            parallel_tool_calls: self.parallel_tool_calls,
            response_format: self.response_format.map(response_format).transpose()?,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            stop: self.stop.map(stop).transpose()?.unwrap_or_default(),
            seed: self.seed,
            user: self.user,
        })
    }
}

fn message(i: usize, m: WireMessage) -> Result<Message, ApiError> {
    let at = |field: &str| format!("messages[{i}].{field}");
    match m.role.as_str() {
        "system" | "developer" => Ok(Message::System {
            content: freeway_types::join_text(&content(&at("content"), m.content, false)?),
        }),
        "user" => Ok(Message::User {
            content: content(&at("content"), m.content, true)?,
        }),
        "assistant" => {
            let tool_calls = m
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.function.name,
                    arguments: c.function.arguments,
                })
                .collect::<Vec<_>>();
            let content = match m.content {
                None | Some(Value::Null) => Vec::new(),
                other => content(&at("content"), other, false)?,
            };
            Ok(Message::Assistant {
                content,
                tool_calls,
            })
        }
        "tool" => Ok(Message::Tool {
            tool_call_id: m.tool_call_id.ok_or_else(|| {
                ApiError::invalid(at("tool_call_id"), "is required for tool messages")
            })?,
            content: content(&at("content"), m.content, false)?,
            is_error: false,
        }),
        other => Err(ApiError::invalid(
            at("role"),
            format!("unknown role `{other}`; expected system, developer, user, assistant or tool"),
        )),
    }
}

/// Content as a string or an array of parts.
fn content(at: &str, value: Option<Value>, images: bool) -> Result<Vec<ContentPart>, ApiError> {
    match value {
        None | Some(Value::Null) => Err(ApiError::invalid(at, "is required")),
        Some(Value::String(text)) => Ok(vec![ContentPart::Text { text }]),
        Some(Value::Array(parts)) => parts
            .into_iter()
            .enumerate()
            .map(|(j, part)| content_part(&format!("{at}[{j}]"), part, images))
            .collect(),
        Some(_) => Err(ApiError::invalid(
            at,
            "must be a string or an array of content parts",
        )),
    }
}

fn content_part(at: &str, part: Value, images: bool) -> Result<ContentPart, ApiError> {
    let Value::Object(mut part) = part else {
        return Err(ApiError::invalid(at, "must be an object with a `type`"));
    };
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match kind.as_str() {
        "text" => match part.remove("text") {
            Some(Value::String(text)) => Ok(ContentPart::Text { text }),
            _ => Err(ApiError::invalid(format!("{at}.text"), "must be a string")),
        },
        "image_url" if images => {
            let (url, detail) = match part.remove("image_url") {
                Some(Value::String(url)) => (url, None),
                Some(Value::Object(mut o)) => match o.remove("url") {
                    Some(Value::String(url)) => (
                        url,
                        o.remove("detail")
                            .and_then(|d| d.as_str().map(str::to_owned)),
                    ),
                    _ => {
                        return Err(ApiError::invalid(
                            format!("{at}.image_url.url"),
                            "must be a string",
                        ));
                    }
                },
                _ => {
                    return Err(ApiError::invalid(
                        format!("{at}.image_url"),
                        "must be an object with a `url`",
                    ));
                }
            };
            Ok(image(&url, detail))
        }
        "image_url" => Err(ApiError::invalid(
            format!("{at}.type"),
            "images are only allowed in user messages",
        )),
        "" => Err(ApiError::invalid(format!("{at}.type"), "is required")),
        other => Err(ApiError::invalid(
            format!("{at}.type"),
            format!("content parts of type `{other}` are not supported; use `text` or `image_url`"),
        )),
    }
}

fn tool_choice(value: Value) -> Result<ToolChoice, ApiError> {
    match &value {
        Value::String(s) => tool_choice_mode(s).ok_or_else(|| {
            ApiError::invalid(
                "tool_choice",
                format!("unknown value `{s}`; expected auto, none, required or a function"),
            )
        }),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| ToolChoice::Tool {
                name: name.to_owned(),
            })
            .ok_or_else(|| {
                ApiError::invalid(
                    "tool_choice",
                    "must be {\"type\": \"function\", \"function\": {\"name\": …}}",
                )
            }),
        _ => Err(ApiError::invalid(
            "tool_choice",
            "must be a string or an object",
        )),
    }
}

fn response_format(value: Value) -> Result<ResponseFormat, ApiError> {
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let spec = value.get("json_schema").ok_or_else(|| {
                ApiError::invalid(
                    "response_format.json_schema",
                    "is required for type json_schema",
                )
            })?;
            json_schema("response_format.json_schema", spec)
        }
        other => Err(ApiError::invalid(
            "response_format.type",
            format!("unknown value `{other}`; expected text, json_object or json_schema"),
        )),
    }
}

/// A JSON schema format from the object holding `name`, `schema` and `strict` (Chat
/// Completions nests it under `json_schema`, the Responses API's `text.format` is flat).
pub(crate) fn json_schema(at: &str, spec: &Value) -> Result<ResponseFormat, ApiError> {
    let schema = spec
        .get("schema")
        .cloned()
        .ok_or_else(|| ApiError::invalid(format!("{at}.schema"), "is required"))?;
    Ok(ResponseFormat::JsonSchema {
        name: spec
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("response")
            .to_owned(),
        schema,
        strict: spec.get("strict").and_then(Value::as_bool),
    })
}

/// `auto`, `none` or `required`, as both OpenAI formats spell them.
pub(crate) fn tool_choice_mode(mode: &str) -> Option<ToolChoice> {
    match mode {
        "auto" => Some(ToolChoice::Auto),
        "none" => Some(ToolChoice::None),
        "required" => Some(ToolChoice::Required),
        _ => None,
    }
}

/// A function tool; one without `parameters` takes an empty object.
pub(crate) fn function_tool(
    name: String,
    description: Option<String>,
    parameters: Option<Value>,
    strict: Option<bool>,
) -> ToolDefinition {
    ToolDefinition {
        name,
        description,
        parameters: parameters
            .filter(|p| !p.is_null())
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
        strict,
    }
}

/// An image by URL; a `data:` URL becomes inline bytes.
pub(crate) fn image(url: &str, detail: Option<String>) -> ContentPart {
    ContentPart::Image {
        source: ImageSource::from_url(url),
        detail,
    }
}

fn stop(value: Value) -> Result<Vec<String>, ApiError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::invalid(format!("stop[{i}]"), "must be a string")),
            })
            .collect(),
        _ => Err(ApiError::invalid(
            "stop",
            "must be a string or an array of strings",
        )),
    }
}
