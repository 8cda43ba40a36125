//! [`ChatResponse`]s and [`StreamEvent`]s in the Messages format.

use bytes::Bytes;
use freeway_types::{ChatResponse, FinishReason, StreamEvent, ToolCall, Usage};
use serde_json::{Value, json};

use crate::encode::FrameEncoder;
use crate::error::ApiError;

pub fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::StopSequence => "stop_sequence",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Anthropic counts cached prompt tokens apart from `input_tokens`.
fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens.saturating_sub(u.cache_read_tokens + u.cache_write_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
    })
}

/// A tool call's arguments as the JSON object Anthropic clients expect. Arguments that are not
/// a JSON object are passed on under `_raw_arguments` rather than lost.
fn input(call: &ToolCall) -> Value {
    if call.arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(&call.arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "_raw_arguments": call.arguments }),
    }
}

/// A `message` object answering for `model` (the name the client asked for).
pub fn message(id: &str, model: &str, r: &ChatResponse) -> Value {
    let mut content = Vec::new();
    let text = r.text();
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    for call in &r.tool_calls {
        content.push(
            json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": input(call) }),
        );
    }
    let reason = FinishReason::given_tool_calls(Some(r.finish_reason), !r.tool_calls.is_empty());
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(reason),
        "stop_sequence": r.stop_sequence,
        "usage": usage(&r.usage),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Text,
    /// The tool call (by its index among tool calls) whose block is open.
    Tool(u32),
}

/// A tool call that started while another tool block was open. Anthropic blocks cannot
/// interleave, so it is sent whole once that block closes.
struct Queued {
    tool: u32,
    id: String,
    name: String,
    arguments: String,
}

/// Encodes a stream as Messages SSE events: `message_start`, content blocks one after
/// another, `message_delta` with the stop reason and usage, `message_stop`.
pub struct EventEncoder {
    id: String,
    model: String,
    open: Open,
    block: u32,
    queued: Vec<Queued>,
    saw_tool: bool,
    usage: Usage,
    finish: Option<(FinishReason, Option<String>)>,
}

