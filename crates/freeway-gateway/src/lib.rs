//! The gateway: which provider serves a model name, and what happens when it fails.
//!
//! Owns the registry of configured providers, route aliases (`[[routes]]`), the `default`
//! model, model discovery for `/v1/models`, and fallback across a route's targets. A streamed
//! request may still move to the next target while nothing has reached the client: the first
//! event is awaited before the stream is handed out.
//!
//! It speaks `freeway-types` only; it does not know HTTP ingress formats, keys or tenants.

mod models;
mod registry;

pub use models::ModelEntry;
pub use registry::{Gateway, GatewayBuilder, GatewayError, Served, Target};
