//! The behavioral mock: every protocol at once on its real paths, answering deterministically
//! from the request. Used by the end-to-end suite and as the instant upstream of the benchmark,
//! so the hot path does no logging and little allocation.
//!
//! - tools offered and the last turn is the user's → the first tool is called with arguments
//!   built from its schema;
//! - the last turn is a tool result → `The tool said: <result>`;
//! - otherwise → `You said: <last user text>`.
//!
//! Magic model names: `error-400`, `error-400-context`, `error-401`, `error-403`, `error-404`,
//! `error-429` (with `retry-after: 1`), `error-500`, `error-503`, `error-529` or `overloaded`,
//! `slow-<ms>` (first byte late), `hang-midstream` (half the answer, then silence).
//!
//! `GET /_mock/calls` answers how many chat requests each model name received, and
//! `GET /_mock/traceparents` the `traceparent` headers they came with, in order.
//! `POST /v1/traces` swallows OTLP/HTTP exports.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;

use crate::answer::{
    Answer, ErrorCase, MockToolCall, MockUsage, arguments_from_schema, word_count,
};
use crate::script::{Reply, ReplyBody, SseScript};
use crate::{anthropic, gemini, openai};

/// The API keys the mock accepts, per protocol. `None` accepts any key; Anthropic and Gemini
/// still require one to be present (as the real services do), OpenAI-compatible requests may
/// come without one (as local servers allow).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    pub openai: Option<String>,
    pub anthropic: Option<String>,
    pub gemini: Option<String>,
}

/// The mock's state: the keys it accepts and how many chat requests each model received
/// (`GET /_mock/calls`), so that tests can tell what reached the upstream.
#[derive(Debug, Default)]
pub struct Mock {
    keys: Keys,
    calls: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    traceparents: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
}

impl Mock {
    fn count(&self, model: &str, headers: &HeaderMap) {
        if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            self.traceparents
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(model.to_owned())
                .or_default()
                .push(tp.to_owned());
        }
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match calls.get_mut(model) {
            Some(n) => *n += 1,
            None => {
                calls.insert(model.to_owned(), 1);
            }
        }
    }
}

impl std::ops::Deref for Mock {
    type Target = Keys;

    fn deref(&self) -> &Keys {
        &self.keys
    }
}

async fn calls(State(mock): State<Arc<Mock>>) -> Response {
    let calls: serde_json::Map<String, Value> = mock
        .calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(model, n)| (model.clone(), Value::from(*n)))
        .collect();
    Reply::json(200, &Value::Object(calls)).into_response()
}

/// Takes an `ExportTraceServiceRequest` and answers the empty `ExportTraceServiceResponse`.
async fn otlp_sink() -> Response {
    Response::builder()
        .header("content-type", "application/x-protobuf")
        .body(axum::body::Body::empty())
        .unwrap_or_default()
}

async fn traceparents(State(mock): State<Arc<Mock>>) -> Response {
    let seen: serde_json::Map<String, Value> = mock
        .traceparents
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(model, tps)| (model.clone(), Value::from(tps.clone())))
        .collect();
    Reply::json(200, &Value::Object(seen)).into_response()
}

/// A chat request reduced to what the deterministic model looks at.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    /// Offered tools: name and parameter schema.
    pub tools: Vec<(String, Value)>,
    pub last: Last,
    pub input_words: u64,
    /// Assistant (model) messages so far: how far a scripted agent task has got.
    pub assistant_turns: usize,
    /// The working directory a coding client's prompt names (for the `coding-agent` model).
    pub cwd: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Last {
    User(String),
    ToolResult(String),
    Other,
}

enum Magic {
    None,
    Error(ErrorCase),
    Slow(Duration),
    HangMidstream,
}

fn magic(model: &str) -> Magic {
    let case = match model {
        "error-400" => ErrorCase::BadRequest,
        "error-400-context" => ErrorCase::ContextTooLong,
        "error-401" => ErrorCase::InvalidKey,
        "error-403" => ErrorCase::Forbidden,
        "error-404" => ErrorCase::ModelNotFound,
        "error-429" => ErrorCase::RateLimited,
        "error-500" => ErrorCase::Internal,
        "error-503" => ErrorCase::Unavailable,
        "error-529" | "overloaded" => ErrorCase::Overloaded,
        "hang-midstream" => return Magic::HangMidstream,
        other => {
            return match other
                .strip_prefix("slow-")
                .and_then(|ms| ms.parse::<u64>().ok())
            {
                Some(ms) => Magic::Slow(Duration::from_millis(ms)),
                None => Magic::None,
            };
        }
    };
    Magic::Error(case)
}

