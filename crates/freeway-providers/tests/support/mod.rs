//! One harness per protocol: how to build the provider against a mock, how the protocol renders
//! answers and errors, and what the wire must look like. The conformance cases are generic over it.

use std::time::Duration;

use freeway_providers::anthropic::AnthropicProvider;
use freeway_providers::gemini::GeminiProvider;
use freeway_providers::openai::{OpenAiProvider, Quirks};
use freeway_providers::{Auth, HttpSettings, Secret, Timeouts};
use freeway_testkit::{
    Answer, CapturedRequest, ErrorCase, MockUpstream, MockUsage, Protocol, Reply, SseScript,
    anthropic, gemini, openai,
};
use freeway_types::{
    ChatStream, ErrorKind, FinishReason, Provider, ProviderError, StreamEvent, ToolCall, Usage,
};
use futures_util::StreamExt;
use serde_json::{Value, json};

pub const KEY: &str = "sk-test-Zq81secretKEY0123456789";
pub const MODEL: &str = "test-model";

pub fn settings(base_url: String, auth: Auth, timeouts: Timeouts) -> HttpSettings {
    HttpSettings {
        provider: "mock".to_owned(),
        base_url,
        auth,
        headers: Vec::new(),
        timeouts,
    }
}

/// Short timeouts so a broken test fails fast instead of hanging.
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(5),
        first_byte: Duration::from_secs(10),
        read: Duration::from_secs(10),
    }
}

/// Every event of a stream, and the error that ended it, if any.
pub async fn drain(mut stream: ChatStream) -> (Vec<StreamEvent>, Option<ProviderError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) => {
                // Nothing may follow an error.
                assert!(stream.next().await.is_none(), "events after an error");
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

pub fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub trait Harness {
    const PROTOCOL: Protocol;
    /// Whether the protocol has embeddings.
    const EMBEDDINGS: bool;

    fn provider_with(mock_base: String, timeouts: Timeouts) -> Box<dyn Provider>;

    fn provider(mock: &MockUpstream) -> Box<dyn Provider> {
        Self::provider_with(mock.base_url(), test_timeouts())
    }

    fn complete_reply(answer: &Answer) -> Reply;
    fn stream_script(answer: &Answer) -> SseScript;
    fn stream_reply(answer: &Answer) -> Reply {
        Reply::sse(Self::stream_script(answer))
    }
    fn error_reply(case: ErrorCase) -> Reply;
    /// A stream that sends the text `Partial` and then fails the protocol's way.
    fn midstream_error() -> SseScript;
    fn midstream_error_kind() -> ErrorKind;

    fn assert_chat_request(req: &CapturedRequest, stream: bool);
    fn assert_tool_offered(body: &Value, name: &str, schema: &Value);
    /// The follow-up turn: the assistant's call and the tool's result, on the wire.
    fn assert_tool_round_trip(body: &Value, call: &ToolCall, result: &str);
    fn assert_system(body: &Value, system: &str);
    fn assert_images(body: &Value, url: &str, media_type: &str, data: &str);
    fn assert_stop_and_max(body: &Value, stop: &str, max: u32);

    fn expected_usage(u: &MockUsage) -> Usage;
    /// What a stop-sequence finish reads as: only Anthropic names the sequence.
    fn expected_stop_sequence(seq: &str) -> (FinishReason, Option<String>);
}

fn header(req: &CapturedRequest, name: &str) -> String {
    req.header(name)
        .unwrap_or_else(|| panic!("header {name} missing from {:?}", req.headers))
        .to_owned()
}

pub struct OpenAi;

impl Harness for OpenAi {
    const PROTOCOL: Protocol = Protocol::OpenAi;
    const EMBEDDINGS: bool = true;

    fn provider_with(base: String, timeouts: Timeouts) -> Box<dyn Provider> {
        let s = settings(base, Auth::Bearer(Secret::new(KEY)), timeouts);
        Box::new(OpenAiProvider::new(&s, Quirks::default()).unwrap())
    }

    fn complete_reply(answer: &Answer) -> Reply {
        openai::reply(MODEL, answer)
    }

    fn stream_script(answer: &Answer) -> SseScript {
        openai::stream(MODEL, answer, openai::StreamShape::default())
    }

    fn error_reply(case: ErrorCase) -> Reply {
        openai::error(case, MODEL)
    }

    fn midstream_error() -> SseScript {
        openai::stream(
            MODEL,
            &Answer::text("Partial answer"),
            openai::StreamShape::default(),
        )
        .truncate_frames(2)
        .data(&openai::stream_error(
            "The server had an error while processing your request. Sorry about that!",
        ))
    }

    fn midstream_error_kind() -> ErrorKind {
        ErrorKind::Upstream
    }

    fn assert_chat_request(req: &CapturedRequest, stream: bool) {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1/chat/completions");
        assert_eq!(header(req, "authorization"), format!("Bearer {KEY}"));
        assert_eq!(header(req, "content-type"), "application/json");
        let body = req.json();
        assert_eq!(body["model"], MODEL);
        if stream {
            assert_eq!(body["stream"], true);
            assert_eq!(body["stream_options"], json!({"include_usage": true}));
        } else {
            assert!(body.get("stream").is_none_or(|s| s == false));
        }
    }

    fn assert_tool_offered(body: &Value, name: &str, schema: &Value) {
        assert_eq!(
            body["tools"][0],
            json!({"type": "function", "function": {"name": name, "description": "Weather by city", "parameters": schema}})
        );
    }

    fn assert_tool_round_trip(body: &Value, call: &ToolCall, result: &str) {
        let messages = body["messages"].as_array().unwrap();
        let assistant = &messages[messages.len() - 2];
        assert_eq!(assistant["role"], "assistant");
        assert_eq!(
            assistant["tool_calls"][0],
            json!({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}})
        );
        assert_eq!(
            messages[messages.len() - 1],
            json!({"role": "tool", "tool_call_id": call.id, "content": result})
        );
    }

    fn assert_system(body: &Value, system: &str) {
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": system})
        );
    }

    fn assert_images(body: &Value, url: &str, media_type: &str, data: &str) {
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is in these images?"},
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}}
            ])
        );
    }

    fn assert_stop_and_max(body: &Value, stop: &str, max: u32) {
        assert_eq!(body["stop"], json!([stop]));
        assert_eq!(body["max_tokens"], max);
    }

    fn expected_usage(u: &MockUsage) -> Usage {
        Usage {
            input_tokens: u.input + u.cache_read + u.cache_write,
            output_tokens: u.output,
            cache_read_tokens: u.cache_read,
            cache_write_tokens: 0,
        }
    }

    fn expected_stop_sequence(_: &str) -> (FinishReason, Option<String>) {
        (FinishReason::Stop, None)
    }
}

