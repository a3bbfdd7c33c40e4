//! Checkpoints: per container and stream, the last log line the sink has acknowledged, so a
//! restarted collector reads on from there instead of losing or repeating lines.
//!
//! The batcher advances a [`CheckpointStore`] after every acknowledged batch (never before:
//! a line counts as shipped only once the receiver has it durably). A persister task writes
//! the store to `<state_dir>/checkpoints.json` at most once a second and once more on
//! shutdown, atomically (temp file, fsync, rename, fsync of the directory), so a crash
//! leaves either the old file or the new one. The file carries a format name and version;
//! a file that cannot be read is logged and ignored, never fatal: the collector then starts
//! as if it had none.
//!
//! A position is Docker's time of a line plus its sequence among lines of the same stream
//! with the very same time; that pair is also what the event id is derived from.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shiplog_core::{Stream, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Name of the checkpoint file inside the state directory.
pub const FILE_NAME: &str = "checkpoints.json";
/// The `format` value every checkpoint file carries.
const FORMAT: &str = "shiplog-checkpoints";
/// The version this build writes and reads.
const VERSION: u32 = 1;
/// Largest checkpoint file read; a few hundred bytes per container, so far more than enough.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// How often the persister writes a changed store.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// Where a line sits in its stream: Docker's time and the sequence among equal times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Docker's time of the line.
    pub ts: Timestamp,
    /// Order among lines of the same stream with the same `ts`.
    pub seq: u32,
}

/// The last shipped position of each stream of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamPositions {
    /// Last shipped stdout line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<Position>,
    /// Last shipped stderr line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<Position>,
}

impl StreamPositions {
    /// The position of `stream`.
    pub fn get(&self, stream: Stream) -> Option<Position> {
        match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        }
    }

    /// Sets the position of `stream`.
    pub fn set(&mut self, stream: Stream, position: Position) {
        match stream {
            Stream::Stdout => self.stdout = Some(position),
            Stream::Stderr => self.stderr = Some(position),
        }
    }

    /// The latest time of either stream.
    pub fn latest_ts(&self) -> Option<Timestamp> {
        self.stdout.map(|p| p.ts).max(self.stderr.map(|p| p.ts))
    }

    /// Whether neither stream has a position.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }
}

/// Where an event ends in its source: what the checkpoint becomes once it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePosition {
    /// Full container id.
    pub container_id: Arc<str>,
    /// The stream the event came from.
    pub stream: Stream,
    /// The position of the event's last line.
    pub position: Position,
}

/// The file as written: format, version, then one entry per container id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointFile {
    format: String,
    version: u32,
    containers: BTreeMap<String, StreamPositions>,
}

/// Only the header, read first so a newer version is told apart from a corrupt file.
#[derive(Debug, Deserialize)]
struct Header {
    format: String,
    version: u32,
}

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, StreamPositions>,
    /// Containers removed for good (destroyed): late acknowledgements must not bring them
    /// back. Container ids are never reused, so this only grows with destroyed containers.
    retired: HashSet<String>,
    /// Changed since the last write.
    dirty: bool,
}

/// Shipped positions of every container, shared by the Docker source (reads them at
/// start) and the batcher (advances them on acknowledgement).
#[derive(Debug)]
pub struct CheckpointStore {
    path: Option<PathBuf>,
    /// When the file was last written before this run: the last moment an earlier run is
    /// known to have been alive. `None` on a first run (no file) or without a state dir.
    previous_run: Option<Timestamp>,
    state: Mutex<State>,
    /// Serialises writers, so an old snapshot never overwrites a newer one.
    write: Mutex<()>,
}

impl CheckpointStore {
    /// A store that is never written to disk (no state directory configured).
    pub fn in_memory() -> Self {
        CheckpointStore {
            path: None,
            previous_run: None,
            state: Mutex::new(State::default()),
            write: Mutex::new(()),
        }
    }

