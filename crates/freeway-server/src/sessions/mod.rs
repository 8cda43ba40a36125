//! Agents over HTTP: `/v1/sessions` (create, list, show, delete, fork), a turn per
//! `POST /v1/sessions/{id}/messages` streamed as SSE of agent events, `abort`, approvals,
//! re-attaching to a running turn (`GET /v1/sessions/{id}/events`), `GET /v1/tools`,
//! `GET /v1/agents`, and the OpenAI extension (`model: "agent:<name>"` on
//! `/v1/chat/completions`).
//!
//! A turn runs in its own task: a client that goes away does not stop it (abort does), and
//! another client can re-attach. Every event of the running turn is kept in memory until it
//! ends, so a re-attaching client sees the turn from its start; the session itself is in the
//! store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use freeway_agent::{
    AgentError, Decision, Event, ModelClient, ModelError, ModelStream, Owner, Pending, Record,
    Runtime, SessionOptions, StopReason, Turn,
};
use freeway_gateway::{CacheMode, RequestOptions};
use freeway_store::{Scope, Session, SessionItem, SessionQuery, SessionStatus};
use freeway_types::{ChatRequest, Usage};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::AppState;

mod chat;

use crate::admin::{created, respond, store_error};
use crate::error::{ApiError, Category};
use crate::http::{authorize, json_response, parse_json, read_body, sse_response};
use crate::tenancy::{self, Caller};
pub use chat::{agent_chat, names_agent};

/// How long a call waits for an approval before it is denied.
const APPROVAL_TIMEOUT: Duration = Duration::from_secs(600);

/// The agent runtime as the server runs it: turns in flight and calls waiting for approval.
pub struct Agents {
    pub runtime: Arc<Runtime>,
    pub approvals: Arc<Pending>,
    /// Sessions made over HTTP work inside this directory (the sandbox's workspace).
    pub root: PathBuf,
    live: Mutex<HashMap<String, Arc<Live>>>,
}

/// A turn in flight: its events so far and the channel of those to come.
struct Live {
    cancel: CancellationToken,
    /// Every event of the turn so far; pushed under this lock together with the broadcast,
    /// so a subscriber gets each event exactly once.
    history: Mutex<Vec<Event>>,
    tx: broadcast::Sender<Event>,
}

