//! The Tail view's state: a bounded ring buffer of lines, follow or paused, a cursor, the
//! filter box, the highlight, wrap. Lines carry sequence numbers that only grow, so a paused
//! view and the cursor keep pointing at the same line while old lines are evicted.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use serde_json::Value;
use shiplog_core::query::{self, Query};
use shiplog_core::{Event, Level, Stream, Timestamp};

use crate::app::{Command, Ctx, Detail};
use crate::edit::{LineEdit, QueryEdit};
use crate::widgets::text;

/// One buffered event, kept small: the columns the list shows, with repeated names shared,
/// and the whole record as JSON text for the detail and for copying. A full [`Event`] with
/// its maps and strings takes about twice the memory, and 100,000 of these are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct TailEvent {
    /// Source time.
    pub ts: Timestamp,
    /// Severity.
    pub level: Option<Level>,
    /// stdout or stderr.
    pub stream: Option<Stream>,
    /// Node.
    pub node: Arc<str>,
    /// Service.
    pub service: Arc<str>,
    /// The text shown: the message, or what a metric sample or registration says.
    pub message: Box<str>,
    /// The whole record as the server sent it (keys this build knows).
    pub json: Box<str>,
    /// It marks lines lost at their source (`fields._gap`): about this many (0: unknown).
    pub source_gap: Option<u64>,
}

impl TailEvent {
    /// The record as JSON, for the detail.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// Most distinct names shared before the table starts over (names stay alive in the lines
/// that hold them).
const MAX_INTERNED: usize = 4096;

/// One row of the tail: an event, or a notice that the server skipped some.
#[derive(Debug, Clone, PartialEq)]
pub enum TailLine {
    /// A log event.
    Event(Box<TailEvent>),
    /// The server dropped this many events because we fell behind.
    Gap(u64),
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

/// Everything the Tail view shows.
#[derive(Debug)]
pub struct Tail {
    /// The buffered lines, oldest first; at most `capacity`.
    lines: VecDeque<TailLine>,
    capacity: usize,
    /// Sequence number of `lines[0]`.
    first_seq: u64,
    /// The applied filter text and its parsed form (used to drop stale lines after a change).
    filter: String,
    query: Query,
    /// Events received under the current filter.
    pub received: u64,
    /// Events the server reported as missed under the current filter.
    pub missed: u64,
    /// Gap events seen (lines lost at their source, see [`TailEvent::source_gap`]), and
    /// the lines they estimate.
    pub source_gaps: u64,
    /// Lines those gap events estimate.
    pub lost_at_source: u64,
    /// Lines dropped from the front of the buffer to respect its bound.
    pub evicted: u64,
    /// Follow or frozen.
    pub view: View,
    /// The selected line while paused (sequence number).
    cursor: Option<u64>,
    /// Lines that arrived while paused.
    pub new_while_paused: u64,
    /// The filter box, when open.
    pub filter_edit: Option<QueryEdit>,
    /// Text highlighted in messages (`/`), case ignored.
    pub highlight: String,
    /// The highlight input, when open.
    pub highlight_edit: Option<LineEdit>,
    /// Long messages continue on the next rows instead of being cut.
    pub wrap: bool,
    /// Rows available for lines in the last drawn frame (for paging).
    pub viewport_rows: usize,
    /// Node and service names, shared between lines.
    names: HashSet<Arc<str>>,
    /// Terminal columns of the longest service name received under the current filter:
    /// the SERVICE column grows to it (it does not shrink as lines scroll out, so the
    /// columns stay put while lines stream in).
    pub longest_service: usize,
}

impl Tail {
    /// An empty tail keeping at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Tail {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            first_seq: 0,
            filter: String::new(),
            query: query::default_query(),
            received: 0,
            missed: 0,
            source_gaps: 0,
            lost_at_source: 0,
            evicted: 0,
            view: View::Follow,
            cursor: None,
            new_while_paused: 0,
            filter_edit: None,
            highlight: String::new(),
            highlight_edit: None,
            wrap: false,
            viewport_rows: 20,
            names: HashSet::new(),
            longest_service: 0,
        }
    }

    /// The applied filter.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Most lines kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The buffered lines, oldest first.
    pub fn lines(&self) -> &VecDeque<TailLine> {
        &self.lines
    }

    /// Whether the view is paused (frozen or scrolled back).
    pub fn paused(&self) -> bool {
        matches!(self.view, View::Frozen { .. })
    }

    /// Whether an input box is open (keys are text then).
    pub fn editing(&self) -> bool {
        self.filter_edit.is_some() || self.highlight_edit.is_some()
    }

