//! What the agent loop adds per step, model time excluded: an in-process model that answers
//! at once calls `read_file` on one step and answers on the next, so one turn is two steps —
//! building the request from the session's context, streaming the answer, running the tool,
//! appending the messages to the SQLite session, and the events.
//!
//! `cargo bench -p freeway-bench --bench agent`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmarks")]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use freeway_agent::{
    AgentSpec, ModelClient, ModelError, ModelStream, Owner, Runtime, SessionOptions, Turn,
};
use freeway_gateway::pricing::PriceTable;
use freeway_sandbox::{OnMissing, Sandbox, SandboxConfig};
use freeway_store::{Scope, Store};
use freeway_types::{ChatRequest, FinishReason, Message, StreamEvent, Usage};

/// Calls `read_file` when the last message is the user's, answers after a tool result.
struct InstantModel(AtomicUsize);

#[async_trait::async_trait]
impl ModelClient for InstantModel {
    async fn stream(&self, _: &str, request: ChatRequest) -> Result<ModelStream, ModelError> {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let events: Vec<StreamEvent> = match request.messages.last() {
            Some(Message::User { .. }) => vec![
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: format!("call_{n}"),
                    name: "read_file".into(),
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    arguments: r#"{"path": "lib.rs"}"#.into(),
                },
                StreamEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    stop_sequence: None,
                },
            ],
            _ => vec![
                StreamEvent::TextDelta {
                    text: "The file defines add.".into(),
                },
                StreamEvent::Finish {
                    reason: FinishReason::Stop,
                    stop_sequence: None,
                },
            ],
        };
        let mut events: Vec<_> = events.into_iter().map(Ok).collect();
        events.push(Ok(StreamEvent::Usage {
            usage: Usage {
                input_tokens: 500,
                output_tokens: 20,
                ..Usage::default()
            },
        }));
        Ok(ModelStream {
            stream: Box::pin(futures_util::stream::iter(events)),
            target: "bench/instant".into(),
        })
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("freeway-bench-agent-{}", std::process::id()));
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("lib.rs"),
        "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n".repeat(20),
    )
    .unwrap();
    let runtime = rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}/bench.db", dir.display()))
            .await
            .unwrap();
        let sandbox = Sandbox::new(SandboxConfig {
            workspace: work.clone(),
            on_missing: OnMissing::Degrade,
            ..SandboxConfig::default()
        })
        .unwrap();
        let mut runtime = Runtime::new(
            Arc::new(InstantModel(AtomicUsize::new(0))),
            store,
            Arc::new(sandbox),
            Arc::new(PriceTable::builtin().unwrap()),
        );
        runtime
            .add_agent(AgentSpec::coder("bench/instant"))
            .unwrap();
        runtime
    });
    let options = SessionOptions {
        agent: "coder".into(),
        model: None,
        working_directory: work.clone(),
        title: None,
    };
    // Each iteration is the first turn of a new session (created outside the timing), so the
    // context stays the same size from one iteration to the next.
    c.bench_function("agent/turn of two steps (read_file, answer)", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let runtime = &runtime;
            let options = &options;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let session = runtime
                        .create_session(&Owner::default(), options)
                        .await
                        .unwrap();
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let started = std::time::Instant::now();
                    let outcome = runtime
                        .run(Scope::All, &session.id, Turn::new("what is in lib.rs?", tx))
                        .await
                        .unwrap();
                    total += started.elapsed();
                    drop(rx);
                    black_box(outcome);
                }
                total
            }
        });
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(name = agent; config = Criterion::default().sample_size(30); targets = benches);
criterion_main!(agent);
