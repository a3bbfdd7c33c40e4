//! The writer thread: takes batches from a bounded queue, drops duplicates, adds documents
//! to the day's tantivy writer, publishes fresh events to live tail, and commits at least
//! once per `commit_interval` while data flows. A batch is acknowledged only after the commit
//! that covers it, so an ack means the events are on disk.
//!
//! When the queue is full, [`WriterHandle::submit`] fails at once with `Busy` rather than
//! waiting: the HTTP layer turns that into 429 and the sender keeps the batch and retries.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use shiplog_core::{Event, EventId};
use tantivy::{IndexWriter, TantivyDocument};
use tokio::sync::{broadcast, oneshot};

use crate::config::IndexerConfig;
use crate::dedupe::Dedupe;
use crate::error::{IndexerError, Result};
use crate::stats::Stats;
use crate::store::{DayIndex, Store};

/// How many day writers stay open at once; older days are committed and closed.
const MAX_OPEN_WRITERS: usize = 2;

/// What one ingested batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct IngestAck {
    /// Events newly stored.
    pub accepted: usize,
    /// Events dropped because an event with the same id was already stored.
    pub duplicates: usize,
}

enum WriterMsg {
    Batch {
        events: Vec<Event>,
        ack: oneshot::Sender<Result<IngestAck>>,
    },
    Shutdown,
}

