//! generateContent responses (whole and streamed), errors, model lists, embeddings.

use freeway_types::{
    EmbeddingResponse, FinishReason, ModelInfo, ProviderError, StreamEvent, Usage,
};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::transport::{ErrorDetails, classify_status};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireResponse {
    /// A failure reported inside a stream.
    #[serde(default)]
    pub(super) error: Option<serde_json::Value>,
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(super) model_version: Option<String>,
    #[serde(default)]
    pub(super) response_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    /// Thought summaries are not answer text.
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<WireFunctionCall>,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage {
            input_tokens: u.prompt_token_count,
            // Thinking tokens are billed as output.
            output_tokens: u.candidates_token_count + u.thoughts_token_count,
            cache_read_tokens: u.cached_content_token_count,
            cache_write_tokens: 0,
        }
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        // "STOP", "OTHER", "LANGUAGE", "FINISH_REASON_UNSPECIFIED"
        _ => FinishReason::Stop,
    }
}

/// Translates response chunks into events. Gemini streams text as deltas but each function
/// call whole, and gives no call ids unless the model version does; missing ids are made up (unique, so
/// ids never repeat across the turns of a conversation).
#[derive(Default)]
pub(super) struct ChunkTranslator {
    tool_calls: u32,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
}

impl ChunkTranslator {
    pub(super) fn push(&mut self, chunk: WireResponse, out: &mut Vec<StreamEvent>) {
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage.into());
        }
        if chunk.candidates.is_empty()
            && chunk
                .prompt_feedback
                .is_some_and(|f| f.block_reason.is_some())
        {
            self.finish = Some(FinishReason::ContentFilter);
        }
        let Some(candidate) = chunk.candidates.into_iter().next() else {
            return;
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(text) = part.text.filter(|t| !t.is_empty() && !part.thought) {
                out.push(StreamEvent::TextDelta { text });
            }
            if let Some(call) = part.function_call {
                let index = self.tool_calls;
                self.tool_calls += 1;
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: call
                        .id
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(|| freeway_types::random_id("call_")),
                    name: call.name,
                });
                let args = call
                    .args
                    .unwrap_or_else(|| Value::Object(Default::default()));
                out.push(StreamEvent::ToolCallDelta {
                    index,
                    arguments: args.to_string(),
                });
            }
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish = Some(finish_reason(&reason));
        }
    }

    pub(super) fn has_finish_reason(&self) -> bool {
        self.finish.is_some()
    }

    pub(super) fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(usage) = self.usage.take() {
            out.push(StreamEvent::Usage { usage });
        }
        // Gemini says STOP after function calls.
        let reason = FinishReason::given_tool_calls(self.finish.take(), self.tool_calls > 0);
        out.push(StreamEvent::Finish {
            reason,
            stop_sequence: None,
        });
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
    status: String,
}

pub(super) fn classify(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ProviderError {
    let mut details = ErrorDetails::default();
    // Gemini wraps errors as `{"error": {...}}`, and as `[{"error": {...}}]` on streaming calls.
    let parsed = serde_json::from_slice::<WireErrorBody>(body).or_else(|_| {
        serde_json::from_slice::<Vec<WireErrorBody>>(body)
            .map_err(|_| ())
            .and_then(|mut v| {
                if v.is_empty() {
                    Err(())
                } else {
                    Ok(v.swap_remove(0))
                }
            })
    });
    match parsed {
        Ok(WireErrorBody { error }) => {
            details.auth = matches!(
                error.status.as_str(),
                "UNAUTHENTICATED" | "PERMISSION_DENIED"
            ) || error.message.contains("API key not valid");
            details.overloaded = error.status == "UNAVAILABLE";
            details.context_exceeded = error.status == "INVALID_ARGUMENT"
                && error
                    .message
                    .contains("exceeds the maximum number of tokens");
            details.message = error.message;
        }
        Err(()) => details.message = String::from_utf8_lossy(body).trim().to_owned(),
    }
    classify_status(provider, status, headers, details)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireModelList {
    #[serde(default)]
    models: Vec<WireModel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireModel {
    name: String,
    #[serde(default)]
    input_token_limit: Option<u32>,
    #[serde(default)]
    supported_generation_methods: Vec<String>,
}

impl From<WireModelList> for Vec<ModelInfo> {
    fn from(list: WireModelList) -> Self {
        list.models
            .into_iter()
            .filter(|m| {
                m.supported_generation_methods.is_empty()
                    || m.supported_generation_methods
                        .iter()
                        .any(|s| s == "generateContent" || s == "embedContent")
            })
            .map(|m| ModelInfo {
                id: m.name.strip_prefix("models/").unwrap_or(&m.name).to_owned(),
                owned_by: Some("google".into()),
                context_window: m.input_token_limit,
            })
            .collect()
    }
}

#[derive(Deserialize)]
pub(super) struct WireEmbeddings {
    #[serde(default)]
    embeddings: Vec<WireEmbedding>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    values: Vec<f32>,
}

impl WireEmbeddings {
    pub(super) fn into_response(self, model: &str) -> EmbeddingResponse {
        EmbeddingResponse {
            model: model.to_owned(),
            embeddings: self.embeddings.into_iter().map(|e| e.values).collect(),
            // batchEmbedContents reports no token counts.
            usage: Usage::default(),
        }
    }
}
