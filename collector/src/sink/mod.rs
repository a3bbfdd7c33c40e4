//! Sinks: where batches go, and what the receiver answered.
//!
//! The batcher hands a sink one batch at a time and waits for its [`Ack`]. A sink says
//! whether a failure is worth retrying ([`SinkError::Retryable`]) or means the batch itself
//! is bad ([`SinkError::Rejected`]); the batcher retries the first forever and drops the
//! second, counting it.

use futures_util::future::BoxFuture;
use serde::Deserialize;
use shiplog_core::Event;

mod http;

pub use http::HttpSink;

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
}
