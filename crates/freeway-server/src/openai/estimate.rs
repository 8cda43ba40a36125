//! `POST /v1/estimate`: tokens and cost of a chat request before running it.
//!
//! The body is a Chat Completions request. Input tokens are counted with the target's
//! tokenizer (tiktoken for OpenAI models, a fitted estimate otherwise); the output is bounded
//! by `max_tokens` (or `max_completion_tokens`) when given.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use freeway_gateway::pricing::PriceTable;
use freeway_gateway::tokens;
use freeway_types::{ChatRequest, Usage};
use serde_json::json;

use super::request::ChatCompletionRequest;
use crate::AppState;
use crate::error::ApiError;
use crate::http::{authorize, parse_json, read_body};

pub async fn estimate(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match run(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.openai(),
    }
}

/// A request's input tokens on the first target its model resolves to.
pub(crate) struct Counted {
    pub target: String,
    pub input_tokens: u64,
    pub tokenizer: tokens::Tokenizer,
}

/// Counts `request`'s input tokens with the tokenizer of the first target `model` resolves to
/// (the name itself when it names no route); shared by `/v1/estimate` and Anthropic's
/// `/v1/messages/count_tokens`.
pub(crate) async fn count_input(
    state: &AppState,
    model: &str,
    request: ChatRequest,
) -> Result<Counted, ApiError> {
    let targets = state.gateway.resolve(model).map_err(ApiError::from)?;
    let target = targets
        .first()
        .map(|t| t.id.clone())
        .unwrap_or_else(|| model.to_owned());
    // Tokenizing a long prompt is CPU work: keep it off the async threads.
    tokio::task::spawn_blocking(move || {
        let (input_tokens, tokenizer) = tokens::estimate_request(&target, &request);
        Counted {
            target,
            input_tokens,
            tokenizer,
        }
    })
    .await
    .map_err(|_| ApiError::internal("token counting failed"))
}

async fn run(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers).await?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: ChatCompletionRequest = parse_json(&bytes)?;
    drop(bytes);
    let model = wire.model.clone();
    caller.require_model(&model)?;
    let request = wire.into_chat()?;
    let max_output = request.max_tokens.map(u64::from);
    let Counted {
        target,
        input_tokens,
        tokenizer,
    } = count_input(&state, &model, request).await?;
    let builtin;
    let prices: &PriceTable = match &state.tenancy {
        Some(t) => &t.prices,
        None => {
            builtin = PriceTable::builtin().map_err(|e| ApiError::internal(e.to_string()))?;
            &builtin
        }
    };
    let price = prices.lookup(&target).copied();
    let cost = |input: u64, output: u64| {
        price.map(|p| {
            p.cost(&Usage {
                input_tokens: input,
                output_tokens: output,
                ..Usage::default()
            })
            .usd()
        })
    };
    let body = json!({
        "object": "estimate",
        "model": model,
        "target": target,
        "tokenizer": tokenizer.name(),
        "input_tokens": input_tokens,
        "max_output_tokens": max_output,
        "price_per_million": price.map(|p| json!({
            "input": p.input,
            "output": p.output,
            "cached_input": p.cached_input,
        })),
        "cost_usd": {
            "input": cost(input_tokens, 0),
            "max_output": max_output.and_then(|o| cost(0, o)),
            "max_total": max_output.and_then(|o| cost(input_tokens, o)),
        },
    });
    Ok(axum::Json(body).into_response())
}
