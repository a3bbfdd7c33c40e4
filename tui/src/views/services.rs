//! The Services view: the registration catalog from `GET /api/v1/services` (one row per
//! instance, grouped by service), and the selected service's history from
//! `GET /api/v1/services/{name}`; jumps to its logs in Tail or Search.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::api::{Instance, Port, ServiceDetail, ServiceList};
use crate::app::{App, Ctx, Jump};
use crate::fetch::{FetchError, Payload, Request};
use crate::refresh::Refresh;
use crate::theme::Theme;
use crate::widgets::text;

/// The Services view's keys, for the help overlay.
pub const KEYS: &[(&str, &str)] = &[
    ("j, k, PgUp, PgDn", "select a service"),
    ("Enter", "show or hide the service's history"),
    ("l", "tail the service's logs"),
    ("s", "search the service's logs"),
    ("r", "refresh now"),
];

/// How often the catalog is read again.
const EVERY: Duration = Duration::from_secs(5);

/// Everything the Services view shows.
#[derive(Debug)]
pub struct Services {
    /// When to read the catalog again.
    pub refresh: Refresh,
    /// The catalog, when read.
    pub list: Option<ServiceList>,
    /// Why the last read failed.
    pub error: Option<String>,
    /// The selected service (index into the list).
    pub selected: usize,
    /// The history pane, when open.
    pub detail: Option<ServiceDetail>,
    /// Whether the history pane is open.
    pub pane: bool,
    /// Why the history could not be read.
    pub detail_error: Option<String>,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            refresh: Refresh::every(EVERY),
            list: None,
            error: None,
            selected: 0,
            detail: None,
            pane: false,
            detail_error: None,
        }
    }
}

/// `service:NAME`, quoted when the name holds characters the query language treats
/// specially.
pub fn service_query(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        format!("service:{name}")
    } else {
        format!(
            "service:\"{}\"",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        )
    }
}

impl Services {
    fn names(&self) -> Vec<&str> {
        self.list
            .as_ref()
            .map(|l| l.services.iter().map(|s| s.name.as_str()).collect())
            .unwrap_or_default()
    }

    /// The selected service's name.
    pub fn selected_name(&self) -> Option<&str> {
        self.names().get(self.selected).copied()
    }

    /// Asks for the catalog when due.
    pub fn poll(&mut self, now: Instant, ctx: &mut Ctx) {
        if self.refresh.due(now) {
            ctx.fetch(Request::Services);
            if self.pane
                && let Some(name) = self.selected_name()
            {
                ctx.fetch(Request::ServiceDetail {
                    name: name.to_string(),
                });
            }
        }
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: KeyEvent, ctx: &mut Ctx) {
        let count = self.names().len();
        let before = self.selected;
        let page = ctx.rows.saturating_sub(4).max(1);
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.selected += 1,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::PageDown => self.selected += page,
            KeyCode::PageUp => self.selected = self.selected.saturating_sub(page),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = usize::MAX,
            KeyCode::Enter => {
                self.pane = !self.pane;
                self.ask_detail(ctx);
            }
            KeyCode::Esc => self.pane = false,
            KeyCode::Char('r') => self.refresh.now(),
            KeyCode::Char('l') => {
                if let Some(name) = self.selected_name() {
                    ctx.jump = Some(Jump::Tail(service_query(name)));
                }
            }
            KeyCode::Char('s') => {
                if let Some(name) = self.selected_name() {
                    ctx.jump = Some(Jump::Search(service_query(name)));
                }
            }
            _ => {}
        }
        self.selected = self.selected.min(count.saturating_sub(1));
        if self.selected != before && self.pane {
            self.ask_detail(ctx);
        }
    }

    fn ask_detail(&mut self, ctx: &mut Ctx) {
        if !self.pane {
            return;
        }
        if let Some(name) = self.selected_name() {
            ctx.fetch(Request::ServiceDetail {
                name: name.to_string(),
            });
        }
    }

    /// Handles an answer.
    pub fn on_reply(
        &mut self,
        request: &Request,
        result: Result<Payload, FetchError>,
        now: Instant,
        _ctx: &mut Ctx,
    ) {
        match (request, result) {
            (Request::Services, Ok(Payload::Services(list))) => {
                self.refresh.succeeded(now);
                self.error = None;
                self.list = Some(list);
                let count = self.names().len();
                self.selected = self.selected.min(count.saturating_sub(1));
            }
            (Request::Services, Err(e)) => {
                self.refresh.failed(now);
                self.error = Some(e.to_string());
            }
            (Request::ServiceDetail { name }, result) => {
                if self.selected_name() != Some(name.as_str()) {
                    return;
                }
                match result {
                    Ok(Payload::ServiceDetail(d)) => {
                        self.detail = Some(d);
                        self.detail_error = None;
                    }
                    Err(e) => self.detail_error = Some(e.to_string()),
                    Ok(_) => {}
                }
            }
            _ => {}
        }
    }
}

