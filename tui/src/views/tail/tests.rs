use super::*;
use crate::app::tests::{key, type_text};
use crate::app::{Command, Detail};
use crate::client::ClientMsg;
use crate::views::Tab;
use crate::views::tests::{SIZES, render, screen};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::Color;
use shiplog_core::{Stream, Timestamp};

const T0: i64 = 1_767_323_045_123_000_000; // 2026-01-02T03:04:05.123Z

pub(crate) fn event(n: u64) -> ClientMsg {
    let mut e = Event::log(Timestamp(n as i64), format!("line {n}"));
    e.service = "web".into();
    e.level = Some(Level::Info);
    ClientMsg::Event(Box::new(e))
}

fn message_at(app: &App, index: usize) -> String {
    match &app.tail.lines()[index] {
        TailLine::Event(e) => e.message.to_string(),
        TailLine::Gap(n) => format!("gap {n}"),
    }
}

fn app_with(capacity: usize, rows: usize, n: u64) -> App {
    let mut app = App::new("http://x", capacity, false);
    app.tail.viewport_rows = rows;
    for i in 0..n {
        app.on_client(event(i));
    }
    app
}

#[test]
fn buffer_keeps_only_the_newest_lines() {
    let app = app_with(3, 20, 5);
    assert_eq!(app.tail.lines().len(), 3);
    assert_eq!(message_at(&app, 0), "line 2");
    assert_eq!(message_at(&app, 2), "line 4");
    assert_eq!(app.tail.evicted, 2);
    assert_eq!(app.tail.received, 5);
}

#[test]
fn pause_freezes_the_view_and_counts_new_lines() {
    let mut app = app_with(100, 2, 3);
    app.on_key(key(KeyCode::Char(' ')));
    assert!(app.tail.paused());
    assert_eq!(app.tail.cursor(), Some(2));
    for n in 3..10 {
        app.on_client(event(n));
    }
    assert_eq!(app.tail.new_while_paused, 7);
    // The screen still shows lines 1 and 2 at the bottom, and a tall screen does not grow
    // to show the new ones.
    assert_eq!(app.tail.visible_range(2), 1..3);
    assert_eq!(app.tail.visible_range(50), 0..3);
    app.on_client(ClientMsg::Gap(5));
    assert_eq!(app.tail.new_while_paused, 8);
    app.on_key(key(KeyCode::Char(' ')));
    assert!(!app.tail.paused());
    assert_eq!(app.tail.new_while_paused, 0);
    assert_eq!(app.tail.cursor(), None);
    assert_eq!(app.tail.visible_range(2), 9..11);
    assert_eq!(message_at(&app, 10), "gap 5");
    assert_eq!(app.tail.missed, 5);
}

#[test]
fn the_cursor_moves_and_scrolls_the_view() {
    let mut app = app_with(100, 4, 20);
    app.on_key(key(KeyCode::Up));
    assert_eq!(
        app.tail.cursor(),
        Some(19),
        "the first step selects the newest"
    );
    app.on_key(key(KeyCode::Char('k')));
    assert_eq!(app.tail.cursor(), Some(18));
    assert_eq!(
        app.tail.visible_range(4),
        16..20,
        "no scroll while on screen"
    );
    app.on_key(key(KeyCode::PageUp));
    assert_eq!(app.tail.cursor(), Some(15));
    assert_eq!(app.tail.visible_range(4), 15..19);
    app.on_key(key(KeyCode::Char('g')));
    assert_eq!(app.tail.cursor(), Some(0));
    assert_eq!(app.tail.visible_range(4), 0..4);
    app.on_key(key(KeyCode::Char('k')));
    assert_eq!(
        app.tail.cursor(),
        Some(0),
        "cannot go above the oldest line"
    );
    app.on_key(key(KeyCode::PageDown));
    app.on_key(key(KeyCode::Char('j')));
    app.on_key(key(KeyCode::Char('j')));
    assert_eq!(app.tail.cursor(), Some(5));
    assert_eq!(app.tail.visible_range(4), 2..6);
    app.on_client(event(20));
    assert_eq!(app.tail.new_while_paused, 1);
    app.on_key(key(KeyCode::Char('G')));
    assert_eq!(app.tail.view, View::Follow);
    assert_eq!(app.tail.visible_range(4), 17..21);
    app.on_key(key(KeyCode::Down));
    assert_eq!(
        app.tail.view,
        View::Follow,
        "down while following does nothing"
    );
}

#[test]
fn a_frozen_view_survives_eviction() {
    let mut app = app_with(5, 2, 5);
    app.on_key(key(KeyCode::Char(' ')));
    for n in 5..20 {
        app.on_client(event(n));
    }
    // The frozen bottom line was dropped; the view clamps to the oldest line kept.
    assert_eq!(app.tail.visible_range(2), 0..2);
    assert_eq!(app.tail.cursor(), Some(0));
    assert_eq!(app.tail.lines().len(), 5);
}

