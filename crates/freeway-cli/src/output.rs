//! The only place that writes to the terminal.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI's output module"
)]

use std::io::IsTerminal;

/// Whether to color: not when NO_COLOR is set or the stream is not a terminal.
pub fn color(stderr: bool) -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    }
}

pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

pub fn line(text: &str) {
    println!("{text}");
}

pub fn error(text: &str) {
    if color(true) {
        eprintln!("\x1b[1;31merror\x1b[0m: {text}");
    } else {
        eprintln!("error: {text}");
    }
}

pub fn warning(text: &str) {
    if color(true) {
        eprintln!("\x1b[1;33mwarning\x1b[0m: {text}");
    } else {
        eprintln!("warning: {text}");
    }
}

pub fn note(text: &str) {
    eprintln!("{text}");
}

/// Writes a piece of a run's stdout as it arrives (no newline added).
pub fn stdout_raw(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes a piece of a run's stderr as it arrives (no newline added).
pub fn stderr_raw(text: &str) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

/// Terminal styles for stderr reports.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
    Cyan,
}

/// `text` in `style` when stderr is colored (see [`color`]), else as is.
pub fn paint(style: Style, text: &str) -> String {
    if !color(true) {
        return text.to_owned();
    }
    let code = match style {
        Style::Bold => "1",
        Style::Dim => "2",
        Style::Red => "1;31",
        Style::Green => "1;32",
        Style::Yellow => "1;33",
        Style::Cyan => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
