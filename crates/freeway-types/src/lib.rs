//! The domain model every freeway crate speaks.
//!
//! Ingress formats (OpenAI, Anthropic) are translated into these types by `freeway-server`;
//! egress formats are produced from them by `freeway-providers` and `freeway-local`. Nothing in
//! here knows a wire format: there are no OpenAI or Anthropic structs, only chat requests,
//! messages, tool calls, usage and stream events.
//!
//! The [`Provider`] trait lives here (not in `freeway-providers`) so that the embedded model in
//! `freeway-local` can implement it without depending on the HTTP providers.

mod accumulate;
mod chat;
mod embeddings;
mod error;
mod id;
pub mod metrics;
mod provider;
mod stream;

pub use accumulate::StreamAccumulator;
pub use chat::{
    ChatRequest, ChatResponse, ContentPart, FinishReason, ImageSource, Message, ResponseFormat,
    ToolCall, ToolChoice, ToolDefinition, Usage, join_text,
};
pub use embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
pub use error::{ErrorKind, ProviderError, TimeoutPhase};
pub use id::random_id;
pub use metrics::Metrics;
pub use provider::{ChatStream, ModelInfo, Provider};
pub use stream::StreamEvent;
