//! The gateway: which provider serves a model name, and what happens when it fails.
//!
//! Owns the registry of configured providers, route aliases (`[[routes]]`) and their
//! strategies (fallback, round robin, weighted, least latency, least busy, and `auto`
//! complexity routing), the `default` model, model discovery for `/v1/models`, retries with
//! backoff, per-target circuit breakers, deadlines and the response cache. A streamed request
//! may still move to the next target while nothing has reached the client: the first event is
//! awaited before the stream is handed out.
//!
//! It speaks `freeway-types` only and does not know HTTP ingress formats. [`limits`] enforces
//! rate limits and budgets for subjects the server names (keys, teams); [`pricing`] turns
//! usage into cost; [`tokens`] counts tokens when a provider does not. Each provider call is
//! counted in the server's [`freeway_types::Metrics`].

mod cache;
mod classify;
mod health;
pub mod limits;
mod metering;
mod models;
pub mod pricing;
mod registry;
pub mod tokens;

pub use cache::{CacheMode, CacheStats, CacheStatus};
pub use classify::{Classifier, Decision};
pub use health::{CircuitState, TargetSnapshot};
pub use models::ModelEntry;
pub use registry::{
    Gateway, GatewayBuilder, GatewayError, RequestOptions, RouteSnapshot, Served, Target,
    remote_provider,
};
