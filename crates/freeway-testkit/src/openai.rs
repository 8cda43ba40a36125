//! OpenAI Chat Completions as OpenAI documents it: `chat.completion` objects,
//! `chat.completion.chunk` streams framed `data: {...}\n\n` and ended by `data: [DONE]\n\n`,
//! error envelopes `{"error": {"message", "type", "param", "code"}}`, embeddings and model lists.

use serde_json::{Value, json};

use crate::answer::{Answer, ErrorCase, Finish, MockUsage, fragments, text_deltas};
use crate::behavior::{Conversation, Last};
use crate::script::{Reply, SseScript};

const CREATED: u64 = 1_700_000_000;
const ID: &str = "chatcmpl-mock0001";

/// How a stream is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamShape {
    /// The request asked `stream_options.include_usage`: every chunk carries `"usage": null`
    /// and a last chunk with empty `choices` carries the usage.
    pub include_usage: bool,
    /// Parallel tool calls send their argument fragments round-robin, as OpenAI does.
    pub interleave_tool_calls: bool,
    /// Fragments per tool call's arguments.
    pub argument_fragments: usize,
}

impl Default for StreamShape {
    fn default() -> Self {
        Self {
            include_usage: true,
            interleave_tool_calls: true,
            argument_fragments: 3,
        }
    }
}

pub fn usage(u: &MockUsage) -> Value {
    let prompt = u.input + u.cache_read + u.cache_write;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output,
        "total_tokens": prompt + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        // OpenAI reports a matched stop sequence as a plain "stop".
        Finish::Stop | Finish::StopSequence(_) => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
    }
}

/// A whole `chat.completion` object.
pub fn completion(model: &str, answer: &Answer) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": if answer.text.is_empty() && !answer.tool_calls.is_empty() {
            Value::Null
        } else {
            Value::from(answer.text.as_str())
        },
        "refusal": null,
        "annotations": []
    });
    if !answer.tool_calls.is_empty() {
        message["tool_calls"] = answer
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments}
                })
            })
            .collect();
    }
    json!({
        "id": ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(&answer.finish)
        }],
        "usage": usage(&answer.usage),
        "service_tier": "default",
        "system_fingerprint": "fp_mock"
    })
}

pub fn reply(model: &str, answer: &Answer) -> Reply {
    Reply::json(200, &completion(model, answer))
}

/// One `chat.completion.chunk` with a single choice.
pub fn chunk(
    model: &str,
    delta: Value,
    finish_reason: Option<&str>,
    with_usage_null: bool,
) -> Value {
    let mut c = json!({
        "id": ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
    });
    if with_usage_null {
        c["usage"] = Value::Null;
    }
    c
}

/// The stream of `answer`, as frames; ends with `data: [DONE]`.
pub fn stream(model: &str, answer: &Answer, shape: StreamShape) -> SseScript {
    let nu = shape.include_usage;
    let mut s = SseScript::new().data(&chunk(
        model,
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
        nu,
    ));
    for delta in text_deltas(&answer.text) {
        s = s.data(&chunk(model, json!({"content": delta}), None, nu));
    }
    let calls = &answer.tool_calls;
    for (i, call) in calls.iter().enumerate() {
        s = s.data(&chunk(
            model,
            json!({"tool_calls": [{
                "index": i, "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}
            }]}),
            None,
            nu,
        ));
        if !shape.interleave_tool_calls {
            for f in fragments(&call.arguments, shape.argument_fragments) {
                s = s.data(&args_chunk(model, i, f, nu));
            }
        }
    }
    if shape.interleave_tool_calls {
        let split: Vec<Vec<&str>> = calls
            .iter()
            .map(|c| fragments(&c.arguments, shape.argument_fragments))
            .collect();
        let rounds = split.iter().map(Vec::len).max().unwrap_or(0);
        for r in 0..rounds {
            for (i, frags) in split.iter().enumerate() {
                if let Some(f) = frags.get(r) {
                    s = s.data(&args_chunk(model, i, f, nu));
                }
            }
        }
    }
    s = s.data(&chunk(
        model,
        json!({}),
        Some(finish_reason(&answer.finish)),
        nu,
    ));
    if nu {
        s = s.data(&json!({
            "id": ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [],
            "usage": usage(&answer.usage)
        }));
    }
    s.done()
}

