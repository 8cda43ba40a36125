//! Chat Completions responses, stream chunks, errors, embeddings and model lists as OpenAI
//! documents them; converted to `freeway-types` at the boundary.

use freeway_types::{
    ChatResponse, ContentPart, EmbeddingResponse, FinishReason, ModelInfo, StreamEvent, ToolCall,
    Usage,
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::transport::{ErrorDetails, classify_status};

#[derive(Deserialize)]
pub(super) struct WireResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: String,
    function: WireFunctionCall,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize, Default, Clone, Copy)]
pub(super) struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cache_read_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
        }
    }
}

pub(super) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        // "stop", "eos" and servers' own words all mean a natural end.
        _ => FinishReason::Stop,
    }
}

impl WireResponse {
    pub(super) fn into_response(self) -> Result<ChatResponse, String> {
        let Some(choice) = self.choices.into_iter().next() else {
            return Err("the response has no choices".into());
        };
        let mut content = Vec::new();
        if let Some(text) = choice.message.content.filter(|t| !t.is_empty()) {
            content.push(ContentPart::Text { text });
        } else if let Some(refusal) = choice.message.refusal {
            content.push(ContentPart::Text { text: refusal });
        }
        let tool_calls: Vec<ToolCall> = choice
            .message
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect();
        let finish_reason = match choice.finish_reason.as_deref() {
            Some(r) => finish_reason(r),
            None if !tool_calls.is_empty() => FinishReason::ToolCalls,
            None => FinishReason::Stop,
        };
        Ok(ChatResponse {
            id: self.id,
            model: self.model,
            content,
            tool_calls,
            finish_reason,
            stop_sequence: None,
            usage: self.usage.map(Usage::from).unwrap_or_default(),
        })
    }
}

/// One `chat.completion.chunk`.
#[derive(Deserialize)]
pub(super) struct WireChunk {
    /// Servers report failures mid-stream as a chunk `{"error": {...}}`.
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: WireDelta,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCallDelta>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Turns chunks into events. Remembers which tool calls it has announced, because servers differ
/// in how they repeat ids and names across fragments.
#[derive(Default)]
pub(super) struct ChunkDecoder {
    started: Vec<bool>,
    /// Tool calls seen without an `index` (some compatible servers omit it).
    next_index: u32,
    finish: Option<FinishReason>,
    saw_tool_calls: bool,
}

impl ChunkDecoder {
    pub(super) fn decode(&mut self, chunk: WireChunk, out: &mut Vec<StreamEvent>) {
        // Only the first choice is served; `n > 1` is not offered by freeway.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let delta = choice.delta;
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push(StreamEvent::TextDelta { text });
            }
            if let Some(text) = delta.refusal.filter(|t| !t.is_empty()) {
                out.push(StreamEvent::TextDelta { text });
            }
            for call in delta.tool_calls {
                self.tool_call(call, out);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage {
                usage: usage.into(),
            });
        }
    }

    fn tool_call(&mut self, call: WireToolCallDelta, out: &mut Vec<StreamEvent>) {
        self.saw_tool_calls = true;
        let index = match call.index {
            Some(i) => i,
            // Without an index, a fragment carrying an id opens a new call.
            None if call.id.is_some() => {
                let i = self.next_index;
                self.next_index += 1;
                i
            }
            None => self.next_index.saturating_sub(1),
        };
        self.next_index = self.next_index.max(index + 1);
        let slot = index as usize;
        if self.started.len() <= slot {
            self.started.resize(slot + 1, false);
        }
        let (name, arguments) = match call.function {
            Some(f) => (f.name, f.arguments),
            None => (None, None),
        };
        if !self.started[slot] {
            self.started[slot] = true;
            out.push(StreamEvent::ToolCallStart {
                index,
                id: call
                    .id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| freeway_types::random_id("call_")),
                name: name.unwrap_or_default(),
            });
        }
        if let Some(arguments) = arguments.filter(|a| !a.is_empty()) {
            out.push(StreamEvent::ToolCallDelta { index, arguments });
        }
    }

    pub(super) fn has_finish_reason(&self) -> bool {
        self.finish.is_some()
    }

    /// The closing `Finish`, once the stream has ended.
    pub(super) fn finish(&mut self) -> StreamEvent {
        let reason = FinishReason::given_tool_calls(self.finish.take(), self.saw_tool_calls);
        StreamEvent::Finish {
            reason,
            stop_sequence: None,
        }
    }
}

#[derive(Deserialize)]
struct WireErrorBody {
    error: WireError,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Reads an OpenAI error envelope (or a bare text body) into an error class.
pub(super) fn classify(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> freeway_types::ProviderError {
    let mut details = ErrorDetails::default();
    match serde_json::from_slice::<WireErrorBody>(body) {
        Ok(WireErrorBody { error }) => {
            let code = error
                .code
                .as_ref()
                .and_then(|c| c.as_str())
                .unwrap_or_default();
            details.context_exceeded = code == "context_length_exceeded"
                || error.kind.as_deref() == Some("context_length_exceeded");
            details.model_not_found = code == "model_not_found";
            details.message = error.message;
        }
        Err(_) => details.message = String::from_utf8_lossy(body).trim().to_owned(),
    }
    classify_status(provider, status, headers, details)
}

#[derive(Deserialize)]
pub(super) struct WireEmbeddingResponse {
    data: Vec<WireEmbedding>,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

impl From<WireEmbeddingResponse> for EmbeddingResponse {
    fn from(mut r: WireEmbeddingResponse) -> Self {
        r.data.sort_by_key(|d| d.index);
        EmbeddingResponse {
            model: r.model,
            embeddings: r.data.into_iter().map(|d| d.embedding).collect(),
            usage: r.usage.map(Usage::from).unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct WireModelList {
    data: Vec<WireModel>,
}

#[derive(Deserialize)]
struct WireModel {
    id: String,
    #[serde(default)]
    owned_by: Option<String>,
    #[serde(default)]
    context_length: Option<u32>,
}

impl From<WireModelList> for Vec<ModelInfo> {
    fn from(list: WireModelList) -> Self {
        list.data
            .into_iter()
            .map(|m| ModelInfo {
                id: m.id,
                owned_by: m.owned_by,
                context_window: m.context_length,
            })
            .collect()
    }
}
