//! The OpenAI Responses API: `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}`,
//! and `GET /v1/responses/{id}/input_items`.
//!
//! A request becomes one chat request to the gateway, so every provider protocol serves it.
//! With `store` (the default) and a store configured, the response object and the turns it
//! ends are kept, tenant-scoped, for reading back and for `previous_response_id`, which puts
//! the stored turns before the new input. Without a store nothing is kept, the response says
//! `store: false`, and `previous_response_id` is refused.

mod items;
mod pending;
mod request;
mod response;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use freeway_gateway::CacheStatus;
use freeway_store::{NewResponse, Store, StoreError, StoredResponse};
use freeway_types::{FinishReason, Message, ToolCall};
use futures_util::StreamExt;
use serde_json::{Value, json};

pub use pending::Pending;
use request::CreateRequest;
use response::{Envelope, Status};

use crate::error::{ApiError, Category};
use crate::http::{
    authorize, json_response, parse_json, read_body, request_options, served_headers, sse_response,
    unix_now,
};
use crate::tenancy::Caller;
use crate::{AppState, encode, tenancy};

pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.openai(),
    }
}

async fn handle(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = authorize(&state, &headers).await?;
    let mut options = request_options(&headers)?;
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: CreateRequest = parse_json(&bytes)?;
    let store = state.tenancy.as_ref().map(|t| &t.store);
    let input_items = match store {
        Some(_) if wire.stores() => items::normalize(wire.input()),
        _ => Vec::new(),
    };
    let mut prepared = wire.prepare()?;
    let earlier = match &prepared.previous_response_id {
        Some(id) => previous(&state, store, &caller, id).await?,
        None => Vec::new(),
    };
    let request = prepared.chat(earlier.clone());
    let id = freeway_types::random_id("resp_");
    let persist = match store {
        Some(store) if prepared.store => {
            let mut conversation = earlier;
            conversation.append(&mut prepared.input);
            Some(Arc::new(Persist {
                store: store.clone(),
                pending: state
                    .tenancy
                    .as_ref()
                    .map(|t| t.responses.clone())
                    .unwrap_or_default(),
                team_id: caller.principal().map(|p| p.team.id.clone()),
                key_id: caller.principal().map(|p| p.key.id.clone()),
                id: id.clone(),
                model: prepared.model.clone(),
                previous_id: prepared.previous_response_id.clone(),
                conversation,
                input_items,
            }))
        }
        _ => None,
    };
    let mut echo = std::mem::take(&mut prepared.echo);
    echo.insert("store".into(), persist.is_some().into());
    let envelope = Envelope {
        id,
        created_at: unix_now(),
        model: prepared.model.clone(),
        echo,
        tool_names: std::mem::take(&mut prepared.tool_names),
    };
    let gate = tenancy::gate(
        &state,
        &caller,
        "responses",
        &prepared.model,
        bytes,
        &mut options,
    )
    .await?;

    if !prepared.stream {
        let served = match state
            .gateway
            .complete_with(&gate.model, request, &options)
            .await
        {
            Ok(served) => served,
            Err(e) => return Err(gate.fail(e.into())),
        };
        let r = &served.value;
        let reason =
            FinishReason::given_tool_calls(Some(r.finish_reason), !r.tool_calls.is_empty());
        let status = Status::of(reason);
        let mut body = envelope.object(
            &status,
            response::output(r, &status, &envelope.tool_names),
            Some(&r.usage),
            Some(unix_now()),
        );
        if let Some(persist) = &persist
            && !persist.save(&body, r.text(), r.tool_calls.clone())
        {
            body["store"] = false.into();
        }
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
    let slot = stream::Slot::default();
    let frames = encode::frames(events, stream::EventEncoder::new(envelope, slot.clone()));
    // Saved before the last frame goes out, so a client that reads it back right after
    // `response.completed` finds it.
    let frames = frames.map(move |frame| {
        let finished = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let (Some(f), Some(persist)) = (finished, &persist) {
            persist.save(&f.body, f.text, f.tool_calls);
        }
        frame
    });
    Ok(sse_response(frames, state.keep_alive, headers))
}

/// Where and under whom one response is stored, and the turns before its answer.
struct Persist {
    store: Store,
    pending: Arc<Pending>,
    team_id: Option<String>,
    key_id: Option<String>,
    id: String,
    model: String,
    previous_id: Option<String>,
    conversation: Vec<Message>,
    input_items: Vec<Value>,
}

impl Persist {
    /// Stores the response and the conversation it ends, in the background; false when they
    /// could not be encoded (logged: the answer itself is still good).
    fn save(&self, body: &Value, text: String, tool_calls: Vec<ToolCall>) -> bool {
        let mut conversation = self.conversation.clone();
        conversation.extend(response::assistant_turn(text, tool_calls));
        let (body, conversation, input_items) = match (
            serde_json::to_string(body),
            serde_json::to_string(&conversation),
            serde_json::to_string(&self.input_items),
        ) {
            (Ok(b), Ok(c), Ok(i)) => (b, c, i),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::error!(error = %e, id = %self.id, "could not encode a response to store");
                return false;
            }
        };
        let new = NewResponse {
            id: self.id.clone(),
            team_id: self.team_id.clone(),
            key_id: self.key_id.clone(),
            model: self.model.clone(),
            previous_id: self.previous_id.clone(),
            body,
            conversation,
            input_items,
        };
        self.pending.save(self.store.clone(), new);
        true
    }
}

