//! The HTTP API: OpenAI- and Anthropic-compatible ingress in front of the gateway.
//!
//! Each ingress format lives in its own module ([`openai`], [`anthropic`], and [`responses`]
//! for the OpenAI Responses API) and converts to `freeway-types` at the edge; errors leave in
//! the format of the route they came in on.
//! [`exec`] serves `/v1/exec` over `freeway-sandbox`; [`ops`] the operators' views
//! (`/admin/routes`, `/metrics`); [`sessions`] the agents (`/v1/sessions`, `/v1/tools`,
//! `model: "agent:…"`). This crate owns routing, authentication, body limits and SSE framing;
//! it does not know provider wire formats.

pub mod admin;
mod anthropic;
mod encode;
mod error;
pub mod exec;
mod http;
pub mod jwt;
pub mod ledger;
pub mod observe;
mod openai;
pub mod ops;
pub mod responses;
pub mod serve;
pub mod sessions;
pub mod tenancy;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use freeway_gateway::Gateway;
use freeway_providers::Secret;

pub use error::{ApiError, Category};

/// What every handler shares.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    /// `None`: no authentication (the server listens on loopback only).
    pub master_key: Option<Secret>,
    pub max_body_bytes: usize,
    /// Silence after which a stream gets a keep-alive comment.
    pub keep_alive: Duration,
    /// Unix seconds at start, reported as the `created` time of models.
    pub started: u64,
    /// The sandbox behind `/v1/exec` (or why there is none).
    pub exec: exec::ExecState,
    /// Teams, keys, limits and the ledger; `None` runs without a store (master key only).
    pub tenancy: Option<Arc<tenancy::Tenancy>>,
    /// The agent runtime behind `/v1/sessions` and `model: "agent:…"`; `None`: agents are off.
    pub agents: Option<Arc<sessions::Agents>>,
    /// The one line per request in the log, and how often.
    pub access_log: observe::AccessLog,
}

impl AppState {
    pub fn new(gateway: Arc<Gateway>, master_key: Option<Secret>) -> Self {
        Self {
            gateway,
            master_key,
            max_body_bytes: 32 * 1024 * 1024,
            keep_alive: Duration::from_secs(15),
            started: http::unix_now(),
            exec: exec::ExecState::unavailable(
                "no sandbox is configured for this server: /v1/exec is off",
            ),
            tenancy: None,
            agents: None,
            access_log: observe::AccessLog::default(),
        }
    }
}

/// The OpenAPI 3.1 description of this API, kept beside the code (`openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::list_models))
        .route("/v1/models/{*model}", get(openai::get_model))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/responses", post(responses::create))
        .route(
            "/v1/responses/{id}",
            get(responses::retrieve).delete(responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(responses::input_items),
        )
        .route(
            "/v1/sessions",
            post(sessions::create_session).get(sessions::list_sessions),
        )
        .route(
            "/v1/sessions/{id}",
            get(sessions::get_session).delete(sessions::delete_session),
        )
        .route("/v1/sessions/{id}/messages", post(sessions::post_message))
        .route("/v1/sessions/{id}/events", get(sessions::session_events))
        .route("/v1/sessions/{id}/abort", post(sessions::abort_session))
        .route("/v1/sessions/{id}/fork", post(sessions::fork_session))
        .route(
            "/v1/sessions/{id}/approvals/{call_id}",
            post(sessions::approve_call),
        )
        .route("/v1/tools", get(sessions::list_tools))
        .route("/v1/agents", get(sessions::list_agents))
        .route("/v1/exec", post(exec::exec))
        .route("/v1/exec/languages", get(exec::languages))
        .route("/admin/routes", get(ops::routes))
        .route(
            "/admin/teams",
            post(admin::create_team).get(admin::list_teams),
        )
        .route(
            "/admin/teams/{id}",
            get(admin::get_team).patch(admin::update_team),
        )
        .route("/admin/keys", post(admin::create_key).get(admin::list_keys))
        .route(
            "/admin/keys/{id}",
            get(admin::get_key)
                .patch(admin::update_key)
                .delete(admin::revoke_key),
        )
        .route("/admin/keys/{id}/rotate", post(admin::rotate_key))
        .route("/admin/usage", get(admin::usage))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/audit/verify", get(admin::verify_audit))
        .route("/v1/estimate", post(openai::estimate))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.json", get(openapi))
        .route("/readyz", get(ops::ready))
        .fallback(|| async { http::not_found_route().openai() })
        .method_not_allowed_fallback(|| async {
            http::method_not_allowed().openai().into_response()
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}