impl Agents {
    pub fn new(runtime: Arc<Runtime>, root: PathBuf) -> Self {
        Agents {
            runtime,
            approvals: Arc::new(Pending::new(APPROVAL_TIMEOUT)),
            root,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self, id: &str) -> Option<Arc<Live>> {
        self.live.lock().ok().and_then(|l| l.get(id).cloned())
    }

    /// Whether a turn of `session` runs, here or (by its lease) on another instance.
    fn is_running(&self, session: &Session) -> bool {
        session.status == SessionStatus::Running || self.live(&session.id).is_some()
    }

    /// Starts a turn in its own task and returns its live state, or 409 if one runs here or
    /// on another instance.
    async fn start(
        self: &Arc<Self>,
        state: &Arc<AppState>,
        caller: &Caller,
        session: &Session,
        input: String,
        tools: Option<Vec<String>>,
    ) -> Result<Arc<Live>, ApiError> {
        let agent = self.runtime.agent(&session.agent).map_err(agent_error)?;
        let tools = caller.allowed_tools(tools, &agent.tools)?;
        let live = Arc::new(Live {
            cancel: CancellationToken::new(),
            history: Mutex::new(Vec::new()),
            tx: broadcast::channel(1024).0,
        });
        // A turn that has said `session.idle` is over even if its task has not yet left the
        // table: a client may send the next message the moment it reads that event.
        if self.live(&session.id).is_some_and(|l| !l.ended()) {
            return Err(agent_error(AgentError::Busy(session.id.clone())));
        }
        let claim = self
            .runtime
            .claim(session_scope(session.team_id.as_deref()), &session.id)
            .await
            .map_err(agent_error)?;
        {
            let mut map = self
                .live
                .lock()
                .map_err(|_| ApiError::internal("the session table is poisoned"))?;
            if map.get(&session.id).is_some_and(|l| !l.ended()) {
                return Err(agent_error(AgentError::Busy(session.id.clone())));
            }
            map.insert(session.id.clone(), live.clone());
        }
        let (events, mut rx) = mpsc::unbounded_channel();
        let turn = Turn {
            input,
            events,
            cancel: live.cancel.clone(),
            approver: self.approvals.clone(),
            tools,
            model: Some(Arc::new(TenantModel {
                state: state.clone(),
                caller: caller.clone(),
            })),
        };
        let team = session.team_id.clone();
        let id = session.id.clone();
        let agents = self.clone();
        let pump_live = live.clone();
        tokio::spawn(
            async move {
                let pump = async {
                    while let Some(event) = rx.recv().await {
                        pump_live.publish(event);
                    }
                };
                let scope = session_scope(team.as_deref());
                let run = agents.runtime.run_claimed(scope, claim, turn);
                let (outcome, ()) = tokio::join!(run, pump);
                if let Err(e) = outcome {
                    // The turn could not start (the session vanished, its agent was removed):
                    // tell whoever listens, then end the stream as a turn would.
                    let events = [
                        Event::Error {
                            kind: "session".to_owned(),
                            message: e.to_string(),
                        },
                        Event::SessionIdle {
                            session_id: id.clone(),
                            reason: StopReason::Error,
                            answer: None,
                            steps: 0,
                            usage: Usage::default(),
                            cost_usd: 0.0,
                        },
                    ];
                    for event in events {
                        pump_live.publish(event);
                    }
                }
                // Only this turn's entry: the next turn may already have replaced it.
                if let Ok(mut map) = agents.live.lock()
                    && map.get(&id).is_some_and(|l| Arc::ptr_eq(l, &pump_live))
                {
                    map.remove(&id);
                }
            }
            // The turn outlives the request, but belongs to its trace.
            .instrument(tracing::Span::current()),
        );
        Ok(live)
    }
}

/// The scope a session's own turn runs in: its team, or every team for a team-less session.
fn session_scope(team_id: Option<&str>) -> Scope<'_> {
    team_id.map_or(Scope::All, Scope::Team)
}

impl Live {
    /// Whether the turn has said `session.idle`.
    fn ended(&self) -> bool {
        self.history
            .lock()
            .map(|h| h.iter().any(|e| matches!(e, Event::SessionIdle { .. })))
            .unwrap_or(false)
    }

    /// Keeps `event` for late subscribers and sends it to the current ones.
    fn publish(&self, event: Event) {
        if let Ok(mut history) = self.history.lock() {
            history.push(event.clone());
            let _ = self.tx.send(event);
        }
    }

