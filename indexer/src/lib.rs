//! shiplog-indexer: keeps events durable and searchable.
//!
//! Batches enter through [`Indexer::ingest`], which serialises them on a blocking thread and
//! queues them (bounded) for the WAL thread in [`wal`]. That thread drops duplicate ids
//! ([`dedupe`]), appends the rest to the write-ahead log with one fsync per group of batches,
//! publishes them to live tail, hands them to the writer thread in [`writer`], and only then
//! acknowledges the ingest. The writer turns each event into a tantivy document ([`schema`])
//! in the index of its day ([`store`]) and commits at least every `commit_interval` (500 ms); each commit moves
//! the WAL checkpoint so covered segments are deleted. At start, records past the checkpoint
//! are replayed (events already in the index are skipped by id). [`search`] compiles our query tree ([`compile`]) and reads every day in the
//! window, newest first. tantivy types never leave this crate.

pub mod aggregate;
pub mod audit;
pub mod baseline;
pub mod baseline_query;
pub mod cancel;
pub mod catalog;
pub mod compile;
pub mod config;
pub mod dedupe;
pub mod error;
pub mod metrics_store;
pub mod observer;
pub mod retention;
pub mod rollup;
pub mod schema;
pub mod search;
pub mod span;
pub mod stats;
pub mod store;
pub mod terms;
pub mod upgrade;
pub mod wal;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use shiplog_core::Event;
use tokio::sync::broadcast;

pub use cancel::Budget;
pub use config::IndexerConfig;
pub use error::{IndexerError, Result};
pub use search::{SearchRequest, SearchResponse};
pub use stats::StatsSnapshot;
pub use writer::IngestAck;

use crate::dedupe::Dedupe;
use crate::schema::Fields;
use crate::stats::Stats;
use crate::store::Store;
use crate::wal::{Prepared, WalHandle, WalParts};
use crate::writer::{Durable, WriterHandle, WriterMsg};

/// An open data directory: ingest, search and live tail.
pub struct Indexer {
    data_dir: std::path::PathBuf,
    retention: retention::RetentionPolicy,
    store: Arc<Store>,
    wal: WalHandle,
    writer: WriterHandle,
    tail: broadcast::Sender<Arc<Event>>,
    observers: observer::Observers,
    stats: Arc<Stats>,
    /// Held open until [`Indexer::close`] or drop: its lock keeps a second node off the
    /// directory.
    lock: std::sync::Mutex<Option<std::fs::File>>,
}

