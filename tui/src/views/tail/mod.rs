//! The Tail view: column titles, the newest lines (or a paused window with a cursor), and
//! the filter or highlight box at the bottom when open. State lives in [`state`].

pub mod state;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use shiplog_core::{Event, Level};

pub use state::{Tail, TailEvent, TailLine, View};

use crate::app::{App, Connection};
use crate::clock::Clock;
use crate::theme::Theme;
use crate::widgets::{column, filter_box, text};

/// The Tail view's keys, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("f", "edit the filter (query language, checked as you type)"),
    (
        "Enter",
        "apply the filter / open the selected event's detail",
    ),
    ("/", "highlight text in messages"),
    // `n` goes on the way the first match was found (up, from the newest line).
    ("n", "select the next highlighted line above (older)"),
    ("N", "select the next highlighted line below (newer)"),
    ("Space", "pause or resume"),
    ("Up, k / Down, j", "select the line above / below (pauses)"),
    ("PgUp, PgDn", "move a page"),
    ("Home, g", "go to the oldest line"),
    ("End, G, Esc", "follow the newest lines"),
    ("w", "wrap long lines"),
    ("y, Y", "copy the line / its JSON (OSC 52)"),
];

const TIME_COLS: usize = 12;
const STREAM_COLS: usize = 3;
const LEVEL_COLS: usize = 5;
/// Wide terminals also show the node.
const NODE_COLS: usize = 12;
const WIDE: usize = 120;

/// The widths of the columns before the message, for one frame.
#[derive(Debug, Clone, Copy)]
struct Columns {
    /// Whether the node is shown.
    wide: bool,
    /// Columns of SERVICE: the longest service in the buffer, within what the terminal
    /// allows (see [`column::service`]).
    service: usize,
}

impl Columns {
    fn new(tail: &Tail, width: usize) -> Self {
        Columns {
            wide: width >= WIDE,
            service: column::service(tail.longest_service, width),
        }
    }

    /// Columns before the message.
    fn fixed(self) -> usize {
        let node = if self.wide { NODE_COLS + 1 } else { 0 };
        TIME_COLS + node + self.service + STREAM_COLS + LEVEL_COLS + 4
    }
}

/// Where each part of the view goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailLayout {
    /// Column titles.
    pub titles: Rect,
    /// The lines.
    pub list: Rect,
    /// The filter or highlight box, when open.
    pub input: Option<Rect>,
}

/// Splits the body; the list gets whatever the titles and an open box leave.
pub fn layout(area: Rect, input_height: u16) -> TailLayout {
    let titles = Rect {
        height: area.height.min(1),
        ..area
    };
    let rest = area.height - titles.height;
    let box_height = input_height.min(rest);
    let list = Rect {
        y: area.y + titles.height,
        height: rest - box_height,
        ..area
    };
    let input = (input_height > 0).then_some(Rect {
        y: list.y + list.height,
        height: box_height,
        ..area
    });
    TailLayout {
        titles,
        list,
        input,
    }
}

/// Rows of the open input box, if any.
pub fn input_height(tail: &Tail) -> u16 {
    if tail.filter_edit.is_some() {
        filter_box::HEIGHT
    } else if tail.highlight_edit.is_some() {
        filter_box::LINE_HEIGHT
    } else {
        0
    }
}

/// Draws the view in `area`; returns its status line.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) -> Line<'static> {
    let tail = &app.tail;
    let parts = layout(area, input_height(tail));
    let cols = Columns::new(tail, usize::from(area.width));
    frame.render_widget(
        Paragraph::new(column_titles(&app.clock, theme, cols)),
        parts.titles,
    );
    draw_list(frame, parts.list, app, theme, cols);
    if let (Some(edit), Some(rect)) = (&tail.filter_edit, parts.input) {
        filter_box::render(
            frame,
            rect,
            edit,
            "filter · Enter applies · Esc cancels",
            "empty: every line but metric samples · * everything",
            theme,
        );
    }
    if let (Some(edit), Some(rect)) = (&tail.highlight_edit, parts.input) {
        filter_box::render_line(
            frame,
            rect,
            edit,
            "highlight · Enter applies · Esc cancels",
            theme,
        );
    }
    status(tail, theme)
}

