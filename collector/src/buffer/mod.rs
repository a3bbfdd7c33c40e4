//! The disk buffer: a bounded, ordered queue of encoded batches in `state_dir/buffer/`,
//! used while the receiver is down or slow so the collector keeps reading meanwhile.
//!
//! ```text
//! Batcher ──append──▶ [segment 7][segment 8][segment 9] ──front/pop──▶ replay ──▶ Sink
//!                      oldest                 newest (written)          in order
//! ```
//!
//! - Batches are appended to the newest segment file and replayed from the oldest, one at
//!   a time, in order; a record is removed only once the receiver acknowledged it (or
//!   rejected it as malformed). A segment whose records are all gone is deleted, so a
//!   drained buffer holds no files at all.
//! - The format ([`segment`], [`record`]) carries a magic number and version; each record
//!   holds the zstd NDJSON body exactly as posted plus the checkpoint positions it covers.
//! - Appends are not fsynced: a power cut can lose the buffer's tail. Checkpoints never
//!   advance for a buffered batch before its acknowledgement, so those lines are read
//!   again from Docker. After a crash the torn last record is cut off; at restart each
//!   remaining segment is replayed from its start (a record acknowledged just before the
//!   crash may be sent again: its event ids are deterministic, so the indexer drops the
//!   duplicates).
//!
//! # When the buffer is full
//!
//! Bounded by [`CollectorConfig::buffer_max_bytes`](crate::CollectorConfig::buffer_max_bytes)
//! (default 1 GiB). What happens then is [`WhenFull`]: `block` (default) stops taking
//! events, so the sources wait and Docker keeps the lines in its own log files; or
//! `drop_newest` drops the batch that does not fit, counted in
//! `shiplog_collector_events_dropped_total{reason="buffer_full"}` and logged once per
//! interval. At shutdown a batch is written even past the cap, so nothing held is lost.

pub mod record;
pub mod segment;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub use record::BufferedBatch;
use segment::{HeaderError, RecordRef};

use crate::telemetry;

/// Name of the buffer directory inside the state directory.
pub const DIR_NAME: &str = "buffer";
/// Default cap on buffered bytes.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// How full the buffer is, in percent, when a warning says so.
const FILL_WARNINGS: [u8; 3] = [50, 80, 95];
/// File name suffix of segments.
const SEGMENT_SUFFIX: &str = ".seg";

/// What happens to a batch when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop taking events until the buffer drains: the sources wait and Docker keeps the
    /// lines in its log files meanwhile (they are lost only if Docker rotates them away).
    #[default]
    Block,
    /// Drop the batch that does not fit, counting its events; reading goes on.
    DropNewest,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The buffer holds `buffer_max_bytes` already.
    #[error("disk buffer is full ({bytes} bytes buffered, cap {max} bytes)")]
    Full {
        /// Bytes buffered now.
        bytes: u64,
        /// The cap.
        max: u64,
    },
    /// The record is larger than a record may be.
    #[error("batch of {0} bytes is too large for the disk buffer: lower batch_max_bytes")]
    TooLarge(usize),
    /// Writing failed (disk full, permissions).
    #[error("cannot write to the disk buffer: {0}")]
    Io(#[from] io::Error),
}

/// One segment file and the records of it not yet removed.
#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    records: VecDeque<RecordRef>,
}

/// The open segment new records go to.
#[derive(Debug)]
struct Writer {
    file: File,
    segment_id: u64,
    len: u64,
}

/// The buffer's files and index; blocking I/O. [`Buffer`] shares it with async code.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    writer: Option<Writer>,
    next_id: u64,
    bytes: u64,
    batches: u64,
}

impl DiskBuffer {
    /// Opens (creating) the buffer in `dir`: reads every segment, cuts a torn tail off the
    /// newest one, and sets files that are not segments of ours aside.
    pub fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name
                .strip_suffix(SEGMENT_SUFFIX)
                .and_then(|stem| stem.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let mut buffer = DiskBuffer {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes,
            segments: VecDeque::new(),
            writer: None,
            next_id: ids.last().map_or(0, |id| id + 1),
            bytes: 0,
            batches: 0,
        };
        let newest = ids.last().copied();
        for id in ids {
            buffer.load_segment(id, Some(id) == newest)?;
        }
        if buffer.batches > 0 {
            info!(
                dir = %dir.display(),
                batches = buffer.batches,
                bytes = buffer.bytes,
                "disk buffer holds batches from an earlier run; replaying them first"
            );
        }
        Ok(buffer)
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
    }

