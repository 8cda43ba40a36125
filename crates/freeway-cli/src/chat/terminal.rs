//! The terminal while the chat runs: raw mode, the alternate screen and bracketed paste, undone
//! when the guard drops, and by the panic hook when the UI thread panics.

use std::io::{self, Stdout, stdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::{Frame, Terminal};

pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// Whether the terminal is still to be restored (by the guard or the panic hook).
    active: Arc<AtomicBool>,
}

impl Tui {
    pub fn enter() -> io::Result<Self> {
        let active = Arc::new(AtomicBool::new(false));
        install_panic_hook(active.clone());
        enable_raw_mode()?;
        active.store(true, Ordering::SeqCst);
        let terminal = execute!(stdout(), EnterAlternateScreen, EnableBracketedPaste)
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())));
        match terminal {
            Ok(terminal) => Ok(Tui { terminal, active }),
            Err(e) => {
                restore(&active);
                Err(e)
            }
        }
    }

    pub fn draw(&mut self, render: impl FnOnce(&mut Frame)) -> io::Result<()> {
        self.terminal.draw(render).map(drop)
    }

    /// Repaints everything on the next draw (after something else wrote to the screen).
    pub fn clear(&mut self) -> io::Result<()> {
        self.terminal.clear()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore(&self.active);
    }
}

fn restore(active: &AtomicBool) {
    if active.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), DisableBracketedPaste, LeaveAlternateScreen, Show);
    }
}

/// Restores the terminal before the panic is reported, when the panic ends the UI. A panic of a
/// turn's task is caught by Tokio and shown in the transcript instead.
fn install_panic_hook(active: Arc<AtomicBool>) {
    let ui = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui {
            restore(&active);
        }
        previous(info);
    }));
}
