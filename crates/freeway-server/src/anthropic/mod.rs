//! The Anthropic-compatible route: `POST /v1/messages`.

mod request;
mod response;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use request::MessagesRequest;
use response::EventEncoder;

use crate::error::ApiError;
use crate::http::{
    authorize, json_response, parse_json, read_body, request_options, served_headers, sse_response,
};
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
    let options = request_options(&headers)?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: MessagesRequest = parse_json(&bytes)?;
    drop(bytes);
    let model = wire.model.clone();
    let stream = wire.stream;
    let request = wire.into_chat()?;
    let id = freeway_types::random_id("msg_");

    if !stream {
        let served = state
            .gateway
            .complete_with(&model, request, &options)
            .await?;
        let body = response::message(&id, &model, &served.value);
        return Ok(json_response(body, served_headers(&served)));
    }
    let served = state.gateway.stream_with(&model, request, &options).await?;
    let headers = served_headers(&served);
    Ok(sse_response(
        encode::frames(served.value, EventEncoder::new(id, model)),
        state.keep_alive,
        headers,
    ))
}
