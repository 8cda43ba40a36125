//! The OpenAI Chat Completions protocol, spoken by OpenAI and by every OpenAI-compatible
//! service (Groq, Ollama, LM Studio, vLLM, llama.cpp server, OpenRouter, DeepSeek, Together,
//! Mistral…). Vendors differ only in data: a [`Preset`] gives the base URL, the auth convention
//! and the [`Quirks`] of each.

mod presets;
mod request;
mod response;

use freeway_types::{
    ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse, ModelInfo,
    Provider, ProviderError, StreamEvent,
};

pub use presets::Preset;

use crate::decode::{EventDecoder, decode_stream};
use crate::sse::SseEvent;
use crate::transport::{HttpClient, HttpSettings};
use response::{ChunkDecoder, WireChunk, WireEmbeddingResponse, WireModelList, WireResponse};

/// Where an OpenAI-compatible server departs from OpenAI's own API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Send `max_completion_tokens` (OpenAI's current name, required by its reasoning models)
    /// instead of the older `max_tokens` that compatible servers understand.
    pub max_completion_tokens: bool,
    /// The server honors `stream_options.include_usage`.
    pub stream_options: bool,
    /// The seed is called `random_seed` (Mistral).
    pub random_seed: bool,
    /// The server accepts `top_k` (OpenAI rejects it).
    pub top_k: bool,
    /// The word for "must call a tool": `required`, or Mistral's `any`.
    pub required_tool_choice: &'static str,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            max_completion_tokens: false,
            stream_options: true,
            random_seed: false,
            top_k: false,
            required_tool_choice: "required",
        }
    }
}

pub struct OpenAiProvider {
    http: HttpClient,
    quirks: Quirks,
    chat_url: http::Uri,
}

impl OpenAiProvider {
    /// `settings.base_url` ends in `/v1` (or the vendor's equivalent); paths are appended.
    pub fn new(settings: &HttpSettings, quirks: Quirks) -> Result<Self, ProviderError> {
        let http = HttpClient::new(settings)?;
        let chat_url = http.uri("/chat/completions")?;
        Ok(Self {
            http,
            quirks,
            chat_url,
        })
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Vec<u8>, ProviderError> {
        request::chat_body(request, stream, &self.quirks).map_err(|e| {
            self.http
                .unsayable(format!("the request could not be encoded: {e}"))
        })
    }
}

#[async_trait::async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        self.http.provider()
    }

    fn system(&self) -> &'static str {
        "openai"
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let body = self.body(request, true)?;
        let response = self
            .http
            .post_json(self.chat_url.clone(), &[], body, response::classify)
            .await?;
        let decoder = Decoder {
            chunks: ChunkDecoder::default(),
            provider: self.http.provider().to_owned(),
            done: false,
        };
        Ok(decode_stream(self.http.events(response), decoder))
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = self.body(request, false)?;
        let response = self
            .http
            .post_json(self.chat_url.clone(), &[], body, response::classify)
            .await?;
        let wire: WireResponse = self.http.read_json(response, "chat completion").await?;
        wire.into_response().map_err(|e| self.http.invalid(e))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        let response = self
            .http
            .get(self.http.uri("/models")?, &[], response::classify)
            .await?;
        let list: WireModelList = self.http.read_json(response, "model list").await?;
        Ok(list.into())
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let body = request::embedding_body(request).map_err(|e| {
            self.http
                .unsayable(format!("the request could not be encoded: {e}"))
        })?;
        let response = self
            .http
            .post_json(self.http.uri("/embeddings")?, &[], body, response::classify)
            .await?;
        let wire: WireEmbeddingResponse = self.http.read_json(response, "embeddings").await?;
        Ok(wire.into())
    }
}

struct Decoder {
    chunks: ChunkDecoder,
    provider: String,
    done: bool,
}

impl EventDecoder for Decoder {
    fn decode(
        &mut self,
        event: SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: WireChunk =
            serde_json::from_str(data).map_err(|e| ProviderError::InvalidResponse {
                provider: self.provider.clone(),
                message: format!("stream chunk: {e}"),
            })?;
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("the upstream stream reported an error")
                .to_owned();
            return Err(ProviderError::Upstream {
                provider: self.provider.clone(),
                status: 500,
                message,
            });
        }
        self.chunks.decode(chunk, out);
        Ok(false)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        // Servers that skip `[DONE]` are tolerated once they have sent a finish reason.
        if !self.done && !self.chunks.has_finish_reason() {
            return Err(ProviderError::InvalidResponse {
                provider: self.provider.clone(),
                message: "the stream ended before the response was complete".into(),
            });
        }
        out.push(self.chunks.finish());
        Ok(())
    }
}
