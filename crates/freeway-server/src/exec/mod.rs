//! `POST /v1/exec` and `GET /v1/exec/languages`: run a command, a code snippet or a workspace
//! file in the sandbox and answer with everything it did, a deterministic diagnosis of a
//! failure and, when asked, a model's analysis of it.
//!
//! Model analysis runs when the request says `"analyze": true`, or when it says nothing and
//! `[sandbox] analyze_failures = true`; only ever for a failed run (non-zero exit, signal or
//! timeout). It is opt-in by default because it costs a model call (seconds, and money on a
//! remote provider) while the deterministic diagnosis is always there. When it was wanted but
//! no model answered properly, `analysis` is null and `analysis_error` says why.
//!
//! With `"stream": true` the answer is SSE: `output` events (`{"stream": "stdout"|"stderr",
//! "text"}`) while the process runs, then one `result` event with the full response body, or an
//! `error` event with the error envelope.

mod analysis;
mod request;
mod response;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use freeway_gateway::Gateway;
use freeway_sandbox::{
    ExecKind, ExecResult, OutputChunk, Sandbox, SandboxConfig, SandboxError, Stream,
};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing::field::Empty;

pub use analysis::{Analysis, AnalysisError, analyze, parse as parse_analysis, schema};
pub use request::{Validated, WireExecRequest};
pub use response::response_body;

use crate::AppState;
use crate::error::{ApiError, Category};
use crate::http::{authorize, parse_json, read_body, sse_response};

/// The longest timeout a request may ask for when nothing is configured.
pub const DEFAULT_MAX_TIMEOUT_MS: u64 = 10 * 60 * 1000;

/// What the exec routes run with.
pub struct ExecState {
    /// The sandbox, or why it could not be built (the routes then answer 503 with it).
    pub sandbox: Result<Arc<Sandbox>, String>,
    /// The largest `timeout_ms` a request may ask for.
    pub max_timeout_ms: u64,
    /// The model (id or route) that analyzes failures; `None`: no model analysis.
    pub analysis_model: Option<String>,
    /// Analyze failures when the request does not say.
    pub analyze_failures: bool,
    pub analysis_timeout: Duration,
}

impl ExecState {
    /// Exec routes that answer 503 with `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            sandbox: Err(reason.into()),
            max_timeout_ms: DEFAULT_MAX_TIMEOUT_MS,
            analysis_model: None,
            analyze_failures: false,
            analysis_timeout: Duration::from_secs(120),
        }
    }

    /// Builds the sandbox from `config`; a failure is kept as the reason to answer 503.
    pub fn build(config: SandboxConfig) -> Self {
        match Sandbox::new(config) {
            Ok(sandbox) => Self::with_sandbox(Arc::new(sandbox)),
            Err(e) => {
                tracing::warn!(error = %e, "the sandbox is unavailable; /v1/exec will answer 503");
                Self::unavailable(format!("the sandbox could not be set up: {e}"))
            }
        }
    }

    pub fn with_sandbox(sandbox: Arc<Sandbox>) -> Self {
        Self {
            sandbox: Ok(sandbox),
            ..Self::unavailable("")
        }
    }

    fn sandbox(&self) -> Result<&Arc<Sandbox>, ApiError> {
        self.sandbox.as_ref().map_err(|reason| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Category::Unavailable,
                reason.clone(),
            )
            .with_code("sandbox_unavailable")
        })
    }
}

/// A finished run and, when one was wanted, its model analysis.
#[derive(Debug)]
pub struct Outcome {
    pub result: ExecResult,
    /// `None`: not wanted (not asked for, or the run succeeded).
    pub analysis: Option<Result<Analysis, AnalysisError>>,
}

