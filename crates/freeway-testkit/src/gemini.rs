//! The Gemini API as Google documents it: `GenerateContentResponse` objects (candidates with
//! `content.parts`, `finishReason`, `usageMetadata`, `modelVersion`, `responseId`), streams of
//! them framed `data: {...}\r\n\r\n` with no end marker, whole `functionCall` parts, error
//! envelopes `{"error": {"code", "message", "status", "details"}}`, model lists and
//! `batchEmbedContents`.

use serde_json::{Value, json};

use crate::answer::{Answer, ErrorCase, Finish, MockUsage, text_deltas};
use crate::behavior::{Conversation, Last};
use crate::script::{Reply, SseScript};

const RESPONSE_ID: &str = "mockResponseId0001";

pub fn usage(u: &MockUsage, with_candidates: bool) -> Value {
    let prompt = u.input + u.cache_read;
    let mut v = json!({
        "promptTokenCount": prompt,
        "totalTokenCount": prompt + if with_candidates { u.output } else { 0 },
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
    });
    if with_candidates {
        v["candidatesTokenCount"] = Value::from(u.output);
    }
    if u.cache_read > 0 {
        v["cachedContentTokenCount"] = Value::from(u.cache_read);
    }
    v
}

fn finish_reason(finish: &Finish) -> &'static str {
    match finish {
        // Gemini says STOP for a stop sequence and after function calls.
        Finish::Stop | Finish::StopSequence(_) | Finish::ToolCalls => "STOP",
        Finish::Length => "MAX_TOKENS",
    }
}

fn function_call(name: &str, arguments: &str) -> Value {
    let args: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
    json!({"functionCall": {"name": name, "args": args}})
}

fn response(model: &str, parts: Vec<Value>, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = Value::from(f);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": RESPONSE_ID
    })
}

/// A whole `generateContent` response.
pub fn generate(model: &str, answer: &Answer) -> Value {
    let mut parts = Vec::new();
    if !answer.text.is_empty() {
        parts.push(json!({"text": answer.text}));
    }
    for c in &answer.tool_calls {
        parts.push(function_call(&c.name, &c.arguments));
    }
    response(
        model,
        parts,
        Some(finish_reason(&answer.finish)),
        usage(&answer.usage, true),
    )
}

pub fn reply(model: &str, answer: &Answer) -> Reply {
    Reply::json(200, &generate(model, answer))
}

/// The chunks of `streamGenerateContent?alt=sse`: text in small pieces, each function call whole
/// in its own part, the finish reason and full usage on the last chunk.
pub fn chunks(model: &str, answer: &Answer) -> Vec<Value> {
    let mut out = Vec::new();
    let partial = usage(&answer.usage, false);
    let deltas = text_deltas(&answer.text);
    for d in &deltas {
        out.push(response(
            model,
            vec![json!({"text": d})],
            None,
            partial.clone(),
        ));
    }
    let calls: Vec<Value> = answer
        .tool_calls
        .iter()
        .map(|c| function_call(&c.name, &c.arguments))
        .collect();
    let finish = Some(finish_reason(&answer.finish));
    let last_usage = usage(&answer.usage, true);
    if calls.is_empty() {
        // The closing chunk carries an empty text part, as the API sends.
        out.push(response(
            model,
            vec![json!({"text": ""})],
            finish,
            last_usage,
        ));
    } else {
        out.push(response(model, calls, finish, last_usage));
    }
    out
}

pub fn stream(model: &str, answer: &Answer) -> SseScript {
    chunks(model, answer)
        .iter()
        .fold(SseScript::new(), |s, c| s.gemini(c))
}

pub fn error_body(code: u16, status: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}})
}

