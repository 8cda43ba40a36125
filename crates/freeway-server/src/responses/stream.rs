//! [`StreamEvent`]s as Responses API server-sent events, each with its `sequence_number`:
//! `response.created`, `response.in_progress`, then per output item `output_item.added`,
//! its content or arguments deltas and their `.done`, `output_item.done`, and last
//! `response.completed` (or `response.incomplete`, or `response.failed`) with the whole
//! response and its usage.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use freeway_types::{FinishReason, StreamEvent, ToolCall, Usage};
use serde_json::{Value, json};

use super::response::{self, Envelope, Status};
use crate::encode::FrameEncoder;
use crate::error::ApiError;
use crate::http::unix_now;

enum Item {
    Message {
        id: String,
        text: String,
        open: bool,
    },
    Call {
        id: String,
        /// The tool call's index in the internal stream.
        index: u32,
        call: ToolCall,
        open: bool,
    },
}

/// What a finished stream produced: the final response object and the assistant turn, for
/// storing before the last event goes out.
pub struct Finished {
    pub body: Value,
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
}

pub type Slot = Arc<Mutex<Option<Finished>>>;

pub struct EventEncoder {
    envelope: Envelope,
    seq: u64,
    items: Vec<Item>,
    /// The message item text deltas go to, while no other item has started after it.
    text_item: Option<usize>,
    usage: Usage,
    finish: Option<FinishReason>,
    finished: Slot,
}

impl EventEncoder {
    pub fn new(envelope: Envelope, finished: Slot) -> Self {
        Self {
            envelope,
            seq: 0,
            items: Vec::new(),
            text_item: None,
            usage: Usage::default(),
            finish: None,
            finished,
        }
    }

    fn frame(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        if let Value::Object(o) = &mut data {
            o.insert("type".into(), kind.into());
            o.insert("sequence_number".into(), self.seq.into());
        }
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        if serde_json::to_writer(&mut *out, &data).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\n\n");
    }

    fn open_message(&mut self, out: &mut Vec<u8>) -> usize {
        let index = self.items.len();
        let id = freeway_types::random_id("msg_");
        self.frame(
            out,
            "response.output_item.added",
            json!({
                "output_index": index,
                "item": response::message_item(&id, "in_progress", None),
            }),
        );
        self.frame(
            out,
            "response.content_part.added",
            json!({
                "item_id": id,
                "output_index": index,
                "content_index": 0,
                "part": response::text_part(""),
            }),
        );
        self.items.push(Item::Message {
            id,
            text: String::new(),
            open: true,
        });
        self.text_item = Some(index);
        index
    }

    /// The `.done` events of one item, if it is still open.
    fn close(&mut self, out: &mut Vec<u8>, index: usize, status: &'static str) {
        let Some(item) = self.items.get_mut(index) else {
            return;
        };
        match item {
            Item::Message { open: false, .. } | Item::Call { open: false, .. } => {}
            Item::Message { id, text, open } => {
                *open = false;
                let (id, text) = (id.clone(), text.clone());
                self.frame(
                    out,
                    "response.output_text.done",
                    json!({
                        "item_id": id,
                        "output_index": index,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    }),
                );
                self.frame(
                    out,
                    "response.content_part.done",
                    json!({
                        "item_id": id,
                        "output_index": index,
                        "content_index": 0,
                        "part": response::text_part(&text),
                    }),
                );
                self.frame(
                    out,
                    "response.output_item.done",
                    json!({
                        "output_index": index,
                        "item": response::message_item(&id, status, Some(&text)),
                    }),
                );
            }
            Item::Call { id, call, open, .. } => {
                *open = false;
                let (id, call) = (id.clone(), call.clone());
                if self.envelope.tool_names.is_custom(&call.name) {
                    // The model's JSON arguments were held back: the free text goes out whole.
                    let input = response::custom_input(&call.arguments);
                    if !input.is_empty() {
                        self.frame(
                            out,
                            "response.custom_tool_call_input.delta",
                            json!({ "item_id": id, "output_index": index, "delta": input }),
                        );
                    }
                    self.frame(
                        out,
                        "response.custom_tool_call_input.done",
                        json!({ "item_id": id, "output_index": index, "input": input }),
                    );
                } else {
                    self.frame(
                        out,
                        "response.function_call_arguments.done",
                        json!({
                            "item_id": id,
                            "output_index": index,
                            "arguments": call.arguments,
                        }),
                    );
                }
                self.frame(
                    out,
                    "response.output_item.done",
                    json!({
                        "output_index": index,
                        "item": response::call_item(&id, status, &call, &self.envelope.tool_names),
                    }),
                );
            }
        }
    }

    fn close_text(&mut self, out: &mut Vec<u8>) {
        if let Some(index) = self.text_item.take() {
            self.close(out, index, "completed");
        }
    }

