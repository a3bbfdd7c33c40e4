//! Reading a container's `json-file` log straight from the engine's files, holding each file
//! open until it has been read to its end, as Filebeat and Fluent Bit do.
//!
//! The engine's followed log loses whole files at rotation whenever its own reader falls
//! behind (see [`super::rotation`]); on two cores, four containers writing flat out make it
//! fall behind even with `curl` as the only reader. Reading the files ourselves takes the
//! engine's reader out of the way: every file is opened within a tick of its creation and
//! kept open (a rotated or deleted file stays readable through its handle), so a rotation
//! loses nothing as long as a file is opened before `max-file` more rotations delete it.
//!
//! - Files are found by name: `<log>` (the current one) and `<log>.1` … `<log>.<max-file − 1>`
//!   (older). Rotation is seen as `<log>` naming another inode; the rotated files not held
//!   yet whose first entry is later than that of the newest file held are opened too (two
//!   rotations between looks), oldest first, then the new current one.
//! - Compressed rotated files (`compress=true`) are not read here: a file gzipped before it
//!   was opened shows as a jump in the entries' times, which the follow task's skip check
//!   reads back through the engine (which decompresses them).
//! - Reading starts at the first entry at or after the query's `since`: files wholly before
//!   it are skipped, and the first one needed is searched by time (entries are in time order,
//!   give or take the resume margin), so a large unrotated log is not read from its start.
//! - Each entry (`{"log":…,"stream":…,"time":…}`) is handed out as the frame the engine's
//!   log endpoint would send, `<time> <text>`, so everything after the reader is shared.
//! - The log ends once the container is no longer running (the engine's `wait` answers),
//!   every file is read to its end, and the current file has not grown for
//!   [`END_QUIET`].
//!
//! All file work runs on the blocking pool; a read dropped while it waits loses nothing
//! (bytes count as read only once they are in the buffer).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::WaitContainerOptions;
use futures_util::{Future, StreamExt};
use serde::Deserialize;
use shiplog_core::{Stream, Timestamp};

/// Bytes read from a file at a time.
const READ_BYTES: usize = 256 * 1024;
/// Longest entry accepted: the engine splits lines at 16 KiB, which JSON escaping can make
/// six times longer.
const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// How often a log at its end looks for more, and for a rotation.
const TICK: Duration = Duration::from_millis(20);
/// Every log's current file name is looked at this often, so a rotation is seen (and its
/// file opened) long before `max-file` more delete it.
const ROTATION_LOOK: Duration = Duration::from_millis(10);
/// Once the container stopped, the log ends when the files have been read to their end and
/// the current one has not grown for this long.
const END_QUIET: Duration = Duration::from_millis(200);
/// A file is searched by time down to a span this small, then read on from there.
const SEEK_SPAN: u64 = 64 * 1024;

/// Why the engine's files cannot be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum LogFilesError {
    /// A file could not be opened, read or looked at.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// An entry longer than any the engine writes: the file is not a json-file log.
    #[error("{path}: an entry of over {MAX_ENTRY_BYTES} bytes; not a json-file log")]
    TooLong {
        /// The file.
        path: String,
    },
}

/// One file held open.
#[derive(Debug)]
struct Held {
    file: Arc<File>,
    /// Device and inode, to tell files apart across renames.
    id: (u64, u64),
    /// Docker's time of its first entry, once it has one.
    first: Option<Timestamp>,
    /// Where reading goes on.
    offset: u64,
    /// Rotated: nothing more is written to it.
    rotated: bool,
    /// Found after a look that could not tell whether a file before it was missed.
    after_unknown: bool,
}

/// Resolves once the container is no longer running.
type Stopped = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The files of one log, shared by its reader and the [`watcher`] thread that opens new
/// ones as rotation makes them.
#[derive(Debug)]
struct Watched {
    path: PathBuf,
    /// Rotated files kept by the engine (`max-file` − 1).
    slots: u32,
    /// Files not read to their end yet, oldest first; the last is the current one.
    files: Mutex<VecDeque<Held>>,
    /// Why the last look failed, if it did.
    failed: Mutex<Option<String>>,
    /// Held while a look runs: the watcher thread and the reader may both look, and two
    /// looks at once would open the same new files twice.
    looking: Mutex<()>,
    /// Files the reader has let go of so far. A look compares file ids with the ones held
    /// when it began; a file let go of meanwhile frees its inode, which the engine may give
    /// to the next file it creates, and that file would then pass for one held and never
    /// be opened. A look that sees this count move starts over.
    released: AtomicU64,
}

