//! How one batch reaches the sink: in memory with retries until it goes through (no disk
//! buffer), or once with a time limit and then through the disk buffer, whose oldest batch
//! is replayed with retries until the receiver acknowledges it.
//!
//! Each function here is one batch in flight; the [`Batcher`](super::Batcher) runs at most
//! one at a time, which keeps batches, and so checkpoints, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use shiplog_core::Event;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::batcher::BatcherStats;
use crate::backoff::Backoff;
use crate::buffer::Buffer;
use crate::checkpoint::{CheckpointStore, SourcePosition};
use crate::sink::{Ack, EncodedBatch, Sink, SinkError};
use crate::telemetry::{BatchSent, DropReason, EventsDropped, InternalEvent, SendRetried};

/// First retry delay after a failed send.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(10);

/// A batch in the form its sink takes, made once and sent as often as it takes: the
/// encoded body for a sink that posts bytes (a retry resends the same bytes), the events
/// for one that takes them in process (each attempt gets a copy).
#[derive(Debug)]
pub(super) enum Prepared {
    /// For a sink that takes events.
    Events(Vec<Event>),
    /// For a sink that posts encoded batches.
    Encoded(EncodedBatch),
}

impl Prepared {
    async fn new(sink: &dyn Sink, events: Vec<Event>) -> Self {
        if sink.posts_encoded() {
            Prepared::Encoded(EncodedBatch::encode_off_runtime(events).await)
        } else {
            Prepared::Events(events)
        }
    }

    fn len(&self) -> usize {
        match self {
            Prepared::Events(events) => events.len(),
            Prepared::Encoded(batch) => batch.events,
        }
    }

    /// One attempt at sending it.
    fn send<'a>(&self, sink: &'a dyn Sink) -> BoxFuture<'a, Result<Ack, SinkError>> {
        match self {
            Prepared::Events(events) => sink.send(events.clone()),
            Prepared::Encoded(batch) => sink.send_encoded(batch.clone()),
        }
    }

    /// The batch encoded, as the disk buffer keeps it.
    pub(super) async fn into_encoded(self) -> EncodedBatch {
        match self {
            Prepared::Events(events) => EncodedBatch::encode_off_runtime(events).await,
            Prepared::Encoded(batch) => batch,
        }
    }
}

/// How a batch in flight ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Acknowledged, rejected or abandoned: nothing left to do.
    Done,
    /// Not delivered in time: write it to the disk buffer.
    Spill(Prepared, Vec<SourcePosition>),
    /// The shutdown grace period ended during a replay: the batch stays buffered.
    GaveUp,
}

/// Where acknowledged positions go.
#[derive(Debug)]
pub(super) struct AckBook {
    pub(super) checkpoints: Option<Arc<CheckpointStore>>,
    /// Set once a batch was abandoned: later acknowledgements must not move checkpoints
    /// past its lines.
    pub(super) frozen: AtomicBool,
}

impl AckBook {
    fn acknowledged(&self, positions: &[SourcePosition]) {
        if let Some(store) = &self.checkpoints
            && !self.frozen.load(Ordering::Acquire)
        {
            store.advance(positions);
        }
    }

    fn abandoned(&self) {
        self.frozen.store(true, Ordering::Release);
    }
}

/// What every delivery shares.
#[derive(Clone)]
pub(super) struct Deliverer {
    pub(super) sink: Arc<dyn Sink>,
    pub(super) stats: Arc<BatcherStats>,
    pub(super) acks: Arc<AckBook>,
    pub(super) give_up: CancellationToken,
}

impl Deliverer {
    fn delivered(&self, ack: Ack, count: usize, positions: &[SourcePosition], from_buffer: bool) {
        self.acks.acknowledged(positions);
        BatcherStats::add(&self.stats.batches_sent, 1);
        BatcherStats::add(&self.stats.events_sent, count);
        BatcherStats::add(&self.stats.events_duplicate, ack.duplicates);
        BatchSent {
            events: count,
            duplicates: ack.duplicates,
            from_buffer,
            positions,
        }
        .emit();
    }

