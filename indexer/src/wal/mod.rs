//! Write-ahead log: an ingest is acknowledged only once its batch is appended here and
//! fsynced. Concurrent batches share one fsync (group commit).
//!
//! The WAL thread owns the files and the id [`Dedupe`] set: it drops events already stored,
//! appends what is new, syncs once per group, then publishes the events to live tail,
//! forwards them to the tantivy writer (a bounded, blocking hand-off: a slow writer slows
//! the WAL thread, whose own queue then fills and ingest answers 429), and answers every
//! waiting ingest. After each tantivy commit the writer records the covered sequence number
//! in [`checkpoint`]; segments wholly covered by it are deleted, so the WAL at rest holds
//! only what tantivy has not committed yet.

pub mod checkpoint;
pub mod record;
pub mod replay;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use shiplog_core::Event;
use tokio::sync::{broadcast, oneshot};

use crate::dedupe::Dedupe;
use crate::error::{IndexerError, Result};
use crate::stats::Stats;
use crate::store::Store;
use crate::writer::{Durable, IngestAck, WriterMsg};

/// Most batches written under one fsync.
const MAX_GROUP: usize = 512;

/// A batch ready for the WAL: events with ids, their JSON, and the compressed payload.
pub struct Prepared {
    /// The events.
    pub events: Vec<Event>,
    /// Each event's JSON, reused as the stored `_source`.
    pub sources: Vec<Vec<u8>>,
}

impl Prepared {
    /// Serialises the events once; runs on a blocking thread.
    pub fn new(events: Vec<Event>) -> Self {
        let sources = events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("events serialise"))
            .collect();
        Prepared { events, sources }
    }
}

/// The WAL payload for a set of event JSON documents: zstd-compressed NDJSON.
pub fn payload(sources: &[Vec<u8>]) -> Vec<u8> {
    PayloadEncoder::new().encode(sources)
}

/// Encodes payloads with one reused zstd context (creating one per batch costs more than
/// compressing a small batch).
pub struct PayloadEncoder {
    raw: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
}

impl PayloadEncoder {
    /// An encoder at zstd level 1: the WAL is short-lived, speed matters more than size.
    pub fn new() -> Self {
        let zstd = zstd::bulk::Compressor::new(1).expect("zstd level 1 is valid");
        PayloadEncoder {
            raw: Vec::new(),
            zstd,
        }
    }

    /// zstd-compressed NDJSON of the documents.
    pub fn encode(&mut self, sources: &[Vec<u8>]) -> Vec<u8> {
        self.raw.clear();
        for s in sources {
            self.raw.extend_from_slice(s);
            self.raw.push(b'\n');
        }
        self.zstd
            .compress(&self.raw)
            .expect("in-memory zstd compression does not fail")
    }
}

impl Default for PayloadEncoder {
    fn default() -> Self {
        Self::new()
    }
}

enum Msg {
    Append(Prepared, oneshot::Sender<Result<IngestAck>>),
    Shutdown,
}

