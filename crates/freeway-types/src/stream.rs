//! The normalized stream every provider produces.

use serde::{Deserialize, Serialize};

use crate::{FinishReason, Usage};

/// One step of a streamed answer.
///
/// Order: text and tool-call events in the order the model produced them; `ToolCallStart` for a
/// given `index` comes before its `ToolCallDelta`s; `Finish` and `Usage` near the end in either
/// order. When several `Usage` events arrive the last one holds the totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    TextDelta {
        text: String,
    },
    /// A new tool call; `index` counts tool calls of this answer from 0.
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    /// A fragment of the arguments JSON text of the tool call at `index`.
    ToolCallDelta {
        index: u32,
        arguments: String,
    },
    Usage {
        usage: Usage,
    },
    Finish {
        reason: FinishReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop_sequence: Option<String>,
    },
}
