//! The application state and how keys, mouse wheels, client messages and answers change
//! it. No I/O here: the main loop feeds [`App::on_key`], [`App::on_client`],
//! [`App::on_reply`] and [`App::tick`], carries out the [`Command`]s that come back, and the
//! views draw from `&App`.
//!
//! Keys go first to an open overlay (help, detail), then to the active view when it has a
//! text input open, then to the global keys (quit, help, switch views), then to the view.

use std::time::Instant;

use ratatui::crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};
use serde_json::Value;
use shiplog_core::Timestamp;

use crate::client::ClientMsg;
use crate::clock::Clock;
use crate::fetch::{FetchError, Reply, Request};
use crate::views::Tab;
use crate::views::alerts::Alerts;
use crate::views::metrics::Metrics;
use crate::views::predictions::Predictions;
use crate::views::search::Search;
use crate::views::services::Services;
use crate::views::tail::Tail;

/// Keys that work in every view, as (keys, what they do); the help overlay lists these
/// first, then the active view's own, then every other view's.
pub const GLOBAL_KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("?", "show or hide this help"),
    ("1-6, Tab, S-Tab", "switch view"),
    ("u", "show times in UTC or local time"),
    ("Esc", "close an overlay, input or pane"),
    ("wheel", "scroll (like Up and Down)"),
];

/// Keys of the detail overlay.
pub const DETAIL_KEYS: &[(&str, &str)] = &[
    ("j, k, PgUp, PgDn", "scroll the detail"),
    ("y", "copy the record as JSON (OSC 52)"),
    ("Esc, Enter, q", "close the detail"),
];

/// The state of the live tail connection, as last reported by the client thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Not connected yet.
    Connecting,
    /// The stream is open.
    Connected,
    /// The stream is closed; the text says why and when the next try is.
    Disconnected(String),
}

/// What the main loop must do after a key or a tick, beyond redrawing.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Reconnect the tail with this filter.
    ApplyFilter(String),
    /// Ask the server (on a worker thread).
    Fetch(Request),
    /// Put this text on the clipboard with OSC 52.
    Copy(String),
}

/// A full record shown over the view: every field, pretty JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// Title of the box.
    pub title: String,
    /// The pretty JSON, one entry per line.
    pub lines: Vec<String>,
    /// First row shown.
    pub scroll: usize,
    /// Rows the lines took in the box of the last frame, broken at the line breaks in
    /// their strings and wrapped (see [`widgets::detail::rows`](crate::widgets::detail::rows)):
    /// how far scrolling goes.
    pub rows: usize,
}

impl Detail {
    /// A detail box for a JSON record.
    pub fn json(title: impl Into<String>, value: &Value) -> Detail {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|e| e.to_string());
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        Detail {
            title: title.into(),
            rows: lines.len(),
            lines,
            scroll: 0,
        }
    }

    /// The record as one line of JSON, for the clipboard.
    pub fn compact(&self) -> String {
        let text = self.lines.join("\n");
        serde_json::from_str::<Value>(&text)
            .map(|v| v.to_string())
            .unwrap_or(text)
    }
}

/// Another view to switch to, with its input filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jump {
    /// Tail with this filter.
    Tail(String),
    /// Search with this query, run at once.
    Search(String),
}

/// What a view's key or answer handler asks of the app.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The clock (now, UTC or local).
    pub clock: Clock,
    /// Rows of the body in the last frame (for paging).
    pub rows: usize,
    /// Commands for the main loop.
    pub commands: Vec<Command>,
    /// A detail box to open.
    pub detail: Option<Detail>,
    /// A view to switch to.
    pub jump: Option<Jump>,
    /// A short message for the status bar.
    pub notice: Option<String>,
}

impl Ctx {
    /// Asks the server for something.
    pub fn fetch(&mut self, request: Request) {
        self.commands.push(Command::Fetch(request));
    }
}