#[test]
fn filter_box_validates_on_every_keystroke() {
    let mut app = App::new("http://x", 10, false);
    app.on_key(key(KeyCode::Char('f')));
    assert!(app.tail.filter_edit.is_some());
    type_text(&mut app, "service:");
    let error = app
        .tail
        .filter_edit
        .as_ref()
        .unwrap()
        .error
        .clone()
        .unwrap();
    assert_eq!(error.position, 8);
    assert!(error.message.contains("expected a value"), "{error}");
    // Enter with an error keeps the box open and sends nothing.
    app.on_key(key(KeyCode::Enter));
    assert!(app.take_commands().is_empty());
    assert!(app.tail.filter_edit.is_some());
    type_text(&mut app, "web");
    assert_eq!(app.tail.filter_edit.as_ref().unwrap().error, None);
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    assert_eq!(app.tail.filter_edit.as_ref().unwrap().text(), "");
}

#[test]
fn enter_applies_the_filter_and_clears_the_buffer() {
    let mut app = App::new("http://x", 10, false);
    app.on_client(ClientMsg::Connected);
    app.on_client(event(1));
    app.on_key(key(KeyCode::Char('f')));
    type_text(&mut app, "level:error");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(
        app.take_commands(),
        vec![Command::ApplyFilter("level:error".into())]
    );
    assert_eq!(app.tail.filter(), "level:error");
    assert!(app.tail.lines().is_empty());
    assert_eq!(app.tail.received, 0);
    assert_eq!(app.connection, Connection::Connecting);
    // A stale info line from the old connection is dropped; an error line is kept.
    app.on_client(event(2));
    assert!(app.tail.lines().is_empty());
    let mut e = Event::log(Timestamp(3), "boom");
    e.level = Some(Level::Error);
    app.on_client(ClientMsg::Event(Box::new(e)));
    assert_eq!(app.tail.lines().len(), 1);
    // The same filter again does not reconnect.
    app.on_key(key(KeyCode::Char('f')));
    app.on_key(key(KeyCode::Enter));
    assert!(app.take_commands().is_empty());
}

#[test]
fn a_blank_filter_leaves_out_metric_samples_as_the_server_does() {
    let sample = || {
        let mut e = Event::log(Timestamp(1), "");
        e.kind = shiplog_core::Kind::Metric;
        e.name = Some("cpu_percent".into());
        ClientMsg::Event(Box::new(e))
    };
    let mut app = App::new("http://x", 10, false);
    app.on_client(sample());
    app.on_client(event(2));
    assert_eq!(app.tail.lines().len(), 1, "the sample is dropped");
    assert_eq!(message_at(&app, 0), "line 2");
    for everything in ["*", "kind:metric"] {
        assert!(app.tail.apply_filter(everything.into()).is_some());
        app.on_client(sample());
        assert_eq!(app.tail.lines().len(), 1, "{everything} keeps the sample");
    }
}

#[test]
fn esc_cancels_the_filter_edit() {
    let mut app = App::new("http://x", 10, false);
    app.on_key(key(KeyCode::Char('f')));
    type_text(&mut app, "q?");
    assert_eq!(app.tail.filter_edit.as_ref().unwrap().text(), "q?");
    assert!(!app.should_quit && app.help.is_none());
    app.on_key(key(KeyCode::Esc));
    assert!(app.tail.filter_edit.is_none());
    assert_eq!(app.tail.filter(), "");
    assert!(app.take_commands().is_empty());
}

#[test]
fn slash_highlights_and_n_finds_matches() {
    let mut app = app_with(100, 5, 30);
    app.on_key(key(KeyCode::Char('/')));
    type_text(&mut app, "LINE 2");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.tail.highlight, "LINE 2");
    // Searching back from the newest: line 29 is the first match.
    assert_eq!(app.tail.cursor(), Some(29));
    app.on_key(key(KeyCode::Char('n')));
    assert_eq!(app.tail.cursor(), Some(28));
    app.on_key(key(KeyCode::Char('N')));
    assert_eq!(app.tail.cursor(), Some(29));
    app.on_key(key(KeyCode::Char('N')));
    assert!(app.notice.as_deref().unwrap().contains("no more lines"));
    let spans = highlighted("a Line 2 and line 2", "line 2", Style::new(), Style::new());
    let texts: Vec<&str> = spans.iter().map(|s| s.content.as_ref()).collect();
    assert_eq!(texts, ["a ", "Line 2", " and ", "line 2"]);
}

