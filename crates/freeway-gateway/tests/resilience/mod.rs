//! Routing and resilience against fault-injecting upstreams that speak the OpenAI protocol
//! over real HTTP: retries, backoff, `Retry-After`, timeouts, deadlines, circuit breakers,
//! mid-stream failures, load-balancing strategies, complexity routing and the response cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use freeway_gateway::{
    CacheMode, CacheStatus, CircuitState, Gateway, GatewayError, RequestOptions,
};
use freeway_testkit::openai::{self, StreamShape};
use freeway_testkit::{Answer, ErrorCase, MockUpstream, Protocol, Reply};
use freeway_types::{
    ChatRequest, ChatStream, FinishReason, Message, Provider, ProviderError, StreamEvent,
    ToolDefinition,
};
use futures_util::StreamExt;

async fn upstream() -> MockUpstream {
    MockUpstream::start(Protocol::OpenAi).await.unwrap()
}

/// A gateway over OpenAI-protocol providers `a`, `b`, … at `upstreams`, with `extra` TOML
/// (routes, `[routing]`, `[cache]`) appended.
fn gateway(upstreams: &[&MockUpstream], extra: &str) -> Gateway {
    let mut toml = String::new();
    for (i, u) in upstreams.iter().enumerate() {
        let name = char::from(b'a' + u8::try_from(i).unwrap());
        toml.push_str(&format!(
            "[[providers]]\nname = \"{name}\"\nprotocol = \"openai\"\nbase_url = \"{}\"\n\
             api_key = \"k\"\nmodels = [\"m\"]\nfirst_byte_timeout_secs = 30\n\n",
            u.base_url()
        ));
    }
    toml.push_str(extra);
    let config = freeway_config::load_str(&toml, &freeway_config::Source::default(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    Gateway::from_config(&config, &|_| Err("no local model in these tests".into())).unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(text)],
        ..ChatRequest::default()
    }
}

fn ok(text: &str) -> Reply {
    openai::reply("m", &Answer::text(text))
}

fn fail(case: ErrorCase) -> Reply {
    openai::error(case, "m")
}

const FAST_RETRIES: &str = "[routing]\nretries = 1\nretry_base_ms = 5\nretry_max_ms = 2000\n\n";

#[tokio::test]
async fn retryable_failures_are_retried_then_fall_back_in_order() {
    let (a, b, c) = (upstream().await, upstream().await, upstream().await);
    a.push(fail(ErrorCase::Internal))
        .push(fail(ErrorCase::Unavailable));
    b.push(fail(ErrorCase::Overloaded))
        .push(fail(ErrorCase::Internal));
    c.push(ok("from c"));
    let g = gateway(
        &[&a, &b, &c],
        &format!("{FAST_RETRIES}[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\", \"c/m\"]\n"),
    );
    let served = g.complete("r", ask("hi")).await.unwrap();
    assert_eq!(served.value.text(), "from c");
    assert_eq!(served.target, "c/m");
    assert_eq!(
        (a.calls(), b.calls(), c.calls()),
        (2, 2, 1),
        "one retry each, then the next"
    );
}

#[tokio::test]
async fn client_errors_are_neither_retried_nor_sent_elsewhere() {
    for case in [
        ErrorCase::BadRequest,
        ErrorCase::InvalidKey,
        ErrorCase::Forbidden,
        ErrorCase::ModelNotFound,
    ] {
        let (a, b) = (upstream().await, upstream().await);
        a.push(fail(case));
        b.push(ok("never"));
        let g = gateway(
            &[&a, &b],
            &format!("{FAST_RETRIES}[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\n"),
        );
        let err = g.complete("r", ask("hi")).await.unwrap_err();
        assert!(matches!(err, GatewayError::Provider(_)), "{case:?}: {err}");
        assert_eq!((a.calls(), b.calls()), (1, 0), "{case:?}");
    }
}

