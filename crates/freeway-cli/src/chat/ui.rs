//! Drawing the chat: the transcript (wrapped, scrolled), the status line, the input line, and
//! the session picker over them.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, List, ListItem, ListState, Paragraph};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::app::{App, Viewport};
use super::transcript::{Tone, one_line};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const PROMPT: &str = "› ";

/// Colors, unless `NO_COLOR` asks for none (bold, dim and reverse stay).
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn from_env() -> Self {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn tone(self, tone: Tone) -> Style {
        let plain = Style::default();
        let bold = plain.add_modifier(Modifier::BOLD);
        let dim = plain.add_modifier(Modifier::DIM);
        if !self.color {
            return match tone {
                Tone::User | Tone::Failed | Tone::Approval | Tone::Error => bold,
                Tone::Output | Tone::Dim => dim,
                Tone::Assistant | Tone::Call | Tone::Ok | Tone::Notice => plain,
            };
        }
        match tone {
            Tone::User => bold.fg(Color::Cyan),
            Tone::Assistant => plain,
            Tone::Call => plain.fg(Color::Cyan),
            Tone::Output => dim,
            Tone::Ok => plain.fg(Color::Green),
            Tone::Failed => plain.fg(Color::Red),
            Tone::Approval => bold.fg(Color::Yellow),
            Tone::Notice => plain.fg(Color::Yellow),
            Tone::Error => bold.fg(Color::Red),
            Tone::Dim => dim,
        }
    }

    fn bar(self) -> Style {
        if self.color {
            Style::default().fg(Color::Black).bg(Color::Gray)
        } else {
            Style::default().add_modifier(Modifier::REVERSED)
        }
    }
}

