//! The chat's state, with no terminal: the transcript built from agent events and stored
//! records, the input line, the status, the pending approval and the session picker. Keys come
//! in as [`Key`]s and what needs the outside world (a turn, the store) goes out as an [`Action`].

use freeway_agent::{Decision, Event, Record, StopReason};
use freeway_store::Session;
use freeway_types::Message;
use tokio_util::sync::CancellationToken;

use super::input::{InputLine, Key};
use super::transcript::{Entry, Finish, LINE_CHARS, Tone, Transcript, TranscriptLine, one_line};

/// The reason a denied call gives the model.
const DENIED: &str = "the user said no";

/// What the key handler asks of the world outside the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    /// Run a turn with this message.
    Send(String),
    /// Answer the approval of a call.
    Decide {
        call_id: String,
        decision: Decision,
    },
    /// Fetch the recent sessions for the picker.
    ListSessions,
    /// Open this session.
    Open(String),
    /// Forget the session: the next message starts a new one.
    NewSession,
    Quit,
}

/// A call waiting for `y` or `n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub call_id: String,
    pub name: String,
    pub arguments: String,
}

/// The recent sessions, one selected.
#[derive(Debug, Clone, PartialEq)]
pub struct Picker {
    pub sessions: Vec<Session>,
    pub selected: usize,
}

/// What the status line tells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub session_id: Option<String>,
    pub agent: String,
    pub model: String,
    pub steps: i64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

/// The rows the transcript has and shows, as the last drawing found them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewport {
    pub height: usize,
    pub rows: usize,
}

#[derive(Debug, Default)]
pub struct App {
    transcript: Transcript,
    pub input: InputLine,
    pub status: Status,
    /// The running turn's token; `None` when idle.
    running: Option<CancellationToken>,
    pub approval: Option<Prompt>,
    pub picker: Option<Picker>,
    /// The first transcript row shown; `None` follows the end.
    scroll: Option<usize>,
    viewport: Viewport,
    /// Advances while a turn runs, for the spinner.
    pub ticks: usize,
    /// `--yes`: approvals are granted without asking.
    pub approve_all: bool,
}

