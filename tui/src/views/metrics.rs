//! The Metrics view, as ctop shows containers: one row per container with CPU and memory
//! sparklines over the last hour (from `GET /api/v1/metrics`), the latest values, and a sort
//! order picked with a key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::api::MetricsBody;
use crate::app::{App, Ctx, Jump};
use crate::fetch::{FetchError, Payload, Request};
use crate::refresh::Refresh;
use crate::theme::Theme;
use crate::views::services::service_query;
use crate::widgets::{spark, text};

/// The Metrics view's keys, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("j, k, PgUp, PgDn", "select a container"),
    ("s", "sort by: cpu, memory, name"),
    ("R", "reverse the sort"),
    ("l", "tail the selected container's logs"),
    ("r", "refresh now"),
];

/// How often the series are read again.
const EVERY: Duration = Duration::from_secs(10);
/// The window the sparklines cover.
pub const WINDOW: &str = "1h";

/// What the table is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Latest CPU, highest first.
    Cpu,
    /// Latest memory, highest first.
    Memory,
    /// Container name, A to Z.
    Name,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::Cpu => SortBy::Memory,
            SortBy::Memory => SortBy::Name,
            SortBy::Name => SortBy::Cpu,
        }
    }

    fn label(self) -> &'static str {
        match self {
            SortBy::Cpu => "cpu",
            SortBy::Memory => "memory",
            SortBy::Name => "name",
        }
    }
}

/// One container's numbers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// Container name.
    pub container: String,
    /// Service.
    pub service: String,
    /// CPU percent per bucket, oldest first.
    pub cpu: Vec<Option<f64>>,
    /// Memory bytes per bucket, oldest first.
    pub mem: Vec<Option<f64>>,
    /// Latest memory limit, bytes.
    pub limit: Option<f64>,
}

impl Row {
    /// Latest CPU percent.
    pub fn cpu_now(&self) -> Option<f64> {
        self.cpu.iter().rev().flatten().next().copied()
    }

    /// Latest memory bytes.
    pub fn mem_now(&self) -> Option<f64> {
        self.mem.iter().rev().flatten().next().copied()
    }
}

/// Everything the Metrics view shows.
#[derive(Debug)]
pub struct Metrics {
    /// When to read again.
    pub refresh: Refresh,
    /// One row per container, sorted.
    pub rows: Option<Vec<Row>>,
    /// Why the last read failed.
    pub error: Option<String>,
    /// Sort order.
    pub sort: SortBy,
    /// Reverse the sort.
    pub reverse: bool,
    /// The selected row.
    pub selected: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            refresh: Refresh::every(EVERY),
            rows: None,
            error: None,
            sort: SortBy::Cpu,
            reverse: false,
            selected: 0,
        }
    }
}

/// Joins the CPU, memory and limit series into rows, one per container, on a shared time
/// axis (bucket starts of both series).
pub fn rows(cpu: &MetricsBody, mem: &MetricsBody, limit: &MetricsBody) -> Vec<Row> {
    let mut axis: Vec<i64> = cpu
        .series
        .iter()
        .chain(&mem.series)
        .flat_map(|s| s.points.iter().map(|(t, _)| t.as_nanos()))
        .collect();
    axis.sort_unstable();
    axis.dedup();
    let at = |points: &[(shiplog_core::Timestamp, f64)]| -> Vec<Option<f64>> {
        let mut out = vec![None; axis.len()];
        for (t, v) in points {
            if let Ok(i) = axis.binary_search(&t.as_nanos()) {
                out[i] = Some(*v);
            }
        }
        out
    };
    let mut by_container: BTreeMap<String, Row> = BTreeMap::new();
    let key = |s: &crate::api::Series| {
        if s.container_name.is_empty() {
            s.container_id.clone()
        } else {
            s.container_name.clone()
        }
    };
    for s in &cpu.series {
        let row = by_container.entry(key(s)).or_default();
        row.container = key(s);
        row.service.clone_from(&s.service);
        row.cpu = at(&s.points);
    }
    for s in &mem.series {
        let row = by_container.entry(key(s)).or_default();
        row.container = key(s);
        row.service.clone_from(&s.service);
        row.mem = at(&s.points);
    }
    for s in &limit.series {
        if let Some(row) = by_container.get_mut(&key(s)) {
            row.limit = s.points.last().map(|(_, v)| *v).filter(|v| *v > 0.0);
        }
    }
    by_container
        .into_values()
        .map(|mut r| {
            r.cpu.resize(axis.len(), None);
            r.mem.resize(axis.len(), None);
            r
        })
        .collect()
}

/// Bytes in binary units, `512.0M`.
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0}B")
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

