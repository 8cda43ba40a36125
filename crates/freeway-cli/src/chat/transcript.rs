//! The transcript: what was said and done in the session, entry by entry, and the lines it
//! shows. Tool output is kept as a short tail; the model's full results stay in the store.

use std::collections::VecDeque;

/// Lines of a tool's streamed output kept on screen; older ones are counted, not shown.
pub const OUTPUT_LINES: usize = 6;
/// A line of tool output or a call's arguments is cut to this many characters.
pub const LINE_CHARS: usize = 160;

/// What a line of the transcript is, for its style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    User,
    Assistant,
    Call,
    Output,
    Ok,
    Failed,
    Approval,
    Notice,
    Error,
    Dim,
}

/// One line of the transcript before wrapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    pub tone: Tone,
    pub text: String,
}

impl TranscriptLine {
    pub fn new(tone: Tone, text: impl Into<String>) -> Self {
        TranscriptLine {
            tone,
            text: text.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    User(String),
    Assistant(String),
    Tool(ToolEntry),
    Notice(Tone, String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolEntry {
    pub call_id: String,
    pub name: String,
    /// The arguments on one line; `None` when the call never started (no line for it).
    pub arguments: Option<String>,
    pub awaiting_approval: bool,
    pub output: OutputTail,
    pub finished: Option<Finish>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub ok: bool,
    pub duration_ms: Option<u64>,
    /// What went wrong, on one line.
    pub detail: Option<String>,
}

/// The last lines of a tool's output as it streams.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputTail {
    lines: VecDeque<String>,
    /// The line still being written.
    partial: String,
    dropped: usize,
}

impl OutputTail {
    pub fn push(&mut self, text: &str) {
        for (i, piece) in text.split('\n').enumerate() {
            if i > 0 {
                let line = std::mem::take(&mut self.partial);
                self.lines.push_back(line);
                if self.lines.len() > OUTPUT_LINES {
                    self.lines.pop_front();
                    self.dropped += 1;
                }
            }
            // A long line is cut as it grows, not after: output may never send a newline.
            if self.partial.chars().count() < LINE_CHARS {
                self.partial.push_str(piece);
            }
        }
    }

    fn lines(&self) -> impl Iterator<Item = &str> {
        let partial = (!self.partial.is_empty()).then_some(self.partial.as_str());
        let skip = usize::from(partial.is_some() && self.lines.len() == OUTPUT_LINES);
        self.lines
            .iter()
            .skip(skip)
            .map(String::as_str)
            .chain(partial)
    }

    fn hidden(&self) -> usize {
        self.dropped + usize::from(!self.partial.is_empty() && self.lines.len() == OUTPUT_LINES)
    }
}

/// The entries, oldest first.
#[derive(Debug, Default)]
pub struct Transcript {
    entries: Vec<Entry>,
    /// The last entry is assistant text still streaming.
    open_text: bool,
    /// The current step's text arrived as deltas.
    streamed: bool,
}

impl Transcript {
    pub fn push(&mut self, entry: Entry) {
        self.open_text = false;
        self.entries.push(entry);
    }

    /// Ends the assistant text being streamed: the next delta starts a new entry.
    pub fn close_text(&mut self) {
        self.open_text = false;
    }

    /// A piece of the answer as it streams.
    pub fn delta(&mut self, text: &str) {
        self.streamed = true;
        match self.entries.last_mut() {
            Some(Entry::Assistant(open)) if self.open_text => open.push_str(text),
            _ => {
                self.entries.push(Entry::Assistant(text.to_owned()));
                self.open_text = true;
            }
        }
    }

    /// The step's message is complete: shown now if it did not stream.
    pub fn completed(&mut self, text: String) {
        if !self.streamed && !text.trim().is_empty() {
            self.entries.push(Entry::Assistant(text));
        }
        self.open_text = false;
        self.streamed = false;
    }

    pub fn tool_mut(&mut self, call_id: &str) -> Option<&mut ToolEntry> {
        self.entries.iter_mut().rev().find_map(|e| match e {
            Entry::Tool(t) if t.call_id == call_id => Some(t),
            _ => None,
        })
    }

    /// The entry of a call, added when it is the first news of it.
    pub fn tool(&mut self, call_id: &str, name: &str) -> Option<&mut ToolEntry> {
        if self.tool_mut(call_id).is_none() {
            self.push(Entry::Tool(ToolEntry {
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: None,
                awaiting_approval: false,
                output: OutputTail::default(),
                finished: None,
            }));
        }
        self.tool_mut(call_id)
    }

    /// No call waits for approval any more (the turn is over).
    pub fn settle(&mut self) {
        self.open_text = false;
        for entry in &mut self.entries {
            if let Entry::Tool(t) = entry {
                t.awaiting_approval = false;
            }
        }
    }

    /// The transcript as lines to wrap and draw.
    pub fn lines(&self) -> Vec<TranscriptLine> {
        let mut out = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            match entry {
                Entry::User(text) => {
                    if i > 0 {
                        out.push(TranscriptLine::new(Tone::Dim, ""));
                    }
                    for (j, line) in text.lines().enumerate() {
                        let mark = if j == 0 { "› " } else { "  " };
                        out.push(TranscriptLine::new(Tone::User, format!("{mark}{line}")));
                    }
                }
                Entry::Assistant(text) => {
                    out.extend(
                        text.trim_start_matches('\n')
                            .lines()
                            .map(|l| TranscriptLine::new(Tone::Assistant, l)),
                    );
                }
                Entry::Tool(t) => tool_lines(t, &mut out),
                Entry::Notice(tone, text) => {
                    out.extend(text.lines().map(|l| TranscriptLine::new(*tone, l)));
                }
            }
        }
        out
    }
}

fn tool_lines(t: &ToolEntry, out: &mut Vec<TranscriptLine>) {
    if let Some(arguments) = &t.arguments {
        out.push(TranscriptLine::new(
            Tone::Call,
            format!("→ {} {arguments}", t.name),
        ));
    }
    if t.awaiting_approval {
        out.push(TranscriptLine::new(
            Tone::Approval,
            format!("  allow {}? y approves, n denies", t.name),
        ));
    }
    let hidden = t.output.hidden();
    if hidden > 0 {
        out.push(TranscriptLine::new(
            Tone::Output,
            format!(
                "  │ … {hidden} earlier line{}",
                if hidden == 1 { "" } else { "s" }
            ),
        ));
    }
    for line in t.output.lines() {
        out.push(TranscriptLine::new(
            Tone::Output,
            format!("  │ {}", one_line(line, LINE_CHARS)),
        ));
    }
    if let Some(f) = &t.finished {
        let took = f
            .duration_ms
            .map(|ms| format!(" ({ms} ms)"))
            .unwrap_or_default();
        let line = match (&f.ok, &f.detail) {
            (true, _) => TranscriptLine::new(Tone::Ok, format!("✓ {}{took}", t.name)),
            (false, Some(d)) => {
                TranscriptLine::new(Tone::Failed, format!("✗ {}{took}: {d}", t.name))
            }
            (false, None) => TranscriptLine::new(Tone::Failed, format!("✗ {}{took}", t.name)),
        };
        out.push(line);
    }
}

/// `text` on one line (newlines shown as ⏎), cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let flat = text
        .trim_end()
        .replace('\n', " ⏎ ")
        .replace(['\r', '\t'], " ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_without_newlines_is_cut() {
        let mut tail = OutputTail::default();
        for _ in 0..100 {
            tail.push("xxxxxxxxxx");
        }
        assert!(tail.partial.chars().count() < LINE_CHARS + 10);
        tail.push("\nok");
        assert_eq!(tail.lines().last(), Some("ok"));
    }
}
