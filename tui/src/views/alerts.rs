//! The Alerts view: firing and pending alerts from `GET /api/v1/alerts` with since, value,
//! threshold and labels; a selected one can be silenced with `POST /api/v1/silences`,
//! matching its group, for a duration typed in a box.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use serde_json::Value;
use shiplog_core::Timestamp;

use crate::api::{Alert, AlertList, Matcher, SilenceRequest};
use crate::app::{App, Ctx, Detail};
use crate::edit::LineEdit;
use crate::fetch::{FetchError, Payload, Request};
use crate::refresh::Refresh;
use crate::theme::Theme;
use crate::widgets::{filter_box, text};

/// The Alerts view's keys, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("j, k", "select an alert"),
    ("Enter", "open the alert's every field"),
    (
        "s",
        "silence the selected alert's group (asks for a duration)",
    ),
    ("r", "refresh now"),
];

/// How often alerts are read again (also in other views, for the count in the tab bar).
const EVERY: Duration = Duration::from_secs(10);
/// Retry delay once the server said it has no alerts API.
const UNAVAILABLE_RETRY: Duration = Duration::from_secs(60);

/// The silence being set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceForm {
    /// What it will match.
    pub matchers: Vec<Matcher>,
    /// The alert's rule, for the comment.
    pub rule: String,
    /// The duration typed (`1h`, `30m`).
    pub duration: LineEdit,
    /// Why the duration was refused.
    pub error: Option<String>,
}

/// Everything the Alerts view shows.
#[derive(Debug)]
pub struct Alerts {
    /// When to read again.
    pub refresh: Refresh,
    /// Alerts, firing first.
    pub list: Option<AlertList>,
    /// Why the last read failed.
    pub error: Option<String>,
    /// Whether the server has no alerts API.
    pub unavailable: bool,
    /// The selected alert.
    pub selected: usize,
    /// The silence form, when open.
    pub form: Option<SilenceForm>,
    /// Waiting for a silence to be created.
    pub silencing: bool,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            refresh: Refresh::every(EVERY),
            list: None,
            error: None,
            unavailable: false,
            selected: 0,
            form: None,
            silencing: false,
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Matchers for an alert's group (every key equal), falling back to its rule's labels.
pub fn matchers(alert: &Alert) -> Vec<Matcher> {
    let source = if alert.group.is_empty() {
        &alert.labels
    } else {
        &alert.group
    };
    source
        .iter()
        .map(|(name, value)| Matcher {
            name: name.clone(),
            value: value_text(value),
            is_regex: false,
        })
        .collect()
}

impl Alerts {
    /// Firing alerts (for the tab bar).
    pub fn firing(&self) -> usize {
        self.list.as_ref().map_or(0, |l| {
            l.alerts
                .iter()
                .filter(|a| a.state == "firing" && !a.silenced)
                .count()
        })
    }

    /// Whether the silence form has the keyboard.
    pub fn editing(&self) -> bool {
        self.form.is_some()
    }

    /// Asks for alerts when due.
    pub fn poll(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.refresh.due(now) {
            ctx.fetch(Request::Alerts);
        }
    }

