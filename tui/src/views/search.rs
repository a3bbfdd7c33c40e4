//! The Search view: a query line with history, a time window (presets or a custom range),
//! hits over time as a bar chart from `POST /api/v1/aggregate`, a paged table of hits from
//! `GET /api/v1/search` (newest first, cursor pagination) and a detail pane.
//!
//! Like Kibana's Discover, it opens on the newest logs of the last hour ([`DEFAULT_QUERY`]),
//! with that query in the line, ready to narrow.

use std::time::Instant;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};
use shiplog_core::Timestamp;

use crate::api::{Histogram, Hit};
use crate::app::{App, Command, Ctx, Detail};
use crate::clock::Clock;
use crate::edit::{History, LineEdit, QueryEdit};
use crate::fetch::{FetchError, Payload, Request, Window};
use crate::theme::Theme;
use crate::views::tail::level_label;
use crate::widgets::{column, detail, filter_box, text};

/// The Search view's keys, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    (
        "/, e",
        "edit the query (Enter runs it, Esc leaves the line)",
    ),
    ("Up, Down", "in the query line: walk the query history"),
    ("t", "next time preset: 15m, 1h, 24h, 7d"),
    ("T", "custom range: 'SINCE UNTIL' (now-3h now-1h, RFC 3339)"),
    ("j, k, PgUp, PgDn", "select a hit"),
    ("n ] / p [", "next / previous page"),
    ("Enter", "show or hide the detail pane"),
    ("o", "open the selected hit full screen"),
    ("y", "copy the hit's message (OSC 52)"),
    ("r", "run the query again"),
];

/// The query run when the view first opens: every log line (metric samples, which share
/// the index, would crowd them out).
pub const DEFAULT_QUERY: &str = "kind:log";
/// Time presets, cycled with `t`.
pub const PRESETS: [&str; 4] = ["15m", "1h", "24h", "7d"];
/// Hits per page.
pub const PAGE_SIZE: usize = 100;

/// The time window the query runs over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// One of [`PRESETS`], up to now.
    Preset(usize),
    /// A custom range, as typed.
    Custom {
        /// Start.
        since: String,
        /// End.
        until: String,
    },
}

impl Range {
    fn bounds(&self) -> (String, String) {
        match self {
            Range::Preset(i) => (PRESETS[*i % PRESETS.len()].to_string(), "now".to_string()),
            Range::Custom { since, until } => (since.clone(), until.clone()),
        }
    }

    fn label(&self) -> String {
        match self {
            Range::Preset(i) => format!("last {}", PRESETS[*i % PRESETS.len()]),
            Range::Custom { since, until } => format!("{since} → {until}"),
        }
    }
}

/// Everything the Search view shows.
#[derive(Debug)]
pub struct Search {
    /// The query line.
    pub input: QueryEdit,
    /// Whether the query line has the keyboard.
    pub editing: bool,
    /// The query line holds the [`DEFAULT_QUERY`] the view opened with: the first character
    /// typed replaces it (as a selected placeholder would), any other key keeps it.
    pub prefilled: bool,
    /// Queries run before.
    pub history: History,
    /// The time window.
    pub range: Range,
    /// The custom range input, when open.
    pub range_edit: Option<LineEdit>,
    /// Why the typed range was refused.
    pub range_error: Option<String>,
    /// The query and window of the shown results.
    pub applied: Option<Window>,
    generation: u64,
    /// Cursor of each page seen so far; the last is the shown page's.
    cursors: Vec<Option<String>>,
    /// Hits of the shown page.
    pub hits: Vec<Hit>,
    /// Matches in the window.
    pub total: u64,
    /// Whether `total` is exact.
    pub total_exact: bool,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
    /// Server time of the last page.
    pub took_ms: u64,
    /// Hits over time.
    pub histogram: Option<Histogram>,
    /// Why the histogram is missing.
    pub histogram_error: Option<String>,
    /// The selected hit.
    pub selected: usize,
    /// Whether the detail pane is open.
    pub pane: bool,
    /// Waiting for a page.
    pub loading: bool,
    /// Why the last search failed.
    pub error: Option<String>,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            prefilled: false,
            input: QueryEdit::new(""),
            editing: false,
            history: History::default(),
            range: Range::Preset(1),
            range_edit: None,
            range_error: None,
            applied: None,
            generation: 0,
            cursors: vec![None],
            hits: Vec::new(),
            total: 0,
            total_exact: true,
            next_cursor: None,
            took_ms: 0,
            histogram: None,
            histogram_error: None,
            selected: 0,
            pane: false,
            loading: false,
            error: None,
        }
    }
}

