#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers may panic"
)]

//! Gateway behaviour against scripted providers: resolution, fallback, round robin; and
//! (in `resilience`) retries, breakers, strategies and the cache against real HTTP upstreams.

mod resilience;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use freeway_config::{RoutingSettings, Strategy};
use freeway_gateway::{Gateway, GatewayError};
use freeway_types::{
    ChatRequest, ChatStream, FinishReason, Message, Provider, ProviderError, StreamEvent,
};
use futures_util::StreamExt;

/// What one call to a scripted provider does.
enum Step {
    Answer(&'static str),
    Fail(ProviderError),
    /// The stream opens, then fails before its first event.
    FailInStream(ProviderError),
}

struct Scripted {
    name: &'static str,
    steps: Mutex<VecDeque<Step>>,
    seen_models: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(name: &'static str, steps: Vec<Step>) -> Arc<Self> {
        Arc::new(Self {
            name,
            steps: Mutex::new(steps.into()),
            seen_models: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<String> {
        self.seen_models.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.seen_models.lock().unwrap().push(request.model.clone());
        let step = self
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .expect("unscripted call");
        match step {
            Step::Answer(text) => Ok(Box::pin(futures_util::stream::iter([
                Ok(StreamEvent::TextDelta { text: text.into() }),
                Ok(StreamEvent::Finish {
                    reason: FinishReason::Stop,
                    stop_sequence: None,
                }),
            ]))),
            Step::Fail(e) => Err(e),
            Step::FailInStream(e) => Ok(Box::pin(futures_util::stream::iter([Err(e)]))),
        }
    }
}

fn overloaded(p: &str) -> ProviderError {
    ProviderError::Overloaded {
        provider: p.into(),
        retry_after: None,
        message: "busy".into(),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("hi")],
        ..ChatRequest::default()
    }
}

fn gateway(a: &Arc<Scripted>, b: &Arc<Scripted>, strategy: Strategy) -> Gateway {
    Gateway::builder()
        .provider(a.clone(), vec!["m1".into()], false)
        .provider(b.clone(), vec!["m2".into()], false)
        .route("smart", vec!["a/m1".into(), "b/m2".into()], strategy)
        .default_model(Some("smart".into()))
        .routing(RoutingSettings {
            retries: 0,
            ..RoutingSettings::default()
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_retryable_failure_falls_back_to_the_next_target() {
    let a = Scripted::new("a", vec![Step::Fail(overloaded("a"))]);
    let b = Scripted::new("b", vec![Step::Answer("from b")]);
    let g = gateway(&a, &b, Strategy::Fallback);
    let served = g.complete("smart", request()).await.unwrap();
    assert_eq!(served.value.text(), "from b");
    assert_eq!(served.target, "b/m2");
    assert_eq!(a.calls(), ["m1"]);
    assert_eq!(b.calls(), ["m2"]);
}

#[tokio::test]
async fn a_client_error_is_final_and_not_retried_elsewhere() {
    let a = Scripted::new(
        "a",
        vec![Step::Fail(ProviderError::BadRequest {
            provider: "a".into(),
            status: 400,
            message: "bad".into(),
        })],
    );
    let b = Scripted::new("b", vec![]);
    let g = gateway(&a, &b, Strategy::Fallback);
    let err = g.complete("smart", request()).await.unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert!(b.calls().is_empty());
}

#[tokio::test]
async fn a_stream_failing_before_its_first_event_still_falls_back() {
    let a = Scripted::new("a", vec![Step::FailInStream(overloaded("a"))]);
    let b = Scripted::new("b", vec![Step::Answer("streamed")]);
    let g = gateway(&a, &b, Strategy::Fallback);
    let served = g.stream("default", request()).await.unwrap();
    assert_eq!(served.target, "b/m2");
    let events: Vec<_> = served.value.collect().await;
    assert_eq!(
        events[0].as_ref().unwrap(),
        &StreamEvent::TextDelta {
            text: "streamed".into()
        }
    );
}

#[tokio::test]
async fn when_every_target_fails_the_last_error_is_returned() {
    let a = Scripted::new("a", vec![Step::Fail(overloaded("a"))]);
    let b = Scripted::new("b", vec![Step::Fail(overloaded("b"))]);
    let g = gateway(&a, &b, Strategy::Fallback);
    let GatewayError::Provider(e) = g.complete("smart", request()).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.provider(), Some("b"));
}

#[tokio::test]
async fn round_robin_rotates_the_first_target() {
    let a = Scripted::new("a", vec![Step::Answer("a1"), Step::Answer("a2")]);
    let b = Scripted::new("b", vec![Step::Answer("b1")]);
    let g = gateway(&a, &b, Strategy::RoundRobin);
    let mut targets = Vec::new();
    for _ in 0..3 {
        targets.push(g.complete("smart", request()).await.unwrap().target);
    }
    assert_eq!(targets, ["a/m1", "b/m2", "a/m1"]);
}

#[test]
fn names_resolve_by_route_provider_prefix_and_unique_bare_model() {
    let a = Scripted::new("a", vec![]);
    let b = Scripted::new("b", vec![]);
    let g = gateway(&a, &b, Strategy::Fallback);
    let ids = |m: &str| {
        g.resolve(m)
            .map(|ts| ts.into_iter().map(|t| t.id).collect::<Vec<_>>())
    };
    assert_eq!(ids("smart").unwrap(), ["a/m1", "b/m2"]);
    assert_eq!(ids("default").unwrap(), ["a/m1", "b/m2"]);
    assert_eq!(ids("b/vendor/model").unwrap(), ["b/vendor/model"]);
    assert_eq!(ids("m2").unwrap(), ["b/m2"]);
    let err = ids("zz/m").unwrap_err();
    assert_eq!(err.status_code(), 404);
    assert!(err.to_string().contains("no provider named `zz`"), "{err}");
    assert!(ids("nothing").is_err());
}
