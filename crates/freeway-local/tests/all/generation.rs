use std::time::{Duration, Instant};

use freeway_types::{ErrorKind, FinishReason, Message, Provider, StreamEvent};
use futures_util::StreamExt;

use super::common::*;

#[tokio::test]
async fn greedy_output_is_deterministic_and_right() {
    let p = shared();
    let req = greedy(france(), 24);
    let a = complete(p, &req).await;
    let b = complete(p, &req).await;
    assert_eq!(a.text(), b.text());
    assert!(a.text().contains("Paris"), "{:?}", a.text());
    assert_eq!(a.finish_reason, FinishReason::Stop);
    assert!(a.usage.input_tokens > 10 && a.usage.output_tokens > 0);
    assert!(a.usage.output_tokens < 24);
}

#[tokio::test]
async fn streamed_text_equals_the_complete_text() {
    // Fresh engines for both: a prompt read from the KV cache can differ in the last bits of
    // the logits, enough to flip a greedy near-tie.
    let p = &fresh();
    let req = greedy(vec![Message::user("Write two sentences about cats.")], 40);
    let events = events(p, &req).await;
    let mut text = String::new();
    let mut deltas = 0;
    for e in &events {
        if let StreamEvent::TextDelta { text: t } = e {
            text.push_str(t);
            deltas += 1;
        }
    }
    assert!(deltas > 5, "streamed token by token: {deltas} deltas");
    let full = complete(&fresh(), &req).await;
    assert_eq!(text, full.text());
    let usage = events.iter().find_map(|e| match e {
        StreamEvent::Usage { usage } => Some(*usage),
        _ => None,
    });
    assert_eq!(usage.unwrap().output_tokens, full.usage.output_tokens);
    assert!(matches!(events.last(), Some(StreamEvent::Finish { .. })));
}

#[tokio::test]
async fn max_tokens_holds() {
    let p = shared();
    let r = complete(p, &greedy(vec![Message::user("Tell me a long story.")], 5)).await;
    assert_eq!(r.usage.output_tokens, 5);
    assert_eq!(r.finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn stop_sequences_end_the_output_and_never_leak() {
    let p = shared();
    let mut req = greedy(france(), 24);
    req.stop = vec!["Paris".into()];
    let r = complete(p, &req).await;
    assert_eq!(r.finish_reason, FinishReason::StopSequence);
    assert_eq!(r.stop_sequence.as_deref(), Some("Paris"));
    assert!(!r.text().contains("Par"), "{:?}", r.text());
    assert!(r.text().contains("France"), "{:?}", r.text());
}

#[tokio::test]
async fn sampling_with_a_seed_repeats_and_other_seeds_vary() {
    let mut req = greedy(vec![Message::user("Name a color.")], 12);
    req.temperature = Some(1.2);
    req.top_p = Some(0.95);
    req.top_k = Some(50);
    req.seed = Some(1);
    // Fresh engines: a prompt read from the KV cache (one token evaluated instead of a batch) can
    // differ in the last bits of the logits, which is enough to change a sampled token.
    let a = complete(&fresh(), &req).await.text();
    let b = complete(&fresh(), &req).await.text();
    assert_eq!(a, b);
    let p = fresh();
    let mut others = Vec::new();
    for seed in [2, 3, 4] {
        req.seed = Some(seed);
        others.push(complete(&p, &req).await.text());
    }
    assert!(others.iter().any(|t| t != &a), "{a:?} {others:?}");
}

#[tokio::test]
async fn dropping_the_stream_stops_generation() {
    let p = fresh();
    let req = greedy(
        vec![Message::user("Count from 1 to 1000, separated by commas.")],
        1500,
    );
    let mut stream = p.stream(&req).await.unwrap();
    for _ in 0..3 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.stats().cancelled == 0 {
        assert!(
            Instant::now() < deadline,
            "generation did not stop: {:?}",
            p.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = p.stats();
    assert_eq!(stats.completed, 0, "{stats:?}");
    assert!(stats.tokens_generated < 100, "{stats:?}");
    // The engine is free for the next request.
    let r = complete(&p, &greedy(france(), 24)).await;
    assert!(r.text().contains("Paris"));
    assert_eq!(p.stats().completed, 1);
}

#[tokio::test]
async fn a_later_turn_reuses_the_kv_cache_of_the_conversation() {
    let p = fresh();
    let mut messages = france();
    let first = complete(&p, &greedy(messages.clone(), 24)).await;
    assert_eq!(first.usage.cache_read_tokens, 0);
    messages.push(Message::assistant(first.text()));
    messages.push(Message::user("And of Italy?"));
    let second = complete(&p, &greedy(messages, 24)).await;
    // Everything but the new turn comes from the cache.
    assert!(
        second.usage.cache_read_tokens >= first.usage.input_tokens,
        "{:?} after {:?}",
        second.usage,
        first.usage
    );
    assert!(second.text().contains("Rome"), "{:?}", second.text());
    let stats = p.stats();
    assert_eq!(stats.prompt_tokens_reused, second.usage.cache_read_tokens);
    assert_eq!(
        stats.prompt_tokens_evaluated,
        first.usage.input_tokens + second.usage.input_tokens - second.usage.cache_read_tokens
    );
}

#[tokio::test]
async fn concurrent_requests_all_finish_with_the_same_greedy_answer() {
    let p = shared();
    let req = greedy(france(), 24);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let req = req.clone();
            tokio::spawn(async move { complete(shared(), &req).await.text() })
        })
        .collect();
    let mut texts = Vec::new();
    for h in handles {
        texts.push(h.await.unwrap());
    }
    assert!(
        texts.iter().all(|t| t == &texts[0] && t.contains("Paris")),
        "{texts:?}"
    );
    let _ = p;
}

#[tokio::test]
async fn unknown_models_and_oversized_prompts_are_refused_before_streaming() {
    let p = shared();
    let mut req = greedy(france(), 4);
    req.model = "gpt-4".into();
    assert_eq!(
        p.stream(&req).await.err().unwrap().kind(),
        ErrorKind::ModelNotFound
    );
    req.model = "default".into();
    assert!(p.stream(&req).await.is_ok());
    let huge = "word ".repeat(5000);
    let req = greedy(vec![Message::user(huge)], 4);
    assert_eq!(
        p.stream(&req).await.err().unwrap().kind(),
        ErrorKind::ContextWindowExceeded
    );
}

#[tokio::test]
async fn lists_its_model() {
    let models = shared().list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id, "smollm2");
    assert_eq!(shared().name(), "local");
}

#[tokio::test]
async fn prompts_longer_than_one_batch_are_read_in_chunks() {
    let p = shared();
    let filler = "The river floods every spring and the town repairs its wall. ".repeat(60);
    let req = greedy(
        vec![Message::user(format!(
            "{filler}\nWhat does the town repair?"
        ))],
        12,
    );
    let r = complete(p, &req).await;
    assert!(r.usage.input_tokens > 600, "{:?}", r.usage);
    assert!(r.usage.output_tokens > 0);
}