    fn load_segment(&mut self, id: u64, newest: bool) -> io::Result<()> {
        let path = self.segment_path(id);
        let mut reader = BufReader::new(File::open(&path)?);
        let mut header = Vec::with_capacity(segment::HEADER_BYTES as usize);
        (&mut reader)
            .take(segment::HEADER_BYTES)
            .read_to_end(&mut header)?;
        match segment::check_header(&header) {
            Ok(()) => {}
            Err(HeaderError::NotASegment) if header.len() < segment::HEADER_BYTES as usize => {
                // Created, then crashed before its header was whole: it holds nothing.
                drop(reader);
                std::fs::remove_file(&path)?;
                return Ok(());
            }
            Err(error @ HeaderError::NotASegment) => {
                let aside = path.with_extension("bad");
                warn!(path = %path.display(), aside = %aside.display(), error = %error, "setting an unreadable buffer segment aside");
                drop(reader);
                std::fs::rename(&path, &aside)?;
                return Ok(());
            }
            Err(error @ HeaderError::Version(_)) => {
                warn!(path = %path.display(), error = %error, "leaving a buffer segment of another version alone; it is not replayed");
                return Ok(());
            }
        }
        let scan = segment::scan(reader)?;
        if let Some(stop) = &scan.stop {
            let file_len = std::fs::metadata(&path)?.len();
            let lost = file_len.saturating_sub(scan.good_len);
            if newest {
                // A torn tail after a crash: cut it off at the last good record.
                info!(path = %path.display(), bytes = lost, reason = ?stop, "cutting a torn tail off the disk buffer");
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(scan.good_len)?;
            } else {
                warn!(path = %path.display(), bytes = lost, reason = ?stop, "disk buffer segment is damaged; records after the damage are skipped");
            }
        }
        if scan.records.is_empty() {
            std::fs::remove_file(&path)?;
            return Ok(());
        }
        self.batches += scan.records.len() as u64;
        self.bytes += scan.records.iter().map(|r| r.len).sum::<u64>();
        self.segments.push_back(Segment {
            id,
            path,
            records: scan.records.into(),
        });
        Ok(())
    }

    /// Bytes of records buffered (frames included, segment headers not).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Batches buffered.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.batches == 0
    }

    /// Appends `batch` after every batch held. Over the cap it fails with
    /// [`AppendError::Full`] unless `force` is set or the buffer is empty (a lone batch
    /// larger than the cap still goes through, so a small cap never blocks for good).
    pub fn append(&mut self, batch: &BufferedBatch, force: bool) -> Result<(), AppendError> {
        let payload = batch.encode();
        if payload.len() > segment::MAX_RECORD_BYTES as usize {
            return Err(AppendError::TooLarge(payload.len()));
        }
        let framed = segment::frame(&payload);
        let len = framed.len() as u64;
        if !force && self.batches > 0 && self.bytes + len > self.max_bytes {
            return Err(AppendError::Full {
                bytes: self.bytes,
                max: self.max_bytes,
            });
        }
        let roll = match &self.writer {
            None => true,
            Some(w) => w.len + len > self.segment_bytes && w.len > segment::HEADER_BYTES,
        };
        if roll {
            self.roll()?;
        }
        let writer = self.writer.as_mut().expect("rolled above");
        let offset = writer.len;
        if let Err(error) = writer.file.write_all(&framed) {
            // Do not leave half a record for the next append to follow: cut it off, and
            // start a new segment next time in case that failed too.
            let _ = writer.file.set_len(offset);
            self.writer = None;
            return Err(error.into());
        }
        writer.len += len;
        let segment = self
            .segments
            .back_mut()
            .expect("the writer's segment is listed");
        debug_assert_eq!(segment.id, writer.segment_id);
        segment.records.push_back(RecordRef { offset, len });
        self.bytes += len;
        self.batches += 1;
        Ok(())
    }

    /// Closes the current segment and starts a new one.
    fn roll(&mut self) -> io::Result<()> {
        if let Some(old) = self.writer.take()
            && let Some(last) = self.segments.back()
            && last.id == old.segment_id
            && last.records.is_empty()
        {
            std::fs::remove_file(&last.path)?;
            self.segments.pop_back();
        }
        let id = self.next_id;
        let path = self.segment_path(id);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        file.write_all(&segment::header())?;
        self.next_id += 1;
        self.segments.push_back(Segment {
            id,
            path,
            records: VecDeque::new(),
        });
        self.writer = Some(Writer {
            file,
            segment_id: id,
            len: segment::HEADER_BYTES,
        });
        Ok(())
    }

    /// The oldest batch, without removing it: `Ok(None)` when empty, `Ok(Some(Err))` with
    /// the reason when its record cannot be read back (it should then be popped).
    pub fn front(&self) -> io::Result<Option<Result<BufferedBatch, String>>> {
        let Some((segment, record)) = self
            .segments
            .iter()
            .find_map(|s| s.records.front().map(|r| (s, *r)))
        else {
            return Ok(None);
        };
        let mut file = File::open(&segment.path)?;
        file.seek(SeekFrom::Start(record.offset))?;
        let mut bytes = Vec::new();
        file.take(record.len).read_to_end(&mut bytes)?;
        let decoded = segment::payload(&bytes)
            .map_err(|stop| format!("record at {} is damaged: {stop:?}", record.offset))
            .and_then(|payload| BufferedBatch::decode(payload).map_err(|e| e.to_string()));
        Ok(Some(decoded))
    }

    /// Removes the oldest batch; deletes its segment once that holds no more.
    pub fn pop_front(&mut self) -> io::Result<()> {
        let Some(segment) = self.segments.front_mut() else {
            return Ok(());
        };
        if let Some(record) = segment.records.pop_front() {
            self.bytes -= record.len;
            self.batches -= 1;
            if !segment.records.is_empty() {
                return Ok(());
            }
        }
        // Empty now: delete it, unless it is still being written and more will come.
        let is_writer = self
            .writer
            .as_ref()
            .is_some_and(|w| w.segment_id == segment.id);
        if is_writer && self.batches > 0 {
            return Ok(());
        }
        if is_writer {
            self.writer = None;
        }
        let path = segment.path.clone();
        self.segments.pop_front();
        std::fs::remove_file(&path)
    }
}