/// The sending side of the writer thread.
pub struct WriterHandle {
    tx: Sender<WriterMsg>,
    capacity: usize,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    /// Starts the writer thread.
    pub fn start(
        store: Arc<Store>,
        config: &IndexerConfig,
        tail: broadcast::Sender<Arc<Event>>,
        stats: Arc<Stats>,
    ) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(config.queue_batches.max(1));
        let mut worker = Worker {
            store,
            rx,
            tail,
            stats,
            dedupe: Dedupe::new(config.dedupe_ids),
            writers: HashMap::new(),
            pending: Vec::new(),
            first_pending: None,
            last_commit: Instant::now(),
            commit_interval: config.commit_interval,
            min_commit_interval: config.min_commit_interval,
            writer_memory: (config.writer_memory_bytes / MAX_OPEN_WRITERS).max(30 * 1024 * 1024),
            writer_threads: config.writer_threads.max(1),
        };
        let thread = std::thread::Builder::new()
            .name("shiplog-writer".into())
            .spawn(move || worker.run())
            .map_err(|source| IndexerError::Io {
                action: "spawn writer thread for",
                path: "logs".into(),
                source,
            })?;
        Ok(WriterHandle {
            tx,
            capacity: config.queue_batches.max(1),
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Queues a batch; the receiver resolves once it is committed (or failed).
    pub fn submit(&self, events: Vec<Event>) -> Result<oneshot::Receiver<Result<IngestAck>>> {
        let (ack, rx) = oneshot::channel();
        match self.tx.try_send(WriterMsg::Batch { events, ack }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(IndexerError::Busy {
                capacity: self.capacity,
            }),
            Err(TrySendError::Disconnected(_)) => Err(IndexerError::Closed),
        }
    }

    /// Commits what is pending and stops the thread; waits for it.
    pub fn shutdown(&self) {
        let _ = self.tx.send(WriterMsg::Shutdown);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::error!("writer thread panicked during shutdown");
        }
    }
}

struct OpenWriter {
    day: Arc<DayIndex>,
    writer: IndexWriter<TantivyDocument>,
    dirty: bool,
    last_used: Instant,
}

struct Pending {
    ack: oneshot::Sender<Result<IngestAck>>,
    result: IngestAck,
    ids: Vec<EventId>,
}

struct Worker {
    store: Arc<Store>,
    rx: Receiver<WriterMsg>,
    tail: broadcast::Sender<Arc<Event>>,
    stats: Arc<Stats>,
    dedupe: Dedupe,
    writers: HashMap<String, OpenWriter>,
    pending: Vec<Pending>,
    first_pending: Option<Instant>,
    last_commit: Instant,
    commit_interval: Duration,
    min_commit_interval: Duration,
    writer_memory: usize,
    writer_threads: usize,
}

impl Worker {
    fn run(&mut self) {
        loop {
            let timeout = match self.first_pending {
                Some(first) => {
                    let deadline = (first + self.commit_interval)
                        .min(self.last_commit + self.min_commit_interval);
                    deadline.saturating_duration_since(Instant::now())
                }
                None => Duration::from_secs(1),
            };
            match self.rx.recv_timeout(timeout) {
                Ok(WriterMsg::Batch { events, ack }) => self.add_batch(events, ack),
                Ok(WriterMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    self.commit();
                    for w in self.writers.drain().map(|(_, w)| w) {
                        if let Err(e) = w.writer.wait_merging_threads() {
                            tracing::warn!(day = %w.day.day, error = %e, "merge did not finish cleanly at shutdown");
                        }
                    }
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.should_commit() {
                self.commit();
            }
        }
    }

    fn should_commit(&self) -> bool {
        let Some(first) = self.first_pending else {
            return false;
        };
        let now = Instant::now();
        now.duration_since(first) >= self.commit_interval
            || (self.rx.is_empty()
                && now.duration_since(self.last_commit) >= self.min_commit_interval)
    }

    fn add_batch(&mut self, events: Vec<Event>, ack: oneshot::Sender<Result<IngestAck>>) {
        let mut result = IngestAck::default();
        let mut ids = Vec::with_capacity(events.len());
        for event in events {
            if !self.dedupe.insert(event.id) {
                result.duplicates += 1;
                continue;
            }
            ids.push(event.id);
            if let Err(e) = self.add_event(&event) {
                for id in &ids {
                    self.dedupe.forget(*id);
                }
                let _ = ack.send(Err(e));
                return;
            }
            result.accepted += 1;
            let _ = self.tail.send(Arc::new(event));
        }
        self.stats
            .duplicates
            .fetch_add(result.duplicates as u64, Ordering::Relaxed);
        self.pending.push(Pending { ack, result, ids });
        self.first_pending.get_or_insert_with(Instant::now);
    }

    fn add_event(&mut self, event: &Event) -> Result<()> {
        let day = event.ts.day_string();
        if !self.writers.contains_key(&day) {
            self.open_writer(&day)?;
        }
        let source = serde_json::to_vec(event).map_err(|e| IndexerError::Corrupt(e.to_string()))?;
        self.stats
            .bytes_in
            .fetch_add(source.len() as u64, Ordering::Relaxed);
        let doc = self.store.fields().document(event, &source);
        let w = self.writers.get_mut(&day).ok_or(IndexerError::Closed)?;
        w.writer.add_document(doc)?;
        w.dirty = true;
        w.last_used = Instant::now();
        Ok(())
    }

    fn open_writer(&mut self, day: &str) -> Result<()> {
        if self.writers.len() >= MAX_OPEN_WRITERS {
            // Closing a writer needs its documents committed first.
            self.commit();
            let oldest = self
                .writers
                .iter()
                .min_by_key(|(_, w)| w.last_used)
                .map(|(d, _)| d.clone());
            if let Some(d) = oldest.and_then(|d| self.writers.remove(&d)) {
                tracing::debug!(day = %d.day.day, "closing idle day writer");
                if let Err(e) = d.writer.wait_merging_threads() {
                    tracing::warn!(day = %d.day.day, error = %e, "merge did not finish cleanly");
                }
            }
        }
        let index = self.store.day(day)?;
        let writer = index
            .index
            .writer_with_num_threads(self.writer_threads, self.writer_memory)?;
        self.writers.insert(
            day.to_string(),
            OpenWriter {
                day: index,
                writer,
                dirty: false,
                last_used: Instant::now(),
            },
        );
        Ok(())
    }

    fn commit(&mut self) {
        let mut failure = None;
        for w in self.writers.values_mut().filter(|w| w.dirty) {
            match w.writer.commit() {
                Ok(_) => {
                    w.dirty = false;
                    if let Err(e) = w.day.reader.reload() {
                        tracing::warn!(day = %w.day.day, error = %e, "reader reload failed");
                    }
                }
                Err(e) => {
                    tracing::error!(day = %w.day.day, error = %e, "commit failed; pending batches are refused");
                    if let Err(e) = w.writer.rollback() {
                        tracing::error!(day = %w.day.day, error = %e, "rollback failed");
                    }
                    w.dirty = false;
                    failure = Some(e.to_string());
                }
            }
        }
        self.last_commit = Instant::now();
        self.first_pending = None;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        for p in self.pending.drain(..) {
            match &failure {
                None => {
                    self.stats
                        .events
                        .fetch_add(p.result.accepted as u64, Ordering::Relaxed);
                    let _ = p.ack.send(Ok(p.result));
                }
                Some(msg) => {
                    for id in &p.ids {
                        self.dedupe.forget(*id);
                    }
                    let _ = p.ack.send(Err(IndexerError::Commit(msg.clone())));
                }
            }
        }
    }
}
