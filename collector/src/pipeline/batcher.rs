//! [`Batcher`]: groups events from the source channel into batches and delivers them to a
//! [`Sink`] one at a time, in order.
//!
//! Batching is adaptive. A batch is sent when it is full (events or bytes), when its oldest
//! event reaches the maximum age, or, when no send is in flight, as soon as the channel is
//! empty: an idle pipeline ships a lone line at once, a busy one ships big batches because
//! events pile up while the previous batch is in flight.
//!
//! A batch the sink cannot deliver for now is retried with exponential backoff and jitter
//! (100 ms to 10 s) until it goes through; meanwhile nothing else is sent and, once the next
//! batch is full, nothing more is received, so the channel fills and the sources wait. A batch
//! the receiver rejects as malformed is dropped and counted.
//!
//! With a disk buffer ([`Batcher::with_buffer`]) a failing or slow sink no longer stops
//! reading: a batch whose send fails, or takes longer than the spill limit, is written to the
//! buffer, and so is every later batch while the buffer holds anything; the buffer's oldest
//! batch is replayed, one at a time, until it drains, and only then do batches go straight
//! to the sink again. Order is kept because at most one batch is in flight. When the buffer
//! is full its [`WhenFull`] policy applies: `block` holds the batch (so receiving stops once
//! the next one is full, as without a buffer) and `drop_newest` drops it, counted.
//!
//! After each acknowledged batch the batcher advances the [`CheckpointStore`] to the end
//! positions of its events, so a checkpoint never runs ahead of what the receiver holds.
//! Rejected batches do not advance it (the next acknowledged batch moves past them), and
//! once a batch is abandoned at shutdown nothing advances any more: the next run reads the
//! abandoned lines again. A buffered batch is not acknowledged: checkpoints advance when
//! its replay is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use shiplog_core::Event;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::delivery::{AckBook, Deliverer, Outcome};
use crate::buffer::{AppendError, Buffer, BufferedBatch, WhenFull};
use crate::checkpoint::{CheckpointStore, SourcePosition};
use crate::sink::{EncodedBatch, Sink};
use crate::sources::SourceEvent;
use crate::telemetry::{
    self, BatchBuffered, DropReason, EventsDropped, EventsReceived, InternalEvent,
};

/// Size of an event beyond its message, for the byte estimate: ids, names, time stamps and
/// JSON punctuation.
const EVENT_OVERHEAD_BYTES: usize = 200;
/// While a batch fills, the channel is drained this often rather than on every event: at
/// a steady rate, waking per line costs more than the lines themselves.
const DRAIN_TICK: Duration = Duration::from_millis(5);
/// How often a batch held for a full (or failing) buffer tries again when nothing else
/// wakes the batcher.
const HELD_RETRY: Duration = Duration::from_secs(1);
/// Default time a direct send may take before its batch goes to the disk buffer.
pub const DEFAULT_SPILL_AFTER: Duration = Duration::from_secs(5);
/// How long after shutdown a failing or slow sink is given before held events are abandoned.
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// When the batcher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Send once a batch holds this many events.
    pub max_events: usize,
    /// Send once a batch's estimated size reaches this many bytes.
    pub max_bytes: usize,
    /// Send once the oldest event in a batch has waited this long.
    pub max_age: Duration,
    /// Send once a batch's events fall on this many different UTC days: a node refuses
    /// the lines of further days (`[api] max_days_per_batch`, the same default), and a
    /// refused batch would be lost.
    pub max_days: usize,
    /// Send as soon as the channel is empty and no send is in flight, when the previous send
    /// is at least half of `max_age` old (adaptive batching: a lone line in a quiet pipeline
    /// goes at once; under load batches fill up to the limits instead of going out one round
    /// trip at a time). Turning it off leaves only the three limits above.
    pub flush_when_idle: bool,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_events: 10_000,
            max_bytes: 1024 * 1024,
            max_age: Duration::from_millis(100),
            max_days: shiplog_core::accept::DEFAULT_MAX_DAYS_PER_BATCH,
            flush_when_idle: true,
        }
    }
}

