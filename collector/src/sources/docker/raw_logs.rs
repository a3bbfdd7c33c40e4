//! A container's log read straight from the engine's Unix socket: one HTTP/1.0 request,
//! then the body as the engine writes it, until the engine closes the connection.
//!
//! Why not bollard's log stream for this one endpoint: it hands over one frame at a time
//! through hyper's connection task and body channel, so every log line costs two task
//! wakeups, and at a few lines per burst often a socket read of its own. Here one read
//! takes whatever the engine has written (up to [`READ_BYTES`]), every complete frame in it
//! is handled in one go. HTTP/1.0 keeps the body free of chunk framing: it ends when the
//! connection does.
//!
//! A busy stream is read on a clock, not on readiness. While a socket is registered with
//! the runtime's poller, every write the engine makes to it (one per log line) can wake the
//! collector's thread; a hundred containers writing bursts every 100 ms made about 1,500
//! wakeups a second, and those, not the lines, were most of the collector's CPU. So once a
//! read brings lines, the socket leaves the poller and is read every [`READ_TICK`], on a
//! grid shared by every stream, so one wakeup reads all of them. A stream that brings
//! nothing for [`IDLE_TICKS`] ticks goes back to the poller and wakes the thread only when
//! the engine writes again, so quiet containers cost nothing. A backlog ([`BACKLOG_BYTES`]
//! or more within about a tick, in one read or in many small ones: the engine sends a
//! stored log one line per write, and reads that keep up with it stay small) is read on
//! readiness too: on the clock, a stream would be read one buffer a tick, and a full socket
//! would hold the engine up between ticks.
//!
//! Only multiplexed logs (containers without a TTY) are read this way. A TTY container's log
//! is one raw byte stream: without HTTP/1.1's chunks, the boundaries between the engine's
//! entries (each behind its own timestamp) would be lost, and a partial line's continuation
//! could not be told from text. Those, and everything else (inspect, events, stats, and
//! engines reached over TCP), still go through bollard.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shiplog_core::{Stream, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Room made for each read: a busy stream's backlog comes in reads of about this size.
pub(super) const READ_BYTES: usize = 64 * 1024;
/// Room a stream starts with, enough for a burst of lines: a buffer grows to
/// [`READ_BYTES`] only when a read fills it, so a hundred live containers do not each hold
/// a backlog's worth of memory.
const FIRST_READ_BYTES: usize = 8 * 1024;
/// How often a busy stream is read. A line on a busy stream waits at most this long before
/// it is read (a line on a quiet stream is read at once); every busy stream is read in the
/// same wakeup.
pub(super) const READ_TICK: Duration = Duration::from_millis(20);
/// A read of at least this much means a backlog (stored logs, or a program writing faster
/// than a tick): the stream is then read as fast as the engine writes, not on the clock.
/// So does this much read within about a tick in smaller reads ([`RecentBytes`]).
const BACKLOG_BYTES: usize = 16 * 1024;
/// Empty ticks after which a stream is quiet: it goes back to waiting for the engine to
/// write (half a second at 20 ms).
pub(super) const IDLE_TICKS: u32 = 25;
/// Longest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest error body kept for the message.
const MAX_ERROR_BYTES: usize = 4 * 1024;
/// Largest frame accepted. The engine splits log lines at 16 KiB, so a frame is far
/// smaller; a size beyond this means the stream is not what we think it is.
const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of a multiplexed frame header: stream type, three zero bytes, big-endian size.
const FRAME_HEADER: usize = 8;

/// Why a raw log stream could not be opened or read on.
#[derive(Debug, thiserror::Error)]
pub(super) enum RawLogsError {
    /// The socket could not be reached or the connection broke.
    #[error("engine socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The engine answered with an error status (no such container, say).
    #[error("engine answered {status}: {message}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The answer is not an HTTP response, or its body not a log stream.
    #[error("engine sent something that is not a log stream: {0}")]
    Protocol(String),
}

