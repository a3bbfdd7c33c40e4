//! The application state and how keys and client messages change it. No I/O here: the main
//! loop feeds [`App::on_key`] and [`App::on_client`], and the views draw from `&App`.

use std::collections::VecDeque;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use shiplog_core::Event;
use shiplog_core::query::{self, ParseError, Query};

use crate::client::ClientMsg;

/// Every key the UI understands, as (keys, what they do); the help overlay lists these.
pub const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("/ or f", "edit the filter"),
    ("Enter", "apply the filter (in the filter box)"),
    ("Esc", "cancel the filter edit / close help"),
    ("Space", "pause or resume the tail"),
    ("Up, k", "scroll back one line"),
    ("Down, j", "scroll forward one line"),
    ("PageUp", "scroll back one page"),
    ("PageDown", "scroll forward one page"),
    ("Home, g", "jump to the oldest line"),
    ("End, G", "follow the newest lines"),
    ("?", "show or hide this help"),
];

/// One row of the tail: an event, or a notice that the server skipped some.
#[derive(Debug, Clone, PartialEq)]
pub enum TailLine {
    /// A log event.
    Event(Box<Event>),
    /// The server dropped this many events because we fell behind.
    Gap(u64),
}

/// The state of the connection to the server, as last reported by the client thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Not connected yet.
    Connecting,
    /// The stream is open.
    Connected,
    /// The stream is closed; the text says why and when the next try is.
    Disconnected(String),
}

/// Whether the list follows new lines or stays where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The newest line is at the bottom.
    Follow,
    /// Paused: the line with this sequence number stays at the bottom.
    Frozen {
        /// Sequence number of the bottom visible line.
        bottom: u64,
    },
}

/// The filter being typed, checked on every keystroke.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterEdit {
    /// The text typed so far.
    pub text: String,
    /// Cursor position, in characters.
    pub cursor: usize,
    /// Why the text does not parse, if it does not.
    pub error: Option<ParseError>,
}

impl FilterEdit {
    fn new(text: &str) -> Self {
        let mut edit = FilterEdit {
            text: text.to_string(),
            cursor: text.chars().count(),
            error: None,
        };
        edit.validate();
        edit
    }

    fn validate(&mut self) {
        self.error = query::parse(&self.text).err();
    }

    fn byte_at(&self, char_index: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_index)
            .map_or(self.text.len(), |(i, _)| i)
    }

    /// Applies an editing key; returns false for keys it does not handle.
    fn edit(&mut self, key: KeyEvent) -> bool {
        let len = self.text.chars().count();
        match key.code {
            KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
                self.cursor = 0;
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
        self.validate();
        true
    }
}

/// What the main loop must do after a key, beyond redrawing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reconnect the tail with this filter.
    ApplyFilter(String),
}

/// Everything the Tail view shows.
#[derive(Debug)]
pub struct App {
    /// Base URL of the server.
    pub url: String,
    /// Whether to use colours (false when `NO_COLOR` is set).
    pub color: bool,
    /// The buffered lines, oldest first; at most `capacity`.
    lines: VecDeque<TailLine>,
    capacity: usize,
    /// Sequence number of `lines[0]`; numbers only grow, so a frozen view can hold on to one.
    first_seq: u64,
    /// The applied filter text and its parsed form (used to drop stale lines after a change).
    filter: String,
    query: Query,
    /// Connection state.
    pub connection: Connection,
    /// Events received under the current filter.
    pub received: u64,
    /// Events the server reported as missed under the current filter.
    pub missed: u64,
    /// Lines dropped from the front of the buffer to respect its bound.
    pub evicted: u64,
    /// Follow or frozen.
    pub view: View,
    /// Lines that arrived while paused.
    pub new_while_paused: u64,
    /// The filter box, when open.
    pub filter_edit: Option<FilterEdit>,
    /// Whether the help overlay is shown.
    pub show_help: bool,
    /// Set when the user asked to quit.
    pub should_quit: bool,
    /// Rows available for lines in the last drawn frame (for paging).
    pub viewport_rows: usize,
}

impl App {
    /// A fresh state for a server, keeping at most `capacity` lines.
    pub fn new(url: impl Into<String>, capacity: usize, color: bool) -> Self {
        App {
            url: url.into(),
            color,
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            first_seq: 0,
            filter: String::new(),
            query: Query::All,
            connection: Connection::Connecting,
            received: 0,
            missed: 0,
            evicted: 0,
            view: View::Follow,
            new_while_paused: 0,
            filter_edit: None,
            show_help: false,
            should_quit: false,
            viewport_rows: 20,
        }
    }