impl Search {
    /// Whether an input has the keyboard.
    pub fn editing(&self) -> bool {
        self.editing || self.range_edit.is_some()
    }

    /// The page number shown, from 1.
    pub fn page(&self) -> usize {
        self.cursors.len()
    }

    /// The view is shown: the first time, with nothing run yet, it runs the query line, or
    /// [`DEFAULT_QUERY`] when the line is empty.
    pub fn open(&mut self, ctx: &mut Ctx) {
        if self.applied.is_some() || self.editing() {
            return;
        }
        if self.input.text().trim().is_empty() {
            self.input.set(DEFAULT_QUERY);
            self.prefilled = true;
        }
        if self.input.error.is_none() {
            self.run(ctx);
        }
    }

    /// Puts `text` in the query line and runs it (a jump from another view).
    pub fn run_query(&mut self, text: &str, ctx: &mut Ctx) {
        self.input.set(text);
        self.editing = self.input.error.is_some();
        if self.input.error.is_none() {
            self.run(ctx);
        }
    }

    /// Runs the query line over the window, from the first page.
    fn run(&mut self, ctx: &mut Ctx) {
        let q = self.input.text().trim().to_string();
        self.history.push(&q);
        let (since, until) = self.range.bounds();
        let window = Window { q, since, until };
        self.generation += 1;
        self.applied = Some(window.clone());
        self.cursors = vec![None];
        self.selected = 0;
        self.histogram_error = None;
        self.fetch_page(ctx);
        ctx.fetch(Request::Histogram {
            generation: self.generation,
            window,
        });
    }

    fn fetch_page(&mut self, ctx: &mut Ctx) {
        let Some(window) = self.applied.clone() else {
            return;
        };
        self.loading = true;
        self.error = None;
        ctx.fetch(Request::Search {
            generation: self.generation,
            window,
            cursor: self.cursors.last().cloned().flatten(),
            limit: PAGE_SIZE,
        });
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: KeyEvent, ctx: &mut Ctx) {
        if let Some(edit) = &mut self.range_edit {
            match key.code {
                KeyCode::Esc => {
                    self.range_edit = None;
                    self.range_error = None;
                }
                KeyCode::Enter => match parse_range(&edit.text, ctx.clock.now) {
                    Ok(range) => {
                        self.range = range;
                        self.range_edit = None;
                        self.range_error = None;
                        self.run(ctx);
                    }
                    Err(e) => self.range_error = Some(e),
                },
                _ => {
                    edit.edit(key);
                    self.range_error = None;
                }
            }
            return;
        }
        if self.editing {
            let replaces = std::mem::take(&mut self.prefilled)
                && matches!(key.code, KeyCode::Char(c) if c != ' ')
                && !key
                    .modifiers
                    .contains(ratatui::crossterm::event::KeyModifiers::CONTROL);
            if replaces {
                self.input.set("");
            }
            match key.code {
                KeyCode::Esc => self.editing = false,
                KeyCode::Enter if self.input.error.is_none() => {
                    self.editing = false;
                    self.run(ctx);
                }
                KeyCode::Up => {
                    if let Some(older) = self.history.older(self.input.text()) {
                        self.input.set(&older);
                    }
                }
                KeyCode::Down => {
                    if let Some(newer) = self.history.newer() {
                        self.input.set(&newer);
                    }
                }
                _ => {
                    self.input.edit(key);
                }
            }
            return;
        }
        let page = ctx.rows.saturating_sub(10).max(1);
        match key.code {
            KeyCode::Char('/') | KeyCode::Char('e') => self.editing = true,
            KeyCode::Char('t') => {
                self.range = match self.range {
                    Range::Preset(i) => Range::Preset((i + 1) % PRESETS.len()),
                    Range::Custom { .. } => Range::Preset(0),
                };
                self.run(ctx);
            }
            KeyCode::Char('T') => {
                let (since, until) = self.range.bounds();
                self.range_edit = Some(LineEdit::new(&format!("{since} {until}")));
            }
            KeyCode::Char('r') => self.run(ctx),
            KeyCode::Down | KeyCode::Char('j') => self.select(self.selected.saturating_add(1)),
            KeyCode::Up | KeyCode::Char('k') => self.select(self.selected.saturating_sub(1)),
            KeyCode::PageDown => self.select(self.selected.saturating_add(page)),
            KeyCode::PageUp => self.select(self.selected.saturating_sub(page)),
            KeyCode::Home | KeyCode::Char('g') => self.select(0),
            KeyCode::End | KeyCode::Char('G') => self.select(usize::MAX),
            KeyCode::Char('n') | KeyCode::Char(']') => {
                if let (Some(next), false) = (self.next_cursor.clone(), self.loading) {
                    self.cursors.push(Some(next));
                    self.selected = 0;
                    self.fetch_page(ctx);
                }
            }
            KeyCode::Char('p') | KeyCode::Char('[') if self.cursors.len() > 1 && !self.loading => {
                self.cursors.pop();
                self.selected = 0;
                self.fetch_page(ctx);
            }
            KeyCode::Enter => self.pane = !self.pane,
            KeyCode::Esc => self.pane = false,
            KeyCode::Char('o') => {
                if let Some(hit) = self.hits.get(self.selected) {
                    ctx.detail = Some(Detail::json(hit_title(hit, &ctx.clock), &hit.raw));
                }
            }
            KeyCode::Char('y') => {
                if let Some(hit) = self.hits.get(self.selected) {
                    ctx.notice = Some(format!("copied {} bytes", hit.message.len()));
                    ctx.commands.push(Command::Copy(hit.message.clone()));
                }
            }
            _ => {}
        }
    }

