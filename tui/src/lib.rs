//! shiplog's terminal UI, a client of the query API only.
//!
//! Data moves one way, split the way gitui and bottom split it:
//!
//! - [`client`] runs a background thread that follows `GET /api/v1/tail` as Server-Sent
//!   Events (decoded by [`sse`]) and sends [`ClientMsg`](client::ClientMsg)s over a bounded
//!   channel. It reconnects with backoff and when the filter changes.
//! - [`fetch`] runs two worker threads for request/answer calls (search, aggregate,
//!   services, metrics, predictions, alerts, silences), decoded tolerantly by [`api`].
//! - An input thread reads the keyboard and mouse.
//! - [`app::App`] is the state: the active view and each view's state (in [`views`]), the
//!   overlays, the connection. It changes only through `on_key`, `on_mouse`, `on_client`,
//!   `on_reply` and `tick`, and does no I/O: it hands back [`Command`](app::Command)s.
//! - [`views`] draw an `&App` with ratatui; [`widgets`] hold the pieces they share and
//!   [`theme`] the styles (with `NO_COLOR` honoured).
//! - [`terminal`] enters raw mode, the alternate screen and mouse capture, and restores them
//!   on quit, on error and on panic.
//!
//! [`event_loop`] ties them together: it waits on input, tail messages, answers and a
//! timer at once, redraws at most [`FRAME`] apart while data streams in and at once after a
//! key, so the screen never waits on the network.

pub mod api;
pub mod app;
pub mod client;
pub mod clipboard;
pub mod clock;
pub mod edit;
pub mod error;
pub mod fetch;
pub mod refresh;
pub mod sse;
pub mod terminal;
pub mod theme;
pub mod views;
pub mod widgets;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, select};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self, Event as InputEvent};
use ratatui::layout::Rect;
use shiplog_core::Timestamp;

pub use error::{Result, TuiError};

use app::{App, Command, Connection};
use client::{ClientConfig, ClientMsg};
use fetch::{FetchError, Reply, Request};

/// Shortest time between two redraws caused by arriving data (60 per second at most);
/// keys redraw at once.
pub const FRAME: Duration = Duration::from_millis(16);
/// Most tail messages handled between two frames, so keys stay responsive under load.
const MAX_MESSAGES_PER_FRAME: usize = 1_000;
/// How often views are asked whether a refresh is due, and the clock moves.
const TICK: Duration = Duration::from_millis(250);
/// Redraw at least this often even when nothing changed (ages and uptimes move).
const IDLE_REDRAW: Duration = Duration::from_secs(1);
/// How long the input thread waits for an event before checking whether to stop.
const INPUT_POLL: Duration = Duration::from_millis(100);

