//! The tantivy writer thread: takes durable batches from the WAL thread through a bounded
//! queue, adds them to the index of each event's day, and commits at least once per
//! `commit_interval` while data flows, and as soon as the flow pauses for
//! `min_commit_interval`. After each commit it records in the WAL checkpoint which
//! sequence numbers the commit covers, so the WAL can drop them.
//!
//! If a commit fails (a full disk, say), the uncommitted documents are rolled back and read
//! again from the WAL, where they are safe, and the commit is retried every second.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use shiplog_core::Event;
use tantivy::{IndexWriter, TantivyDocument};

use crate::config::IndexerConfig;
use crate::error::{IndexerError, Result};
use crate::stats::Stats;
use crate::store::{DayIndex, Store};
use crate::wal;

/// How many day writers stay open at once; older days are committed and closed.
const MAX_OPEN_WRITERS: usize = 2;

/// The memory budget of one day writer.
pub fn writer_memory(config: &IndexerConfig) -> usize {
    (config.writer_memory_bytes / MAX_OPEN_WRITERS).max(30 * 1024 * 1024)
}

/// What one ingested batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct IngestAck {
    /// Events newly stored.
    pub accepted: usize,
    /// Events dropped because an event with the same id was already stored.
    pub duplicates: usize,
}

/// A batch that is already durable in the WAL under `seq`.
pub struct Durable {
    /// WAL sequence number of the batch.
    pub seq: u64,
    /// Its events.
    pub events: Vec<Arc<Event>>,
    /// Each event's JSON, stored as `_source`.
    pub sources: Vec<Vec<u8>>,
}

/// Messages to the writer thread.
pub enum WriterMsg {
    /// Index a durable batch.
    Batch(Durable),
    /// Commit now and answer when done.
    Flush(crossbeam_channel::Sender<Result<()>>),
    /// Plan retention, and apply it unless `dry_run`; answers with the plan.
    Retention {
        /// Ages and size cap.
        policy: crate::retention::RetentionPolicy,
        /// Only say what would go.
        dry_run: bool,
        /// Where the plan goes.
        reply: crossbeam_channel::Sender<Result<crate::retention::RetentionPlan>>,
    },
    /// Commit and stop.
    Shutdown,
}

/// The sending side of the writer thread.
pub struct WriterHandle {
    tx: Sender<WriterMsg>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    /// Starts the writer thread; `covered` starts at the checkpoint read from the WAL.
    pub fn start(
        store: Arc<Store>,
        config: &IndexerConfig,
        wal_dir: PathBuf,
        covered: Arc<AtomicU64>,
        stats: Arc<Stats>,
    ) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::bounded(config.queue_batches.max(1));
        let added_through = covered.load(Ordering::Acquire);
        let (audit, report) = crate::audit::AuditLog::open(
            &crate::audit::audit_dir(&config.data_dir),
            shiplog_core::Timestamp::now(),
        )?;
        for cut in &report.cut {
            tracing::warn!(cut = ?cut, "audit chain had a torn tail (never acknowledged); it was set aside");
        }
        if !report.closed.is_empty() {
            tracing::info!(days = ?report.closed, "closed audit chain days left open");
        }
        let mut worker = Worker {
            store,
            rx,
            stats,
            wal_dir,
            covered,
            added_through,
            writers: HashMap::new(),
            day: (i64::MIN, String::new()),
            first_pending: None,
            last_commit: Instant::now(),
            last_batch: Instant::now(),
            needs_recovery: false,
            commit_interval: config.commit_interval,
            min_commit_interval: config.min_commit_interval,
            writer_memory: writer_memory(config),
            writer_threads: config.writer_threads.max(1),
            audit,
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
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// The queue the WAL thread hands durable batches to.
    pub fn sender(&self) -> Sender<WriterMsg> {
        self.tx.clone()
    }

    /// Commits everything received so far; blocking.
    pub fn flush(&self) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(WriterMsg::Flush(tx))
            .map_err(|_| IndexerError::Closed)?;
        rx.recv().map_err(|_| IndexerError::Closed)?
    }