impl App {
    /// A chat about to start a new session of `agent` on `model`.
    pub fn new(agent: &str, model: &str) -> Self {
        App {
            status: Status {
                agent: agent.to_owned(),
                model: model.to_owned(),
                ..Status::default()
            },
            ..App::default()
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Handles a key; what it needs done outside comes back.
    pub fn on_key(&mut self, key: Key) -> Action {
        if self.picker.is_some() {
            return self.on_picker_key(&key);
        }
        if self.scroll_key(&key) {
            return Action::None;
        }
        if let Some(cancel) = &self.running {
            // Only Ctrl-C and an approval's answer are read while a turn runs.
            if key == Key::Interrupt {
                if !cancel.is_cancelled() {
                    cancel.cancel();
                    self.approval = None;
                    self.transcript.close_text();
                    self.notice(Tone::Notice, "aborting the running step…");
                }
                return Action::None;
            }
            let decision = match key {
                Key::Char('y' | 'Y') => Decision::Approve,
                Key::Char('n' | 'N') | Key::Esc => Decision::Deny {
                    reason: Some(DENIED.to_owned()),
                },
                _ => return Action::None,
            };
            let Some(prompt) = self.approval.take() else {
                return Action::None;
            };
            if let Some(tool) = self.transcript.tool_mut(&prompt.call_id) {
                tool.awaiting_approval = false;
            }
            return Action::Decide {
                call_id: prompt.call_id,
                decision,
            };
        }
        match key {
            Key::Interrupt | Key::Eof => Action::Quit,
            Key::Sessions => Action::ListSessions,
            Key::Enter => self.submit(),
            other => {
                self.input.edit(&other);
                Action::None
            }
        }
    }

    fn submit(&mut self) -> Action {
        let text = self.input.take();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Action::None;
        }
        // `/word` is a command; a path such as `/etc/hosts …` is a message.
        if let Some(command) = trimmed.strip_prefix('/')
            && !command.contains(['/', ' '])
        {
            return match command {
                "quit" | "exit" => Action::Quit,
                "sessions" => Action::ListSessions,
                "new" => Action::NewSession,
                "help" => {
                    self.notice(Tone::Dim, HELP);
                    Action::None
                }
                other => {
                    self.notice(Tone::Error, format!("unknown command /{other}; try /help"));
                    Action::None
                }
            };
        }
        self.transcript.close_text();
        self.transcript.push(Entry::User(trimmed.to_owned()));
        self.scroll = None;
        Action::Send(trimmed.to_owned())
    }

    fn on_picker_key(&mut self, key: &Key) -> Action {
        let Some(picker) = &mut self.picker else {
            return Action::None;
        };
        let last = picker.sessions.len().saturating_sub(1);
        match key {
            Key::Up => picker.selected = picker.selected.saturating_sub(1),
            Key::Down => picker.selected = (picker.selected + 1).min(last),
            Key::PageUp => picker.selected = picker.selected.saturating_sub(10),
            Key::PageDown => picker.selected = (picker.selected + 10).min(last),
            Key::Home => picker.selected = 0,
            Key::End => picker.selected = last,
            Key::Enter => {
                let id = picker.sessions.get(picker.selected).map(|s| s.id.clone());
                self.picker = None;
                return id.map_or(Action::None, Action::Open);
            }
            Key::Esc | Key::Interrupt | Key::Sessions => self.picker = None,
            Key::Eof => return Action::Quit,
            _ => {}
        }
        Action::None
    }

    /// PageUp, PageDown, Up and Down move the transcript; true when `key` was one of them.
    fn scroll_key(&mut self, key: &Key) -> bool {
        let page = self.viewport.height.saturating_sub(1).max(1);
        let max_top = self.viewport.rows.saturating_sub(self.viewport.height);
        let top = self.scroll.unwrap_or(max_top).min(max_top);
        let to = match key {
            Key::PageUp => top.saturating_sub(page),
            Key::Up => top.saturating_sub(1),
            Key::PageDown => top + page,
            Key::Down => top + 1,
            _ => return false,
        };
        self.scroll = (to < max_top).then_some(to);
        true
    }

    /// Records the transcript's size as drawn; returns the first row to show.
    pub fn set_viewport(&mut self, viewport: Viewport) -> usize {
        self.viewport = viewport;
        let max_top = viewport.rows.saturating_sub(viewport.height);
        match self.scroll {
            Some(top) if top < max_top => top,
            _ => {
                self.scroll = None;
                max_top
            }
        }
    }

    /// Whether the transcript shows its end.
    pub fn follows(&self) -> bool {
        self.scroll.is_none()
    }

    /// A turn began; Ctrl-C cancels `cancel`.
    pub fn turn_started(&mut self, cancel: CancellationToken) {
        self.running = Some(cancel);
        self.ticks = 0;
    }

    /// The turn is over: its task ended, with `error` when it could not run at all.
    pub fn turn_ended(&mut self, error: Option<String>) {
        self.running = None;
        self.approval = None;
        self.transcript.close_text();
        self.transcript.settle();
        if let Some(e) = error {
            self.notice(Tone::Error, format!("error: {e}"));
        }
    }

    /// Cancels the running turn, if any (the chat is closing).
    pub fn abort(&self) {
        if let Some(cancel) = &self.running {
            cancel.cancel();
        }
    }

    pub fn tick(&mut self) {
        self.ticks = self.ticks.wrapping_add(1);
    }

    pub fn notice(&mut self, tone: Tone, text: impl Into<String>) {
        self.transcript.push(Entry::Notice(tone, text.into()));
    }

    /// The session the next turns continue.
    pub fn set_session(&mut self, session: &Session) {
        self.status.session_id = Some(session.id.clone());
        self.status.agent = session.agent.clone();
        self.status.model = session.model.clone();
    }

    /// Forgets the transcript and the session: the next message starts a new one.
    pub fn reset(&mut self, agent: &str, model: &str) {
        *self = App {
            input: std::mem::take(&mut self.input),
            approve_all: self.approve_all,
            ..App::new(agent, model)
        };
    }

    pub fn show_sessions(&mut self, sessions: Vec<Session>) {
        if sessions.is_empty() {
            self.notice(Tone::Dim, "no sessions yet: send a message to start one");
            return;
        }
        let selected = self
            .status
            .session_id
            .as_ref()
            .and_then(|id| sessions.iter().position(|s| &s.id == id))
            .unwrap_or(0);
        self.picker = Some(Picker { sessions, selected });
    }

    /// Replaces the transcript with a stored session's.
    pub fn open_session(&mut self, session: &Session, records: &[Record]) {
        self.reset(&session.agent, &session.model);
        self.set_session(session);
        self.status.steps = session.usage.steps;
        self.status.input_tokens = u64::try_from(session.usage.input_tokens).unwrap_or(0);
        self.status.output_tokens = u64::try_from(session.usage.output_tokens).unwrap_or(0);
        self.status.cost_usd = session.usage.cost_nanos as f64 / 1e9;
        self.notice(
            Tone::Dim,
            format!(
                "session {}{} in {}",
                session.id,
                session
                    .title
                    .as_ref()
                    .map(|t| format!(" · {t}"))
                    .unwrap_or_default(),
                session.working_directory
            ),
        );
        for record in records {
            self.replay(record);
        }
    }

    fn replay(&mut self, record: &Record) {
        match record {
            Record::Message(m) => match &m.message {
                Message::System { .. } => {}
                Message::User { .. } => self.transcript.push(Entry::User(m.message.text())),
                Message::Assistant { tool_calls, .. } => {
                    let text = m.message.text();
                    if !text.trim().is_empty() {
                        self.transcript.push(Entry::Assistant(text));
                    }
                    for call in tool_calls {
                        let arguments = serde_json::from_str::<serde_json::Value>(&call.arguments)
                            .map_or_else(|_| call.arguments.clone(), |v| v.to_string());
                        if let Some(tool) = self.transcript.tool(&call.id, &call.name) {
                            tool.arguments = Some(one_line(&arguments, LINE_CHARS));
                        }
                    }
                }
                Message::Tool {
                    tool_call_id,
                    is_error,
                    ..
                } => {
                    let name = m.tool.clone().unwrap_or_default();
                    let output = m.message.text();
                    if let Some(tool) = self.transcript.tool(tool_call_id, &name) {
                        tool.finished = Some(Finish {
                            ok: !is_error,
                            duration_ms: m.duration_ms,
                            detail: is_error.then(|| one_line(&output, 300)),
                        });
                    }
                }
            },
            Record::Compaction(c) => self.notice(
                Tone::Notice,
                compacted(c.replaced, c.tokens_before, c.tokens_after),
            ),
            Record::Turn(t) => {
                if let Some(why) = stopped(t.reason) {
                    self.notice(Tone::Notice, why);
                }
            }
        }
    }

    /// Applies one event of the running turn.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::SessionStarted {
                session_id,
                agent,
                model,
                ..
            } => {
                self.status.session_id = Some(session_id);
                self.status.agent = agent;
                self.status.model = model;
            }
            Event::MessageDelta { text } => {
                self.transcript.delta(&text);
            }
            Event::MessageCompleted {
                text,
                usage,
                cost_usd,
                ..
            } => {
                self.transcript.completed(text);
                self.status.steps += 1;
                self.status.input_tokens += usage.input_tokens;
                self.status.output_tokens += usage.output_tokens;
                self.status.cost_usd += cost_usd;
            }
            Event::ApprovalRequested {
                call_id,
                name,
                arguments,
            } => {
                self.transcript.close_text();
                if self.approve_all {
                    return;
                }
                let arguments = one_line(&arguments.to_string(), LINE_CHARS);
                if let Some(tool) = self.transcript.tool(&call_id, &name) {
                    tool.arguments = Some(arguments.clone());
                    tool.awaiting_approval = true;
                }
                self.approval = Some(Prompt {
                    call_id,
                    name,
                    arguments,
                });
            }
            Event::ToolStarted {
                call_id,
                name,
                arguments,
            } => {
                self.transcript.close_text();
                if self.approval.as_ref().is_some_and(|p| p.call_id == call_id) {
                    self.approval = None;
                }
                if let Some(tool) = self.transcript.tool(&call_id, &name) {
                    tool.arguments = Some(one_line(&arguments.to_string(), LINE_CHARS));
                    tool.awaiting_approval = false;
                }
            }
            Event::ToolOutput { call_id, text, .. } => {
                if let Some(tool) = self.transcript.tool_mut(&call_id) {
                    tool.output.push(&text);
                }
            }
            Event::ToolFinished {
                call_id,
                name,
                is_error,
                output,
                duration_ms,
            } => {
                if self.approval.as_ref().is_some_and(|p| p.call_id == call_id) {
                    self.approval = None;
                }
                if let Some(tool) = self.transcript.tool(&call_id, &name) {
                    tool.awaiting_approval = false;
                    tool.finished = Some(Finish {
                        ok: !is_error,
                        duration_ms: Some(duration_ms),
                        detail: is_error.then(|| one_line(&output, 300)),
                    });
                }
            }
            Event::Compaction {
                replaced,
                tokens_before,
                tokens_after,
                ..
            } => self.notice(
                Tone::Notice,
                compacted(replaced, tokens_before, tokens_after),
            ),
            Event::Error { message, .. } => self.notice(Tone::Error, format!("error: {message}")),
            Event::SessionIdle { reason, .. } => {
                // The turn's task reports its end after this; only then is the chat idle.
                self.transcript.close_text();
                if let Some(why) = stopped(reason) {
                    self.notice(Tone::Notice, why);
                }
            }
        }
    }

    /// The transcript as lines to wrap and draw.
    pub fn transcript(&self) -> Vec<TranscriptLine> {
        self.transcript.lines()
    }
}

