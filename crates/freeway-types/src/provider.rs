//! The one trait every model backend implements.

use std::pin::Pin;

use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ProviderError,
    StreamAccumulator, StreamEvent,
};

/// A streamed answer. Dropping it cancels the upstream work.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// A model backend: a remote protocol (OpenAI, Anthropic, Gemini) or the embedded model.
///
/// Only [`Provider::name`] and [`Provider::stream`] are required; `complete` collects the stream
/// unless a provider has a cheaper non-streaming path.
#[async_trait::async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The configured provider name (the `openai` of `openai/gpt-4.1`).
    fn name(&self) -> &str;

    /// The `gen_ai.provider.name` of OpenTelemetry's conventions for this protocol
    /// (`openai`, `anthropic`, `gcp.gemini`), `_OTHER` when it has none.
    fn system(&self) -> &'static str {
        "_OTHER"
    }

    /// Starts a streamed answer. Errors known before the first event (auth, bad request,
    /// unknown model, rate limits) are returned here rather than inside the stream, so a caller
    /// can still fall back to another target.
    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError>;

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let stream = self.stream(request).await?;
        StreamAccumulator::collect(stream, &request.model).await
    }

    /// The models this provider can serve right now, if it can tell.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, ProviderError> {
        Ok(Vec::new())
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse, ProviderError> {
        let _ = request;
        Err(ProviderError::Unsupported {
            provider: self.name().to_owned(),
            what: "embeddings".to_owned(),
        })
    }
}

/// A model a provider offers, named as the provider names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
}