impl Metrics {
    fn sort_rows(&mut self) {
        let Some(rows) = &mut self.rows else {
            return;
        };
        let desc = |a: Option<f64>, b: Option<f64>| {
            b.unwrap_or(-1.0)
                .partial_cmp(&a.unwrap_or(-1.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        };
        match self.sort {
            SortBy::Cpu => rows.sort_by(|a, b| {
                desc(a.cpu_now(), b.cpu_now()).then_with(|| a.container.cmp(&b.container))
            }),
            SortBy::Memory => rows.sort_by(|a, b| {
                desc(a.mem_now(), b.mem_now()).then_with(|| a.container.cmp(&b.container))
            }),
            SortBy::Name => rows.sort_by(|a, b| a.container.cmp(&b.container)),
        }
        if self.reverse {
            rows.reverse();
        }
    }

    /// Asks for the series when due.
    pub fn poll(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.refresh.due(now) {
            ctx.fetch(Request::Metrics {
                since: WINDOW.into(),
            });
        }
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: KeyEvent, ctx: &mut Ctx) {
        let count = self.rows.as_ref().map_or(0, Vec::len);
        let page = ctx.rows.saturating_sub(2).max(1);
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.selected += 1,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::PageDown => self.selected += page,
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(page),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = usize::MAX,
            KeyCode::Char('s') => {
                self.sort = self.sort.next();
                self.sort_rows();
            }
            KeyCode::Char('R') => {
                self.reverse = !self.reverse;
                self.sort_rows();
            }
            KeyCode::Char('r') => self.refresh.now(),
            KeyCode::Char('l') => {
                if let Some(row) = self.rows.as_ref().and_then(|r| r.get(self.selected)) {
                    let q = service_query(&row.container).replacen("service:", "container:", 1);
                    ctx.jump = Some(Jump::Tail(q));
                }
            }
            _ => {}
        }
        self.selected = self.selected.min(count.saturating_sub(1));
    }

    /// Handles an answer.
    pub fn on_reply(&mut self, result: Result<Payload, FetchError>, now: Instant, _ctx: &mut Ctx) {
        match result {
            Ok(Payload::Metrics { cpu, mem, limit }) => {
                self.refresh.succeeded(now);
                self.error = None;
                let selected = self
                    .rows
                    .as_ref()
                    .and_then(|r| r.get(self.selected))
                    .map(|r| r.container.clone());
                self.rows = Some(rows(&cpu, &mem, &limit));
                self.sort_rows();
                // Keep the same container selected across refreshes.
                if let (Some(name), Some(rows)) = (selected, &self.rows) {
                    self.selected = rows.iter().position(|r| r.container == name).unwrap_or(0);
                }
            }
            Err(e) => {
                self.refresh.failed(now);
                self.error = Some(e.to_string());
            }
            Ok(_) => {}
        }
    }
}

/// Draws the view in `area`; returns its status line.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) -> Line<'static> {
    let m = &app.metrics;
    let width = usize::from(area.width);
    let name_w = if width >= 120 { 28 } else { 16 };
    let service_w = if width >= 120 { 16 } else { 0 };
    // Name, service, then CPU (spark + value) and MEM (spark + value + of limit).
    let fixed = name_w + 1 + if service_w > 0 { service_w + 1 } else { 0 } + 7 + 1 + 17 + 2;
    let spark_w = (width.saturating_sub(fixed) / 2).max(4);
    let mut titles = format!("{:<name_w$} ", "CONTAINER");
    if service_w > 0 {
        titles.push_str(&format!("{:<service_w$} ", "SERVICE"));
    }
    titles.push_str(&format!(
        "{:<spark_w$} {:>6}  {:<spark_w$} {:>16}",
        format!("CPU {WINDOW}"),
        "CPU%",
        format!("MEMORY {WINDOW}"),
        "MEM / LIMIT"
    ));
    let mut lines = vec![Line::styled(
        text::fit(&titles, width),
        theme.column_titles(),
    )];
    match &m.rows {
        None => {
            let hint = m.error.clone().unwrap_or_else(|| "loading…".into());
            lines.push(Line::styled(
                format!(" {}", text::sanitize(&hint, width)),
                theme.dim(),
            ));
        }
        Some(rows) if rows.is_empty() => {
            lines.push(Line::styled(
                " no container metrics in the last hour",
                theme.dim(),
            ));
        }
        Some(rows) => {
            let room = usize::from(area.height).saturating_sub(1);
            let top = (m.selected + 1).saturating_sub(room);
            for (i, row) in rows.iter().enumerate().skip(top).take(room) {
                let cpu_max = row.cpu.iter().flatten().copied().fold(100.0, f64::max);
                let mem_max = row
                    .limit
                    .or_else(|| row.mem.iter().flatten().copied().reduce(f64::max));
                let cpu_now = row.cpu_now().map_or("-".into(), |v| format!("{v:.1}"));
                let mem_now = match (row.mem_now(), row.limit) {
                    (Some(v), Some(l)) => format!("{} / {}", bytes(v), bytes(l)),
                    (Some(v), None) => bytes(v),
                    _ => "-".into(),
                };
                let mut spans = vec![Span::raw(format!("{} ", text::fit(&row.container, name_w)))];
                if service_w > 0 {
                    spans.push(Span::styled(
                        format!("{} ", text::fit(&row.service, service_w)),
                        theme.service(),
                    ));
                }
                spans.extend([
                    Span::styled(spark::line(&row.cpu, spark_w, Some(cpu_max)), theme.chart()),
                    Span::raw(format!(" {cpu_now:>6}  ")),
                    Span::styled(spark::line(&row.mem, spark_w, mem_max), theme.chart_alt()),
                    Span::raw(format!(" {mem_now:>16}")),
                ]);
                let mut line = Line::from(spans);
                if i == m.selected {
                    line.style = theme.selected();
                }
                lines.push(line);
            }
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
    let count = m.rows.as_ref().map_or(0, Vec::len);
    let mut status = format!(
        " {count} containers · sorted by {}{} · s sort · R reverse",
        m.sort.label(),
        if m.reverse { " (reversed)" } else { "" }
    );
    if let Some(e) = &m.error
        && m.rows.is_some()
    {
        status.push_str(&format!(" · last refresh failed: {e}"));
    }
    Line::raw(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Series;
    use crate::app::tests::key;
    use crate::fetch::Reply;
    use crate::views::Tab;
    use crate::views::tests::{SIZES, render};
    use shiplog_core::Timestamp;

    const NOW: i64 = 1_795_330_800_000_000_000; // 2026-11-22T07:00:00Z

    fn series(container: &str, service: &str, name: &str, f: impl Fn(i64) -> f64) -> Series {
        Series {
            container_name: container.into(),
            container_id: format!("{container}-id"),
            service: service.into(),
            name: name.into(),
            points: (0..120)
                .map(|i| (Timestamp(NOW - (120 - i) * 30_000_000_000), f(i)))
                .collect(),
        }
    }

    fn payload() -> Payload {
        let gib = 1024.0 * 1024.0 * 1024.0;
        let body = |series| MetricsBody {
            series,
            step_ms: 30_000,
        };
        Payload::Metrics {
            cpu: body(vec![
                series("api-1", "api", "cpu_percent", |i| {
                    20.0 + (i % 10) as f64 * 3.0
                }),
                series(
                    "inference-server-gpu-0",
                    "inference-server",
                    "cpu_percent",
                    |i| {
                        if i > 90 { 180.0 } else { 40.0 + i as f64 }
                    },
                ),
                series("worker", "worker", "cpu_percent", |_| 0.5),
            ]),
            mem: body(vec![
                series("api-1", "api", "mem_bytes", |i| 300e6 + i as f64 * 1e6),
                series(
                    "inference-server-gpu-0",
                    "inference-server",
                    "mem_bytes",
                    |i| 3.5 * gib + i as f64 * 1e7,
                ),
                series("worker", "worker", "mem_bytes", |_| 12e6),
            ]),
            limit: body(vec![
                series("api-1", "api", "mem_limit_bytes", |_| gib),
                series("inference-server-gpu-0", "x", "mem_limit_bytes", |_| {
                    8.0 * gib
                }),
            ]),
        }
    }

    fn fixture_app() -> App {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.clock.now = Timestamp(NOW);
        app.switch_to(Tab::Metrics);
        app.tick(Instant::now(), Timestamp(NOW));
        assert!(
            app.take_commands()
                .contains(&crate::app::Command::Fetch(Request::Metrics {
                    since: "1h".into()
                }))
        );
        app.on_reply(
            Reply {
                request: Request::Metrics { since: "1h".into() },
                result: Ok(payload()),
            },
            Instant::now(),
        );
        app
    }

    fn snapshot(app: &mut App, name: &str) {
        for (w, h) in SIZES {
            let terminal = render(app, w, h);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
        }
    }

    #[test]
    fn metrics_view_by_cpu() {
        snapshot(&mut fixture_app(), "metrics_by_cpu");
    }

    #[test]
    fn metrics_view_by_memory_reversed() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('s')));
        app.on_key(key(KeyCode::Char('R')));
        app.on_key(key(KeyCode::Char('j')));
        snapshot(&mut app, "metrics_by_memory_reversed");
    }

