//! Anthropic Messages requests into [`ChatRequest`]s.

use freeway_types::{
    ChatRequest, ContentPart, ImageSource, Message, ToolCall, ToolChoice, ToolDefinition,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

#[derive(Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    max_tokens: Option<u32>,
    messages: Vec<WireMessage>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    tools: Option<Vec<WireTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    content: Value,
}

#[derive(Deserialize)]
struct WireTool {
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
}

impl MessagesRequest {
    /// A request to count, not run: `max_tokens` is optional.
    pub fn for_counting(mut self) -> Self {
        self.max_tokens.get_or_insert(1);
        self
    }

    pub fn into_chat(self) -> Result<ChatRequest, ApiError> {
        let max_tokens = self
            .max_tokens
            .ok_or_else(|| ApiError::invalid("max_tokens", "Field required"))?;
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                "messages",
                "must contain at least one message",
            ));
        }
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = self.system {
            let text = system_text(system)?;
            if !text.is_empty() {
                messages.push(Message::System { content: text });
            }
        }
        for (i, m) in self.messages.into_iter().enumerate() {
            turn(i, m, &mut messages)?;
        }
        let tools = self
            .tools
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, t)| match t.kind.as_deref() {
                None | Some("custom") => Ok(ToolDefinition {
                    name: t.name,
                    description: t.description,
                    parameters: t.input_schema.ok_or_else(|| {
                        ApiError::invalid(format!("tools[{i}].input_schema"), "Field required")
                    })?,
                    strict: None,
                }),
                Some(other) => Err(ApiError::invalid(
                    format!("tools[{i}].type"),
                    format!("server tool `{other}` is not supported through freeway; define a custom tool"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (tool_choice, parallel_tool_calls) = match self.tool_choice {
            None => (None, None),
            Some(v) => tool_choice(&v)?,
        };
        Ok(ChatRequest {
            model: self.model,
            messages,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format: None,
            max_tokens: Some(max_tokens),
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            frequency_penalty: None,
            presence_penalty: None,
            stop: self.stop_sequences.unwrap_or_default(),
            seed: None,
            user: self.metadata.and_then(|m| m.user_id),
        })
    }
}

fn system_text(system: Value) -> Result<String, ApiError> {
    match system {
        Value::String(s) => Ok(s),
        Value::Array(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.into_iter().enumerate() {
                match b.get("text").and_then(Value::as_str) {
                    Some(t) if b.get("type").and_then(Value::as_str) == Some("text") => {
                        out.push(t.to_owned())
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            format!("system[{i}]"),
                            "must be a text block",
                        ));
                    }
                }
            }
            Ok(out.join("\n\n"))
        }
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::invalid(
            "system",
            "must be a string or an array of text blocks",
        )),
    }
}

/// One Anthropic turn becomes one or more messages: a user turn's `tool_result` blocks become
/// tool messages (placed first, right after the assistant's calls), its other blocks a user
/// message.
fn turn(i: usize, m: WireMessage, out: &mut Vec<Message>) -> Result<(), ApiError> {
    let at = format!("messages[{i}].content");
    let blocks = match m.content {
        Value::String(text) => vec![serde_json::json!({ "type": "text", "text": text })],
        Value::Array(blocks) => blocks,
        _ => {
            return Err(ApiError::invalid(
                at,
                "must be a string or an array of content blocks",
            ));
        }
    };
    match m.role.as_str() {
        "user" => {
            let mut parts = Vec::new();
            for (j, block) in blocks.into_iter().enumerate() {
                let at = format!("{at}[{j}]");
                match block_type(&block, &at)? {
                    "tool_result" => out.push(tool_result(block, &at)?),
                    _ => {
                        if let Some(p) = part(block, &at)? {
                            parts.push(p);
                        }
                    }
                }
            }
            if !parts.is_empty() {
                out.push(Message::User { content: parts });
            }
        }
        "assistant" => {
            let mut content = Vec::new();
            let mut tool_calls = Vec::new();
            for (j, block) in blocks.into_iter().enumerate() {
                let at = format!("{at}[{j}]");
                match block_type(&block, &at)? {
                    "tool_use" => tool_calls.push(tool_use(block, &at)?),
                    // Reasoning from an earlier turn is not sent on: other models cannot read it.
                    "thinking" | "redacted_thinking" => {}
                    _ => {
                        if let Some(p) = part(block, &at)? {
                            content.push(p);
                        }
                    }
                }
            }
            out.push(Message::Assistant {
                content,
                tool_calls,
            });
        }
        // A system message inside the conversation (Claude Code sends its environment this
        // way): kept in place, for providers that read system text anywhere.
        "system" => {
            let text = system_text(Value::Array(blocks)).map_err(|_| {
                ApiError::invalid(at, "a system message must hold only text blocks")
            })?;
            if !text.is_empty() {
                out.push(Message::System { content: text });
            }
        }
        other => {
            return Err(ApiError::invalid(
                format!("messages[{i}].role"),
                format!("unknown role `{other}`; expected user, assistant or system"),
            ));
        }
    }
    Ok(())
}