    fn select(&mut self, index: usize) {
        self.selected = index.min(self.hits.len().saturating_sub(1));
    }

    /// Handles an answer to a search or histogram request.
    pub fn on_reply(
        &mut self,
        request: &Request,
        result: Result<Payload, FetchError>,
        _now: Instant,
        _ctx: &mut Ctx,
    ) {
        match (request, result) {
            (Request::Search { generation, .. }, _) if *generation != self.generation => {}
            (Request::Histogram { generation, .. }, _) if *generation != self.generation => {}
            (Request::Search { .. }, Ok(Payload::Search(page))) => {
                self.loading = false;
                self.hits = page.hits.into_iter().map(Hit::from_value).collect();
                self.total = page.total;
                self.total_exact = page.total_exact;
                self.next_cursor = page.next_cursor;
                self.took_ms = page.took_ms;
                self.select(self.selected);
            }
            (Request::Search { .. }, Err(e)) => {
                self.loading = false;
                self.error = Some(e.to_string());
            }
            (Request::Histogram { .. }, Ok(Payload::Histogram(h))) => self.histogram = Some(h),
            (Request::Histogram { .. }, Err(e)) => {
                self.histogram = None;
                self.histogram_error = Some(e.to_string());
            }
            _ => {}
        }
    }
}

/// Reads a custom range: two bounds separated by a space (`now-3h now-1h`, RFC 3339, `15m`);
/// the second defaults to `now`.
pub fn parse_range(text: &str, now: Timestamp) -> Result<Range, String> {
    let mut parts = text.split_whitespace();
    let since = parts
        .next()
        .ok_or("type a start, e.g. now-3h or 2026-11-22T06:00:00Z")?;
    let until = parts.next().unwrap_or("now");
    if parts.next().is_some() {
        return Err("type two bounds separated by a space".into());
    }
    let a = Timestamp::parse_bound(since, now).map_err(|e| format!("start: {e}"))?;
    let b = Timestamp::parse_bound(until, now).map_err(|e| format!("end: {e}"))?;
    if a >= b {
        return Err("the start must be before the end".into());
    }
    Ok(Range::Custom {
        since: since.to_string(),
        until: until.to_string(),
    })
}

fn hit_title(hit: &Hit, clock: &Clock) -> String {
    let when = hit.ts.map(|t| clock.date_time(t)).unwrap_or_default();
    format!("{} {when}", hit.service)
}