fn column_titles(clock: &Clock, theme: Theme, cols: Columns) -> Line<'static> {
    let time = format!("TIME {}", clock.zone());
    let service = cols.service;
    let node = if cols.wide {
        format!("{:<NODE_COLS$} ", "NODE")
    } else {
        String::new()
    };
    Line::styled(
        format!(
            "{time:<TIME_COLS$} {node}{:<service$} {:<STREAM_COLS$} {:<LEVEL_COLS$} MESSAGE",
            "SERVICE", "STR", "LEVEL"
        ),
        theme.column_titles(),
    )
}

fn status(tail: &Tail, theme: Theme) -> Line<'static> {
    let mode = if tail.paused() {
        Span::styled(
            format!(" PAUSED +{} new ", tail.new_while_paused),
            theme.bar().patch(theme.warn()),
        )
    } else {
        Span::raw(" FOLLOW ")
    };
    let mut spans = vec![mode];
    if tail.wrap {
        spans.push(Span::raw("WRAP "));
    }
    // A blank filter is the server's default: every kind but metric samples.
    let filter = if tail.filter().is_empty() {
        "(no metrics)".to_string()
    } else {
        text::sanitize(tail.filter(), 60)
    };
    spans.push(Span::raw(format!("filter: {filter} ")));
    if !tail.highlight.is_empty() {
        spans.push(Span::raw(format!(
            "/{} ",
            text::sanitize(&tail.highlight, 20)
        )));
    }
    let mut counts = format!("· {} lines", tail.received);
    if tail.missed > 0 {
        counts.push_str(&format!(" · {} missed", tail.missed));
    }
    if tail.evicted > 0 {
        counts.push_str(&format!(" · {} scrolled out", tail.evicted));
    }
    if tail.source_gaps > 0 {
        counts.push_str(&format!(
            " · ~{} lost at source ({} gap{})",
            tail.lost_at_source,
            tail.source_gaps,
            if tail.source_gaps == 1 { "" } else { "s" }
        ));
    }
    spans.push(Span::raw(counts));
    Line::from(spans)
}

fn draw_list(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme, cols: Columns) {
    let tail = &app.tail;
    let rows = usize::from(area.height);
    let width = usize::from(area.width);
    if tail.lines().is_empty() {
        let hint = match &app.connection {
            Connection::Connected => "waiting for lines…".to_string(),
            Connection::Connecting => "connecting…".to_string(),
            Connection::Disconnected(why) => format!("not connected: {why}"),
        };
        let line = Line::styled(format!(" {}", text::sanitize(&hint, width)), theme.dim());
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let cursor = tail.cursor();
    let render = |i: usize| -> Vec<Line<'static>> {
        let selected = cursor == Some(i);
        let mut lines = match &tail.lines()[i] {
            TailLine::Event(event) => event_lines(event, &app.clock, theme, width, cols, tail),
            TailLine::Gap(missed) => vec![Line::styled(
                format!(
                    "{:TIME_COLS$} … {missed} line{} missed …",
                    "",
                    if *missed == 1 { "" } else { "s" }
                ),
                theme.warn(),
            )],
        };
        if selected {
            for line in &mut lines {
                line.style = line.style.patch(theme.selected());
            }
        }
        lines
    };
    let range = tail.visible_range(rows);
    let lines: Vec<Line<'static>> = if tail.wrap {
        wrapped_window(range, cursor, rows, render)
    } else {
        range.flat_map(render).collect()
    };
    frame.render_widget(Paragraph::new(lines), area);
}

/// With wrapping, lines take several rows: fill the screen from the bottom line up, unless
/// the cursor would fall off the top, then from the cursor down.
fn wrapped_window(
    range: std::ops::Range<usize>,
    cursor: Option<usize>,
    rows: usize,
    render: impl Fn(usize) -> Vec<Line<'static>>,
) -> Vec<Line<'static>> {
    let mut blocks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut used = 0;
    let mut first = range.end;
    for i in range.clone().rev() {
        if used >= rows {
            break;
        }
        let block = render(i);
        used += block.len();
        blocks.push(block);
        first = i;
    }
    if let Some(c) = cursor
        && c < first
    {
        let mut out = Vec::new();
        for i in c..range.end {
            if out.len() >= rows {
                break;
            }
            out.extend(render(i));
        }
        out.truncate(rows);
        return out;
    }
    let mut out: Vec<Line<'static>> = blocks.into_iter().rev().flatten().collect();
    if out.len() > rows {
        out.drain(..out.len() - rows);
    }
    out
}

/// `HH:MM:SS.mmm` in UTC.
pub fn clock(ts: shiplog_core::Timestamp) -> String {
    Clock::default().hms_millis(ts)
}