/// Counters of what the batcher did, for logs and metrics.
#[derive(Debug, Default)]
pub struct BatcherStats {
    /// Batches the sink acknowledged.
    pub batches_sent: AtomicU64,
    /// Events in acknowledged batches.
    pub events_sent: AtomicU64,
    /// Events the receiver already had.
    pub events_duplicate: AtomicU64,
    /// Batches the receiver rejected as malformed, and dropped.
    pub batches_rejected: AtomicU64,
    /// Events in rejected batches: lost.
    pub events_rejected: AtomicU64,
    /// Events still undelivered when the shutdown grace period ran out: lost.
    pub events_abandoned: AtomicU64,
    /// Send attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Whether delivery is currently failing (so the warning is logged once per outage).
    pub(super) failing: AtomicBool,
}

impl BatcherStats {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Events waiting to be sent, with what is needed to decide when to send them.
#[derive(Debug, Default)]
struct PendingBatch {
    events: Vec<Event>,
    /// Source positions the batch ends at, in arrival order.
    positions: Vec<SourcePosition>,
    bytes: usize,
    oldest: Option<Instant>,
    /// The different UTC days the events fall on (almost always one or two).
    days: Vec<i64>,
}

impl PendingBatch {
    fn push(&mut self, item: SourceEvent, now: Instant) {
        let day = item.event.ts.day_number();
        if self.days.last() != Some(&day) && !self.days.contains(&day) {
            self.days.push(day);
        }
        self.bytes += estimated_size(&item.event);
        self.oldest.get_or_insert(now);
        self.events.push(item.event);
        self.positions.extend(item.end);
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    fn is_full(&self, config: &BatcherConfig) -> bool {
        self.events.len() >= config.max_events
            || self.bytes >= config.max_bytes
            || self.days.len() >= config.max_days.max(1)
    }

    fn deadline(&self, config: &BatcherConfig) -> Option<Instant> {
        self.oldest.map(|t| t + config.max_age)
    }

    fn take(&mut self) -> (Vec<Event>, Vec<SourcePosition>) {
        let mut last_id = "";
        telemetry::learn_names(self.events.iter().filter_map(|e| {
            let new = e.container_id != last_id;
            last_id = &e.container_id;
            new.then_some((e.container_id.as_str(), e.container_name.as_str()))
        }));
        self.bytes = 0;
        self.oldest = None;
        self.days.clear();
        // The next batch starts with room for as many events as this one held: under a
        // steady load batches are alike, and growing a vector of events step by step
        // copies every event already in it at each step.
        let (events, positions) = (self.events.len(), self.positions.len());
        (
            std::mem::replace(&mut self.events, Vec::with_capacity(events)),
            std::mem::replace(&mut self.positions, Vec::with_capacity(positions)),
        )
    }
}

/// An event's approximate encoded size.
fn estimated_size(event: &Event) -> usize {
    event.message.len() + EVENT_OVERHEAD_BYTES
}

/// Groups events into batches and delivers them, in order, to one sink.
pub struct Batcher {
    config: BatcherConfig,
    sink: Arc<dyn Sink>,
    stats: Arc<BatcherStats>,
    shutdown_grace: Duration,
    checkpoints: Option<Arc<CheckpointStore>>,
    buffer: Option<Arc<Buffer>>,
    spill_after: Duration,
}

/// Which kind of batch is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flight {
    /// A batch from memory.
    Direct,
    /// The disk buffer's oldest batch.
    Replay,
}

impl Batcher {
    /// A batcher that sends to `sink` according to `config`.
    pub fn new(config: BatcherConfig, sink: Arc<dyn Sink>) -> Self {
        Batcher {
            config,
            sink,
            stats: Arc::new(BatcherStats::default()),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            checkpoints: None,
            buffer: None,
            spill_after: DEFAULT_SPILL_AFTER,
        }
    }

    /// Spills batches to `buffer` while the sink fails or a send takes longer than
    /// `spill_after`, and replays them in order (default: no buffer, retry in memory).
    pub fn with_buffer(mut self, buffer: Arc<Buffer>, spill_after: Duration) -> Self {
        self.buffer = Some(buffer);
        self.spill_after = spill_after;
        self
    }

    /// Advances `checkpoints` after every acknowledged batch.
    pub fn with_checkpoints(mut self, checkpoints: Arc<CheckpointStore>) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// How long after shutdown delivery keeps trying before held events are abandoned
    /// (default 10 s).
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The counters, shared: they keep updating while [`run`](Self::run) goes on.
    pub fn stats(&self) -> Arc<BatcherStats> {
        Arc::clone(&self.stats)
    }