/// Everything the UI shows.
#[derive(Debug)]
pub struct App {
    /// Base URL of the server.
    pub url: String,
    /// Whether to use colours (false when `NO_COLOR` is set).
    pub color: bool,
    /// The view shown.
    pub tab: Tab,
    /// Now, and UTC or local.
    pub clock: Clock,
    /// The live tail.
    pub tail: Tail,
    /// Search.
    pub search: Search,
    /// Service catalog.
    pub services: Services,
    /// Container metrics.
    pub metrics: Metrics,
    /// Model predictions.
    pub predictions: Predictions,
    /// Alerts.
    pub alerts: Alerts,
    /// The tail stream's connection.
    pub connection: Connection,
    /// Why the last request could not reach the server, while it cannot.
    pub api_down: Option<String>,
    /// Whether the help overlay is shown, and its first line.
    pub help: Option<usize>,
    /// The detail overlay.
    pub detail: Option<Detail>,
    /// A short message for the status bar (copied, silenced, ...).
    pub notice: Option<String>,
    /// Set when the user asked to quit.
    pub should_quit: bool,
    /// The termination signal that ended the loop, if one did.
    pub stopped_by_signal: Option<i32>,
    /// Rows of the view body in the last frame (for paging).
    pub body_rows: usize,
    commands: Vec<Command>,
}

impl App {
    /// A fresh state for a server, keeping at most `capacity` tail lines.
    pub fn new(url: impl Into<String>, capacity: usize, color: bool) -> Self {
        App {
            url: url.into(),
            color,
            tab: Tab::Tail,
            clock: Clock::default(),
            tail: Tail::new(capacity),
            search: Search::default(),
            services: Services::default(),
            metrics: Metrics::default(),
            predictions: Predictions::default(),
            alerts: Alerts::default(),
            connection: Connection::Connecting,
            api_down: None,
            help: None,
            detail: None,
            notice: None,
            should_quit: false,
            stopped_by_signal: None,
            body_rows: 20,
            commands: Vec::new(),
        }
    }