/// The path of the engine's Unix socket for `host` (a `unix://` address, or none for
/// `DOCKER_HOST` and then the default socket); `None` when the engine is reached another
/// way, which the raw reader does not handle.
pub(super) fn socket_path(host: Option<&str>) -> Option<PathBuf> {
    let env = std::env::var("DOCKER_HOST").ok();
    match host.or(env.as_deref()) {
        None => Some(PathBuf::from("/var/run/docker.sock")),
        Some(address) => address
            .strip_prefix("unix://")
            .filter(|path| !path.is_empty())
            .map(PathBuf::from),
    }
}

/// Which part of a container's log to ask the engine for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogQuery {
    /// Docker's `since`: Unix seconds, inclusive; 0 for all of it.
    pub since: i32,
    /// Keep the stream open and send lines as they are written.
    pub follow: bool,
    /// Only the last this many entries (before `since` applies); `None` for all.
    pub tail: Option<u32>,
    /// Exact bounds, when only the entries between two of Docker's times are wanted (both
    /// inclusive): the socket reader asks for them to the nanosecond, the client (whose
    /// `since` and `until` are whole seconds) for the seconds around them.
    pub between: Option<(Timestamp, Timestamp)>,
}

impl LogQuery {
    /// The log from `since` on, followed.
    pub(super) fn follow(since: i32) -> Self {
        LogQuery {
            since,
            follow: true,
            tail: None,
            between: None,
        }
    }

    /// The stored entries from `after` to `before` (Docker's times, both included), not
    /// followed.
    pub(super) fn between(after: Timestamp, before: Timestamp) -> Self {
        LogQuery {
            since: super::docker_since(after),
            follow: false,
            tail: None,
            between: Some((after, before)),
        }
    }

    /// Docker's `until` in whole seconds (rounded up, so `before` is included); 0: none.
    pub(super) fn until_secs(&self) -> i32 {
        self.between.map_or(0, |(_, before)| {
            super::docker_since(before.offset(NANOS_PER_SEC - 1))
        })
    }

    /// The query string of the engine's logs endpoint, with timestamps and both streams.
    fn query_string(&self) -> String {
        let tail = self
            .tail
            .map_or_else(|| "all".to_string(), |n| n.to_string());
        match self.between {
            None => format!(
                "follow={}&stdout=1&stderr=1&timestamps=1&since={}&tail={tail}",
                u8::from(self.follow),
                self.since
            ),
            Some((after, before)) => format!(
                "follow={}&stdout=1&stderr=1&timestamps=1&since={}&until={}&tail={tail}",
                u8::from(self.follow),
                exact_seconds(after),
                exact_seconds(before),
            ),
        }
    }
}

/// Nanoseconds in a second.
const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Docker's time as the engine's `since`/`until` take it to the nanosecond: `<secs>.<9 digits>`.
fn exact_seconds(ts: Timestamp) -> String {
    let ts = ts.as_nanos().max(0);
    format!("{}.{:09}", ts / NANOS_PER_SEC, ts % NANOS_PER_SEC)
}

/// The connection, as it is read now.
#[derive(Debug)]
enum Conn {
    /// Registered with the runtime's poller: a read waits for the engine to write.
    Waiting(UnixStream),
    /// Out of the poller, read every [`READ_TICK`]; `empty` counts reads in a row that found
    /// nothing.
    Ticking {
        stream: std::os::unix::net::UnixStream,
        empty: u32,
    },
    /// Only while moving between the two (a failed move leaves it here, and reads fail).
    Moving,
}

/// Bytes read lately, each read's weight halving every [`READ_TICK`]: about what the last
/// tick or two brought, whatever the size of the reads.
#[derive(Debug, Default, Clone, Copy)]
struct RecentBytes {
    bytes: f64,
    at: Option<Instant>,
}

