//! The gateway's per-request work, without HTTP: complexity classification, route planning
//! with fallback targets, answering from the response cache, what one request records
//! in the metrics, and what tracing a request costs (its spans built, attributed and
//! encoded as OTLP).
//!
//! `cargo bench -p freeway-bench --bench gateway`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmarks")]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use freeway_config::{CacheSettings, ClassifierConfig, RoutingSettings, Strategy, TierConfig};
use freeway_gateway::{Classifier, Gateway};
use freeway_types::{
    ChatRequest, ChatStream, FinishReason, Message, Provider, ProviderError, StreamEvent,
    ToolDefinition, Usage,
};

/// Answers at once, as an upstream on the same machine would at best.
struct Immediate(&'static str);

#[async_trait::async_trait]
impl Provider for Immediate {
    fn name(&self) -> &str {
        self.0
    }

    async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ProviderError> {
        Ok(Box::pin(futures_util::stream::iter([
            Ok(StreamEvent::TextDelta {
                text: "Hello, benchmark.".into(),
            }),
            Ok(StreamEvent::Usage {
                usage: Usage {
                    input_tokens: 20,
                    output_tokens: 3,
                    ..Usage::default()
                },
            }),
            Ok(StreamEvent::Finish {
                reason: FinishReason::Stop,
                stop_sequence: None,
            }),
        ])))
    }
}

/// Encodes finished spans 512 at a time, as the exporter does before it posts them.
#[derive(Default)]
struct Encoding {
    batch: std::sync::Mutex<Vec<freeway_telemetry::FinishedSpan>>,
    exported: std::sync::atomic::AtomicU64,
}

impl freeway_telemetry::SpanSink for Encoding {
    fn export(&self, span: freeway_telemetry::FinishedSpan) {
        let mut batch = self.batch.lock().unwrap();
        batch.push(span);
        if batch.len() == 512 {
            let origin = freeway_telemetry::proto::Origin {
                resource: vec![(
                    "service.name",
                    freeway_telemetry::AnyValue::String("freeway".into()),
                )],
                scope_name: "freeway",
                scope_version: "0",
            };
            black_box(freeway_telemetry::proto::encode_request(&origin, &batch));
            self.exported
                .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
            batch.clear();
        }
    }
}

fn chat(text: &str) -> ChatRequest {
    ChatRequest {
        model: String::new(),
        messages: vec![Message::system("You are terse."), Message::user(text)],
        max_tokens: Some(32),
        temperature: Some(0.0),
        ..ChatRequest::default()
    }
}

fn tiers() -> Vec<TierConfig> {
    let tier = |name: &str, max_score| TierConfig {
        name: name.into(),
        targets: vec![format!("p/{name}")],
        max_score,
    };
    vec![
        tier("fast", Some(1)),
        tier("standard", Some(3)),
        tier("deep", None),
    ]
}

fn classify(c: &mut Criterion) {
    let classifier = Classifier::new(ClassifierConfig::default()).unwrap();
    let tiers = tiers();
    let short = chat("What is the capital of France?");
    // A coding agent's turn: ~8k tokens of history, code blocks, tools, a deep conversation.
    let mut agent = chat("");
    agent.messages.clear();
    agent
        .messages
        .push(Message::system("You are a coding agent."));
    for i in 0..20 {
        agent.messages.push(Message::user(format!(
            "Step {i}: here is the file\n```rust\n{}\n```\nWhy does the test fail? Think about it.",
            "fn main() { println!(\"hello\"); }\n".repeat(40)
        )));
        agent
            .messages
            .push(Message::assistant("Let me look at the file first."));
    }
    agent.tools = (0..8)
        .map(|i| ToolDefinition {
            name: format!("tool_{i}"),
            description: Some("does a thing".into()),
            parameters: serde_json::json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            strict: None,
        })
        .collect();
    let mut group = c.benchmark_group("classify");
    group.bench_function("short_question", |b| {
        b.iter(|| classifier.decide("auto", &tiers, black_box(&short), None))
    });
    group.bench_function("agent_turn_8k_tokens", |b| {
        b.iter(|| classifier.decide("auto", &tiers, black_box(&agent), None))
    });
    group.finish();
}

fn gateway(cache: &str) -> Gateway {
    Gateway::builder()
        .provider(Arc::new(Immediate("a")), vec!["m".into()], false)
        .provider(Arc::new(Immediate("b")), vec!["m".into()], false)
        .provider(Arc::new(Immediate("c")), vec!["m".into()], false)
        .route(
            "three",
            vec!["a/m".into(), "b/m".into(), "c/m".into()],
            Strategy::Fallback,
        )
        .routing(RoutingSettings::default())
        .cache(CacheSettings {
            url: cache.into(),
            ..CacheSettings::default()
        })
        .build()
        .unwrap()
}

fn route(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let g = gateway("off");
    let mut group = c.benchmark_group("complete");
    group.bench_function("direct_provider_model", |b| {
        b.to_async(&runtime)
            .iter(|| async { g.complete("a/m", chat("hi")).await.unwrap() })
    });
    group.bench_function("route_fallback_3_targets", |b| {
        b.to_async(&runtime)
            .iter(|| async { g.complete("three", chat("hi")).await.unwrap() })
    });
    let cached = gateway("memory");
    runtime.block_on(async {
        cached.complete("three", chat("hi")).await.unwrap();
        // The entry is stored off the request path.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    });
    // The same request with every span sampled: a server span around the gateway's route
    // and call spans, handed to a sink that encodes each batch of 512 as OTLP protobuf.
    let sink = Arc::new(Encoding::default());
    let subscriber = tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::Registry::default(),
        tracing_subscriber::Layer::with_filter(
            freeway_telemetry::OtelLayer::new(sink.clone(), 1.0),
            freeway_telemetry::OtelLayer::filter(),
        ),
    );
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("direct_provider_model_traced", |b| {
            b.to_async(&runtime).iter(|| {
                let span = tracing::info_span!(target: freeway_telemetry::TARGET, "request",
                    otel.name = "POST /v1/chat/completions", otel.kind = "server");
                tracing::Instrument::instrument(
                    async { g.complete("a/m", chat("hi")).await.unwrap() },
                    span,
                )
            })
        });
    });
    assert!(sink.exported.load(std::sync::atomic::Ordering::Relaxed) > 0);
    group.bench_function("cache_hit", |b| {
        b.to_async(&runtime).iter(|| async {
            let served = cached.complete("three", chat("hi")).await.unwrap();
            assert_eq!(served.cache, Some(freeway_gateway::CacheStatus::Hit));
            served
        })
    });
    group.finish();
}

/// What a served request records: its HTTP duration, the provider call, input and output
/// tokens, and the cost, each a series lookup and an atomic update.
fn metrics(c: &mut Criterion) {
    let m = freeway_types::Metrics::new();
    let mut group = c.benchmark_group("metrics");
    group.bench_function("one_request", |b| {
        b.iter(|| {
            m.http_requests
                .with(&["POST", "/v1/chat/completions", "200"])
                .observe(0.000_8);
            m.operation_duration
                .with(&["chat", "openai", "gpt-4o-mini", "openai/gpt-4o-mini", ""])
                .observe(0.000_5);
            for kind in ["input", "output"] {
                m.token_usage
                    .with(&["openai", "gpt-4o-mini", "openai/gpt-4o-mini", kind])
                    .observe(black_box(20.0));
            }
            m.cost
                .with(&["openai/gpt-4o-mini"])
                .add(black_box(0.000_01));
        })
    });
    group.finish();
}

criterion_group!(benches, classify, route, metrics);
criterion_main!(benches);
