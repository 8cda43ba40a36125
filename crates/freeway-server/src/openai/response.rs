//! [`ChatResponse`]s and [`StreamEvent`]s in the Chat Completions format.

use bytes::{BufMut, Bytes, BytesMut};
use freeway_types::{ChatResponse, FinishReason, StreamEvent, Usage};
use serde::Serialize;
use serde_json::json;

use crate::encode::FrameEncoder;
use crate::error::ApiError;

pub fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

#[derive(Serialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}

fn usage(u: &Usage) -> WireUsage {
    WireUsage {
        prompt_tokens: u.input_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: u.total_tokens(),
        prompt_tokens_details: PromptDetails {
            cached_tokens: u.cache_read_tokens,
        },
    }
}

/// A `chat.completion` object answering for `model` (the name the client asked for). It
/// borrows the response and serializes straight to the wire, with no JSON tree in between.
#[derive(Serialize)]
pub struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: WireUsage,
    system_fingerprint: Option<&'a str>,
    /// The agent session that answered, for `model: "agent:…"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    /// `null` when the answer is only tool calls.
    content: Option<String>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tool_calls: Vec<WireToolCall<'a>>,
}

#[derive(Serialize)]
struct WireToolCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

pub fn completion<'a>(
    id: &'a str,
    created: u64,
    model: &'a str,
    r: &'a ChatResponse,
) -> Completion<'a> {
    let text = r.text();
    let tool_calls: Vec<_> = r
        .tool_calls
        .iter()
        .map(|c| WireToolCall {
            id: &c.id,
            r#type: "function",
            function: WireFunction {
                name: &c.name,
                arguments: &c.arguments,
            },
        })
        .collect();
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    Completion {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish_reason(r.finish_reason),
        }],
        usage: usage(&r.usage),
        system_fingerprint: None,
        session_id: None,
    }
}

/// Encodes a stream as `chat.completion.chunk` SSE frames. The chunk envelope (id, created,
/// model) is serialized once; each frame appends only its `choices`.
pub struct ChunkEncoder {
    /// `data: {"id":…,"model":…,"choices":[`
    head: Vec<u8>,
    include_usage: bool,
    sent_role: bool,
    usage: Option<Usage>,
    finish: Option<FinishReason>,
}

impl ChunkEncoder {
    pub fn new(id: &str, created: u64, model: &str, include_usage: bool) -> Self {
        let mut head = b"data: {\"id\":".to_vec();
        write_json(&mut head, &id);
        head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        head.extend_from_slice(created.to_string().as_bytes());
        head.extend_from_slice(b",\"model\":");
        write_json(&mut head, &model);
        head.extend_from_slice(b",\"system_fingerprint\":null,\"choices\":[");
        Self {
            head,
            include_usage,
            sent_role: false,
            usage: None,
            finish: None,
        }
    }

    fn frame(&mut self, delta: impl FnOnce(&mut Vec<u8>), finish: Option<FinishReason>) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.head.len() + 128);
        buf.put_slice(&self.head);
        let mut body = Vec::with_capacity(96);
        body.extend_from_slice(b"{\"index\":0,\"delta\":{");
        if !self.sent_role {
            self.sent_role = true;
            body.extend_from_slice(b"\"role\":\"assistant\"");
            let before = body.len();
            delta(&mut body);
            if body.len() > before {
                body.insert(before, b',');
            }
        } else {
            delta(&mut body);
        }
        body.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(r) => {
                body.push(b'"');
                body.extend_from_slice(finish_reason(r).as_bytes());
                body.push(b'"');
            }
            None => body.extend_from_slice(b"null"),
        }
        body.extend_from_slice(b"}]");
        if self.include_usage {
            body.extend_from_slice(b",\"usage\":null");
        }
        body.extend_from_slice(b"}\n\n");
        buf.put_slice(&body);
        buf.freeze()
    }
}

impl FrameEncoder for ChunkEncoder {
    fn event(&mut self, event: StreamEvent) -> Option<Bytes> {
        match event {
            StreamEvent::TextDelta { text } => Some(self.frame(
                |b| {
                    b.extend_from_slice(b"\"content\":");
                    write_json(b, &text);
                },
                None,
            )),
            StreamEvent::ToolCallStart { index, id, name } => Some(self.frame(
                |b| {
                    b.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                    b.extend_from_slice(index.to_string().as_bytes());
                    b.extend_from_slice(b",\"id\":");
                    write_json(b, &id);
                    b.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                    write_json(b, &name);
                    b.extend_from_slice(b",\"arguments\":\"\"}}]");
                },
                None,
            )),
            StreamEvent::ToolCallDelta { index, arguments } => Some(self.frame(
                |b| {
                    b.extend_from_slice(b"\"tool_calls\":[{\"index\":");
                    b.extend_from_slice(index.to_string().as_bytes());
                    b.extend_from_slice(b",\"function\":{\"arguments\":");
                    write_json(b, &arguments);
                    b.extend_from_slice(b"}}]");
                },
                None,
            )),
            StreamEvent::Usage { usage } => {
                self.usage = Some(usage);
                None
            }
            StreamEvent::Finish { reason, .. } => {
                self.finish = Some(reason);
                None
            }
        }
    }