    /// Plans (and unless `dry_run` applies) retention in the writer thread; blocking.
    pub fn retention(
        &self,
        policy: crate::retention::RetentionPolicy,
        dry_run: bool,
    ) -> Result<crate::retention::RetentionPlan> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(WriterMsg::Retention {
                policy,
                dry_run,
                reply,
            })
            .map_err(|_| IndexerError::Closed)?;
        rx.recv().map_err(|_| IndexerError::Closed)?
    }

    /// Commits what is pending and stops the thread; waits for it.
    pub fn shutdown(&self) {
        let _ = self.tx.send(WriterMsg::Shutdown);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take()
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
    /// WAL sequence number through which this day's documents are committed.
    committed_through: u64,
}

struct Worker {
    store: Arc<Store>,
    rx: Receiver<WriterMsg>,
    stats: Arc<Stats>,
    wal_dir: PathBuf,
    covered: Arc<AtomicU64>,
    /// Highest WAL sequence number whose documents are in the writers.
    added_through: u64,
    writers: HashMap<String, OpenWriter>,
    /// The day number (since 1970) and name of the last event added.
    day: (i64, String),
    first_pending: Option<Instant>,
    last_commit: Instant,
    /// When the last batch arrived, to tell a paused flow from a steady one.
    last_batch: Instant,
    needs_recovery: bool,
    commit_interval: Duration,
    min_commit_interval: Duration,
    writer_memory: usize,
    writer_threads: usize,
    /// The prediction hash chain: every prediction indexed is appended here first, and the
    /// chain is synced before each commit, so no prediction is in the index and missing
    /// from the chain after a crash (a replay appends again; the chain skips known ids).
    audit: crate::audit::AuditLog,
}

