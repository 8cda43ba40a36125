//! The OpenAI-compatible routes: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.

mod embeddings;
mod request;
mod response;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use embeddings::embeddings;
use request::ChatCompletionRequest;
use response::ChunkEncoder;

use crate::error::ApiError;
use crate::http::{
    authorize, json_response, parse_json, read_body, request_options, served_headers, sse_response,
    unix_now,
};
use crate::{AppState, encode};

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match chat(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.openai(),
    }
}

async fn chat(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let options = request_options(&headers)?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: ChatCompletionRequest = parse_json(&bytes)?;
    drop(bytes);
    let model = wire.model.clone();
    let stream = wire.stream;
    let include_usage = wire.include_usage();
    let request = wire.into_chat()?;
    let id = freeway_types::random_id("chatcmpl-");
    let created = unix_now();

    if !stream {
        let served = state
            .gateway
            .complete_with(&model, request, &options)
            .await?;
        let body = response::completion(&id, created, &model, &served.value);
        return Ok(json_response(body, served_headers(&served)));
    }

    let served = state.gateway.stream_with(&model, request, &options).await?;
    let headers = served_headers(&served);
    let encoder = ChunkEncoder::new(&id, created, &model, include_usage);
    Ok(sse_response(
        encode::frames(served.value, encoder),
        state.keep_alive,
        headers,
    ))
}

/// `GET /v1/models`: every model id and route alias this server answers to.
pub async fn list_models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.openai();
    }
    let created = state.started;
    let data: Vec<_> = state
        .gateway
        .list_models()
        .await
        .into_iter()
        .map(|m| json!({ "id": m.id, "object": "model", "created": created, "owned_by": m.owned_by }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

/// `GET /v1/models/{model}`: one model, if it resolves.
pub async fn get_model(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(model): Path<String>,
) -> Response {
    if let Err(e) = authorize(&state, &headers) {
        return e.openai();
    }
    match state.gateway.resolve(&model) {
        Ok(targets) => {
            let owned_by = match targets.as_slice() {
                [one] if one.id == model => {
                    one.id.split('/').next().unwrap_or("freeway").to_owned()
                }
                _ => "freeway".to_owned(),
            };
            axum::Json(json!({ "id": model, "object": "model", "created": state.started, "owned_by": owned_by }))
                .into_response()
        }
        Err(e) => ApiError::from(e).openai(),
    }
}
