//! shiplog-indexer: keeps events durable and searchable.
//!
//! Batches enter through [`Indexer::ingest`], which queues them (bounded) for the writer
//! thread in [`writer`]. That thread drops duplicate ids ([`dedupe`]), turns each event into
//! a tantivy document ([`schema`]) in the index of its day ([`store`]), publishes it to live
//! tail subscribers, and commits at least once a second; the ingest future resolves after
//! the commit. [`search`] compiles our query tree ([`compile`]) and reads every day in the
//! window, newest first. tantivy types never leave this crate.

pub mod compile;
pub mod config;
pub mod dedupe;
pub mod error;
pub mod schema;
pub mod search;
pub mod stats;
pub mod store;
pub mod writer;

use std::sync::Arc;

use shiplog_core::Event;
use tokio::sync::broadcast;

pub use config::IndexerConfig;
pub use error::{IndexerError, Result};
pub use search::{SearchRequest, SearchResponse};
pub use stats::StatsSnapshot;
pub use writer::IngestAck;

use crate::schema::Fields;
use crate::stats::Stats;
use crate::store::Store;
use crate::writer::WriterHandle;

/// An open data directory: ingest, search and live tail.
pub struct Indexer {
    store: Arc<Store>,
    writer: WriterHandle,
    tail: broadcast::Sender<Arc<Event>>,
    stats: Arc<Stats>,
}

impl Indexer {
    /// Opens (or creates) the data directory and starts the writer thread.
    pub fn open(config: IndexerConfig) -> Result<Self> {
        let store = Arc::new(Store::open(&config.data_dir, Fields::new())?);
        let (tail, _) = broadcast::channel(config.tail_buffer.max(16));
        let stats = Arc::new(Stats::default());
        let writer = WriterHandle::start(store.clone(), &config, tail.clone(), stats.clone())?;
        tracing::info!(data_dir = %config.data_dir.display(), days = store.all_days().len(), "indexer opened");
        Ok(Indexer {
            store,
            writer,
            tail,
            stats,
        })
    }

    /// Stores a batch; resolves once it is committed. Fails at once with
    /// [`IndexerError::Busy`] when the writer queue is full.
    pub async fn ingest(&self, events: Vec<Event>) -> Result<IngestAck> {
        if events.is_empty() {
            return Ok(IngestAck::default());
        }
        let rx = self.writer.submit(events)?;
        rx.await.map_err(|_| IndexerError::Closed)?
    }

    /// Searches. Blocking (disk reads): call it from a blocking thread.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        search::search(&self.store, req)
    }

    /// Subscribes to events as they are stored. A receiver that lags by more than the
    /// configured tail buffer is told how many it missed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tail.subscribe()
    }

    /// Number of live-tail subscribers.
    pub fn subscribers(&self) -> usize {
        self.tail.receiver_count()
    }

    /// Counters since start.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Commits what is pending and stops the writer thread. Blocking.
    pub fn close(&self) {
        self.writer.shutdown();
    }
}

#[cfg(test)]
mod tests;