/// Hits per column: buckets summed (or stretched) to `width` columns.
pub fn columns(counts: &[u64], width: usize) -> Vec<u64> {
    if counts.is_empty() {
        return vec![0; width];
    }
    let n = counts.len();
    (0..width)
        .map(|col| {
            let start = col * n / width;
            let end = ((col + 1) * n / width).max(start + 1).min(n);
            if n >= width {
                counts[start..end].iter().sum()
            } else {
                counts[start]
            }
        })
        .collect()
}

/// Draws the view in `area`; returns its status line.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) -> Line<'static> {
    let s = &app.search;
    let clock = &app.clock;
    if area.height < 4 {
        return status(s);
    }
    // Query line, an error line when the query does not parse, the chart, the table.
    let mut y = area.y;
    let query_row = Rect {
        y,
        height: 1,
        ..area
    };
    y += 1;
    draw_query_line(frame, query_row, s, theme);
    if let Some(error) = s.input.error.as_ref().filter(|_| s.editing) {
        let line = Line::styled(
            text::sanitize(&format!("  {error}"), usize::from(area.width)),
            theme.error(),
        );
        frame.render_widget(
            Paragraph::new(line),
            Rect {
                y,
                height: 1,
                ..area
            },
        );
        y += 1;
    }
    let bottom = area.y + area.height;
    let chart_height = if area.height >= 40 { 10 } else { 5 };
    let chart_height = chart_height.min(bottom.saturating_sub(y + 3));
    let chart = Rect {
        y,
        height: chart_height,
        ..area
    };
    draw_chart(frame, chart, s, clock, theme);
    y += chart_height;
    let mut table = Rect {
        y,
        height: bottom - y,
        ..area
    };
    if s.pane {
        let pane = if area.width >= 120 {
            let w = area.width * 45 / 100;
            table.width -= w;
            Rect {
                x: table.x + table.width,
                width: w,
                ..table
            }
        } else {
            let h = table.height / 2;
            table.height -= h;
            Rect {
                y: table.y + table.height,
                height: h,
                ..table
            }
        };
        draw_pane(frame, pane, s, clock, theme);
    }
    draw_table(frame, table, s, clock, theme);
    if let Some(edit) = &s.range_edit {
        let h = filter_box::LINE_HEIGHT + u16::from(s.range_error.is_some());
        let rect = Rect {
            y: bottom.saturating_sub(h).max(area.y),
            height: h.min(area.height),
            ..area
        };
        filter_box::render_line(
            frame,
            Rect {
                height: filter_box::LINE_HEIGHT.min(rect.height),
                ..rect
            },
            edit,
            "range: SINCE UNTIL · Enter applies · Esc cancels",
            theme,
        );
        if let Some(e) = &s.range_error {
            let line = Line::styled(
                text::fit(&format!(" {e}"), usize::from(area.width)),
                theme.error(),
            );
            frame.render_widget(
                Paragraph::new(line),
                Rect {
                    y: rect.y + rect.height - 1,
                    height: 1,
                    ..rect
                },
            );
        }
    }
    status(s)
}

fn draw_query_line(frame: &mut Frame<'_>, row: Rect, s: &Search, theme: Theme) {
    let range = format!(" [{}] ", s.range.label());
    let prompt = if s.editing { "query› " } else { "query  " };
    let width = usize::from(row.width);
    let avail = width.saturating_sub(text::width(prompt) + text::width(&range));
    let body = if s.input.text().is_empty() && !s.editing {
        Span::styled(
            text::fit(
                "press / to type a query (empty: all but metric samples, * everything)",
                avail,
            ),
            theme.dim(),
        )
    } else {
        Span::raw(text::fit(s.input.text(), avail))
    };
    let prompt_style = if s.editing {
        if s.input.error.is_some() {
            theme.error()
        } else {
            theme.ok()
        }
    } else {
        theme.column_titles()
    };
    let line = Line::from(vec![
        Span::styled(prompt, prompt_style),
        body,
        Span::styled(range, theme.warn()),
    ]);
    frame.render_widget(Paragraph::new(line), row);
    if s.editing {
        let col = text::width(
            &s.input
                .text()
                .chars()
                .take(s.input.line.cursor)
                .collect::<String>(),
        );
        let x = (prompt.chars().count() + col).min(width.saturating_sub(1)) as u16;
        frame.set_cursor_position(Position::new(row.x + x, row.y));
    }
}