/// How to reach the server and how much to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuiOptions {
    /// Base URL of the query API, e.g. `http://127.0.0.1:7070`.
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer <token>`, when the server wants one.
    pub token: Option<String>,
    /// Most tail lines kept in memory; the oldest are dropped first.
    pub buffer_lines: usize,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            url: "http://127.0.0.1:7070".into(),
            token: None,
            buffer_lines: 100_000,
        }
    }
}

/// Runs the terminal UI until the user quits; restores the terminal on quit, on Ctrl-C, on
/// panic and on SIGTERM, SIGINT, SIGHUP or SIGQUIT (after which the process ends by that
/// signal).
pub fn run(options: TuiOptions) -> Result<()> {
    // Read before any thread starts: the time crate refuses afterwards.
    let offset = clock::Clock::system_offset_secs();
    let client = client::spawn(ClientConfig {
        url: options.url.clone(),
        token: options.token.clone(),
        filter: String::new(),
    })?;
    let fetch = fetch::spawn(&options.url, options.token.as_deref())?;
    let mut app = App::new(
        options.url,
        options.buffer_lines,
        theme::Theme::color_from_env(),
    );
    app.clock.local_offset_secs = offset;
    // Watch for termination signals before the terminal changes, so a `kill` at any moment
    // after that goes through the normal way out and the terminal is restored.
    let signals = spawn_signal_watch()?;
    let mut guard = terminal::enter()?;
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(stop.clone())?;
    let mut copy = |text: &str| {
        // Best effort: a terminal without OSC 52 ignores it.
        let _ = clipboard::copy(&mut std::io::stdout(), text);
    };
    let links = Links {
        input: &input,
        tail: &client.rx,
        replies: &fetch.rx,
        requests: &fetch.tx,
        set_filter: &|f| client.set_filter(f),
        copy: &mut copy,
        signals: &signals.rx,
    };
    let result = event_loop(&mut guard.terminal, &mut app, links, &mut ());
    stop.store(true, Ordering::SeqCst);
    drop(guard);
    // The threads notice the dropped handles (and the stop flag) on their own; we do not
    // wait for them so quitting is instant.
    drop(client);
    drop(fetch);
    if let Some(signal) = app.stopped_by_signal {
        // Die of the signal as if we had not caught it, so the parent sees how we ended
        // (a shell reports 143 for SIGTERM), now that the terminal is back.
        signals.handle.close();
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    result
}

/// Termination signals forwarded to the event loop, and the handle that stops watching.
struct SignalWatch {
    rx: Receiver<i32>,
    handle: signal_hook::iterator::Handle,
}

/// Catches SIGTERM, SIGINT, SIGHUP and SIGQUIT on a thread of their own and forwards
/// them to the loop, which quits the normal way: raw mode and the alternate screen would
/// otherwise outlive a `kill` and leave the user's terminal unusable.
fn spawn_signal_watch() -> Result<SignalWatch> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGQUIT])
        .map_err(TuiError::Signals)?;
    let handle = signals.handle();
    // One is enough to quit; a full channel drops the rest.
    let (tx, rx) = crossbeam_channel::bounded(4);
    std::thread::Builder::new()
        .name("shiplog-tui-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = tx.try_send(signal);
            }
        })
        .map_err(TuiError::Thread)?;
    Ok(SignalWatch { rx, handle })
}

/// Reads terminal events on a thread of its own, so the loop can wait on them and on data
/// at the same time.
fn spawn_input(stop: Arc<AtomicBool>) -> Result<Receiver<InputEvent>> {
    let (tx, rx) = crossbeam_channel::bounded(1024);
    std::thread::Builder::new()
        .name("shiplog-tui-input".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match event::poll(INPUT_POLL) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(_) => return,
                }
                let Ok(ev) = event::read() else {
                    return;
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
        })
        .map_err(TuiError::Thread)?;
    Ok(rx)
}

/// The channels the loop waits on and the ways it acts on the world.
pub struct Links<'a> {
    /// Keyboard, mouse and resize events.
    pub input: &'a Receiver<InputEvent>,
    /// Messages of the tail thread.
    pub tail: &'a Receiver<ClientMsg>,
    /// Answers of the fetch workers.
    pub replies: &'a Receiver<Reply>,
    /// Requests to the fetch workers.
    pub requests: &'a Sender<Request>,
    /// Reopens the tail with a new filter.
    pub set_filter: &'a dyn Fn(String),
    /// Puts text on the clipboard.
    pub copy: &'a mut dyn FnMut(&str),
    /// Termination signals (SIGTERM, SIGINT, ...): the loop records the first in
    /// [`App::stopped_by_signal`] and returns.
    pub signals: &'a Receiver<i32>,
}

/// Watches the loop, for the headless benchmark; `()` watches nothing.
pub trait Probe {
    /// An input event was handled.
    fn input_handled(&mut self) {}
    /// A frame was drawn.
    fn drawn(&mut self) {}
}

impl Probe for () {}

/// Sizes the views for the next frame (the rows paging keys move by, how far the detail
/// scrolls).
pub fn prepare_frame(app: &mut App, area: Rect) {
    let body = views::chrome(area).body;
    app.body_rows = usize::from(body.height);
    let tail = views::tail::layout(body, views::tail::input_height(&app.tail));
    app.tail.viewport_rows = usize::from(tail.list.height).max(1);
    if let Some(detail) = &mut app.detail {
        let width = usize::from(widgets::detail::inner(body).width);
        detail.rows = widgets::detail::rows(&detail.lines, width).len();
        detail.scroll = detail.scroll.min(detail.rows.saturating_sub(1));
    }
}

/// Runs until the user quits: waits on input, data, answers and a timer, applies them to
/// `app`, carries out its commands and redraws.
pub fn event_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut links: Links<'_>,
    probe: &mut dyn Probe,
) -> Result<()>
where
    TuiError: From<B::Error>,
{
    let mut dirty = true;
    let mut urgent = true;
    let mut last_draw: Option<Instant> = None;
    let mut last_tick: Option<Instant> = None;
    let mut tail_alive = true;
    loop {
        let now = Instant::now();
        if last_tick.is_none_or(|t| now - t >= TICK) {
            app.tick(now, Timestamp::now());
            last_tick = Some(now);
            run_commands(app, &mut links, now);
        }
        let since_draw = last_draw.map_or(Duration::MAX, |t| now - t);
        if (dirty && (urgent || since_draw >= FRAME)) || since_draw >= IDLE_REDRAW {
            let size = terminal.size()?;
            prepare_frame(app, Rect::new(0, 0, size.width, size.height));
            terminal.draw(|frame| views::draw(frame, app))?;
            last_draw = Some(Instant::now());
            dirty = false;
            urgent = false;
            probe.drawn();
        }
        let since_draw = last_draw.map_or(Duration::ZERO, |t| t.elapsed());
        let since_tick = last_tick.map_or(Duration::ZERO, |t| t.elapsed());
        let timeout = if dirty {
            FRAME.saturating_sub(since_draw)
        } else {
            IDLE_REDRAW
                .saturating_sub(since_draw)
                .min(TICK.saturating_sub(since_tick))
        };
        let never = crossbeam_channel::never();
        let tail_rx = if tail_alive { links.tail } else { &never };
        select! {
            recv(links.input) -> ev => {
                let Ok(ev) = ev else {
                    return Err(TuiError::Terminal(std::io::Error::other(
                        "the input thread stopped",
                    )));
                };
                on_input(app, ev);
                probe.input_handled();
                // Take every input that is already waiting, then draw once.
                while let Ok(ev) = links.input.try_recv() {
                    on_input(app, ev);
                    probe.input_handled();
                }
                dirty = true;
                urgent = true;
            }
            recv(tail_rx) -> msg => match msg {
                Ok(msg) => {
                    app.on_client(msg);
                    for msg in links.tail.try_iter().take(MAX_MESSAGES_PER_FRAME) {
                        app.on_client(msg);
                    }
                    dirty = true;
                }
                Err(_) => {
                    tail_alive = false;
                    let why = "tail thread stopped unexpectedly; restart shiplog tui";
                    app.on_client(ClientMsg::Disconnected(why.into()));
                    dirty = true;
                }
            },
            recv(links.replies) -> reply => {
                if let Ok(reply) = reply {
                    app.on_reply(reply, Instant::now());
                    dirty = true;
                }
            }
            recv(links.signals) -> signal => {
                if let Ok(signal) = signal {
                    app.stopped_by_signal = Some(signal);
                    return Ok(());
                }
            }
            default(timeout) => {}
        }
        if app.should_quit {
            return Ok(());
        }
        run_commands(app, &mut links, Instant::now());
    }
}

fn on_input(app: &mut App, ev: InputEvent) {
    match ev {
        InputEvent::Key(key) => app.on_key(key),
        InputEvent::Mouse(mouse) => app.on_mouse(mouse),
        _ => {}
    }
}

fn run_commands(app: &mut App, links: &mut Links<'_>, now: Instant) {
    for command in app.take_commands() {
        match command {
            Command::ApplyFilter(filter) => {
                app.connection = Connection::Connecting;
                (links.set_filter)(filter);
            }
            Command::Fetch(request) => match links.requests.try_send(request) {
                Ok(()) => {}
                // Answer it ourselves so the view does not wait forever.
                Err(TrySendError::Full(request)) => {
                    let result = Err(FetchError::Connection("request queue is full".into()));
                    app.on_reply(Reply { request, result }, now);
                }
                Err(TrySendError::Disconnected(request)) => {
                    let why = "request threads stopped; restart shiplog tui";
                    let result = Err(FetchError::Connection(why.into()));
                    app.on_reply(Reply { request, result }, now);
                }
            },
            Command::Copy(text) => (links.copy)(&text),
        }
    }
}