/// Runs a validated request, sending output chunks to `output` as they come, then analyzes a
/// failure if wanted. Shared by the HTTP route and `freeway exec`; `gateway` is `Err(reason)`
/// when there is none to ask (the reason then explains the missing analysis).
pub async fn execute(
    exec: &ExecState,
    sandbox: &Sandbox,
    gateway: Result<&Gateway, &str>,
    validated: Validated,
    output: Option<mpsc::Sender<OutputChunk>>,
) -> Result<Outcome, SandboxError> {
    let mut request = validated.request;
    let wanted = validated.analyze.unwrap_or(exec.analyze_failures);
    request.analyze = wanted;
    let span = tracing::info_span!(target: freeway_telemetry::TARGET, "exec",
        otel.name = %format!("exec {}", kind_name(&request.kind)),
        freeway.exec.kind = kind_name(&request.kind),
        freeway.exec.outcome = Empty,
        process.exit.code = Empty,
        "error.type" = Empty,
    );
    let result = sandbox
        .run_streaming(request.clone(), output)
        .instrument(span.clone())
        .await;
    let outcome = match &result {
        Ok(r) => run_outcome(r),
        Err(SandboxError::PolicyDenied { .. }) => "denied",
        Err(_) => "error",
    };
    if let Ok(gateway) = gateway {
        gateway.metrics().exec_runs.with(&[outcome]).inc();
    }
    span.record("freeway.exec.outcome", outcome);
    if let Ok(Some(code)) = result.as_ref().map(|r| r.exit_code) {
        span.record("process.exit.code", code);
    }
    if outcome != "ok" {
        span.record("error.type", outcome);
    }
    let result = result?;
    let analysis = if !wanted || result.success() {
        None
    } else {
        Some(match (gateway, exec.analysis_model.as_deref()) {
            (Err(reason), Some(model)) => Err(AnalysisError::Unavailable {
                model: model.to_owned(),
                reason: reason.to_owned(),
            }),
            (Err(_), None) => Err(AnalysisError::NoModel),
            (Ok(gateway), model) => {
                analyze(
                    gateway,
                    model,
                    exec.analysis_timeout,
                    &request,
                    &result,
                    sandbox.redactor(),
                )
                .await
            }
        })
    };
    if let Some(Err(e)) = &analysis {
        tracing::warn!(error = %e, code = e.code(), "exec analysis unavailable");
    }
    Ok(Outcome { result, analysis })
}

fn kind_name(kind: &ExecKind) -> &'static str {
    match kind {
        ExecKind::Command { .. } => "command",
        ExecKind::Code { .. } => "code",
        ExecKind::File { .. } => "file",
    }
}

/// How a run ended, for `freeway_exec_runs_total`.
fn run_outcome(r: &ExecResult) -> &'static str {
    if r.timed_out {
        "timeout"
    } else if r.limit_hit.is_some() {
        "limit"
    } else if r.success() {
        "ok"
    } else {
        "failed"
    }
}

/// The API error for a sandbox error; `kind` tells which field a bad request is about.
pub fn sandbox_error(e: SandboxError, kind: &ExecKind) -> ApiError {
    let status = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = e.metric_label();
    match e {
        SandboxError::PolicyDenied { rule, reason } => ApiError::new(
            status,
            Category::PermissionDenied,
            format!("denied by exec policy rule `{rule}`: {reason}"),
        )
        .with_code(code)
        .with_detail("rule", rule)
        .with_detail("reason", reason),
        SandboxError::Unavailable { mechanism, .. } => {
            ApiError::new(status, Category::Unavailable, e.to_string())
                .with_code("sandbox_unavailable")
                .with_detail("mechanism", mechanism)
        }
        SandboxError::InvalidRequest(_) | SandboxError::RuntimeMissing { .. } => {
            let param = match kind {
                ExecKind::Command { .. } => "command",
                ExecKind::Code { .. } => "language",
                ExecKind::File { .. } => "path",
            };
            let mut err = ApiError::invalid(param, &e).with_code(code);
            err.status = status;
            err
        }
        SandboxError::MissingWorkdir(_) => ApiError::invalid("cwd", &e).with_code(code),
        SandboxError::InvalidRule { .. }
        | SandboxError::Setup { .. }
        | SandboxError::Spawn { .. }
        | SandboxError::Wait(_) => {
            tracing::error!(error = %e, "exec failed on this machine");
            ApiError::new(status, Category::Internal, e.to_string()).with_code(code)
        }
    }
}

/// `POST /v1/exec`.
pub async fn exec(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match run(state, headers, body).await {
        Ok(r) => r,
        Err(e) => e.openai(),
    }
}