/// The short label of a level, `-` when unknown.
pub fn level_label(level: Option<Level>) -> &'static str {
    match level {
        None => "-",
        Some(Level::Trace) => "TRACE",
        Some(Level::Debug) => "DEBUG",
        Some(Level::Info) => "INFO",
        Some(Level::Warn) => "WARN",
        Some(Level::Error) => "ERROR",
        Some(Level::Fatal) => "FATAL",
    }
}

/// Splits `s` into spans, the case-insensitive matches of `needle` in the match style.
pub fn highlighted(s: &str, needle: &str, base: Style, mark: Style) -> Vec<Span<'static>> {
    if needle.is_empty() {
        return vec![Span::styled(s.to_string(), base)];
    }
    // Lowercasing can change byte lengths; fall back to no marks when it does.
    let lower = s.to_lowercase();
    if lower.len() != s.len() {
        return vec![Span::styled(s.to_string(), base)];
    }
    let needle = needle.to_lowercase();
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&needle) {
        let start = at + found;
        let end = start + needle.len();
        if !s.is_char_boundary(start) || !s.is_char_boundary(end) {
            break;
        }
        if start > at {
            spans.push(Span::styled(s[at..start].to_string(), base));
        }
        spans.push(Span::styled(s[start..end].to_string(), base.patch(mark)));
        at = end;
    }
    if at < s.len() {
        spans.push(Span::styled(s[at..].to_string(), base));
    }
    spans
}

/// The text shown for an event: its message, or for metric samples and registrations
/// (which have none) what they say.
pub fn summary(event: &Event) -> std::borrow::Cow<'_, str> {
    use shiplog_core::Kind;
    if !event.message.is_empty() {
        return event.message.as_str().into();
    }
    match event.kind {
        Kind::Metric => format!(
            "[metric] {}={} {}",
            event.name.as_deref().unwrap_or("?"),
            event.value.map_or("?".to_string(), |v| format!("{v:.2}")),
            event.unit.as_deref().unwrap_or("")
        )
        .into(),
        Kind::Registration => format!(
            "[registration] {} {}{}",
            event.container_name,
            event.state.map_or("?", |s| s.as_str()),
            event
                .exit_code
                .map(|c| format!(" exit {c}"))
                .unwrap_or_default()
        )
        .into(),
        Kind::Log | Kind::Prediction => event.message.as_str().into(),
    }
}

fn event_lines(
    event: &TailEvent,
    clock: &Clock,
    theme: Theme,
    width: usize,
    cols: Columns,
    tail: &Tail,
) -> Vec<Line<'static>> {
    let stream = match event.stream {
        Some(shiplog_core::Stream::Stdout) => "out",
        Some(shiplog_core::Stream::Stderr) => "err",
        None => "",
    };
    let fixed = cols.fixed();
    let avail = width.saturating_sub(fixed).max(1);
    // A gap event (lines lost before they could be read) stands out from the lines.
    let (message_style, level_style, level) = match event.source_gap {
        Some(_) => (theme.warn(), theme.warn(), "GAP"),
        None => (
            theme.message(event.level),
            theme.level(event.level),
            level_label(event.level),
        ),
    };
    let mut prefix = vec![Span::styled(
        format!("{} ", clock.hms_millis(event.ts)),
        theme.dim(),
    )];
    if cols.wide {
        prefix.push(Span::styled(
            format!("{} ", text::fit(&event.node, NODE_COLS)),
            theme.dim(),
        ));
    }
    prefix.extend([
        Span::styled(
            format!("{} ", text::fit(&event.service, cols.service)),
            theme.service(),
        ),
        Span::styled(format!("{stream:<STREAM_COLS$} "), theme.dim()),
        Span::styled(format!("{level:<LEVEL_COLS$} "), level_style),
    ]);
    let message = &event.message;
    let chunks = if tail.wrap {
        text::chunks(message, avail)
    } else {
        vec![text::sanitize(message, avail)]
    };
    let mut lines = Vec::with_capacity(chunks.len());
    for (n, chunk) in chunks.into_iter().enumerate() {
        let mut spans = if n == 0 {
            prefix.clone()
        } else {
            vec![Span::raw(" ".repeat(fixed))]
        };
        spans.extend(highlighted(
            &chunk,
            &tail.highlight,
            message_style,
            theme.matched(),
        ));
        lines.push(Line::from(spans));
    }
    lines
}

#[cfg(test)]
pub(crate) mod tests;