/// The magic model `coding-agent` plays a small coding task on a repository holding `calc.py`
/// (`add` subtracts) and `test_calc.py`, one step per assistant turn already in the
/// conversation: read both files, fix the bug, run the test, answer. Stateless, so any number
/// of sessions and every wire protocol play it at once.
///
/// It plays with whatever tools the client offers: freeway's agents (`read_file`, `edit_file`,
/// `bash`), Claude Code (`Read`, `Edit`, `Bash`), opencode (`read`, `edit`, `bash`) and Codex
/// CLI (`exec_command` or `shell` only: it reads with `cat` and edits with `sed`). Tools that
/// want an absolute path get one built from the working directory the client's prompt names.
/// A request with no usable tools (a title or summary side call) gets a short text.
fn coding_script(conv: &Conversation, call_id: &str) -> Answer {
    let id = |i: usize| {
        if call_id.is_empty() {
            String::new()
        } else {
            format!("{call_id}_{}_{i}", conv.assistant_turns)
        }
    };
    let kit = Toolkit::find(&conv.tools, conv.cwd.as_deref());
    let step = match conv.assistant_turns {
        0 => match &kit.read {
            Some(read) => Some(vec![
                (read.name, read.args("test_calc.py", &kit)),
                (read.name, read.args("calc.py", &kit)),
            ]),
            None => kit
                .run
                .as_ref()
                .map(|run| vec![(run.name, run.args("cat test_calc.py calc.py"))]),
        },
        1 => match &kit.edit {
            Some(edit) => Some(vec![(
                edit.name,
                edit.args_edit("calc.py", "return a - b", "return a + b", &kit),
            )]),
            None => kit.run.as_ref().map(|run| {
                vec![(
                    run.name,
                    run.args("sed -i 's/return a - b/return a + b/' calc.py"),
                )]
            }),
        },
        2 => kit
            .run
            .as_ref()
            .map(|run| vec![(run.name, run.args("python3 test_calc.py"))]),
        _ => None,
    };
    if let Some(calls) = step {
        return Answer::tool_calls(
            calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, args))| MockToolCall::new(&id(i), name, &args))
                .collect(),
        );
    }
    match &conv.last {
        Last::ToolResult(result) => Answer::text(format!(
            "Fixed add() in calc.py: it subtracted. The test run said: {}",
            result
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
        )),
        Last::User(_) if conv.assistant_turns == 0 => Answer::text("Fix the failing calc test"),
        Last::User(text) => Answer::text(format!(
            "You asked: {text}. Earlier I fixed add() in calc.py, which subtracted."
        )),
        Last::Other => Answer::text("Done."),
    }
}

/// The tools a coding client offers, found by name, with the argument names each one takes.
struct Toolkit<'a> {
    read: Option<FileTool<'a>>,
    edit: Option<FileTool<'a>>,
    run: Option<RunTool<'a>>,
    cwd: Option<&'a str>,
}

struct FileTool<'a> {
    name: &'a str,
    /// `path` (relative to the workspace), `file_path` or `filePath` (absolute).
    path: &'static str,
    /// `old_string`/`new_string` or `oldString`/`newString`.
    camel: bool,
}

struct RunTool<'a> {
    name: &'a str,
    /// `command` or `cmd`.
    field: &'static str,
    /// The command is an argv array (`shell`), not a string.
    argv: bool,
    /// The tool asks for a one-line `description` of each command (Claude Code, opencode).
    described: bool,
}

impl<'a> Toolkit<'a> {
    fn find(tools: &'a [(String, Value)], cwd: Option<&'a str>) -> Self {
        let mut kit = Toolkit {
            read: None,
            edit: None,
            run: None,
            cwd,
        };
        for (name, schema) in tools {
            let has = |field: &str| schema.pointer(&format!("/properties/{field}")).is_some();
            let path = ["path", "file_path", "filePath"]
                .into_iter()
                .find(|f| has(f));
            match name.as_str() {
                "read_file" | "Read" | "read" => {
                    if let Some(path) = path {
                        kit.read = Some(FileTool {
                            name,
                            path,
                            camel: false,
                        });
                    }
                }
                "edit_file" | "Edit" | "edit" => {
                    if let Some(path) = path {
                        kit.edit = Some(FileTool {
                            name,
                            path,
                            camel: has("oldString"),
                        });
                    }
                }
                "bash" | "Bash" | "exec_command" | "shell" => {
                    let field = if has("cmd") { "cmd" } else { "command" };
                    let argv = schema.pointer(&format!("/properties/{field}/type"))
                        == Some(&Value::from("array"));
                    kit.run = Some(RunTool {
                        name,
                        field,
                        argv,
                        described: has("description"),
                    });
                }
                _ => {}
            }
        }
        kit
    }

