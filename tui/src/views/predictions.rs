//! The Predictions view: per model and version, the rate (over the part of the hour the
//! model was seen in, see [`rate_per_s`]), error ratio and latency p50/p95 over the last
//! hour (`GET /api/v1/predictions/summary`), with sparklines over time; below,
//! the selected model's recent predictions with their request ids
//! (`GET /api/v1/predictions`); Enter on one, or a typed request id, opens its full record.
//!
//! Prediction hits are read as JSON (see [`Hit`]) so this view does not depend on which
//! prediction keys the core event type knows.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use shiplog_core::Timestamp;

use crate::api::{Hit, ModelSummary, PredictionSummary};
use crate::app::{App, Command, Ctx, Detail};
use crate::edit::LineEdit;
use crate::fetch::{FetchError, Payload, Request};
use crate::refresh::Refresh;
use crate::theme::Theme;
use crate::widgets::{filter_box, spark, text};

/// The Predictions view's keys, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("j, k", "select a model version, or a prediction"),
    (
        "Enter",
        "models: go to its recent predictions · predictions: open the full record",
    ),
    ("Esc", "back to the models"),
    ("i", "look up a request id"),
    ("y", "copy the selected request id (OSC 52)"),
    ("r", "refresh now"),
];

/// How often the summary is read again.
const EVERY: Duration = Duration::from_secs(10);
/// The window of the summary.
pub const WINDOW: &str = "1h";
/// Buckets of each model's series: 30 seconds each over the hour, fine enough for the rate
/// of a model that started a minute ago (see [`rate_per_s`]).
pub const BUCKETS: usize = 120;
/// Shortest span a rate is taken over, so one prediction at the very end of the window
/// does not read as thousands a second.
const MIN_RATE_SPAN_S: f64 = 1.0;
/// Recent predictions listed.
const RECENT: usize = 100;

/// Which list has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The per-model table.
    Models,
    /// The recent predictions.
    Recent,
}

/// Everything the Predictions view shows.
#[derive(Debug)]
pub struct Predictions {
    /// When to read the summary again.
    pub refresh: Refresh,
    /// The summary.
    pub summary: Option<PredictionSummary>,
    /// Why the last read failed.
    pub error: Option<String>,
    /// Whether the server has no predictions API.
    pub unavailable: bool,
    /// Selected model row.
    pub selected: usize,
    /// Which list has the cursor.
    pub focus: Focus,
    /// Recent predictions of the selected model, with the (model, version) they are for.
    pub recent: Option<((String, String), Vec<Hit>)>,
    /// Why the recent list could not be read.
    pub recent_error: Option<String>,
    /// Selected recent prediction.
    pub recent_selected: usize,
    /// The request id input, when open.
    pub lookup: Option<LineEdit>,
}

impl Default for Predictions {
    fn default() -> Self {
        Predictions {
            refresh: Refresh::every(EVERY),
            summary: None,
            error: None,
            unavailable: false,
            selected: 0,
            focus: Focus::Models,
            recent: None,
            recent_error: None,
            recent_selected: 0,
            lookup: None,
        }
    }
}

impl Predictions {
    /// Whether the request id input has the keyboard.
    pub fn editing(&self) -> bool {
        self.lookup.is_some()
    }

    fn model(&self) -> Option<&ModelSummary> {
        self.summary.as_ref()?.models.get(self.selected)
    }

    fn recent_hits(&self) -> &[Hit] {
        self.recent.as_ref().map_or(&[], |(_, h)| h.as_slice())
    }

    fn ask_recent(&self, ctx: &mut Ctx) {
        if let Some(m) = self.model() {
            ctx.fetch(Request::Predictions {
                model: m.model.clone(),
                version: m.model_version.clone(),
                limit: RECENT,
            });
        }
    }