pub fn error(case: ErrorCase, model: &str) -> Reply {
    let none = json!([]);
    let (code, status, message, details) = match case {
        ErrorCase::BadRequest => (
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received. Unknown name \"foo\": Cannot find field.".to_owned(),
            none,
        ),
        ErrorCase::InvalidKey => (
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.".to_owned(),
            json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"}
            }]),
        ),
        ErrorCase::MissingKey => (
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".to_owned(),
            none,
        ),
        ErrorCase::Forbidden => (
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission".to_owned(),
            none,
        ),
        ErrorCase::ModelNotFound => (
            404,
            "NOT_FOUND",
            format!("models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."),
            none,
        ),
        ErrorCase::RateLimited => (
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.".to_owned(),
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]),
        ),
        ErrorCase::Internal => (
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".to_owned(),
            none,
        ),
        ErrorCase::Overloaded | ErrorCase::Unavailable => (
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.".to_owned(),
            none,
        ),
        ErrorCase::ContextTooLong => (
            400,
            "INVALID_ARGUMENT",
            "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576).".to_owned(),
            none,
        ),
    };
    let reply = Reply::json(code, &error_body(code, status, &message, details));
    if case == ErrorCase::RateLimited {
        reply.header("retry-after", "1")
    } else {
        reply
    }
}

/// `GET /v1beta/models`.
pub fn models(ids: &[&str]) -> Reply {
    let models: Vec<Value> = ids
        .iter()
        .map(|id| {
            let embedding = id.contains("embedding");
            json!({
                "name": format!("models/{id}"),
                "version": "001",
                "displayName": id,
                "inputTokenLimit": if embedding { 2048 } else { 1_048_576 },
                "outputTokenLimit": if embedding { 1 } else { 8192 },
                "supportedGenerationMethods": if embedding {
                    json!(["embedContent", "batchEmbedContents"])
                } else {
                    json!(["generateContent", "countTokens"])
                }
            })
        })
        .collect();
    Reply::json(200, &json!({"models": models}))
}

/// `POST /v1beta/models/{model}:batchEmbedContents`.
pub fn embeddings(vectors: &[Vec<f32>]) -> Reply {
    let embeddings: Vec<Value> = vectors.iter().map(|v| json!({"values": v})).collect();
    Reply::json(200, &json!({"embeddings": embeddings}))
}

fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("")
}

/// The text of a `functionResponse.response`: its `result` (or `content`, `output`, `error`)
/// string when it has one, the JSON otherwise.
fn function_response_text(response: &Value) -> String {
    for key in ["result", "content", "output", "error"] {
        if let Some(s) = response.get(key).and_then(Value::as_str) {
            return s.to_owned();
        }
    }
    response.to_string()
}

pub(crate) fn conversation(model: &str, stream: bool, body: &Value) -> Conversation {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let empty = Vec::new();
    let parts_of = |c: &Value| -> Vec<Value> {
        c.get("parts")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .clone()
    };
    let mut input_words = body
        .get("systemInstruction")
        .map(|s| crate::answer::word_count(&parts_text(&parts_of(s))))
        .unwrap_or(0);
    for c in contents {
        input_words += crate::answer::word_count(&parts_text(&parts_of(c)));
    }
    let last = match contents.last() {
        Some(c) if c.get("role").and_then(Value::as_str).unwrap_or("user") == "user" => {
            let parts = parts_of(c);
            match parts.iter().rev().find_map(|p| p.get("functionResponse")) {
                Some(r) => Last::ToolResult(function_response_text(
                    r.get("response").unwrap_or(&Value::Null),
                )),
                None => Last::User(parts_text(&parts)),
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
                .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
                .flatten()
                .filter_map(|f| {
                    Some((
                        f.get("name")?.as_str()?.to_owned(),
                        f.get("parameters").cloned().unwrap_or(Value::Null),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let assistant_turns = contents
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("model"))
        .count();
    Conversation {
        model: model.to_owned(),
        stream,
        include_usage: true,
        tools,
        last,
        input_words,
        assistant_turns,
        cwd: crate::behavior::coding_cwd(model, body),
    }
}