#[test]
fn enter_opens_the_detail_and_y_copies() {
    let mut app = app_with(100, 5, 3);
    app.on_key(key(KeyCode::Char('k')));
    app.on_key(key(KeyCode::Char('k')));
    app.on_key(key(KeyCode::Enter));
    let detail: &Detail = app.detail.as_ref().unwrap();
    assert!(
        detail
            .lines
            .iter()
            .any(|l| l.contains("\"message\": \"line 1\""))
    );
    app.on_key(key(KeyCode::Esc));
    app.on_key(key(KeyCode::Char('y')));
    assert_eq!(app.take_commands(), vec![Command::Copy("line 1".into())]);
}

fn fixture_event(
    offset_ms: i64,
    service: &str,
    stream: Stream,
    level: Option<Level>,
    message: &str,
) -> ClientMsg {
    let mut e = Event::log(Timestamp(T0 + offset_ms * 1_000_000), message);
    e.service = service.into();
    e.node = "node-a".into();
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
            "batch queue at 90% capacity (230/256), consider adding a replica to the pool before the queue fills up and requests are shed",
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

pub(crate) fn fixture_app() -> App {
    let mut app = App::new("http://127.0.0.1:7070", 100_000, true);
    app.clock.now = Timestamp(T0 + 62_000_000_000);
    app.on_client(ClientMsg::Connected);
    for msg in fixture_messages() {
        app.on_client(msg);
    }
    app
}

/// Snapshots the app at both sizes under `name`.
fn snapshot(app: &mut App, name: &str) {
    for (w, h) in SIZES {
        let terminal = render(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), terminal.backend());
    }
}

#[test]
fn tail_view_follow() {
    snapshot(&mut fixture_app(), "tail_follow");
}

#[test]
fn tail_view_paused_with_a_filter_wrapped_and_highlighted() {
    let mut app = App::new("http://127.0.0.1:7070", 100_000, true);
    app.on_key(key(KeyCode::Char('f')));
    type_text(&mut app, "NOT level:trace");
    app.on_key(key(KeyCode::Enter));
    app.on_client(ClientMsg::Connected);
    for msg in fixture_messages() {
        app.on_client(msg);
    }
    app.on_key(key(KeyCode::Char('/')));
    type_text(&mut app, "queue");
    app.on_key(key(KeyCode::Enter));
    app.on_key(key(KeyCode::Char('w')));
    app.on_client(fixture_event(
        62_000,
        "web",
        Stream::Stdout,
        None,
        "hidden while paused",
    ));
    snapshot(&mut app, "tail_paused_filter_wrap_highlight");
}

#[test]
fn tail_view_disconnected_keeps_the_lines() {
    let mut app = fixture_app();
    app.on_client(ClientMsg::Disconnected(
        "server closed the stream; retrying in 0.5s".into(),
    ));
    snapshot(&mut app, "tail_disconnected");
}

#[test]
fn tail_view_local_time() {
    let mut app = fixture_app();
    app.clock.local_offset_secs = 3600;
    app.on_key(key(KeyCode::Char('u')));
    let terminal = render(&mut app, 80, 24);
    let text = screen(&terminal);
    assert!(text.contains("TIME +01:00"), "{text}");
    assert!(text.contains("04:04:05.123"), "{text}");
}

#[test]
fn tail_view_filter_error() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('f')));
    type_text(&mut app, "service:web AND colour:red");
    snapshot(&mut app, "tail_filter_error");
}

#[test]
fn tail_view_help() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('?')));
    snapshot(&mut app, "tail_help");
}

#[test]
fn tail_view_detail() {
    let mut app = fixture_app();
    app.on_key(key(KeyCode::Char('k')));
    app.on_key(key(KeyCode::Char('k')));
    app.on_key(key(KeyCode::Enter));
    snapshot(&mut app, "tail_detail");
}

#[test]
fn tail_view_empty_while_connecting() {
    let mut app = App::new("http://127.0.0.1:7070", 10, true);
    snapshot(&mut app, "tail_connecting");
}

#[test]
fn levels_are_coloured_unless_no_color() {
    let level_cell = |color: bool| {
        let mut app = fixture_app();
        app.color = color;
        let terminal = render(&mut app, 80, 24);
        // Row of the ERROR line: tab bar, titles, then lines 0..=5; under LEVEL.
        let titles = screen(&terminal).lines().nth(1).unwrap_or("").to_string();
        let x = titles.find("LEVEL").expect("a LEVEL column") as u16;
        let cell = terminal.backend().buffer()[(x, 7)].clone();
        (cell.symbol().to_string(), cell.fg)
    };
    assert_eq!(level_cell(true), ("E".to_string(), Color::Red));
    assert_eq!(level_cell(false), ("E".to_string(), Color::Reset));
}

