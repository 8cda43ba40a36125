//! The typed event stream of a session: the single source the CLI, the HTTP API and the store
//! consume. Serialized with a dotted `type` (`tool.started`), as JSON lines and SSE `data:`.

use freeway_types::{FinishReason, ToolCall, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A turn began: the session, its agent, the model asked for and the directory.
    #[serde(rename = "session.started")]
    SessionStarted {
        session_id: String,
        agent: String,
        model: String,
        working_directory: String,
    },
    /// Text of the answer, as the model streams it.
    #[serde(rename = "message.delta")]
    MessageDelta { text: String },
    /// The model's message of one step is complete.
    #[serde(rename = "message.completed")]
    MessageCompleted {
        step: u32,
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        finish_reason: FinishReason,
        /// The `provider/model` that answered.
        model: String,
        usage: Usage,
        cost_usd: f64,
    },
    /// A call waits for the user (approval mode `suggest` or `auto-edit`).
    #[serde(rename = "approval.requested")]
    ApprovalRequested {
        call_id: String,
        name: String,
        arguments: Value,
    },
    #[serde(rename = "tool.started")]
    ToolStarted {
        call_id: String,
        name: String,
        arguments: Value,
    },
    /// Output of a running tool (`stdout` or `stderr`), redacted.
    #[serde(rename = "tool.output")]
    ToolOutput {
        call_id: String,
        stream: String,
        text: String,
    },
    #[serde(rename = "tool.finished")]
    ToolFinished {
        call_id: String,
        name: String,
        is_error: bool,
        /// What the model reads back, redacted.
        output: String,
        duration_ms: u64,
    },
    /// Older turns were summarized to make room; they stay in the store.
    #[serde(rename = "compaction")]
    Compaction {
        /// Messages summarized away from the model's context.
        replaced: usize,
        /// Messages kept verbatim.
        kept: usize,
        tokens_before: u64,
        tokens_after: u64,
    },
    #[serde(rename = "error")]
    Error { kind: String, message: String },
    /// The turn is over; the session waits for the next message.
    #[serde(rename = "session.idle")]
    SessionIdle {
        session_id: String,
        reason: StopReason,
        /// The final answer, when the model gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<String>,
        steps: u32,
        usage: Usage,
        cost_usd: f64,
    },
}

impl Event {
    /// The `type` as serialized, for SSE `event:` lines and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::SessionStarted { .. } => "session.started",
            Event::MessageDelta { .. } => "message.delta",
            Event::MessageCompleted { .. } => "message.completed",
            Event::ApprovalRequested { .. } => "approval.requested",
            Event::ToolStarted { .. } => "tool.started",
            Event::ToolOutput { .. } => "tool.output",
            Event::ToolFinished { .. } => "tool.finished",
            Event::Compaction { .. } => "compaction",
            Event::Error { .. } => "error",
            Event::SessionIdle { .. } => "session.idle",
        }
    }
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model answered without calling tools.
    Completed,
    /// The agent's `max_steps` ran out.
    MaxSteps,
    /// The agent's spend limit was reached.
    Budget,
    /// The user aborted.
    Aborted,
    /// The model could not be reached or refused (see the `error` event before).
    Error,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Completed => "completed",
            StopReason::MaxSteps => "max_steps",
            StopReason::Budget => "budget",
            StopReason::Aborted => "aborted",
            StopReason::Error => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_dotted_types() -> Result<(), serde_json::Error> {
        let e = Event::ToolStarted {
            call_id: "c1".into(),
            name: "read_file".into(),
            arguments: serde_json::json!({"path": "a"}),
        };
        let text = serde_json::to_string(&e)?;
        assert_eq!(
            text,
            r#"{"type":"tool.started","call_id":"c1","name":"read_file","arguments":{"path":"a"}}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&text)?, e);
        assert_eq!(e.name(), "tool.started");
        Ok(())
    }
}