impl Watched {
    fn files(&self) -> std::sync::MutexGuard<'_, VecDeque<Held>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the files that rotation made since the last look, if `<log>` names another
    /// file now.
    fn look(&self) {
        let _alone = self.looking.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let (held, newest, released) = {
                let files = self.files();
                let held: Vec<(u64, u64)> = files.iter().map(|f| f.id).collect();
                let newest = files.back().map(|f| (Arc::clone(&f.file), f.id, f.first));
                (held, newest, self.released.load(Ordering::Acquire))
            };
            match newer_files(&self.path, self.slots, &held, newest) {
                Ok(None) => {
                    if self.released.load(Ordering::Acquire) == released {
                        return;
                    }
                }
                Ok(Some(mut found)) => {
                    let mut files = self.files();
                    if self.released.load(Ordering::Acquire) != released {
                        // Ids compared against a file let go of meanwhile: look again.
                        continue;
                    }
                    if !found.intact
                        && let Some(first) = found.files.first_mut()
                    {
                        first.after_unknown = true;
                    }
                    if let Some(back) = files.back_mut() {
                        back.rotated = true;
                    }
                    files.extend(found.files);
                    return;
                }
                Err(error) => {
                    *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(error.to_string());
                    return;
                }
            }
        }
    }
}

/// The logs being read, looked at by one thread every [`ROTATION_LOOK`], whatever their
/// readers are doing (a reader held up by a full pipeline still gets every file opened).
fn watcher() -> &'static Mutex<Vec<Weak<Watched>>> {
    static WATCHED: OnceLock<Mutex<Vec<Weak<Watched>>>> = OnceLock::new();
    WATCHED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("shiplog-logfiles".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(ROTATION_LOOK);
                    let live: Vec<Arc<Watched>> = {
                        let mut watched = watcher().lock().unwrap_or_else(|e| e.into_inner());
                        watched.retain(|w| w.strong_count() > 0);
                        watched.iter().filter_map(Weak::upgrade).collect()
                    };
                    for log in live {
                        log.look();
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(error = %error, "cannot start the thread that watches log files for rotation; rotations are seen only while logs are read");
        }
        Mutex::new(Vec::new())
    })
}

/// A container's json-file log, read from its files (see the module doc).
pub(super) struct LogFiles {
    watched: Arc<Watched>,
    /// Bytes of the front file read and not handed out yet: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// The frame handed out for each entry.
    frame: Vec<u8>,
    stopped: Option<Stopped>,
    /// When the container was seen stopped and the files were last found grown.
    quiet_since: Option<Instant>,
    /// Entries that could not be read as json-file entries, skipped.
    malformed: u64,
    /// The front file is one found after an unknown stretch, and no entry of it was
    /// handed out yet.
    boundary: bool,
    /// Every rotated file the engine keeps was there when the log was opened: older ones
    /// may have been deleted.
    full: bool,
}

impl std::fmt::Debug for LogFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFiles")
            .field("path", &self.watched.path)
            .finish_non_exhaustive()
    }
}

/// One entry of a json-file log.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
}