#[test]
fn no_color_leaves_no_colour_anywhere() {
    let mut app = fixture_app();
    app.color = false;
    for tab in Tab::ALL {
        app.tab = tab;
        let terminal = render(&mut app, 80, 24);
        for cell in terminal.backend().buffer().content() {
            assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{tab:?}");
        }
    }
}

#[test]
fn metric_samples_and_registrations_say_what_they_are() {
    let mut e = Event::log(Timestamp(0), "");
    e.kind = shiplog_core::Kind::Metric;
    e.name = Some("cpu_percent".into());
    e.value = Some(12.345);
    e.unit = Some("percent".into());
    assert_eq!(summary(&e), "[metric] cpu_percent=12.35 percent");
    e.kind = shiplog_core::Kind::Registration;
    e.container_name = "api-1".into();
    e.state = Some(shiplog_core::RegistrationState::Died);
    e.exit_code = Some(137);
    assert_eq!(summary(&e), "[registration] api-1 died exit 137");
}

#[test]
fn layout_gives_the_list_what_is_left() {
    let l = layout(Rect::new(0, 1, 80, 22), 0);
    assert_eq!((l.titles.y, l.list.y, l.list.height), (1, 2, 21));
    let l = layout(Rect::new(0, 1, 80, 22), filter_box::HEIGHT);
    assert_eq!(l.list.height, 14);
    assert_eq!(l.input, Some(Rect::new(0, 16, 80, 7)));
    for h in 0..4 {
        let _ = layout(Rect::new(0, 0, 10, h), filter_box::HEIGHT);
    }
}

#[test]
fn a_gap_event_of_lines_lost_at_their_source_stands_out_and_is_counted() {
    let mut app = app_with(100, 20, 2);
    let mut gap = Event::log(
        Timestamp(T0),
        "shiplog: about 6672 lines written between … were deleted by Docker's log rotation",
    );
    gap.service = "web".into();
    gap.level = Some(Level::Warn);
    gap.fields.insert(
        shiplog_core::GAP_FIELD.into(),
        serde_json::json!({"lines_estimate": 6672, "after": "x", "before": "y", "reason": "rotated"}),
    );
    app.on_client(ClientMsg::Event(Box::new(gap)));
    assert_eq!((app.tail.source_gaps, app.tail.lost_at_source), (1, 6672));
    let terminal = render(&mut app, 120, 12);
    let text = screen(&terminal);
    assert!(text.contains("~6672 lost at source (1 gap)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("deleted by Docker"))
        .unwrap();
    assert!(row.contains(" GAP "), "{row}");
    // A plain warning is no gap.
    let mut warn = Event::log(Timestamp(T0 + 1), "disk almost full");
    warn.level = Some(Level::Warn);
    app.on_client(ClientMsg::Event(Box::new(warn)));
    assert_eq!(app.tail.source_gaps, 1);
}

#[test]
fn help_says_n_goes_up_to_older_matches_and_shift_n_down_to_newer() {
    let help = |k: &str| {
        KEYS.iter()
            .find(|(key, _)| *key == k)
            .map(|(_, what)| *what)
            .unwrap_or_else(|| panic!("no help line for {k}"))
    };
    assert!(help("n").contains("above (older)"), "{}", help("n"));
    assert!(help("N").contains("below (newer)"), "{}", help("N"));
    // And the keys do what the help says.
    let mut app = app_with(100, 5, 30);
    app.on_key(key(KeyCode::Char('/')));
    type_text(&mut app, "LINE 2");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.tail.cursor(), Some(29));
    app.on_key(key(KeyCode::Char('n')));
    assert_eq!(app.tail.cursor(), Some(28), "n selects the line above");
    app.on_key(key(KeyCode::Char('N')));
    assert_eq!(app.tail.cursor(), Some(29), "N selects the line below");
}

#[test]
fn service_names_are_not_cut_when_the_terminal_has_room() {
    let mut app = fixture_app();
    let shown = screen(&render(&mut app, 160, 48));
    assert!(
        shown.contains("node-a       inference-server err WARN"),
        "{shown}"
    );
    assert!(shown.contains("SERVICE          STR"), "{shown}");
    // On 80 columns the message keeps the room: at most a sixth goes to SERVICE.
    let shown = screen(&render(&mut app, 80, 24));
    assert!(shown.contains(" inference-se… err WARN"), "{shown}");
    // A new filter starts the width over from the lines it brings.
    app.on_key(key(KeyCode::Char('f')));
    type_text(&mut app, "service:web");
    app.on_key(key(KeyCode::Enter));
    app.on_client(event(1));
    let shown = screen(&render(&mut app, 160, 48));
    assert!(shown.contains("SERVICE STR"), "{shown}");
    assert!(shown.contains(" web         INFO  line 1"), "{shown}");
}