impl RecentBytes {
    /// Counts a read of `read` bytes at `now`; returns the weighted total, `read` included.
    fn add(&mut self, read: usize, now: Instant) -> usize {
        let since = self
            .at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let halvings = since.as_secs_f64() / READ_TICK.as_secs_f64();
        self.bytes = self.bytes * 0.5f64.powf(halvings) + read as f64;
        self.at = Some(now);
        self.bytes as usize
    }
}

/// The next instant on the grid of [`READ_TICK`] every stream shares, so the streams read
/// on the clock are read in one wakeup.
fn next_tick() -> tokio::time::Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let tick = READ_TICK.as_nanos();
    let ticks = origin.elapsed().as_nanos() / tick + 1;
    let offset = Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX));
    tokio::time::Instant::from_std(origin + offset)
}

/// One container's log as it is read.
#[derive(Debug)]
pub(super) struct RawLogs {
    path: PathBuf,
    conn: Conn,
    /// Bytes read and not handled yet are `buf[start..end]`. The whole of `buf` is
    /// initialised once, so a read on the clock needs no zeroing first.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Whether the last read filled all the room it had.
    filled: bool,
    /// What reads on readiness brought lately: a backlog the engine sends in small writes
    /// keeps the stream off the clock.
    recent: RecentBytes,
    /// Whether log bytes came in with the response head and were not handed out yet: the
    /// next [`RawLogs::fill`] returns at once for them. Under load the engine's head and
    /// its first frames share one read; waiting for more bytes first would keep a log that
    /// then goes quiet (a running container's history) held forever.
    unread: bool,
}