fn ports(ports: &[Port]) -> String {
    ports
        .iter()
        .map(|p| match p.public {
            Some(public) => format!("{public}→{}", p.private),
            None => format!("{}", p.private),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn state_style(theme: Theme, state: &str, health: Option<&str>) -> ratatui::style::Style {
    match (state, health) {
        (_, Some("unhealthy")) | ("died" | "oom" | "killed", _) => theme.error(),
        ("started" | "running" | "healthy", _) => theme.ok(),
        _ => theme.dim(),
    }
}

/// Draws the view in `area`; returns its status line.
pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) -> Line<'static> {
    let s = &app.services;
    let mut table = area;
    if s.pane && area.height > 6 {
        let pane = if area.width >= 140 {
            let w = area.width * 2 / 5;
            table.width -= w;
            Rect {
                x: table.x + table.width,
                width: w,
                ..area
            }
        } else {
            let h = area.height / 2;
            table.height -= h;
            Rect {
                y: table.y + table.height,
                height: h,
                ..area
            }
        };
        draw_history(frame, pane, app, theme);
    }
    draw_table(frame, table, app, theme);
    let count = s.list.as_ref().map_or(0, |l| l.services.len());
    let instances: usize = s
        .list
        .as_ref()
        .map_or(0, |l| l.services.iter().map(|s| s.instances.len()).sum());
    let mut status = format!(" {count} services · {instances} instances");
    if s.selected_name().is_some() {
        status.push_str(" · Enter history · l tail · s search");
    }
    Line::raw(status)
}

fn draw_table(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) {
    let s = &app.services;
    let width = usize::from(area.width);
    let wide = width >= 120;
    let (name_w, node_w, image_w) = if wide { (20, 14, 30) } else { (14, 8, 14) };
    let cont_w = if wide { 24 } else { 0 };
    let mut titles = format!(
        "{:<name_w$} {:<node_w$} {:<image_w$} {:<8} {:<9} {:>7} ",
        "SERVICE", "NODE", "IMAGE", "STATE", "HEALTH", "UPTIME"
    );
    if wide {
        titles = format!(
            "{:<name_w$} {:<cont_w$} {}",
            "SERVICE",
            "CONTAINER",
            &titles[name_w + 1..]
        );
    }
    titles.push_str("PORTS");
    let mut lines = vec![Line::styled(
        text::fit(&titles, width),
        theme.column_titles(),
    )];
    let Some(list) = &s.list else {
        let hint = s.error.clone().unwrap_or_else(|| "loading…".into());
        lines.push(Line::styled(
            format!(" {}", text::sanitize(&hint, width)),
            theme.dim(),
        ));
        frame.render_widget(Paragraph::new(lines), area);
        return;
    };
    if list.services.is_empty() {
        lines.push(Line::styled(" no services registered yet", theme.dim()));
    }
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut selected_row = 0;
    for (i, service) in list.services.iter().enumerate() {
        if i == s.selected {
            selected_row = rows.len();
        }
        let empty = Instance::default();
        let instances: Vec<&Instance> = if service.instances.is_empty() {
            vec![&empty]
        } else {
            service.instances.iter().collect()
        };
        for (n, inst) in instances.iter().enumerate() {
            let name = if n == 0 {
                let count = service.instances.len();
                let label = if count > 1 {
                    format!("{} ×{count}", service.name)
                } else {
                    service.name.clone()
                };
                text::fit(&label, name_w)
            } else {
                " ".repeat(name_w)
            };
            let uptime = inst.since.map(|t| app.clock.age(t)).unwrap_or_default();
            let health = inst.health.clone().unwrap_or_else(|| "-".into());
            let mut spans = vec![Span::styled(format!("{name} "), theme.service())];
            if wide {
                spans.push(Span::raw(format!(
                    "{} ",
                    text::fit(&inst.container_name, cont_w)
                )));
            }
            spans.extend([
                Span::styled(format!("{} ", text::fit(&inst.node, node_w)), theme.dim()),
                Span::raw(format!("{} ", text::fit(&inst.image, image_w))),
                Span::styled(
                    format!("{} ", text::fit(&inst.state, 8)),
                    state_style(theme, &inst.state, inst.health.as_deref()),
                ),
                Span::styled(
                    format!("{} ", text::fit(&health, 9)),
                    state_style(theme, "", inst.health.as_deref()),
                ),
                Span::raw(format!("{uptime:>7} ")),
                Span::styled(text::sanitize(&ports(&inst.ports), 40), theme.dim()),
            ]);
            let mut line = Line::from(spans);
            if i == s.selected {
                line.style = theme.selected();
            }
            rows.push(line);
        }
    }
    let room = usize::from(area.height).saturating_sub(1);
    let top = (selected_row + 1).saturating_sub(room);
    lines.extend(rows.into_iter().skip(top).take(room));
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_history(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) {
    let s = &app.services;
    let name = s.selected_name().unwrap_or("");
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(format!(
            " {} history · l tail · s search ",
            text::sanitize(name, 30)
        ));
    let inner = block.inner(area);
    let width = usize::from(inner.width);
    let mut lines = Vec::new();
    match (&s.detail, &s.detail_error) {
        (_, Some(e)) => lines.push(Line::styled(text::sanitize(e, width), theme.error())),
        (Some(d), None) if d.name == name => {
            if d.history.is_empty() {
                lines.push(Line::styled("no changes recorded", theme.dim()));
            }
            for t in &d.history {
                let when = t.ts.map(|ts| app.clock.date_time(ts)).unwrap_or_default();
                let exit = t
                    .exit_code
                    .map(|c| format!(" exit {c}"))
                    .unwrap_or_default();
                lines.push(Line::from(vec![
                    Span::styled(format!("{when} "), theme.dim()),
                    Span::styled(
                        format!("{:<9} ", t.state),
                        state_style(theme, &t.state, None),
                    ),
                    Span::raw(text::sanitize(
                        &format!("{} on {}{exit}", t.container_name, t.node),
                        width.saturating_sub(25),
                    )),
                ]));
            }
        }
        _ => lines.push(Line::styled("loading…", theme.dim())),
    }
    frame.render_widget(ratatui::widgets::Clear, area);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Command;
    use crate::app::tests::key;
    use crate::fetch::Reply;
    use crate::views::Tab;
    use crate::views::tests::{SIZES, render};
    use shiplog_core::Timestamp;

    const NOW: i64 = 1_795_330_800_000_000_000; // 2026-11-22T07:00:00Z

    fn list() -> ServiceList {
        serde_json::from_value(serde_json::json!({"services": [
            {"name": "api", "instances": [
                {"container_id": "a1", "container_name": "api-1", "node": "node-a",
                 "image": "registry.local/api:2.3.1", "state": "started", "health": "healthy",
                 "ports": [{"private": 8080, "public": 18080, "proto": "tcp"}],
                 "since": "2026-11-22T04:12:00Z"},
                {"container_id": "a2", "container_name": "api-2", "node": "node-b",
                 "image": "registry.local/api:2.3.1", "state": "started", "health": "unhealthy",
                 "ports": [{"private": 8080, "public": null}], "since": "2026-11-22T06:58:30Z"}]},
            {"name": "inference-server", "instances": [
                {"container_id": "i1", "container_name": "inference-server-gpu-0",
                 "node": "gpu-1", "image": "models/resnet50:v3", "state": "died",
                 "health": null, "ports": [], "since": "2026-11-20T07:00:00Z"}]},
            {"name": "worker", "instances": [
                {"container_id": "w1", "container_name": "worker", "node": "node-a",
                 "image": "busybox", "state": "stopped", "since": "2026-11-22T06:00:00Z"}]}
        ]}))
        .unwrap()
    }

    fn detail() -> ServiceDetail {
        serde_json::from_value(
            serde_json::json!({"name": "api", "instances": [], "history": [
                {"ts": "2026-11-22T06:58:30Z", "container_name": "api-2", "node": "node-b",
                 "state": "unhealthy", "id": "x"},
                {"ts": "2026-11-22T06:58:00Z", "container_name": "api-2", "node": "node-b",
                 "state": "died", "exit_code": 137},
                {"ts": "2026-11-22T04:12:00Z", "container_name": "api-1", "node": "node-a",
                 "state": "started"}
            ]}),
        )
        .unwrap()
    }

    fn fixture_app() -> App {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.clock.now = Timestamp(NOW);
        app.switch_to(Tab::Services);
        app.tick(Instant::now(), Timestamp(NOW));
        let commands = app.take_commands();
        assert!(
            commands.contains(&Command::Fetch(Request::Services)),
            "{commands:?}"
        );
        app.on_reply(
            Reply {
                request: Request::Services,
                result: Ok(Payload::Services(list())),
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
    fn services_view_catalog() {
        snapshot(&mut fixture_app(), "services_catalog");
    }

    #[test]
    fn services_view_history() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Enter));
        let commands = app.take_commands();
        assert_eq!(
            commands,
            vec![Command::Fetch(Request::ServiceDetail {
                name: "api".into()
            })]
        );
        app.on_reply(
            Reply {
                request: Request::ServiceDetail { name: "api".into() },
                result: Ok(Payload::ServiceDetail(detail())),
            },
            Instant::now(),
        );
        snapshot(&mut app, "services_history");
    }

    #[test]
    fn services_view_not_reachable() {
        let mut app = App::new("http://127.0.0.1:7070", 100, true);
        app.switch_to(Tab::Services);
        app.tick(Instant::now(), Timestamp(NOW));
        app.take_commands();
        app.on_reply(
            Reply {
                request: Request::Services,
                result: Err(FetchError::Connection(
                    "cannot connect to the server".into(),
                )),
            },
            Instant::now(),
        );
        snapshot(&mut app, "services_unreachable");
    }

    #[test]
    fn l_and_s_jump_to_the_services_logs() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('j')));
        app.on_key(key(KeyCode::Char('l')));
        assert_eq!(app.tab, Tab::Tail);
        assert_eq!(app.tail.filter(), "service:inference-server");
        assert_eq!(
            app.take_commands(),
            vec![Command::ApplyFilter("service:inference-server".into())]
        );
        app.switch_to(Tab::Services);
        app.on_key(key(KeyCode::Char('s')));
        assert_eq!(app.tab, Tab::Search);
        assert_eq!(app.search.input.text(), "service:inference-server");
        assert!(matches!(
            app.take_commands()[0],
            Command::Fetch(Request::Search { .. })
        ));
    }

    #[test]
    fn odd_service_names_are_quoted() {
        assert_eq!(service_query("web-1.x_y"), "service:web-1.x_y");
        assert_eq!(service_query("my app"), "service:\"my app\"");
        assert!(shiplog_core::query::parse(&service_query("a \"b\" c")).is_ok());
    }

    #[test]
    fn failures_back_off_and_keep_the_list() {
        let mut app = fixture_app();
        let t = Instant::now();
        app.services.refresh.now();
        assert!(app.services.refresh.due(t));
        app.on_reply(
            Reply {
                request: Request::Services,
                result: Err(FetchError::Connection("down".into())),
            },
            t,
        );
        assert!(app.services.list.is_some(), "what is on screen stays");
        assert!(!app.services.refresh.due(t));
        assert!(app.services.refresh.due(t + Duration::from_millis(500)));
    }
}