    /// Opens the store in `dir`, creating the directory when missing. A checkpoint file that
    /// cannot be used is logged and ignored; only an unusable directory is an error.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let previous_run = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .map(Timestamp::from_system_time);
        let containers = match read_file(&path) {
            Ok(Some(containers)) => {
                info!(path = %path.display(), containers = containers.len(), "checkpoints loaded");
                containers
            }
            Ok(None) => BTreeMap::new(),
            Err(reason) => {
                warn!(
                    path = %path.display(),
                    error = %reason,
                    "ignoring unusable checkpoint file; running containers are read from now"
                );
                BTreeMap::new()
            }
        };
        Ok(CheckpointStore {
            path: Some(path),
            previous_run,
            state: Mutex::new(State {
                containers,
                // Written at the first persist even when empty: the file's time is how the
                // next run knows this one was alive (see `previous_run`).
                dirty: true,
                ..State::default()
            }),
            write: Mutex::new(()),
        })
    }

    /// When an earlier run last wrote the file (it writes at least once a second while
    /// acknowledgements come in): containers created after about then, with no checkpoint,
    /// may hold lines nobody shipped. `None` on a first run.
    pub fn previous_run(&self) -> Option<Timestamp> {
        self.previous_run
    }

    /// The file the store is written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is one
        // assignment), so keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shipped positions of container `id`.
    pub fn get(&self, id: &str) -> Option<StreamPositions> {
        self.lock().containers.get(id).copied()
    }

    /// Ids of every container with a checkpoint.
    pub fn container_ids(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    /// Records acknowledged positions, in delivery order (the last one per stream wins).
    pub fn advance<'a>(&self, positions: impl IntoIterator<Item = &'a SourcePosition>) {
        let mut state = self.lock();
        for p in positions {
            if state.retired.contains(&*p.container_id) {
                continue;
            }
            state
                .containers
                .entry(p.container_id.to_string())
                .or_default()
                .set(p.stream, p.position);
            state.dirty = true;
        }
    }

    /// Records where this run starts reading container `id`, unless it has an entry already
    /// (or is gone). Should the run die before any of its lines is acknowledged, the next
    /// run reads on from here instead of taking the container for one it never saw (read
    /// from a second before its own start, which would skip what was written meanwhile).
    pub fn begin(&self, id: &str, from: StreamPositions) {
        let mut state = self.lock();
        if state.retired.contains(id) || state.containers.contains_key(id) {
            return;
        }
        state.containers.insert(id.to_string(), from);
        state.dirty = true;
    }

    /// Forgets container `id` for good: it no longer exists, so its log cannot be read again.
    pub fn remove(&self, id: &str) {
        let mut state = self.lock();
        if state.containers.remove(id).is_some() {
            state.dirty = true;
        }
        state.retired.insert(id.to_string());
    }

    /// Writes the store if it changed since the last write; blocking (fsync), so call it
    /// off the async runtime. Returns whether a file was written.
    pub fn persist(&self) -> io::Result<bool> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = {
            let mut state = self.lock();
            if !state.dirty {
                return Ok(false);
            }
            state.dirty = false;
            state.containers.clone()
        };
        let file = CheckpointFile {
            format: FORMAT.into(),
            version: VERSION,
            containers: snapshot,
        };
        let written = serde_json::to_vec_pretty(&file)
            .map_err(io::Error::other)
            .and_then(|bytes| write_atomically(path, &bytes));
        if written.is_err() {
            // Try again next time.
            self.lock().dirty = true;
        }
        written.map(|()| true)
    }
}

/// Reads a checkpoint file: `Ok(None)` when there is none, `Err` with the reason when it
/// cannot be used.
fn read_file(path: &Path) -> Result<Option<BTreeMap<String, StreamPositions>>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    let header: Header =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a checkpoint file: {e}"))?;
    if header.format != FORMAT {
        return Err(format!(
            "format is '{}', expected '{FORMAT}'",
            header.format.chars().take(64).collect::<String>()
        ));
    }
    if header.version != VERSION {
        return Err(format!(
            "version {} is not supported by this build (reads version {VERSION})",
            header.version
        ));
    }
    let file: CheckpointFile =
        serde_json::from_slice(&bytes).map_err(|e| format!("malformed checkpoint file: {e}"))?;
    Ok(Some(file.containers))
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is synced.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `store` every [`PERSIST_INTERVAL`] while it changes, until `stop` is cancelled.
/// The final write on shutdown is the caller's ([`persist_now`]), after the batcher is done.
pub async fn persist_periodically(store: Arc<CheckpointStore>, stop: CancellationToken) {
    if store.path().is_none() {
        return;
    }
    let mut failing = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(PERSIST_INTERVAL) => {}
            () = stop.cancelled() => return,
        }
        let ok = persist_now(Arc::clone(&store), failing).await;
        failing = !ok;
    }
}