    /// Asks for the summary (and the selected model's recent predictions) when due.
    pub fn poll(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.refresh.due(now) {
            ctx.fetch(Request::PredictionSummary {
                since: WINDOW.into(),
                buckets: BUCKETS,
            });
            self.ask_recent(ctx);
        }
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: KeyEvent, ctx: &mut Ctx) {
        if let Some(edit) = &mut self.lookup {
            match key.code {
                KeyCode::Esc => self.lookup = None,
                KeyCode::Enter => {
                    let id = edit.text.trim().to_string();
                    self.lookup = None;
                    if !id.is_empty() {
                        ctx.fetch(Request::PredictionRecord { request_id: id });
                    }
                }
                _ => {
                    edit.edit(key);
                }
            }
            return;
        }
        match key.code {
            KeyCode::Char('i') => self.lookup = Some(LineEdit::default()),
            KeyCode::Char('r') => self.refresh.now(),
            KeyCode::Esc => self.focus = Focus::Models,
            _ => {}
        }
        match self.focus {
            Focus::Models => {
                let count = self.summary.as_ref().map_or(0, |s| s.models.len());
                let before = self.selected;
                match key.code {
                    KeyCode::Down | KeyCode::Char('j') => self.selected += 1,
                    KeyCode::Up | KeyCode::Char('k') => {
                        self.selected = self.selected.saturating_sub(1);
                    }
                    KeyCode::Enter if !self.recent_hits().is_empty() => {
                        self.focus = Focus::Recent;
                    }
                    _ => {}
                }
                self.selected = self.selected.min(count.saturating_sub(1));
                if self.selected != before {
                    self.recent_selected = 0;
                    self.ask_recent(ctx);
                }
            }
            Focus::Recent => {
                let count = self.recent_hits().len();
                let page = ctx.rows.saturating_sub(8).max(1);
                match key.code {
                    KeyCode::Down | KeyCode::Char('j') => self.recent_selected += 1,
                    KeyCode::Up | KeyCode::Char('k') => {
                        self.recent_selected = self.recent_selected.saturating_sub(1);
                    }
                    KeyCode::PageDown => self.recent_selected += page,
                    KeyCode::PageUp => {
                        self.recent_selected = self.recent_selected.saturating_sub(page);
                    }
                    KeyCode::Enter => {
                        if let Some(hit) = self.recent_hits().get(self.recent_selected) {
                            if hit.request_id.is_empty() {
                                ctx.detail = Some(Detail::json("prediction", &hit.raw));
                            } else {
                                ctx.fetch(Request::PredictionRecord {
                                    request_id: hit.request_id.clone(),
                                });
                            }
                        }
                    }
                    KeyCode::Char('y') => {
                        if let Some(hit) = self.recent_hits().get(self.recent_selected) {
                            ctx.notice = Some(format!("copied {}", hit.request_id));
                            ctx.commands.push(Command::Copy(hit.request_id.clone()));
                        }
                    }
                    _ => {}
                }
                self.recent_selected = self.recent_selected.min(count.saturating_sub(1));
            }
        }
    }

    /// Handles an answer.
    pub fn on_reply(
        &mut self,
        request: &Request,
        result: Result<Payload, FetchError>,
        now: Instant,
        ctx: &mut Ctx,
    ) {
        match (request, result) {
            (Request::PredictionSummary { .. }, Ok(Payload::PredictionSummary(s))) => {
                self.refresh.succeeded(now);
                self.error = None;
                self.unavailable = false;
                self.summary = Some(s);
                let count = self.summary.as_ref().map_or(0, |s| s.models.len());
                self.selected = self.selected.min(count.saturating_sub(1));
                // The selected model changed (first answer, or models came or went): its
                // recent predictions are not the ones shown.
                let current = self
                    .model()
                    .map(|m| (m.model.clone(), m.model_version.clone()));
                if current.is_some() && current.as_ref() != self.recent.as_ref().map(|(k, _)| k) {
                    self.ask_recent(ctx);
                }
            }
            (Request::PredictionSummary { .. }, Err(e)) => {
                if matches!(e, FetchError::Unavailable { .. }) {
                    self.unavailable = true;
                    self.refresh.retry_in(now, Duration::from_secs(60));
                } else {
                    self.refresh.failed(now);
                }
                self.error = Some(e.to_string());
            }
            (Request::Predictions { model, version, .. }, result) => {
                let current = self
                    .model()
                    .map(|m| (m.model.clone(), m.model_version.clone()));
                if current.as_ref() != Some(&(model.clone(), version.clone())) {
                    return;
                }
                match result {
                    Ok(Payload::Predictions(page)) => {
                        let hits: Vec<Hit> = page.hits.into_iter().map(Hit::from_value).collect();
                        self.recent_selected =
                            self.recent_selected.min(hits.len().saturating_sub(1));
                        self.recent = Some(((model.clone(), version.clone()), hits));
                        self.recent_error = None;
                    }
                    Err(e) => self.recent_error = Some(e.to_string()),
                    Ok(_) => {}
                }
            }
            (Request::PredictionRecord { request_id }, result) => match result {
                Ok(Payload::Predictions(page)) => match page.hits.into_iter().next() {
                    Some(record) => {
                        ctx.detail = Some(Detail::json(format!("request {request_id}"), &record));
                    }
                    None => {
                        ctx.notice = Some(format!("no prediction with request id {request_id}"))
                    }
                },
                Err(e) => ctx.notice = Some(format!("lookup of {request_id} failed: {e}")),
                Ok(_) => {}
            },
            _ => {}
        }
    }
}