fn compacted(replaced: usize, before: u64, after: u64) -> String {
    format!("compacted {replaced} messages: ~{before} → ~{after} tokens")
}

/// What to say about a turn that stopped short; `None` for an answer.
fn stopped(reason: StopReason) -> Option<&'static str> {
    match reason {
        StopReason::Completed => None,
        StopReason::Aborted => Some("aborted"),
        StopReason::MaxSteps => Some("stopped at the agent's step limit; send a message to go on"),
        StopReason::Budget => Some("stopped at the agent's spend limit"),
        StopReason::Error => Some("the turn failed"),
    }
}

pub const HELP: &str = "Enter sends the message · Ctrl-C aborts the running step (quits when idle) · \
y / n answer an approval · Ctrl-O or /sessions opens a recent session · /new starts a new one · \
PageUp / PageDown scroll · Ctrl-D or /quit quits";

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_agent::record::MessageRecord;
    use freeway_store::{SessionStatus, SessionUsage};
    use freeway_types::{FinishReason, ToolCall, Usage};
    use serde_json::json;

    fn texts(app: &App) -> Vec<String> {
        app.transcript().into_iter().map(|l| l.text).collect()
    }

    fn typed(app: &mut App, text: &str) -> Action {
        for c in text.chars() {
            app.on_key(Key::Char(c));
        }
        app.on_key(Key::Enter)
    }

    fn completed(text: &str, input: u64, output: u64) -> Event {
        Event::MessageCompleted {
            step: 1,
            text: text.into(),
            tool_calls: vec![],
            finish_reason: FinishReason::Stop,
            model: "openai/coding-agent".into(),
            usage: Usage {
                input_tokens: input,
                output_tokens: output,
                ..Usage::default()
            },
            cost_usd: 0.001,
        }
    }

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            team_id: None,
            key_id: None,
            agent: "coder".into(),
            model: "openai/coding-agent".into(),
            working_directory: "/repo".into(),
            title: Some("fix the test".into()),
            status: SessionStatus::Idle,
            parent_id: None,
            created_ms: 0,
            updated_ms: 0,
            last_seq: 3,
            usage: SessionUsage {
                steps: 2,
                input_tokens: 10,
                output_tokens: 5,
                cost_nanos: 2_000_000,
            },
            lease_until_ms: None,
        }
    }

    #[test]
    fn events_become_transcript_lines() {
        let mut app = App::new("coder", "openai/coding-agent");
        assert_eq!(
            typed(&mut app, "fix the test"),
            Action::Send("fix the test".into())
        );
        app.turn_started(CancellationToken::new());
        app.on_event(Event::SessionStarted {
            session_id: "ses_1".into(),
            agent: "coder".into(),
            model: "openai/coding-agent".into(),
            working_directory: "/repo".into(),
        });
        app.on_event(Event::MessageDelta {
            text: "Let me ".into(),
        });
        app.on_event(Event::MessageDelta {
            text: "look.".into(),
        });
        app.on_event(completed("Let me look.", 100, 20));
        app.on_event(Event::ToolStarted {
            call_id: "c1".into(),
            name: "bash".into(),
            arguments: json!({"command": "python3 test_calc.py"}),
        });
        for i in 0..9 {
            app.on_event(Event::ToolOutput {
                call_id: "c1".into(),
                stream: "stdout".into(),
                text: format!("line {i}\n"),
            });
        }
        app.on_event(Event::ToolFinished {
            call_id: "c1".into(),
            name: "bash".into(),
            is_error: false,
            output: "exit code 0".into(),
            duration_ms: 12,
        });
        app.on_event(Event::ToolFinished {
            call_id: "c2".into(),
            name: "edit_file".into(),
            is_error: true,
            output: "no such text\nin calc.py".into(),
            duration_ms: 1,
        });
        app.on_event(Event::Compaction {
            replaced: 4,
            kept: 2,
            tokens_before: 900,
            tokens_after: 300,
        });
        app.on_event(Event::Error {
            kind: "upstream".into(),
            message: "the model is down".into(),
        });
        app.on_event(Event::MessageDelta {
            text: "Done.".into(),
        });
        app.on_event(completed("Done.", 50, 5));
        app.on_event(Event::SessionIdle {
            session_id: "ses_1".into(),
            reason: StopReason::Completed,
            answer: Some("Done.".into()),
            steps: 2,
            usage: Usage::default(),
            cost_usd: 0.0,
        });
        assert!(app.is_running(), "idle only once the turn's task ends");
        app.turn_ended(None);
        assert!(!app.is_running());
        assert_eq!(
            texts(&app),
            vec![
                "› fix the test",
                "Let me look.",
                r#"→ bash {"command":"python3 test_calc.py"}"#,
                "  │ … 3 earlier lines",
                "  │ line 3",
                "  │ line 4",
                "  │ line 5",
                "  │ line 6",
                "  │ line 7",
                "  │ line 8",
                "✓ bash (12 ms)",
                "✗ edit_file (1 ms): no such text ⏎ in calc.py",
                "compacted 4 messages: ~900 → ~300 tokens",
                "error: the model is down",
                "Done.",
            ]
        );
        let tones: Vec<Tone> = app.transcript().iter().map(|l| l.tone).collect();
        assert_eq!(tones[2..4], [Tone::Call, Tone::Output]);
        assert_eq!(tones[10..12], [Tone::Ok, Tone::Failed]);
        assert_eq!(app.status.session_id.as_deref(), Some("ses_1"));
        assert_eq!(app.status.steps, 2);
        assert_eq!(
            (app.status.input_tokens, app.status.output_tokens),
            (150, 25)
        );
        assert!((app.status.cost_usd - 0.002).abs() < 1e-9);
    }

    #[test]
    fn a_message_that_did_not_stream_still_shows() {
        let mut app = App::new("coder", "m");
        app.on_event(completed("whole answer", 1, 1));
        assert_eq!(texts(&app), vec!["whole answer"]);
    }

    #[test]
    fn ctrl_c_while_running_cancels_the_turn_and_does_not_quit() {
        let mut app = App::new("coder", "m");
        assert_eq!(typed(&mut app, "go"), Action::Send("go".into()));
        let cancel = CancellationToken::new();
        app.turn_started(cancel.clone());
        // Input is disabled while the turn runs.
        assert_eq!(app.on_key(Key::Char('x')), Action::None);
        assert_eq!(typed(&mut app, "/quit"), Action::None);
        assert_eq!(app.on_key(Key::Eof), Action::None);
        assert!(app.input.is_empty());
        assert_eq!(app.on_key(Key::Interrupt), Action::None);
        assert!(cancel.is_cancelled());
        assert!(app.is_running());
        assert_eq!(
            texts(&app).last().map(String::as_str),
            Some("aborting the running step…")
        );
        app.on_event(Event::SessionIdle {
            session_id: "s".into(),
            reason: StopReason::Aborted,
            answer: None,
            steps: 0,
            usage: Usage::default(),
            cost_usd: 0.0,
        });
        app.turn_ended(None);
        assert_eq!(texts(&app).last().map(String::as_str), Some("aborted"));
        // Idle now: Ctrl-C quits.
        assert_eq!(app.on_key(Key::Interrupt), Action::Quit);
    }

    #[test]
    fn quit_keys_and_commands_when_idle() {
        let mut app = App::new("coder", "m");
        assert_eq!(app.on_key(Key::Eof), Action::Quit);
        assert_eq!(typed(&mut app, "/quit"), Action::Quit);
        assert_eq!(typed(&mut app, "/sessions"), Action::ListSessions);
        assert_eq!(app.on_key(Key::Sessions), Action::ListSessions);
        assert_eq!(typed(&mut app, "/new"), Action::NewSession);
        assert_eq!(typed(&mut app, "/nope"), Action::None);
        assert_eq!(
            typed(&mut app, "/etc/hosts: what is it?"),
            Action::Send("/etc/hosts: what is it?".into())
        );
        assert_eq!(typed(&mut app, "   "), Action::None);
    }

    #[test]
    fn approvals_wait_for_y_or_n() {
        let mut app = App::new("coder", "m");
        app.turn_started(CancellationToken::new());
        app.on_event(Event::ApprovalRequested {
            call_id: "c1".into(),
            name: "bash".into(),
            arguments: json!({"command": "rm -rf build"}),
        });
        assert_eq!(app.approval.as_ref().map(|p| p.name.as_str()), Some("bash"));
        assert_eq!(
            texts(&app),
            vec![
                r#"→ bash {"command":"rm -rf build"}"#,
                "  allow bash? y approves, n denies"
            ]
        );
        assert_eq!(app.on_key(Key::Char('q')), Action::None);
        assert_eq!(
            app.on_key(Key::Char('y')),
            Action::Decide {
                call_id: "c1".into(),
                decision: Decision::Approve
            }
        );
        assert!(app.approval.is_none());
        assert_eq!(texts(&app), vec![r#"→ bash {"command":"rm -rf build"}"#]);
        // A second key decides nothing.
        assert_eq!(app.on_key(Key::Char('n')), Action::None);

        app.on_event(Event::ApprovalRequested {
            call_id: "c2".into(),
            name: "write_file".into(),
            arguments: json!({"path": "a"}),
        });
        assert_eq!(
            app.on_key(Key::Char('n')),
            Action::Decide {
                call_id: "c2".into(),
                decision: Decision::Deny {
                    reason: Some(DENIED.into())
                }
            }
        );

        // Ctrl-C during an approval aborts the turn and drops the prompt.
        let cancel = CancellationToken::new();
        app.turn_started(cancel.clone());
        app.on_event(Event::ApprovalRequested {
            call_id: "c3".into(),
            name: "bash".into(),
            arguments: json!({}),
        });
        app.on_key(Key::Interrupt);
        assert!(cancel.is_cancelled());
        assert!(app.approval.is_none());

        // With --yes nothing is asked.
        let mut app = App::new("coder", "m");
        app.approve_all = true;
        app.turn_started(CancellationToken::new());
        app.on_event(Event::ApprovalRequested {
            call_id: "c4".into(),
            name: "bash".into(),
            arguments: json!({}),
        });
        assert!(app.approval.is_none());
        assert!(texts(&app).is_empty());
    }

    #[test]
    fn the_picker_opens_the_selected_session() {
        let mut app = App::new("coder", "m");
        app.show_sessions(vec![session("ses_a"), session("ses_b"), session("ses_c")]);
        assert!(app.picker.is_some());
        // Keys go to the picker, not the input line.
        app.on_key(Key::Down);
        app.on_key(Key::Char('x'));
        app.on_key(Key::Down);
        app.on_key(Key::Down);
        app.on_key(Key::Up);
        assert_eq!(app.on_key(Key::Enter), Action::Open("ses_b".into()));
        assert!(app.picker.is_none());
        assert!(app.input.is_empty());
        app.show_sessions(vec![session("ses_a")]);
        assert_eq!(app.on_key(Key::Esc), Action::None);
        assert!(app.picker.is_none());
        app.show_sessions(Vec::new());
        assert!(app.picker.is_none());
    }

    #[test]
    fn an_opened_session_replays_its_records() {
        let mut app = App::new("coder", "m");
        let records = vec![
            Record::Message(MessageRecord::plain(Message::user("fix the test"))),
            Record::Message(MessageRecord::plain(Message::Assistant {
                content: vec![],
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "read_file".into(),
                    arguments: r#"{"path": "calc.py"}"#.into(),
                }],
            })),
            Record::Message(MessageRecord {
                tool: Some("read_file".into()),
                duration_ms: Some(3),
                ..MessageRecord::plain(Message::Tool {
                    tool_call_id: "c1".into(),
                    content: vec![freeway_types::ContentPart::text("def add…")],
                    is_error: false,
                })
            }),
            Record::Message(MessageRecord::plain(Message::assistant("Fixed it."))),
            Record::Turn(freeway_agent::record::TurnRecord {
                reason: StopReason::Completed,
                steps: 2,
                usage: Usage::default(),
                cost_nanos: 0,
            }),
        ];
        app.open_session(&session("ses_x"), &records);
        assert_eq!(
            texts(&app),
            vec![
                "session ses_x · fix the test in /repo",
                "",
                "› fix the test",
                r#"→ read_file {"path":"calc.py"}"#,
                "✓ read_file (3 ms)",
                "Fixed it.",
            ]
        );
        assert_eq!(app.status.session_id.as_deref(), Some("ses_x"));
        assert_eq!(app.status.steps, 2);
        assert!((app.status.cost_usd - 0.002).abs() < 1e-9);
    }

    #[test]
    fn page_keys_scroll_and_the_end_is_followed_again() {
        let mut app = App::new("coder", "m");
        assert_eq!(
            app.set_viewport(Viewport {
                height: 10,
                rows: 50
            }),
            40
        );
        app.on_key(Key::PageUp);
        assert_eq!(
            app.set_viewport(Viewport {
                height: 10,
                rows: 50
            }),
            31
        );
        // New rows do not move a scrolled view.
        assert_eq!(
            app.set_viewport(Viewport {
                height: 10,
                rows: 60
            }),
            31
        );
        app.on_key(Key::PageDown);
        app.on_key(Key::PageDown);
        assert_eq!(
            app.set_viewport(Viewport {
                height: 10,
                rows: 60
            }),
            49
        );
        app.on_key(Key::PageDown);
        assert!(app.follows());
        assert_eq!(
            app.set_viewport(Viewport {
                height: 10,
                rows: 70
            }),
            60
        );
    }
}