    /// The events of this turn from its start, then live until `session.idle`.
    fn subscribe(&self) -> impl Stream<Item = Event> + Send + 'static {
        let (past, rx) = match self.history.lock() {
            Ok(history) => (history.clone(), self.tx.subscribe()),
            Err(_) => (Vec::new(), self.tx.subscribe()),
        };
        let ended = past.iter().any(|e| matches!(e, Event::SessionIdle { .. }));
        let live = futures_util::stream::unfold((rx, ended), |(mut rx, ended)| async move {
            if ended {
                return None;
            }
            match rx.recv().await {
                Ok(event) => {
                    let end = matches!(event, Event::SessionIdle { .. });
                    Some((event, (rx, end)))
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let warning = Event::Error {
                        kind: "lagged".to_owned(),
                        message: format!("{n} events were skipped: this client reads too slowly"),
                    };
                    Some((warning, (rx, false)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        futures_util::StreamExt::chain(futures_util::stream::iter(past), live)
    }
}

/// The model as a caller reaches it: the key's allow list, rate limits and budget apply to
/// every step, and each step is metered to the key and team like any request.
struct TenantModel {
    state: Arc<AppState>,
    caller: Caller,
}

#[async_trait::async_trait]
impl ModelClient for TenantModel {
    async fn stream(&self, model: &str, request: ChatRequest) -> Result<ModelStream, ModelError> {
        let mut options = RequestOptions {
            cache: CacheMode::Bypass,
            ..RequestOptions::default()
        };
        let body = Bytes::from(serde_json::to_vec(&request.messages).unwrap_or_default());
        let gate = tenancy::gate(
            &self.state,
            &self.caller,
            "agent",
            model,
            body,
            &mut options,
        )
        .await
        .map_err(model_error)?;
        match self
            .state
            .gateway
            .stream_with(&gate.model, request, &options)
            .await
        {
            Ok(served) => {
                let stream = match gate.meter {
                    Some(mut meter) => {
                        meter.served_by(&served.target, false);
                        Box::pin(tenancy::Metered::new(served.value, meter)) as _
                    }
                    None => served.value,
                };
                Ok(ModelStream {
                    stream,
                    target: served.target,
                })
            }
            Err(e) => Err(model_error(gate.fail(e.into()))),
        }
    }
}

fn model_error(e: ApiError) -> ModelError {
    ModelError {
        kind: e.kind.or(e.code).unwrap_or("model_error").to_owned(),
        message: e.message,
    }
}

fn agent_error(e: AgentError) -> ApiError {
    match e {
        AgentError::Store(e) => store_error(e),
        AgentError::Busy(_) => ApiError::new(
            StatusCode::CONFLICT,
            Category::InvalidRequest,
            e.to_string(),
        )
        .with_code("session_busy"),
        AgentError::UnknownAgent(..) => {
            ApiError::new(StatusCode::NOT_FOUND, Category::NotFound, e.to_string())
                .with_code("agent_not_found")
        }
        AgentError::Invalid(message) => ApiError::invalid("", message),
    }
}

fn agents(state: &AppState) -> Result<&Arc<Agents>, ApiError> {
    state.agents.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            Category::NotImplemented,
            "agents are not available on this server: it runs without a store or a sandbox",
        )
        .with_code("agents_unavailable")
    })
}

/// A working directory asked for over HTTP: relative to the root, and never outside it.
fn working_directory(root: &Path, asked: Option<&str>) -> Result<PathBuf, ApiError> {
    let root = std::fs::canonicalize(root).map_err(|e| {
        ApiError::internal(format!(
            "the agents' root {} is unusable: {e}",
            root.display()
        ))
    })?;
    let Some(asked) = asked.filter(|a| !a.is_empty()) else {
        return Ok(root);
    };
    let joined = root.join(asked);
    let dir = std::fs::canonicalize(&joined).map_err(|_| {
        ApiError::invalid(
            "working_directory",
            format!("{asked} does not exist under {}", root.display()),
        )
    })?;
    if !dir.starts_with(&root) || !dir.is_dir() {
        return Err(ApiError::invalid(
            "working_directory",
            format!(
                "{asked} is not a directory inside {}, where this server's agents work",
                root.display()
            ),
        ));
    }
    Ok(dir)
}

fn session_json(session: &Session, running: bool) -> Value {
    let mut v = serde_json::to_value(session).unwrap_or_else(|_| json!({}));
    if let Value::Object(o) = &mut v {
        o.insert("object".into(), json!("session"));
        o.insert("running".into(), json!(running));
        o.insert(
            "cost_usd".into(),
            json!(session.usage.cost_nanos as f64 / 1e9),
        );
    }
    v
}

fn item_json(item: &SessionItem) -> Value {
    let data = match Record::from_item(item) {
        Some(Record::Message(m)) => serde_json::to_value(m).ok(),
        Some(Record::Compaction(c)) => serde_json::to_value(c).ok(),
        Some(Record::Turn(t)) => serde_json::to_value(t).ok(),
        None => serde_json::from_str(&item.data).ok(),
    };
    json!({ "seq": item.seq, "kind": item.kind, "created_ms": item.created_ms, "data": data })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    working_directory: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// The session `id` if the caller's team may see it (404 otherwise, as for a missing one).
async fn session_in_scope(agents: &Agents, caller: &Caller, id: &str) -> Result<Session, ApiError> {
    agents
        .runtime
        .store()
        .session(caller.read_scope(), id)
        .await
        .map_err(store_error)
}

fn owner(caller: &Caller) -> Owner {
    match caller.principal() {
        Some(p) => Owner {
            team_id: Some(p.team.id.clone()),
            key_id: Some(p.key.id.clone()),
        },
        None => Owner::default(),
    }
}

async fn create(
    state: &Arc<AppState>,
    caller: &Caller,
    body: CreateBody,
) -> Result<Session, ApiError> {
    caller.require_tools()?;
    let agents = agents(state)?;
    let name = body.agent.unwrap_or_else(|| "coder".to_owned());
    let spec = agents.runtime.agent(&name).map_err(agent_error)?;
    let model = body.model.unwrap_or_else(|| spec.model.clone());
    caller.require_model(&model)?;
    let dir = working_directory(&agents.root, body.working_directory.as_deref())?;
    agents
        .runtime
        .create_session(
            &owner(caller),
            &SessionOptions {
                agent: name,
                model: Some(model),
                working_directory: dir,
                title: body.title,
            },
        )
        .await
        .map_err(agent_error)
}

/// `POST /v1/sessions`
pub async fn create_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let body: CreateBody = if bytes.iter().all(u8::is_ascii_whitespace) {
                parse_json(b"{}")?
            } else {
                parse_json(&bytes)?
            };
            let session = create(&state, &caller, body).await?;
            Ok(created(session_json(&session, false)))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<i64>,
    agent: Option<String>,
}

/// `GET /v1/sessions`
pub async fn list_sessions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let agents = agents(&state)?;
            let sessions = agents
                .runtime
                .store()
                .list_sessions(
                    caller.read_scope(),
                    &SessionQuery {
                        limit: q.limit,
                        agent: q.agent,
                    },
                )
                .await
                .map_err(store_error)?;
            let data: Vec<Value> = sessions
                .iter()
                .map(|s| session_json(s, agents.is_running(s)))
                .collect();
            Ok(json_response(
                json!({ "object": "list", "data": data }),
                HeaderMap::new(),
            ))
        }
        .await,
    )
}