impl Worker {
    fn run(&mut self) {
        loop {
            let timeout = match (self.needs_recovery, self.first_pending) {
                (true, _) => Duration::from_secs(1),
                (false, Some(first)) => (first + self.commit_interval)
                    .min(self.last_batch + self.min_commit_interval)
                    .saturating_duration_since(Instant::now()),
                (false, None) => Duration::from_secs(1),
            };
            match self.rx.recv_timeout(timeout) {
                Ok(WriterMsg::Batch(d)) => self.add_batch(d),
                Ok(WriterMsg::Flush(reply)) => {
                    let _ = reply.send(self.commit());
                }
                Ok(WriterMsg::Retention {
                    policy,
                    dry_run,
                    reply,
                }) => {
                    let _ = reply.send(self.retention(&policy, dry_run));
                }
                Ok(WriterMsg::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    if let Err(e) = self.commit() {
                        tracing::error!(error = %e, "final commit failed; the WAL replays the rest at the next start");
                    }
                    for (_, w) in self.writers.drain() {
                        if let Err(e) = w.writer.wait_merging_threads() {
                            tracing::warn!(day = %w.day.day, error = %e, "merge did not finish cleanly at shutdown");
                        }
                    }
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.needs_recovery {
                if self.last_commit.elapsed() >= Duration::from_secs(1) {
                    let _ = self.commit();
                }
            } else if self.should_commit() {
                let _ = self.commit();
            }
        }
    }

    /// Commit when the oldest uncommitted batch has waited `commit_interval`, or when no
    /// batch has come for `min_commit_interval` (the flow paused: commit what it left rather
    /// than make it wait). A steady flow is committed once per interval, so segments stay
    /// few and large.
    fn should_commit(&self) -> bool {
        let Some(first) = self.first_pending else {
            return false;
        };
        let now = Instant::now();
        now.duration_since(first) >= self.commit_interval
            || now.duration_since(self.last_batch) >= self.min_commit_interval
    }

    fn add_batch(&mut self, d: Durable) {
        self.last_batch = Instant::now();
        // After a recovery re-read the WAL, batches it already covered arrive again.
        if d.seq <= self.added_through || self.needs_recovery {
            return;
        }
        // Events of one day go in together: only MAX_OPEN_WRITERS day writers are open, and
        // opening another commits them all, so a batch that hops between three days would
        // commit at every hop. A stable sort keeps each day's events in the order sent.
        let by_day = (!d
            .events
            .windows(2)
            .all(|w| w[0].ts.day_number() <= w[1].ts.day_number()))
        .then(|| {
            let mut order: Vec<usize> = (0..d.events.len()).collect();
            order.sort_by_key(|&i| d.events[i].ts.day_number());
            order
        });
        for k in 0..d.events.len().min(d.sources.len()) {
            let i = by_day.as_ref().map_or(k, |order| order[k]);
            let (event, source) = (&d.events[i], &d.sources[i]);
            if let Err(e) = self.add_event(event, source) {
                tracing::error!(error = %e, seq = d.seq, "cannot index a durable batch; it will be re-read from the WAL");
                self.needs_recovery = true;
                return;
            }
        }
        if let Err(e) = self.chain(d.events.iter().map(|e| &**e).zip(&d.sources)) {
            tracing::error!(error = %e, seq = d.seq, "cannot append predictions to the audit chain; the batch will be re-read from the WAL");
            self.needs_recovery = true;
            return;
        }
        self.added_through = d.seq;
        self.first_pending.get_or_insert_with(Instant::now);
    }

    /// Appends the predictions among `events` to the audit chain (not yet synced).
    fn chain<'a>(&mut self, events: impl Iterator<Item = (&'a Event, &'a Vec<u8>)>) -> Result<()> {
        let records: Vec<(shiplog_core::EventId, &[u8])> = events
            .filter(|(e, _)| e.kind == shiplog_core::Kind::Prediction)
            .map(|(e, s)| (e.id, s.as_slice()))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.audit
            .append(shiplog_core::Timestamp::now(), &records)?;
        Ok(())
    }

    fn add_event(&mut self, event: &Event, source: &[u8]) -> Result<()> {
        let day_number = event.ts.day_number();
        // Nearly every event falls on the day of the one before it: format the day's name
        // (the writer's key) only when it changes.
        if self.day.0 != day_number {
            self.day = (day_number, event.ts.day_string());
        }
        if !self.writers.contains_key(&self.day.1) {
            let day = self.day.1.clone();
            self.open_writer(&day)?;
        }
        self.stats
            .bytes_in
            .fetch_add(source.len() as u64, Ordering::Relaxed);
        let doc = self.store.fields().document(event, source);
        let w = self
            .writers
            .get_mut(&self.day.1)
            .ok_or(IndexerError::Closed)?;
        if let Err(e) = w.writer.add_document(doc) {
            return Err(IndexerError::from_tantivy_write(
                e,
                &self.day_path(&self.day.1),
            ));
        }
        w.dirty = true;
        w.last_used = Instant::now();
        Ok(())
    }

    fn day_path(&self, day: &str) -> std::path::PathBuf {
        self.store.logs_dir().join(day)
    }

    fn open_writer(&mut self, day: &str) -> Result<()> {
        if self.writers.len() >= MAX_OPEN_WRITERS {
            // A writer can only be closed once its documents are committed.
            self.commit()?;
            let oldest = self
                .writers
                .iter()
                .min_by_key(|(_, w)| w.last_used)
                .map(|(d, _)| d.clone());
            if let Some(w) = oldest.and_then(|d| self.writers.remove(&d)) {
                tracing::debug!(day = %w.day.day, "closing idle day writer");
                if let Err(e) = w.writer.wait_merging_threads() {
                    tracing::warn!(day = %w.day.day, error = %e, "merge did not finish cleanly");
                }
            }
        }
        let index = self.store.day(day)?;
        let writer = index
            .index
            .writer_with_num_threads(self.writer_threads, self.writer_memory)
            .map_err(|e| IndexerError::from_tantivy_write(e, &self.day_path(day)))?;
        self.writers.insert(
            day.to_string(),
            OpenWriter {
                day: index,
                writer,
                dirty: false,
                last_used: Instant::now(),
                committed_through: self.covered.load(Ordering::Acquire),
            },
        );
        Ok(())
    }

    /// Commits every dirty writer, then moves the WAL checkpoint. On failure rolls back and
    /// re-reads the uncommitted batches from the WAL.
    fn commit(&mut self) -> Result<()> {
        self.last_commit = Instant::now();
        if self.needs_recovery {
            self.recover()?;
        }
        let through = self.added_through;
        // The chain is durable before the index, never behind it.
        if let Err(e) = self.audit.sync() {
            tracing::warn!(error = %e, "cannot sync the audit chain; nothing is committed until it can be");
            self.needs_recovery = true;
            return Err(e.into());
        }
        let today = shiplog_core::Timestamp::now().day_string();
        match self.audit.close_days_before(&today) {
            Ok(closed) if !closed.is_empty() => {
                tracing::info!(days = ?closed, "closed audit chain days")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot close audit chain days; retried at the next commit")
            }
        }
        let mut failure = None;
        let logs_dir = self.store.logs_dir();
        // Each day commits on its own: a day that fails is rolled back and re-read from the
        // WAL later; the days that succeeded remember how far they are committed, so the
        // re-read does not add their events twice.
        for w in self.writers.values_mut() {
            if w.dirty {
                if let Err(e) = w.writer.commit() {
                    let path = logs_dir.join(&w.day.day);
                    let e = match IndexerError::from_tantivy_write(e, &path) {
                        full @ IndexerError::DiskFull { .. } => full,
                        other => IndexerError::Commit(other.to_string()),
                    };
                    tracing::warn!(day = %w.day.day, error = %e, "commit failed; its batches stay in the WAL and are retried");
                    let _ = w.writer.rollback();
                    w.dirty = false;
                    failure = Some(e);
                    continue;
                }
                w.dirty = false;
                if let Err(e) = w.day.reader.reload() {
                    tracing::warn!(day = %w.day.day, error = %e, "reader reload failed");
                }
            }
            w.committed_through = through;
        }
        if let Some(err) = failure {
            self.needs_recovery = true;
            return Err(err);
        }
        self.first_pending = None;
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        if through > self.covered.load(Ordering::Acquire) {
            match wal::checkpoint::write(&self.wal_dir, through) {
                Ok(()) => self.covered.store(through, Ordering::Release),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the WAL checkpoint; the WAL keeps its segments")
                }
            }
        }
        Ok(())
    }