    /// The applied filter.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The buffered lines, oldest first.
    pub fn lines(&self) -> &VecDeque<TailLine> {
        &self.lines
    }

    /// Whether the view is paused (frozen or scrolled back).
    pub fn paused(&self) -> bool {
        matches!(self.view, View::Frozen { .. })
    }

    /// Sequence number one past the newest line.
    fn end_seq(&self) -> u64 {
        self.first_seq + self.lines.len() as u64
    }

    /// The index range of `lines` to show in `rows` rows, oldest first.
    pub fn visible_range(&self, rows: usize) -> std::ops::Range<usize> {
        if self.lines.is_empty() || rows == 0 {
            return 0..0;
        }
        let last = self.lines.len() - 1;
        let bottom = match self.view {
            View::Follow => last,
            View::Frozen { bottom } => {
                let b = usize::try_from(bottom.saturating_sub(self.first_seq)).unwrap_or(last);
                if self.evicted > 0 {
                    // The buffer is full and drops its oldest lines: keep the screen full
                    // even when the frozen line itself was dropped.
                    b.min(last).max((rows - 1).min(last))
                } else {
                    b.min(last)
                }
            }
        };
        let top = (bottom + 1).saturating_sub(rows);
        top..bottom + 1
    }

    /// Handles one message from the client thread.
    pub fn on_client(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::Event(event) => {
                // Lines from a connection with the previous filter may still be queued.
                if !self.query.matches(&event) {
                    return;
                }
                self.received += 1;
                self.push(TailLine::Event(event));
            }
            ClientMsg::Gap(missed) => {
                self.missed += missed;
                self.push(TailLine::Gap(missed));
            }
            ClientMsg::Connected => self.connection = Connection::Connected,
            ClientMsg::Disconnected(why) => self.connection = Connection::Disconnected(why),
        }
    }

    /// Adds a line at the end, dropping the oldest past the bound.
    pub fn push(&mut self, line: TailLine) {
        if self.paused() {
            self.new_while_paused += 1;
        }
        while self.lines.len() >= self.capacity {
            self.lines.pop_front();
            self.first_seq += 1;
            self.evicted += 1;
        }
        self.lines.push_back(line);
        debug_assert!(self.lines.len() <= self.capacity);
    }

    /// Handles one key press; returns what the main loop must do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.should_quit = true;
            return None;
        }
        if self.show_help {
            match key.code {
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => self.show_help = false,
                KeyCode::Char('q') => self.should_quit = true,
                _ => {}
            }
            return None;
        }
        if let Some(edit) = &mut self.filter_edit {
            match key.code {
                KeyCode::Esc => self.filter_edit = None,
                KeyCode::Enter => {
                    if edit.error.is_some() {
                        return None;
                    }
                    let text = edit.text.trim().to_string();
                    return Some(self.apply_filter(text));
                }
                _ => {
                    edit.edit(key);
                }
            }
            return None;
        }
        match key.code {
            KeyCode::Char('q') => self.should_quit = true,
            KeyCode::Char('/') | KeyCode::Char('f') => {
                self.filter_edit = Some(FilterEdit::new(&self.filter));
            }
            KeyCode::Char('?') => self.show_help = true,
            KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Up | KeyCode::Char('k') => self.scroll_back(1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll_forward(1),
            KeyCode::PageUp => self.scroll_back(self.page()),
            KeyCode::PageDown => self.scroll_forward(self.page()),
            KeyCode::Home | KeyCode::Char('g') => self.scroll_back(usize::MAX),
            KeyCode::End | KeyCode::Char('G') => self.follow(),
            _ => {}
        }
        None
    }

    fn page(&self) -> usize {
        self.viewport_rows.saturating_sub(1).max(1)
    }

    fn apply_filter(&mut self, text: String) -> Command {
        // The box only lets valid text through, so this parse succeeds.
        self.query = query::parse(&text).unwrap_or(Query::All);
        self.filter.clone_from(&text);
        self.filter_edit = None;
        self.first_seq = self.end_seq();
        self.lines.clear();
        self.received = 0;
        self.missed = 0;
        self.evicted = 0;
        self.follow();
        self.connection = Connection::Connecting;
        Command::ApplyFilter(text)
    }

    fn follow(&mut self) {
        self.view = View::Follow;
        self.new_while_paused = 0;
    }

    fn toggle_pause(&mut self) {
        match self.view {
            View::Follow => self.freeze_at(self.end_seq().saturating_sub(1)),
            View::Frozen { .. } => self.follow(),
        }
    }

    fn freeze_at(&mut self, bottom: u64) {
        if !self.paused() {
            self.new_while_paused = 0;
        }
        self.view = View::Frozen { bottom };
    }

    /// The sequence number at the bottom of the screen right now.
    fn bottom_seq(&self) -> u64 {
        let range = self.visible_range(self.viewport_rows.max(1));
        self.first_seq + range.end.saturating_sub(1) as u64
    }

    fn scroll_back(&mut self, n: usize) {
        if self.lines.is_empty() {
            return;
        }
        // The top line may not go above the oldest one.
        let rows = self.viewport_rows.max(1) as u64;
        let lowest = (self.first_seq + rows - 1).min(self.end_seq() - 1);
        let bottom = self.bottom_seq().saturating_sub(n as u64).max(lowest);
        self.freeze_at(bottom);
    }

    fn scroll_forward(&mut self, n: usize) {
        let View::Frozen { .. } = self.view else {
            return;
        };
        let newest = self.end_seq().saturating_sub(1);
        let bottom = self.bottom_seq().saturating_add(n as u64).min(newest);
        self.freeze_at(bottom);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use shiplog_core::{Level, Timestamp};

    pub(crate) fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn event(n: u64) -> ClientMsg {
        let mut e = Event::log(Timestamp(n as i64), format!("line {n}"));
        e.service = "web".into();
        e.level = Some(Level::Info);
        ClientMsg::Event(Box::new(e))
    }

    fn message_at(app: &App, index: usize) -> String {
        match &app.lines()[index] {
            TailLine::Event(e) => e.message.clone(),
            TailLine::Gap(n) => format!("gap {n}"),
        }
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn buffer_keeps_only_the_newest_lines() {
        let mut app = App::new("http://x", 3, false);
        for n in 0..5 {
            app.on_client(event(n));
        }
        assert_eq!(app.lines().len(), 3);
        assert_eq!(message_at(&app, 0), "line 2");
        assert_eq!(message_at(&app, 2), "line 4");
        assert_eq!(app.evicted, 2);
        assert_eq!(app.received, 5);
    }

    #[test]
    fn pause_freezes_the_view_and_counts_new_lines() {
        let mut app = App::new("http://x", 100, false);
        app.viewport_rows = 2;
        for n in 0..3 {
            app.on_client(event(n));
        }
        app.on_key(key(KeyCode::Char(' ')));
        assert!(app.paused());
        for n in 3..10 {
            app.on_client(event(n));
        }
        assert_eq!(app.new_while_paused, 7);
        // The screen still shows lines 1 and 2 at the bottom, and a tall screen does not
        // grow to show the new ones.
        assert_eq!(app.visible_range(2), 1..3);
        assert_eq!(app.visible_range(50), 0..3);
        app.on_client(ClientMsg::Gap(5));
        assert_eq!(app.new_while_paused, 8);
        app.on_key(key(KeyCode::Char(' ')));
        assert!(!app.paused());
        assert_eq!(app.new_while_paused, 0);
        assert_eq!(app.visible_range(2), 9..11);
        assert_eq!(message_at(&app, 10), "gap 5");
        assert_eq!(app.missed, 5);
    }

    #[test]
    fn scrolling_back_pauses_and_end_follows_again() {
        let mut app = App::new("http://x", 100, false);
        app.viewport_rows = 4;
        for n in 0..20 {
            app.on_client(event(n));
        }
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.view, View::Frozen { bottom: 18 });
        app.on_key(key(KeyCode::PageUp));
        assert_eq!(app.view, View::Frozen { bottom: 15 });
        app.on_key(key(KeyCode::Char('g')));
        assert_eq!(app.visible_range(4), 0..4);
        app.on_key(key(KeyCode::Char('k')));
        assert_eq!(
            app.visible_range(4),
            0..4,
            "cannot scroll above the oldest line"
        );
        app.on_key(key(KeyCode::PageDown));
        app.on_key(key(KeyCode::Char('j')));
        assert_eq!(app.visible_range(4), 4..8);
        app.on_client(event(20));
        assert_eq!(app.new_while_paused, 1);
        app.on_key(key(KeyCode::Char('G')));
        assert_eq!(app.view, View::Follow);
        assert_eq!(app.visible_range(4), 17..21);
        // Down while following does nothing.
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.view, View::Follow);
    }

    #[test]
    fn a_frozen_view_survives_eviction() {
        let mut app = App::new("http://x", 5, false);
        app.viewport_rows = 2;
        for n in 0..5 {
            app.on_client(event(n));
        }
        app.on_key(key(KeyCode::Char(' ')));
        for n in 5..20 {
            app.on_client(event(n));
        }
        // The frozen bottom line was dropped; the view clamps to the oldest line kept.
        assert_eq!(app.visible_range(2), 0..2);
        assert_eq!(app.lines().len(), 5);
    }

    #[test]
    fn filter_box_validates_on_every_keystroke() {
        let mut app = App::new("http://x", 10, false);
        app.on_key(key(KeyCode::Char('/')));
        assert!(app.filter_edit.is_some());
        type_text(&mut app, "service:");
        let error = app.filter_edit.as_ref().unwrap().error.clone().unwrap();
        assert_eq!(error.position, 8);
        assert!(error.message.contains("expected a value"), "{error}");
        // Enter with an error keeps the box open and sends nothing.
        assert_eq!(app.on_key(key(KeyCode::Enter)), None);
        assert!(app.filter_edit.is_some());
        type_text(&mut app, "web");
        assert_eq!(app.filter_edit.as_ref().unwrap().error, None);
        // Editing in the middle, with multi-byte characters.
        app.on_key(key(KeyCode::Home));
        type_text(&mut app, "é colour:red ");
        let error = app.filter_edit.as_ref().unwrap().error.clone().unwrap();
        assert_eq!(error.position, 2, "{error}");
        app.on_key(key(KeyCode::Home));
        app.on_key(key(KeyCode::Delete));
        app.on_key(key(KeyCode::Delete));
        app.on_key(key(KeyCode::End));
        app.on_key(key(KeyCode::Backspace));
        assert_eq!(
            app.filter_edit.as_ref().unwrap().text,
            "colour:red service:we"
        );
        app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert_eq!(app.filter_edit.as_ref().unwrap().text, "");
        assert_eq!(app.filter_edit.as_ref().unwrap().error, None);
    }

    #[test]
    fn enter_applies_the_filter_and_clears_the_buffer() {
        let mut app = App::new("http://x", 10, false);
        app.on_client(ClientMsg::Connected);
        app.on_client(event(1));
        app.on_key(key(KeyCode::Char('f')));
        type_text(&mut app, "level:error");
        let cmd = app.on_key(key(KeyCode::Enter));
        assert_eq!(cmd, Some(Command::ApplyFilter("level:error".into())));
        assert_eq!(app.filter(), "level:error");
        assert!(app.lines().is_empty());
        assert_eq!(app.received, 0);
        assert_eq!(app.connection, Connection::Connecting);
        // A stale info line from the old connection is dropped; an error line is kept.
        app.on_client(event(2));
        assert!(app.lines().is_empty());
        let mut e = Event::log(Timestamp(3), "boom");
        e.level = Some(Level::Error);
        app.on_client(ClientMsg::Event(Box::new(e)));
        assert_eq!(app.lines().len(), 1);
    }

    #[test]
    fn esc_cancels_the_filter_edit() {
        let mut app = App::new("http://x", 10, false);
        app.on_key(key(KeyCode::Char('/')));
        type_text(&mut app, "q?");
        assert_eq!(
            app.filter_edit.as_ref().unwrap().text,
            "q?",
            "q and ? are text here"
        );
        assert!(!app.should_quit && !app.show_help);
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert!(app.filter_edit.is_none());
        assert_eq!(app.filter(), "");
    }

    #[test]
    fn help_toggles_and_swallows_other_keys() {
        let mut app = App::new("http://x", 10, false);
        app.on_key(key(KeyCode::Char('?')));
        assert!(app.show_help);
        app.on_key(key(KeyCode::Char(' ')));
        assert!(!app.paused(), "keys under the help overlay do nothing");
        app.on_key(key(KeyCode::Char('?')));
        assert!(!app.show_help);
        app.on_key(key(KeyCode::Char('?')));
        app.on_key(key(KeyCode::Esc));
        assert!(!app.show_help);
    }

    #[test]
    fn q_and_ctrl_c_quit_and_releases_are_ignored() {
        let mut app = App::new("http://x", 10, false);
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        app.on_key(release);
        assert!(!app.should_quit);
        app.on_key(key(KeyCode::Char('q')));
        assert!(app.should_quit);
        let mut app = App::new("http://x", 10, false);
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(app.should_quit);
    }

    #[test]
    fn connection_state_follows_the_client() {
        let mut app = App::new("http://x", 10, false);
        assert_eq!(app.connection, Connection::Connecting);
        app.on_client(ClientMsg::Connected);
        assert_eq!(app.connection, Connection::Connected);
        app.on_client(ClientMsg::Disconnected("gone".into()));
        assert_eq!(app.connection, Connection::Disconnected("gone".into()));
    }
}