    #[test]
    fn sorting_keeps_rows_and_selection_follows_refreshes() {
        let mut app = fixture_app();
        let names = |app: &App| -> Vec<String> {
            app.metrics
                .rows
                .as_ref()
                .unwrap()
                .iter()
                .map(|r| r.container.clone())
                .collect()
        };
        assert_eq!(names(&app), ["inference-server-gpu-0", "api-1", "worker"]);
        app.on_key(key(KeyCode::Char('s')));
        app.on_key(key(KeyCode::Char('s')));
        assert_eq!(names(&app), ["api-1", "inference-server-gpu-0", "worker"]);
        app.on_key(key(KeyCode::Char('j')));
        app.metrics.sort = SortBy::Cpu;
        app.on_reply(
            Reply {
                request: Request::Metrics { since: "1h".into() },
                result: Ok(payload()),
            },
            Instant::now(),
        );
        assert_eq!(
            app.metrics.selected, 0,
            "inference-server-gpu-0 stays selected"
        );
        let row = &app.metrics.rows.as_ref().unwrap()[1];
        assert_eq!(row.limit, Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(row.cpu.len(), 120);
    }

    #[test]
    fn formats_bytes() {
        assert_eq!(bytes(512.0), "512B");
        assert_eq!(bytes(1536.0), "1.5K");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0 * 1024.0), "3.5G");
    }
}
