//! The Anthropic-compatible route: `POST /v1/messages`.

mod request;
mod response;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use request::MessagesRequest;
use response::EventEncoder;

use crate::error::ApiError;
use crate::http::{authorize, parse_json, read_body, sse_response, target_header};
use crate::{AppState, encode};

pub async fn messages(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.anthropic(),
    }
}

async fn handle(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: MessagesRequest = parse_json(&bytes)?;
    drop(bytes);
    let model = wire.model.clone();
    let stream = wire.stream;
    let request = wire.into_chat()?;
    let id = freeway_types::random_id("msg_");

    if !stream {
        let served = state.gateway.complete(&model, request).await?;
        let mut response =
            axum::Json(response::message(&id, &model, &served.value)).into_response();
        if let Some((name, value)) = target_header(&served.target) {
            response.headers_mut().insert(name, value);
        }
        return Ok(response);
    }
    let served = state.gateway.stream(&model, request).await?;
    Ok(sse_response(
        encode::frames(served.value, EventEncoder::new(id, model)),
        state.keep_alive,
        target_header(&served.target),
    ))
}
