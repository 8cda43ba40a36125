//! The Anthropic-compatible routes: `POST /v1/messages` and `POST /v1/messages/count_tokens`.

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
use crate::{AppState, encode, tenancy};
use freeway_gateway::CacheStatus;

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

/// `POST /v1/messages/count_tokens`: the input tokens of a Messages request on the model it
/// names, counted locally with the target's tokenizer (no upstream call, so it works for any
/// provider behind the route). `max_tokens` may be left out, as Anthropic allows here.
pub async fn count_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match count(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.anthropic(),
    }
}

async fn count(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers).await?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: MessagesRequest = parse_json(&bytes)?;
    drop(bytes);
    let model = wire.model.clone();
    caller.require_model(&model)?;
    let request = wire.for_counting().into_chat()?;
    let input_tokens = crate::openai::count_input(&state, &model, request)
        .await?
        .input_tokens;
    Ok(json_response(
        serde_json::json!({ "input_tokens": input_tokens }),
        HeaderMap::new(),
    ))
}

async fn handle(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers).await?;
    let mut options = request_options(&headers)?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: MessagesRequest = parse_json(&bytes)?;
    let model = wire.model.clone();
    let stream = wire.stream;
    let request = wire.into_chat()?;
    let gate = tenancy::gate(&state, &caller, "messages", &model, bytes, &mut options).await?;
    let id = freeway_types::random_id("msg_");

    if !stream {
        let served = match state
            .gateway
            .complete_with(&gate.model, request, &options)
            .await
        {
            Ok(served) => served,
            Err(e) => return Err(gate.fail(e.into())),
        };
        let body = response::message(&id, &model, &served.value);
        let mut headers = served_headers(&served);
        headers.extend(gate.headers);
        if let Some(mut meter) = gate.meter {
            meter.served_by(&served.target, served.cache == Some(CacheStatus::Hit));
            let out = tenancy::output_bytes(&served.value);
            meter.finish(200, Some(served.value.usage), out);
        }
        return Ok(json_response(body, headers));
    }
    let served = match state
        .gateway
        .stream_with(&gate.model, request, &options)
        .await
    {
        Ok(served) => served,
        Err(e) => return Err(gate.fail(e.into())),
    };
    let mut headers = served_headers(&served);
    headers.extend(gate.headers);
    let events = match gate.meter {
        Some(mut meter) => {
            meter.served_by(&served.target, served.cache == Some(CacheStatus::Hit));
            Box::pin(tenancy::Metered::new(served.value, meter))
        }
        None => served.value,
    };
    Ok(sse_response(
        encode::frames(events, EventEncoder::new(id, model)),
        state.keep_alive,
        headers,
    ))
}