#[tokio::test]
async fn retry_after_is_waited_for_when_it_is_short() {
    let a = upstream().await;
    // The mock's 429 says `retry-after: 1`.
    a.push(fail(ErrorCase::RateLimited)).push(ok("patience"));
    let g = gateway(&[&a], FAST_RETRIES);
    let started = Instant::now();
    let served = g.complete("a/m", ask("hi")).await.unwrap();
    assert_eq!(served.value.text(), "patience");
    assert_eq!(a.calls(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_allowed_moves_on_at_once() {
    let (a, b) = (upstream().await, upstream().await);
    a.push(fail(ErrorCase::RateLimited))
        .push(ok("not waited for"));
    b.push(ok("from b"));
    let g = gateway(
        &[&a, &b],
        "[routing]\nretries = 3\nretry_max_ms = 500\n\n[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\n",
    );
    let served = g.complete("r", ask("hi")).await.unwrap();
    assert_eq!(served.target, "b/m");
    assert_eq!(
        a.calls(),
        1,
        "a 1 s Retry-After exceeds retry_max: no retry on a"
    );
}

#[tokio::test]
async fn a_target_that_hangs_before_headers_times_out_and_the_next_answers() {
    let (a, b) = (upstream().await, upstream().await);
    a.push(ok("too late").delay(Duration::from_secs(30)));
    b.push(ok("from b"));
    let g = gateway(
        &[&a, &b],
        "[routing]\nretries = 0\nattempt_timeout_secs = 0.3\n\n[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\n",
    );
    let served = g.complete("r", ask("hi")).await.unwrap();
    assert_eq!(served.target, "b/m");
}

#[tokio::test]
async fn the_deadline_bounds_every_attempt_and_wait_together() {
    let (a, b) = (upstream().await, upstream().await);
    a.push(ok("late").delay(Duration::from_secs(30)));
    b.push(ok("late").delay(Duration::from_secs(30)));
    let g = gateway(
        &[&a, &b],
        "[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\ndeadline_secs = 0.5\n",
    );
    let started = Instant::now();
    let err = g.complete("r", ask("hi")).await.unwrap_err();
    assert_eq!(err.status_code(), 504, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(b.calls(), 0, "the whole deadline went to a");
}

#[tokio::test]
async fn malformed_json_from_a_target_falls_back() {
    let (a, b) = (upstream().await, upstream().await);
    a.push(Reply::raw(
        200,
        "application/json",
        "{\"id\": \"chatcmpl-1\", \"choi",
    ));
    b.push(ok("from b"));
    let g = gateway(
        &[&a, &b],
        "[routing]\nretries = 0\n\n[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\n",
    );
    assert_eq!(g.complete("r", ask("hi")).await.unwrap().target, "b/m");
}

#[tokio::test]
async fn the_breaker_opens_skips_without_a_call_then_a_probe_closes_it() {
    let (a, b) = (upstream().await, upstream().await);
    a.push(fail(ErrorCase::Internal))
        .push(fail(ErrorCase::Internal));
    for _ in 0..4 {
        b.push(ok("from b"));
    }
    let g = gateway(
        &[&a, &b],
        "[routing]\nretries = 0\nbreaker_failures = 2\nbreaker_cooldown_secs = 0.3\n\n\
         [[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\n",
    );
    for _ in 0..2 {
        assert_eq!(g.complete("r", ask("hi")).await.unwrap().target, "b/m");
    }
    let health = |id: &str| {
        g.target_health()
            .into_iter()
            .find(|t| t.target == id)
            .unwrap()
    };
    assert_eq!(health("a/m").circuit, CircuitState::Open);
    assert_eq!(health("a/m").consecutive_failures, 2);

    assert_eq!(g.complete("r", ask("hi")).await.unwrap().target, "b/m");
    assert_eq!(
        a.calls(),
        2,
        "an open circuit is skipped without a network call"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    a.push(ok("recovered"));
    let served = g.complete("r", ask("hi")).await.unwrap();
    assert_eq!(
        served.target, "a/m",
        "after the cool-down one probe goes to a"
    );
    assert_eq!(health("a/m").circuit, CircuitState::Closed);
}

#[tokio::test]
async fn when_every_circuit_is_open_the_answer_is_503_without_calls() {
    let a = upstream().await;
    a.push(fail(ErrorCase::Internal));
    let g = gateway(&[&a], "[routing]\nretries = 0\nbreaker_failures = 1\n");
    assert!(g.complete("a/m", ask("hi")).await.is_err());
    let err = g.complete("a/m", ask("hi")).await.unwrap_err();
    assert_eq!(err.status_code(), 503);
    assert!(matches!(err, GatewayError::Unavailable { .. }));
    assert!(err.to_string().contains("a/m"), "{err}");
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_event_ends_with_an_error_not_a_fallback() {
    let (a, b) = (upstream().await, upstream().await);
    let full = openai::stream("m", &Answer::text("one two three"), StreamShape::default());
    a.push(Reply::sse(
        full.truncate_frames(2)
            .delay(Duration::from_millis(50))
            .abort(),
    ));
    b.push(ok("never"));
    let g = gateway(
        &[&a, &b],
        "[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\n",
    );
    let served = g.stream("r", ask("hi")).await.unwrap();
    assert_eq!(served.target, "a/m");
    let events: Vec<_> = served.value.collect().await;
    assert!(events.first().unwrap().is_ok());
    assert!(events.last().unwrap().is_err(), "{events:?}");
    assert_eq!(b.calls(), 0);
}

#[tokio::test]
async fn a_stream_that_falls_silent_ends_at_the_deadline() {
    let a = upstream().await;
    let full = openai::stream("m", &Answer::text("one two three"), StreamShape::default());
    a.push(Reply::sse(full.truncate_frames(2).hang()));
    let g = gateway(&[&a], "[routing]\ndeadline_secs = 0.5\n");
    let served = g.stream("a/m", ask("hi")).await.unwrap();
    let events: Vec<_> = served.value.collect().await;
    let Some(Err(ProviderError::Timeout { .. })) = events.last() else {
        panic!("{events:?}")
    };
}

#[tokio::test]
async fn a_providers_total_timeout_bounds_a_stream_that_keeps_trickling() {
    let a = upstream().await;
    let full = openai::stream(
        "m",
        &Answer::text("one two three four five six"),
        StreamShape::default(),
    );
    // Never silent for long (no read timeout), but far slower in all than the provider allows.
    let mut slow = freeway_testkit::SseScript::new();
    for (i, step) in full.steps.into_iter().enumerate() {
        if i >= 2 {
            slow = slow.delay(Duration::from_millis(200));
        }
        slow.steps.push(step);
    }
    a.push(Reply::sse(slow));
    let toml = "[routing]\nretries = 0\n";
    let mut config = freeway_config::load_str(
        &format!(
            "[[providers]]\nname = \"a\"\nprotocol = \"openai\"\nbase_url = \"{}\"\n\
             api_key = \"k\"\nmodels = [\"m\"]\ntotal_timeout_secs = 0.5\n\n{toml}",
            a.base_url()
        ),
        &freeway_config::Source::default(),
        &|_| None,
    )
    .unwrap();
    config.routing.deadline = Duration::from_secs(60);
    let g = Gateway::from_config(&config, &|_| Err("no local model".into())).unwrap();
    let served = g.stream("a/m", ask("hi")).await.unwrap();
    let events: Vec<_> = served.value.collect().await;
    assert!(events.first().unwrap().is_ok());
    let Some(Err(ProviderError::Timeout { provider, .. })) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(provider, "a");
    let finished = events
        .iter()
        .any(|e| matches!(e, Ok(StreamEvent::Finish { .. })));
    assert!(!finished, "cut before its end: {events:?}");
}

#[tokio::test]
async fn a_stream_failing_before_its_first_byte_falls_back() {
    let (a, b) = (upstream().await, upstream().await);
    a.push(fail(ErrorCase::Overloaded));
    b.push(Reply::sse(openai::stream(
        "m",
        &Answer::text("streamed"),
        StreamShape::default(),
    )));
    let g = gateway(
        &[&a, &b],
        "[routing]\nretries = 0\n\n[[routes]]\nname = \"r\"\ntargets = [\"a/m\", \"b/m\"]\n",
    );
    let served = g.stream("r", ask("hi")).await.unwrap();
    assert_eq!(served.target, "b/m");
    let text: String = served
        .value
        .filter_map(|e| async move {
            match e {
                Ok(StreamEvent::TextDelta { text }) => Some(text),
                _ => None,
            }
        })
        .collect()
        .await;
    assert_eq!(text, "streamed");
}

/// A provider that answers with its name after `latency`, counting calls and holding a slot
/// in flight until `release` is notified when `hold` is set.
struct Named {
    name: &'static str,
    latency: Duration,
    calls: AtomicUsize,
    hold: Option<Arc<tokio::sync::Notify>>,
}

impl Named {
    fn new(name: &'static str, latency_ms: u64) -> Arc<Self> {
        Arc::new(Named {
            name,
            latency: Duration::from_millis(latency_ms),
            calls: AtomicUsize::new(0),
            hold: None,
        })
    }
}

#[async_trait::async_trait]
impl Provider for Named {
    fn name(&self) -> &str {
        self.name
    }

    async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        if let Some(hold) = &self.hold {
            hold.notified().await;
        }
        Ok(Box::pin(futures_util::stream::iter([
            Ok(StreamEvent::TextDelta {
                text: self.name.to_owned(),
            }),
            Ok(StreamEvent::Finish {
                reason: FinishReason::Stop,
                stop_sequence: None,
            }),
        ])))
    }
}

fn balanced(providers: &[Arc<Named>], route: &str) -> Gateway {
    let mut builder = Gateway::builder();
    for p in providers {
        builder = builder.provider(p.clone(), vec!["m".into()], false);
    }
    let toml = format!(
        "[[providers]]\nname = \"a\"\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\nmodels = [\"m\"]\n\
         [[providers]]\nname = \"b\"\nprotocol = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\nmodels = [\"m\"]\n{route}"
    );
    let config = freeway_config::load_str(&toml, &freeway_config::Source::default(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    for r in config.routes {
        builder = builder.route_config(r);
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn weighted_shares_first_picks_in_proportion() {
    let (a, b) = (Named::new("a", 0), Named::new("b", 0));
    let g = balanced(
        &[a.clone(), b.clone()],
        "[[routes]]\nname = \"r\"\nstrategy = \"weighted\"\ntargets = [\"a/m\", \"b/m\"]\nweights = [3, 1]\n",
    );
    for _ in 0..400 {
        g.complete("r", ask("hi")).await.unwrap();
    }
    let a_calls = a.calls.load(Ordering::SeqCst);
    assert!(
        (250..=350).contains(&a_calls),
        "a got {a_calls} of 400 at weight 3:1"
    );
    assert_eq!(a_calls + b.calls.load(Ordering::SeqCst), 400);
}

#[tokio::test]
async fn least_latency_prefers_the_faster_target_once_measured() {
    let (a, b) = (Named::new("a", 60), Named::new("b", 1));
    let g = balanced(
        &[a.clone(), b.clone()],
        "[[routes]]\nname = \"r\"\nstrategy = \"least_latency\"\ntargets = [\"a/m\", \"b/m\"]\n",
    );
    let mut served = Vec::new();
    for _ in 0..6 {
        served.push(g.complete("r", ask("hi")).await.unwrap().target);
    }
    // Each unmeasured target is tried once, then the faster one wins.
    assert_eq!(served, ["a/m", "b/m", "b/m", "b/m", "b/m", "b/m"]);
}

#[tokio::test]
async fn least_busy_sends_to_the_target_with_fewer_requests_in_flight() {
    let hold = Arc::new(tokio::sync::Notify::new());
    let a = Arc::new(Named {
        name: "a",
        latency: Duration::ZERO,
        calls: AtomicUsize::new(0),
        hold: Some(hold.clone()),
    });
    let b = Named::new("b", 0);
    let g = Arc::new(balanced(
        &[a.clone(), b.clone()],
        "[[routes]]\nname = \"r\"\nstrategy = \"least_busy\"\ntargets = [\"a/m\", \"b/m\"]\n",
    ));
    // Park a request on a (ties go to the rotation's first target, a, at the start).
    let mut parked = Vec::new();
    while a.calls.load(Ordering::SeqCst) < 1 {
        let g = g.clone();
        parked.push(tokio::spawn(
            async move { g.complete("r", ask("hi")).await },
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        assert_eq!(g.complete("r", ask("hi")).await.unwrap().target, "b/m");
    }
    hold.notify_waiters();
    for p in parked {
        let _ = p.await;
    }
}

#[tokio::test]
async fn auto_routes_send_simple_requests_to_the_fast_tier_and_hard_ones_deeper() {
    let (a, b) = (Named::new("a", 0), Named::new("b", 0));
    let g = balanced(
        &[a.clone(), b.clone()],
        "[[routes]]\nname = \"auto\"\nstrategy = \"auto\"\n\
         [[routes.tiers]]\nname = \"fast\"\ntargets = [\"a/m\"]\nmax_score = 1\n\
         [[routes.tiers]]\nname = \"deep\"\ntargets = [\"b/m\"]\n",
    );
    let easy = g.complete("auto", ask("What is 2+2?")).await.unwrap();
    assert_eq!(easy.target, "a/m");
    assert_eq!(
        easy.route.as_deref(),
        Some("route=auto; tier=fast; score=0")
    );

    let mut hard = ask("Think step by step and design a plan:\n```py\nx = 1\n```");
    hard.tools.push(ToolDefinition {
        name: "run".into(),
        description: None,
        parameters: serde_json::json!({"type": "object"}),
        strict: None,
    });
    let served = g.complete("auto", hard).await.unwrap();
    assert_eq!(served.target, "b/m");
    let why = served.route.unwrap();
    assert!(why.starts_with("route=auto; tier=deep; score=4"), "{why}");
    assert!(why.contains("tools+1") && why.contains("code+1"), "{why}");

    let hinted = RequestOptions {
        tier: Some("deep".into()),
        ..RequestOptions::default()
    };
    let served = g.complete_with("auto", ask("hi"), &hinted).await.unwrap();
    assert_eq!(served.target, "b/m");
}

fn deterministic(text: &str) -> ChatRequest {
    ChatRequest {
        temperature: Some(0.0),
        ..ask(text)
    }
}

#[tokio::test]
async fn a_repeated_deterministic_request_is_served_from_the_cache() {
    let a = upstream().await;
    a.push(ok("cached answer"));
    let g = gateway(&[&a], "");
    let first = g.complete("a/m", deterministic("hi")).await.unwrap();
    assert_eq!(first.cache, Some(CacheStatus::Miss));
    // The cache is filled off the request path.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = g.complete("a/m", deterministic("hi")).await.unwrap();
    assert_eq!(second.cache, Some(CacheStatus::Hit));
    assert_eq!(second.value.text(), "cached answer");
    assert_eq!(second.target, "a/m");
    assert_eq!(a.calls(), 1, "the upstream saw one request");

    // Another question, or a sampled request, is not answered from the cache.
    a.push(ok("other")).push(ok("sampled"));
    assert_eq!(
        g.complete("a/m", deterministic("hello"))
            .await
            .unwrap()
            .cache,
        Some(CacheStatus::Miss)
    );
    assert_eq!(g.complete("a/m", ask("hi")).await.unwrap().cache, None);
    assert_eq!(a.calls(), 3);
    let stats = g.cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses), (1, 2));
}

#[tokio::test]
async fn cache_control_opts_out_and_a_route_or_request_can_opt_in() {
    let a = upstream().await;
    for _ in 0..4 {
        a.push(ok("fresh"));
    }
    let g = gateway(
        &[&a],
        "[[routes]]\nname = \"always\"\ntargets = [\"a/m\"]\ncache = true\n",
    );
    let no_store = RequestOptions {
        cache: CacheMode::Bypass,
        ..RequestOptions::default()
    };
    g.complete_with("a/m", deterministic("q"), &no_store)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        g.complete_with("a/m", deterministic("q"), &no_store)
            .await
            .unwrap()
            .cache,
        None
    );
    assert_eq!(a.calls(), 2);

    // The route opted in: a sampled request is cached too.
    g.complete("always", ask("q")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        g.complete("always", ask("q")).await.unwrap().cache,
        Some(CacheStatus::Hit)
    );
    assert_eq!(a.calls(), 3);

    // no-cache: not answered from the cache.
    let refresh = RequestOptions {
        cache: CacheMode::Refresh,
        ..RequestOptions::default()
    };
    let served = g.complete_with("always", ask("q"), &refresh).await.unwrap();
    assert_eq!(served.cache, Some(CacheStatus::Miss));
    assert_eq!(a.calls(), 4);
}

async fn collect(stream: ChatStream) -> Vec<StreamEvent> {
    stream.map(|e| e.unwrap()).collect().await
}

#[tokio::test]
async fn a_cached_answer_is_replayed_as_a_proper_stream() {
    let a = upstream().await;
    a.push(Reply::sse(openai::stream(
        "m",
        &Answer::text("one two"),
        StreamShape::default(),
    )));
    let g = gateway(&[&a], "");
    let first = g.stream("a/m", deterministic("hi")).await.unwrap();
    assert_eq!(first.cache, Some(CacheStatus::Miss));
    let live = collect(first.value).await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let second = g.stream("a/m", deterministic("hi")).await.unwrap();
    assert_eq!(second.cache, Some(CacheStatus::Hit));
    let replayed = collect(second.value).await;
    assert_eq!(a.calls(), 1);
    let text = |events: &[StreamEvent]| -> String {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(text(&replayed), text(&live));
    assert!(matches!(replayed.last(), Some(StreamEvent::Finish { .. })));
    assert!(
        replayed
            .iter()
            .any(|e| matches!(e, StreamEvent::Usage { .. }))
    );

    // A streamed request also hits what a non-streamed one stored, and the other way round.
    let whole = g.complete("a/m", deterministic("hi")).await.unwrap();
    assert_eq!(whole.cache, Some(CacheStatus::Hit));
    assert_eq!(whole.value.text(), "one two");
}

#[tokio::test]
async fn a_stream_that_fails_is_not_cached() {
    let a = upstream().await;
    let full = openai::stream("m", &Answer::text("one two three"), StreamShape::default());
    a.push(Reply::sse(
        full.truncate_frames(2)
            .delay(Duration::from_millis(50))
            .abort(),
    ));
    a.push(ok("whole"));
    let g = gateway(&[&a], "");
    let events: Vec<_> = g
        .stream("a/m", deterministic("hi"))
        .await
        .unwrap()
        .value
        .collect()
        .await;
    assert!(events.last().unwrap().is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let next = g.complete("a/m", deterministic("hi")).await.unwrap();
    assert_eq!(next.cache, Some(CacheStatus::Miss));
    assert_eq!(next.value.text(), "whole");
}

#[tokio::test]
async fn instances_share_the_redis_cache() {
    let a = upstream().await;
    a.push(ok("shared"));
    let redis = "[cache]\nurl = \"redis://127.0.0.1:6379/\"\nttl_secs = 60\n";
    let one = gateway(&[&a], redis);
    let two = gateway(&[&a], redis);
    // A question no earlier run asked, so the test does not depend on what Redis holds.
    let question = format!("unique {}", freeway_types::random_id("q-"));
    let first = one.complete("a/m", deterministic(&question)).await.unwrap();
    assert_eq!(first.cache, Some(CacheStatus::Miss));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = two.complete("a/m", deterministic(&question)).await.unwrap();
    assert_eq!(
        second.cache,
        Some(CacheStatus::Hit),
        "{:?}",
        two.cache_stats()
    );
    assert_eq!(second.value.text(), "shared");
    assert_eq!(a.calls(), 1);
}

#[tokio::test]
async fn an_unreachable_redis_never_fails_a_request() {
    let a = upstream().await;
    a.push(ok("served anyway")).push(ok("again"));
    let g = gateway(&[&a], "[cache]\nurl = \"redis://127.0.0.1:9/\"\n");
    for _ in 0..2 {
        let served = g.complete("a/m", deterministic("hi")).await.unwrap();
        assert_eq!(served.cache, Some(CacheStatus::Miss));
    }
    assert_eq!(a.calls(), 2);
    assert!(g.cache_stats().unwrap().errors >= 1);
}
