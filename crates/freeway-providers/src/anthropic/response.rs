//! Messages API responses, stream events and errors.

use std::collections::HashMap;

use freeway_types::{
    ChatResponse, ContentPart, FinishReason, ModelInfo, ProviderError, StreamEvent, ToolCall, Usage,
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::transport::{ErrorDetails, classify_status};

#[derive(Deserialize, Default, Clone, Copy)]
pub(super) struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Later usage reports carry only what changed; fields they omit keep their earlier value.
    fn merge(&mut self, later: WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }
}

impl From<WireUsage> for Usage {
    /// Anthropic counts cached prompt tokens apart from `input_tokens`; freeway counts them in.
    fn from(u: WireUsage) -> Self {
        let read = u.cache_read_input_tokens.unwrap_or(0);
        let write = u.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: u.input_tokens.unwrap_or(0) + read + write,
            output_tokens: u.output_tokens.unwrap_or(0),
            cache_read_tokens: read,
            cache_write_tokens: write,
        }
    }
}

pub(super) fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "stop_sequence" => FinishReason::StopSequence,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        // "end_turn", "pause_turn"
        _ => FinishReason::Stop,
    }
}

#[derive(Deserialize)]
pub(super) struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        // Not `RawValue`: serde cannot buffer a raw value inside an internally tagged enum.
        input: serde_json::Value,
    },
    /// Thinking, redacted thinking, server tool results: not part of the answer text.
    #[serde(other)]
    Other,
}

impl From<WireResponse> for ChatResponse {
    fn from(r: WireResponse) -> Self {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for block in r.content {
            match block {
                WireBlock::Text { text: t } => text.push_str(&t),
                WireBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: input.to_string(),
                }),
                WireBlock::Other => {}
            }
        }
        ChatResponse {
            id: r.id,
            model: r.model,
            content: if text.is_empty() {
                Vec::new()
            } else {
                vec![ContentPart::Text { text }]
            },
            tool_calls,
            finish_reason: r
                .stop_reason
                .as_deref()
                .map_or(FinishReason::Stop, stop_reason),
            stop_sequence: r.stop_sequence,
            usage: r.usage.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockStart {
        index: u32,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: u32,
        delta: Delta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
}

#[derive(Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    ToolUse {
        id: String,
        name: String,
    },
    Text {
        #[serde(default)]
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    clippy::enum_variant_names,
    reason = "the variants are Anthropic's delta type names"
)]
enum Delta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// `thinking_delta`, `signature_delta`, `citations_delta`.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// Translates Messages stream events; tool-use blocks are renumbered as tool calls from 0.
#[derive(Default)]
pub(super) struct EventTranslator {
    tool_index: HashMap<u32, u32>,
    /// Tool blocks (by block index) that have received argument text.
    tool_has_input: std::collections::HashSet<u32>,
    usage: WireUsage,
    finish: Option<(FinishReason, Option<String>)>,
    stopped: bool,
}