    fn path(&self, tool: &FileTool<'_>, file: &str) -> String {
        match (tool.path, self.cwd) {
            ("path", _) | (_, None) => file.to_owned(),
            (_, Some(cwd)) => format!("{}/{file}", cwd.trim_end_matches('/')),
        }
    }
}

impl FileTool<'_> {
    fn args(&self, file: &str, kit: &Toolkit<'_>) -> Value {
        let mut args = serde_json::Map::new();
        args.insert(self.path.to_owned(), Value::from(kit.path(self, file)));
        Value::Object(args)
    }

    fn args_edit(&self, file: &str, old: &str, new: &str, kit: &Toolkit<'_>) -> Value {
        let (old_key, new_key) = if self.camel {
            ("oldString", "newString")
        } else {
            ("old_string", "new_string")
        };
        let mut args = self.args(file, kit);
        if let Value::Object(map) = &mut args {
            map.insert(old_key.to_owned(), Value::from(old));
            map.insert(new_key.to_owned(), Value::from(new));
        }
        args
    }
}

impl RunTool<'_> {
    fn args(&self, command: &str) -> Value {
        let command = if self.argv {
            serde_json::json!(["bash", "-lc", command])
        } else {
            Value::from(command)
        };
        let mut args = serde_json::Map::new();
        args.insert(self.field.to_owned(), command);
        if self.described {
            args.insert("description".to_owned(), Value::from("Run a command"));
        }
        Value::Object(args)
    }
}

/// [`working_directory`], looked for only for the `coding-agent` model (the benchmark's
/// upstream skips the walk).
pub(crate) fn coding_cwd(model: &str, body: &Value) -> Option<String> {
    model
        .starts_with("coding-agent")
        .then(|| working_directory(body))
        .flatten()
}

/// The working directory a coding client names in its prompt: Claude Code's `Primary working
/// directory: …`, opencode's `Working directory: …`, Codex CLI's `<cwd>…</cwd>`.
pub(crate) fn working_directory(body: &Value) -> Option<String> {
    match body {
        Value::String(text) => text.lines().find_map(|line| {
            let line = line.trim().trim_start_matches("- ");
            if let Some(rest) = line
                .strip_prefix("Primary working directory:")
                .or_else(|| line.strip_prefix("Working directory:"))
            {
                return Some(rest.trim().to_owned()).filter(|d| d.starts_with('/'));
            }
            let start = line.find("<cwd>")? + "<cwd>".len();
            let end = line[start..].find("</cwd>")? + start;
            Some(line[start..end].to_owned())
        }),
        Value::Array(items) => items.iter().find_map(working_directory),
        Value::Object(map) => map.values().find_map(working_directory),
        _ => None,
    }
}

pub(crate) fn answer(conv: &Conversation, call_id: &str) -> Answer {
    if conv.model.starts_with("coding-agent") {
        return coding_script(conv, call_id);
    }
    let input = conv.input_words.max(1);
    let mut answer = match (&conv.last, conv.tools.first()) {
        (Last::User(_), Some((name, schema))) => Answer::tool_calls(vec![MockToolCall::new(
            call_id,
            name,
            &arguments_from_schema(schema),
        )]),
        (Last::ToolResult(result), _) => Answer::text(format!("The tool said: {result}")),
        (Last::User(text), None) => Answer::text(format!("You said: {text}")),
        (Last::Other, _) => Answer::text("You said: "),
    };
    let output = match answer.tool_calls.first() {
        Some(c) => word_count(&c.arguments).max(1),
        None => word_count(&answer.text),
    };
    answer.usage = MockUsage {
        input,
        output,
        ..MockUsage::default()
    };
    answer
}