fn draw_chart(frame: &mut Frame<'_>, area: Rect, s: &Search, clock: &Clock, theme: Theme) {
    if area.height < 2 {
        return;
    }
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(theme.dim())
        .title(" hits over time ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let Some(h) = &s.histogram else {
        let why = s.histogram_error.clone().unwrap_or_else(|| {
            if s.applied.is_some() {
                "loading…"
            } else {
                ""
            }
            .into()
        });
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!(" {}", text::sanitize(&why, width)),
                theme.dim(),
            )),
            inner,
        );
        return;
    };
    let counts: Vec<u64> = h.buckets.iter().map(|b| b.count).collect();
    let bars = Rect {
        height: inner.height.saturating_sub(1),
        ..inner
    };
    let data = columns(&counts, width);
    frame.render_widget(Sparkline::default().data(&data).style(theme.chart()), bars);
    let first = h.buckets.first().and_then(|b| b.ts);
    let last = h.buckets.last().and_then(|b| b.ts);
    let max = counts.iter().max().copied().unwrap_or(0);
    let left = first.map(|t| clock.date_time(t)).unwrap_or_default();
    let right = last.map(|t| clock.date_time(t)).unwrap_or_default();
    let mid = format!(
        "max {max} per {}",
        crate::clock::age(h.interval_ms.saturating_mul(1_000_000))
    );
    let gap = width.saturating_sub(left.len() + right.len() + mid.len());
    let axis = format!(
        "{left}{}{mid}{}{right}",
        " ".repeat(gap / 2),
        " ".repeat(gap - gap / 2)
    );
    frame.render_widget(
        Paragraph::new(Line::styled(text::sanitize(&axis, width), theme.dim())),
        Rect {
            y: inner.y + bars.height,
            height: inner.height - bars.height,
            ..inner
        },
    );
}