fn block_type<'a>(block: &'a Value, at: &str) -> Result<&'a str, ApiError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(format!("{at}.type"), "Field required"))
}

fn string(block: &Value, field: &str, at: &str) -> Result<String, ApiError> {
    block
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::invalid(format!("{at}.{field}"), "must be a string"))
}

/// A text or image block; `None` for blocks that carry nothing to forward (empty text).
fn part(block: Value, at: &str) -> Result<Option<ContentPart>, ApiError> {
    match block_type(&block, at)? {
        "text" => {
            let text = string(&block, "text", at)?;
            Ok((!text.is_empty()).then_some(ContentPart::Text { text }))
        }
        "image" => {
            let source = block
                .get("source")
                .ok_or_else(|| ApiError::invalid(format!("{at}.source"), "Field required"))?;
            let at = format!("{at}.source");
            let source = match source.get("type").and_then(Value::as_str) {
                Some("base64") => ImageSource::Base64 {
                    media_type: string(source, "media_type", &at)?,
                    data: string(source, "data", &at)?,
                },
                Some("url") => ImageSource::Url {
                    url: string(source, "url", &at)?,
                },
                _ => {
                    return Err(ApiError::invalid(
                        format!("{at}.type"),
                        "must be base64 or url",
                    ));
                }
            };
            Ok(Some(ContentPart::Image {
                source,
                detail: None,
            }))
        }
        other => Err(ApiError::invalid(
            format!("{at}.type"),
            format!("content blocks of type `{other}` are not supported here"),
        )),
    }
}

fn tool_use(block: Value, at: &str) -> Result<ToolCall, ApiError> {
    let input = block
        .get("input")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    Ok(ToolCall {
        id: string(&block, "id", at)?,
        name: string(&block, "name", at)?,
        arguments: input.to_string(),
    })
}

fn tool_result(block: Value, at: &str) -> Result<Message, ApiError> {
    let tool_call_id = string(&block, "tool_use_id", at)?;
    let is_error = block
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let content = match block.get("content").cloned() {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![ContentPart::Text { text }],
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::new();
            for (k, b) in blocks.into_iter().enumerate() {
                if let Some(p) = part(b, &format!("{at}.content[{k}]"))? {
                    parts.push(p);
                }
            }
            parts
        }
        Some(_) => {
            return Err(ApiError::invalid(
                format!("{at}.content"),
                "must be a string or an array of blocks",
            ));
        }
    };
    Ok(Message::Tool {
        tool_call_id,
        content,
        is_error,
    })
}

fn tool_choice(v: &Value) -> Result<(Option<ToolChoice>, Option<bool>), ApiError> {
    let parallel = v
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        .map(|disable| !disable);
    let choice = match v.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Auto,
        Some("any") => ToolChoice::Required,
        Some("none") => ToolChoice::None,
        Some("tool") => ToolChoice::Tool {
            name: string(v, "name", "tool_choice")?,
        },
        _ => {
            return Err(ApiError::invalid(
                "tool_choice.type",
                "must be auto, any, tool or none",
            ));
        }
    };
    Ok((Some(choice), parallel))
}