/// `GET /v1/sessions/{id}`: the session and every item it holds.
pub async fn get_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let agents = agents(&state)?;
            let store = agents.runtime.store();
            let scope = caller.read_scope();
            let session = store.session(scope, &id).await.map_err(store_error)?;
            let items = store
                .items(scope, &id, 0, None)
                .await
                .map_err(store_error)?;
            let mut body = session_json(&session, agents.is_running(&session));
            if let Value::Object(o) = &mut body {
                o.insert(
                    "items".into(),
                    Value::Array(items.iter().map(item_json).collect()),
                );
                o.insert(
                    "pending_approvals".into(),
                    json!(agents.approvals.waiting(&id)),
                );
            }
            Ok(json_response(body, HeaderMap::new()))
        }
        .await,
    )
}

/// `DELETE /v1/sessions/{id}`
pub async fn delete_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            caller.require_tools()?;
            let agents = agents(&state)?;
            let scope = caller.read_scope();
            // 404 for another team's session, 409 while a turn here or on another instance
            // holds its lease: the store tells the two apart.
            agents
                .runtime
                .store()
                .delete_session(scope, &id)
                .await
                .map_err(store_error)?;
            Ok(json_response(
                json!({ "id": id, "object": "session", "deleted": true }),
                HeaderMap::new(),
            ))
        }
        .await,
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    #[serde(default)]
    upto_seq: Option<i64>,
}