/// The disk buffer shared between the batcher's loop and its replay, with its size
/// readable without waiting for file I/O. Every method that touches files runs on a
/// blocking thread.
#[derive(Debug)]
pub struct Buffer {
    inner: Mutex<DiskBuffer>,
    bytes: AtomicU64,
    batches: AtomicU64,
    /// The highest of [`FILL_WARNINGS`] warned about since the buffer last drained.
    warned: AtomicU8,
    /// What happens to a batch that does not fit.
    pub when_full: WhenFull,
}

impl Buffer {
    /// Opens the buffer in `dir` (blocking: call it off the async runtime).
    pub fn open(dir: &Path, max_bytes: u64, when_full: WhenFull) -> io::Result<Self> {
        let disk = DiskBuffer::open(dir, max_bytes, SEGMENT_BYTES)?;
        let buffer = Buffer {
            bytes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            warned: AtomicU8::new(0),
            inner: Mutex::new(disk),
            when_full,
        };
        buffer.publish(&buffer.lock());
        Ok(buffer)
    }

    fn lock(&self) -> MutexGuard<'_, DiskBuffer> {
        // Every update leaves the index consistent with the files, so carry on after a
        // panic elsewhere.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, disk: &DiskBuffer) {
        self.bytes.store(disk.bytes(), Ordering::Relaxed);
        self.batches.store(disk.batches(), Ordering::Relaxed);
        telemetry::buffer_size(disk.bytes(), disk.batches());
        self.warn_filling(disk.bytes(), disk.max_bytes);
    }

    /// Warns once as the buffer passes each of [`FILL_WARNINGS`], and says when it has
    /// drained again.
    fn warn_filling(&self, bytes: u64, max: u64) {
        let percent = (bytes.saturating_mul(100) / max.max(1)).min(100) as u8;
        let warned = self.warned.load(Ordering::Relaxed);
        if let Some(&level) = FILL_WARNINGS.iter().rev().find(|&&l| percent >= l)
            && level > warned
        {
            self.warned.store(level, Ordering::Relaxed);
            warn!(
                percent,
                bytes,
                max_bytes = max,
                "the disk buffer is filling: the indexer takes batches slower than the containers write; when it is full, reading stops (buffer_when_full = \"block\") and Docker may rotate unread lines away; see shiplog_collector_buffer_bytes"
            );
        } else if bytes == 0 && warned > 0 {
            self.warned.store(0, Ordering::Relaxed);
            info!("the disk buffer has drained");
        }
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Batches buffered.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.batches() == 0
    }

    /// Appends on a blocking thread (see [`DiskBuffer::append`]).
    pub async fn append(
        self: &Arc<Self>,
        batch: BufferedBatch,
        force: bool,
    ) -> Result<(), (BufferedBatch, AppendError)> {
        let this = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let mut disk = this.lock();
            let result = disk.append(&batch, force);
            this.publish(&disk);
            result.map_err(|e| (batch, e))
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// The oldest batch, read on a blocking thread (see [`DiskBuffer::front`]).
    pub async fn front(self: &Arc<Self>) -> io::Result<Option<Result<BufferedBatch, String>>> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.lock().front())
            .await
            .map_err(io::Error::other)?
    }

    /// Removes the oldest batch on a blocking thread.
    pub async fn pop_front(self: &Arc<Self>) -> io::Result<()> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut disk = this.lock();
            let result = disk.pop_front();
            this.publish(&disk);
            result
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests;