/// All three protocols on their real paths.
pub fn router(keys: Keys) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1beta/models", get(gemini_models))
        .route("/v1beta/models/{target}", post(gemini_call))
        .route("/_mock/calls", get(calls))
        .route("/_mock/traceparents", get(traceparents))
        // An OTLP/HTTP sink, so that a benchmark can measure freeway with trace export on.
        .route("/v1/traces", post(otlp_sink))
        .with_state(Arc::new(Mock {
            keys,
            ..Mock::default()
        }))
}

/// Serves [`router`] until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, keys: Keys) -> std::io::Result<()> {
    axum::serve(listener, router(keys)).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Answers a magic model, or plays the normal reply with its delays.
fn finish(
    model_magic: Magic,
    normal: impl FnOnce() -> Reply,
    error: impl FnOnce(ErrorCase) -> Reply,
) -> Reply {
    match model_magic {
        Magic::None => normal(),
        Magic::Error(case) => error(case),
        Magic::Slow(d) => normal().delay(d),
        Magic::HangMidstream => hang_midstream(normal()),
    }
}

fn hang_midstream(reply: Reply) -> Reply {
    let body = match reply.body {
        ReplyBody::Stream(script) => {
            let half = script.frame_count().div_ceil(2);
            script.truncate_frames(half).hang()
        }
        ReplyBody::Whole(bytes) => {
            let half = bytes.slice(..bytes.len() / 2);
            SseScript::new().raw(half).hang()
        }
    };
    Reply {
        body: ReplyBody::Stream(body),
        ..reply
    }
}

fn parse(body: &Bytes) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

// ---- OpenAI ----

fn openai_auth(keys: &Keys, headers: &HeaderMap) -> Option<Reply> {
    let given = header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    match (&keys.openai, given) {
        (None, _) => None,
        (Some(_), None) => Some(openai::error(ErrorCase::MissingKey, "")),
        (Some(expected), Some(given)) if expected == given => None,
        (Some(_), Some(_)) => Some(openai::error(ErrorCase::InvalidKey, "")),
    }
}

fn openai_invalid_json() -> Reply {
    Reply::json(
        400,
        &openai::error_body(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
        ),
    )
}

async fn openai_chat(State(mock): State<Arc<Mock>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(denied) = openai_auth(&mock, &headers) {
        return denied.into_response();
    }
    let Some(body) = parse(&body) else {
        return openai_invalid_json().into_response();
    };
    let conv = openai::conversation(&body);
    mock.count(&conv.model, &headers);
    let reply = finish(
        magic(&conv.model),
        || {
            let answer = answer(&conv, "call_mock_0");
            if conv.stream {
                let shape = openai::StreamShape {
                    include_usage: conv.include_usage,
                    ..openai::StreamShape::default()
                };
                Reply::sse(openai::stream(&conv.model, &answer, shape))
            } else {
                openai::reply(&conv.model, &answer)
            }
        },
        |case| openai::error(case, &conv.model),
    );
    play(reply).await
}

async fn openai_embeddings(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = openai_auth(&mock, &headers) {
        return denied.into_response();
    }
    let Some(body) = parse(&body) else {
        return openai_invalid_json().into_response();
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let dims = body.get("dimensions").and_then(Value::as_u64).unwrap_or(8) as usize;
    let texts: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let reply = finish(
        magic(model),
        || {
            let vectors: Vec<Vec<f32>> = texts.iter().map(|t| embed(t, dims)).collect();
            let tokens = texts.iter().map(|t| word_count(t)).sum();
            openai::embeddings(model, &vectors, tokens)
        },
        |case| openai::error(case, model),
    );
    play(reply).await
}

/// `/v1/models` is OpenAI's and Anthropic's path; the `anthropic-version` header tells them apart.
async fn models(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") || headers.contains_key("x-api-key") {
        if let Some(denied) = anthropic_auth(&mock, &headers) {
            return denied.into_response();
        }
        return anthropic::models(&["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"])
            .into_response();
    }
    if let Some(denied) = openai_auth(&mock, &headers) {
        return denied.into_response();
    }
    openai::models(&["gpt-4.1", "gpt-4o-mini", "text-embedding-3-small"]).into_response()
}

/// A deterministic unit-ish vector from the text.
fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims.clamp(1, 4096))
        .map(|i| {
            h = h.rotate_left(7) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            ((h % 2000) as f32 / 1000.0) - 1.0
        })
        .collect()
}

