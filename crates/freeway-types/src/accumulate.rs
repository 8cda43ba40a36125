//! Folding a stream into a complete response.

use futures_util::StreamExt;

use crate::{
    ChatResponse, ChatStream, ContentPart, FinishReason, ProviderError, StreamEvent, ToolCall,
    Usage,
};

/// Builds a [`ChatResponse`] from [`StreamEvent`]s, one event at a time.
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    text: String,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
    finish: Option<(FinishReason, Option<String>)>,
}

impl StreamAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.text.push_str(&text),
            StreamEvent::ToolCallStart { index, id, name } => {
                let slot = self.slot(index);
                slot.id = id;
                slot.name = name;
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                self.slot(index).arguments.push_str(&arguments);
            }
            StreamEvent::Usage { usage } => self.usage = usage,
            StreamEvent::Finish {
                reason,
                stop_sequence,
            } => self.finish = Some((reason, stop_sequence)),
        }
    }

    fn slot(&mut self, index: u32) -> &mut ToolCall {
        let index = index as usize;
        if self.tool_calls.len() <= index {
            self.tool_calls.resize_with(index + 1, || ToolCall {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            });
        }
        &mut self.tool_calls[index]
    }

    /// The response so far. A stream that ended without a finish reason is taken to have
    /// stopped naturally (or to be waiting on its tool calls, if it made any).
    pub fn finish(self, id: String, model: String) -> ChatResponse {
        let (finish_reason, stop_sequence) = self.finish.unwrap_or_else(|| {
            let reason = FinishReason::given_tool_calls(None, !self.tool_calls.is_empty());
            (reason, None)
        });
        let content = if self.text.is_empty() {
            Vec::new()
        } else {
            vec![ContentPart::Text { text: self.text }]
        };
        ChatResponse {
            id,
            model,
            content,
            tool_calls: self.tool_calls,
            finish_reason,
            stop_sequence,
            usage: self.usage,
        }
    }

    /// Drains a stream into a response; the first error ends it.
    pub async fn collect(
        mut stream: ChatStream,
        model: &str,
    ) -> Result<ChatResponse, ProviderError> {
        let mut acc = Self::new();
        while let Some(event) = stream.next().await {
            acc.push(event?);
        }
        Ok(acc.finish(String::new(), model.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn interleaved_tool_call_fragments_are_joined_by_index() {
        let events = vec![
            StreamEvent::TextDelta {
                text: "Let me ".into(),
            },
            StreamEvent::TextDelta {
                text: "check.".into(),
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "a".into(),
                name: "weather".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "b".into(),
                name: "time".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"tz\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"city\":\"Paris\"}".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "\"UTC\"}".into(),
            },
            StreamEvent::Usage {
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 5,
                    ..Usage::default()
                },
            },
        ];
        let stream: ChatStream = Box::pin(futures_util::stream::iter(events.into_iter().map(Ok)));
        let r = StreamAccumulator::collect(stream, "m").await.unwrap();
        assert_eq!(r.text(), "Let me check.");
        assert_eq!(r.tool_calls[0].arguments, "{\"city\":\"Paris\"}");
        assert_eq!(r.tool_calls[1].arguments, "{\"tz\":\"UTC\"}");
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.usage.output_tokens, 5);
    }
}