pub struct Anthropic;

impl Harness for Anthropic {
    const PROTOCOL: Protocol = Protocol::Anthropic;
    const EMBEDDINGS: bool = false;

    fn provider_with(base: String, timeouts: Timeouts) -> Box<dyn Provider> {
        let s = settings(
            base,
            Auth::Header(http::HeaderName::from_static("x-api-key"), Secret::new(KEY)),
            timeouts,
        );
        Box::new(AnthropicProvider::new(&s, 1024).unwrap())
    }

    fn complete_reply(answer: &Answer) -> Reply {
        anthropic::reply(MODEL, answer)
    }

    fn stream_script(answer: &Answer) -> SseScript {
        anthropic::stream(MODEL, answer, 3)
    }

    fn error_reply(case: ErrorCase) -> Reply {
        anthropic::error(case, MODEL)
    }

    fn midstream_error() -> SseScript {
        SseScript::from_recording(
            &freeway_testkit::fixture(Protocol::Anthropic, "stream_overloaded.sse").unwrap(),
        )
    }

    fn midstream_error_kind() -> ErrorKind {
        ErrorKind::Overloaded
    }

    fn assert_chat_request(req: &CapturedRequest, stream: bool) {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1/messages");
        assert_eq!(header(req, "x-api-key"), KEY);
        assert_eq!(header(req, "anthropic-version"), "2023-06-01");
        assert!(req.header("authorization").is_none());
        let body = req.json();
        assert_eq!(body["model"], MODEL);
        assert!(
            body["max_tokens"].as_u64().is_some(),
            "max_tokens is required"
        );
        if stream {
            assert_eq!(body["stream"], true);
        } else {
            assert!(body.get("stream").is_none_or(|s| s == false));
        }
    }

    fn assert_tool_offered(body: &Value, name: &str, schema: &Value) {
        assert_eq!(
            body["tools"][0],
            json!({"name": name, "description": "Weather by city", "input_schema": schema})
        );
    }

    fn assert_tool_round_trip(body: &Value, call: &ToolCall, result: &str) {
        let messages = body["messages"].as_array().unwrap();
        let assistant = &messages[messages.len() - 2];
        assert_eq!(assistant["role"], "assistant");
        let tool_use = assistant["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .expect("a tool_use block");
        assert_eq!(
            tool_use,
            &json!({"type": "tool_use", "id": call.id, "name": call.name, "input": json_of(&call.arguments)})
        );
        assert_eq!(
            messages[messages.len() - 1],
            json!({"role": "user", "content": [{
                "type": "tool_result", "tool_use_id": call.id,
                "content": [{"type": "text", "text": result}]
            }]})
        );
    }

    fn assert_system(body: &Value, system: &str) {
        assert_eq!(body["system"], system);
        for m in body["messages"].as_array().unwrap() {
            assert_ne!(m["role"], "system");
        }
    }

    fn assert_images(body: &Value, url: &str, media_type: &str, data: &str) {
        assert_eq!(
            body["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is in these images?"},
                {"type": "image", "source": {"type": "url", "url": url}},
                {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
            ])
        );
    }