/// Takes the data directory's lock (`shiplog.lock`, an advisory lock the OS drops when the
/// process dies, so a crash never leaves it stale) and writes this process's pid into it.
/// tantivy's own writer locks are taken per day and only when a day is first written, so
/// without this a second node started and failed later, on its first write, with LockBusy.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let io = |action, source| IndexerError::Io {
        action,
        path: data_dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(|e| io("cannot create", e))?;
    let path = data_dir.join("shiplog.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io("cannot open the lock file in", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!(" (pid {pid})"),
                Err(_) => String::new(),
            };
            return Err(IndexerError::InUse {
                path: data_dir.to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", e)),
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

/// What start-up found in the WAL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// WAL batches past the last commit that were indexed again.
    pub batches: usize,
    /// Events indexed from them.
    pub events: usize,
    /// Events skipped because the index already held them.
    pub already_stored: usize,
    /// What was damaged and discarded, one line per file.
    pub damage: Vec<String>,
}

impl Indexer {
    /// Opens (or creates) the data directory, replays the WAL past the last commit, and
    /// starts the WAL and writer threads.
    pub fn open(config: IndexerConfig) -> Result<Self> {
        Self::open_with_recovery(config).map(|(ix, _)| ix)
    }

    /// Like [`Indexer::open`], also saying what was recovered from the WAL.
    pub fn open_with_recovery(config: IndexerConfig) -> Result<(Self, Recovery)> {
        let lock = lock_data_dir(&config.data_dir)?;
        let store = Arc::new(Store::open(&config.data_dir, Fields::new())?);
        let wal_dir = config.data_dir.join("wal");
        let scan = wal::replay::scan(&wal_dir)?;
        let mut recovery = Recovery {
            damage: scan.damage.clone(),
            ..Recovery::default()
        };
        for d in &scan.damage {
            tracing::warn!(damage = %d, "write-ahead log damaged; only unacknowledged data can be lost this way");
        }
        let stats = Arc::new(Stats::default());
        let covered = Arc::new(AtomicU64::new(scan.covered));
        let writer = WriterHandle::start(
            store.clone(),
            &config,
            wal_dir.clone(),
            covered.clone(),
            stats.clone(),
        )?;
        let window = i64::try_from(config.dedupe_window.as_nanos()).unwrap_or(i64::MAX);
        let mut dedupe = Dedupe::new(config.dedupe_ids, window, store.max_ts()?);
        for r in &scan.records {
            let (events, sources) = match wal::replay::decode(r) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(seq = r.seq, error = %e, "skipping unreadable WAL record");
                    recovery.damage.push(e.to_string());
                    continue;
                }
            };
            let mut durable = Durable {
                seq: r.seq,
                events: Vec::new(),
                sources: Vec::new(),
            };
            // A fresh snapshot per record: the writer may commit earlier records meanwhile.
            let mut lookup = store.id_lookup();
            for (e, s) in events.into_iter().zip(sources) {
                if !dedupe.insert(e.id, e.ts) || lookup.contains(&e)? {
                    recovery.already_stored += 1;
                    continue;
                }
                durable.events.push(Arc::new(e));
                durable.sources.push(s);
            }
            recovery.batches += 1;
            recovery.events += durable.events.len();
            writer
                .sender()
                .send(WriterMsg::Batch(durable))
                .map_err(|_| IndexerError::Closed)?;
        }
        // A full disk at start is its own answer: what is wrong, that nothing is lost, and
        // what to do, instead of tantivy's "an index writer was killed".
        let data_dir = config.data_dir.clone();
        let batches = scan.records.len();
        let full_at_start = move |e: IndexerError| match e {
            IndexerError::DiskFull { .. } => IndexerError::FullAtStart {
                free: error::free_space(&data_dir).map_or_else(
                    || "free space unknown".to_string(),
                    |b| format!("{} free", shiplog_core::units::ByteSize(b)),
                ),
                data_dir: data_dir.clone(),
                batches,
            },
            other => other,
        };
        if !scan.records.is_empty() {
            writer.flush().map_err(&full_at_start)?;
            tracing::info!(
                batches = recovery.batches,
                events = recovery.events,
                already_stored = recovery.already_stored,
                "replayed the write-ahead log"
            );
        }
        let (tail, _) = broadcast::channel(config.tail_buffer.max(16));
        let observers = observer::Observers::default();
        let wal = WalHandle::start(WalParts {
            dir: wal_dir,
            next_seq: scan.last_seq + 1,
            segment_bytes: config.wal_segment_bytes,
            queue_batches: config.queue_batches,
            dedupe,
            store: store.clone(),
            tail: tail.clone(),
            older: scan.segments,
            writer: writer.sender(),
            covered,
            stats: stats.clone(),
            observers: observers.clone(),
        })
        .map_err(&full_at_start)?;
        tracing::info!(data_dir = %config.data_dir.display(), days = store.all_days().len(), "indexer opened");
        Ok((
            Indexer {
                data_dir: config.data_dir.clone(),
                retention: config.retention,
                store,
                wal,
                writer,
                tail,
                observers,
                stats,
                lock: std::sync::Mutex::new(Some(lock)),
            },
            recovery,
        ))
    }

    /// The data directory this indexer keeps everything in.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Stores a batch; resolves once it is in the write-ahead log and fsynced, with how many
    /// events were new. It is searchable within the commit interval. Fails at once with
    /// [`IndexerError::Busy`] when the queue is full.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<IngestAck> {
        if events.is_empty() {
            return Ok(IngestAck::default());
        }
        let prepared = tokio::task::spawn_blocking(move || Prepared::new(events))
            .await
            .map_err(|e| IndexerError::Wal(format!("serialising the batch failed: {e}")))?;
        let rx = self.wal.submit(prepared)?;
        rx.await.map_err(|_| IndexerError::Closed)?
    }

    /// Like [`Indexer::ingest`], with each event's JSON already at hand (as the wire codec
    /// gives it), so nothing is serialised again. `sources[i]` must be the JSON of
    /// `events[i]`.
    pub async fn ingest_with_sources(
        &self,
        events: Vec<Event>,
        sources: Vec<Vec<u8>>,
    ) -> Result<IngestAck> {
        if events.is_empty() {
            return Ok(IngestAck::default());
        }
        debug_assert_eq!(events.len(), sources.len());
        let rx = self.wal.submit(Prepared { events, sources })?;
        rx.await.map_err(|_| IndexerError::Closed)?
    }

    /// Plans retention under the configured policy and, unless `dry_run`, applies it.
    /// Blocking (runs in the writer thread, after a commit).
    pub fn apply_retention(&self, dry_run: bool) -> Result<retention::RetentionPlan> {
        self.writer.retention(self.retention, dry_run)
    }

    /// Plans retention under `policy` and, unless `dry_run`, applies it. Blocking (runs in
    /// the writer thread, after a commit).
    pub fn retention(
        &self,
        policy: retention::RetentionPolicy,
        dry_run: bool,
    ) -> Result<retention::RetentionPlan> {
        self.writer.retention(policy, dry_run)
    }

    /// Commits everything acknowledged so far, so it is searchable now. Blocking.
    pub fn flush(&self) -> Result<()> {
        self.writer.flush()
    }

    /// Searches. Blocking (disk reads): call it from a blocking thread.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        search::search(&self.store, req)
    }

    /// Searches, holding at most `max_bytes` of events in the page (see
    /// [`search::search_capped`]). Blocking: call it from a blocking thread.
    pub fn search_capped(&self, req: &SearchRequest, max_bytes: usize) -> Result<SearchResponse> {
        search::search_capped(&self.store, req, max_bytes)
    }

    /// Subscribes to events as they become durable. A receiver that lags by more than the
    /// configured tail buffer is told how many it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tail.subscribe()
    }

    /// Registers a lossless consumer of every event accepted from now on (see
    /// [`observer`]); unlike [`Indexer::subscribe`], nothing is skipped when it is slow, so
    /// it must not block.
    pub fn add_observer(&self, observer: Arc<dyn observer::Observer>) {
        self.observers.add(observer);
    }

    /// Number of live-tail subscribers.
    pub fn subscribers(&self) -> usize {
        self.tail.receiver_count()
    }

    /// Counters since start.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Finishes queued batches, commits, and stops the threads. Blocking.
    pub fn close(&self) {
        self.wal.shutdown();
        self.writer.shutdown();
        // Everything is committed and the threads are gone: the directory is free.
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// The service catalog of this index, kept current by a background thread (see
    /// [`catalog`]): started on the first call, which rebuilds it from the registrations
    /// stored in the last days; later calls return the same catalog.
    pub fn start_catalog(&self) -> Arc<catalog::Catalog> {
        catalog::shared(&self.store, || {
            let catalog = Arc::new(catalog::Catalog::new());
            // Subscribe before the rebuild reads the index, so nothing falls in between.
            let rx = self.subscribe();
            catalog::spawn_follower(Arc::clone(&catalog), Arc::clone(&self.store), rx);
            catalog
        })
    }

    /// Metric samples in a window, averaged per time bucket (see [`metrics_store`]).
    /// Blocking (disk reads): call it from a blocking thread.
    pub fn metric_series(
        &self,
        req: &metrics_store::MetricsRequest,
    ) -> Result<metrics_store::MetricsResponse> {
        metrics_store::series(&self.store, req)
    }

    /// Counts, rates, histograms, top terms, error ratios and percentiles over a window
    /// (see [`aggregate`]). Blocking (disk reads): call it from a blocking thread.
    pub fn aggregate(
        &self,
        req: &aggregate::AggregateRequest,
    ) -> Result<aggregate::AggregateResponse> {
        aggregate::aggregate(&self.store, req)
    }

    /// First and last time of the events matching `query` in a window, and how many there
    /// are (see [`span`]); `None` when nothing matches. Blocking: call it from a blocking
    /// thread.
    pub fn time_span(
        &self,
        query: &shiplog_core::query::Query,
        since: Option<shiplog_core::Timestamp>,
        until: Option<shiplog_core::Timestamp>,
    ) -> Result<Option<span::TimeSpan>> {
        span::time_span(&self.store, query, since, until)
    }

    /// Bytes on disk of each day index, oldest first. Blocking (walks the directories).
    pub fn day_sizes(&self) -> Vec<(String, u64)> {
        self.store
            .all_days()
            .iter()
            .map(|d| {
                let bytes = self.store.facts(d).map_or(0, |f| f.bytes);
                (d.day.clone(), bytes)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod durability_tests;