    fn selected_alert(&self) -> Option<&Alert> {
        self.list.as_ref()?.alerts.get(self.selected)
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: KeyEvent, ctx: &mut Ctx) {
        if let Some(form) = &mut self.form {
            match key.code {
                KeyCode::Esc => self.form = None,
                KeyCode::Enter => {
                    match shiplog_core::timestamp::parse_duration_nanos(&form.duration.text) {
                        Ok(nanos) if nanos > 0 => {
                            let ends_at = Timestamp(ctx.clock.now.as_nanos().saturating_add(nanos));
                            ctx.fetch(Request::Silence(Box::new(SilenceRequest {
                                matchers: form.matchers.clone(),
                                ends_at: ends_at.to_rfc3339(),
                                comment: format!(
                                    "silenced {} for {} from shiplog tui",
                                    form.rule, form.duration.text
                                ),
                                created_by: "tui".into(),
                            })));
                            self.silencing = true;
                            self.form = None;
                        }
                        Ok(_) => form.error = Some("type a duration above zero".into()),
                        Err(e) => form.error = Some(e.to_string()),
                    }
                }
                _ => {
                    form.duration.edit(key);
                    form.error = None;
                }
            }
            return;
        }
        let count = self.list.as_ref().map_or(0, |l| l.alerts.len());
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.selected += 1,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = usize::MAX,
            KeyCode::Char('r') => self.refresh.now(),
            KeyCode::Enter => {
                if let Some(a) = self.selected_alert() {
                    let value = serde_json::json!({
                        "rule": a.rule, "severity": a.severity, "state": a.state,
                        "group": a.group, "value": a.value, "threshold": a.threshold,
                        "since": a.since.map(Timestamp::to_rfc3339), "labels": a.labels,
                        "annotations": a.annotations, "silenced": a.silenced,
                        "delivery": a.delivery,
                    });
                    ctx.detail = Some(Detail::json(format!("alert {}", a.rule), &value));
                }
            }
            KeyCode::Char('s') => {
                if let Some(a) = self.selected_alert() {
                    let matchers = matchers(a);
                    if matchers.is_empty() {
                        ctx.notice = Some("this alert has no group or labels to match".into());
                    } else {
                        self.form = Some(SilenceForm {
                            matchers,
                            rule: a.rule.clone(),
                            duration: LineEdit::new("1h"),
                            error: None,
                        });
                    }
                }
            }
            _ => {}
        }
        self.selected = self.selected.min(count.saturating_sub(1));
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
            (Request::Alerts, Ok(Payload::Alerts(mut list))) => {
                self.refresh.succeeded(now);
                self.error = None;
                self.unavailable = false;
                // Firing before pending, then the oldest first: what burns longest on top.
                list.alerts.sort_by(|a, b| {
                    (a.state != "firing", a.since.map(|t| t.as_nanos()), &a.rule).cmp(&(
                        b.state != "firing",
                        b.since.map(|t| t.as_nanos()),
                        &b.rule,
                    ))
                });
                let count = list.alerts.len();
                self.list = Some(list);
                self.selected = self.selected.min(count.saturating_sub(1));
            }
            (Request::Alerts, Err(e)) => {
                if matches!(e, FetchError::Unavailable { .. }) {
                    self.unavailable = true;
                    // Ask rarely: the server may be upgraded, but not every few seconds.
                    self.refresh.retry_in(now, UNAVAILABLE_RETRY);
                } else {
                    self.refresh.failed(now);
                }
                self.error = Some(e.to_string());
            }
            (Request::Silence(_), Ok(Payload::Silenced(created))) => {
                self.silencing = false;
                ctx.notice = Some(format!("silence {} created", created.id));
                self.refresh.now();
            }
            (Request::Silence(_), Err(e)) => {
                self.silencing = false;
                ctx.notice = Some(format!("silence failed: {e}"));
            }
            _ => {}
        }
    }
}

fn severity_style(theme: Theme, severity: &str) -> ratatui::style::Style {
    match severity {
        "critical" | "error" | "page" => theme.error(),
        "warning" | "warn" => theme.warn(),
        _ => theme.dim(),
    }
}

fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v != 0.0 && v.abs() < 0.01 => format!("{v:.2e}"),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e9 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn pairs(map: &std::collections::BTreeMap<String, Value>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={}", value_text(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Draws the view in `area`; returns its status line.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) -> Line<'static> {
    let a = &app.alerts;
    let width = usize::from(area.width);
    let wide = width >= 120;
    let rule_w = if wide { 24 } else { 16 };
    let group_w = if wide { 20 } else { 12 };
    let titles = format!(
        "{:<8} {:<8} {:<rule_w$} {:<group_w$} {:>8} {:>8} {:>7} LABELS",
        "STATE", "SEVERITY", "RULE", "GROUP", "VALUE", "THRESH", "SINCE"
    );
    let fixed = 8 + 1 + 8 + 1 + rule_w + 1 + group_w + 1 + 8 + 1 + 8 + 1 + 7 + 1;
    let mut lines = vec![Line::styled(
        text::fit(&titles, width),
        theme.column_titles(),
    )];
    match (&a.list, a.unavailable) {
        (_, true) => lines.push(Line::styled(
            " alerts are not available on this server (GET /api/v1/alerts answered 404)",
            theme.dim(),
        )),
        (None, false) => {
            let hint = a.error.clone().unwrap_or_else(|| "loading…".into());
            lines.push(Line::styled(
                format!(" {}", text::sanitize(&hint, width)),
                theme.dim(),
            ));
        }
        (Some(list), false) if list.alerts.is_empty() => {
            lines.push(Line::styled(" nothing firing or pending", theme.ok()));
        }
        (Some(list), false) => {
            let room = usize::from(area.height).saturating_sub(1);
            let top = (a.selected + 1).saturating_sub(room);
            for (i, alert) in list.alerts.iter().enumerate().skip(top).take(room) {
                let state_style = if alert.state == "firing" {
                    theme.error()
                } else {
                    theme.warn()
                };
                let mut state = alert.state.to_uppercase();
                if alert.silenced {
                    state = "SILENCED".into();
                }
                let since = alert.since.map(|t| app.clock.age(t)).unwrap_or_default();
                let mut labels = pairs(&alert.labels);
                if alert.delivery == "pending" {
                    labels = format!("(delivery pending) {labels}");
                }
                let mut line = Line::from(vec![
                    Span::styled(
                        format!("{:<8} ", state),
                        if alert.silenced {
                            theme.dim()
                        } else {
                            state_style
                        },
                    ),
                    Span::styled(
                        format!("{} ", text::fit(&alert.severity, 8)),
                        severity_style(theme, &alert.severity),
                    ),
                    Span::raw(format!("{} ", text::fit(&alert.rule, rule_w))),
                    Span::styled(
                        format!("{} ", text::fit(&pairs(&alert.group), group_w)),
                        theme.service(),
                    ),
                    Span::raw(format!(
                        "{:>8} {:>8} {since:>7} ",
                        number(alert.value),
                        number(alert.threshold)
                    )),
                    Span::styled(
                        text::sanitize(&labels, width.saturating_sub(fixed)),
                        theme.dim(),
                    ),
                ]);
                if i == a.selected {
                    line.style = theme.selected();
                }
                lines.push(line);
            }
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
    if let Some(form) = &a.form {
        draw_form(frame, area, form, theme);
    }
    let firing = a.firing();
    let pending = a.list.as_ref().map_or(0, |l| {
        l.alerts.iter().filter(|x| x.state == "pending").count()
    });
    let mut status = format!(" {firing} firing · {pending} pending · s silence · Enter detail");
    if a.silencing {
        status.push_str(" · silencing…");
    }
    Line::raw(status)
}

fn draw_form(frame: &mut Frame<'_>, area: Rect, form: &SilenceForm, theme: Theme) {
    let height = 7u16.min(area.height);
    let width = area.width.min(72);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(" silence · Enter creates · Esc cancels ");
    let inner = block.inner(rect);
    frame.render_widget(Clear, rect);
    frame.render_widget(block, rect);
    let matches = form
        .matchers
        .iter()
        .map(|m| format!("{}={}", m.name, m.value))
        .collect::<Vec<_>>()
        .join(", ");
    let mut lines = vec![Line::raw(format!("matching {matches}"))];
    match &form.error {
        Some(e) => lines.push(Line::styled(e.clone(), theme.error())),
        None => lines.push(Line::styled("for how long? (30m, 2h, 1d)", theme.dim())),
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }),
        Rect {
            height: inner.height.saturating_sub(filter_box::LINE_HEIGHT),
            ..inner
        },
    );
    let input = Rect {
        y: (inner.y + inner.height).saturating_sub(filter_box::LINE_HEIGHT),
        height: filter_box::LINE_HEIGHT.min(inner.height),
        ..inner
    };
    filter_box::render_line(frame, input, &form.duration, "duration", theme);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Command;
    use crate::app::tests::{key, type_text};
    use crate::fetch::Reply;
    use crate::views::Tab;
    use crate::views::tests::{SIZES, render};

    const NOW: i64 = 1_795_330_800_000_000_000; // 2026-11-22T07:00:00Z

    fn list() -> AlertList {
        serde_json::from_value(serde_json::json!({"alerts": [
            {"rule": "api-error-ratio", "severity": "critical", "state": "firing",
             "group": {"service": "api"}, "value": 0.31, "threshold": 0.05,
             "since": "2026-11-22T06:48:00Z", "labels": {"team": "web", "env": "prod"},
             "annotations": {"summary": "api errors above 5%"}, "silenced": false,
             "delivery": "ok"},
            {"rule": "resnet-latency-p95", "severity": "warning", "state": "pending",
             "group": {"model": "resnet50", "model_version": "v3"}, "value": 412.0,
             "threshold": 250.0, "since": "2026-11-22T06:59:10Z", "labels": {},
             "silenced": false, "delivery": "pending"},
            {"rule": "worker-absent", "severity": "critical", "state": "firing",
             "group": {"service": "worker"}, "value": 0, "threshold": 1,
             "since": "2026-11-22T05:00:00Z", "labels": {"team": "batch"},
             "silenced": true, "delivery": "ok", "future_key": {"x": 1}}
        ]}))
        .unwrap()
    }

    fn fixture_app() -> App {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.clock.now = Timestamp(NOW);
        app.switch_to(Tab::Alerts);
        app.tick(Instant::now(), Timestamp(NOW));
        assert_eq!(app.take_commands(), vec![Command::Fetch(Request::Alerts)]);
        app.on_reply(
            Reply {
                request: Request::Alerts,
                result: Ok(Payload::Alerts(list())),
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
    fn alerts_view_list() {
        snapshot(&mut fixture_app(), "alerts_list");
    }

    #[test]
    fn alerts_view_silence_form() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('s')));
        snapshot(&mut app, "alerts_silence_form");
    }

    #[test]
    fn alerts_view_unavailable() {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.switch_to(Tab::Alerts);
        app.tick(Instant::now(), Timestamp(NOW));
        app.take_commands();
        app.on_reply(
            Reply {
                request: Request::Alerts,
                result: Err(FetchError::Unavailable {
                    path: "/api/v1/alerts".into(),
                }),
            },
            Instant::now(),
        );
        snapshot(&mut app, "alerts_unavailable");
    }

    #[test]
    fn firing_first_and_silence_posts_the_group() {
        let mut app = fixture_app();
        let rules: Vec<&str> = app
            .alerts
            .list
            .as_ref()
            .unwrap()
            .alerts
            .iter()
            .map(|a| a.rule.as_str())
            .collect();
        assert_eq!(
            rules,
            ["worker-absent", "api-error-ratio", "resnet-latency-p95"]
        );
        assert_eq!(app.alerts.firing(), 1, "silenced ones are not counted");
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('s')));
        assert!(app.alerts.editing());
        app.on_key(key(KeyCode::Backspace));
        app.on_key(key(KeyCode::Backspace));
        type_text(&mut app, "x");
        app.on_key(key(KeyCode::Enter));
        assert!(app.alerts.form.as_ref().unwrap().error.is_some());
        app.on_key(key(KeyCode::Backspace));
        type_text(&mut app, "2h");
        app.on_key(key(KeyCode::Enter));
        let commands = app.take_commands();
        let [Command::Fetch(Request::Silence(body))] = &commands[..] else {
            panic!("{commands:?}");
        };
        assert_eq!(
            body.matchers,
            vec![Matcher {
                name: "service".into(),
                value: "api".into(),
                is_regex: false
            }]
        );
        assert_eq!(body.ends_at, "2026-11-22T09:00:00.000000000Z");
        assert_eq!(body.created_by, "tui");
        app.on_reply(
            Reply {
                request: Request::Silence(body.clone()),
                result: Ok(Payload::Silenced(crate::api::SilenceCreated {
                    id: "s-9".into(),
                })),
            },
            Instant::now(),
        );
        assert_eq!(app.notice.as_deref(), Some("silence s-9 created"));
    }
}
