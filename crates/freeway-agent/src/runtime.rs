//! The loop: call the model with the session's context and the allowed tools, run the calls it
//! asks for (consecutive read-only calls in parallel), append the results, and repeat until a
//! final answer, the step limit, the spend limit or an abort. Every message is appended to the
//! session in the store as it happens, so a turn interrupted by a restart resumes from there.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use freeway_gateway::pricing::PriceTable;
use freeway_gateway::tokens;
use freeway_sandbox::Sandbox;
use freeway_store::{NewSession, Scope, Session, SessionChange, SessionUsage, Store, StoreError};
use freeway_types::{
    ChatRequest, ContentPart, FinishReason, Message, Metrics, StreamAccumulator, StreamEvent,
    ToolDefinition, Usage,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use crate::approval::Approver;
use crate::compaction;
use crate::event::{Event, StopReason};
use crate::mcp::{McpServer, McpStatus};
use crate::model::ModelClient;
use crate::record::{CompactionRecord, Context, MessageRecord, Record, TurnRecord};
use crate::spec::AgentSpec;
use crate::tool::Tool;
use crate::workspace::Workspace;

mod calls;
mod claim;

pub use claim::Claim;
use claim::LocalClaim;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no agent named `{0}`; configure it under [[agents]] or use one of: {1}")]
    UnknownAgent(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("session {0} is already running a turn; wait for it or abort it")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AgentError {
    pub fn status_code(&self) -> u16 {
        match self {
            AgentError::UnknownAgent(..) => 404,
            AgentError::Invalid(_) => 400,
            AgentError::Busy(_) => 409,
            AgentError::Store(StoreError::NotFound { .. }) => 404,
            AgentError::Store(StoreError::Busy { .. }) => 409,
            AgentError::Store(StoreError::Invalid(_)) => 400,
            AgentError::Store(_) => 500,
        }
    }
}

/// Who a new session belongs to.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub team_id: Option<String>,
    pub key_id: Option<String>,
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub agent: String,
    /// Overrides the agent's model.
    pub model: Option<String>,
    pub working_directory: std::path::PathBuf,
    pub title: Option<String>,
}

/// One user message and how to run the turn it starts.
pub struct Turn {
    pub input: String,
    pub events: mpsc::UnboundedSender<Event>,
    pub cancel: CancellationToken,
    pub approver: Arc<dyn Approver>,
    /// Restricts the agent's tools to these (the OpenAI extension's `tools`).
    pub tools: Option<Vec<String>>,
    /// Reaches the model for this turn instead of the runtime's client (the server wraps the
    /// caller's limits and metering around it).
    pub model: Option<Arc<dyn ModelClient>>,
}

impl Turn {
    /// A turn with no listener, no tool restriction and every call denied approval.
    pub fn new(input: impl Into<String>, events: mpsc::UnboundedSender<Event>) -> Self {
        Turn {
            input: input.into(),
            events,
            cancel: CancellationToken::new(),
            approver: Arc::new(crate::approval::DenyAll(
                "no one is there to approve it".to_owned(),
            )),
            tools: None,
            model: None,
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    pub reason: StopReason,
    pub answer: Option<String>,
    pub steps: u32,
    pub usage: Usage,
    pub cost_nanos: i64,
}

/// The agents, their tools and what they run on. Cheap to share behind an `Arc`.
pub struct Runtime {
    model: Arc<dyn ModelClient>,
    store: Store,
    sandbox: Arc<Sandbox>,
    prices: Arc<PriceTable>,
    tools: BTreeMap<String, Arc<dyn Tool>>,
    agents: BTreeMap<String, AgentSpec>,
    /// `[[mcp_servers]]`, connected or not.
    mcp: Vec<McpStatus>,
    /// Sessions with a turn in this process; the store's lease covers other processes.
    running: Arc<Mutex<HashSet<String>>>,
    metrics: Arc<Metrics>,
}

impl Runtime {
    /// A runtime with the built-in tools and no agents.
    pub fn new(
        model: Arc<dyn ModelClient>,
        store: Store,
        sandbox: Arc<Sandbox>,
        prices: Arc<PriceTable>,
    ) -> Self {
        let mut runtime = Runtime {
            model,
            store,
            sandbox,
            prices,
            tools: BTreeMap::new(),
            agents: BTreeMap::new(),
            mcp: Vec::new(),
            running: Arc::default(),
            metrics: Arc::default(),
        };
        for tool in crate::tools::builtin() {
            runtime.tools.insert(tool.definition().name, tool);
        }
        runtime
    }

    /// Counts steps and tool runs in `metrics` (the server's), not in a registry of its own.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = metrics;
    }

    /// Adds a tool; a name already taken (a built-in, say) is refused.
    pub fn add_tool(&mut self, tool: Arc<dyn Tool>) -> Result<(), AgentError> {
        let name = tool.definition().name;
        if self.tools.contains_key(&name) {
            return Err(AgentError::Invalid(format!(
                "a tool named `{name}` already exists"
            )));
        }
        self.tools.insert(name, tool);
        Ok(())
    }

    /// Adds the tools of a connected MCP server, or records why it could not be connected.
    pub fn add_mcp_server(
        &mut self,
        server: Result<Arc<McpServer>, McpStatus>,
    ) -> Result<(), AgentError> {
        match server {
            Ok(server) => {
                for tool in server.tools() {
                    self.add_tool(tool)?;
                }
                self.mcp.push(server.status());
            }
            Err(status) => self.mcp.push(status),
        }
        Ok(())
    }

    /// The configured MCP servers, for `GET /v1/tools`.
    pub fn mcp_servers(&self) -> &[McpStatus] {
        &self.mcp
    }

    /// Adds an agent; its tools must all be known. It gets the tools of each of its MCP
    /// servers that is connected; one that is not is logged and leaves its tools out.
    pub fn add_agent(&mut self, mut spec: AgentSpec) -> Result<(), AgentError> {
        for name in &spec.mcp_servers {
            let Some(status) = self.mcp.iter().find(|m| &m.name == name) else {
                return Err(AgentError::Invalid(format!(
                    "agent `{}` names MCP server `{name}`, which is not configured",
                    spec.name
                )));
            };
            if let Some(error) = &status.error {
                tracing::warn!(
                    agent = spec.name,
                    server = name,
                    error,
                    "MCP server unavailable: the agent runs without its tools"
                );
            }
            for tool in &status.tools {
                if !spec.tools.contains(tool) {
                    spec.tools.push(tool.clone());
                }
            }
        }
        if let Some(unknown) = spec.tools.iter().find(|t| !self.tools.contains_key(*t)) {
            return Err(AgentError::Invalid(format!(
                "agent `{}` names tool `{unknown}`, which does not exist; known tools: {}",
                spec.name,
                self.tool_names().join(", ")
            )));
        }
        self.agents.insert(spec.name.clone(), spec);
        Ok(())
    }

    pub fn agent(&self, name: &str) -> Result<&AgentSpec, AgentError> {
        self.agents.get(name).ok_or_else(|| {
            AgentError::UnknownAgent(
                name.to_owned(),
                self.agents.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentSpec> {
        self.agents.values()
    }

    /// Every tool, for `GET /v1/tools`.
    pub fn tools(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.values()
    }

    fn tool_names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    pub async fn create_session(
        &self,
        owner: &Owner,
        options: &SessionOptions,
    ) -> Result<Session, AgentError> {
        let spec = self.agent(&options.agent)?;
        let workspace = open_workspace(&options.working_directory)?;
        let session = self
            .store
            .create_session(&NewSession {
                team_id: owner.team_id.clone(),
                key_id: owner.key_id.clone(),
                agent: spec.name.clone(),
                model: options.model.clone().unwrap_or_else(|| spec.model.clone()),
                working_directory: workspace.root().display().to_string(),
                title: options.title.clone(),
            })
            .await?;
        Ok(session)
    }

    /// Runs one turn of `session_id` to its end. Events go to `turn.events` as they happen;
    /// errors of the model or of tools are events too, and end the turn with a reason rather
    /// than an `Err` (which is kept for a session that cannot run at all).
    pub async fn run(
        &self,
        scope: Scope<'_>,
        session_id: &str,
        turn: Turn,
    ) -> Result<TurnOutcome, AgentError> {
        let claim = self.claim(scope, session_id).await?;
        self.run_claimed(scope, claim, turn).await
    }

    /// Holds `session_id` for a turn: `Busy` if a turn of it runs here or, by its lease, on
    /// any instance sharing the store.
    pub async fn claim(&self, scope: Scope<'_>, session_id: &str) -> Result<Claim, AgentError> {
        let local = LocalClaim::take(&self.running, session_id)?;
        Claim::take(local, &self.store, scope).await
    }

    /// [`Runtime::run`] for a session already claimed; the claim is given back at the end.
    pub async fn run_claimed(
        &self,
        scope: Scope<'_>,
        mut claim: Claim,
        turn: Turn,
    ) -> Result<TurnOutcome, AgentError> {
        let session_id = claim.session_id().to_owned();
        let session_id = session_id.as_str();
        let span = tracing::info_span!(target: freeway_telemetry::TARGET, "turn",
            otel.name = "invoke_agent",
            gen_ai.operation.name = "invoke_agent",
            gen_ai.agent.name = Empty,
            gen_ai.conversation.id = session_id,
            freeway.steps = Empty,
            freeway.stop_reason = Empty,
            "error.type" = Empty,
        );
        let outcome = self
            .run_turn(scope, &mut claim, turn, &span)
            .instrument(span.clone())
            .await;
        claim.release().await;
        match &outcome {
            Ok(o) => {
                span.record("freeway.steps", o.steps);
                span.record("freeway.stop_reason", o.reason.as_str());
                if o.reason == StopReason::Error {
                    span.record("error.type", "model_error");
                }
            }
            Err(e) => {
                span.record("error.type", e.status_code().to_string());
            }
        }
        outcome
    }

    async fn run_turn(
        &self,
        scope: Scope<'_>,
        claim: &mut Claim,
        turn: Turn,
        span: &tracing::Span,
    ) -> Result<TurnOutcome, AgentError> {
        let session_id = claim.session_id().to_owned();
        let session_id = session_id.as_str();
        let session = self.store.session(scope, session_id).await?;
        let spec = self.agent(&session.agent)?.clone();
        if !span.is_disabled() {
            span.record("otel.name", format!("invoke_agent {}", spec.name));
            span.record("gen_ai.agent.name", spec.name.as_str());
        }
        let workspace = open_workspace(Path::new(&session.working_directory))?;
        let tools = self.allowed_tools(&spec, turn.tools.as_deref())?;
        if turn.input.trim().is_empty() {
            return Err(AgentError::Invalid("the message is empty".to_owned()));
        }
        if session.title.is_none() {
            let title = SessionChange {
                title: Some(title_of(&turn.input)),
                ..SessionChange::default()
            };
            self.store.update_session(scope, session_id, &title).await?;
        }
        let mut run = TurnRun {
            runtime: self,
            scope,
            session: &session,
            spec: &spec,
            tools,
            workspace,
            turn: &turn,
            steps: 0,
            usage: Usage::default(),
            cost_nanos: 0,
        };
        let outcome = {
            let go = run.go();
            tokio::pin!(go);
            tokio::select! {
                outcome = &mut go => outcome,
                () = claim.keep() => {
                    let _ = turn.events.send(Event::Error {
                        kind: "lease_lost".to_owned(),
                        message: format!(
                            "session {session_id} could not renew its lease and may run elsewhere now; this turn stops"
                        ),
                    });
                    turn.cancel.cancel();
                    go.await
                }
            }
        };
        let (reason, answer) = match outcome {
            Ok(done) => done,
            Err(e) => {
                run.emit(Event::Error {
                    kind: "store".to_owned(),
                    message: e.to_string(),
                });
                (StopReason::Error, None)
            }
        };
        let outcome = TurnOutcome {
            reason,
            answer,
            steps: run.steps,
            usage: run.usage,
            cost_nanos: run.cost_nanos,
        };
        // The end of the turn is recorded even when the turn failed on the store: try anyway.
        let record = Record::Turn(TurnRecord {
            reason,
            steps: outcome.steps,
            usage: outcome.usage,
            cost_nanos: outcome.cost_nanos,
        });
        let saved = self
            .store
            .append_items(scope, session_id, &[record.to_item()])
            .await;
        let updated = self
            .store
            .update_session(
                scope,
                session_id,
                &SessionChange {
                    add: SessionUsage {
                        steps: i64::from(outcome.steps),
                        input_tokens: outcome.usage.input_tokens as i64,
                        output_tokens: outcome.usage.output_tokens as i64,
                        cost_nanos: outcome.cost_nanos,
                    },
                    ..SessionChange::default()
                },
            )
            .await;
        if let Err(e) = saved.map(drop).and(updated.map(drop)) {
            tracing::warn!(session = session_id, error = %e, "could not record the end of a turn");
        }
        claim.release().await;
        let _ = turn.events.send(Event::SessionIdle {
            session_id: session_id.to_owned(),
            reason,
            answer: outcome.answer.clone(),
            steps: outcome.steps,
            usage: outcome.usage,
            cost_usd: outcome.cost_nanos as f64 / 1e9,
        });
        Ok(outcome)
    }

    /// Whether `only` (a turn's tool restriction) names tools of agent `agent` alone; the
    /// check [`Runtime::run`] makes, for callers that want to refuse before starting.
    pub fn check_tools(&self, agent: &str, only: Option<&[String]>) -> Result<(), AgentError> {
        let spec = self.agent(agent)?;
        self.allowed_tools(spec, only).map(drop)
    }

    fn allowed_tools(
        &self,
        spec: &AgentSpec,
        only: Option<&[String]>,
    ) -> Result<BTreeMap<String, Arc<dyn Tool>>, AgentError> {
        if let Some(only) = only
            && let Some(bad) = only.iter().find(|t| !spec.tools.contains(t))
        {
            return Err(AgentError::Invalid(format!(
                "tool `{bad}` is not one of agent `{}`'s tools: {}",
                spec.name,
                spec.tools.join(", ")
            )));
        }
        Ok(spec
            .tools
            .iter()
            .filter(|t| only.is_none_or(|o| o.contains(t)))
            .filter_map(|t| self.tools.get(t).map(|tool| (t.clone(), tool.clone())))
            .collect())
    }
}

fn open_workspace(dir: &Path) -> Result<Workspace, AgentError> {
    Workspace::new(dir).map_err(|e| {
        AgentError::Invalid(format!(
            "working directory {} cannot be used: {e}",
            dir.display()
        ))
    })
}

/// A session's title from its first message: the first line, shortened.
fn title_of(input: &str) -> String {
    let line = input.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut title: String = line.trim().chars().take(80).collect();
    if line.trim().chars().count() > 80 {
        title.push('…');
    }
    title
}

/// The state of one turn while it runs.
struct TurnRun<'a> {
    runtime: &'a Runtime,
    scope: Scope<'a>,
    session: &'a Session,
    spec: &'a AgentSpec,
    tools: BTreeMap<String, Arc<dyn Tool>>,
    workspace: Workspace,
    turn: &'a Turn,
    steps: u32,
    usage: Usage,
    cost_nanos: i64,
}

impl TurnRun<'_> {
    fn model(&self) -> &dyn ModelClient {
        self.turn
            .model
            .as_deref()
            .unwrap_or(self.runtime.model.as_ref())
    }

    fn emit(&self, event: Event) {
        // Nobody listening is not an error: the turn is recorded in the store anyway.
        let _ = self.turn.events.send(event);
    }

    async fn append(&self, records: &[Record]) -> Result<Vec<i64>, StoreError> {
        let items: Vec<_> = records.iter().map(Record::to_item).collect();
        self.runtime
            .store
            .append_items(self.scope, &self.session.id, &items)
            .await
    }

    async fn go(&mut self) -> Result<(StopReason, Option<String>), StoreError> {
        let mut context = Context::load(&self.runtime.store, self.scope, &self.session.id).await?;
        // A turn cut short by a restart may have left calls unanswered: answer them, or no
        // provider accepts the history.
        let mut records: Vec<MessageRecord> = context
            .dangling_calls()
            .into_iter()
            .map(|(id, _)| {
                MessageRecord::plain(Message::Tool {
                    tool_call_id: id,
                    content: vec![ContentPart::text(
                        "this call did not run: the session was interrupted before it finished",
                    )],
                    is_error: true,
                })
            })
            .collect();
        records.push(MessageRecord::plain(Message::user(&self.turn.input)));
        self.append_messages(&mut context, records).await?;
        self.emit(Event::SessionStarted {
            session_id: self.session.id.clone(),
            agent: self.spec.name.clone(),
            model: self.session.model.clone(),
            working_directory: self.session.working_directory.clone(),
        });
        let definitions: Vec<ToolDefinition> =
            self.tools.values().map(|t| t.definition()).collect();
        loop {
            if self.turn.cancel.is_cancelled() {
                return Ok((StopReason::Aborted, None));
            }
            if self.steps >= self.spec.max_steps {
                self.emit(Event::Error {
                    kind: "max_steps".to_owned(),
                    message: format!(
                        "agent `{}` reached its limit of {} steps; send another message to go on",
                        self.spec.name, self.spec.max_steps
                    ),
                });
                return Ok((StopReason::MaxSteps, None));
            }
            if let Some(limit) = self.spec.max_spend_usd {
                let spent = (self.session.usage.cost_nanos + self.cost_nanos) as f64 / 1e9;
                if spent >= limit {
                    self.emit(Event::Error {
                        kind: "budget_exceeded".to_owned(),
                        message: format!(
                            "the session has cost ${spent:.4}, reaching agent `{}`'s limit of ${limit}",
                            self.spec.name
                        ),
                    });
                    return Ok((StopReason::Budget, None));
                }
            }
            self.compact_if_needed(&mut context, &definitions).await?;
            let request = self.request(&context, &definitions);
            let step = self.steps + 1;
            let started = Instant::now();
            let answer = match self.call_model(request).await {
                Ok(Some(answer)) => answer,
                Ok(None) => return Ok((StopReason::Aborted, None)),
                Err(e) => {
                    self.emit(Event::Error {
                        kind: e.kind,
                        message: e.message,
                    });
                    return Ok((StopReason::Error, None));
                }
            };
            self.steps = step;
            self.runtime
                .metrics
                .agent_steps
                .with(&[&self.spec.name])
                .inc();
            let (response, target) = answer;
            let cost = self
                .runtime
                .prices
                .cost_of(&target, &response.usage)
                .map_or(0, |c| c.nanos);
            add_usage(&mut self.usage, &response.usage);
            self.cost_nanos += cost;
            let text = response.text();
            let message = Message::Assistant {
                content: response.content.clone(),
                tool_calls: response.tool_calls.clone(),
            };
            // The usage rides on the record, where the context picks up the provider's count.
            self.append_messages(
                &mut context,
                vec![MessageRecord {
                    message,
                    target: Some(target.clone()),
                    usage: Some(response.usage),
                    cost_nanos: Some(cost),
                    tool: None,
                    duration_ms: Some(started.elapsed().as_millis() as u64),
                }],
            )
            .await?;
            self.emit(Event::MessageCompleted {
                step,
                text: text.clone(),
                tool_calls: response.tool_calls.clone(),
                finish_reason: response.finish_reason,
                model: target,
                usage: response.usage,
                cost_usd: cost as f64 / 1e9,
            });
            if response.tool_calls.is_empty() {
                return Ok((StopReason::Completed, Some(text)));
            }
            let results = self.run_calls(&response.tool_calls).await;
            let records = results
                .iter()
                .map(|r| MessageRecord {
                    message: Message::Tool {
                        tool_call_id: r.call.id.clone(),
                        content: vec![ContentPart::text(&r.output)],
                        is_error: r.is_error,
                    },
                    target: None,
                    usage: None,
                    cost_nanos: None,
                    tool: Some(r.call.name.clone()),
                    duration_ms: Some(r.duration_ms),
                })
                .collect();
            self.append_messages(&mut context, records).await?;
        }
    }

    /// Appends messages to the session and to the model's context, each with the sequence
    /// number the store gave it.
    async fn append_messages(
        &self,
        context: &mut Context,
        records: Vec<MessageRecord>,
    ) -> Result<(), StoreError> {
        let records: Vec<Record> = records.into_iter().map(Record::Message).collect();
        let seqs = self.append(&records).await?;
        for (seq, record) in seqs.into_iter().zip(records) {
            if let Record::Message(m) = record {
                context.push(seq, m.message, m.usage.as_ref());
            }
        }
        Ok(())
    }

    fn system_prompt(&self, context: &Context) -> String {
        let mut prompt = self.spec.system_prompt.clone();
        prompt.push_str(&format!(
            "\n\nThe working directory is {}. Paths are relative to it; you cannot leave it.",
            self.workspace.root().display()
        ));
        if let Some(summary) = &context.summary {
            prompt.push_str("\n\nSummary of the session so far (older messages were compacted):\n");
            prompt.push_str(summary);
        }
        prompt
    }

    fn request(&self, context: &Context, tools: &[ToolDefinition]) -> ChatRequest {
        let mut messages = Vec::with_capacity(context.messages.len() + 1);
        messages.push(Message::system(self.system_prompt(context)));
        messages.extend(context.messages.iter().map(|(_, m)| m.clone()));
        ChatRequest {
            messages,
            tools: tools.to_vec(),
            ..ChatRequest::default()
        }
    }

    /// Streams one answer, forwarding its text. `Ok(None)`: aborted.
    async fn call_model(
        &self,
        request: ChatRequest,
    ) -> Result<Option<(freeway_types::ChatResponse, String)>, crate::model::ModelError> {
        let model = &self.session.model;
        let started = tokio::select! {
            s = self.model().stream(model, request) => s?,
            () = self.turn.cancel.cancelled() => return Ok(None),
        };
        let mut stream = started.stream;
        let mut acc = StreamAccumulator::new();
        loop {
            let next = tokio::select! {
                n = stream.next() => n,
                () = self.turn.cancel.cancelled() => return Ok(None),
            };
            match next {
                None => break,
                Some(Ok(event)) => {
                    if let StreamEvent::TextDelta { text } = &event {
                        self.emit(Event::MessageDelta { text: text.clone() });
                    }
                    acc.push(event);
                }
                Some(Err(e)) => {
                    return Err(crate::model::ModelError {
                        kind: e.metric_label().to_owned(),
                        message: e.to_string(),
                    });
                }
            }
        }
        let mut response = acc.finish(String::new(), started.target.clone());
        response.finish_reason = FinishReason::given_tool_calls(
            Some(response.finish_reason),
            !response.tool_calls.is_empty(),
        );
        Ok(Some((response, started.target)))
    }

    async fn compact_if_needed(
        &self,
        context: &mut Context,
        tools: &[ToolDefinition],
    ) -> Result<(), StoreError> {
        let window = u64::from(self.spec.context_window);
        let model = &self.session.model;
        let per_message = |m: &Message| {
            let request = ChatRequest {
                messages: vec![m.clone()],
                ..ChatRequest::default()
            };
            tokens::estimate_request(model, &request).0
        };
        // The provider's count of the last request plus an estimate of what came after it:
        // counting the whole context again each step would cost more the longer it grows.
        let before = match context.measured {
            Some(m) if m.messages <= context.messages.len() => {
                let added: u64 = context.messages[m.messages..]
                    .iter()
                    .map(|(_, message)| per_message(message))
                    .sum();
                m.input_tokens + added
            }
            _ => tokens::estimate_request(model, &self.request(context, tools)).0,
        };
        if (before as f64) < window as f64 * compaction::TRIGGER {
            return Ok(());
        }
        let keep = (window as f64 * compaction::KEEP) as u64;
        let Some(cut) = compaction::cut_point(&context.messages, per_message, keep) else {
            return Ok(());
        };
        let summary = match compaction::summarize(self.model(), model, context, cut).await {
            Ok(s) => s,
            Err(e) => {
                // Nothing is dropped: the turn goes on with the full context.
                self.emit(Event::Error {
                    kind: "compaction_failed".to_owned(),
                    message: format!("could not compact the session: {e}"),
                });
                return Ok(());
            }
        };
        let upto_seq = context.messages[cut - 1].0;
        let mut after = Context {
            summary: Some(summary.clone()),
            messages: context.messages[cut..].to_vec(),
            measured: None,
        };
        let (tokens_after, _) = tokens::estimate_request(model, &self.request(&after, tools));
        let record = CompactionRecord {
            summary,
            upto_seq,
            replaced: cut,
            kept: after.messages.len(),
            tokens_before: before,
            tokens_after,
        };
        self.append(&[Record::Compaction(record.clone())]).await?;
        self.emit(Event::Compaction {
            replaced: record.replaced,
            kept: record.kept,
            tokens_before: before,
            tokens_after,
        });
        std::mem::swap(context, &mut after);
        Ok(())
    }
}

fn add_usage(total: &mut Usage, step: &Usage) {
    total.input_tokens += step.input_tokens;
    total.output_tokens += step.output_tokens;
    total.cache_read_tokens += step.cache_read_tokens;
    total.cache_write_tokens += step.cache_write_tokens;
}