    /// Index in [`lines`](Self::lines) of the selected line, while paused.
    pub fn cursor(&self) -> Option<usize> {
        let c = self.cursor?;
        let i = usize::try_from(c.checked_sub(self.first_seq)?).ok()?;
        (i < self.lines.len()).then_some(i)
    }

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

    /// Adds an event that matches the filter (lines of a connection with the previous
    /// filter may still be queued and are dropped).
    pub fn push_event(&mut self, event: Box<Event>) {
        if !self.query.matches(&event) {
            return;
        }
        self.received += 1;
        let source_gap = event
            .fields
            .get(shiplog_core::GAP_FIELD)
            .filter(|gap| gap.is_object())
            .map(|gap| gap["lines_estimate"].as_u64().unwrap_or(0));
        if let Some(lines) = source_gap {
            self.source_gaps += 1;
            self.lost_at_source += lines;
        }
        self.longest_service = self.longest_service.max(text::width(&event.service));
        let line = TailEvent {
            ts: event.ts,
            level: event.level,
            stream: event.stream,
            node: self.intern(&event.node),
            service: self.intern(&event.service),
            message: super::summary(&event).into(),
            json: serde_json::to_string(event.as_ref())
                .unwrap_or_default()
                .into_boxed_str(),
            source_gap,
        };
        self.push(TailLine::Event(Box::new(line)));
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        if self.names.len() >= MAX_INTERNED {
            self.names.clear();
        }
        let shared: Arc<str> = Arc::from(name);
        self.names.insert(shared.clone());
        shared
    }

    /// Adds a notice that the server skipped `missed` events.
    pub fn push_gap(&mut self, missed: u64) {
        self.missed += missed;
        self.push(TailLine::Gap(missed));
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
        if let Some(c) = self.cursor
            && c < self.first_seq
        {
            self.cursor = Some(self.first_seq);
        }
        debug_assert!(self.lines.len() <= self.capacity);
    }

    /// Sets a new filter (from the filter box or a jump from another view); returns it when
    /// it differs from the applied one, so the stream must be reopened.
    pub fn apply_filter(&mut self, text: String) -> Option<String> {
        let text = text.trim().to_string();
        let Ok(parsed) = query::parse_or_default(&text) else {
            // A jump with a query that does not parse opens the box to show why.
            self.filter_edit = Some(QueryEdit::new(&text));
            return None;
        };
        self.filter_edit = None;
        if text == self.filter {
            return None;
        }
        self.query = parsed;
        self.filter.clone_from(&text);
        self.first_seq = self.end_seq();
        self.lines.clear();
        self.received = 0;
        self.missed = 0;
        self.source_gaps = 0;
        self.lost_at_source = 0;
        self.evicted = 0;
        self.longest_service = 0;
        self.follow();
        Some(text)
    }

