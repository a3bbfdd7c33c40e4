//! The Tail view: a top bar, column titles, the newest lines, and a status bar; the filter
//! box and the help overlay are drawn over it when open.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use shiplog_core::{Event, Level, Timestamp};

use crate::app::{App, Connection, TailLine};
use crate::theme::Theme;
use crate::widgets::{filter_box, help, text};

const TIME_COLS: usize = 12;
const SERVICE_COLS: usize = 12;
const STREAM_COLS: usize = 3;
const LEVEL_COLS: usize = 5;

/// Where each part of the view goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailLayout {
    /// Top bar: server and connection.
    pub top: Rect,
    /// Column titles.
    pub titles: Rect,
    /// The lines.
    pub list: Rect,
    /// The filter box, when open.
    pub filter: Option<Rect>,
    /// Bottom bar: follow/paused, filter, counts.
    pub status: Rect,
}

/// Splits the screen; the list gets whatever the bars and the filter box leave.
pub fn layout(area: Rect, filter_open: bool) -> TailLayout {
    let row = |y: u16, height: u16| Rect {
        x: area.x,
        y,
        width: area.width,
        height,
    };
    let bottom = area.y + area.height;
    let status = row(bottom.saturating_sub(1).max(area.y), area.height.min(1));
    let top = row(area.y, area.height.min(1));
    let titles = row(area.y + top.height, area.height.saturating_sub(2).min(1));
    let body_top = titles.y + titles.height;
    let body_height = status.y.saturating_sub(body_top);
    let box_height = if filter_open {
        filter_box::HEIGHT.min(body_height)
    } else {
        0
    };
    let list = row(body_top, body_height - box_height);
    let filter = filter_open.then(|| row(body_top + list.height, box_height));
    TailLayout {
        top,
        titles,
        list,
        filter,
        status,
    }
}

/// Draws the whole Tail view.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let theme = Theme::new(app.color);
    let area = frame.area();
    let parts = layout(area, app.filter_edit.is_some());
    frame.render_widget(
        Paragraph::new(top_bar(app, theme)).style(theme.bar()),
        parts.top,
    );
    frame.render_widget(Paragraph::new(column_titles(theme)), parts.titles);
    draw_list(frame, parts.list, app, theme);
    frame.render_widget(
        Paragraph::new(status_bar(app, theme, usize::from(area.width))).style(theme.bar()),
        parts.status,
    );
    if let (Some(edit), Some(rect)) = (&app.filter_edit, parts.filter) {
        filter_box::render(frame, rect, edit, theme);
    }
    if app.show_help {
        help::render(frame, area, theme);
    }
}

fn top_bar(app: &App, theme: Theme) -> Line<'static> {
    let (dot, state, style) = match &app.connection {
        Connection::Connecting => ("○", "connecting…".to_string(), theme.warn()),
        Connection::Connected => ("●", "connected".to_string(), theme.ok()),
        Connection::Disconnected(why) => ("○", format!("disconnected: {why}"), theme.error()),
    };
    Line::from(vec![
        Span::raw(" shiplog tail · "),
        Span::raw(text::sanitize(&app.url, 60)),
        Span::raw(" · "),
        Span::styled(format!("{dot} {state}"), style),
    ])
}

fn column_titles(theme: Theme) -> Line<'static> {
    Line::styled(
        format!(
            "{:<TIME_COLS$} {:<SERVICE_COLS$} {:<STREAM_COLS$} {:<LEVEL_COLS$} MESSAGE",
            "TIME (UTC)", "SERVICE", "STR", "LEVEL"
        ),
        theme.column_titles(),
    )
}