/// `POST /v1/sessions/{id}/fork`: a new session with this one's history (up to `upto_seq`).
pub async fn fork_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            caller.require_tools()?;
            let agents = agents(&state)?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let body: ForkBody = if bytes.iter().all(u8::is_ascii_whitespace) {
                ForkBody::default()
            } else {
                parse_json(&bytes)?
            };
            let fork = agents
                .runtime
                .store()
                .fork_session(caller.read_scope(), &id, body.upto_seq)
                .await
                .map_err(store_error)?;
            Ok(created(session_json(&fork, false)))
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    content: MessageContent,
    #[serde(default)]
    tools: Option<Vec<String>>,
    /// `false`: wait for the turn and answer with its outcome and events as JSON.
    #[serde(default = "yes")]
    stream: bool,
}

fn yes() -> bool {
    true
}

/// A message as text, or as OpenAI-style content parts of which the text is taken.
#[derive(Deserialize)]
#[serde(untagged)]
enum MessageContent {
    Text(String),
    Parts(Vec<Value>),
}

impl MessageContent {
    fn text(self) -> String {
        match self {
            MessageContent::Text(t) => t,
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// `POST /v1/sessions/{id}/messages`: starts a turn; SSE of its events (or JSON when
/// `stream` is false).
pub async fn post_message(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            caller.require_tools()?;
            let agents = agents(&state)?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let body: MessageBody = parse_json(&bytes)?;
            let input = body.content.text();
            if input.trim().is_empty() {
                return Err(ApiError::invalid("content", "the message is empty"));
            }
            let session = session_in_scope(agents, &caller, &id).await?;
            caller.require_model(&session.model)?;
            agents
                .runtime
                .check_tools(&session.agent, body.tools.as_deref())
                .map_err(agent_error)?;
            let live = agents
                .start(&state, &caller, &session, input, body.tools)
                .await?;
            let events = live.subscribe();
            if body.stream {
                return Ok(event_stream(events, state.keep_alive, &id));
            }
            let events: Vec<Event> = futures_util::StreamExt::collect(events).await;
            let outcome = events.iter().rev().find_map(|e| match e {
                Event::SessionIdle { .. } => serde_json::to_value(e).ok(),
                _ => None,
            });
            Ok(json_response(
                json!({ "session_id": id, "outcome": outcome, "events": events }),
                HeaderMap::new(),
            ))
        }
        .await,
    )
}

/// SSE of agent events: `event: <type>` and `data: <json>`, ending after `session.idle`.
fn event_stream(
    events: impl Stream<Item = Event> + Send + 'static,
    keep_alive: Duration,
    session_id: &str,
) -> Response {
    let frames = futures_util::StreamExt::map(events, |event| {
        let data = serde_json::to_string(&event).unwrap_or_default();
        Bytes::from(format!("event: {}\ndata: {data}\n\n", event.name()))
    });
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(session_id) {
        headers.insert(crate::http::names::X_FREEWAY_SESSION, v);
    }
    sse_response(frames, keep_alive, headers)
}

/// `GET /v1/sessions/{id}/events`: the running turn's events from its start, then live; for
/// an idle session, one `session.idle` event from its last turn.
pub async fn session_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let agents = agents(&state)?;
            let store = agents.runtime.store();
            let session = store
                .session(caller.read_scope(), &id)
                .await
                .map_err(store_error)?;
            if let Some(live) = agents.live(&id) {
                return Ok(event_stream(live.subscribe(), state.keep_alive, &id));
            }
            let from = (session.last_seq - 50).max(0);
            let items = store
                .items(caller.read_scope(), &id, from, None)
                .await
                .map_err(store_error)?;
            let last = items.iter().rev().find_map(|i| match Record::from_item(i) {
                Some(Record::Turn(t)) => Some(t),
                _ => None,
            });
            let answer = items.iter().rev().find_map(|i| match Record::from_item(i) {
                Some(Record::Message(m))
                    if matches!(m.message, freeway_types::Message::Assistant { .. }) =>
                {
                    Some(m.message.text())
                }
                _ => None,
            });
            let idle = Event::SessionIdle {
                session_id: id.clone(),
                reason: last.as_ref().map_or(StopReason::Completed, |t| t.reason),
                answer: answer.filter(|a| !a.is_empty()),
                steps: last.as_ref().map_or(0, |t| t.steps),
                usage: last.as_ref().map_or_else(Usage::default, |t| t.usage),
                cost_usd: last.as_ref().map_or(0.0, |t| t.cost_nanos as f64 / 1e9),
            };
            Ok(event_stream(
                futures_util::stream::iter([idle]),
                state.keep_alive,
                &id,
            ))
        }
        .await,
    )
}

