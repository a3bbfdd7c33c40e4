//! Sinks: where batches go, and what the receiver answered.
//!
//! The batcher hands a sink one batch at a time and waits for its [`Ack`]. A sink says
//! whether a failure is worth retrying ([`SinkError::Retryable`]) or means the batch itself
//! is bad ([`SinkError::Rejected`]); the batcher retries the first forever and drops the
//! second, counting it.
//!
//! Batches replayed from the disk buffer arrive already encoded ([`EncodedBatch`]: the
//! zstd NDJSON body exactly as it is posted); [`Sink::send_encoded`] takes them as they are.

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use shiplog_core::{Event, Timestamp, codec};

mod http;

pub use http::HttpSink;

/// zstd level of encoded batches: fast, and already a large gain on log text.
pub(crate) const ZSTD_LEVEL: i32 = 1;

/// A batch encoded for the wire: zstd NDJSON with its header line, and its idempotency id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Idempotency id, derived from the events, so a resent batch keeps it.
    pub batch_id: String,
    /// Number of events in the body.
    pub events: usize,
    /// The zstd-compressed NDJSON body, exactly as posted.
    pub body: Bytes,
}

impl EncodedBatch {
    /// Encodes `events` (CPU-bound: call it off the async runtime for big batches).
    pub fn encode(events: &[Event]) -> Self {
        // One encoder (zstd context and working buffers) serves batch after batch; a
        // second encode running at the same time makes its own and drops it after.
        static SPARE: std::sync::Mutex<Option<codec::BatchEncoder>> = std::sync::Mutex::new(None);
        let batch_id = http::batch_id(events);
        let taken = SPARE.lock().map(|mut spare| spare.take()).unwrap_or(None);
        let mut encoder = taken.unwrap_or_else(|| codec::BatchEncoder::new(ZSTD_LEVEL));
        let body = encoder.encode(events, Some(&batch_id));
        if let Ok(mut spare) = SPARE.lock() {
            spare.get_or_insert(encoder);
        }
        EncodedBatch {
            batch_id,
            events: events.len(),
            body: Bytes::from(body),
        }
    }

    /// Encodes `events` on a blocking thread, off the async runtime.
    pub async fn encode_off_runtime(events: Vec<Event>) -> Self {
        match tokio::task::spawn_blocking(move || EncodedBatch::encode(&events)).await {
            Ok(batch) => batch,
            // Encoding our own events cannot fail; a panic there is a bug worth surfacing.
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// Decodes the body back into events, with the wire format's size caps.
    pub fn decode(&self) -> Result<Vec<Event>, codec::CodecError> {
        // Our own batches, already cut at the day bound when they were made: a batch
        // buffered by an older build must not be refused on the way out of the buffer.
        let limits = codec::DecodeLimits {
            window: shiplog_core::accept::AcceptWindow::unbounded(),
            ..codec::DecodeLimits::default()
        };
        codec::decode_batch(&self.body, true, limits, Timestamp::now()).map(|b| b.events)
    }
}

/// What the indexer answered for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Ack {
    /// Events newly stored.
    pub accepted: usize,
    /// Events the receiver already had (same id), and skipped.
    pub duplicates: usize,
}

/// Why a batch was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The receiver is unreachable, overloaded or out of space (network errors, 429, 5xx,
    /// 507): keep the batch and send it again later. Carries what went wrong, for the log.
    #[error("batch not delivered, will retry: {0}")]
    Retryable(String),
    /// The receiver refused the batch as malformed (400): sending it again cannot succeed,
    /// so it is dropped and counted. Carries the receiver's explanation (which line and why).
    #[error("batch rejected by the receiver: {0}")]
    Rejected(String),
}

impl SinkError {
    /// Whether sending the same batch again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable(_))
    }
}

/// Where batches go. Implemented here by [`HttpSink`], and by the binary with an
/// in-process sink.
pub trait Sink: Send + Sync + 'static {
    /// Delivers one batch; Ok only once the receiver has acknowledged it durably.
    fn send(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, SinkError>>;

    /// Whether [`send_encoded`](Self::send_encoded) posts the bytes as they are. Then the
    /// pipeline encodes each batch once and a retry sends the same bytes again, instead of
    /// handing the sink a fresh copy of every event for each attempt.
    fn posts_encoded(&self) -> bool {
        false
    }

    /// Delivers one already encoded batch (from the disk buffer). The default decodes it
    /// (off the async runtime) and calls [`send`](Self::send); [`HttpSink`] posts it as is.
    fn send_encoded(&self, batch: EncodedBatch) -> BoxFuture<'_, Result<Ack, SinkError>> {
        async move {
            let decoded = tokio::task::spawn_blocking(move || batch.decode())
                .await
                .map_err(|e| {
                    SinkError::Retryable(format!("decoding a buffered batch failed: {e}"))
                })?;
            match decoded {
                Ok(events) => self.send(events).await,
                Err(e) => Err(SinkError::Rejected(format!(
                    "buffered batch is unreadable: {e}"
                ))),
            }
        }
        .boxed()
    }
}