    /// Runs retention in this thread, where the day writers live: a dropped day's writer is
    /// closed first, and kind deletions go through the day's writer and one commit.
    fn retention(
        &mut self,
        policy: &crate::retention::RetentionPolicy,
        dry_run: bool,
    ) -> Result<crate::retention::RetentionPlan> {
        use crate::retention::RetentionStep;
        self.commit()?;
        let facts = self
            .store
            .all_days()
            .iter()
            .map(|d| self.store.facts(d))
            .collect::<Result<Vec<_>>>()?;
        // The WAL lives in `<data_dir>/wal`, the holds in `<data_dir>/audit`. A holds file
        // that cannot be read stops retention: deleting a held day cannot be undone.
        let data_dir = self.wal_dir.parent().unwrap_or(&self.wal_dir);
        let holds = crate::audit::Holds::load(&crate::audit::audit_dir(data_dir))?;
        let plan = crate::retention::plan_with_holds(
            &facts,
            policy,
            shiplog_core::Timestamp::now(),
            &|day| holds.contains(day),
        );
        if dry_run {
            return Ok(plan);
        }
        for step in &plan.steps {
            match step {
                RetentionStep::DropDay {
                    day,
                    bytes,
                    events,
                    reason,
                } => {
                    if let Some(w) = self.writers.remove(day) {
                        drop(w.writer);
                    }
                    self.store.remove_day(day)?;
                    tracing::info!(day = %day, bytes, events, reason, "retention dropped a day");
                }
                RetentionStep::Held { day, .. } => {
                    tracing::info!(day = %day, "retention kept a day under legal hold");
                }
                RetentionStep::RollUpMetrics { day, samples } => {
                    let made = self.roll_up_metrics(day)?;
                    tracing::info!(day = %day, samples, rollups = made, "metric samples rolled up to one a minute");
                }
                RetentionStep::DeleteKind { day, kind, events } => {
                    if !self.writers.contains_key(day) {
                        self.open_writer(day)?;
                    }
                    let field = self
                        .store
                        .fields()
                        .keyword(shiplog_core::query::KeywordField::Kind);
                    let term = tantivy::Term::from_field_text(field, kind.as_str());
                    let q = tantivy::query::TermQuery::new(
                        term,
                        tantivy::schema::IndexRecordOption::Basic,
                    );
                    if let Some(w) = self.writers.get_mut(day) {
                        w.writer.delete_query(Box::new(q))?;
                        w.dirty = true;
                    }
                    tracing::info!(day = %day, kind = kind.as_str(), events, "retention deleted expired events");
                }
            }
        }
        self.first_pending.get_or_insert_with(Instant::now);
        self.commit()?;
        Ok(plan)
    }