/// Predictions per second over the part of the window the model version was seen in: its
/// count divided by the time from the start of the first bucket that holds one of its
/// predictions to the end of the window, and never by less than [`MIN_RATE_SPAN_S`].
///
/// The server's `rate_per_s` divides by the whole window, so a model that started two
/// minutes ago and answers one request a second read 0.03/s. Starting at the first busy
/// bucket reads it as about 1/s (a little under while that bucket is only partly used), and
/// a model that stopped reads lower and lower as the window moves on. When the server cut
/// the summary to its newest predictions, the first busy bucket is where they start, so the
/// rate still holds. Without a series or the window's end there is only the server's number.
pub fn rate_per_s(m: &ModelSummary, until: Option<Timestamp>) -> f64 {
    let first = m.series.iter().find(|p| p.count > 0).and_then(|p| p.ts);
    let (Some(first), Some(until)) = (first, until) else {
        return m.rate_per_s;
    };
    let secs = (until.as_nanos() - first.as_nanos()) as f64 / 1e9;
    m.count as f64 / secs.max(MIN_RATE_SPAN_S)
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 1000.0 => format!("{:.1}s", v / 1000.0),
        Some(v) if v >= 100.0 => format!("{v:.0}ms"),
        Some(v) => format!("{v:.1}ms"),
    }
}

/// Draws the view in `area`; returns its status line.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) -> Line<'static> {
    let p = &app.predictions;
    let width = usize::from(area.width);
    if p.unavailable || p.summary.is_none() {
        let hint = if p.unavailable {
            "predictions are not available on this server (GET /api/v1/predictions/summary answered 404)".to_string()
        } else {
            p.error.clone().unwrap_or_else(|| "loading…".into())
        };
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!(" {}", text::sanitize(&hint, width)),
                theme.dim(),
            )),
            area,
        );
        draw_lookup(frame, area, p, theme);
        return Line::raw(" i look up a request id");
    }
    let models = p.summary.as_ref().map_or(&[][..], |s| s.models.as_slice());
    let models_h = (models.len().max(1) as u16 + 1)
        .min(area.height / 2)
        .max(2.min(area.height));
    let top = Rect {
        height: models_h,
        ..area
    };
    let bottom = Rect {
        y: area.y + models_h,
        height: area.height - models_h,
        ..area
    };
    let until = p.summary.as_ref().and_then(|s| s.until);
    draw_models(frame, top, p, models, until, theme);
    draw_recent(frame, bottom, app, theme);
    draw_lookup(frame, area, p, theme);
    let total: u64 = models.iter().map(|m| m.count).sum();
    let focus = match p.focus {
        Focus::Models => "Enter recent predictions",
        Focus::Recent => "Enter full record · Esc models",
    };
    Line::raw(format!(
        " {} model versions · {total} predictions in {WINDOW} · {focus} · i request id",
        models.len()
    ))
}