fn status_bar(app: &App, theme: Theme, width: usize) -> Line<'static> {
    let mode = if app.paused() {
        Span::styled(
            format!(" PAUSED +{} new ", app.new_while_paused),
            theme.warn(),
        )
    } else {
        Span::raw(" FOLLOW ")
    };
    let filter = if app.filter().is_empty() {
        "(none)".to_string()
    } else {
        app.filter().to_string()
    };
    let mut counts = format!("{} lines", app.received);
    if app.missed > 0 {
        counts.push_str(&format!(" · {} missed", app.missed));
    }
    if app.evicted > 0 {
        counts.push_str(&format!(" · {} scrolled out", app.evicted));
    }
    counts.push_str(" · ? help ");
    let used = text::width(&mode.content) + text::width(&counts) + " filter: ".len() + 1;
    let filter = text::fit(&filter, width.saturating_sub(used).max(1));
    Line::from(vec![
        mode,
        Span::raw(" filter: "),
        Span::raw(filter),
        Span::raw(" "),
        Span::raw(counts),
    ])
}

fn draw_list(frame: &mut Frame<'_>, area: Rect, app: &App, theme: Theme) {
    let rows = usize::from(area.height);
    let width = usize::from(area.width);
    if app.lines().is_empty() {
        let hint = match &app.connection {
            Connection::Connected => "waiting for lines…".to_string(),
            Connection::Connecting => "connecting…".to_string(),
            Connection::Disconnected(why) => format!("not connected: {why}"),
        };
        let line = Line::styled(format!(" {}", text::sanitize(&hint, width)), theme.dim());
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let range = app.visible_range(rows);
    let lines: Vec<Line<'_>> = app
        .lines()
        .range(range)
        .map(|line| match line {
            TailLine::Event(event) => event_line(event, theme, width),
            TailLine::Gap(missed) => Line::styled(
                format!(
                    "{:TIME_COLS$} … {missed} line{} missed …",
                    "",
                    if *missed == 1 { "" } else { "s" }
                ),
                theme.warn(),
            ),
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
}

/// `HH:MM:SS.mmm` in UTC.
pub fn clock(ts: Timestamp) -> String {
    let nanos = ts.as_nanos();
    let secs_of_day = ts.as_secs().rem_euclid(86_400);
    let millis = nanos.rem_euclid(1_000_000_000) / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60
    )
}

fn level_label(level: Option<Level>) -> &'static str {
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

fn event_line(event: &Event, theme: Theme, width: usize) -> Line<'static> {
    let stream = match event.stream {
        Some(shiplog_core::Stream::Stdout) => "out",
        Some(shiplog_core::Stream::Stderr) => "err",
        None => "",
    };
    let fixed = TIME_COLS + SERVICE_COLS + STREAM_COLS + LEVEL_COLS + 4;
    let message = text::sanitize(&event.message, width.saturating_sub(fixed));
    Line::from(vec![
        Span::styled(format!("{} ", clock(event.ts)), theme.dim()),
        Span::styled(
            format!("{} ", text::fit(&event.service, SERVICE_COLS)),
            theme.service(),
        ),
        Span::styled(format!("{stream:<STREAM_COLS$} "), theme.dim()),
        Span::styled(
            format!("{:<LEVEL_COLS$} ", level_label(event.level)),
            theme.level(event.level),
        ),
        Span::styled(message, theme.message(event.level)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::key;
    use crate::client::ClientMsg;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;
    use ratatui::style::Color;
    use shiplog_core::Stream;

    const T0: i64 = 1_767_323_045_123_000_000; // 2026-01-02T03:04:05.123Z

    fn fixture_event(
        offset_ms: i64,
        service: &str,
        stream: Stream,
        level: Option<Level>,
        message: &str,
    ) -> ClientMsg {
        let mut e = Event::log(Timestamp(T0 + offset_ms * 1_000_000), message);
        e.service = service.into();
        e.stream = Some(stream);
        e.level = level;
        ClientMsg::Event(Box::new(e))
    }

    fn fixture_messages() -> Vec<ClientMsg> {
        vec![
            fixture_event(
                0,
                "web",
                Stream::Stdout,
                Some(Level::Info),
                "GET /healthz 200 0.4ms",
            ),
            fixture_event(
                7,
                "web",
                Stream::Stdout,
                Some(Level::Debug),
                "cache hit key=user:42",
            ),
            fixture_event(
                250,
                "inference-server",
                Stream::Stderr,
                Some(Level::Warn),
                "batch queue at 90% capacity (230/256), consider adding a replica to the pool",
            ),
            fixture_event(
                1_001,
                "worker",
                Stream::Stdout,
                None,
                "picked job 9f2c\tattempt=1",
            ),
            ClientMsg::Gap(17),
            fixture_event(
                2_345,
                "inference-server",
                Stream::Stderr,
                Some(Level::Error),
                "model resnet50 v3 failed: CUDA out of memory\nTraceback...",
            ),
            fixture_event(
                60_000,
                "db",
                Stream::Stderr,
                Some(Level::Fatal),
                "terminating",
            ),
            fixture_event(
                61_000,
                "web",
                Stream::Stdout,
                Some(Level::Trace),
                "span closed",
            ),
        ]
    }

    fn fixture_app() -> App {
        let mut app = App::new("http://127.0.0.1:7070", 100_000, true);
        app.on_client(ClientMsg::Connected);
        for msg in fixture_messages() {
            app.on_client(msg);
        }
        app
    }

    fn render(app: &mut App) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        app.viewport_rows = usize::from(layout(Rect::new(0, 0, 80, 24), false).list.height);
        terminal.draw(|f| draw(f, app)).unwrap();
        terminal
    }

    #[test]
    fn formats_utc_clock_times() {
        assert_eq!(clock(Timestamp(T0)), "03:04:05.123");
        assert_eq!(clock(Timestamp(-1)), "23:59:59.999");
    }

    #[test]
    fn tail_view_follow() {
        let mut app = fixture_app();
        let terminal = render(&mut app);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn tail_view_paused_with_a_filter() {
        let mut app = App::new("http://127.0.0.1:7070", 100_000, true);
        app.on_key(key(KeyCode::Char('f')));
        for c in "NOT level:trace".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Enter));
        app.on_client(ClientMsg::Connected);
        for msg in fixture_messages() {
            app.on_client(msg);
        }
        app.on_key(key(KeyCode::Char(' ')));
        app.on_client(fixture_event(
            62_000,
            "web",
            Stream::Stdout,
            None,
            "hidden while paused",
        ));
        app.on_client(ClientMsg::Disconnected(
            "server closed the stream; retrying in 0.5s".into(),
        ));
        let terminal = render(&mut app);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn tail_view_filter_error() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('/')));
        for c in "service:web AND colour:red".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        let terminal = render(&mut app);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn tail_view_help() {
        let mut app = fixture_app();
        app.on_key(key(KeyCode::Char('?')));
        let terminal = render(&mut app);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn tail_view_empty_while_connecting() {
        let mut app = App::new("http://127.0.0.1:7070", 10, true);
        let terminal = render(&mut app);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn levels_are_coloured_unless_no_color() {
        let level_cell = |color: bool| {
            let mut app = fixture_app();
            app.color = color;
            let terminal = render(&mut app);
            // Row of the ERROR line: top bar, titles, then lines 0..=5.
            let cell = terminal.backend().buffer()[(30, 7)].clone();
            (cell.symbol().to_string(), cell.fg)
        };
        assert_eq!(level_cell(true), ("E".to_string(), Color::Red));
        assert_eq!(level_cell(false), ("E".to_string(), Color::Reset));
    }

    #[test]
    fn layout_gives_the_list_what_is_left() {
        let l = layout(Rect::new(0, 0, 80, 24), false);
        assert_eq!(
            (l.top.y, l.titles.y, l.list.y, l.list.height, l.status.y),
            (0, 1, 2, 21, 23)
        );
        let l = layout(Rect::new(0, 0, 80, 24), true);
        assert_eq!(l.list.height, 15);
        assert_eq!(l.filter, Some(Rect::new(0, 17, 80, 6)));
        // Tiny terminals do not panic.
        for h in 0..4 {
            let _ = layout(Rect::new(0, 0, 10, h), true);
        }
    }
}
