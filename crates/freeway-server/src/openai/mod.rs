//! The OpenAI-compatible routes: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.

mod embeddings;
mod estimate;
mod request;
mod response;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use embeddings::embeddings;
pub(crate) use estimate::count_input;
pub use estimate::estimate;
use request::ChatCompletionRequest;
pub(crate) use request::{function_tool, image, json_schema, tool_choice_mode};
pub(crate) use response::{ChunkEncoder, completion};

use crate::error::ApiError;
use crate::http::{
    authorize, json_response, parse_json, read_body, request_options, served_headers, sse_response,
    unix_now,
};
use crate::{AppState, encode, tenancy};
use freeway_gateway::CacheStatus;

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
    let caller = authorize(&state, &headers).await?;
    let mut options = request_options(&headers)?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    if crate::sessions::names_agent(&bytes)
        && let Some(response) =
            crate::sessions::agent_chat(state.clone(), caller.clone(), &bytes).await?
    {
        return Ok(response);
    }
    let wire: ChatCompletionRequest = parse_json(&bytes)?;
    let model = wire.model.clone();
    let stream = wire.stream;
    let include_usage = wire.include_usage();
    let request = wire.into_chat()?;
    let gate = tenancy::gate(&state, &caller, "chat", &model, bytes, &mut options).await?;
    let id = freeway_types::random_id("chatcmpl-");
    let created = unix_now();

    if !stream {
        let served = match state
            .gateway
            .complete_with(&gate.model, request, &options)
            .await
        {
            Ok(served) => served,
            Err(e) => return Err(gate.fail(e.into())),
        };
        let body = response::completion(&id, created, &model, &served.value);
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
    let encoder = ChunkEncoder::new(&id, created, &model, include_usage);
    Ok(sse_response(
        encode::frames(events, encoder),
        state.keep_alive,
        headers,
    ))
}

/// `GET /v1/models`: every model id and route alias this server answers to.
pub async fn list_models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let caller = match authorize(&state, &headers).await {
        Ok(c) => c,
        Err(e) => return e.openai(),
    };
    let created = state.started;
    let data: Vec<_> = state
        .gateway
        .list_models()
        .await
        .into_iter()
        // A key sees the models its allow lists admit.
        .filter(|m| caller.principal().is_none_or(|p| p.may_use_model(&m.id)))
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
    match authorize(&state, &headers).await {
        Ok(caller) if caller.principal().is_some_and(|p| !p.may_use_model(&model)) => {
            return ApiError::from(freeway_gateway::GatewayError::ModelNotFound {
                model: model.clone(),
                message: format!("The model `{model}` does not exist or this key may not use it."),
            })
            .openai();
        }
        Ok(_) => {}
        Err(e) => return e.openai(),
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