    /// Handles a key; returns a filter to apply when one was entered.
    pub fn on_key(&mut self, key: KeyEvent, ctx: &mut Ctx) -> Option<String> {
        self.viewport_rows = self.viewport_rows.max(1);
        if let Some(edit) = &mut self.filter_edit {
            match key.code {
                KeyCode::Esc => self.filter_edit = None,
                KeyCode::Enter if edit.error.is_none() => {
                    let text = edit.text().to_string();
                    self.filter_edit = None;
                    return self.apply_filter(text);
                }
                _ => {
                    edit.edit(key);
                }
            }
            return None;
        }
        if let Some(edit) = &mut self.highlight_edit {
            match key.code {
                KeyCode::Esc => self.highlight_edit = None,
                KeyCode::Enter => {
                    self.highlight = edit.text.clone();
                    self.highlight_edit = None;
                    if !self.highlight.is_empty() {
                        self.find(true, ctx);
                    }
                }
                _ => {
                    edit.edit(key);
                }
            }
            return None;
        }
        match key.code {
            KeyCode::Char('f') => self.filter_edit = Some(QueryEdit::new(&self.filter)),
            KeyCode::Char('/') => self.highlight_edit = Some(LineEdit::new(&self.highlight)),
            KeyCode::Char('n') => self.find(true, ctx),
            KeyCode::Char('N') => self.find(false, ctx),
            KeyCode::Esc if !self.highlight.is_empty() => self.highlight.clear(),
            KeyCode::Esc => self.follow(),
            KeyCode::Char(' ') => self.toggle_pause(),
            KeyCode::Char('w') => self.wrap = !self.wrap,
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor_back(1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor_forward(1),
            KeyCode::PageUp => self.move_cursor_back(self.page()),
            KeyCode::PageDown => self.move_cursor_forward(self.page()),
            KeyCode::Home | KeyCode::Char('g') => self.move_cursor_back(usize::MAX),
            KeyCode::End | KeyCode::Char('G') => self.follow(),
            KeyCode::Enter => {
                if let Some(TailLine::Event(e)) = self.selected() {
                    let value = e.value();
                    let id = value.get("id").and_then(Value::as_str).unwrap_or("");
                    ctx.detail = Some(Detail::json(format!("event {id}"), &value));
                }
            }
            KeyCode::Char('y') => {
                if let Some(TailLine::Event(e)) = self.selected() {
                    let text = e.message.to_string();
                    ctx.notice = Some(format!("copied {} bytes", text.len()));
                    ctx.commands.push(Command::Copy(text));
                }
            }
            KeyCode::Char('Y') => {
                if let Some(TailLine::Event(e)) = self.selected() {
                    let text = e.json.to_string();
                    ctx.notice = Some(format!("copied {} bytes of JSON", text.len()));
                    ctx.commands.push(Command::Copy(text));
                }
            }
            _ => {}
        }
        None
    }

    /// The selected line: the cursor while paused, else the newest.
    pub fn selected(&self) -> Option<&TailLine> {
        match self.cursor() {
            Some(i) => self.lines.get(i),
            None => self.lines.back(),
        }
    }

    fn page(&self) -> usize {
        self.viewport_rows.saturating_sub(1).max(1)
    }

    fn follow(&mut self) {
        self.view = View::Follow;
        self.cursor = None;
        self.new_while_paused = 0;
    }

    fn toggle_pause(&mut self) {
        match self.view {
            View::Follow => {
                let newest = self.end_seq().saturating_sub(1);
                self.freeze(newest, newest);
            }
            View::Frozen { .. } => self.follow(),
        }
    }

    /// Pauses with `cursor` selected and `bottom` at the bottom.
    fn freeze(&mut self, bottom: u64, cursor: u64) {
        if !self.paused() {
            self.new_while_paused = 0;
        }
        self.view = View::Frozen { bottom };
        self.cursor = Some(cursor);
    }

    /// The sequence numbers at the top and bottom of the screen right now.
    fn shown(&self) -> (u64, u64) {
        let range = self.visible_range(self.viewport_rows);
        (
            self.first_seq + range.start as u64,
            self.first_seq + range.end.saturating_sub(1) as u64,
        )
    }

    /// Moves the cursor to `target`, scrolling just enough to keep it on screen.
    fn select(&mut self, target: u64) {
        if self.lines.is_empty() {
            return;
        }
        let newest = self.end_seq() - 1;
        let target = target.clamp(self.first_seq, newest);
        let (top, bottom) = self.shown();
        let rows = self.viewport_rows as u64;
        let bottom = if target < top {
            (target + rows - 1).min(newest)
        } else if target > bottom {
            target
        } else {
            bottom
        };
        self.freeze(bottom, target);
    }

    fn move_cursor_back(&mut self, n: usize) {
        if self.lines.is_empty() {
            return;
        }
        let from = match self.cursor {
            Some(c) => c,
            // The first step back selects the newest line.
            None => {
                let newest = self.end_seq() - 1;
                self.freeze(newest, newest);
                if n == 1 {
                    return;
                }
                newest
            }
        };
        self.select(from.saturating_sub(n as u64));
    }

    fn move_cursor_forward(&mut self, n: usize) {
        let Some(c) = self.cursor else {
            return;
        };
        self.select(c.saturating_add(n as u64));
    }

    /// Selects the next line (older when `backwards`) whose message holds the highlight.
    fn find(&mut self, backwards: bool, ctx: &mut Ctx) {
        if self.highlight.is_empty() || self.lines.is_empty() {
            return;
        }
        let needle = self.highlight.to_lowercase();
        let start = self.cursor().unwrap_or(self.lines.len());
        let hit = |line: &TailLine| match line {
            TailLine::Event(e) => e.message.to_lowercase().contains(&needle),
            TailLine::Gap(_) => false,
        };
        let found = if backwards {
            (0..start).rev().find(|&i| hit(&self.lines[i]))
        } else {
            (start + 1..self.lines.len()).find(|&i| hit(&self.lines[i]))
        };
        match found {
            Some(i) => self.select(self.first_seq + i as u64),
            None => ctx.notice = Some(format!("no more lines with '{}'", self.highlight)),
        }
    }
}
