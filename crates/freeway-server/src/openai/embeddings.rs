//! `POST /v1/embeddings`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use freeway_types::{EmbeddingInput, EmbeddingRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::http::{authorize, json_response, parse_json, read_body, served_headers};
use crate::{AppState, tenancy};

#[derive(Deserialize)]
struct WireRequest {
    model: String,
    input: Value,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default)]
    user: Option<String>,
}

pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match embed(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.openai(),
    }
}

fn input(value: Value) -> Result<EmbeddingInput, ApiError> {
    let bad = || {
        ApiError::invalid(
            "input",
            "must be a string, an array of strings, or token arrays",
        )
    };
    match value {
        Value::String(s) => Ok(EmbeddingInput::Text(vec![s])),
        Value::Array(items) if items.is_empty() => {
            Err(ApiError::invalid("input", "must not be empty"))
        }
        Value::Array(items) => match &items[0] {
            Value::String(_) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(bad()),
                })
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Text),
            Value::Number(_) => {
                tokens(&Value::Array(items)).map(|t| EmbeddingInput::Tokens(vec![t]))
            }
            Value::Array(_) => items
                .iter()
                .map(tokens)
                .collect::<Result<_, _>>()
                .map(EmbeddingInput::Tokens),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn tokens(value: &Value) -> Result<Vec<u32>, ApiError> {
    value
        .as_array()
        .and_then(|a| {
            a.iter()
                .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
                .collect()
        })
        .ok_or_else(|| ApiError::invalid("input", "token arrays must hold non-negative integers"))
}

async fn embed(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers).await?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: WireRequest = parse_json(&bytes)?;
    let base64 = match wire.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("unknown value `{other}`; expected float or base64"),
            ));
        }
    };
    let request = EmbeddingRequest {
        model: wire.model.clone(),
        input: input(wire.input)?,
        dimensions: wire.dimensions,
        user: wire.user,
    };
    let mut options = freeway_gateway::RequestOptions::default();
    let gate = tenancy::gate(
        &state,
        &caller,
        "embeddings",
        &wire.model,
        bytes,
        &mut options,
    )
    .await?;
    let served = match state.gateway.embed(&gate.model, request).await {
        Ok(served) => served,
        Err(e) => return Err(gate.fail(e.into())),
    };
    let extra = gate.headers;
    if let Some(mut meter) = gate.meter {
        meter.served_by(&served.target, false);
        meter.finish(200, Some(served.value.usage), 0);
    }
    let data: Vec<Value> = served
        .value
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                // The OpenAI clients' default: little-endian f32s, base64-encoded.
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let usage = served.value.usage;
    let body = json!({
        "object": "list",
        "data": data,
        "model": wire.model,
        "usage": { "prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens },
    });
    let mut headers = served_headers(&served);
    headers.extend(extra);
    Ok(json_response(body, headers))
}