    /// Receives until every sender is gone, then sends what it holds and returns.
    ///
    /// `shutdown` does not stop receiving (the sources stop on it, which closes the
    /// channel); it starts the grace period after which undeliverable events are abandoned.
    pub async fn run(self, mut rx: mpsc::Receiver<SourceEvent>, shutdown: CancellationToken) {
        let give_up = CancellationToken::new();
        let _stop_watcher = give_up.clone().drop_guard();
        tokio::spawn(start_grace_period(
            shutdown,
            give_up.clone(),
            self.shutdown_grace,
        ));

        let config = self.config;
        let deliverer = Deliverer {
            sink: Arc::clone(&self.sink),
            stats: Arc::clone(&self.stats),
            acks: Arc::new(AckBook {
                checkpoints: self.checkpoints.clone(),
                frozen: AtomicBool::new(false),
            }),
            give_up: give_up.clone(),
        };
        let mut pending = PendingBatch::default();
        let mut in_flight: Option<(Flight, BoxFuture<'static, Outcome>)> = None;
        // A batch waiting for room in the disk buffer (policy `block`).
        let mut held: Option<BufferedBatch> = None;
        // Set once a replay ran into the end of the shutdown grace: stop replaying.
        let mut gave_up = false;
        let mut open = true;
        // When the last direct send went out: the idle flush waits half of `max_age` after
        // it. Under a steady load that is at most ~20 sends a second at the default: a line
        // waits 25 ms on average instead of 50 (the live tail's delay), for one more HTTP
        // round trip per 100 ms.
        let mut last_send: Option<Instant> = None;
        loop {
            if let Some(buffer) = &self.buffer
                && let Some(batch) = held.take()
            {
                held = spill(buffer, batch, give_up.is_cancelled()).await;
            }
            // While the buffer holds batches, new ones queue behind them on disk. So does a
            // full batch while a direct send is still out: the sink is slower than the
            // sources, and waiting for it would slow reading until Docker rotates unread
            // lines away (see `sources::docker::rotation`).
            let behind = self.buffer.is_some()
                && matches!(in_flight, Some((Flight::Direct, _)))
                && pending.is_full(&config);
            let buffering = behind
                || self.buffer.as_ref().is_some_and(|b| !b.is_empty())
                || matches!(in_flight, Some((Flight::Replay, _)));
            if !pending.is_empty() && held.is_none() {
                let quiet = last_send.is_none_or(|t| t.elapsed() >= config.max_age / 2);
                let idle = config.flush_when_idle && quiet && rx.is_empty();
                let aged = pending
                    .deadline(&config)
                    .is_some_and(|d| d <= Instant::now());
                let due = !open || aged || pending.is_full(&config);
                if buffering && (due || gave_up) {
                    let buffer = self.buffer.as_ref().expect("buffering needs a buffer");
                    let (events, positions) = pending.take();
                    let batch = encode(events, positions).await;
                    held = spill(buffer, batch, give_up.is_cancelled()).await;
                } else if !buffering && in_flight.is_none() && (due || idle) {
                    last_send = Some(Instant::now());
                    let (events, positions) = pending.take();
                    let flight: BoxFuture<'static, Outcome> = match &self.buffer {
                        Some(_) => Box::pin(deliverer.clone().send_or_spill(
                            events,
                            positions,
                            self.spill_after,
                        )),
                        None => Box::pin(deliverer.clone().deliver(events, positions)),
                    };
                    in_flight = Some((Flight::Direct, flight));
                }
            }
            // Replay the buffer's oldest batch whenever nothing else is in flight.
            if let Some(buffer) = &self.buffer
                && in_flight.is_none()
                && !buffer.is_empty()
                && !gave_up
            {
                let replay = deliverer.clone().replay_front(Arc::clone(buffer));
                in_flight = Some((Flight::Replay, Box::pin(replay)));
            }
            let drained = self.buffer.as_ref().is_none_or(|b| b.is_empty() || gave_up);
            if !open && pending.is_empty() && in_flight.is_none() && held.is_none() && drained {
                break;
            }
            let can_receive = open && !pending.is_full(&config);
            // The first event of a batch wakes the batcher (it may go at once); later ones
            // are taken in bulk every DRAIN_TICK.
            let wake_per_event = can_receive && pending.is_empty();
            let drain_at =
                (can_receive && !pending.is_empty()).then(|| Instant::now() + DRAIN_TICK);
            let deadline = pending
                .deadline(&config)
                .filter(|_| held.is_none() && (in_flight.is_none() || buffering));
            let wake_at = match (deadline, drain_at) {
                (Some(d), Some(t)) => Some(d.min(t)),
                (d, t) => d.or(t),
            };
            let retry_held = held.is_some() && in_flight.is_none();
            tokio::select! {
                outcome = async { in_flight.as_mut().expect("guarded by is_some").1.as_mut().await },
                    if in_flight.is_some() => {
                    in_flight = None;
                    match outcome {
                        Outcome::Done => {}
                        Outcome::GaveUp => gave_up = true,
                        Outcome::Spill(prepared, positions) => {
                            let buffer = self.buffer.as_ref().expect("only buffered sends spill");
                            if buffer.is_empty() && held.is_none() {
                                // Before anything else: it is the oldest batch not delivered.
                                let batch = BufferedBatch {
                                    batch: prepared.into_encoded().await,
                                    positions,
                                };
                                held = spill(buffer, batch, give_up.is_cancelled()).await;
                            } else {
                                // Later batches went to the buffer while it was out: it is
                                // sent again from memory before they are replayed, so
                                // batches (and checkpoints) stay in order.
                                let retry = deliverer.clone().redeliver(prepared, positions);
                                in_flight = Some((Flight::Direct, Box::pin(retry)));
                            }
                        }
                    }
                }
                received = rx.recv(), if wake_per_event => match received {
                    Some(event) => {
                        let now = Instant::now();
                        let bytes = event.event.message.len();
                        pending.push(event, now);
                        open &= drain(&mut rx, &mut pending, &config, now, (1, bytes));
                    }
                    None => open = false,
                },
                () = sleep_until_opt(wake_at), if wake_at.is_some() => {
                    if can_receive {
                        open &= drain(&mut rx, &mut pending, &config, Instant::now(), (0, 0));
                    }
                }
                () = tokio::time::sleep(HELD_RETRY), if retry_held => {}
            }
        }
        let stats = &self.stats;
        info!(
            batches = stats.batches_sent.load(Ordering::Relaxed),
            events = stats.events_sent.load(Ordering::Relaxed),
            duplicates = stats.events_duplicate.load(Ordering::Relaxed),
            rejected = stats.events_rejected.load(Ordering::Relaxed),
            abandoned = stats.events_abandoned.load(Ordering::Relaxed),
            buffered_batches = self.buffer.as_ref().map_or(0, |b| b.batches()),
            "batcher stopped"
        );
    }
}

/// Moves what is queued into `pending` without waiting, up to a full batch; `counted` are
/// events already taken. Returns false once every sender is gone.
fn drain(
    rx: &mut mpsc::Receiver<SourceEvent>,
    pending: &mut PendingBatch,
    config: &BatcherConfig,
    now: Instant,
    counted: (usize, usize),
) -> bool {
    let (mut count, mut bytes) = counted;
    let mut open = true;
    while !pending.is_full(config) {
        match rx.try_recv() {
            Ok(event) => {
                count += 1;
                bytes += event.event.message.len();
                pending.push(event, now);
            }
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                open = false;
                break;
            }
        }
    }
    if count > 0 {
        EventsReceived { count, bytes }.emit();
    }
    open
}