async fn run(state: Arc<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    authorize(&state, &headers).await?.require_tools()?;
    let sandbox = Arc::clone(state.exec.sandbox()?);
    let bytes = read_body(body, &headers, state.max_body_bytes).await?;
    let wire: WireExecRequest = parse_json(&bytes)?;
    drop(bytes);
    let validated = wire.validate(state.exec.max_timeout_ms)?;
    let kind = validated.request.kind.clone();
    if !validated.stream {
        let outcome = execute(&state.exec, &sandbox, Ok(&state.gateway), validated, None)
            .await
            .map_err(|e| sandbox_error(e, &kind))?;
        return Ok(axum::Json(response_body(&outcome)).into_response());
    }
    // Refuse a denied command with a real 403 before the stream starts.
    if let ExecKind::Command { command } = &kind {
        let decision = sandbox.check(command);
        if !decision.allowed {
            state.gateway.metrics().exec_runs.with(&["denied"]).inc();
            return Err(sandbox_error(
                SandboxError::PolicyDenied {
                    rule: decision.rule.unwrap_or_default(),
                    reason: decision.reason,
                },
                &kind,
            ));
        }
    }
    let (tx, rx) = mpsc::channel(64);
    let keep_alive = state.keep_alive;
    let run: Pin<Box<dyn Future<Output = Bytes> + Send>> = Box::pin(async move {
        match execute(
            &state.exec,
            &sandbox,
            Ok(&state.gateway),
            validated,
            Some(tx),
        )
        .await
        {
            Ok(outcome) => match serde_json::to_value(response_body(&outcome)) {
                Ok(body) => sse_frame("result", &body),
                Err(e) => sse_frame("error", &json!({ "error": { "message": e.to_string() } })),
            },
            Err(e) => {
                let err = sandbox_error(e, &kind);
                sse_frame("error", &error_json(&err))
            }
        }
    });
    Ok(sse_response(
        output_frames(rx, run),
        keep_alive,
        HeaderMap::new(),
    ))
}

/// Output chunks as they arrive, then the run's final frame. The run is polled here, not
/// spawned, so a client that goes away drops it (and the sandbox kills the process group).
fn output_frames(
    rx: mpsc::Receiver<OutputChunk>,
    run: Pin<Box<dyn Future<Output = Bytes> + Send>>,
) -> impl futures_util::Stream<Item = Bytes> + Send {
    struct St {
        rx: mpsc::Receiver<OutputChunk>,
        run: Option<Pin<Box<dyn Future<Output = Bytes> + Send>>>,
        last: Option<Bytes>,
    }
    let st = St {
        rx,
        run: Some(run),
        last: None,
    };
    futures_util::stream::unfold(Some(st), |st| async move {
        let mut st = st?;
        loop {
            let St { rx, run, last } = &mut st;
            match run {
                Some(fut) => {
                    tokio::select! {
                        biased;
                        chunk = rx.recv() => match chunk {
                            Some(chunk) => return Some((chunk_frame(&chunk), Some(st))),
                            // Every sender is gone: the run is finishing; wait for it below.
                            None => rx.close(),
                        },
                        frame = fut.as_mut() => {
                            *last = Some(frame);
                            *run = None;
                        }
                    }
                    if rx.is_closed()
                        && rx.is_empty()
                        && let Some(fut) = run.take()
                    {
                        return Some((fut.await, None));
                    }
                }
                // The run is over: drain what it sent, then its final frame.
                None => match rx.recv().await {
                    Some(chunk) => return Some((chunk_frame(&chunk), Some(st))),
                    None => return last.take().map(|frame| (frame, None)),
                },
            }
        }
    })
}

fn chunk_frame(chunk: &OutputChunk) -> Bytes {
    let stream = match chunk.stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    sse_frame("output", &json!({ "stream": stream, "text": chunk.text }))
}

fn sse_frame(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// The OpenAI error envelope of `err`, for an SSE `error` event.
fn error_json(err: &ApiError) -> serde_json::Value {
    let mut error = serde_json::Map::new();
    error.insert("message".into(), err.message.clone().into());
    error.insert("param".into(), err.param.clone().into());
    error.insert("code".into(), err.code.into());
    for (k, v) in err.details.iter().flat_map(|d| d.iter()) {
        error.entry(k.clone()).or_insert_with(|| v.clone());
    }
    json!({ "error": error })
}

/// `GET /v1/exec/languages`: every supported language and whether this host can run it.
pub async fn languages(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&state, &headers).await {
        return e.openai();
    }
    let data: Vec<_> = freeway_sandbox::languages()
        .into_iter()
        .map(|l| {
            json!({
                "language": l.language,
                "aliases": l.aliases,
                "available": l.available,
                "runtime": l.runtime,
                "compiled": l.compiled,
                "extensions": l.extensions,
            })
        })
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}