    fn rejected(&self, count: usize, message: &str) {
        BatcherStats::add(&self.stats.batches_rejected, 1);
        BatcherStats::add(&self.stats.events_rejected, count);
        EventsDropped {
            count,
            reason: DropReason::Rejected,
            detail: message,
        }
        .emit();
    }

    /// Counts a failed attempt; warns once per outage.
    fn failed(&self, attempt: u64, error: &SinkError) {
        BatcherStats::add(&self.stats.retries, 1);
        SendRetried {
            attempt,
            error: &error.to_string(),
        }
        .emit();
        if !self.stats.failing.swap(true, Ordering::Relaxed) {
            warn!(error = %error, "batch delivery failing; retrying with backoff until it recovers");
        }
    }

    fn recovered(&self, attempts: u64) {
        if self.stats.failing.swap(false, Ordering::Relaxed) {
            info!(attempts, "batch delivery recovered");
        }
    }

    fn abandon(&self, count: usize) {
        self.acks.abandoned();
        BatcherStats::add(&self.stats.events_abandoned, count);
        EventsDropped {
            count,
            reason: DropReason::Abandoned,
            detail: "shutdown grace period over",
        }
        .emit();
        warn!(
            events = count,
            "shutdown grace period over; abandoning an undelivered batch"
        );
    }

    /// Sends one batch from memory until the sink acknowledges or rejects it, or
    /// `give_up` fires (no disk buffer).
    pub(super) async fn deliver(
        self,
        events: Vec<Event>,
        positions: Vec<SourcePosition>,
    ) -> Outcome {
        let batch = Prepared::new(&*self.sink, events).await;
        self.redeliver(batch, positions).await
    }

