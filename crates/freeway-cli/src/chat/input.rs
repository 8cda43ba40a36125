//! The keys the chat understands, read from terminal events, and the line being typed.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A key (or a paste) as the chat sees it, whatever the terminal sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Paste(String),
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    Up,
    Down,
    PageUp,
    PageDown,
    Esc,
    /// Ctrl-C: abort the running step, or quit when idle.
    Interrupt,
    /// Ctrl-D: quit.
    Eof,
    /// Ctrl-O: the session picker.
    Sessions,
    /// Ctrl-U: delete to the start of the line.
    KillStart,
    /// Ctrl-K: delete to the end of the line.
    KillEnd,
    /// Ctrl-W: delete the word before the cursor.
    KillWord,
}

/// The key of a terminal event; `None` for what the chat ignores (releases, the mouse, focus).
pub fn key_of(event: &Event) -> Option<Key> {
    match event {
        Event::Key(key) => key_of_press(key),
        Event::Paste(text) => Some(Key::Paste(text.clone())),
        _ => None,
    }
}

fn key_of_press(key: &KeyEvent) -> Option<Key> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('c') => Some(Key::Interrupt),
            KeyCode::Char('d') => Some(Key::Eof),
            KeyCode::Char('o') => Some(Key::Sessions),
            KeyCode::Char('u') => Some(Key::KillStart),
            KeyCode::Char('k') => Some(Key::KillEnd),
            KeyCode::Char('w') | KeyCode::Backspace => Some(Key::KillWord),
            KeyCode::Char('a') => Some(Key::Home),
            KeyCode::Char('e') => Some(Key::End),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Delete => Key::Delete,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Esc => Key::Esc,
        _ => return None,
    })
}

/// The line being typed, with a cursor counted in characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputLine {
    text: String,
    cursor: usize,
}

impl InputLine {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Applies an editing key; false when `key` does not edit.
    pub fn edit(&mut self, key: &Key) -> bool {
        match key {
            Key::Char(c) => self.insert(&c.to_string()),
            Key::Paste(text) => self.insert(&text.replace("\r\n", "\n").replace('\r', "\n")),
            Key::Backspace => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.remove(self.cursor, self.cursor + 1);
                }
            }
            Key::Delete => self.remove(self.cursor, self.cursor + 1),
            Key::Left => self.cursor = self.cursor.saturating_sub(1),
            Key::Right => self.cursor = (self.cursor + 1).min(self.chars()),
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = self.chars(),
            Key::KillStart => {
                self.remove(0, self.cursor);
                self.cursor = 0;
            }
            Key::KillEnd => self.remove(self.cursor, self.chars()),
            Key::KillWord => {
                let chars: Vec<char> = self.text.chars().collect();
                let mut start = self.cursor;
                while start > 0 && chars[start - 1].is_whitespace() {
                    start -= 1;
                }
                while start > 0 && !chars[start - 1].is_whitespace() {
                    start -= 1;
                }
                self.remove(start, self.cursor);
                self.cursor = start;
            }
            Key::Enter
            | Key::Up
            | Key::Down
            | Key::PageUp
            | Key::PageDown
            | Key::Esc
            | Key::Interrupt
            | Key::Eof
            | Key::Sessions => return false,
        }
        true
    }

    /// Empties the line and returns what it held.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    fn chars(&self) -> usize {
        self.text.chars().count()
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(i, _)| i)
    }

    fn insert(&mut self, s: &str) {
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, s);
        self.cursor += s.chars().count();
    }

    /// Removes the characters `from..to`.
    fn remove(&mut self, from: usize, to: usize) {
        let (from, to) = (self.byte_at(from), self.byte_at(to));
        if from < to {
            self.text.replace_range(from..to, "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keys: &[Key]) -> InputLine {
        let mut line = InputLine::default();
        for k in keys {
            line.edit(k);
        }
        line
    }

    #[test]
    fn editing_keys_move_and_delete_by_character() {
        let mut line = typed(&[
            Key::Paste("héllo wörld".into()),
            Key::Left,
            Key::Backspace,
            Key::Home,
            Key::Delete,
        ]);
        assert_eq!(line.text(), "éllo wörd");
        assert_eq!(line.cursor(), 0);
        line.edit(&Key::End);
        line.edit(&Key::KillWord);
        assert_eq!(line.text(), "éllo ");
        line.edit(&Key::Left);
        line.edit(&Key::KillStart);
        assert_eq!((line.text(), line.cursor()), (" ", 0));
        line.edit(&Key::KillEnd);
        assert!(line.is_empty());
        assert!(!line.edit(&Key::Enter));
    }

    #[test]
    fn control_keys_have_names() {
        let ctrl = |c| Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
        assert_eq!(key_of(&ctrl('c')), Some(Key::Interrupt));
        assert_eq!(key_of(&ctrl('d')), Some(Key::Eof));
        assert_eq!(key_of(&ctrl('o')), Some(Key::Sessions));
        let plain = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::NONE));
        assert_eq!(key_of(&plain), Some(Key::Char('c')));
        let shifted = Event::Key(KeyEvent::new(KeyCode::Char('C'), KeyModifiers::SHIFT));
        assert_eq!(key_of(&shifted), Some(Key::Char('C')));
    }
}