    /// Replaces a day's raw metric samples with per-minute roll-ups: the roll-ups are added
    /// and the samples deleted in the same writer, so the next commit swaps them at once.
    fn roll_up_metrics(&mut self, day: &str) -> Result<usize> {
        use tantivy::schema::Value;
        let index = self.store.day(day)?;
        // Every metric event of the day (earlier roll-ups too) is read and replaced.
        let term = tantivy::Term::from_field_text(
            self.store
                .fields()
                .keyword(shiplog_core::query::KeywordField::Kind),
            shiplog_core::Kind::Metric.as_str(),
        );
        let all_metrics =
            tantivy::query::TermQuery::new(term, tantivy::schema::IndexRecordOption::Basic);
        let searcher = index.reader.searcher();
        let docs = searcher.search(&all_metrics, &tantivy::collector::DocSetCollector)?;
        let mut rollup = crate::rollup::RollUp::default();
        let source_field = self.store.fields().source;
        for addr in docs {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let Some(bytes) = doc.get_first(source_field).and_then(|v| v.as_bytes()) else {
                continue;
            };
            match serde_json::from_slice::<Event>(bytes) {
                Ok(e) => rollup.add(&e),
                Err(e) => tracing::warn!(day, error = %e, "skipping an unreadable metric sample"),
            }
        }
        let events = rollup.finish();
        if !self.writers.contains_key(day) {
            self.open_writer(day)?;
        }
        // Deletes apply to documents added before them: delete first, then add the roll-ups.
        if let Some(w) = self.writers.get_mut(day) {
            w.writer.delete_query(Box::new(all_metrics))?;
            w.dirty = true;
        }
        for e in &events {
            let source =
                serde_json::to_vec(e).map_err(|err| IndexerError::Corrupt(err.to_string()))?;
            self.add_event(e, &source)?;
        }
        Ok(events.len())
    }

    /// Puts the writers back in step with the WAL after a failure: uncommitted documents
    /// are dropped, and every record past the checkpoint is indexed again, except events of
    /// days whose writer already committed that record.
    fn recover(&mut self) -> Result<()> {
        for w in self.writers.values_mut().filter(|w| w.dirty) {
            w.writer.rollback()?;
            w.dirty = false;
        }
        let covered = self.covered.load(Ordering::Acquire);
        let scan = wal::replay::scan_readonly(&self.wal_dir, covered)?;
        self.added_through = covered;
        let mut skipped = 0;
        for r in &scan {
            let (events, sources) = wal::replay::decode(r)?;
            // Every prediction of the batch, committed to its day or not: the chain skips
            // the ones it has.
            self.chain(events.iter().zip(&sources))?;
            for (e, s) in events.iter().zip(&sources) {
                let day = e.ts.day_string();
                if self
                    .writers
                    .get(&day)
                    .is_some_and(|w| w.committed_through >= r.seq)
                {
                    skipped += 1;
                    continue;
                }
                if let Err(err) = self.add_event(e, s) {
                    // Still failing (the disk is full, say): start over at the next attempt.
                    for w in self.writers.values_mut().filter(|w| w.dirty) {
                        let _ = w.writer.rollback();
                        w.dirty = false;
                    }
                    return Err(err);
                }
            }
            self.added_through = r.seq;
        }
        tracing::info!(
            batches = scan.len(),
            skipped,
            through = self.added_through,
            "re-read uncommitted batches from the WAL"
        );
        self.needs_recovery = false;
        self.first_pending.get_or_insert_with(Instant::now);
        Ok(())
    }
}
