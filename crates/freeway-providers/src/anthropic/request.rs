//! Messages API request body.

use freeway_types::{ChatRequest, ContentPart, ImageSource, Message, ResponseFormat, ToolChoice};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: Vec<WireBlock<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: WireImageSource<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a RawValue,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: Vec<WireBlock<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireImageSource<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a Value,
}

/// Why a request cannot be said in this protocol.
pub(super) struct Unsayable(pub(super) String);

fn blocks(parts: &[ContentPart]) -> Vec<WireBlock<'_>> {
    parts
        .iter()
        .filter(|p| !matches!(p, ContentPart::Text { text } if text.is_empty()))
        .map(|p| match p {
            ContentPart::Text { text } => WireBlock::Text { text },
            ContentPart::Image { source, .. } => WireBlock::Image {
                source: match source {
                    ImageSource::Base64 { media_type, data } => {
                        WireImageSource::Base64 { media_type, data }
                    }
                    ImageSource::Url { url } => WireImageSource::Url { url },
                },
            },
        })
        .collect()
}

/// Tool-call arguments as the JSON object Anthropic requires; an empty string means no arguments.
fn arguments(text: &str) -> Result<&RawValue, Unsayable> {
    const EMPTY: &str = "{}";
    let text = if text.trim().is_empty() { EMPTY } else { text };
    let raw: &RawValue = serde_json::from_str(text)
        .map_err(|e| Unsayable(format!("tool call arguments are not valid JSON: {e}")))?;
    if !raw.get().trim_start().starts_with('{') {
        return Err(Unsayable(
            "tool call arguments must be a JSON object".into(),
        ));
    }
    Ok(raw)
}

fn push<'a>(messages: &mut Vec<WireMessage<'a>>, role: &'static str, content: Vec<WireBlock<'a>>) {
    if content.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.content.extend(content),
        _ => messages.push(WireMessage { role, content }),
    }
}

pub(super) fn body(
    request: &ChatRequest,
    stream: bool,
    default_max_tokens: u32,
) -> Result<Vec<u8>, Unsayable> {
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. }) => {
            return Err(Unsayable(
                "response_format json_object/json_schema is not implemented for the anthropic \
                 protocol; describe the JSON you want in the prompt, or use a tool"
                    .into(),
            ));
        }
    }

    let mut system = Vec::new();
    let mut messages: Vec<WireMessage<'_>> = Vec::with_capacity(request.messages.len());
    // Anthropic wants strictly alternating roles: consecutive turns of one role are merged, which
    // is also how OpenAI's one-message-per-tool-result becomes one user turn of results.
    for m in &request.messages {
        match m {
            Message::System { content } => system.push(content.as_str()),
            Message::User { content } => push(&mut messages, "user", blocks(content)),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                let mut b = blocks(content);
                for call in tool_calls {
                    b.push(WireBlock::ToolUse {
                        id: &call.id,
                        name: &call.name,
                        input: arguments(&call.arguments)?,
                    });
                }
                push(&mut messages, "assistant", b);
            }
            Message::Tool {
                tool_call_id,
                content,
                is_error,
            } => push(
                &mut messages,
                "user",
                vec![WireBlock::ToolResult {
                    tool_use_id: tool_call_id,
                    content: blocks(content),
                    is_error: *is_error,
                }],
            ),
        }
    }

    let mut tool_choice = request.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => serde_json::json!({ "type": "auto" }),
        ToolChoice::None => serde_json::json!({ "type": "none" }),
        ToolChoice::Required => serde_json::json!({ "type": "any" }),
        ToolChoice::Tool { name } => serde_json::json!({ "type": "tool", "name": name }),
    });
    if request.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
        let choice = tool_choice.get_or_insert_with(|| serde_json::json!({ "type": "auto" }));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }

    let wire = WireRequest {
        model: &request.model,
        max_tokens: request.max_tokens.unwrap_or(default_max_tokens),
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        messages,
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                name: &t.name,
                description: t.description.as_deref(),
                input_schema: &t.parameters,
            })
            .collect(),
        tool_choice,
        stop_sequences: &request.stop,
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        metadata: request.user.as_deref().map(|user_id| Metadata { user_id }),
        stream,
    };
    serde_json::to_vec(&wire)
        .map_err(|e| Unsayable(format!("the request could not be encoded: {e}")))
}