    fn output(&self, status: &str) -> Vec<Value> {
        self.items
            .iter()
            .map(|item| match item {
                Item::Message { id, text, .. } => response::message_item(id, status, Some(text)),
                Item::Call { id, call, .. } => {
                    response::call_item(id, status, call, &self.envelope.tool_names)
                }
            })
            .collect()
    }

    /// Closes every open item and sends the final lifecycle event.
    fn settle(&mut self, out: &mut Vec<u8>, status: Status) {
        let item_status = status.item_status();
        for index in 0..self.items.len() {
            self.close(out, index, item_status);
        }
        self.text_item = None;
        let kind = match status {
            Status::Completed | Status::InProgress => "response.completed",
            Status::Incomplete(_) => "response.incomplete",
            Status::Failed { .. } => "response.failed",
        };
        let done = matches!(status, Status::Completed | Status::Incomplete(_));
        let body = self.envelope.object(
            &status,
            self.output(item_status),
            done.then_some(&self.usage),
            done.then(unix_now),
        );
        if done {
            let (mut text, mut tool_calls) = (String::new(), Vec::new());
            for item in &self.items {
                match item {
                    Item::Message { text: t, .. } => text.push_str(t),
                    Item::Call { call, .. } => tool_calls.push(call.clone()),
                }
            }
            let finished = Finished {
                body: body.clone(),
                text,
                tool_calls,
            };
            *self
                .finished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(finished);
        }
        self.frame(out, kind, json!({ "response": body }));
    }
}

impl FrameEncoder for EventEncoder {
    fn start(&mut self) -> Option<Bytes> {
        let mut out = Vec::with_capacity(2048);
        let body = self
            .envelope
            .object(&Status::InProgress, Vec::new(), None, None);
        self.frame(
            &mut out,
            "response.created",
            json!({ "response": body.clone() }),
        );
        self.frame(
            &mut out,
            "response.in_progress",
            json!({ "response": body }),
        );
        Some(out.into())
    }

    fn event(&mut self, event: StreamEvent) -> Option<Bytes> {
        let mut out = Vec::with_capacity(256);
        match event {
            StreamEvent::TextDelta { text } => {
                if text.is_empty() {
                    return None;
                }
                let index = match self.text_item {
                    Some(i) => i,
                    None => self.open_message(&mut out),
                };
                if let Some(Item::Message { id, text: all, .. }) = self.items.get_mut(index) {
                    all.push_str(&text);
                    let id = id.clone();
                    self.frame(
                        &mut out,
                        "response.output_text.delta",
                        json!({
                            "item_id": id,
                            "output_index": index,
                            "content_index": 0,
                            "delta": text,
                            "logprobs": [],
                        }),
                    );
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                // Text after a call is a new message item, so the text so far is done.
                self.close_text(&mut out);
                let output_index = self.items.len();
                let item_id = self.envelope.tool_names.item_id(&name);
                let call = ToolCall {
                    id,
                    name,
                    arguments: String::new(),
                };
                self.frame(
                    &mut out,
                    "response.output_item.added",
                    json!({
                        "output_index": output_index,
                        "item": response::call_item(
                            &item_id,
                            "in_progress",
                            &call,
                            &self.envelope.tool_names,
                        ),
                    }),
                );
                self.items.push(Item::Call {
                    id: item_id,
                    index,
                    call,
                    open: true,
                });
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                // Calls stay open until the end: providers may interleave their fragments.
                let names = &self.envelope.tool_names;
                let found = self
                    .items
                    .iter_mut()
                    .enumerate()
                    .find_map(|(i, item)| match item {
                        Item::Call {
                            id,
                            index: k,
                            call,
                            open: true,
                        } if *k == index => {
                            call.arguments.push_str(&arguments);
                            Some((i, id.clone(), names.is_custom(&call.name)))
                        }
                        _ => None,
                    });
                match found {
                    // A custom call's input is sent whole when the call is done.
                    Some((_, _, true)) => {}
                    Some((output_index, item_id, false)) if !arguments.is_empty() => self.frame(
                        &mut out,
                        "response.function_call_arguments.delta",
                        json!({
                            "item_id": item_id,
                            "output_index": output_index,
                            "delta": arguments,
                        }),
                    ),
                    Some(_) => {}
                    None => tracing::warn!(
                        tool = index,
                        "arguments for a tool call that never started were dropped"
                    ),
                }
            }
            StreamEvent::Usage { usage } => self.usage = usage,
            StreamEvent::Finish { reason, .. } => self.finish = Some(reason),
        }
        (!out.is_empty()).then(|| out.into())
    }

    fn end(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(1024);
        let called = self.items.iter().any(|i| matches!(i, Item::Call { .. }));
        let reason = FinishReason::given_tool_calls(self.finish, called);
        self.settle(&mut out, Status::of(reason));
        out.into()
    }

    fn error(&mut self, error: ApiError) -> Bytes {
        let mut out = Vec::with_capacity(1024);
        let code = match error.status.as_u16() {
            429 => "rate_limit_exceeded",
            _ => "server_error",
        };
        self.settle(
            &mut out,
            Status::Failed {
                code,
                message: error.message,
            },
        );
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(frames: &[Bytes]) -> Vec<Value> {
        let text: String = frames
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        text.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                let (event, data) = f.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(event.strip_prefix("event: ").unwrap(), data["type"]);
                data
            })
            .collect()
    }