impl EventTranslator {
    /// Returns `true` at `message_stop`.
    pub(super) fn decode(
        &mut self,
        provider: &str,
        data: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        let event: WireEvent =
            serde_json::from_str(data).map_err(|e| ProviderError::InvalidResponse {
                provider: provider.to_owned(),
                message: format!("stream event: {e}"),
            })?;
        match event {
            WireEvent::MessageStart { message } => self.usage.merge(message.usage),
            WireEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                BlockStart::ToolUse { id, name } => {
                    let tool = self.tool_index.len() as u32;
                    self.tool_index.insert(index, tool);
                    out.push(StreamEvent::ToolCallStart {
                        index: tool,
                        id,
                        name,
                    });
                }
                BlockStart::Text { text } if !text.is_empty() => {
                    out.push(StreamEvent::TextDelta { text });
                }
                BlockStart::Text { .. } | BlockStart::Other => {}
            },
            WireEvent::ContentBlockDelta { index, delta } => match delta {
                Delta::TextDelta { text } => out.push(StreamEvent::TextDelta { text }),
                Delta::InputJsonDelta { partial_json } => {
                    if let Some(&tool) = self.tool_index.get(&index)
                        && !partial_json.is_empty()
                    {
                        self.tool_has_input.insert(index);
                        out.push(StreamEvent::ToolCallDelta {
                            index: tool,
                            arguments: partial_json,
                        });
                    }
                }
                Delta::Other => {}
            },
            WireEvent::ContentBlockStop { index } => {
                // A tool without input streams no fragments; its arguments are still `{}`.
                if let Some(&tool) = self.tool_index.get(&index)
                    && !self.tool_has_input.contains(&index)
                {
                    out.push(StreamEvent::ToolCallDelta {
                        index: tool,
                        arguments: "{}".to_owned(),
                    });
                }
            }
            WireEvent::Ping => {}
            WireEvent::MessageDelta { delta, usage } => {
                if let Some(usage) = usage {
                    self.usage.merge(usage);
                }
                if let Some(reason) = delta.stop_reason {
                    self.finish = Some((stop_reason(&reason), delta.stop_sequence));
                }
            }
            WireEvent::MessageStop => {
                self.stopped = true;
                return Ok(true);
            }
            WireEvent::Error { error } => {
                let details = ErrorDetails {
                    overloaded: error.kind == "overloaded_error",
                    message: error.message,
                    ..ErrorDetails::default()
                };
                let status = status_for_error_type(&error.kind);
                return Err(classify_status(
                    provider,
                    status,
                    &HeaderMap::new(),
                    details,
                ));
            }
        }
        Ok(false)
    }

    pub(super) fn finish(
        &mut self,
        provider: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        if !self.stopped && self.finish.is_none() {
            return Err(ProviderError::InvalidResponse {
                provider: provider.to_owned(),
                message: "the stream ended before the response was complete".into(),
            });
        }
        out.push(StreamEvent::Usage {
            usage: self.usage.into(),
        });
        let (reason, stop_sequence) = self.finish.take().unwrap_or((FinishReason::Stop, None));
        out.push(StreamEvent::Finish {
            reason,
            stop_sequence,
        });
        Ok(())
    }
}

/// The status Anthropic uses for an error type, for errors that arrive inside a stream.
fn status_for_error_type(kind: &str) -> StatusCode {
    match kind {
        "invalid_request_error" => StatusCode::BAD_REQUEST,
        "authentication_error" => StatusCode::UNAUTHORIZED,
        "permission_error" => StatusCode::FORBIDDEN,
        "not_found_error" => StatusCode::NOT_FOUND,
        "request_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "rate_limit_error" => StatusCode::TOO_MANY_REQUESTS,
        "overloaded_error" => StatusCode::SERVICE_UNAVAILABLE,
        "timeout_error" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Deserialize)]
struct WireErrorBody {
    error: WireError,
}

pub(super) fn classify(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ProviderError {
    let mut details = ErrorDetails::default();
    match serde_json::from_slice::<WireErrorBody>(body) {
        Ok(WireErrorBody { error }) => {
            details.overloaded = error.kind == "overloaded_error";
            // Anthropic has no error code for an oversized prompt; its message is the only signal.
            details.context_exceeded = error.kind == "invalid_request_error"
                && (error.message.starts_with("prompt is too long")
                    || error.message.contains("context window"));
            details.message = error.message;
        }
        Err(_) => details.message = String::from_utf8_lossy(body).trim().to_owned(),
    }
    classify_status(provider, status, headers, details)
}

#[derive(Deserialize)]
pub(super) struct WireModelList {
    data: Vec<WireModel>,
}

#[derive(Deserialize)]
struct WireModel {
    id: String,
}

impl From<WireModelList> for Vec<ModelInfo> {
    fn from(list: WireModelList) -> Self {
        list.data
            .into_iter()
            .map(|m| ModelInfo {
                id: m.id,
                owned_by: Some("anthropic".into()),
                context_window: None,
            })
            .collect()
    }
}