impl RawLogs {
    /// Asks the engine at `socket` for the part of container `id`'s log that `query` names,
    /// with timestamps.
    pub(super) async fn open(
        socket: &Path,
        id: &str,
        query: &LogQuery,
    ) -> Result<Self, RawLogsError> {
        let io = |source| RawLogsError::Io {
            path: socket.to_path_buf(),
            source,
        };
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(RawLogsError::Protocol(format!(
                "container id {id:?} cannot be put in a request path"
            )));
        }
        let mut stream = UnixStream::connect(socket).await.map_err(io)?;
        let request = format!(
            "GET /containers/{id}/logs?{} HTTP/1.0\r\nHost: docker\r\nUser-Agent: shiplog\r\n\r\n",
            query.query_string()
        );
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut logs = RawLogs {
            path: socket.to_path_buf(),
            conn: Conn::Waiting(stream),
            buf: vec![0; FIRST_READ_BYTES],
            start: 0,
            end: 0,
            filled: false,
            recent: RecentBytes::default(),
            unread: false,
        };
        logs.read_head().await?;
        Ok(logs)
    }

    /// Reads up to the end of the response head and checks the status.
    async fn read_head(&mut self) -> Result<(), RawLogsError> {
        let end = loop {
            if let Some(at) = memchr::memmem::find(&self.buf[..self.end], b"\r\n\r\n") {
                break at + 4;
            }
            if self.end > MAX_HEAD_BYTES {
                return Err(RawLogsError::Protocol(format!(
                    "no end of the response head in {MAX_HEAD_BYTES} bytes"
                )));
            }
            if !self.fill().await? {
                return Err(RawLogsError::Protocol(
                    "connection closed before the response head ended".into(),
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let status = head
            .lines()
            .next()
            .filter(|line| line.starts_with("HTTP/1."))
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| {
                RawLogsError::Protocol(format!(
                    "not an HTTP status line: {:?}",
                    head.lines().next().unwrap_or("")
                ))
            })?;
        self.start = end;
        if status != 200 {
            // The error body is short and ends with the connection; read a little of it.
            while self.end - self.start < MAX_ERROR_BYTES && self.fill().await? {}
            let body = &self.buf[self.start..self.end];
            let body = &body[..body.len().min(MAX_ERROR_BYTES)];
            let text = String::from_utf8_lossy(body);
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.trim().to_string());
            return Err(RawLogsError::Status { status, message });
        }
        self.unread = self.end > self.start;
        Ok(())
    }

    /// Reads what the engine has written since the last read (waiting for at least one
    /// byte). False at the end of the log (the engine closed the stream). Cancel-safe:
    /// dropped while waiting, nothing read is lost.
    pub(super) async fn fill(&mut self) -> Result<bool, RawLogsError> {
        if std::mem::take(&mut self.unread) {
            return Ok(true);
        }
        self.make_room();
        loop {
            match &mut self.conn {
                Conn::Waiting(stream) => {
                    let room = self.buf.len() - self.end;
                    let read = stream
                        .read(&mut self.buf[self.end..])
                        .await
                        .map_err(|source| self.io_error(source))?;
                    self.end += read;
                    self.filled = read == room;
                    let recent = self.recent.add(read, Instant::now());
                    // `recent` holds this read too: a read of BACKLOG_BYTES is a backlog.
                    if read > 0 && !self.filled && recent < BACKLOG_BYTES {
                        // A burst of lines came: the next ones are read on the clock, and
                        // a backlog's room is given back (`make_room`). A backlog also
                        // comes in small reads when they keep up with the engine's writes
                        // (one per line); on the clock it would be read a buffer a tick.
                        self.move_conn(true)?;
                    }
                    return Ok(read > 0);
                }
                Conn::Ticking { stream, empty } => {
                    if !self.filled {
                        tokio::time::sleep_until(next_tick()).await;
                    }
                    let room = self.buf.len() - self.end;
                    match stream.read(&mut self.buf[self.end..]) {
                        Ok(read) => {
                            *empty = 0;
                            self.end += read;
                            self.filled = read == room;
                            if read >= BACKLOG_BYTES || self.filled {
                                // A backlog: waiting for the clock would hold the engine
                                // up once the socket is full; read it as fast as it comes.
                                self.recent = RecentBytes::default();
                                self.recent.add(read, Instant::now());
                                self.move_conn(false)?;
                            }
                            return Ok(read > 0);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            self.filled = false;
                            *empty += 1;
                            if *empty >= IDLE_TICKS {
                                // Quiet: wait for the engine to write again.
                                self.move_conn(false)?;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(source) => return Err(self.io_error(source)),
                    }
                }
                Conn::Moving => {
                    return Err(self.io_error(std::io::Error::other(
                        "the connection was lost while moving it on or off the poller",
                    )));
                }
            }
        }
    }

    /// Makes room for a read: drops what was handled, grows the buffer for a backlog, and
    /// moves a partial frame to the front once little room is left behind it.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.filled && self.buf.len() < READ_BYTES {
            // A backlog: read it in large pieces.
            self.buf.resize(READ_BYTES, 0);
        }
        // On the clock, the stream brings bursts, not a backlog (a backlog takes it off).
        if matches!(self.conn, Conn::Ticking { .. })
            && self.buf.len() > FIRST_READ_BYTES
            && self.end - self.start <= FIRST_READ_BYTES / 4
        {
            // Back to bursts after a backlog: a hundred streams each keeping a backlog's
            // room would hold megabytes for nothing.
            self.compact();
            self.buf.truncate(FIRST_READ_BYTES);
            self.buf.shrink_to_fit();
        }
        let low = self.buf.len() / 4;
        if self.buf.len() - self.end < low {
            self.compact();
        }
        if self.buf.len() - self.end < low {
            // Only a long response head or a frame larger than the buffer gets here.
            self.buf.resize(self.end + READ_BYTES, 0);
        }
    }

    /// Moves the bytes not handled yet (a partial frame) to the front of the buffer.
    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// Moves the connection off the poller (`ticking`) or back onto it.
    fn move_conn(&mut self, ticking: bool) -> Result<(), RawLogsError> {
        let moved = match std::mem::replace(&mut self.conn, Conn::Moving) {
            Conn::Waiting(stream) if ticking => stream
                .into_std()
                .map(|stream| Conn::Ticking { stream, empty: 0 }),
            Conn::Ticking { stream, .. } if !ticking => {
                UnixStream::from_std(stream).map(Conn::Waiting)
            }
            same => Ok(same),
        };
        self.conn = moved.map_err(|source| self.io_error(source))?;
        Ok(())
    }

    fn io_error(&self, source: std::io::Error) -> RawLogsError {
        RawLogsError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Hands every complete frame held to `each`, in order; a partial frame waits for the
    /// next read. Fails on a frame that cannot be a log frame (the rest of the stream
    /// could not be trusted).
    #[cfg(test)]
    pub(super) fn drain(
        &mut self,
        mut each: impl FnMut(Stream, &[u8]),
    ) -> Result<(), RawLogsError> {
        self.drain_until(|stream, frame| {
            each(stream, frame);
            true
        })
    }

    /// Like [`drain`](Self::drain), but stops before a frame `each` answers false for:
    /// that frame stays held and is handed out first by the next drain.
    pub(super) fn drain_until(
        &mut self,
        mut each: impl FnMut(Stream, &[u8]) -> bool,
    ) -> Result<(), RawLogsError> {
        loop {
            let held = &self.buf[self.start..self.end];
            if held.len() < FRAME_HEADER {
                return Ok(());
            }
            let stream = match held[0] {
                0 => None,
                1 => Some(Stream::Stdout),
                2 => Some(Stream::Stderr),
                other => {
                    return Err(RawLogsError::Protocol(format!(
                        "frame of unknown stream type {other}"
                    )));
                }
            };
            let size = u32::from_be_bytes([held[4], held[5], held[6], held[7]]) as usize;
            if size > MAX_FRAME_BYTES {
                return Err(RawLogsError::Protocol(format!(
                    "frame of {size} bytes (at most {MAX_FRAME_BYTES} expected)"
                )));
            }
            if held.len() < FRAME_HEADER + size {
                // Room for the whole frame, so the next reads complete it.
                if self.buf.len() - self.start < FRAME_HEADER + size {
                    self.compact();
                    if self.buf.len() < FRAME_HEADER + size + READ_BYTES / 4 {
                        self.buf.resize(FRAME_HEADER + size + READ_BYTES / 4, 0);
                    }
                }
                return Ok(());
            }
            if let Some(stream) = stream
                && !each(stream, &held[FRAME_HEADER..FRAME_HEADER + size])
            {
                return Ok(());
            }
            self.start += FRAME_HEADER + size;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The engine's side is played by a local socket here only for answers the real engine
    //! does not give (broken frames, a non-HTTP answer); reading real containers' logs
    //! this way is covered by the collector's tests against the Docker engine.

    use tokio::net::UnixListener;

    use super::*;

    /// One thing the fake engine does after reading the request.
    enum Step {
        Write(Vec<u8>),
        Pause(std::time::Duration),
    }

    /// Plays `steps` to the first client after reading its request, then closes.
    fn serve_steps(steps: Vec<Step>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).await.unwrap();
            for step in steps {
                match step {
                    Step::Write(bytes) => conn.write_all(&bytes).await.unwrap(),
                    Step::Pause(pause) => tokio::time::sleep(pause).await,
                }
            }
        });
        (dir, path)
    }

    /// Serves `parts` (written one by one, with a pause between) to the first client.
    fn serve(parts: Vec<Vec<u8>>) -> (tempfile::TempDir, PathBuf) {
        let pause = std::time::Duration::from_millis(5);
        serve_steps(
            parts
                .into_iter()
                .flat_map(|part| [Step::Write(part), Step::Pause(pause)])
                .collect(),
        )
    }

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const HEAD: &[u8] =
        b"HTTP/1.0 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n";

    async fn read_all(logs: &mut RawLogs) -> Result<Vec<(Stream, Vec<u8>)>, RawLogsError> {
        // In the order the log task reads: a read, then what it brought; at the end, what
        // is still held (a short log can come whole with the response head).
        let mut got = Vec::new();
        loop {
            let more = logs.fill().await?;
            logs.drain(|s, f| got.push((s, f.to_vec())))?;
            if !more {
                return Ok(got);
            }
        }
    }

    #[tokio::test]
    async fn a_frame_refused_stays_held_and_comes_first_next_time() {
        let mut body = HEAD.to_vec();
        for payload in [&b"one\n"[..], b"two\n", b"three\n"] {
            body.extend_from_slice(&frame(1, payload));
        }
        let (_dir, path) = serve(vec![body]);
        let mut logs = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap();
        logs.fill().await.unwrap();
        let mut got = Vec::new();
        logs.drain_until(|_, f| {
            if f == b"two\n" {
                return false;
            }
            got.push(f.to_vec());
            true
        })
        .unwrap();
        assert_eq!(got, [b"one\n".to_vec()]);
        logs.drain_until(|_, f| {
            got.push(f.to_vec());
            true
        })
        .unwrap();
        assert_eq!(
            got,
            [b"one\n".to_vec(), b"two\n".to_vec(), b"three\n".to_vec()]
        );
    }

    /// Serves a 200 head and `frames` in one write, and reads the log to its end.
    async fn read_served(frames: &[Vec<u8>]) -> Result<Vec<(Stream, Vec<u8>)>, RawLogsError> {
        let mut body = HEAD.to_vec();
        for f in frames {
            body.extend_from_slice(f);
        }
        let (_dir, path) = serve(vec![body]);
        let mut logs = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap();
        read_all(&mut logs).await
    }

    #[tokio::test]
    async fn a_short_log_that_comes_with_the_head_is_all_there() {
        let got = read_served(&[
            frame(1, b"2026-12-03T00:00:00Z \xff\xfe bad bytes\n"),
            frame(1, b"2026-12-03T00:00:00Z fine\n"),
        ])
        .await
        .unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].1, b"2026-12-03T00:00:00Z fine\n");
    }

    #[tokio::test]
    async fn a_log_that_comes_with_the_head_and_goes_quiet_is_handed_out_without_more_bytes() {
        // A running container's history, then nothing: the connection stays open.
        let mut body = HEAD.to_vec();
        body.extend(frame(1, b"2026-12-03T00:00:00Z old1\n"));
        body.extend(frame(2, b"2026-12-03T00:00:01Z old2\n"));
        let (_dir, path) = serve_steps(vec![
            Step::Write(body),
            Step::Pause(std::time::Duration::from_secs(60)),
        ]);
        let mut logs = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap();
        let more = tokio::time::timeout(std::time::Duration::from_secs(5), logs.fill())
            .await
            .expect("the frames held since the head are handed out without waiting for more")
            .unwrap();
        assert!(more);
        let mut got = Vec::new();
        logs.drain(|s, f| got.push((s, f.to_vec()))).unwrap();
        assert_eq!(
            got,
            [
                (Stream::Stdout, b"2026-12-03T00:00:00Z old1\n".to_vec()),
                (Stream::Stderr, b"2026-12-03T00:00:01Z old2\n".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn frames_split_anywhere_across_reads_come_out_whole_and_in_order() {
        let mut body = HEAD.to_vec();
        body.extend(frame(1, b"2026-12-03T00:00:00Z out 1\n"));
        body.extend(frame(2, b"2026-12-03T00:00:00Z err 1\n"));
        body.extend(frame(0, b"stdin is skipped"));
        body.extend(frame(1, &vec![b'x'; 20_000]));
        body.extend(frame(1, b""));
        // Cut into pieces that split the head, frame headers and payloads.
        let (small, large) = body.split_at(300);
        let parts: Vec<Vec<u8>> = small
            .chunks(7)
            .chain(large.chunks(4099))
            .map(<[u8]>::to_vec)
            .collect();
        let (_dir, path) = serve(parts);
        let mut logs = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap();
        let got = read_all(&mut logs).await.unwrap();
        let want = vec![
            (Stream::Stdout, b"2026-12-03T00:00:00Z out 1\n".to_vec()),
            (Stream::Stderr, b"2026-12-03T00:00:00Z err 1\n".to_vec()),
            (Stream::Stdout, vec![b'x'; 20_000]),
            (Stream::Stdout, Vec::new()),
        ];
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_stream_read_on_the_clock_waits_for_the_engine_again_once_quiet() {
        let mut first = HEAD.to_vec();
        first.extend(frame(1, b"2026-12-03T00:00:00Z busy\n"));
        let (_dir, path) = serve_steps(vec![
            Step::Write(first),
            // Longer than IDLE_TICKS ticks: the reader goes back to the poller meanwhile.
            Step::Pause(READ_TICK * (IDLE_TICKS + 15)),
            Step::Write(frame(2, b"2026-12-03T00:00:01Z woke\n")),
        ]);
        let mut logs = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap();
        let mut got = Vec::new();
        assert!(logs.fill().await.unwrap());
        logs.drain(|s, f| got.push((s, f.to_vec()))).unwrap();
        assert!(
            matches!(logs.conn, Conn::Ticking { .. }),
            "lines came: read on the clock"
        );
        let quiet = READ_TICK * (IDLE_TICKS + 5);
        assert!(
            tokio::time::timeout(quiet, logs.fill()).await.is_err(),
            "nothing was written"
        );
        assert!(
            matches!(logs.conn, Conn::Waiting(_)),
            "quiet: back on the poller"
        );
        let rest = read_all(&mut logs).await.unwrap();
        got.extend(rest);
        assert_eq!(
            got,
            [
                (Stream::Stdout, b"2026-12-03T00:00:00Z busy\n".to_vec()),
                (Stream::Stderr, b"2026-12-03T00:00:01Z woke\n".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn a_backlog_larger_than_the_first_buffer_comes_out_whole() {
        // 600 frames of 200 bytes: far more than the first buffer, in one write.
        let frames: Vec<Vec<u8>> = (0..600)
            .map(|i| frame(1, format!("{i:0>199}\n").as_bytes()))
            .collect();
        let got = read_served(&frames).await.unwrap();
        assert_eq!(got.len(), 600);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, (_, f))| *f == format!("{i:0>199}\n").into_bytes())
        );
    }

    #[test]
    fn a_backlog_in_small_reads_counts_as_one_and_bursts_do_not() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_micros(n * 1_000);
        // The engine's stored log, one 230-byte line per write, read as fast as it comes
        // (a read every 0.1 ms, 2.3 MB/s): soon over the backlog mark.
        let mut backlog = RecentBytes::default();
        let over = (0..200u64)
            .map(|i| backlog.add(230, t0 + Duration::from_micros(i * 100)))
            .position(|recent| recent >= BACKLOG_BYTES)
            .expect("a backlog in small reads is seen as one");
        assert!(over < 100, "after {over} reads");
        // Ten lines every 100 ms (the steady benchmark's writers): never near it.
        let mut bursts = RecentBytes::default();
        assert!((0..100).all(|i| bursts.add(2_300, ms(i * 100)) < BACKLOG_BYTES));
        // Once a backlog stops, its weight is gone within a few ticks.
        let mut ended = RecentBytes::default();
        ended.add(1 << 20, ms(0));
        assert!(ended.add(100, ms(20 * 8)) < BACKLOG_BYTES);
    }

    #[tokio::test]
    async fn a_backlogs_room_is_given_back_once_the_stream_brings_bursts_again() {
        let mut backlog = HEAD.to_vec();
        for i in 0..600 {
            backlog.extend(frame(1, format!("{i:0>199}\n").as_bytes()));
        }
        let pause = READ_TICK * 3;
        let (_dir, path) = serve_steps(vec![
            Step::Write(backlog),
            Step::Pause(pause),
            Step::Write(frame(2, b"2026-12-03T00:00:01Z burst 1\n")),
            Step::Pause(pause),
            Step::Write(frame(2, b"2026-12-03T00:00:02Z burst 2\n")),
            Step::Pause(pause),
        ]);
        let mut logs = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap();
        let got = read_all(&mut logs).await.unwrap();
        assert_eq!(got.len(), 602);
        assert_eq!(got[601].1, b"2026-12-03T00:00:02Z burst 2\n");
        assert_eq!(
            logs.buf.len(),
            FIRST_READ_BYTES,
            "the backlog grew the buffer; the bursts after it shrink it back"
        );
    }

    #[tokio::test]
    async fn an_error_status_carries_the_engines_message() {
        let (_dir, path) = serve(vec![
            b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"No such container: abc123\"}\n".to_vec(),
        ]);
        let err = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap_err();
        match err {
            RawLogsError::Status { status, message } => {
                assert_eq!(status, 404);
                assert_eq!(message, "No such container: abc123");
            }
            other => panic!("expected a status error, got {other}"),
        }
    }

    #[tokio::test]
    async fn answers_that_are_not_a_log_stream_are_refused_precisely() {
        let (_dir, path) = serve(vec![b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()]);
        let err = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not an HTTP status line"), "{err}");

        let (_dir, path) = serve(vec![vec![b'a'; MAX_HEAD_BYTES + 10]]);
        let err = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no end of the response head"),
            "{err}"
        );

        let (_dir, path) = serve(vec![b"HTTP/1.0 200 OK\r\n".to_vec()]);
        let err = RawLogs::open(&path, "abc123", &LogQuery::follow(0))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("closed before"), "{err}");

        let err = read_served(&[frame(1, b"fine\n"), frame(7, b"what is this")])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown stream type 7"), "{err}");

        let err = read_served(&[vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[test]
    fn a_query_names_every_part_of_the_log_it_asks_for() {
        assert_eq!(
            LogQuery::follow(17).query_string(),
            "follow=1&stdout=1&stderr=1&timestamps=1&since=17&tail=all"
        );
        let end = LogQuery {
            since: 5,
            follow: false,
            tail: Some(1_000),
            between: None,
        };
        assert_eq!(
            end.query_string(),
            "follow=0&stdout=1&stderr=1&timestamps=1&since=5&tail=1000"
        );
        let after = Timestamp::parse_rfc3339("2026-12-07T05:27:14.000000042Z").unwrap();
        let before = Timestamp::parse_rfc3339("2026-12-07T05:27:15.5Z").unwrap();
        let between = LogQuery::between(after, before);
        assert_eq!(
            between.query_string(),
            "follow=0&stdout=1&stderr=1&timestamps=1&since=1796621234.000000042&until=1796621235.500000000&tail=all"
        );
        // The client's whole seconds reach around both ends.
        assert_eq!(i64::from(between.since), after.as_secs());
        assert_eq!(i64::from(between.until_secs()), before.as_secs() + 1);
        let on_the_second = LogQuery::between(after, Timestamp(before.as_secs() * NANOS_PER_SEC));
        assert_eq!(i64::from(on_the_second.until_secs()), before.as_secs());
    }

    #[tokio::test]
    async fn an_id_that_would_change_the_request_is_refused_before_connecting() {
        let err = RawLogs::open(
            Path::new("/nonexistent.sock"),
            "a/../../x?y",
            &LogQuery::follow(0),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("cannot be put in a request path"),
            "{err}"
        );
        let err = RawLogs::open(Path::new("/nonexistent.sock"), "abc", &LogQuery::follow(0))
            .await
            .unwrap_err();
        assert!(matches!(err, RawLogsError::Io { .. }), "{err}");
    }

    #[test]
    fn the_socket_is_found_for_unix_addresses_only() {
        assert_eq!(
            socket_path(Some("unix:///run/docker.sock")),
            Some(PathBuf::from("/run/docker.sock"))
        );
        assert_eq!(socket_path(Some("tcp://10.0.0.1:2375")), None);
        assert_eq!(socket_path(Some("unix://")), None);
    }
}