    /// Sends a batch made already until the sink acknowledges or rejects it, or `give_up`
    /// fires.
    pub(super) async fn redeliver(
        self,
        batch: Prepared,
        positions: Vec<SourcePosition>,
    ) -> Outcome {
        let count = batch.len();
        let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX).with_jitter();
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let result = tokio::select! {
                result = batch.send(&*self.sink) => result,
                () = self.give_up.cancelled() => {
                    self.abandon(count);
                    return Outcome::Done;
                }
            };
            let error = match result {
                Ok(ack) => {
                    self.recovered(attempt);
                    self.delivered(ack, count, &positions, false);
                    return Outcome::Done;
                }
                Err(SinkError::Rejected(message)) => {
                    self.rejected(count, &message);
                    return Outcome::Done;
                }
                Err(error) => error,
            };
            self.failed(attempt, &error);
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = self.give_up.cancelled() => {
                    self.abandon(count);
                    return Outcome::Done;
                }
            }
        }
    }

    /// Sends one batch from memory once; if that fails or takes longer than `limit`, hands
    /// it back to be written to the disk buffer (a slow send is cancelled: if it landed
    /// after all, the replay is a duplicate the receiver drops by id).
    pub(super) async fn send_or_spill(
        self,
        events: Vec<Event>,
        positions: Vec<SourcePosition>,
        limit: Duration,
    ) -> Outcome {
        let batch = Prepared::new(&*self.sink, events).await;
        let count = batch.len();
        let result = tokio::select! {
            result = tokio::time::timeout(limit, batch.send(&*self.sink)) => result,
            () = self.give_up.cancelled() => return Outcome::Spill(batch, positions),
        };
        match result {
            Ok(Ok(ack)) => {
                self.recovered(1);
                self.delivered(ack, count, &positions, false);
                Outcome::Done
            }
            Ok(Err(SinkError::Rejected(message))) => {
                self.rejected(count, &message);
                Outcome::Done
            }
            Ok(Err(error)) => {
                self.failed(1, &error);
                Outcome::Spill(batch, positions)
            }
            Err(_elapsed) => {
                if !self.stats.failing.swap(true, Ordering::Relaxed) {
                    warn!(limit = ?limit, "batch delivery is slow; buffering on disk until it recovers");
                }
                Outcome::Spill(batch, positions)
            }
        }
    }

    /// Sends the disk buffer's oldest batch until the receiver acknowledges or rejects it
    /// (then removes it), or `give_up` fires (it stays for the next run).
    pub(super) async fn replay_front(self, buffer: Arc<Buffer>) -> Outcome {
        let front = match buffer.front().await {
            Ok(Some(Ok(front))) => front,
            Ok(None) => return Outcome::Done,
            Ok(Some(Err(reason))) => {
                self.drop_front(&buffer, &reason).await;
                return Outcome::Done;
            }
            Err(error) => {
                self.drop_front(&buffer, &error.to_string()).await;
                return Outcome::Done;
            }
        };
        let count = front.batch.events;
        let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_MAX).with_jitter();
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let result = tokio::select! {
                result = self.sink.send_encoded(front.batch.clone()) => result,
                () = self.give_up.cancelled() => return Outcome::GaveUp,
            };
            let error = match result {
                Ok(ack) => {
                    self.pop(&buffer).await;
                    self.recovered(attempt);
                    self.delivered(ack, count, &front.positions, true);
                    return Outcome::Done;
                }
                Err(SinkError::Rejected(message)) => {
                    self.pop(&buffer).await;
                    self.rejected(count, &message);
                    return Outcome::Done;
                }
                Err(error) => error,
            };
            self.failed(attempt, &error);
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = self.give_up.cancelled() => return Outcome::GaveUp,
            }
        }
    }

    async fn pop(&self, buffer: &Arc<Buffer>) {
        if let Err(error) = buffer.pop_front().await {
            warn!(error = %error, "cannot remove a delivered batch from the disk buffer; it may be sent again");
        }
    }

    /// Drops a buffered batch that cannot be read back.
    async fn drop_front(&self, buffer: &Arc<Buffer>, reason: &str) {
        warn!(error = %reason, "dropping an unreadable batch from the disk buffer");
        EventsDropped {
            count: 0,
            reason: DropReason::BufferError,
            detail: reason,
        }
        .emit();
        self.pop(buffer).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    use futures_util::future::BoxFuture;
    use shiplog_core::{Stream, Timestamp};
    use tokio::sync::mpsc;

    use super::*;
    use crate::buffer::WhenFull;
    use crate::checkpoint::Position;
    use crate::pipeline::{Batcher, BatcherConfig};
    use crate::sources::SourceEvent;

    /// A sink that fails while `down` is set and records what it acknowledged.
    #[derive(Default)]
    struct SwitchSink {
        down: AtomicBool,
        delivered: Mutex<Vec<Event>>,
        attempts: AtomicU64,
    }

    impl SwitchSink {
        fn answer(&self, events: Vec<Event>) -> Result<Ack, SinkError> {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Err(SinkError::Retryable("connection refused".into()));
            }
            let accepted = events.len();
            self.delivered.lock().unwrap().extend(events);
            Ok(Ack {
                accepted,
                duplicates: 0,
            })
        }

        fn seqs(&self) -> Vec<u32> {
            self.delivered
                .lock()
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        }
    }

    impl Sink for SwitchSink {
        fn send(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, SinkError>> {
            Box::pin(async move { self.answer(events) })
        }
    }

    fn line(n: u32) -> SourceEvent {
        let mut event = Event::log(Timestamp(i64::from(n)), format!("line {n}"));
        event.seq = n;
        event.id = shiplog_core::EventId::for_source("n", "c1", "stdout", event.ts, n);
        SourceEvent {
            event,
            end: Some(SourcePosition {
                container_id: Arc::from("c1"),
                stream: Stream::Stdout,
                position: Position {
                    ts: Timestamp(i64::from(n)),
                    seq: n,
                },
            }),
        }
    }

    fn config() -> BatcherConfig {
        BatcherConfig {
            max_events: 10,
            max_age: Duration::from_millis(10),
            ..BatcherConfig::default()
        }
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while !check() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
    }

    /// A sink whose first send waits for `gate` and then fails; later sends go through.
    #[derive(Default)]
    struct StuckSink {
        gate: tokio::sync::Notify,
        first: AtomicBool,
        inner: SwitchSink,
    }

    impl Sink for StuckSink {
        fn send(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, SinkError>> {
            Box::pin(async move {
                if !self.first.swap(true, Ordering::Relaxed) {
                    self.gate.notified().await;
                    return Err(SinkError::Retryable("timed out".into()));
                }
                self.inner.answer(events)
            })
        }
    }

    #[tokio::test]
    async fn a_sink_slower_than_the_sources_does_not_hold_reading_up_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Arc::new(Buffer::open(dir.path(), 1 << 30, WhenFull::Block).unwrap());
        let sink = Arc::new(StuckSink::default());
        let store = Arc::new(CheckpointStore::in_memory());
        let (tx, rx) = mpsc::channel(4);
        // A spill limit far beyond the test: only the batcher seeing it is behind moves
        // batches to the buffer while the first send hangs.
        let batcher = Batcher::new(config(), sink.clone())
            .with_checkpoints(store.clone())
            .with_buffer(buffer.clone(), Duration::from_secs(3_600));
        let task = tokio::spawn(batcher.run(rx, CancellationToken::new()));
        let sending = tokio::spawn(async move {
            for n in 0..300 {
                tx.send(line(n)).await.unwrap();
            }
        });
        eventually("every line taken while the first send hangs", || {
            sending.is_finished()
        })
        .await;
        eventually("the rest buffered", || buffer.batches() >= 25).await;
        assert!(sink.inner.seqs().is_empty());
        // The hung send fails: it goes again from memory, before the buffered batches.
        sink.gate.notify_one();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            sink.inner.seqs(),
            (0..300).collect::<Vec<u32>>(),
            "in order, once each"
        );
        assert_eq!(
            store
                .get("c1")
                .and_then(|p| p.get(Stream::Stdout))
                .map(|p| p.seq),
            Some(299)
        );
        assert_eq!(buffer.batches(), 0);
    }

    #[tokio::test]
    async fn reading_goes_on_into_the_buffer_while_the_sink_is_down_then_drains_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Arc::new(Buffer::open(dir.path(), 1 << 30, WhenFull::Block).unwrap());
        let sink = Arc::new(SwitchSink::default());
        sink.down.store(true, Ordering::Relaxed);
        let store = Arc::new(CheckpointStore::in_memory());
        // A channel far smaller than what is sent: only the buffer lets reading go on.
        let (tx, rx) = mpsc::channel(4);
        let batcher = Batcher::new(config(), sink.clone())
            .with_checkpoints(store.clone())
            .with_buffer(buffer.clone(), Duration::from_millis(200));
        let task = tokio::spawn(batcher.run(rx, CancellationToken::new()));
        for n in 0..500 {
            tx.send(line(n)).await.unwrap();
        }
        eventually("everything buffered", || buffer.batches() >= 40).await;
        assert!(sink.seqs().is_empty());
        assert_eq!(
            store.get("c1"),
            None,
            "nothing acknowledged, nothing checkpointed"
        );

        sink.down.store(false, Ordering::Relaxed);
        for n in 500..600 {
            tx.send(line(n)).await.unwrap();
        }
        drop(tx);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            sink.seqs(),
            (0..600).collect::<Vec<u32>>(),
            "in order, once each"
        );
        assert_eq!(buffer.batches(), 0);
        assert_eq!(buffer.bytes(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(store.get("c1").unwrap().stdout.unwrap().seq, 599);
    }

    #[tokio::test]
    async fn drop_newest_drops_what_does_not_fit_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Arc::new(Buffer::open(dir.path(), 1, WhenFull::DropNewest).unwrap());
        let sink = Arc::new(SwitchSink::default());
        sink.down.store(true, Ordering::Relaxed);
        let before = crate::telemetry::dropped(crate::telemetry::DropReason::BufferFull);
        let (tx, rx) = mpsc::channel(4);
        let batcher = Batcher::new(config(), sink.clone())
            .with_buffer(buffer.clone(), Duration::from_secs(5));
        let task = tokio::spawn(batcher.run(rx, CancellationToken::new()));
        for n in 0..100 {
            tx.send(line(n)).await.unwrap();
        }
        // The 1-byte cap holds one batch; the rest were dropped and reading never stopped.
        eventually("drops counted", || {
            crate::telemetry::dropped(crate::telemetry::DropReason::BufferFull) > before
        })
        .await;
        assert_eq!(buffer.batches(), 1);
        sink.down.store(false, Ordering::Relaxed);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
        let seqs = sink.seqs();
        assert!(!seqs.is_empty() && seqs.len() < 100, "{seqs:?}");
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "still in order: {seqs:?}"
        );
        assert!(buffer.is_empty());
    }

    #[tokio::test]
    async fn block_stops_reading_when_the_buffer_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Arc::new(Buffer::open(dir.path(), 1, WhenFull::Block).unwrap());
        let sink = Arc::new(SwitchSink::default());
        sink.down.store(true, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(4);
        let batcher = Batcher::new(config(), sink.clone())
            .with_buffer(buffer.clone(), Duration::from_secs(5));
        let task = tokio::spawn(batcher.run(rx, CancellationToken::new()));
        let sender = tokio::spawn(async move {
            for n in 0..100 {
                tx.send(line(n)).await.unwrap();
            }
        });
        // One batch buffered, one held, one pending, four in the channel: then sends wait.
        eventually("buffer full", || buffer.batches() == 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!sender.is_finished(), "reading is blocked");
        sink.down.store(false, Ordering::Relaxed);
        sender.await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sink.seqs(), (0..100).collect::<Vec<u32>>(), "nothing lost");
    }

    #[tokio::test]
    async fn a_restart_replays_the_buffer_before_new_events() {
        let dir = tempfile::tempdir().unwrap();
        {
            let buffer = Arc::new(Buffer::open(dir.path(), 1 << 30, WhenFull::Block).unwrap());
            let sink = Arc::new(SwitchSink::default());
            sink.down.store(true, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel(4);
            let shutdown = CancellationToken::new();
            let batcher = Batcher::new(config(), sink.clone())
                .with_buffer(buffer.clone(), Duration::from_millis(100))
                .with_shutdown_grace(Duration::from_millis(100));
            let task = tokio::spawn(batcher.run(rx, shutdown.clone()));
            for n in 0..50 {
                tx.send(line(n)).await.unwrap();
            }
            drop(tx);
            shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap();
            assert!(buffer.batches() >= 5, "everything kept for the next run");
        }
        let buffer = Arc::new(Buffer::open(dir.path(), 1 << 30, WhenFull::Block).unwrap());
        let sink = Arc::new(SwitchSink::default());
        let store = Arc::new(CheckpointStore::in_memory());
        let (tx, rx) = mpsc::channel(64);
        for n in 50..60 {
            tx.send(line(n)).await.unwrap();
        }
        drop(tx);
        Batcher::new(config(), sink.clone())
            .with_checkpoints(store.clone())
            .with_buffer(buffer.clone(), Duration::from_secs(5))
            .run(rx, CancellationToken::new())
            .await;
        assert_eq!(sink.seqs(), (0..60).collect::<Vec<u32>>());
        assert_eq!(store.get("c1").unwrap().stdout.unwrap().seq, 59);
        assert!(buffer.is_empty());
    }
}