impl LogFiles {
    /// Opens container `id`'s log at `path` (the inspect answer's `LogPath`), keeping
    /// `max_file` files in all, to be read from `since` (Unix seconds, inclusive) on.
    pub(super) async fn open(
        docker: &Docker,
        id: &str,
        path: PathBuf,
        max_file: u32,
        since: i64,
    ) -> Result<LogFiles, LogFilesError> {
        let slots = max_file.saturating_sub(1);
        let opened = {
            let path = path.clone();
            blocking(move || open_all(&path, slots, since)).await?
        };
        let full = slots > 0 && {
            let oldest = rotated_name(&path, slots);
            let mut compressed = oldest.clone().into_os_string();
            compressed.push(".gz");
            oldest.exists() || Path::new(&compressed).exists()
        };
        let mut files = LogFiles::new(
            path,
            slots,
            opened,
            Some(stopped(docker.clone(), id.to_string())),
        );
        files.full = full;
        watcher()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&files.watched));
        Ok(files)
    }

    fn new(path: PathBuf, slots: u32, opened: Vec<Held>, stopped: Option<Stopped>) -> Self {
        LogFiles {
            watched: Arc::new(Watched {
                path,
                slots,
                files: Mutex::new(opened.into()),
                failed: Mutex::new(None),
                looking: Mutex::new(()),
                released: AtomicU64::new(0),
            }),
            buf: Vec::with_capacity(READ_BYTES),
            start: 0,
            frame: Vec::new(),
            stopped,
            quiet_since: None,
            malformed: 0,
            boundary: false,
            full: false,
        }
    }

    /// Whether the engine's oldest kept file was already there when the log was opened, so
    /// that what the container wrote first may have been deleted.
    pub(super) fn oldest_may_be_gone(&self) -> bool {
        self.full
    }

    /// Whether the next entry begins a file that a file may be missing before (the one
    /// before it had left the engine's stored files, deleted or compressed, by the time a
    /// rotation was seen): the lines of such a file are only to be had from the engine now.
    /// Asked once per such file.
    pub(super) fn take_unknown_boundary(&mut self) -> bool {
        std::mem::take(&mut self.boundary)
    }

    /// Waits for more of the log: `Ok(true)` when there is more to drain, `Ok(false)` once it
    /// has ended. Cancel-safe.
    pub(super) async fn fill(&mut self) -> Result<bool, LogFilesError> {
        loop {
            if let Some(error) = self
                .watched
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                tracing::warn!(file = %self.watched.path.display(), error, "cannot look for a rotation of the log file; trying again");
            }
            let front = {
                let files = self.watched.files();
                files
                    .front()
                    .map(|f| (Arc::clone(&f.file), f.offset, f.rotated, files.len()))
            };
            let Some((file, offset, rotated, held)) = front else {
                return Ok(false);
            };
            let data = blocking_io(&self.watched.path, move || {
                let mut data = vec![0; READ_BYTES];
                let n = file.read_at(&mut data, offset)?;
                data.truncate(n);
                Ok(data)
            })
            .await?;
            if !data.is_empty() {
                self.compact();
                self.buf.extend_from_slice(&data);
                if let Some(front) = self.watched.files().front_mut() {
                    front.offset += data.len() as u64;
                    if front.first.is_none() {
                        front.first = first_time(&self.buf[self.start..]);
                    }
                }
                self.quiet_since = None;
                return Ok(true);
            }
            if rotated && held > 1 {
                // Read to its end; a last entry without its newline is not one.
                let mut files = self.watched.files();
                // Counted before the file is closed (and its inode freed).
                self.watched.released.fetch_add(1, Ordering::Release);
                files.pop_front();
                self.boundary = files.front().is_some_and(|f| f.after_unknown);
                drop(files);
                self.buf.clear();
                self.start = 0;
                continue;
            }
            if rotated {
                // The current file was rotated and the new one is not open yet.
                let watched = Arc::clone(&self.watched);
                blocking(move || {
                    watched.look();
                    Ok(())
                })
                .await?;
                if self.watched.files().len() == 1 {
                    self.wait().await;
                }
                continue;
            }
            if self.stopped.is_none() {
                let quiet = *self.quiet_since.get_or_insert_with(Instant::now);
                if quiet.elapsed() >= END_QUIET {
                    return Ok(false);
                }
            }
            self.wait().await;
        }
    }

    /// Waits a tick, or until the container stops.
    async fn wait(&mut self) {
        match self.stopped.as_mut() {
            Some(stopped) => {
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    () = stopped => {
                        self.stopped = None;
                    }
                }
            }
            None => tokio::time::sleep(TICK).await,
        }
    }

    /// Hands every whole entry read to `each` as `<time> <text>`, in order; stops before an
    /// entry `each` answers false for (it comes first next time).
    pub(super) fn drain_until(
        &mut self,
        mut each: impl FnMut(Stream, &[u8]) -> bool,
    ) -> Result<(), LogFilesError> {
        loop {
            let held = &self.buf[self.start..];
            let Some(end) = memchr::memchr(b'\n', held) else {
                if held.len() > MAX_ENTRY_BYTES {
                    return Err(LogFilesError::TooLong {
                        path: self.watched.path.display().to_string(),
                    });
                }
                return Ok(());
            };
            let line = &held[..end];
            match serde_json::from_slice::<Entry<'_>>(line) {
                Ok(entry) => {
                    let stream = match &*entry.stream {
                        "stderr" => Stream::Stderr,
                        _ => Stream::Stdout,
                    };
                    self.frame.clear();
                    self.frame.extend_from_slice(entry.time.as_bytes());
                    self.frame.push(b' ');
                    self.frame.extend_from_slice(entry.log.as_bytes());
                    if !each(stream, &self.frame) {
                        return Ok(());
                    }
                }
                Err(error) => {
                    self.malformed += 1;
                    if self.malformed == 1 {
                        tracing::warn!(file = %self.watched.path.display(), error = %error, "skipping an entry of the engine's log file that is not a json-file entry");
                    }
                }
            }
            self.start += end + 1;
        }
    }

    /// Moves what is held to the front of the buffer once most of it was handed out.
    fn compact(&mut self) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Resolves once the engine says container `id` is not running (or cannot say: a container
/// gone, an engine gone). A wait that times out on a running container is made again.
fn stopped(docker: Docker, id: String) -> Stopped {
    Box::pin(async move {
        loop {
            let options = WaitContainerOptions {
                condition: "not-running".to_string(),
            };
            let answer = docker.wait_container(&id, Some(options)).next().await;
            match answer {
                Some(Err(bollard::errors::Error::DockerContainerWaitError { .. }))
                | Some(Ok(_))
                | None => return,
                Some(Err(_)) => {
                    let running = docker
                        .inspect_container(&id, None)
                        .await
                        .ok()
                        .and_then(|i| i.state)
                        .and_then(|s| s.running)
                        .unwrap_or(false);
                    if !running {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LogFilesError> + Send + 'static,
) -> Result<T, LogFilesError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(LogFilesError::Io {
                path: String::new(),
                source: io::Error::other(error.to_string()),
            })
        })
}

/// [`blocking`] for plain I/O on `path`.
async fn blocking_io<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, LogFilesError> {
    let path = path.display().to_string();
    blocking(move || work().map_err(|source| LogFilesError::Io { path, source })).await
}

fn io_error(path: &Path, source: io::Error) -> LogFilesError {
    LogFilesError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The name of rotated file `n` (1: the newest).
fn rotated_name(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Opens `path` if it is there: the file, its id and its first entry's time.
fn open_held(path: &Path) -> Result<Option<Held>, LogFilesError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path, error)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    let first = read_first_time(&file).map_err(|e| io_error(path, e))?;
    Ok(Some(Held {
        file: Arc::new(file),
        id: (meta.dev(), meta.ino()),
        first,
        offset: 0,
        rotated: false,
        after_unknown: false,
    }))
}

/// Every file of the log, oldest first, the ones wholly before `since` left out and the
/// first one kept positioned at `since`. The current file must be there.
fn open_all(path: &Path, slots: u32, since: i64) -> Result<Vec<Held>, LogFilesError> {
    // The current file first: a rotation meanwhile then shows as a later look's find.
    let current = open_held(path)?.ok_or_else(|| {
        io_error(
            path,
            io::Error::new(io::ErrorKind::NotFound, "no such log file"),
        )
    })?;
    let mut files = Vec::new();
    for n in (1..=slots).rev() {
        if let Some(mut held) = open_held(&rotated_name(path, n))? {
            held.rotated = true;
            if held.id != current.id {
                files.push(held);
            }
        }
    }
    files.retain(|f| f.first.is_some());
    files.sort_by_key(|f| f.first);
    files.push(current);
    let since = Timestamp(since.saturating_mul(1_000_000_000));
    // A file whose successor begins at or before `since` holds nothing from `since` on.
    let skip = files
        .windows(2)
        .take_while(|pair| pair[1].first.is_some_and(|first| first <= since))
        .count();
    files.drain(..skip);
    if let Some(first) = files.first_mut() {
        first.offset = seek_since(&first.file, since).map_err(|e| io_error(path, e))?;
    }
    Ok(files)
}

/// Files made by rotation since the last look.
#[derive(Debug)]
struct Found {
    /// Oldest first, ending with the current one.
    files: Vec<Held>,
    /// The newest file held before is still among the stored files, so none between it
    /// and these was missed.
    intact: bool,
}

/// The newest file held: its handle, id and first entry's time.
type Newest = (Arc<File>, (u64, u64), Option<Timestamp>);

/// The files rotation made since the last look; `None` while `<log>` still names a file
/// held (or none: between the rename and the new file, the next look finds it).
fn newer_files(
    path: &Path,
    slots: u32,
    held: &[(u64, u64)],
    newest: Option<Newest>,
) -> Result<Option<Found>, LogFilesError> {
    let current = match std::fs::metadata(path) {
        Ok(meta) => (meta.dev(), meta.ino()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path, error)),
    };
    if held.contains(&current) {
        return Ok(None);
    }
    // The current file is opened before the rotated ones are looked at: should the log
    // rotate again meanwhile, the file opened here is then found among them, not skipped.
    let Some(current) = open_held(path)? else {
        return Ok(None);
    };
    // The newest file held had no entry when opened: it may have one now.
    let (newest_id, newest_first) = match newest {
        Some((file, id, None)) => (
            Some(id),
            read_first_time(&file).map_err(|e| io_error(path, e))?,
        ),
        Some((_, id, first)) => (Some(id), first),
        None => (None, None),
    };
    let mut files = Vec::new();
    let mut intact = newest_id.is_none();
    for n in 1..=slots {
        let Some(mut file) = open_held(&rotated_name(path, n))? else {
            continue;
        };
        if Some(file.id) == newest_id {
            intact = true;
            continue;
        }
        let newer = match (file.first, newest_first) {
            (Some(first), Some(newest)) => first > newest,
            _ => false,
        };
        if !held.contains(&file.id) && file.id != current.id && newer {
            file.rotated = true;
            files.push(file);
        }
    }
    files.sort_by_key(|f| f.first);
    if !held.contains(&current.id) {
        files.push(current);
    }
    Ok(Some(Found { files, intact }))
}

/// Docker's time of the first entry in `bytes`, if a whole one is there.
fn first_time(bytes: &[u8]) -> Option<Timestamp> {
    let end = memchr::memchr(b'\n', bytes)?;
    entry_time(&bytes[..end])
}

/// Docker's time of one json-file entry.
fn entry_time(line: &[u8]) -> Option<Timestamp> {
    #[derive(Deserialize)]
    struct Time<'a> {
        #[serde(borrow)]
        time: std::borrow::Cow<'a, str>,
    }
    let time: Time<'_> = serde_json::from_slice(line).ok()?;
    Timestamp::parse_rfc3339(&time.time).ok()
}

/// The first entry's time of a file.
fn read_first_time(file: &File) -> io::Result<Option<Timestamp>> {
    let mut head = vec![0; 64 * 1024];
    let n = file.read_at(&mut head, 0)?;
    Ok(first_time(&head[..n]))
}

/// The first whole entry's time at or after `offset`, and where that entry starts.
fn entry_after(file: &File, offset: u64) -> io::Result<Option<(u64, Timestamp)>> {
    let mut chunk = vec![0; 2 * MAX_ENTRY_BYTES.min(256 * 1024)];
    let n = file.read_at(&mut chunk, offset)?;
    let chunk = &chunk[..n];
    // At the start of the file the first entry starts there; elsewhere after a newline.
    let begin = if offset == 0 {
        0
    } else {
        match memchr::memchr(b'\n', chunk) {
            Some(newline) => newline + 1,
            None => return Ok(None),
        }
    };
    let rest = &chunk[begin..];
    let Some(end) = memchr::memchr(b'\n', rest) else {
        return Ok(None);
    };
    Ok(entry_time(&rest[..end]).map(|ts| (offset + begin as u64, ts)))
}

/// Where to start reading `file` so that no entry at or after `since` is missed: the start
/// of an entry before `since`, found by halving (entries are in time order).
fn seek_since(file: &File, since: Timestamp) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let (mut low, mut high) = (0u64, len);
    while high - low > SEEK_SPAN {
        let mid = low + (high - low) / 2;
        match entry_after(file, mid)? {
            Some((start, ts)) if ts < since => low = start,
            _ => high = mid,
        }
    }
    Ok(low)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn entry(ts: &str, stream: &str, log: &str) -> String {
        format!(
            "{}\n",
            serde_json::json!({"log": log, "stream": stream, "time": ts})
        )
    }

    fn ts(secs: i64, nanos: i64) -> String {
        Timestamp(secs * 1_000_000_000 + nanos).to_rfc3339()
    }

    fn write(path: &Path, entries: &[String]) {
        let mut file = File::create(path).unwrap();
        for e in entries {
            file.write_all(e.as_bytes()).unwrap();
        }
    }

    /// Rotates as the engine does with `slots` rotated files kept, then writes `entries`
    /// to the new current file.
    fn rotate(path: &Path, slots: u32, entries: &[String]) {
        let _ = std::fs::remove_file(rotated_name(path, slots));
        for n in (1..slots).rev() {
            let _ = std::fs::rename(rotated_name(path, n), rotated_name(path, n + 1));
        }
        std::fs::rename(path, rotated_name(path, 1)).unwrap();
        write(path, entries);
    }

    fn drain_all(files: &mut LogFiles) -> Vec<(Stream, String)> {
        let mut got = Vec::new();
        files
            .drain_until(|stream, frame| {
                got.push((stream, String::from_utf8(frame.to_vec()).unwrap()));
                true
            })
            .unwrap();
        got
    }

    /// A reader over `path` with no engine behind it: the container counts as stopped, and
    /// rotations are looked for by [`look`] (no watcher thread).
    fn reader(path: &Path, max_file: u32, since: i64) -> LogFiles {
        let slots = max_file - 1;
        let files = open_all(path, slots, since).unwrap();
        LogFiles::new(path.to_path_buf(), slots, files, None)
    }

    fn look(files: &LogFiles) {
        files.watched.look();
        assert_eq!(*files.watched.failed.lock().unwrap(), None);
    }

    async fn read_to_end(files: &mut LogFiles) -> Vec<(Stream, String)> {
        let mut got = Vec::new();
        while files.fill().await.unwrap() {
            got.extend(drain_all(files));
        }
        got.extend(drain_all(files));
        got
    }

    #[tokio::test]
    async fn entries_come_out_as_the_engine_sends_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write(
            &path,
            &[
                entry(&ts(100, 1), "stdout", "one\n"),
                entry(&ts(100, 2), "stderr", "tw\"o \u{e9}\n"),
                entry(&ts(100, 3), "stdout", "partial"),
                "not json\n".to_string(),
                entry(&ts(100, 4), "stdout", " end\n"),
            ],
        );
        let mut files = reader(&path, 1, 0);
        let got = read_to_end(&mut files).await;
        assert_eq!(
            got,
            [
                (Stream::Stdout, format!("{} one\n", ts(100, 1))),
                (Stream::Stderr, format!("{} tw\"o \u{e9}\n", ts(100, 2))),
                (Stream::Stdout, format!("{} partial", ts(100, 3))),
                (Stream::Stdout, format!("{}  end\n", ts(100, 4))),
            ]
        );
        assert_eq!(files.malformed, 1);
    }

    #[tokio::test]
    async fn rotated_files_are_read_in_order_and_a_held_file_survives_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write(
            &rotated_name(&path, 2),
            &[entry(&ts(1, 0), "stdout", "a\n")],
        );
        write(
            &rotated_name(&path, 1),
            &[entry(&ts(2, 0), "stdout", "b\n")],
        );
        write(&path, &[entry(&ts(3, 0), "stdout", "c\n")]);
        let mut files = reader(&path, 3, 0);
        assert!(files.fill().await.unwrap());
        let mut got = drain_all(&mut files);
        // Two rotations before the next look, as the engine makes them: `a` (held, read)
        // and `b` (held, unread) are deleted, `d` is made and rotated, `e` is current.
        rotate(&path, 2, &[entry(&ts(4, 0), "stdout", "d\n")]);
        rotate(&path, 2, &[entry(&ts(5, 0), "stdout", "e\n")]);
        look(&files);
        got.extend(read_to_end(&mut files).await);
        assert!(
            !files.take_unknown_boundary(),
            "c, the newest held, was still stored"
        );
        let texts: Vec<&str> = got
            .iter()
            .map(|(_, f)| f.split_once(' ').unwrap().1)
            .collect();
        assert_eq!(texts, ["a\n", "b\n", "c\n", "d\n", "e\n"]);
    }

    #[tokio::test]
    async fn a_file_found_after_the_newest_held_left_the_stored_files_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write(&path, &[entry(&ts(1, 0), "stdout", "a\n")]);
        let mut files = reader(&path, 2, 0);
        // Two rotations with max-file=2 before a look: `a` (held) is deleted, `b` is `.1`.
        rotate(&path, 1, &[entry(&ts(2, 0), "stdout", "b\n")]);
        rotate(&path, 1, &[entry(&ts(3, 0), "stdout", "c\n")]);
        look(&files);
        let mut texts = Vec::new();
        let mut marked = Vec::new();
        while files.fill().await.unwrap() {
            if files.take_unknown_boundary() {
                marked.push(texts.len());
            }
            for (_, frame) in drain_all(&mut files) {
                texts.push(frame.split_once(' ').unwrap().1.to_string());
            }
        }
        assert_eq!(texts, ["a\n", "b\n", "c\n"]);
        // `b` begins where a file may be missing (nothing tells it was not).
        assert_eq!(marked, [1]);
    }

    #[tokio::test]
    async fn reading_starts_at_since_without_reading_what_is_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        // An old rotated file, then a big current file of one entry a second.
        write(
            &rotated_name(&path, 1),
            &[entry(&ts(1, 0), "stdout", "old\n")],
        );
        let entries: Vec<String> = (10..5_010)
            .map(|s| entry(&ts(s, 0), "stdout", &format!("line {s}\n")))
            .collect();
        write(&path, &entries);
        let mut files = reader(&path, 2, 4_000);
        assert_eq!(
            files.watched.files().len(),
            1,
            "the rotated file is wholly before"
        );
        assert!(files.watched.files()[0].offset > 0);
        let got = read_to_end(&mut files).await;
        let first: i64 = got[0].1.rsplit(' ').next().unwrap().trim().parse().unwrap();
        assert!(
            (3_000..=4_000).contains(&first),
            "starts within a searched span before since: {first}"
        );
        assert_eq!(
            got.last().unwrap().1,
            format!("{} line 5009\n", ts(5_009, 0))
        );
        // Every entry from since on is there.
        assert_eq!(
            got.iter()
                .filter(|(_, f)| f.starts_with(&ts(4_000, 0)))
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn a_frame_refused_comes_first_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        write(
            &path,
            &[
                entry(&ts(1, 0), "stdout", "one\n"),
                entry(&ts(2, 0), "stdout", "two\n"),
            ],
        );
        let mut files = reader(&path, 1, 0);
        assert!(files.fill().await.unwrap());
        let mut got = Vec::new();
        files
            .drain_until(|_, f| {
                let keep = !f.ends_with(b"two\n");
                if keep {
                    got.push(f.to_vec());
                }
                keep
            })
            .unwrap();
        assert_eq!(got.len(), 1);
        let again = drain_all(&mut files);
        assert_eq!(again.len(), 1);
        assert!(again[0].1.ends_with("two\n"));
    }

    #[test]
    fn a_missing_log_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone-json.log");
        let err = open_all(&path, 2, 0).unwrap_err().to_string();
        assert!(err.contains("gone-json.log"), "{err}");
    }
}