// ---- Anthropic ----

fn anthropic_auth(keys: &Keys, headers: &HeaderMap) -> Option<Reply> {
    let given = header(headers, "x-api-key");
    let denied = match (&keys.anthropic, given) {
        (_, None) => Some(anthropic::error(ErrorCase::MissingKey, "")),
        (None, Some(_)) => None,
        (Some(expected), Some(given)) if expected == given => None,
        (Some(_), Some(_)) => Some(anthropic::error(ErrorCase::InvalidKey, "")),
    };
    if denied.is_some() {
        return denied;
    }
    if !headers.contains_key("anthropic-version") {
        return Some(anthropic::missing_version());
    }
    None
}

async fn anthropic_messages(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(denied) = anthropic_auth(&mock, &headers) {
        return denied.into_response();
    }
    let Some(body) = parse(&body) else {
        return Reply::json(
            400,
            &anthropic::error_body("invalid_request_error", "There was an issue with the format or content of your request. Please make sure it is valid JSON."),
        )
        .into_response();
    };
    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
        return Reply::json(
            400,
            &anthropic::error_body("invalid_request_error", "max_tokens: Field required"),
        )
        .into_response();
    }
    let conv = anthropic::conversation(&body);
    mock.count(&conv.model, &headers);
    let reply = finish(
        magic(&conv.model),
        || {
            let answer = answer(&conv, "toolu_01Mock0000000000000000");
            if conv.stream {
                Reply::sse(anthropic::stream(&conv.model, &answer, 3))
            } else {
                anthropic::reply(&conv.model, &answer)
            }
        },
        |case| anthropic::error(case, &conv.model),
    );
    play(reply).await
}

// ---- Gemini ----

fn gemini_auth(keys: &Keys, headers: &HeaderMap, uri: &Uri) -> Option<Reply> {
    let from_query = uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key=")));
    let given = header(headers, "x-goog-api-key").or(from_query);
    match (&keys.gemini, given) {
        (_, None) => Some(gemini::error(ErrorCase::MissingKey, "")),
        (None, Some(_)) => None,
        (Some(expected), Some(given)) if expected == given => None,
        (Some(_), Some(_)) => Some(gemini::error(ErrorCase::InvalidKey, "")),
    }
}

async fn gemini_models(State(mock): State<Arc<Mock>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(denied) = gemini_auth(&mock, &headers, &uri) {
        return denied.into_response();
    }
    gemini::models(&["gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004"]).into_response()
}

async fn gemini_call(
    State(mock): State<Arc<Mock>>,
    Path(target): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if let Some(denied) = gemini_auth(&mock, &headers, &uri) {
        return denied.into_response();
    }
    let Some((model, method)) = target.rsplit_once(':') else {
        return gemini::error(ErrorCase::ModelNotFound, &target).into_response();
    };
    let Some(body) = parse(&body) else {
        return gemini::error(ErrorCase::BadRequest, model).into_response();
    };
    let sse = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    let reply = match method {
        "generateContent" | "streamGenerateContent" => {
            let stream = method == "streamGenerateContent";
            let conv = gemini::conversation(model, stream, &body);
            mock.count(model, &headers);
            finish(
                magic(model),
                || {
                    let answer = answer(&conv, "");
                    match (stream, sse) {
                        (false, _) => gemini::reply(model, &answer),
                        (true, true) => Reply::sse(gemini::stream(model, &answer)),
                        // Without `alt=sse` the stream is one JSON array of chunks.
                        (true, false) => {
                            Reply::json(200, &Value::Array(gemini::chunks(model, &answer)))
                        }
                    }
                },
                |case| gemini::error(case, model),
            )
        }
        "batchEmbedContents" => finish(
            magic(model),
            || {
                let requests = body
                    .get("requests")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let vectors: Vec<Vec<f32>> = requests
                    .iter()
                    .map(|r| {
                        let text = r
                            .pointer("/content/parts/0/text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let dims = r
                            .get("outputDimensionality")
                            .and_then(Value::as_u64)
                            .unwrap_or(8) as usize;
                        embed(text, dims)
                    })
                    .collect();
                gemini::embeddings(&vectors)
            },
            |case| gemini::error(case, model),
        ),
        _ => gemini::error(ErrorCase::ModelNotFound, model),
    };
    play(reply).await
}

async fn play(reply: Reply) -> Response {
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    reply.into_response()
}
