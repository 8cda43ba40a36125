//! Compaction: when the context nears the model's window, older turns are summarized by the
//! model and the summary replaces them in the context; recent turns stay verbatim. The
//! summarized messages stay in the store, and the compaction is recorded beside them.

use freeway_types::{ChatRequest, Message, StreamAccumulator};

use crate::model::{ModelClient, ModelError};
use crate::record::Context;

/// Compact when the context is above this share of the window…
pub const TRIGGER: f64 = 0.8;
/// …keeping at most this share of it verbatim.
pub const KEEP: f64 = 0.3;
/// A tool result is cut to this many characters in the transcript the summarizer reads.
const TRANSCRIPT_TOOL_CHARS: usize = 2_000;

const SUMMARIZER: &str = "You compact the history of a coding agent's session so it can go on \
with less context. Write a summary that lets the agent continue without the original messages: \
the user's task and requests in their words, decisions made, files read and changed (with paths), \
commands run and their outcome, errors still open, and the next step. Be factual and complete; \
use short bullet points. Do not add anything that did not happen.";

/// Where to cut: messages before the returned index are summarized, the rest kept. `None` when
/// there is nothing worth summarizing. The cut never separates tool results from their call:
/// the kept part starts at a user or assistant message.
pub fn cut_point(
    messages: &[(i64, Message)],
    tokens: impl Fn(&Message) -> u64,
    keep: u64,
) -> Option<usize> {
    let mut kept = 0u64;
    let mut cut = messages.len();
    for (i, (_, m)) in messages.iter().enumerate().rev() {
        kept += tokens(m);
        if kept > keep && cut < messages.len() {
            break;
        }
        cut = i;
    }
    // Keep at least the last message; move the cut back onto a turn boundary.
    cut = cut.max(1).min(messages.len().saturating_sub(1));
    while cut > 0 && matches!(messages[cut].1, Message::Tool { .. }) {
        cut -= 1;
    }
    (cut >= 2).then_some(cut)
}

/// The older part of the context written out for the summarizer.
pub fn transcript(summary: Option<&str>, messages: &[(i64, Message)]) -> String {
    let mut out = String::new();
    if let Some(s) = summary {
        out.push_str("[summary of what came before]\n");
        out.push_str(s);
        out.push_str("\n\n");
    }
    for (_, m) in messages {
        match m {
            Message::System { content } => {
                out.push_str("[system] ");
                out.push_str(content);
            }
            Message::User { .. } => {
                out.push_str("[user] ");
                out.push_str(&m.text());
            }
            Message::Assistant { tool_calls, .. } => {
                out.push_str("[assistant] ");
                out.push_str(&m.text());
                for c in tool_calls {
                    out.push_str(&format!("\n  → {}({})", c.name, c.arguments));
                }
            }
            Message::Tool { is_error, .. } => {
                let text = m.text();
                out.push_str(if *is_error {
                    "[tool error] "
                } else {
                    "[tool] "
                });
                if text.chars().count() > TRANSCRIPT_TOOL_CHARS {
                    let head: String = text.chars().take(TRANSCRIPT_TOOL_CHARS).collect();
                    out.push_str(&head);
                    out.push_str(" […]");
                } else {
                    out.push_str(&text);
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Asks `model` for the summary of the messages before `cut`.
pub async fn summarize(
    client: &dyn ModelClient,
    model: &str,
    context: &Context,
    cut: usize,
) -> Result<String, ModelError> {
    let request = ChatRequest {
        messages: vec![
            Message::system(SUMMARIZER),
            Message::user(transcript(
                context.summary.as_deref(),
                &context.messages[..cut],
            )),
        ],
        temperature: Some(0.0),
        ..ChatRequest::default()
    };
    let started = client.stream(model, request).await?;
    let response = StreamAccumulator::collect(started.stream, model)
        .await
        .map_err(|e| ModelError {
            kind: e.metric_label().to_owned(),
            message: e.to_string(),
        })?;
    let summary = response.text();
    if summary.trim().is_empty() {
        return Err(ModelError {
            kind: "empty_summary".to_owned(),
            message: "the model returned an empty summary".to_owned(),
        });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_types::{ContentPart, ToolCall};

    fn tool(id: &str) -> Message {
        Message::Tool {
            tool_call_id: id.into(),
            content: vec![ContentPart::text("result")],
            is_error: false,
        }
    }

    fn call() -> Message {
        Message::Assistant {
            content: vec![],
            tool_calls: vec![ToolCall {
                id: "c".into(),
                name: "read_file".into(),
                arguments: "{}".into(),
            }],
        }
    }

    #[test]
    fn the_cut_keeps_recent_turns_and_never_orphans_a_result() {
        let messages: Vec<(i64, Message)> = [
            Message::user("task"),
            call(),
            tool("c"),
            call(),
            tool("c"),
            call(),
            tool("c"),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, m)| (i as i64 + 1, m))
        .collect();
        // Every message costs 10; keep 25 → the last two (an assistant call and its result).
        let cut = cut_point(&messages, |_| 10, 25);
        assert_eq!(cut, Some(5));
        assert!(matches!(messages[5].1, Message::Assistant { .. }));
        // Nothing to summarize when everything fits.
        assert_eq!(cut_point(&messages[..2], |_| 10, 1000), None);
    }

    #[test]
    fn the_transcript_shows_calls_and_cuts_long_results() {
        let long = Message::Tool {
            tool_call_id: "c".into(),
            content: vec![ContentPart::text("y".repeat(5000))],
            is_error: false,
        };
        let text = transcript(Some("before"), &[(1, call()), (2, long)]);
        assert!(text.starts_with("[summary of what came before]\nbefore"));
        assert!(text.contains("→ read_file({})"));
        assert!(text.contains(" […]"));
        assert!(text.len() < 3000);
    }
}