fn args_chunk(model: &str, index: usize, fragment: &str, usage_null: bool) -> Value {
    chunk(
        model,
        json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
        None,
        usage_null,
    )
}

/// The error envelope.
pub fn error_body(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// `{"error": …}` sent as a stream chunk, as OpenAI does when a stream fails midway.
pub fn stream_error(message: &str) -> Value {
    error_body(message, "server_error", None)
}

pub fn error(case: ErrorCase, model: &str) -> Reply {
    let (status, body) = match case {
        ErrorCase::BadRequest => (
            400,
            error_body(
                "Invalid value for 'temperature': must be between 0 and 2.",
                "invalid_request_error",
                Some("invalid_value"),
            ),
        ),
        ErrorCase::InvalidKey => (
            401,
            error_body(
                "Incorrect API key provided: sk-mock***key0. You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
        ),
        ErrorCase::MissingKey => (
            401,
            error_body(
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                None,
            ),
        ),
        ErrorCase::Forbidden => (
            403,
            error_body(
                "Project `proj_mock` does not have access to model `gpt-4o`",
                "invalid_request_error",
                Some("model_not_found"),
            ),
        ),
        ErrorCase::ModelNotFound => (
            404,
            error_body(
                &format!("The model `{model}` does not exist or you do not have access to it."),
                "invalid_request_error",
                Some("model_not_found"),
            ),
        ),
        ErrorCase::RateLimited => (
            429,
            error_body(
                "Rate limit reached for gpt-4o in organization org-mock on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s. Visit https://platform.openai.com/account/rate-limits to learn more.",
                "requests",
                Some("rate_limit_exceeded"),
            ),
        ),
        ErrorCase::Internal => (
            500,
            error_body(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
        ),
        ErrorCase::Overloaded | ErrorCase::Unavailable => (
            503,
            error_body(
                "The engine is currently overloaded, please try again later.",
                "server_error",
                None,
            ),
        ),
        ErrorCase::ContextTooLong => (
            400,
            error_body(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                Some("context_length_exceeded"),
            ),
        ),
    };
    let reply = Reply::json(status, &body);
    if case == ErrorCase::RateLimited {
        reply
            .header("retry-after", "1")
            .header("x-ratelimit-reset-requests", "1s")
    } else {
        reply
    }
}

/// `GET /v1/models`.
pub fn models(ids: &[&str]) -> Reply {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "openai"}))
        .collect();
    Reply::json(200, &json!({"object": "list", "data": data}))
}

/// `POST /v1/embeddings`.
pub fn embeddings(model: &str, vectors: &[Vec<f32>], prompt_tokens: u64) -> Reply {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    Reply::json(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
        }),
    )
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Reads a chat request for the behavioral mock.
pub(crate) fn conversation(body: &Value) -> Conversation {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let input_words = messages
        .iter()
        .map(|m| crate::answer::word_count(&content_text(m.get("content").unwrap_or(&Value::Null))))
        .sum();
    let last = match messages.last() {
        Some(m) => {
            let text = content_text(m.get("content").unwrap_or(&Value::Null));
            match m.get("role").and_then(Value::as_str) {
                Some("user") => Last::User(text),
                Some("tool") => Last::ToolResult(text),
                _ => Last::Other,
            }
        }
        None => Last::Other,
    };
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    let f = t.get("function")?;
                    Some((
                        f.get("name")?.as_str()?.to_owned(),
                        f.get("parameters").cloned().unwrap_or(Value::Null),
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
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
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