/// The sending side of the WAL thread.
pub struct WalHandle {
    tx: Sender<Msg>,
    capacity: usize,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What the WAL thread needs.
pub struct WalParts {
    /// The `wal/` directory.
    pub dir: PathBuf,
    /// First sequence number to write.
    pub next_seq: u64,
    /// Roll to a new segment past this size.
    pub segment_bytes: u64,
    /// Batches queued before ingest answers busy.
    pub queue_batches: usize,
    /// Ids already stored (seeded by replay).
    pub dedupe: Dedupe,
    /// The index, asked about ids the dedupe set cannot vouch for.
    pub store: Arc<Store>,
    /// Live tail.
    pub tail: broadcast::Sender<Arc<Event>>,
    /// Segments left from before the start that still hold uncommitted records.
    pub older: Vec<(u64, PathBuf)>,
    /// Where durable batches go next.
    pub writer: Sender<WriterMsg>,
    /// Highest sequence number tantivy commits cover (set by the writer).
    pub covered: Arc<AtomicU64>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Lossless consumers of durable batches (see [`crate::observer`]).
    pub observers: crate::observer::Observers,
}

impl WalHandle {
    /// Opens a fresh segment and starts the WAL thread.
    pub fn start(mut parts: WalParts) -> Result<Self> {
        let capacity = parts.queue_batches.max(1);
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let mut files = Segments::open_fresh(&parts.dir, parts.next_seq, parts.segment_bytes)?;
        // A clean stop leaves an empty segment named after the next sequence number, and
        // the fresh active segment was just created under that very name: listed as older
        // too, it would be deleted as covered while appends go on into the unlinked file.
        files.older = std::mem::take(&mut parts.older)
            .into_iter()
            .filter(|(_, path)| *path != files.active_path)
            .collect();
        let mut worker = Worker {
            rx,
            files,
            parts,
            encoder: PayloadEncoder::new(),
        };
        let thread = std::thread::Builder::new()
            .name("shiplog-wal".into())
            .spawn(move || worker.run())
            .map_err(|source| IndexerError::Io {
                action: "spawn WAL thread for",
                path: "wal".into(),
                source,
            })?;
        Ok(WalHandle {
            tx,
            capacity,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Queues a batch; resolves once it is durable (or failed). Busy when the queue is full.
    pub fn submit(&self, batch: Prepared) -> Result<oneshot::Receiver<Result<IngestAck>>> {
        let (ack, rx) = oneshot::channel();
        match self.tx.try_send(Msg::Append(batch, ack)) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(IndexerError::Busy {
                capacity: self.capacity,
            }),
            Err(TrySendError::Disconnected(_)) => Err(IndexerError::Closed),
        }
    }

    /// Finishes queued batches and stops the thread.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
            && t.join().is_err()
        {
            tracing::error!("WAL thread panicked during shutdown");
        }
    }
}

/// The segment files: the active one being appended, and older ones awaiting deletion.
struct Segments {
    dir: PathBuf,
    active: File,
    active_path: PathBuf,
    active_len: u64,
    active_first: u64,
    /// Older segments: (first seq, path), oldest first.
    older: VecDeque<(u64, PathBuf)>,
    next_seq: u64,
    segment_bytes: u64,
    buf: Vec<u8>,
}

/// The file name of the segment whose first record is `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> IndexerError + 'a {
    move |source| IndexerError::from_io(action, path, source)
}

impl Segments {
    fn open_fresh(dir: &Path, next_seq: u64, segment_bytes: u64) -> Result<Self> {
        let (active, active_path) = Self::create(dir, next_seq)?;
        Ok(Segments {
            dir: dir.to_path_buf(),
            active,
            active_path,
            active_len: record::HEADER_LEN,
            active_first: next_seq,
            older: VecDeque::new(),
            next_seq,
            segment_bytes: segment_bytes.max(1024 * 1024),
            buf: Vec::new(),
        })
    }

