//! shiplog's terminal UI, a client of the query API only.
//!
//! Data moves one way, split the way gitui and bottom split it:
//!
//! - [`client`] runs a background thread that follows `GET /api/v1/tail` as Server-Sent
//!   Events (decoded by [`sse`]) and sends [`ClientMsg`](client::ClientMsg)s over a bounded
//!   channel. It reconnects with backoff and when the filter changes.
//! - [`app::App`] is the state: a bounded ring buffer of lines, follow/paused, the filter box,
//!   the help overlay. It changes only through `on_key` and `on_client`, and does no I/O.
//! - [`views`] draw an `&App` with ratatui; [`widgets`] hold the pieces they share and
//!   [`theme`] the styles (with `NO_COLOR` honoured).
//! - [`terminal`] enters raw mode and the alternate screen and restores them on quit, on
//!   error and on panic.
//!
//! [`run`] ties them together: it polls the keyboard with a short timeout, drains the client
//! channel, and redraws when something changed, so the screen never waits on the network.

pub mod app;
pub mod client;
pub mod error;
pub mod sse;
pub mod terminal;
pub mod theme;
pub mod views;
pub mod widgets;

use std::time::{Duration, Instant};

use crossbeam_channel::TryRecvError;
use ratatui::crossterm::event::{self, Event as InputEvent};

pub use error::{Result, TuiError};

use app::{App, Command, Connection};
use client::{ClientConfig, ClientMsg};

/// How long to wait for a key before looking at the client channel again.
const INPUT_POLL: Duration = Duration::from_millis(50);
/// Most client messages handled between two frames, so keys stay responsive under load.
const MAX_MESSAGES_PER_FRAME: usize = 5_000;
/// Redraw at least this often even when nothing changed (clock-free, but cheap insurance
/// against a terminal that lost our output).
const TICK: Duration = Duration::from_secs(1);

/// How to reach the server and how much to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuiOptions {
    /// Base URL of the query API, e.g. `http://127.0.0.1:7070`.
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer <token>`, when the server wants one.
    pub token: Option<String>,
    /// Most lines kept in memory; the oldest are dropped first.
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

/// Runs the terminal UI until the user quits; restores the terminal on quit, on Ctrl-C and on panic.
pub fn run(options: TuiOptions) -> Result<()> {
    let client = client::spawn(ClientConfig {
        url: options.url.clone(),
        token: options.token.clone(),
        filter: String::new(),
    })?;
    let mut app = App::new(
        options.url,
        options.buffer_lines,
        theme::Theme::color_from_env(),
    );
    let mut guard = terminal::enter()?;
    let result = event_loop(&mut guard, &mut app, &client);
    drop(guard);
    // The client thread notices the dropped handle within one read timeout and exits; we do
    // not wait for it so quitting is instant.
    drop(client);
    result
}

fn event_loop(
    guard: &mut terminal::TerminalGuard,
    app: &mut App,
    client: &client::ClientHandle,
) -> Result<()> {
    let mut dirty = true;
    let mut last_draw = Instant::now();
    loop {
        if dirty || last_draw.elapsed() >= TICK {
            let size = guard.terminal.size()?;
            let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
            app.viewport_rows = usize::from(
                views::tail::layout(area, app.filter_edit.is_some())
                    .list
                    .height,
            );
            guard.terminal.draw(|frame| views::tail::draw(frame, app))?;
            last_draw = Instant::now();
            dirty = false;
        }

        if event::poll(INPUT_POLL)? {
            // Take every input that is already waiting, then draw once.
            loop {
                match event::read()? {
                    InputEvent::Key(key) => {
                        if let Some(Command::ApplyFilter(filter)) = app.on_key(key) {
                            client.set_filter(filter);
                        }
                        dirty = true;
                    }
                    InputEvent::Resize(..) => dirty = true,
                    _ => {}
                }
                if app.should_quit {
                    return Ok(());
                }
                if !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }

        for _ in 0..MAX_MESSAGES_PER_FRAME {
            match client.rx.try_recv() {
                Ok(msg) => {
                    app.on_client(msg);
                    dirty = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let why = "client thread stopped unexpectedly; restart shiplog tui";
                    if app.connection != Connection::Disconnected(why.into()) {
                        app.on_client(ClientMsg::Disconnected(why.into()));
                        dirty = true;
                    }
                    break;
                }
            }
        }
    }
}
