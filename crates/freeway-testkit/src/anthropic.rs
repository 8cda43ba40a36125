//! The Anthropic Messages API as Anthropic documents it: `message` objects, streams of named
//! events framed `event: X\ndata: {...}\n\n` (`message_start`, `content_block_start`, `ping`,
//! `content_block_delta` with `text_delta` / `input_json_delta`, `content_block_stop`,
//! `message_delta` with the stop reason and output usage, `message_stop`), and error envelopes
//! `{"type": "error", "error": {"type", "message"}, "request_id"}`.

use serde_json::{Value, json};

use crate::answer::{Answer, ErrorCase, Finish, MockUsage, fragments, text_deltas};
use crate::behavior::{Conversation, Last};
use crate::script::{Reply, SseScript};

const ID: &str = "msg_01MockMessage0000000001";

pub fn usage(u: &MockUsage) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_write,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": u.output,
        "service_tier": "standard"
    })
}

fn stop(finish: &Finish) -> (&'static str, Value) {
    match finish {
        Finish::Stop => ("end_turn", Value::Null),
        Finish::Length => ("max_tokens", Value::Null),
        Finish::StopSequence(s) => ("stop_sequence", Value::from(s.as_str())),
        Finish::ToolCalls => ("tool_use", Value::Null),
    }
}

fn tool_input(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| json!({}))
}

/// A whole `message` object.
pub fn message(model: &str, answer: &Answer) -> Value {
    let mut content = Vec::new();
    if !answer.text.is_empty() {
        content.push(json!({"type": "text", "text": answer.text}));
    }
    for c in &answer.tool_calls {
        content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(&c.arguments)}));
    }
    let (stop_reason, stop_sequence) = stop(&answer.finish);
    json!({
        "id": ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage(&answer.usage)
    })
}

pub fn reply(model: &str, answer: &Answer) -> Reply {
    Reply::json(200, &message(model, answer))
}

/// `message_start` … `message_stop` for `answer`: text first, then one `tool_use` block per call
/// whose input arrives as `input_json_delta` fragments (the first one empty, as the API sends).
pub fn stream(model: &str, answer: &Answer, argument_fragments: usize) -> SseScript {
    let start_usage = MockUsage {
        output: 1,
        ..answer.usage
    };
    let mut s = SseScript::new().event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": ID, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(&start_usage)
        }}),
    );
    let mut index = 0;
    if !answer.text.is_empty() {
        s = s
            .event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            )
            .event("ping", &json!({"type": "ping"}));
        for delta in text_deltas(&answer.text) {
            s = s.event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": delta}}),
            );
        }
        s = s.event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
        );
        index += 1;
    } else {
        s = s.event("ping", &json!({"type": "ping"}));
    }
    for call in &answer.tool_calls {
        s = s.event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": call.id, "name": call.name, "input": {}
            }}),
        );
        let mut parts = vec![""];
        parts.extend(fragments(&call.arguments, argument_fragments));
        for f in parts {
            s = s.event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": f}}),
            );
        }
        s = s.event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
        index += 1;
    }
    let (stop_reason, stop_sequence) = stop(&answer.finish);
    s.event(
        "message_delta",
        &json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": {"output_tokens": answer.usage.output}}),
    )
    .event("message_stop", &json!({"type": "message_stop"}))
}

pub fn error_body(kind: &str, message: &str) -> Value {
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011MockRequest000000001"
    })
}

/// The `event: error` an overloaded stream ends with.
pub fn stream_error(kind: &str, message: &str) -> (String, Value) {
    (
        "error".to_owned(),
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

pub fn error(case: ErrorCase, model: &str) -> Reply {
    let (status, kind, message) = match case {
        ErrorCase::BadRequest => (
            400,
            "invalid_request_error",
            "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"user\" roles in a row".to_owned(),
        ),
        ErrorCase::InvalidKey => (401, "authentication_error", "invalid x-api-key".to_owned()),
        ErrorCase::MissingKey => (
            401,
            "authentication_error",
            "x-api-key header is required".to_owned(),
        ),
        ErrorCase::Forbidden => (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.".to_owned(),
        ),
        ErrorCase::ModelNotFound => (404, "not_found_error", format!("model: {model}")),
        ErrorCase::RateLimited => (
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.".to_owned(),
        ),
        ErrorCase::Internal => (500, "api_error", "Internal server error".to_owned()),
        ErrorCase::Overloaded => (529, "overloaded_error", "Overloaded".to_owned()),
        ErrorCase::Unavailable => (503, "api_error", "Service unavailable".to_owned()),
        ErrorCase::ContextTooLong => (
            400,
            "invalid_request_error",
            "prompt is too long: 208310 tokens > 200000 maximum".to_owned(),
        ),
    };
    let reply = Reply::json(status, &error_body(kind, &message))
        .header("request-id", "req_011MockRequest000000001");
    if case == ErrorCase::RateLimited {
        reply.header("retry-after", "1")
    } else {
        reply
    }
}

/// `400` for a request without `anthropic-version`.
pub fn missing_version() -> Reply {
    Reply::json(
        400,
        &error_body(
            "invalid_request_error",
            "anthropic-version: header is required",
        ),
    )
}

/// `GET /v1/models`.
pub fn models(ids: &[&str]) -> Reply {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-09-29T00:00:00Z"})
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "data": data,
            "has_more": false,
            "first_id": ids.first(),
            "last_id": ids.last()
        }),
    )
}

fn blocks_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

pub(crate) fn conversation(body: &Value) -> Conversation {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut input_words =
        crate::answer::word_count(&blocks_text(body.get("system").unwrap_or(&Value::Null)));
    for m in messages {
        input_words +=
            crate::answer::word_count(&blocks_text(m.get("content").unwrap_or(&Value::Null)));
    }
    let last = match messages.last() {
        Some(m) if m.get("role").and_then(Value::as_str) == Some("user") => {
            let content = m.get("content").unwrap_or(&Value::Null);
            let result = content.as_array().and_then(|blocks| {
                blocks
                    .iter()
                    .rev()
                    .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            });
            match result {
                Some(r) => Last::ToolResult(blocks_text(r.get("content").unwrap_or(&Value::Null))),
                None => Last::User(blocks_text(content)),
            }
        }
        _ => Last::Other,
    };
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    Some((
                        t.get("name")?.as_str()?.to_owned(),
                        t.get("input_schema").cloned().unwrap_or(Value::Null),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let assistant_turns = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .count();
    Conversation {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: true,
        tools,
        last,
        input_words,
        assistant_turns,
        cwd: crate::behavior::coding_cwd(
            body.get("model")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            body,
        ),
    }
}