fn draw_models(
    frame: &mut Frame<'_>,
    area: Rect,
    p: &Predictions,
    models: &[ModelSummary],
    until: Option<Timestamp>,
    theme: Theme,
) {
    let width = usize::from(area.width);
    let name_w = if width >= 120 { 24 } else { 14 };
    let fixed = name_w + 1 + 8 + 1 + 8 + 1 + 6 + 1 + 7 + 1 + 7 + 2;
    let spark_w = (width.saturating_sub(fixed) / 2).max(3);
    let titles = format!(
        "{:<name_w$} {:<8} {:>8} {:>6} {:>7} {:>7}  {:<spark_w$} {:<spark_w$}",
        "MODEL", "VERSION", "RATE/s", "ERR%", "P50", "P95", "RATE", "P95 LATENCY"
    );
    let mut lines = vec![Line::styled(
        text::fit(&titles, width),
        theme.column_titles(),
    )];
    if models.is_empty() {
        lines.push(Line::styled(
            " no predictions in the last hour",
            theme.dim(),
        ));
    }
    let room = usize::from(area.height).saturating_sub(1);
    let top = (p.selected + 1).saturating_sub(room);
    for (i, m) in models.iter().enumerate().skip(top).take(room) {
        let counts: Vec<Option<f64>> = m.series.iter().map(|s| Some(s.count as f64)).collect();
        let p95: Vec<Option<f64>> = m.series.iter().map(|s| s.latency_p95).collect();
        let err_style = if m.error_ratio >= 0.05 {
            theme.error()
        } else if m.error_ratio > 0.0 {
            theme.warn()
        } else {
            theme.ok()
        };
        let mut line = Line::from(vec![
            Span::styled(format!("{} ", text::fit(&m.model, name_w)), theme.service()),
            Span::raw(format!("{} ", text::fit(&m.model_version, 8))),
            Span::raw(format!("{:>8.2} ", rate_per_s(m, until))),
            Span::styled(format!("{:>6.2} ", m.error_ratio * 100.0), err_style),
            Span::raw(format!(
                "{:>7} {:>7}  ",
                ms(m.latency_p50),
                ms(m.latency_p95)
            )),
            Span::styled(spark::scaled(&counts, spark_w, None, None), theme.chart()),
            Span::raw(" "),
            Span::styled(spark::scaled(&p95, spark_w, None, None), theme.chart_alt()),
        ]);
        if i == p.selected {
            let style = if p.focus == Focus::Models {
                theme.selected()
            } else {
                theme.column_titles()
            };
            line.style = style;
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_recent(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) {
    let p = &app.predictions;
    let title = match p.model() {
        Some(m) => format!(" recent predictions of {} {} ", m.model, m.model_version),
        None => " recent predictions ".into(),
    };
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(theme.dim())
        .title(text::sanitize(&title, usize::from(area.width)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let id_w = if width >= 120 { 36 } else { 20 };
    let titles = format!(
        "{:<14} {:<id_w$} {:<7} {:>8} OUTPUT",
        format!("TIME {}", app.clock.zone()),
        "REQUEST ID",
        "STATUS",
        "LATENCY"
    );
    let fixed = 14 + 1 + id_w + 1 + 7 + 1 + 8 + 1;
    let mut lines = vec![Line::styled(
        text::fit(&titles, width),
        theme.column_titles(),
    )];
    let hits = p.recent_hits();
    if let Some(e) = &p.recent_error {
        lines.push(Line::styled(
            format!(" {}", text::sanitize(e, width)),
            theme.error(),
        ));
    } else if p.recent.is_none() {
        lines.push(Line::styled(" loading…", theme.dim()));
    } else if hits.is_empty() {
        lines.push(Line::styled(" none in the window", theme.dim()));
    }
    let room = usize::from(inner.height).saturating_sub(1);
    let top = (p.recent_selected + 1).saturating_sub(room);
    for (i, hit) in hits.iter().enumerate().skip(top).take(room) {
        let when = hit.ts.map(|t| app.clock.date_time(t)).unwrap_or_default();
        let status_style = if hit.status == "ok" || hit.status.is_empty() {
            theme.ok()
        } else {
            theme.error()
        };
        let output = hit
            .raw
            .get("output")
            .map(|v| v.to_string())
            .unwrap_or_else(|| hit.message.clone());
        let mut line = Line::from(vec![
            Span::styled(format!("{when:<14} "), theme.dim()),
            Span::raw(format!("{} ", text::fit(&hit.request_id, id_w))),
            Span::styled(format!("{} ", text::fit(&hit.status, 7)), status_style),
            Span::raw(format!("{:>8} ", ms(hit.latency_ms))),
            Span::styled(
                text::sanitize(&output, width.saturating_sub(fixed)),
                theme.dim(),
            ),
        ]);
        if p.focus == Focus::Recent && i == p.recent_selected {
            line.style = theme.selected();
        }
        lines.push(line);
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn draw_lookup(frame: &mut Frame<'_>, area: Rect, p: &Predictions, theme: Theme) {
    if let Some(edit) = &p.lookup {
        let rect = Rect {
            y: (area.y + area.height).saturating_sub(filter_box::LINE_HEIGHT),
            height: filter_box::LINE_HEIGHT.min(area.height),
            ..area
        };
        filter_box::render_line(
            frame,
            rect,
            edit,
            "request id · Enter opens · Esc cancels",
            theme,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ModelPoint, SearchPage};
    use crate::app::tests::{key, type_text};
    use crate::fetch::Reply;
    use crate::views::Tab;
    use crate::views::tests::{SIZES, render, screen};

    const NOW: i64 = 1_795_330_800_000_000_000; // 2026-11-22T07:00:00Z

    fn summary() -> PredictionSummary {
        let model =
            |name: &str, version: &str, rate: f64, err: f64, p50: f64, p95: f64| ModelSummary {
                model: name.into(),
                model_version: version.into(),
                count: (rate * 3600.0) as u64,
                rate_per_s: rate,
                error_ratio: err,
                latency_p50: Some(p50),
                latency_p95: Some(p95),
                series: (0..60)
                    .map(|i| ModelPoint {
                        ts: Some(Timestamp(NOW - (60 - i) * 60_000_000_000)),
                        count: (rate * 60.0 * (1.0 + ((i * 7) % 5) as f64 / 10.0)) as u64,
                        errors: (rate * 60.0 * err) as u64,
                        latency_p50: Some(p50),
                        latency_p95: Some(p95 * (1.0 + ((i * 3) % 7) as f64 / 20.0)),
                    })
                    .collect(),
            };
        PredictionSummary {
            models: vec![
                model("resnet50", "v3", 42.5, 0.012, 18.2, 61.0),
                model("resnet50", "v4-canary", 2.1, 0.081, 22.0, 250.0),
                model("bert-sentiment", "2024-10", 7.8, 0.0, 4.1, 9.7),
            ],
            until: Some(Timestamp(NOW)),
        }
    }

    fn recent() -> SearchPage {
        SearchPage {
            hits: (0..12)
                .map(|i| {
                    serde_json::json!({
                        "ts": Timestamp(NOW - i * 1_700_000_000).to_rfc3339(),
                        "kind": "prediction", "model": "resnet50", "model_version": "v3",
                        "request_id": format!("req-7f3a-{i:04}"), "latency_ms": 12.0 + i as f64 * 3.5,
                        "status": if i == 3 { "error" } else { "ok" },
                        "input": {"image": format!("s3://bucket/img-{i}.jpg")},
                        "output": {"label": "tabby cat", "score": 0.93},
                        "service": "inference-server", "message": "",
                    })
                })
                .collect(),
            total: 12,
            total_exact: true,
            next_cursor: None,
            took_ms: 3,
        }
    }

    fn fixture_app() -> App {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.clock.now = Timestamp(NOW);
        app.switch_to(Tab::Predictions);
        app.tick(Instant::now(), Timestamp(NOW));
        app.take_commands();
        let now = Instant::now();
        app.on_reply(
            Reply {
                request: Request::PredictionSummary {
                    since: "1h".into(),
                    buckets: BUCKETS,
                },
                result: Ok(Payload::PredictionSummary(summary())),
            },
            now,
        );
        let commands = app.take_commands();
        let request = Request::Predictions {
            model: "resnet50".into(),
            version: "v3".into(),
            limit: RECENT,
        };
        assert_eq!(commands, vec![Command::Fetch(request.clone())]);
        app.on_reply(
            Reply {
                request,
                result: Ok(Payload::Predictions(recent())),
            },
            now,
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
    fn predictions_view_models_and_recent() {
        snapshot(&mut fixture_app(), "predictions_models");
    }

    #[test]
    fn predictions_view_recent_focus() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Enter));
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('j')));
        snapshot(&mut app, "predictions_recent");
    }

    #[test]
    fn predictions_view_unavailable() {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.switch_to(Tab::Predictions);
        app.on_reply(
            Reply {
                request: Request::PredictionSummary {
                    since: "1h".into(),
                    buckets: BUCKETS,
                },
                result: Err(FetchError::Unavailable {
                    path: "/api/v1/predictions/summary".into(),
                }),
            },
            Instant::now(),
        );
        snapshot(&mut app, "predictions_unavailable");
    }

    #[test]
    fn a_request_id_opens_its_full_record() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Enter));
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Enter));
        let request = Request::PredictionRecord {
            request_id: "req-7f3a-0001".into(),
        };
        assert_eq!(app.take_commands(), vec![Command::Fetch(request.clone())]);
        let mut page = recent();
        page.hits.truncate(2);
        page.hits.remove(0);
        app.on_reply(
            Reply {
                request,
                result: Ok(Payload::Predictions(page)),
            },
            Instant::now(),
        );
        let detail = app.detail.as_ref().expect("the record opens");
        assert!(detail.title.contains("req-7f3a-0001"));
        assert!(
            detail
                .lines
                .iter()
                .any(|l| l.contains("s3://bucket/img-1.jpg"))
        );
        app.on_key(key(KeyCode::Esc));
        // A typed request id that does not exist says so.
        app.on_key(key(KeyCode::Char('i')));
        type_text(&mut app, "nope");
        app.on_key(key(KeyCode::Enter));
        let request = Request::PredictionRecord {
            request_id: "nope".into(),
        };
        assert_eq!(app.take_commands(), vec![Command::Fetch(request.clone())]);
        app.on_reply(
            Reply {
                request,
                result: Ok(Payload::Predictions(SearchPage::default())),
            },
            Instant::now(),
        );
        assert_eq!(
            app.notice.as_deref(),
            Some("no prediction with request id nope")
        );
    }

    #[test]
    fn a_model_appearing_later_gets_its_predictions_asked_for() {
        let mut app = App::new("http://x", 10, false);
        app.switch_to(Tab::Predictions);
        let now = Instant::now();
        let reply = |s: PredictionSummary| Reply {
            request: Request::PredictionSummary {
                since: "1h".into(),
                buckets: BUCKETS,
            },
            result: Ok(Payload::PredictionSummary(s)),
        };
        app.on_reply(reply(PredictionSummary::default()), now);
        assert!(app.take_commands().is_empty());
        app.on_reply(reply(summary()), now);
        assert_eq!(
            app.take_commands().len(),
            1,
            "the first model's predictions"
        );
    }

    #[test]
    fn selecting_another_model_asks_for_its_predictions() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('j')));
        assert_eq!(
            app.take_commands(),
            vec![Command::Fetch(Request::Predictions {
                model: "resnet50".into(),
                version: "v4-canary".into(),
                limit: RECENT,
            })]
        );
    }

    #[test]
    fn rate_is_over_the_time_a_model_was_seen_not_the_whole_hour() {
        // A model that started two minutes ago and answers one request a second: the last
        // four 30-second buckets of the hour hold 30 predictions each.
        let fresh = ModelSummary {
            model: "fresh-model".into(),
            model_version: "v1".into(),
            count: 120,
            rate_per_s: 120.0 / 3600.0,
            series: (0..BUCKETS as i64)
                .map(|i| ModelPoint {
                    ts: Some(Timestamp(NOW - (BUCKETS as i64 - i) * 30_000_000_000)),
                    count: if i >= BUCKETS as i64 - 4 { 30 } else { 0 },
                    ..ModelPoint::default()
                })
                .collect(),
            ..ModelSummary::default()
        };
        assert_eq!(rate_per_s(&fresh, Some(Timestamp(NOW))), 1.0);
        let mut app = App::new("http://x", 10, false);
        app.switch_to(Tab::Predictions);
        app.on_reply(
            Reply {
                request: Request::PredictionSummary {
                    since: "1h".into(),
                    buckets: BUCKETS,
                },
                result: Ok(Payload::PredictionSummary(PredictionSummary {
                    models: vec![fresh.clone()],
                    until: Some(Timestamp(NOW)),
                })),
            },
            Instant::now(),
        );
        let shown = screen(&render(&mut app, 160, 48));
        let row = shown
            .lines()
            .find(|l| l.contains("fresh-model"))
            .expect("the model's row");
        assert!(row.contains(" 1.00 "), "{row}");
        // One prediction at the very end of the window is not thousands a second.
        let mut last = fresh.clone();
        last.count = 1;
        for point in &mut last.series {
            point.count = 0;
        }
        let bucket = last.series.last_mut().expect("a series");
        bucket.count = 1;
        let start = bucket.ts.expect("a bucket start");
        assert_eq!(rate_per_s(&last, Some(start.offset(1_000_000))), 1.0);
        // Without the window's end, the server's number is what there is.
        assert_eq!(rate_per_s(&fresh, None), fresh.rate_per_s);
    }
}