fn draw_table(frame: &mut Frame<'_>, area: Rect, s: &Search, clock: &Clock, theme: Theme) {
    if area.height == 0 {
        return;
    }
    let width = usize::from(area.width);
    let wide = width >= 110;
    // As wide as the page's longest service needs, within what the terminal allows.
    let longest = s.hits.iter().map(|h| text::width(&h.service)).max();
    let service_w = column::service(longest.unwrap_or(0), width);
    let mut titles = format!(
        "{:<14} {:<service_w$} {:<5} ",
        format!("TIME {}", clock.zone()),
        "SERVICE",
        "LEVEL"
    );
    if wide {
        titles = format!(
            "{:<14} {:<12} {:<20} {:<service_w$} {:<5} ",
            format!("TIME {}", clock.zone()),
            "NODE",
            "CONTAINER",
            "SERVICE",
            "LEVEL"
        );
    }
    let fixed = titles.len();
    titles.push_str("MESSAGE");
    let mut lines = vec![Line::styled(
        text::fit(&titles, width),
        theme.column_titles(),
    )];
    let rows = usize::from(area.height) - 1;
    if s.hits.is_empty() {
        let hint = match (&s.error, s.loading, &s.applied) {
            (Some(e), _, _) => e.clone(),
            (None, true, _) => "searching…".into(),
            (None, false, None) => {
                "press / to type a query (level:error service:api), Enter to run it".into()
            }
            (None, false, Some(_)) => {
                "no hits in this window: / edits the query, t widens the window".into()
            }
        };
        let style = if s.error.is_some() {
            theme.error()
        } else {
            theme.dim()
        };
        lines.push(Line::styled(
            format!(" {}", text::sanitize(&hint, width)),
            style,
        ));
    }
    let top = (s.selected + 1).saturating_sub(rows);
    for (i, hit) in s.hits.iter().enumerate().skip(top).take(rows) {
        let when = hit.ts.map(|t| clock.date_time(t)).unwrap_or_default();
        let mut spans = vec![Span::styled(format!("{when:<14} "), theme.dim())];
        if wide {
            spans.push(Span::styled(
                format!("{} ", text::fit(&hit.node, 12)),
                theme.dim(),
            ));
            spans.push(Span::raw(format!(
                "{} ",
                text::fit(&hit.container_name, 20)
            )));
        }
        spans.push(Span::styled(
            format!("{} ", text::fit(&hit.service, service_w)),
            theme.service(),
        ));
        spans.push(Span::styled(
            format!("{:<5} ", level_label(hit.level)),
            theme.level(hit.level),
        ));
        let message = if hit.message.is_empty() && !hit.kind.is_empty() && hit.kind != "log" {
            format!("({})", hit.kind)
        } else {
            hit.message.clone()
        };
        spans.push(Span::styled(
            text::sanitize(&message, width.saturating_sub(fixed)),
            theme.message(hit.level),
        ));
        let mut line = Line::from(spans);
        if i == s.selected {
            line.style = theme.selected();
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_pane(frame: &mut Frame<'_>, area: Rect, s: &Search, clock: &Clock, theme: Theme) {
    let Some(hit) = s.hits.get(s.selected) else {
        return;
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(format!(
            " {} · o full screen ",
            text::sanitize(&hit_title(hit, clock), 40)
        ));
    let inner = block.inner(area);
    let detail = Detail::json("", &hit.raw);
    // Broken at the line breaks of the message and wrapped, like the full-screen detail.
    let lines: Vec<Line<'static>> = detail::rows(&detail.lines, usize::from(inner.width))
        .into_iter()
        .take(usize::from(inner.height))
        .map(Line::raw)
        .collect();
    frame.render_widget(ratatui::widgets::Clear, area);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn status(s: &Search) -> Line<'static> {
    let mut text = format!(" {} ", s.range.label());
    if s.applied.is_some() {
        text.push_str(&format!(
            "· {}{} hits · page {} · {} ms",
            if s.total_exact { "" } else { "≥" },
            s.total,
            s.page(),
            s.took_ms
        ));
        if s.next_cursor.is_some() {
            text.push_str(" · n next");
        }
        if s.page() > 1 {
            text.push_str(" · p previous");
        }
    }
    if s.loading {
        text.push_str(" · searching…");
    }
    Line::raw(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Bucket, SearchPage};
    use crate::app::tests::{key, type_text};
    use crate::views::Tab;
    use crate::views::tests::{SIZES, render};
    use serde_json::json;

    const NOW: i64 = 1_795_330_800_000_000_000; // 2026-11-22T07:00:00Z

    fn hits() -> Vec<serde_json::Value> {
        let services = ["api", "web", "inference-server", "db"];
        let levels = ["info", "error", "warn", "info", "debug"];
        (0..30)
            .map(|i| {
                json!({
                    "id": format!("{i:032x}"),
                    "ts": Timestamp(NOW - i * 61_000_000_000).to_rfc3339(),
                    "kind": "log",
                    "node": "node-a",
                    "container_id": "c0ffee",
                    "container_name": format!("{}-1", services[i as usize % 4]),
                    "service": services[i as usize % 4],
                    "stream": "stdout",
                    "level": levels[i as usize % 5],
                    "message": format!("request {i} handled in {} ms for user {}", i * 7, 1000 + i),
                    "fields": {"request": i, "path": "/api/v1/thing"},
                })
            })
            .collect()
    }

    /// Opens the query line and empties it.
    fn edit_afresh(app: &mut App) {
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(ratatui::crossterm::event::KeyEvent::new(
            KeyCode::Char('u'),
            ratatui::crossterm::event::KeyModifiers::CONTROL,
        ));
    }

    fn fixture_app() -> App {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.clock.now = Timestamp(NOW);
        app.switch_to(Tab::Search);
        app.take_commands();
        edit_afresh(&mut app);
        type_text(&mut app, "service:api OR error");
        app.on_key(key(KeyCode::Enter));
        let commands = app.take_commands();
        let now = Instant::now();
        for c in commands {
            let Command::Fetch(request) = c else { continue };
            let payload = match &request {
                Request::Search { .. } => Payload::Search(SearchPage {
                    hits: hits(),
                    total: 1234,
                    total_exact: true,
                    next_cursor: Some("c2".into()),
                    took_ms: 7,
                }),
                Request::Histogram { .. } => Payload::Histogram(Histogram {
                    interval_ms: 60_000,
                    buckets: (0..60)
                        .map(|i| Bucket {
                            ts: Some(Timestamp(NOW - (60 - i) * 60_000_000_000)),
                            count: ((i * 37) % 23 + if i > 45 { 30 } else { 0 }) as u64,
                        })
                        .collect(),
                }),
                _ => continue,
            };
            app.on_reply(
                crate::fetch::Reply {
                    request,
                    result: Ok(payload),
                },
                now,
            );
        }
        app
    }

    fn snapshot(app: &mut App, name: &str) {
        for (w, h) in SIZES {
            let terminal = render(app, w, h);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
        }
    }

    #[test]
    fn search_view_results() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('j')));
        snapshot(&mut app, "search_results");
    }

    #[test]
    fn search_view_detail_pane() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Enter));
        snapshot(&mut app, "search_detail_pane");
    }

    #[test]
    fn the_detail_pane_shows_a_traceback_one_frame_a_row() {
        let mut app = fixture_app();
        let mut hit = hits()[0].clone();
        hit["message"] = json!(
            "Traceback (most recent call last):\n  File \"/app/main.py\", line 3, in <module>\nValueError: boom"
        );
        app.search.hits[0] = Hit::from_value(hit);
        app.on_key(key(KeyCode::Enter));
        // At 80x24 the pane is too short to reach the message; `o` opens it full screen.
        let shown = crate::views::tests::screen(&render(&mut app, 160, 48));
        assert!(!shown.contains(r"\n"), "{shown}");
        assert!(
            shown.contains(r#"│      File \"/app/main.py\", line 3, in <module>"#),
            "{shown}"
        );
        assert!(shown.contains("│    ValueError: boom"), "{shown}");
    }

    #[test]
    fn service_names_are_not_cut_when_the_terminal_has_room() {
        let mut app = fixture_app();
        let shown = crate::views::tests::screen(&render(&mut app, 160, 48));
        assert!(shown.contains(" inference-server WARN "), "{shown}");
    }

    #[test]
    fn search_view_typing_an_invalid_query() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('/')));
        type_text(&mut app, " AND level:");
        snapshot(&mut app, "search_invalid_query");
    }

    #[test]
    fn search_view_on_open() {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.switch_to(Tab::Search);
        snapshot(&mut app, "search_open");
    }

    #[test]
    fn typing_over_the_opening_query_replaces_it_and_a_space_extends_it() {
        let mut app = App::new("http://x", 10, false);
        app.switch_to(Tab::Search);
        app.on_key(key(KeyCode::Char('/')));
        type_text(&mut app, "level:error");
        assert_eq!(app.search.input.text(), "level:error");
        let mut app = App::new("http://x", 10, false);
        app.switch_to(Tab::Search);
        app.on_key(key(KeyCode::Char('/')));
        type_text(&mut app, " AND x");
        assert_eq!(app.search.input.text(), "kind:log AND x");
    }

    #[test]
    fn opening_the_view_runs_the_newest_logs_once() {
        let mut app = App::new("http://x", 10, false);
        app.switch_to(Tab::Search);
        let window = Window {
            q: DEFAULT_QUERY.into(),
            since: "1h".into(),
            until: "now".into(),
        };
        assert_eq!(
            app.take_commands(),
            vec![
                Command::Fetch(Request::Search {
                    generation: 1,
                    window: window.clone(),
                    cursor: None,
                    limit: PAGE_SIZE,
                }),
                Command::Fetch(Request::Histogram {
                    generation: 1,
                    window,
                }),
            ]
        );
        assert_eq!(app.search.input.text(), DEFAULT_QUERY);
        let shown = crate::views::tests::screen(&render(&mut app, 80, 24));
        assert!(!shown.contains("no query run yet"), "{shown}");
        assert!(shown.contains("searching…"), "{shown}");
        // Coming back keeps what was run.
        app.switch_to(Tab::Tail);
        app.switch_to(Tab::Search);
        assert!(app.take_commands().is_empty());
    }

    #[test]
    fn enter_runs_the_query_and_its_histogram() {
        let mut app = App::new("http://x", 10, false);
        app.switch_to(Tab::Search);
        app.take_commands();
        edit_afresh(&mut app);
        type_text(&mut app, "level:");
        app.on_key(key(KeyCode::Enter));
        assert!(
            app.take_commands().is_empty(),
            "an invalid query is not sent"
        );
        type_text(&mut app, "error");
        app.on_key(key(KeyCode::Enter));
        let window = Window {
            q: "level:error".into(),
            since: "1h".into(),
            until: "now".into(),
        };
        assert_eq!(
            app.take_commands(),
            vec![
                Command::Fetch(Request::Search {
                    generation: 2,
                    window: window.clone(),
                    cursor: None,
                    limit: PAGE_SIZE,
                }),
                Command::Fetch(Request::Histogram {
                    generation: 2,
                    window,
                }),
            ]
        );
        // t moves to the next preset and runs again; digits switch views again.
        app.on_key(key(KeyCode::Char('t')));
        let commands = app.take_commands();
        assert!(
            matches!(&commands[0], Command::Fetch(Request::Search { window, generation: 3, .. }) if window.since == "24h"),
            "{commands:?}"
        );
        app.on_key(key(KeyCode::Char('1')));
        assert_eq!(app.tab, Tab::Tail);
    }

    #[test]
    fn history_walks_with_up_and_down() {
        let mut app = App::new("http://x", 10, false);
        app.switch_to(Tab::Search);
        for q in ["a", "b"] {
            app.on_key(key(KeyCode::Char('/')));
            app.on_key(ratatui::crossterm::event::KeyEvent::new(
                KeyCode::Char('u'),
                ratatui::crossterm::event::KeyModifiers::CONTROL,
            ));
            type_text(&mut app, q);
            app.on_key(key(KeyCode::Enter));
        }
        app.on_key(key(KeyCode::Char('/')));
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.search.input.text(), "b");
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.search.input.text(), "a");
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.search.input.text(), "b");
    }

    #[test]
    fn pages_forward_and_back_with_cursors() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('n')));
        let commands = app.take_commands();
        assert!(
            matches!(&commands[..], [Command::Fetch(Request::Search { cursor: Some(c), .. })] if c == "c2"),
            "{commands:?}"
        );
        assert_eq!(app.search.page(), 2);
        app.on_key(key(KeyCode::Char('p')));
        assert!(
            app.take_commands().is_empty(),
            "no paging while a page loads"
        );
        app.search.loading = false;
        app.on_key(key(KeyCode::Char('p')));
        let commands = app.take_commands();
        assert!(
            matches!(
                &commands[..],
                [Command::Fetch(Request::Search { cursor: None, .. })]
            ),
            "{commands:?}"
        );
    }

    #[test]
    fn answers_to_an_old_query_are_dropped() {
        let mut app = fixture_app();
        let total = app.search.total;
        app.on_key(key(KeyCode::Char('r')));
        app.on_reply(
            crate::fetch::Reply {
                request: Request::Search {
                    generation: 1,
                    window: Window {
                        q: String::new(),
                        since: "1h".into(),
                        until: "now".into(),
                    },
                    cursor: None,
                    limit: PAGE_SIZE,
                },
                result: Ok(Payload::Search(SearchPage::default())),
            },
            Instant::now(),
        );
        assert_eq!(app.search.total, total);
    }

    #[test]
    fn custom_ranges_are_checked() {
        let now = Timestamp(NOW);
        assert_eq!(
            parse_range("now-3h now-1h", now),
            Ok(Range::Custom {
                since: "now-3h".into(),
                until: "now-1h".into()
            })
        );
        assert!(parse_range("2026-11-22T06:00:00Z", now).is_ok());
        assert!(
            parse_range("now-1h now-3h", now)
                .unwrap_err()
                .contains("before")
        );
        assert!(
            parse_range("yesterday", now)
                .unwrap_err()
                .starts_with("start")
        );
        assert!(parse_range("", now).is_err());
    }

    #[test]
    fn columns_sum_or_stretch_buckets() {
        assert_eq!(columns(&[1, 2, 3, 4], 2), [3, 7]);
        assert_eq!(columns(&[1, 2], 4), [1, 1, 2, 2]);
        assert_eq!(columns(&[], 2), [0, 0]);
    }
}