    fn assert_stop_and_max(body: &Value, stop: &str, max: u32) {
        assert_eq!(body["stop_sequences"], json!([stop]));
        assert_eq!(body["max_tokens"], max);
    }

    fn expected_usage(u: &MockUsage) -> Usage {
        Usage {
            input_tokens: u.input + u.cache_read + u.cache_write,
            output_tokens: u.output,
            cache_read_tokens: u.cache_read,
            cache_write_tokens: u.cache_write,
        }
    }

    fn expected_stop_sequence(seq: &str) -> (FinishReason, Option<String>) {
        (FinishReason::StopSequence, Some(seq.to_owned()))
    }
}

pub struct Gemini;

impl Harness for Gemini {
    const PROTOCOL: Protocol = Protocol::Gemini;
    const EMBEDDINGS: bool = true;

    fn provider_with(base: String, timeouts: Timeouts) -> Box<dyn Provider> {
        let s = settings(
            base,
            Auth::Header(
                http::HeaderName::from_static("x-goog-api-key"),
                Secret::new(KEY),
            ),
            timeouts,
        );
        Box::new(GeminiProvider::new(&s).unwrap())
    }

    fn complete_reply(answer: &Answer) -> Reply {
        gemini::reply(MODEL, answer)
    }

    fn stream_script(answer: &Answer) -> SseScript {
        gemini::stream(MODEL, answer)
    }

    fn error_reply(case: ErrorCase) -> Reply {
        gemini::error(case, MODEL)
    }

    fn midstream_error() -> SseScript {
        gemini::stream(MODEL, &Answer::text("Partial answer"))
            .truncate_frames(1)
            .gemini(&gemini::error_body(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
                json!([]),
            ))
    }

    fn midstream_error_kind() -> ErrorKind {
        ErrorKind::Overloaded
    }

    fn assert_chat_request(req: &CapturedRequest, stream: bool) {
        assert_eq!(req.method, "POST");
        if stream {
            assert_eq!(
                req.path,
                format!("/v1beta/models/{MODEL}:streamGenerateContent")
            );
            assert_eq!(req.query.as_deref(), Some("alt=sse"));
        } else {
            assert_eq!(req.path, format!("/v1beta/models/{MODEL}:generateContent"));
        }
        assert_eq!(header(req, "x-goog-api-key"), KEY);
        assert!(req.header("authorization").is_none());
        // The key travels in the header, never in the URL.
        assert!(!req.path_and_query().contains(KEY));
    }

    fn assert_tool_offered(body: &Value, name: &str, schema: &Value) {
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0],
            json!({"name": name, "description": "Weather by city", "parameters": schema})
        );
    }

    fn assert_tool_round_trip(body: &Value, call: &ToolCall, result: &str) {
        let contents = body["contents"].as_array().unwrap();
        let model = &contents[contents.len() - 2];
        assert_eq!(model["role"], "model");
        assert_eq!(
            model["parts"][0],
            json!({"functionCall": {"name": call.name, "args": json_of(&call.arguments)}})
        );
        assert_eq!(
            contents[contents.len() - 1],
            json!({"role": "user", "parts": [{"functionResponse": {
                "name": call.name, "response": {"result": result}
            }}]})
        );
    }

    fn assert_system(body: &Value, system: &str) {
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": system}]})
        );
        for c in body["contents"].as_array().unwrap() {
            assert!(c["role"] == "user" || c["role"] == "model");
        }
    }

    fn assert_images(body: &Value, url: &str, media_type: &str, data: &str) {
        assert_eq!(
            body["contents"][0]["parts"],
            json!([
                {"text": "What is in these images?"},
                {"fileData": {"mimeType": "image/png", "fileUri": url}},
                {"inlineData": {"mimeType": media_type, "data": data}}
            ])
        );
    }

    fn assert_stop_and_max(body: &Value, stop: &str, max: u32) {
        assert_eq!(body["generationConfig"]["stopSequences"], json!([stop]));
        assert_eq!(body["generationConfig"]["maxOutputTokens"], max);
    }

    fn expected_usage(u: &MockUsage) -> Usage {
        Usage {
            input_tokens: u.input + u.cache_read,
            output_tokens: u.output,
            cache_read_tokens: u.cache_read,
            cache_write_tokens: 0,
        }
    }

    fn expected_stop_sequence(_: &str) -> (FinishReason, Option<String>) {
        (FinishReason::Stop, None)
    }
}
