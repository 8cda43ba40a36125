//! A turn's tool calls: each admitted (known tool, valid arguments, the approval mode) and
//! run, consecutive read-only calls in parallel, each under its `execute_tool` span, with
//! `tool.started`, `tool.output` and `tool.finished` events and the result cut to what a model
//! should read.

use std::sync::Arc;
use std::time::Instant;

use freeway_types::ToolCall;
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing::field::Empty;

use super::TurnRun;
use crate::approval::{ApprovalRequest, Decision, needs_approval};
use crate::event::Event;
use crate::tool::{Tool, ToolContext, ToolKind};

/// A tool result is cut to this many characters before the model reads it.
const RESULT_CHARS: usize = 50_000;

/// One tool call's outcome.
pub(super) struct CallResult {
    pub(super) call: ToolCall,
    pub(super) output: String,
    pub(super) is_error: bool,
    pub(super) duration_ms: u64,
}

/// A call after [`TurnRun::admit`]: ready to run, or already answered.
enum Admitted<'c> {
    Run {
        call: &'c ToolCall,
        tool: Arc<dyn Tool>,
        arguments: Value,
        started: Instant,
    },
    Done(CallResult),
}

impl TurnRun<'_> {
    /// Runs the calls in order; consecutive read-only calls run in parallel.
    pub(super) async fn run_calls(&self, calls: &[ToolCall]) -> Vec<CallResult> {
        let mut results = Vec::with_capacity(calls.len());
        let mut i = 0;
        while i < calls.len() {
            let mut j = i;
            while j < calls.len() && self.kind_of(&calls[j]) == Some(ToolKind::Read) {
                j += 1;
            }
            // A batch is admitted in order (approvals are asked one at a time and
            // every `tool.started` precedes any `tool.finished`), then run at once.
            let end = j.max(i + 1);
            let mut admitted = Vec::with_capacity(end - i);
            for call in &calls[i..end] {
                admitted.push(self.admit(call).await);
            }
            let batch = admitted.into_iter().map(|a| async move {
                match a {
                    Admitted::Run {
                        call,
                        tool,
                        arguments,
                        started,
                    } => self.execute(call, tool, arguments, started).await,
                    Admitted::Done(r) => r,
                }
            });
            results.extend(futures_util::future::join_all(batch).await);
            i = end;
        }
        results
    }

    fn kind_of(&self, call: &ToolCall) -> Option<ToolKind> {
        self.tools.get(&call.name).map(|t| t.kind())
    }

    /// Parses the arguments, finds the tool and asks for approval; emits
    /// `tool.started` for a call that will run, `tool.finished` for one that will not.
    async fn admit<'c>(&self, call: &'c ToolCall) -> Admitted<'c> {
        let started = Instant::now();
        let done = |output: String, is_error: bool| CallResult {
            call: call.clone(),
            output,
            is_error,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let arguments: Value = if call.arguments.trim().is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            match serde_json::from_str(&call.arguments) {
                Ok(v) => v,
                Err(e) => {
                    let r = done(
                        format!(
                            "the arguments are not valid JSON ({e}); send a JSON object matching the tool's schema"
                        ),
                        true,
                    );
                    self.finished(&r, "error");
                    return Admitted::Done(r);
                }
            }
        };
        let Some(tool) = self.tools.get(&call.name) else {
            let r = done(
                format!(
                    "there is no tool `{}`; available tools: {}",
                    call.name,
                    self.tools.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                true,
            );
            self.finished(&r, "error");
            return Admitted::Done(r);
        };
        if needs_approval(self.spec.approval, tool.kind()) {
            self.emit(Event::ApprovalRequested {
                call_id: call.id.clone(),
                name: call.name.clone(),
                arguments: arguments.clone(),
            });
            let request = ApprovalRequest {
                session_id: self.session.id.clone(),
                call_id: call.id.clone(),
                name: call.name.clone(),
                arguments: arguments.clone(),
            };
            let decision = tokio::select! {
                d = self.turn.approver.decide(&request) => d,
                () = self.turn.cancel.cancelled() => Decision::Deny { reason: Some("the turn was aborted".to_owned()) },
            };
            if let Decision::Deny { reason } = decision {
                let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
                let r = done(
                    format!(
                        "the user did not approve this call{why}. Do not retry it unchanged; ask the user or try another way."
                    ),
                    true,
                );
                self.finished(&r, "denied");
                return Admitted::Done(r);
            }
        }
        self.emit(Event::ToolStarted {
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: arguments.clone(),
        });
        Admitted::Run {
            call,
            tool: tool.clone(),
            arguments,
            started,
        }
    }

    /// Runs an admitted call, forwarding its output as `tool.output` events.
    async fn execute(
        &self,
        call: &ToolCall,
        tool: Arc<dyn Tool>,
        arguments: Value,
        started: Instant,
    ) -> CallResult {
        let (tx, mut rx) = mpsc::channel(64);
        let ctx = ToolContext {
            workspace: self.workspace.clone(),
            sandbox: self.runtime.sandbox.clone(),
            isolation: self.spec.isolation,
            output: Some(tx),
            cancel: self.turn.cancel.child_token(),
        };
        let forward = async {
            while let Some(chunk) = rx.recv().await {
                self.emit(Event::ToolOutput {
                    call_id: call.id.clone(),
                    stream: chunk.stream.to_owned(),
                    text: chunk.text,
                });
            }
        };
        let call_future = async move {
            let result = tool.call(&ctx, arguments).await;
            drop(ctx);
            result
        };
        let span = tracing::info_span!(target: freeway_telemetry::TARGET, "tool",
            otel.name = %format!("execute_tool {}", call.name),
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %call.name,
            gen_ai.tool.call.id = %call.id,
            "error.type" = Empty,
        );
        let (result, ()) = async { tokio::join!(call_future, forward) }
            .instrument(span.clone())
            .await;
        if result.is_err() {
            span.record("error.type", "tool_error");
        }
        let redactor = self.runtime.sandbox.redactor();
        let (output, is_error) = match result {
            Ok(text) => (redactor.redact(&text), false),
            Err(e) => (redactor.redact(&e.0), true),
        };
        let r = CallResult {
            call: call.clone(),
            output: cap(output),
            is_error,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.finished(&r, if is_error { "error" } else { "ok" });
        r
    }

    /// `tool.finished`, and the call counted by `outcome` (ok, error, denied).
    fn finished(&self, r: &CallResult, outcome: &'static str) {
        // Tool names label the counter only when the tool exists: a model may call anything.
        let tool = if self.tools.contains_key(&r.call.name) {
            r.call.name.as_str()
        } else {
            "unknown"
        };
        self.runtime.metrics.tool_runs.with(&[tool, outcome]).inc();
        self.emit(Event::ToolFinished {
            call_id: r.call.id.clone(),
            name: r.call.name.clone(),
            is_error: r.is_error,
            output: r.output.clone(),
            duration_ms: r.duration_ms,
        });
    }
}

fn cap(text: String) -> String {
    if text.len() <= RESULT_CHARS {
        return text;
    }
    let mut end = RESULT_CHARS;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… output cut: {} of {} bytes shown; narrow the request (a line range, a pattern) to see the rest]",
        &text[..end],
        end,
        text.len()
    )
}
