//! What a session keeps in the store, item by item, and the model context rebuilt from it.
//!
//! Items are appended, never rewritten: compaction adds a summary that hides older messages
//! from the model's context while they stay in the session.

use freeway_store::{NewItem, Scope, SessionItem, Store, StoreError};
use freeway_types::{Message, Usage};
use serde::{Deserialize, Serialize};

use crate::event::StopReason;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Message(MessageRecord),
    Compaction(CompactionRecord),
    Turn(TurnRecord),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub message: Message,
    /// The `provider/model` that wrote an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_nanos: Option<i64>,
    /// The tool that produced a tool result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl MessageRecord {
    pub fn plain(message: Message) -> Self {
        MessageRecord {
            message,
            target: None,
            usage: None,
            cost_nanos: None,
            tool: None,
            duration_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactionRecord {
    pub summary: String,
    /// Messages up to this item's sequence number are summarized.
    pub upto_seq: i64,
    pub replaced: usize,
    pub kept: usize,
    pub tokens_before: u64,
    pub tokens_after: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    pub reason: StopReason,
    pub steps: u32,
    pub usage: Usage,
    pub cost_nanos: i64,
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Message(_) => "message",
            Record::Compaction(_) => "compaction",
            Record::Turn(_) => "turn",
        }
    }

    pub fn to_item(&self) -> NewItem {
        let data = match self {
            Record::Message(m) => serde_json::to_string(m),
            Record::Compaction(c) => serde_json::to_string(c),
            Record::Turn(t) => serde_json::to_string(t),
        };
        NewItem {
            kind: self.kind().to_owned(),
            // Serializing these plain structs cannot fail.
            data: data.unwrap_or_default(),
        }
    }

    /// Reads a stored item; `None` for a kind this version does not know (kept, not shown).
    pub fn from_item(item: &SessionItem) -> Option<Record> {
        match item.kind.as_str() {
            "message" => serde_json::from_str(&item.data).ok().map(Record::Message),
            "compaction" => serde_json::from_str(&item.data)
                .ok()
                .map(Record::Compaction),
            "turn" => serde_json::from_str(&item.data).ok().map(Record::Turn),
            _ => None,
        }
    }
}

/// What the model sees of a session: the latest summary and the messages after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub summary: Option<String>,
    /// Messages with their sequence numbers, oldest first.
    pub messages: Vec<(i64, Message)>,
    /// What the provider counted for the newest request made from this context.
    pub measured: Option<Measured>,
}

/// A provider's count of a request's input: the first `messages` of the context (with the
/// system prompt and tools) came to `input_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub messages: usize,
    pub input_tokens: u64,
}

impl Context {
    /// The context of a session, read from its latest compaction on: the items a compaction
    /// hid are not read again, so a turn's start costs what the context holds, not the whole
    /// history.
    pub async fn load(
        store: &Store,
        scope: Scope<'_>,
        session_id: &str,
    ) -> Result<Self, StoreError> {
        let after = match store.last_item(scope, session_id, "compaction").await? {
            Some(item) => match Record::from_item(&item) {
                Some(Record::Compaction(c)) => c.upto_seq,
                // Unreadable here: read everything, as from_items would see it.
                _ => 0,
            },
            None => 0,
        };
        let items = store.items(scope, session_id, after, None).await?;
        Ok(Context::from_items(&items))
    }

    pub fn from_items(items: &[SessionItem]) -> Self {
        let mut context = Context::default();
        for item in items {
            match Record::from_item(item) {
                Some(Record::Message(m)) => context.push(item.seq, m.message, m.usage.as_ref()),
                Some(Record::Compaction(c)) => {
                    context.messages.retain(|(seq, _)| *seq > c.upto_seq);
                    context.summary = Some(c.summary);
                    // The request it measured no longer matches the context.
                    context.measured = None;
                }
                Some(Record::Turn(_)) | None => {}
            }
        }
        context
    }

    /// Appends a message; an assistant message's `usage` is the provider's count of the
    /// request that produced it, which held every message before it.
    pub fn push(&mut self, seq: i64, message: Message, usage: Option<&Usage>) {
        if let (Message::Assistant { .. }, Some(usage)) = (&message, usage)
            && usage.input_tokens > 0
        {
            self.measured = Some(Measured {
                messages: self.messages.len(),
                input_tokens: usage.input_tokens,
            });
        }
        self.messages.push((seq, message));
    }

    /// Tool calls of the last assistant message that never got a result (the process stopped
    /// between the call and its answer): their ids and names.
    pub fn dangling_calls(&self) -> Vec<(String, String)> {
        let Some(pos) = self
            .messages
            .iter()
            .rposition(|(_, m)| matches!(m, Message::Assistant { .. }))
        else {
            return Vec::new();
        };
        let Message::Assistant { tool_calls, .. } = &self.messages[pos].1 else {
            return Vec::new();
        };
        let answered: Vec<&str> = self.messages[pos + 1..]
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Tool { tool_call_id, .. } => Some(tool_call_id.as_str()),
                _ => None,
            })
            .collect();
        tool_calls
            .iter()
            .filter(|c| !answered.contains(&c.id.as_str()))
            .map(|c| (c.id.clone(), c.name.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_types::{ContentPart, ToolCall};

    fn item(seq: i64, record: Record) -> SessionItem {
        let new = record.to_item();
        SessionItem {
            seq,
            kind: new.kind,
            data: new.data,
            created_ms: 0,
        }
    }

    #[test]
    fn a_compaction_hides_what_it_summarizes() {
        let items = vec![
            item(
                1,
                Record::Message(MessageRecord::plain(Message::user("one"))),
            ),
            item(
                2,
                Record::Message(MessageRecord::plain(Message::assistant("two"))),
            ),
            item(
                3,
                Record::Message(MessageRecord::plain(Message::user("three"))),
            ),
            item(
                4,
                Record::Compaction(CompactionRecord {
                    summary: "asked one, got two".into(),
                    upto_seq: 2,
                    replaced: 2,
                    kept: 1,
                    tokens_before: 10,
                    tokens_after: 5,
                }),
            ),
            item(
                5,
                Record::Message(MessageRecord::plain(Message::assistant("four"))),
            ),
        ];
        let ctx = Context::from_items(&items);
        assert_eq!(ctx.summary.as_deref(), Some("asked one, got two"));
        let seqs: Vec<i64> = ctx.messages.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![3, 5]);
    }

    #[test]
    fn unanswered_tool_calls_are_found() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "bash".into(),
            arguments: "{}".into(),
        };
        let items = vec![
            item(
                1,
                Record::Message(MessageRecord::plain(Message::user("go"))),
            ),
            item(
                2,
                Record::Message(MessageRecord::plain(Message::Assistant {
                    content: vec![],
                    tool_calls: vec![call("a"), call("b")],
                })),
            ),
            item(
                3,
                Record::Message(MessageRecord::plain(Message::Tool {
                    tool_call_id: "a".into(),
                    content: vec![ContentPart::text("ok")],
                    is_error: false,
                })),
            ),
        ];
        let ctx = Context::from_items(&items);
        assert_eq!(ctx.dangling_calls(), vec![("b".into(), "bash".into())]);
    }
}