/// The stored turns `previous_response_id` continues.
async fn previous(
    state: &AppState,
    store: Option<&Store>,
    caller: &Caller,
    id: &str,
) -> Result<Vec<Message>, ApiError> {
    let Some(store) = store else {
        return Err(ApiError::invalid(
            "previous_response_id",
            "responses are not stored on this server (it runs without a store), so there is \
             nothing to continue; send the whole conversation as `input`",
        )
        .with_code("previous_response_not_found"));
    };
    match find(state, store, caller, id).await {
        Ok(stored) => serde_json::from_str(&stored.conversation).map_err(|e| {
            ApiError::internal(format!("the stored response `{id}` could not be read: {e}"))
        }),
        Err(StoreError::NotFound { .. }) => Err(ApiError::invalid(
            "previous_response_id",
            format!("Previous response with id '{id}' not found."),
        )
        .with_code("previous_response_not_found")),
        Err(e) => Err(crate::admin::store_error(e)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Category::NotFound,
        format!("Response with id '{id}' not found."),
    )
    .with_code("not_found")
}

/// A stored response: still being written, or in the store.
async fn find(
    state: &AppState,
    store: &Store,
    caller: &Caller,
    id: &str,
) -> Result<Arc<StoredResponse>, StoreError> {
    if let Some(found) = state
        .tenancy
        .as_ref()
        .and_then(|t| t.responses.get(caller.read_scope(), id))
    {
        return Ok(found);
    }
    store.response(caller.read_scope(), id).await.map(Arc::new)
}

/// The stored response `id` for `GET` and `input_items`, or the API error saying why not.
async fn lookup(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Arc<StoredResponse>, ApiError> {
    let store = stored(state, id)?;
    match find(state, store, caller, id).await {
        Ok(r) => Ok(r),
        Err(StoreError::NotFound { .. }) => Err(not_found(id)),
        Err(e) => Err(crate::admin::store_error(e)),
    }
}

fn stored<'a>(state: &'a AppState, id: &str) -> Result<&'a Store, ApiError> {
    match &state.tenancy {
        Some(t) => Ok(&t.store),
        None => Err(not_found(id).with_message(format!(
            "Response with id '{id}' not found: responses are not stored on this server (it \
             runs without a store)."
        ))),
    }
}

/// `GET /v1/responses/{id}`: a stored response, if the caller's team made it.
pub async fn retrieve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let found = async {
        let caller = authorize(&state, &headers).await?;
        let found = lookup(&state, &caller, &id).await?;
        serde_json::from_str::<Value>(&found.body).map_err(|e| {
            ApiError::internal(format!("the stored response `{id}` could not be read: {e}"))
        })
    };
    match found.await {
        Ok(body) => json_response(body, HeaderMap::new()),
        Err(e) => e.openai(),
    }
}

/// `GET /v1/responses/{id}/input_items`: the input items of a stored response, a page at a
/// time (`limit`, `order`, `after`, `before`).
pub async fn input_items(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let listed = async {
        let caller = authorize(&state, &headers).await?;
        let page = items::Page::from_query(&query)?;
        let found = lookup(&state, &caller, &id).await?;
        let items: Vec<Value> = serde_json::from_str(&found.input_items).map_err(|e| {
            ApiError::internal(format!(
                "the input items of the stored response `{id}` could not be read: {e}"
            ))
        })?;
        page.list(items)
    };
    match listed.await {
        Ok(list) => json_response(list, HeaderMap::new()),
        Err(e) => e.openai(),
    }
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let deleted = async {
        let caller = authorize(&state, &headers).await?;
        if let Some(p) = caller.principal()
            && !p.key.role.can_call_models()
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Category::PermissionDenied,
                format!(
                    "this key's role is `{}`, which may read responses but not delete them",
                    p.key.role.as_str()
                ),
            )
            .with_code("permission_denied"));
        }
        let store = stored(&state, &id)?;
        if let Some(t) = &state.tenancy {
            t.responses.written(&id).await;
        }
        match store.delete_response(caller.read_scope(), &id).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound { .. }) => Err(not_found(&id)),
            Err(e) => Err(crate::admin::store_error(e)),
        }
    };
    match deleted.await {
        Ok(()) => json_response(
            json!({ "id": id, "object": "response.deleted", "deleted": true }),
            HeaderMap::new(),
        ),
        Err(e) => e.openai(),
    }
}