pub fn draw(frame: &mut Frame, app: &mut App, theme: Theme) {
    let [transcript, status, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_transcript(frame, transcript, app, theme);
    draw_status(frame, status, app, theme);
    draw_input(frame, input, app, theme);
    if app.picker.is_some() {
        draw_picker(frame, transcript, app, theme);
    }
}

fn draw_transcript(frame: &mut Frame, area: Rect, app: &mut App, theme: Theme) {
    let width = usize::from(area.width);
    let rows: Vec<(Tone, String)> = app
        .transcript()
        .into_iter()
        .flat_map(|line| {
            wrap(&line.text, width)
                .into_iter()
                .map(move |row| (line.tone, row))
        })
        .collect();
    let height = usize::from(area.height);
    let top = app.set_viewport(Viewport {
        height,
        rows: rows.len(),
    });
    let shown: Vec<Line> = rows
        .into_iter()
        .skip(top)
        .take(height)
        .map(|(tone, text)| Line::styled(text, theme.tone(tone)))
        .collect();
    frame.render_widget(Paragraph::new(shown), area);
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let s = &app.status;
    // What is going on comes first: the rest may be cut on a narrow terminal.
    let (state, hint) = if app.picker.is_some() {
        (String::new(), "↑↓ choose · Enter open · Esc close")
    } else if app.approval.is_some() {
        (
            "waiting for approval · ".to_owned(),
            "y approve · n deny · Ctrl-C abort",
        )
    } else if app.is_running() {
        (
            format!("{} running… · ", SPINNER[app.ticks % SPINNER.len()]),
            "Ctrl-C abort",
        )
    } else {
        (String::new(), "Enter send · Ctrl-O sessions · Ctrl-D quit")
    };
    let left = format!(
        " {state}{} · {} · {} · {} step{} · {} in · {} out · ${:.4}",
        s.session_id.as_deref().unwrap_or("new session"),
        s.agent,
        s.model,
        s.steps,
        if s.steps == 1 { "" } else { "s" },
        s.input_tokens,
        s.output_tokens,
        s.cost_usd
    );
    let hint = if app.follows() {
        format!("{hint} ")
    } else {
        format!("PageDown ↓ · {hint} ")
    };
    let width = usize::from(area.width);
    // The hint stays when there is room for it and some of the left; the left is cut first.
    let line = if width >= hint.width() + 24 {
        let left = fit(&left, width - hint.width() - 1);
        let gap = width - left.width() - hint.width();
        format!("{left}{}{hint}", " ".repeat(gap))
    } else {
        left
    };
    frame.render_widget(Paragraph::new(line).style(theme.bar()), area);
}

fn draw_input(frame: &mut Frame, area: Rect, app: &App, theme: Theme) {
    if let Some(prompt) = &app.approval {
        let question = format!(
            "allow {} {}? ",
            prompt.name,
            one_line(&prompt.arguments, 200)
        );
        let line = Line::from(vec![
            Span::styled(question, theme.tone(Tone::Approval)),
            Span::styled("[y/n]", theme.tone(Tone::Approval)),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    if app.is_running() {
        let line = Line::styled("running… Ctrl-C aborts the step", theme.tone(Tone::Dim));
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let text: String = app
        .input
        .text()
        .chars()
        .map(|c| if c == '\n' { '⏎' } else { c })
        .collect();
    let room = usize::from(area.width)
        .saturating_sub(PROMPT.width() + 1)
        .max(1);
    // Scroll the line sideways so that the cursor stays in view.
    let chars: Vec<char> = text.chars().collect();
    let cursor = app.input.cursor().min(chars.len());
    let mut start = 0;
    let mut shown: usize = chars[..cursor].iter().map(|c| c.width().unwrap_or(0)).sum();
    while shown > room && start < cursor {
        shown -= chars[start].width().unwrap_or(0);
        start += 1;
    }
    let before: String = chars[start..cursor].iter().collect();
    let after: String = chars[cursor..].iter().collect();
    let mut spans = vec![Span::styled(PROMPT, theme.tone(Tone::User))];
    if app.input.is_empty() {
        spans.push(Span::styled(
            "message the agent · /help for the keys",
            theme.tone(Tone::Dim),
        ));
    } else {
        spans.push(Span::raw(format!("{before}{after}")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
    if app.picker.is_none() {
        let x = area.x + (PROMPT.width() + before.width()).min(usize::from(area.width)) as u16;
        frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
    }
}

fn draw_picker(frame: &mut Frame, over: Rect, app: &App, theme: Theme) {
    let Some(picker) = &app.picker else {
        return;
    };
    let width = over.width.saturating_sub(4).min(110);
    let height = (picker.sessions.len() as u16 + 2).min(over.height.saturating_sub(2));
    let area = Rect {
        x: over.x + (over.width - width) / 2,
        y: over.y + (over.height - height) / 2,
        width,
        height,
    };
    let now = freeway_store::now_ms();
    let items: Vec<ListItem> = picker
        .sessions
        .iter()
        .map(|s| {
            let title = s.title.as_deref().unwrap_or("(no message yet)");
            ListItem::new(format!(
                "{}  {:>4}  {}  {}  · {} steps · {}",
                s.id,
                age(now - s.updated_ms),
                s.agent,
                one_line(title, 60),
                s.usage.steps,
                s.working_directory
            ))
        })
        .collect();
    let list = List::new(items)
        .block(Block::bordered().title(" sessions · ↑↓ Enter opens · Esc closes "))
        .highlight_style(theme.bar())
        .highlight_symbol(PROMPT);
    let mut state = ListState::default().with_selected(Some(picker.selected));
    frame.render_widget(Clear, area);
    frame.render_stateful_widget(list, area, &mut state);
}

/// `text` cut to `width` columns, with `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.width() <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// How long ago, in the largest unit that fits: `42s`, `5m`, `3h`, `12d`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `text` cut into rows of at most `width` columns, at a space when one is near.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    if width == 0 {
        return vec![text.to_owned()];
    }
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    // The byte offset of the last space in `row`.
    let mut space: Option<usize> = None;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width && !row.is_empty() {
            match space.filter(|&at| at > 0) {
                Some(at) if c != ' ' => {
                    let rest = row[at + 1..].to_owned();
                    row.truncate(at);
                    rows.push(std::mem::replace(&mut row, rest));
                }
                _ => rows.push(std::mem::take(&mut row)),
            }
            used = row.width();
            space = None;
            if c == ' ' && row.is_empty() {
                continue;
            }
        }
        if c == ' ' {
            space = Some(row.len());
        }
        row.push(c);
        used += w;
    }
    rows.push(row);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use freeway_agent::Event;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    #[test]
    fn lines_wrap_at_spaces_or_else_anywhere() {
        assert_eq!(
            wrap("the quick brown fox", 10),
            vec!["the quick", "brown fox"]
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), vec![""]);
        assert_eq!(wrap("ab cd", 2), vec!["ab", "cd"]);
        assert_eq!(wrap("日本語です", 4), vec!["日本", "語で", "す"]);
    }

    #[test]
    fn the_status_is_cut_before_its_hint() {
        assert_eq!(fit("abcdef", 6), "abcdef");
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age(5_000), "5s");
        assert_eq!(age(300_000), "5m");
        assert_eq!(age(7_200_000), "2h");
        assert_eq!(age(3 * 86_400_000), "3d");
    }

    fn screen(app: &mut App) -> String {
        let mut terminal = Terminal::new(TestBackend::new(100, 12)).unwrap();
        terminal
            .draw(|f| draw(f, app, Theme { color: false }))
            .unwrap();
        terminal.backend().to_string()
    }

    #[test]
    fn a_running_turn_on_screen() {
        let mut app = App::new("coder", "openai/coding-agent");
        for c in "fix the failing test".chars() {
            app.on_key(super::super::input::Key::Char(c));
        }
        app.on_key(super::super::input::Key::Enter);
        app.turn_started(CancellationToken::new());
        app.on_event(Event::SessionStarted {
            session_id: "ses_123".into(),
            agent: "coder".into(),
            model: "openai/coding-agent".into(),
            working_directory: "/repo".into(),
        });
        app.on_event(Event::ToolStarted {
            call_id: "c1".into(),
            name: "bash".into(),
            arguments: json!({"command": "python3 test_calc.py"}),
        });
        app.on_event(Event::ToolOutput {
            call_id: "c1".into(),
            stream: "stdout".into(),
            text: "ok: 2 + 3 == 5\n".into(),
        });
        app.on_event(Event::ToolFinished {
            call_id: "c1".into(),
            name: "bash".into(),
            is_error: false,
            output: "exit code 0".into(),
            duration_ms: 31,
        });
        app.on_event(Event::MessageDelta {
            text: "Fixed add() in calc.py: it subtracted. The test passes now, as the run above shows."
                .into(),
        });
        app.on_event(Event::ApprovalRequested {
            call_id: "c2".into(),
            name: "write_file".into(),
            arguments: json!({"path": "NOTES.md"}),
        });
        insta::assert_snapshot!(screen(&mut app));
    }

    #[test]
    fn the_idle_screen_shows_the_input_line() {
        let mut app = App::new("coder", "openai/coding-agent");
        for c in "hello".chars() {
            app.on_key(super::super::input::Key::Char(c));
        }
        let text = screen(&mut app);
        assert!(text.contains("› hello"), "{text}");
        assert!(
            text.contains("new session · coder · openai/coding-agent"),
            "{text}"
        );
        assert!(text.contains("Ctrl-D quit"), "{text}");
    }
}