/// Encodes a batch for the disk buffer on a blocking thread.
async fn encode(events: Vec<Event>, positions: Vec<SourcePosition>) -> BufferedBatch {
    BufferedBatch {
        batch: EncodedBatch::encode_off_runtime(events).await,
        positions,
    }
}

/// Writes `batch` to the disk buffer; hands it back when it must wait for room (policy
/// `block`, or a write error: tried again later). `force` (at shutdown) ignores the cap.
async fn spill(buffer: &Arc<Buffer>, batch: BufferedBatch, force: bool) -> Option<BufferedBatch> {
    let (events, bytes) = (batch.batch.events, batch.batch.body.len());
    let (batch, error) = match buffer.append(batch, force).await {
        Ok(()) => {
            BatchBuffered { events, bytes }.emit();
            return None;
        }
        Err(failed) => failed,
    };
    match (buffer.when_full, &error) {
        (WhenFull::DropNewest, AppendError::Full { .. }) | (_, AppendError::TooLarge(_)) => {
            EventsDropped {
                count: events,
                reason: DropReason::BufferFull,
                detail: &error.to_string(),
            }
            .emit();
            None
        }
        (WhenFull::Block, AppendError::Full { .. }) => Some(batch),
        (_, AppendError::Io(_)) if force => {
            // Shutting down and the disk refuses it: nothing is left to try.
            EventsDropped {
                count: events,
                reason: DropReason::BufferError,
                detail: &error.to_string(),
            }
            .emit();
            None
        }
        (_, AppendError::Io(_)) => {
            warn!(error = %error, "cannot write to the disk buffer; holding the batch and retrying");
            Some(batch)
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// Cancels `give_up` a grace period after `shutdown`, unless the batcher finished first.
async fn start_grace_period(
    shutdown: CancellationToken,
    give_up: CancellationToken,
    grace: Duration,
) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = give_up.cancelled() => return,
    }
    tokio::select! {
        () = tokio::time::sleep(grace) => give_up.cancel(),
        () = give_up.cancelled() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use shiplog_core::Timestamp;

    use super::*;
    use crate::sink::{Ack, SinkError};

    /// An in-memory sink that records what it acknowledged and can be told to fail first.
    #[derive(Default)]
    struct RecordingSink {
        delivered: Mutex<Vec<Vec<Event>>>,
        attempts: AtomicU64,
        script: Mutex<VecDeque<SinkError>>,
        notify: tokio::sync::Notify,
    }

    impl RecordingSink {
        fn failing_with(errors: impl IntoIterator<Item = SinkError>) -> Self {
            RecordingSink {
                script: Mutex::new(errors.into_iter().collect()),
                ..RecordingSink::default()
            }
        }

        fn batch_sizes(&self) -> Vec<usize> {
            self.delivered
                .lock()
                .unwrap()
                .iter()
                .map(Vec::len)
                .collect()
        }
    }

    impl Sink for RecordingSink {
        fn send(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, SinkError>> {
            Box::pin(async move {
                self.attempts.fetch_add(1, Ordering::Relaxed);
                if let Some(error) = self.script.lock().unwrap().pop_front() {
                    return Err(error);
                }
                let accepted = events.len();
                self.delivered.lock().unwrap().push(events);
                self.notify.notify_waiters();
                Ok(Ack {
                    accepted,
                    duplicates: 0,
                })
            })
        }
    }

    fn event(n: usize, message_len: usize) -> Event {
        let mut message = format!("line {n} ");
        message.extend(std::iter::repeat_n(
            'x',
            message_len.saturating_sub(message.len()),
        ));
        Event::log(Timestamp(n as i64), message)
    }

    /// Runs a batcher over `events` sent before it starts, then closes the channel.
    async fn run_prefilled(config: BatcherConfig, sink: Arc<RecordingSink>, events: Vec<Event>) {
        let (tx, rx) = mpsc::channel(events.len().max(1));
        for e in events {
            tx.send(e.into()).await.unwrap();
        }
        drop(tx);
        let batcher = Batcher::new(config, sink);
        tokio::time::timeout(
            Duration::from_secs(10),
            batcher.run(rx, CancellationToken::new()),
        )
        .await
        .expect("batcher finished");
    }

    #[tokio::test]
    async fn flushes_on_count() {
        let sink = Arc::new(RecordingSink::default());
        let config = BatcherConfig {
            max_events: 10,
            ..BatcherConfig::default()
        };
        run_prefilled(
            config,
            sink.clone(),
            (0..25).map(|n| event(n, 10)).collect(),
        )
        .await;
        assert_eq!(sink.batch_sizes(), [10, 10, 5]);
        let order: Vec<i64> = sink
            .delivered
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|e| e.ts.as_nanos())
            .collect();
        assert_eq!(order, (0..25).collect::<Vec<i64>>(), "delivered in order");
    }

    #[tokio::test]
    async fn a_batch_never_holds_more_days_than_a_node_accepts() {
        const DAY: i64 = 86_400 * 1_000_000_000;
        let sink = Arc::new(RecordingSink::default());
        let max_days = BatcherConfig::default().max_days;
        // A backlog of old lines, one per day, with repeats of the same day beside them.
        let events: Vec<Event> = (0..(3 * max_days + 5))
            .flat_map(|d| {
                (0..2).map(move |k| {
                    let mut e = event(d, 10);
                    e.ts = Timestamp(d as i64 * DAY + k);
                    e
                })
            })
            .collect();
        let total = events.len();
        run_prefilled(BatcherConfig::default(), sink.clone(), events).await;
        let batches = sink.delivered.lock().unwrap().clone();
        let delivered: usize = batches.iter().map(Vec::len).sum();
        assert_eq!(delivered, total, "every event delivered");
        for batch in &batches {
            let days: std::collections::BTreeSet<i64> =
                batch.iter().map(|e| e.ts.day_number()).collect();
            assert!(days.len() <= max_days, "{} days in one batch", days.len());
            // What a node with the default window makes of it: nothing refused.
            let mut check = shiplog_core::accept::AcceptWindow::default().start(Timestamp::now());
            assert!(batch.iter().all(|e| check.check(e.ts).is_ok()));
        }
        assert!(batches.len() >= 4, "{} batches", batches.len());
    }

    #[tokio::test]
    async fn flushes_on_bytes() {
        let sink = Arc::new(RecordingSink::default());
        let config = BatcherConfig {
            max_bytes: 3 * (100 + EVENT_OVERHEAD_BYTES),
            ..BatcherConfig::default()
        };
        run_prefilled(
            config,
            sink.clone(),
            (0..7).map(|n| event(n, 100)).collect(),
        )
        .await;
        assert_eq!(sink.batch_sizes(), [3, 3, 1]);
    }

    #[tokio::test]
    async fn flushes_on_age_when_idle_flush_is_off() {
        let sink = Arc::new(RecordingSink::default());
        let config = BatcherConfig {
            max_age: Duration::from_millis(50),
            flush_when_idle: false,
            ..BatcherConfig::default()
        };
        let (tx, rx) = mpsc::channel(16);
        tx.send(event(0, 10).into()).await.unwrap();
        tx.send(event(1, 10).into()).await.unwrap();
        let task =
            tokio::spawn(Batcher::new(config, sink.clone()).run(rx, CancellationToken::new()));
        // The channel stays open: only the age limit can send this batch.
        let arrived = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let notified = sink.notify.notified();
                if !sink.batch_sizes().is_empty() {
                    break;
                }
                notified.await;
            }
        })
        .await;
        assert!(arrived.is_ok(), "no batch after the age limit");
        assert_eq!(sink.batch_sizes(), [2]);
        drop(tx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn an_idle_pipeline_sends_a_lone_line_at_once_and_a_busy_one_fills_batches() {
        let sink = Arc::new(RecordingSink::default());
        let config = BatcherConfig {
            max_age: Duration::from_secs(4),
            ..BatcherConfig::default()
        };
        let (tx, rx) = mpsc::channel(16);
        let task =
            tokio::spawn(Batcher::new(config, sink.clone()).run(rx, CancellationToken::new()));
        let notified = sink.notify.notified();
        tx.send(event(0, 10).into()).await.unwrap();
        // Well under the age limit: only the idle flush can have sent it.
        tokio::time::timeout(Duration::from_secs(2), notified)
            .await
            .expect("lone line sent without waiting for the age limit");
        assert_eq!(sink.batch_sizes(), [1]);
        // A busy pipeline: these come well within max_age of that send, one at a time.
        let notified = sink.notify.notified();
        for i in 1..4 {
            tx.send(event(i, 10).into()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::timeout(Duration::from_secs(10), notified)
            .await
            .expect("the rest goes once its age limit is reached");
        assert_eq!(sink.batch_sizes(), [1, 3], "not one round trip per line");
        drop(tx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_rejected_batch_is_dropped_and_counted() {
        let sink = Arc::new(RecordingSink::failing_with([SinkError::Rejected(
            "line 1: bad".into(),
        )]));
        let config = BatcherConfig {
            max_events: 2,
            ..BatcherConfig::default()
        };
        let (tx, rx) = mpsc::channel(8);
        for n in 0..4 {
            tx.send(event(n, 10).into()).await.unwrap();
        }
        drop(tx);
        let batcher = Batcher::new(config, sink.clone());
        let stats = batcher.stats();
        batcher.run(rx, CancellationToken::new()).await;
        assert_eq!(sink.batch_sizes(), [2]);
        assert_eq!(sink.delivered.lock().unwrap()[0][0].ts, Timestamp(2));
        assert_eq!(stats.batches_rejected.load(Ordering::Relaxed), 1);
        assert_eq!(stats.events_rejected.load(Ordering::Relaxed), 2);
        assert_eq!(stats.events_sent.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_retryable_batch_is_sent_again_until_it_goes_through() {
        let retry = || SinkError::Retryable("503".into());
        let sink = Arc::new(RecordingSink::failing_with([retry(), retry()]));
        let (tx, rx) = mpsc::channel(8);
        for n in 0..3 {
            tx.send(event(n, 10).into()).await.unwrap();
        }
        drop(tx);
        let batcher = Batcher::new(BatcherConfig::default(), sink.clone());
        let stats = batcher.stats();
        tokio::time::timeout(
            Duration::from_secs(10),
            batcher.run(rx, CancellationToken::new()),
        )
        .await
        .expect("batcher finished");
        assert_eq!(sink.attempts.load(Ordering::Relaxed), 3);
        assert_eq!(sink.batch_sizes(), [3]);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
        assert_eq!(stats.events_sent.load(Ordering::Relaxed), 3);
        assert_eq!(stats.events_rejected.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn shutdown_abandons_an_undeliverable_batch_after_the_grace_period() {
        let retry = || SinkError::Retryable("down".into());
        let sink = Arc::new(RecordingSink::failing_with(std::iter::repeat_n(
            retry(),
            1000,
        )));
        let (tx, rx) = mpsc::channel(8);
        tx.send(event(0, 10).into()).await.unwrap();
        drop(tx);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let batcher = Batcher::new(BatcherConfig::default(), sink.clone())
            .with_shutdown_grace(Duration::from_millis(300));
        let stats = batcher.stats();
        tokio::time::timeout(Duration::from_secs(10), batcher.run(rx, shutdown))
            .await
            .expect("batcher gave up and finished");
        assert_eq!(stats.events_abandoned.load(Ordering::Relaxed), 1);
        assert!(sink.batch_sizes().is_empty());
    }

    #[tokio::test]
    async fn checkpoints_advance_only_for_acknowledged_batches() {
        use shiplog_core::Stream;

        use crate::checkpoint::Position;

        let at = |n: i64| SourceEvent {
            event: event(n as usize, 10),
            end: Some(SourcePosition {
                container_id: "c1".into(),
                stream: Stream::Stdout,
                position: Position {
                    ts: Timestamp(n),
                    seq: 0,
                },
            }),
        };
        let sink = Arc::new(RecordingSink::failing_with([SinkError::Rejected(
            "bad".into(),
        )]));
        let store = Arc::new(CheckpointStore::in_memory());
        let (tx, rx) = mpsc::channel(8);
        for n in 0..4 {
            tx.send(at(n)).await.unwrap();
        }
        drop(tx);
        let config = BatcherConfig {
            max_events: 2,
            ..BatcherConfig::default()
        };
        let batcher = Batcher::new(config, sink.clone()).with_checkpoints(store.clone());
        batcher.run(rx, CancellationToken::new()).await;
        let stdout = store.get("c1").unwrap().stdout.unwrap();
        assert_eq!(stdout.ts, Timestamp(3), "the acknowledged second batch");

        // A batch that is never acknowledged leaves the checkpoint where it was.
        let down = Arc::new(RecordingSink::failing_with(std::iter::repeat_n(
            SinkError::Retryable("down".into()),
            1000,
        )));
        let (tx, rx) = mpsc::channel(8);
        tx.send(at(9)).await.unwrap();
        drop(tx);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        Batcher::new(BatcherConfig::default(), down)
            .with_checkpoints(store.clone())
            .with_shutdown_grace(Duration::from_millis(200))
            .run(rx, shutdown)
            .await;
        assert_eq!(store.get("c1").unwrap().stdout.unwrap().ts, Timestamp(3));
    }
}