/// `POST /v1/sessions/{id}/abort`: stops the running step; the turn ends `aborted`.
pub async fn abort_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            caller.require_tools()?;
            let agents = agents(&state)?;
            session_in_scope(agents, &caller, &id).await?;
            let aborted = match agents.live(&id) {
                Some(live) => {
                    live.cancel.cancel();
                    true
                }
                None => false,
            };
            Ok(json_response(
                json!({ "id": id, "aborted": aborted }),
                HeaderMap::new(),
            ))
        }
        .await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalBody {
    approve: bool,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /v1/sessions/{id}/approvals/{call_id}`: `{"approve": true}` lets a waiting call run.
pub async fn approve_call(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath((id, call_id)): UrlPath<(String, String)>,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            caller.require_tools()?;
            let agents = agents(&state)?;
            session_in_scope(agents, &caller, &id).await?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let body: ApprovalBody = parse_json(&bytes)?;
            let decision = if body.approve {
                Decision::Approve
            } else {
                Decision::Deny {
                    reason: body.reason,
                }
            };
            if !agents.approvals.resolve(&id, &call_id, decision) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    Category::NotFound,
                    format!("no call `{call_id}` of session {id} waits for approval"),
                )
                .with_code("not_found"));
            }
            Ok(json_response(
                json!({ "id": id, "call_id": call_id, "approved": body.approve }),
                HeaderMap::new(),
            ))
        }
        .await,
    )
}

/// `GET /v1/tools`: the tools agents can use, with their schemas.
pub async fn list_tools(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            authorize(&state, &headers).await?;
            let agents = agents(&state)?;
            let data: Vec<Value> = agents
                .runtime
                .tools()
                .map(|tool| {
                    let d = tool.definition();
                    json!({
                        "name": d.name,
                        "description": d.description,
                        "parameters": d.parameters,
                        "kind": tool.kind(),
                        "source": tool.source(),
                        "version": tool.version(),
                    })
                })
                .collect();
            // Configured MCP servers, connected or not (and why not).
            let mcp = agents.runtime.mcp_servers();
            Ok(json_response(
                json!({ "object": "list", "data": data, "mcp_servers": mcp }),
                HeaderMap::new(),
            ))
        }
        .await,
    )
}

/// `GET /v1/agents`: the configured agents.
pub async fn list_agents(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            authorize(&state, &headers).await?;
            let agents = agents(&state)?;
            let data: Vec<Value> = agents
                .runtime
                .agents()
                .map(|a| {
                    json!({
                        "name": a.name,
                        "model": a.model,
                        "tools": a.tools,
                        "mcp_servers": a.mcp_servers,
                        "sandbox": a.isolation.as_str(),
                        "approval": match a.approval {
                            freeway_config::Approval::Suggest => "suggest",
                            freeway_config::Approval::AutoEdit => "auto-edit",
                            freeway_config::Approval::FullAuto => "full-auto",
                        },
                        "max_steps": a.max_steps,
                        "max_spend_usd": a.max_spend_usd,
                    })
                })
                .collect();
            Ok(json_response(
                json!({ "object": "list", "data": data }),
                HeaderMap::new(),
            ))
        }
        .await,
    )
}