/// Writes `store` now on a blocking thread; logs a failure (at warn unless `quiet`) and
/// returns whether the store is on disk.
pub async fn persist_now(store: Arc<CheckpointStore>, quiet: bool) -> bool {
    let path = store
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match tokio::task::spawn_blocking(move || store.persist()).await {
        Ok(Ok(written)) => {
            if written {
                debug!(path = %path, "checkpoints written");
            }
            true
        }
        Ok(Err(error)) if quiet => {
            debug!(path = %path, error = %error, "cannot write checkpoints");
            false
        }
        Ok(Err(error)) => {
            warn!(path = %path, error = %error, "cannot write checkpoints; will retry");
            false
        }
        Err(error) => {
            warn!(path = %path, error = %error, "checkpoint writer failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(ts: i64, seq: u32) -> Position {
        Position {
            ts: Timestamp(ts),
            seq,
        }
    }

    fn at(id: &str, stream: Stream, ts: i64, seq: u32) -> SourcePosition {
        SourcePosition {
            container_id: id.into(),
            stream,
            position: pos(ts, seq),
        }
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(store.previous_run(), None, "a first run");
        assert!(
            store.persist().unwrap(),
            "a new store writes its file once, for the next run to see it was alive"
        );
        assert!(!store.persist().unwrap(), "nothing new to write");
        store.advance(&[
            at("a", Stream::Stdout, 10, 0),
            at("a", Stream::Stdout, 20, 1),
            at("a", Stream::Stderr, 15, 0),
            at("b", Stream::Stderr, 5, 2),
        ]);
        assert!(store.persist().unwrap());
        assert!(
            !store.persist().unwrap(),
            "unchanged store is not rewritten"
        );

        let again = CheckpointStore::open(dir.path()).unwrap();
        let age = Timestamp::now().as_nanos() - again.previous_run().unwrap().as_nanos();
        assert!(
            (0..60_000_000_000).contains(&age),
            "the earlier run was alive moments ago: {age} ns"
        );
        let a = again.get("a").unwrap();
        assert_eq!(a.stdout, Some(pos(20, 1)));
        assert_eq!(a.stderr, Some(pos(15, 0)));
        assert_eq!(again.get("b").unwrap().stderr, Some(pos(5, 2)));
        assert_eq!(again.container_ids(), ["a", "b"]);

        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            text.contains("\"format\": \"shiplog-checkpoints\""),
            "{text}"
        );
        assert!(text.contains("\"version\": 1"), "{text}");
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        store.advance(&[at("a", Stream::Stdout, 1, 0)]);
        store.persist().unwrap();
        store.advance(&[at("a", Stream::Stdout, 2, 0)]);
        store.persist().unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        let again = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(again.get("a").unwrap().stdout, Some(pos(2, 0)));
    }

    #[test]
    fn a_corrupt_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [&[u8]; 4] = [
            b"{\"format\":\"shiplog-checkpoints\",\"version\":1,\"contai",
            b"\xff\xfe not json",
            b"{\"format\":\"something-else\",\"version\":1,\"containers\":{}}",
            b"{\"format\":\"shiplog-checkpoints\",\"version\":1,\"containers\":{\"a\":{\"stdout\":3}}}",
        ];
        for case in cases {
            std::fs::write(dir.path().join(FILE_NAME), case).unwrap();
            let store = CheckpointStore::open(dir.path()).unwrap();
            assert!(
                store.container_ids().is_empty(),
                "{}",
                String::from_utf8_lossy(case)
            );
            // And the next write replaces the bad file.
            store.advance(&[at("a", Stream::Stdout, 1, 0)]);
            store.persist().unwrap();
            assert!(
                CheckpointStore::open(dir.path())
                    .unwrap()
                    .get("a")
                    .is_some()
            );
        }
    }

    #[test]
    fn another_version_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            r#"{"format":"shiplog-checkpoints","version":2,"containers":{"a":{}},"extra":1}"#,
        )
        .unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert!(store.container_ids().is_empty());
    }

    #[test]
    fn reads_the_version_1_fixture() {
        let fixture = include_str!("../testdata/checkpoints-v1.json");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), fixture).unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let c = store.get("4f1c2a9e0b7d").unwrap();
        assert_eq!(
            c.stdout.unwrap().ts,
            Timestamp::parse_rfc3339("2026-11-22T03:09:44.123456789Z").unwrap()
        );
        assert_eq!(c.stdout.unwrap().seq, 2);
        assert_eq!(c.stderr, None);
    }

    #[test]
    fn a_begun_container_keeps_its_start_until_an_ack_moves_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        let mut start = StreamPositions::default();
        start.set(Stream::Stdout, pos(5, u32::MAX));
        store.begin("a", start);
        store.begin("b", StreamPositions::default());
        assert!(store.persist().unwrap());
        let again = CheckpointStore::open(dir.path()).unwrap();
        assert_eq!(again.get("a"), Some(start), "the start survives a restart");
        assert_eq!(
            again.get("b"),
            Some(StreamPositions::default()),
            "read from the beginning: an entry with no position"
        );

        // A second begin (a later task of the same run) does not move an entry back.
        again.advance(&[at("a", Stream::Stdout, 9, 0)]);
        again.begin("a", start);
        assert_eq!(again.get("a").unwrap().stdout, Some(pos(9, 0)));
        // Nor brings back a container that is gone.
        again.remove("b");
        again.begin("b", StreamPositions::default());
        assert_eq!(again.get("b"), None);
    }

    #[test]
    fn a_removed_container_stays_removed_despite_late_acks() {
        let store = CheckpointStore::in_memory();
        store.advance(&[at("a", Stream::Stdout, 1, 0)]);
        store.remove("a");
        store.advance(&[at("a", Stream::Stdout, 2, 0)]);
        assert_eq!(store.get("a"), None);
        assert!(
            !store.persist().unwrap(),
            "in-memory stores are never written"
        );
    }
}
