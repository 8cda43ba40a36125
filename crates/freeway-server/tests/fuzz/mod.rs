//! Seeded fuzzing of the ingress parsers: random and mutated bodies never panic, never 5xx.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use freeway_gateway::Gateway;
use freeway_server::{AppState, router};
use freeway_types::{ChatRequest, ChatStream, FinishReason, Provider, ProviderError, StreamEvent};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// Answers every request at once, so that only parsing and encoding are exercised.
struct Echo;

#[async_trait::async_trait]
impl Provider for Echo {
    fn name(&self) -> &str {
        "p"
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        let mut events = vec![Ok(StreamEvent::TextDelta {
            text: format!("{} messages", request.messages.len()),
        })];
        if let Some(tool) = request.tools.first() {
            events.push(Ok(StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: tool.name.clone(),
            }));
            events.push(Ok(StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"a\":1}".into(),
            }));
        }
        events.push(Ok(StreamEvent::Finish {
            reason: FinishReason::Stop,
            stop_sequence: None,
        }));
        Ok(Box::pin(futures_util::stream::iter(events)))
    }
}

/// A small deterministic generator (xorshift), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "function",
    "name",
    "arguments",
    "tool_calls",
    "tool_call_id",
    "id",
    "stream",
    "max_tokens",
    "stop",
    "n",
    "response_format",
    "json_schema",
    "schema",
    "image_url",
    "url",
    "input_schema",
    "input",
    "tool_use_id",
    "system",
    "tool_choice",
    "source",
    "media_type",
    "data",
    "is_error",
    "stream_options",
    "include_usage",
    "temperature",
    "stop_sequences",
    "parameters",
];
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "tool",
    "developer",
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "function",
    "auto",
    "none",
    "required",
    "any",
    "json_schema",
    "json_object",
    "p/m",
    "base64",
    "data:image/png;base64,AAAA",
    "",
    "é\u{0}\u{7f}",
];

fn value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 3 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() as i64 % 100_000),
        3 => json!((rng.next() % 1000) as f64 / 7.0),
        4 => Value::String(WORDS[rng.below(WORDS.len())].to_owned()),
        5 | 6 => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(
                    KEYS[rng.below(KEYS.len())].to_owned(),
                    value(rng, depth + 1),
                );
            }
            Value::Object(map)
        }
        _ => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
    }
}

/// A plausible request with one part replaced by noise.
fn near_valid(rng: &mut Rng, anthropic: bool) -> Value {
    let mut body = if anthropic {
        json!({
            "model": "p/m", "max_tokens": 10,
            "system": [{"type": "text", "text": "s"}],
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "x", "name": "t", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "ok"}]}
            ]
        })
    } else {
        json!({
            "model": "p/m",
            "tools": [{"type": "function", "function": {"name": "t", "parameters": {"type": "object"}}}],
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "x", "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "x", "content": "ok"}
            ]
        })
    };
    // Pick a random node by walking down, then replace it.
    let mut pointer = String::new();
    let mut node = &body;
    for _ in 0..rng.below(5) {
        match node {
            Value::Object(map) if !map.is_empty() => {
                let (key, next) = map.iter().nth(rng.below(map.len())).unwrap();
                pointer.push('/');
                pointer.push_str(key);
                node = next;
            }
            Value::Array(items) if !items.is_empty() => {
                let i = rng.below(items.len());
                pointer.push_str(&format!("/{i}"));
                node = &items[i];
            }
            _ => break,
        }
    }
    let noise = value(rng, 2);
    *body.pointer_mut(&pointer).unwrap() = noise;
    if rng.below(3) == 0
        && let Some(map) = body.as_object_mut()
    {
        map.insert("stream".into(), Value::Bool(true));
    }
    body
}

async fn send(app: &axum::Router, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    (status, bytes)
}

#[tokio::test]
async fn random_and_mutated_bodies_get_answers_not_panics() {
    let gateway = Gateway::builder()
        .provider(Arc::new(Echo), vec!["m".into()], false)
        .build()
        .unwrap();
    let app = router(Arc::new(AppState::new(Arc::new(gateway), None)));
    let mut rng = Rng(0x5eed_f00d_dead_beef);
    let mut answered = [0usize; 2];
    for i in 0..3000 {
        let anthropic = i % 2 == 1;
        let path = if anthropic {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        let mut body = match i % 3 {
            0 => serde_json::to_vec(&value(&mut rng, 0)).unwrap(),
            _ => serde_json::to_vec(&near_valid(&mut rng, anthropic)).unwrap(),
        };
        if i % 7 == 0 && !body.is_empty() {
            // Raw damage: truncate or flip a byte.
            let at = rng.below(body.len());
            if rng.below(2) == 0 {
                body.truncate(at);
            } else {
                body[at] ^= 1 << rng.below(8);
            }
        }
        let (status, response) = send(&app, path, body.clone()).await;
        assert!(
            status == StatusCode::OK || status.is_client_error(),
            "case {i}: status {status} for {}",
            String::from_utf8_lossy(&body)
        );
        if status == StatusCode::OK {
            answered[usize::from(anthropic)] += 1;
        } else {
            let error: Value = serde_json::from_slice(&response).unwrap_or_else(|_| {
                panic!(
                    "case {i}: error body is not JSON: {}",
                    String::from_utf8_lossy(&response)
                )
            });
            // Both envelopes carry `error.message`; Anthropic's also says `"type": "error"`.
            if anthropic {
                assert_eq!(error["type"], "error", "case {i}: {error}");
            }
            let message = &error["error"]["message"];
            assert!(
                message.as_str().is_some_and(|m| !m.is_empty()),
                "case {i}: {error}"
            );
        }
    }
    // The mutations must leave some requests valid, or the fuzzing only tests the first check.
    assert!(answered[0] > 20 && answered[1] > 20, "{answered:?}");
}
