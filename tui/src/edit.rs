//! One-line text inputs: a plain [`LineEdit`] (highlight text, request ids, durations) and a
//! [`QueryEdit`] that checks the query language on every keystroke and keeps a history.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shiplog_core::query::{self, ParseError};

/// Text being typed, with a cursor counted in characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineEdit {
    /// The text typed so far.
    pub text: String,
    /// Cursor position, in characters.
    pub cursor: usize,
}

impl LineEdit {
    /// An input holding `text` with the cursor at its end.
    pub fn new(text: &str) -> Self {
        LineEdit {
            text: text.to_string(),
            cursor: text.chars().count(),
        }
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set(&mut self, text: &str) {
        *self = LineEdit::new(text);
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(i, _)| i)
    }

    /// Applies an editing key; returns false for keys it does not handle.
    pub fn edit(&mut self, key: KeyEvent) -> bool {
        let len = self.text.chars().count();
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
                self.cursor = 0;
            }
            KeyCode::Char('a') if key.modifiers.contains(KeyModifiers::CONTROL) => self.cursor = 0,
            KeyCode::Char('e') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.cursor = len;
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                let at = self.byte_at(self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = self.byte_at(self.cursor);
                self.text.remove(at);
            }
            KeyCode::Delete if self.cursor < len => {
                let at = self.byte_at(self.cursor);
                self.text.remove(at);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(len),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = len,
            KeyCode::Backspace | KeyCode::Delete => {}
            _ => return false,
        }
        true
    }
}

/// A query being typed, checked with the server's own parser on every keystroke.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryEdit {
    /// The text and cursor.
    pub line: LineEdit,
    /// Why the text does not parse, if it does not.
    pub error: Option<ParseError>,
}

impl QueryEdit {
    /// An input holding `text`, already checked.
    pub fn new(text: &str) -> Self {
        let mut edit = QueryEdit {
            line: LineEdit::new(text),
            error: None,
        };
        edit.validate();
        edit
    }

    /// The text typed so far.
    pub fn text(&self) -> &str {
        &self.line.text
    }

    /// Replaces the text (from history) and checks it.
    pub fn set(&mut self, text: &str) {
        self.line.set(text);
        self.validate();
    }

    fn validate(&mut self) {
        self.error = query::parse(&self.line.text).err();
    }

    /// Applies an editing key and re-checks; returns false for keys it does not handle.
    pub fn edit(&mut self, key: KeyEvent) -> bool {
        let handled = self.line.edit(key);
        if handled {
            self.validate();
        }
        handled
    }
}

/// Queries run before, oldest first, without repeats; walked with up and down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: Vec<String>,
    /// Index being shown while walking; `None` when editing a fresh line.
    pos: Option<usize>,
    /// What was typed before walking started, restored when walking past the newest.
    draft: String,
}

/// Most queries remembered.
const HISTORY_MAX: usize = 100;

impl History {
    /// Remembers a query that was run (moving a repeat to the end).
    pub fn push(&mut self, text: &str) {
        let text = text.trim();
        self.pos = None;
        if text.is_empty() {
            return;
        }
        self.entries.retain(|e| e != text);
        self.entries.push(text.to_string());
        if self.entries.len() > HISTORY_MAX {
            self.entries.remove(0);
        }
    }

    /// Entries, oldest first.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// One step back in time from `current`; `None` when there is nothing older.
    pub fn older(&mut self, current: &str) -> Option<String> {
        let next = match self.pos {
            None if self.entries.is_empty() => return None,
            None => {
                self.draft = current.to_string();
                self.entries.len() - 1
            }
            Some(0) => return None,
            Some(p) => p - 1,
        };
        self.pos = Some(next);
        Some(self.entries[next].clone())
    }

    /// One step forward; past the newest entry, the line typed before walking comes back.
    pub fn newer(&mut self) -> Option<String> {
        let p = self.pos?;
        if p + 1 < self.entries.len() {
            self.pos = Some(p + 1);
            return Some(self.entries[p + 1].clone());
        }
        self.pos = None;
        Some(std::mem::take(&mut self.draft))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn edits_in_the_middle_with_wide_characters() {
        let mut e = LineEdit::new("ab");
        e.edit(key(KeyCode::Left));
        e.edit(key(KeyCode::Char('é')));
        assert_eq!(e.text, "aéb");
        e.edit(key(KeyCode::Backspace));
        e.edit(key(KeyCode::Delete));
        assert_eq!((e.text.as_str(), e.cursor), ("a", 1));
        assert!(!e.edit(key(KeyCode::Up)));
    }

    #[test]
    fn query_edit_reports_the_error_position() {
        let mut q = QueryEdit::new("");
        for c in "service:".chars() {
            q.edit(key(KeyCode::Char(c)));
        }
        assert_eq!(q.error.as_ref().map(|e| e.position), Some(8));
        q.set("service:web");
        assert!(q.error.is_none());
    }

    #[test]
    fn history_walks_back_and_restores_the_draft() {
        let mut h = History::default();
        assert_eq!(h.older("x"), None);
        h.push("a");
        h.push("b");
        h.push("a");
        assert_eq!(h.entries(), ["b", "a"]);
        assert_eq!(h.older("draft").as_deref(), Some("a"));
        assert_eq!(h.older("a").as_deref(), Some("b"));
        assert_eq!(h.older("b"), None);
        assert_eq!(h.newer().as_deref(), Some("a"));
        assert_eq!(h.newer().as_deref(), Some("draft"));
        assert_eq!(h.newer(), None);
    }
}
