//! Egress: freeway's requests in each provider's wire protocol.
//!
//! One module per protocol — [`openai`] (OpenAI and every compatible service, told apart by
//! presets), [`anthropic`], [`gemini`] — each keeping its wire structs private and converting to
//! and from `freeway-types` at its boundary. [`transport`] is the single HTTP layer beneath them:
//! pooled clients, timeouts, SSE, and status classification into [`freeway_types::ProviderError`].
//! This crate does not know about routes, retries across targets, keys or tenants.

pub mod anthropic;
mod decode;
pub mod gemini;
pub mod openai;
mod secret;
pub mod sse;
pub mod transport;

pub use secret::Secret;
pub use transport::{Auth, HttpSettings, Timeouts};