    /// Commands produced since the last call, oldest first.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            clock: self.clock,
            rows: self.body_rows.max(1),
            ..Ctx::default()
        }
    }

    fn apply(&mut self, ctx: Ctx) {
        self.commands.extend(ctx.commands);
        if let Some(detail) = ctx.detail {
            self.detail = Some(detail);
        }
        if let Some(notice) = ctx.notice {
            self.notice = Some(notice);
        }
        match ctx.jump {
            Some(Jump::Tail(filter)) => {
                self.tab = Tab::Tail;
                if let Some(filter) = self.tail.apply_filter(filter) {
                    self.connection = Connection::Connecting;
                    self.commands.push(Command::ApplyFilter(filter));
                }
            }
            Some(Jump::Search(query)) => {
                self.tab = Tab::Search;
                let mut ctx = self.ctx();
                self.search.run_query(&query, &mut ctx);
                self.apply(ctx);
            }
            None => {}
        }
    }

    /// Whether the active view has a text input open (global keys are text then).
    fn editing(&self) -> bool {
        match self.tab {
            Tab::Tail => self.tail.editing(),
            Tab::Search => self.search.editing(),
            Tab::Services => false,
            Tab::Metrics => false,
            Tab::Predictions => self.predictions.editing(),
            Tab::Alerts => self.alerts.editing(),
        }
    }

    /// Switches view; the new one asks for fresh data at once (Search, the first time,
    /// runs its default query).
    pub fn switch_to(&mut self, tab: Tab) {
        self.tab = tab;
        match tab {
            Tab::Services => self.services.refresh.now(),
            Tab::Metrics => self.metrics.refresh.now(),
            Tab::Predictions => self.predictions.refresh.now(),
            Tab::Alerts => self.alerts.refresh.now(),
            Tab::Search => {
                let mut ctx = self.ctx();
                self.search.open(&mut ctx);
                self.apply(ctx);
            }
            Tab::Tail => {}
        }
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            self.should_quit = true;
            return;
        }
        self.notice = None;
        if let Some(scroll) = &mut self.help {
            match key.code {
                KeyCode::Char('?') | KeyCode::Esc | KeyCode::Enter => self.help = None,
                KeyCode::Char('q') => self.should_quit = true,
                KeyCode::Down | KeyCode::Char('j') => *scroll += 1,
                KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                KeyCode::PageDown => *scroll += self.body_rows.max(1),
                KeyCode::PageUp => *scroll = scroll.saturating_sub(self.body_rows.max(1)),
                _ => {}
            }
            return;
        }
        if let Some(detail) = &mut self.detail {
            let page = self.body_rows.saturating_sub(2).max(1);
            let last = detail.rows.saturating_sub(1);
            match key.code {
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => self.detail = None,
                KeyCode::Down | KeyCode::Char('j') => detail.scroll = (detail.scroll + 1).min(last),
                KeyCode::Up | KeyCode::Char('k') => detail.scroll = detail.scroll.saturating_sub(1),
                KeyCode::PageDown | KeyCode::Char(' ') => {
                    detail.scroll = (detail.scroll + page).min(last);
                }
                KeyCode::PageUp => detail.scroll = detail.scroll.saturating_sub(page),
                KeyCode::Home | KeyCode::Char('g') => detail.scroll = 0,
                KeyCode::End | KeyCode::Char('G') => detail.scroll = last,
                KeyCode::Char('y') => {
                    let text = detail.compact();
                    self.notice = Some(format!("copied {} bytes of JSON", text.len()));
                    self.commands.push(Command::Copy(text));
                }
                _ => {}
            }
            return;
        }
        if !self.editing() {
            match key.code {
                KeyCode::Char('q') => {
                    self.should_quit = true;
                    return;
                }
                KeyCode::Char('?') => {
                    self.help = Some(0);
                    return;
                }
                KeyCode::Char('u') => {
                    self.clock.utc = !self.clock.utc;
                    return;
                }
                KeyCode::Tab => {
                    self.switch_to(self.tab.next());
                    return;
                }
                KeyCode::BackTab => {
                    self.switch_to(self.tab.prev());
                    return;
                }
                KeyCode::Char(c @ '1'..='9') => {
                    if let Some(tab) = Tab::from_digit(c) {
                        self.switch_to(tab);
                    }
                    return;
                }
                _ => {}
            }
        }
        let mut ctx = self.ctx();
        match self.tab {
            Tab::Tail => {
                if let Some(filter) = self.tail.on_key(key, &mut ctx) {
                    self.connection = Connection::Connecting;
                    ctx.commands.push(Command::ApplyFilter(filter));
                }
            }
            Tab::Search => self.search.on_key(key, &mut ctx),
            Tab::Services => self.services.on_key(key, &mut ctx),
            Tab::Metrics => self.metrics.on_key(key, &mut ctx),
            Tab::Predictions => self.predictions.on_key(key, &mut ctx),
            Tab::Alerts => self.alerts.on_key(key, &mut ctx),
        }
        self.apply(ctx);
    }

    /// Handles the mouse: the wheel scrolls whatever is in front, three lines a notch.
    pub fn on_mouse(&mut self, mouse: MouseEvent) {
        let code = match mouse.kind {
            MouseEventKind::ScrollUp => KeyCode::Up,
            MouseEventKind::ScrollDown => KeyCode::Down,
            _ => return,
        };
        if self.editing() && self.help.is_none() && self.detail.is_none() {
            return;
        }
        for _ in 0..3 {
            self.on_key(KeyEvent::new(code, KeyModifiers::NONE));
        }
    }

    /// Handles one message from the tail thread.
    pub fn on_client(&mut self, msg: ClientMsg) {
        match msg {
            ClientMsg::Event(event) => self.tail.push_event(event),
            ClientMsg::Gap(missed) => self.tail.push_gap(missed),
            ClientMsg::Connected => self.connection = Connection::Connected,
            ClientMsg::Disconnected(why) => self.connection = Connection::Disconnected(why),
        }
    }

    /// Handles an answer from a fetch worker.
    pub fn on_reply(&mut self, reply: Reply, now: Instant) {
        match &reply.result {
            Err(FetchError::Connection(why)) => {
                self.api_down = Some(why.clone());
            }
            _ => self.api_down = None,
        }
        let mut ctx = self.ctx();
        let Reply { request, result } = reply;
        match &request {
            Request::Search { .. } | Request::Histogram { .. } => {
                self.search.on_reply(&request, result, now, &mut ctx);
            }
            Request::Services | Request::ServiceDetail { .. } => {
                self.services.on_reply(&request, result, now, &mut ctx);
            }
            Request::Metrics { .. } => self.metrics.on_reply(result, now, &mut ctx),
            Request::Alerts | Request::Silence(_) => {
                self.alerts.on_reply(&request, result, now, &mut ctx);
            }
            Request::PredictionSummary { .. }
            | Request::Predictions { .. }
            | Request::PredictionRecord { .. } => {
                self.predictions.on_reply(&request, result, now, &mut ctx);
            }
        }
        self.apply(ctx);
    }

    /// Moves the clock and asks for whatever is due: the active view's data, and the
    /// alert list for the count in the tab bar.
    pub fn tick(&mut self, now: Instant, wall: Timestamp) {
        self.clock.now = wall;
        let mut ctx = self.ctx();
        match self.tab {
            Tab::Services => self.services.poll(now, &mut ctx),
            Tab::Metrics => self.metrics.poll(now, &mut ctx),
            Tab::Predictions => self.predictions.poll(now, &mut ctx),
            Tab::Tail | Tab::Search | Tab::Alerts => {}
        }
        self.alerts.poll(now, &mut ctx);
        self.apply(ctx);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    pub(crate) fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
    }

    #[test]
    fn digits_and_tab_switch_views_unless_typing() {
        let mut app = App::new("http://x", 10, false);
        app.on_key(key(KeyCode::Char('3')));
        assert_eq!(app.tab, Tab::Services);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.tab, Tab::Metrics);
        app.on_key(key(KeyCode::BackTab));
        app.on_key(key(KeyCode::BackTab));
        assert_eq!(app.tab, Tab::Search);
        app.on_key(key(KeyCode::Char('1')));
        app.on_key(key(KeyCode::Char('f')));
        type_text(&mut app, "2q?");
        assert_eq!(app.tab, Tab::Tail);
        assert!(!app.should_quit && app.help.is_none());
    }

    #[test]
    fn help_toggles_scrolls_and_swallows_other_keys() {
        let mut app = App::new("http://x", 10, false);
        app.on_key(key(KeyCode::Char('?')));
        assert_eq!(app.help, Some(0));
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('2')));
        assert_eq!((app.help, app.tab), (Some(1), Tab::Tail));
        app.on_key(key(KeyCode::Char('?')));
        assert_eq!(app.help, None);
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
        app.on_key(key(KeyCode::Char('f')));
        app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(app.should_quit);
    }

    #[test]
    fn u_toggles_utc_and_local() {
        let mut app = App::new("http://x", 10, false);
        assert!(app.clock.utc);
        app.on_key(key(KeyCode::Char('u')));
        assert!(!app.clock.utc);
    }

    #[test]
    fn detail_scrolls_copies_and_closes() {
        let mut app = App::new("http://x", 10, false);
        app.body_rows = 5;
        app.detail = Some(Detail::json(
            "x",
            &serde_json::json!({"a": 1, "b": [1, 2, 3], "c": "d"}),
        ));
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('2')));
        assert_eq!(app.detail.as_ref().unwrap().scroll, 1);
        assert_eq!(app.tab, Tab::Tail, "keys under the detail do not leak");
        app.on_key(key(KeyCode::Char('y')));
        assert_eq!(
            app.take_commands(),
            vec![Command::Copy(r#"{"a":1,"b":[1,2,3],"c":"d"}"#.into())]
        );
        app.on_key(key(KeyCode::Esc));
        assert!(app.detail.is_none());
    }

    #[test]
    fn connection_failures_show_until_an_answer_comes() {
        let mut app = App::new("http://x", 10, false);
        let now = Instant::now();
        app.on_reply(
            Reply {
                request: Request::Services,
                result: Err(FetchError::Connection(
                    "cannot connect to the server".into(),
                )),
            },
            now,
        );
        assert_eq!(
            app.api_down.as_deref(),
            Some("cannot connect to the server")
        );
        app.on_reply(
            Reply {
                request: Request::Services,
                result: Ok(crate::fetch::Payload::Services(Default::default())),
            },
            now,
        );
        assert_eq!(app.api_down, None);
    }

    #[test]
    fn the_wheel_scrolls_three_lines() {
        use ratatui::crossterm::event::MouseEvent;
        let mut app = App::new("http://x", 100, false);
        app.body_rows = 5;
        for n in 0..20 {
            app.on_client(crate::views::tail::tests::event(n));
        }
        app.on_mouse(MouseEvent {
            kind: MouseEventKind::ScrollUp,
            column: 0,
            row: 0,
            modifiers: KeyModifiers::NONE,
        });
        assert!(app.tail.paused());
        assert_eq!(app.tail.cursor(), Some(17));
    }
}