    fn create(dir: &Path, first: u64) -> Result<(File, PathBuf)> {
        let path = dir.join(segment_name(first));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        f.write_all(&record::header())
            .map_err(io_err("write", &path))?;
        f.sync_all().map_err(io_err("sync", &path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", dir))?;
        Ok((f, path))
    }

    /// Rolls to a new active segment starting at the next sequence number.
    fn roll(&mut self) -> Result<()> {
        let (f, p) = Self::create(&self.dir, self.next_seq)?;
        let old = std::mem::replace(&mut self.active_path, p);
        self.older.push_back((self.active_first, old));
        self.active = f;
        self.active_len = record::HEADER_LEN;
        self.active_first = self.next_seq;
        Ok(())
    }

    /// Appends a group of payloads and syncs once; returns their sequence numbers.
    /// On failure the active segment is cut back to where the group started.
    fn append_group(&mut self, payloads: &[Vec<u8>]) -> Result<Vec<u64>> {
        if self.active_len >= self.segment_bytes {
            self.roll()?;
        }
        self.buf.clear();
        let mut seqs = Vec::with_capacity(payloads.len());
        let mut seq = self.next_seq;
        for p in payloads {
            record::encode(seq, p, &mut self.buf);
            seqs.push(seq);
            seq += 1;
        }
        let start = self.active_len;
        let written = self
            .active
            .write_all(&self.buf)
            .and_then(|_| self.active.sync_data());
        if let Err(e) = written {
            let err = IndexerError::from_io("append to", &self.active_path, e);
            // Cut back a partial write so the segment stays readable, and move the write
            // position back with it (truncating does not, and the next append would leave a
            // hole that reads as damage); if even that fails, start a new segment.
            let cut = self
                .active
                .set_len(start)
                .and_then(|_| self.active.seek(std::io::SeekFrom::Start(start)))
                .and_then(|_| self.active.sync_data());
            if cut.is_err() {
                let _ = self.roll();
            }
            return Err(err);
        }
        self.active_len += self.buf.len() as u64;
        self.next_seq = seq;
        Ok(seqs)
    }

    /// Deletes segments wholly covered by `covered`, rolling the active one if it is too.
    fn release(&mut self, covered: u64) {
        let has_records = self.active_len > record::HEADER_LEN;
        if has_records && covered + 1 >= self.next_seq && self.roll().is_err() {
            return;
        }
        while let Some((first, path)) = self.older.front().cloned() {
            // A segment is done when the one after it starts at or below covered + 1.
            let next_first = self.older.get(1).map_or(self.active_first, |(f, _)| *f);
            if next_first > covered + 1 {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::debug!(segment = %path.display(), first, "WAL segment released");
                    self.older.pop_front();
                }
                Err(e) => {
                    tracing::warn!(segment = %path.display(), error = %e, "cannot delete WAL segment");
                    break;
                }
            }
        }
    }

    /// Bytes currently in segment files.
    fn bytes(&self) -> u64 {
        let older: u64 = self
            .older
            .iter()
            .filter_map(|(_, p)| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        older + self.active_len
    }
}

struct Worker {
    rx: Receiver<Msg>,
    files: Segments,
    parts: WalParts,
    encoder: PayloadEncoder,
}

struct Pending {
    batch: Prepared,
    ack: oneshot::Sender<Result<IngestAck>>,
    duplicates: usize,
}

impl Worker {
    fn run(&mut self) {
        let mut released = 0;
        loop {
            let first = match self.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    released = self.release(released);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut group = Vec::new();
            let mut stop = false;
            let mut push =
                |m: Msg, group: &mut Vec<(Prepared, oneshot::Sender<Result<IngestAck>>)>| match m {
                    Msg::Append(b, a) => group.push((b, a)),
                    Msg::Shutdown => stop = true,
                };
            push(first, &mut group);
            while group.len() < MAX_GROUP {
                match self.rx.try_recv() {
                    Ok(m) => push(m, &mut group),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.write_group(group);
            }
            released = self.release(released);
            if stop {
                // Answer anything that raced in behind the shutdown request.
                while let Ok(Msg::Append(_, ack)) = self.rx.try_recv() {
                    let _ = ack.send(Err(IndexerError::Closed));
                }
                return;
            }
        }
    }

    fn release(&mut self, last: u64) -> u64 {
        let covered = self.parts.covered.load(Ordering::Acquire);
        if covered != last {
            self.files.release(covered);
            self.parts
                .stats
                .wal_bytes
                .store(self.files.bytes(), Ordering::Relaxed);
        }
        covered
    }

    fn write_group(&mut self, group: Vec<(Prepared, oneshot::Sender<Result<IngestAck>>)>) {
        let mut pending = Vec::with_capacity(group.len());
        let store = self.parts.store.clone();
        let mut lookup = store.id_lookup();
        for (batch, ack) in group {
            let keep: Vec<bool> = batch
                .events
                .iter()
                .map(|e| {
                    self.parts
                        .dedupe
                        .check_new(e.id, e.ts, || lookup.contains(e))
                        .unwrap_or_else(|err| {
                            // Cannot tell: store it. A duplicate is better than a lost event.
                            tracing::warn!(error = %err, "duplicate lookup failed; keeping the event");
                            true
                        })
                })
                .collect();
            let duplicates = keep.iter().filter(|k| !**k).count();
            // Events are large: a batch without duplicates moves on whole, not event by event.
            let kept = if duplicates == 0 {
                batch
            } else {
                let (events, sources) = batch
                    .events
                    .into_iter()
                    .zip(batch.sources)
                    .zip(&keep)
                    .filter_map(|(pair, &k)| k.then_some(pair))
                    .unzip();
                Prepared { events, sources }
            };
            pending.push(Pending {
                batch: kept,
                ack,
                duplicates,
            });
        }
        let encoder = &mut self.encoder;
        let payloads: Vec<Vec<u8>> = pending
            .iter()
            .filter(|p| !p.batch.events.is_empty())
            .map(|p| encoder.encode(&p.batch.sources))
            .collect();
        let seqs = if payloads.is_empty() {
            Ok(Vec::new())
        } else {
            self.files.append_group(&payloads)
        };
        let seqs = match seqs {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, batches = pending.len(), "WAL append failed; batches refused");
                self.parts.dedupe.forget(
                    pending
                        .iter()
                        .flat_map(|p| p.batch.events.iter().map(|ev| (ev.id, ev.ts))),
                );
                for p in pending {
                    let _ = p.ack.send(Err(e.clone_kind()));
                }
                return;
            }
        };
        self.parts
            .stats
            .wal_bytes
            .store(self.files.bytes(), Ordering::Relaxed);
        let mut seqs = seqs.into_iter();
        for p in pending {
            let ack = IngestAck {
                accepted: p.batch.events.len(),
                duplicates: p.duplicates,
            };
            self.parts
                .stats
                .duplicates
                .fetch_add(p.duplicates as u64, Ordering::Relaxed);
            if !p.batch.events.is_empty() {
                let seq = seqs.next().unwrap_or(0);
                let events: Vec<Arc<Event>> = p.batch.events.into_iter().map(Arc::new).collect();
                for e in &events {
                    let _ = self.parts.tail.send(e.clone());
                }
                self.parts.observers.publish(&events);
                self.parts
                    .stats
                    .events
                    .fetch_add(events.len() as u64, Ordering::Relaxed);
                let durable = Durable {
                    seq,
                    events,
                    sources: p.batch.sources,
                };
                if self.parts.writer.send(WriterMsg::Batch(durable)).is_err() {
                    tracing::error!(
                        "tantivy writer is gone; the batch is in the WAL and will be replayed at restart"
                    );
                }
            }
            let _ = p.ack.send(Ok(ack));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiplog_core::{EventId, Timestamp};

    fn fixture_events(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut e = Event::log(
                    Timestamp(1_795_000_000_000_000_000 + i as i64),
                    format!("fixture line {i}"),
                );
                e.id = EventId(u128::from(i) + 1);
                e.service = "fixture".into();
                serde_json::to_vec(&e).unwrap()
            })
            .collect()
    }

    /// Writes `testdata/wal-v1/`: run with `--ignored` only when a new format version is
    /// introduced, never to "fix" the compatibility test.
    #[test]
    #[ignore]
    fn write_v1_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/wal-v1");
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = record::header().to_vec();
        record::encode(1, &payload(&fixture_events(2)), &mut bytes);
        record::encode(2, &payload(&fixture_events(3)[2..]), &mut bytes);
        std::fs::write(dir.join(segment_name(1)), bytes).unwrap();
        checkpoint::write(&dir, 1).unwrap();
    }

    #[test]
    fn the_v1_fixture_replays_its_uncommitted_record() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/wal-v1");
        let tmp = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), tmp.path().join(f.file_name())).unwrap();
        }
        let scan = replay::scan(tmp.path()).unwrap();
        assert_eq!(scan.covered, 1);
        assert_eq!(scan.records.len(), 1);
        let (events, _) = replay::decode(&scan.records[0]).unwrap();
        assert_eq!(events[0].message, "fixture line 2");
    }
}