    fn encoder() -> (EventEncoder, Slot) {
        let slot = Slot::default();
        let envelope = Envelope {
            id: "resp_1".into(),
            created_at: 1,
            model: "m".into(),
            echo: serde_json::Map::new(),
            tool_names: Default::default(),
        };
        (EventEncoder::new(envelope, slot.clone()), slot)
    }

    #[test]
    fn a_custom_tool_call_streams_its_free_text_input_not_json() {
        let (mut enc, _slot) = encoder();
        enc.envelope.tool_names.custom("apply_patch");
        let mut out = vec![enc.start().unwrap()];
        for e in [
            StreamEvent::ToolCallStart {
                index: 0,
                id: "c".into(),
                name: "apply_patch".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"input\":\"*** Begin".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: " Patch\\n\"}".into(),
            },
        ] {
            out.extend(enc.event(e));
        }
        out.push(enc.end());
        let ev = events(&out);
        let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(
            !kinds.contains(&"response.function_call_arguments.delta"),
            "{kinds:?}"
        );
        let delta = ev
            .iter()
            .find(|e| e["type"] == "response.custom_tool_call_input.delta")
            .unwrap();
        assert_eq!(delta["delta"], "*** Begin Patch\n");
        let done = ev
            .iter()
            .find(|e| e["type"] == "response.custom_tool_call_input.done")
            .unwrap();
        assert_eq!(done["input"], "*** Begin Patch\n");
        let item = &ev.last().unwrap()["response"]["output"][0];
        assert_eq!(item["type"], "custom_tool_call");
        assert_eq!(item["input"], "*** Begin Patch\n");
        assert_eq!(item["call_id"], "c");
        assert!(item["id"].as_str().unwrap().starts_with("ctc_"), "{item}");
    }

    #[test]
    fn interleaved_calls_keep_their_own_items_and_text_after_a_call_is_a_new_message() {
        let (mut enc, slot) = encoder();
        let mut out = vec![enc.start().unwrap()];
        for e in [
            StreamEvent::TextDelta { text: "Hi".into() },
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
                arguments: "{}".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "1}".into(),
            },
            StreamEvent::TextDelta {
                text: "after".into(),
            },
        ] {
            out.extend(enc.event(e));
        }
        out.push(enc.end());
        let ev = events(&out);
        let seqs: Vec<u64> = ev
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (0..ev.len() as u64).collect::<Vec<_>>());
        let last = ev.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        let output = &last["response"]["output"];
        assert_eq!(output.as_array().unwrap().len(), 4);
        assert_eq!(output[0]["content"][0]["text"], "Hi");
        assert_eq!(output[1]["arguments"], "{}");
        assert_eq!(output[2]["arguments"], "{\"tz\":1}");
        assert_eq!(output[3]["content"][0]["text"], "after");
        let done: Vec<u64> = ev
            .iter()
            .filter(|e| e["type"] == "response.output_item.done")
            .map(|e| e["output_index"].as_u64().unwrap())
            .collect();
        assert_eq!(done, [0, 1, 2, 3]);
        let finished = slot.lock().unwrap().take().unwrap();
        assert_eq!(finished.text, "Hiafter");
        assert_eq!(finished.tool_calls.len(), 2);
    }

    #[test]
    fn a_length_stop_is_incomplete_and_a_failure_is_failed_without_storing() {
        let (mut enc, slot) = encoder();
        enc.start();
        enc.event(StreamEvent::TextDelta { text: "cut".into() });
        enc.event(StreamEvent::Finish {
            reason: FinishReason::Length,
            stop_sequence: None,
        });
        let ev = events(&[enc.end()]);
        let last = ev.last().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert!(slot.lock().unwrap().is_some());

        let (mut enc, slot) = encoder();
        enc.start();
        enc.event(StreamEvent::TextDelta {
            text: "half".into(),
        });
        let ev = events(&[enc.error(ApiError::internal("upstream went away"))]);
        let last = ev.last().unwrap();
        assert_eq!(last["type"], "response.failed");
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(last["response"]["error"]["code"], "server_error");
        assert!(slot.lock().unwrap().is_none());
    }
}