    /// The finish reason, the usage chunk if asked for, and `[DONE]`.
    fn end(&mut self) -> Bytes {
        let reason = self.finish.take().unwrap_or(FinishReason::Stop);
        let mut out = BytesMut::new();
        out.put(self.frame(|_| {}, Some(reason)));
        if self.include_usage {
            out.put_slice(&self.head);
            out.put_slice(b"],\"usage\":");
            let mut u = Vec::new();
            write_json(&mut u, &usage(&self.usage.unwrap_or_default()));
            out.put_slice(&u);
            out.put_slice(b"}\n\n");
        }
        out.put_slice(b"data: [DONE]\n\n");
        out.freeze()
    }

    /// An error object, which the OpenAI clients raise on.
    fn error(&mut self, e: ApiError) -> Bytes {
        let body = json!({
            "error": {
                "message": e.message,
                "type": "server_error",
                "param": null,
                "code": e.code,
            }
        });
        let mut out = b"data: ".to_vec();
        write_json(&mut out, &body);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Strings, numbers and plain structs cannot fail to serialize.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    fn parse(frame: &str) -> serde_json::Value {
        serde_json::from_str(frame.strip_prefix("data: ").unwrap().trim_end()).unwrap()
    }

    #[test]
    fn frames_are_valid_chunks_with_role_first_and_usage_last() {
        let mut enc = ChunkEncoder::new("chatcmpl-1", 7, "m\"x", true);
        let first = parse(&text(
            enc.event(StreamEvent::TextDelta {
                text: "Hi \"there\"\n".into(),
            })
            .unwrap(),
        ));
        assert_eq!(first["model"], "m\"x");
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(first["choices"][0]["delta"]["content"], "Hi \"there\"\n");
        assert!(first["usage"].is_null());
        let call = parse(&text(
            enc.event(StreamEvent::ToolCallStart {
                index: 1,
                id: "c".into(),
                name: "f".into(),
            })
            .unwrap(),
        ));
        assert!(call["choices"][0]["delta"].get("role").is_none());
        assert_eq!(call["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert!(
            enc.event(StreamEvent::Usage {
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                    ..Usage::default()
                }
            })
            .is_none()
        );
        assert!(
            enc.event(StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                stop_sequence: None
            })
            .is_none()
        );
        let end = text(enc.end());
        let frames: Vec<&str> = end.split("\n\n").filter(|f| !f.is_empty()).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(
            parse(frames[0])["choices"][0]["finish_reason"],
            "tool_calls"
        );
        let usage = parse(frames[1]);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 7);
        assert_eq!(frames[2], "data: [DONE]");
    }

    #[test]
    fn a_completion_serializes_in_the_wire_order_with_null_content_for_tool_calls_only() {
        use freeway_types::{ContentPart, ToolCall};
        let mut r = ChatResponse {
            id: "up-1".into(),
            model: "m".into(),
            content: vec![ContentPart::text("Hi")],
            tool_calls: Vec::new(),
            finish_reason: FinishReason::Stop,
            stop_sequence: None,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            },
        };
        let text = serde_json::to_string(&completion("chatcmpl-1", 7, "up/m", &r)).unwrap();
        assert_eq!(
            text,
            r#"{"id":"chatcmpl-1","object":"chat.completion","created":7,"model":"up/m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":0}},"system_fingerprint":null}"#
        );

        r.content.clear();
        r.tool_calls.push(ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        });
        r.finish_reason = FinishReason::ToolCalls;
        let mut body = completion("chatcmpl-1", 7, "up/m", &r);
        body.session_id = Some("ses_1");
        let value = serde_json::to_value(&body).unwrap();
        let message = &value["choices"][0]["message"];
        assert!(message["content"].is_null());
        assert_eq!(message["tool_calls"][0]["type"], "function");
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            r#"{"city":"Oslo"}"#
        );
        assert_eq!(value["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(value["session_id"], "ses_1");
    }

    #[test]
    fn a_role_only_first_frame_is_well_formed() {
        let mut enc = ChunkEncoder::new("i", 1, "m", false);
        let end = text(enc.end());
        let first = end.split("\n\n").next().unwrap();
        assert_eq!(
            parse(first)["choices"][0]["delta"],
            json!({"role": "assistant"})
        );
    }
}