impl EventEncoder {
    pub fn new(id: String, model: String) -> Self {
        Self {
            id,
            model,
            open: Open::None,
            block: 0,
            queued: Vec::new(),
            saw_tool: false,
            usage: Usage::default(),
            finish: None,
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open != Open::None {
            frame(
                out,
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": self.block }),
            );
            self.block += 1;
            self.open = Open::None;
        }
    }

    fn open_tool(&mut self, out: &mut Vec<u8>, tool: u32, id: &str, name: &str) {
        frame(
            out,
            "content_block_start",
            &json!({
                "type": "content_block_start",
                "index": self.block,
                "content_block": { "type": "tool_use", "id": id, "name": name, "input": {} },
            }),
        );
        self.open = Open::Tool(tool);
        self.saw_tool = true;
    }

    fn json_delta(&self, out: &mut Vec<u8>, partial: &str) {
        frame(
            out,
            "content_block_delta",
            &json!({
                "type": "content_block_delta",
                "index": self.block,
                "delta": { "type": "input_json_delta", "partial_json": partial },
            }),
        );
    }

    /// Closes the open block and sends every queued tool call whole.
    fn settle(&mut self, out: &mut Vec<u8>) {
        self.close(out);
        for q in std::mem::take(&mut self.queued) {
            self.open_tool(out, q.tool, &q.id, &q.name);
            if !q.arguments.is_empty() {
                self.json_delta(out, &q.arguments);
            }
            self.close(out);
        }
    }
}

fn frame(out: &mut Vec<u8>, event: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut *out, data).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

impl FrameEncoder for EventEncoder {
    fn start(&mut self) -> Option<Bytes> {
        let mut out = Vec::with_capacity(512);
        frame(
            &mut out,
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": self.id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": { "input_tokens": 0, "output_tokens": 0 },
                },
            }),
        );
        frame(&mut out, "ping", &json!({ "type": "ping" }));
        Some(out.into())
    }

    fn event(&mut self, event: StreamEvent) -> Option<Bytes> {
        let mut out = Vec::with_capacity(160);
        match event {
            StreamEvent::TextDelta { text } => {
                if self.open != Open::Text {
                    self.settle(&mut out);
                    frame(
                        &mut out,
                        "content_block_start",
                        &json!({
                            "type": "content_block_start",
                            "index": self.block,
                            "content_block": { "type": "text", "text": "" },
                        }),
                    );
                    self.open = Open::Text;
                }
                frame(
                    &mut out,
                    "content_block_delta",
                    &json!({
                        "type": "content_block_delta",
                        "index": self.block,
                        "delta": { "type": "text_delta", "text": text },
                    }),
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => match self.open {
                Open::Tool(_) => self.queued.push(Queued {
                    tool: index,
                    id,
                    name,
                    arguments: String::new(),
                }),
                Open::Text | Open::None => {
                    self.settle(&mut out);
                    self.open_tool(&mut out, index, &id, &name);
                }
            },
            StreamEvent::ToolCallDelta { index, arguments } => {
                if self.open == Open::Tool(index) {
                    self.json_delta(&mut out, &arguments);
                } else if let Some(q) = self.queued.iter_mut().find(|q| q.tool == index) {
                    q.arguments.push_str(&arguments);
                } else {
                    tracing::warn!(
                        tool = index,
                        "arguments for a tool call whose block already closed were dropped"
                    );
                }
            }
            StreamEvent::Usage { usage } => self.usage = usage,
            StreamEvent::Finish {
                reason,
                stop_sequence,
            } => self.finish = Some((reason, stop_sequence)),
        }
        (!out.is_empty()).then(|| out.into())
    }

    fn end(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(256);
        self.settle(&mut out);
        let (reason, stop_sequence) = self.finish.take().unwrap_or((FinishReason::Stop, None));
        // A turn that called tools must say so, or clients will not run them.
        let reason = FinishReason::given_tool_calls(Some(reason), self.saw_tool);
        frame(
            &mut out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason(reason), "stop_sequence": stop_sequence },
                "usage": usage(&self.usage),
            }),
        );
        frame(&mut out, "message_stop", &json!({ "type": "message_stop" }));
        out.into()
    }

    fn error(&mut self, error: ApiError) -> Bytes {
        let mut out = Vec::new();
        frame(
            &mut out,
            "error",
            &json!({
                "type": "error",
                "error": { "type": error.anthropic_type(), "message": error.message },
            }),
        );
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(bytes: &[Bytes]) -> Vec<(String, Value)> {
        let text: String = bytes
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        text.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (event, data) = f.split_once('\n').unwrap();
                (
                    event.strip_prefix("event: ").unwrap().to_owned(),
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn interleaved_tool_calls_become_sequential_blocks_with_tool_use_stop() {
        let mut enc = EventEncoder::new("msg_1".into(), "m".into());
        let mut out = vec![enc.start().unwrap()];
        for e in [
            StreamEvent::TextDelta {
                text: "Checking.".into(),
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "w".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "t".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"tz\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"c\":1}".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "\"UTC\"}".into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::Stop,
                stop_sequence: None,
            },
        ] {
            out.extend(enc.event(e));
        }
        out.push(enc.end());
        let ev = events(&out);
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(ev[5].1["index"], 1);
        assert_eq!(ev[5].1["content_block"]["id"], "a");
        assert_eq!(ev[6].1["delta"]["partial_json"], "{\"c\":1}");
        assert_eq!(ev[8].1["index"], 2);
        assert_eq!(ev[8].1["content_block"]["id"], "b");
        assert_eq!(ev[9].1["delta"]["partial_json"], "{\"tz\":\"UTC\"}");
        assert_eq!(ev[11].1["delta"]["stop_reason"], "tool_use");
    }
}
