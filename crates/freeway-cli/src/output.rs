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
