//! The collector's sink inside `shiplog up`: hands batches straight to the indexer, with
//! the same ack contract as HTTP ingest (Ok only once committed; busy means retry).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use shiplog_collector::{Ack, Sink, SinkError};
use shiplog_core::Event;
use shiplog_indexer::Indexer;

/// A sink that writes into an in-process indexer.
pub struct LocalSink {
    indexer: Arc<Indexer>,
}

impl LocalSink {
    /// A sink over an open indexer.
    pub fn new(indexer: Arc<Indexer>) -> Self {
        LocalSink { indexer }
    }
}

impl Sink for LocalSink {
    fn send(&self, events: Vec<Event>) -> BoxFuture<'_, Result<Ack, SinkError>> {
        Box::pin(async move {
            match self.indexer.ingest(events).await {
                Ok(a) => Ok(Ack {
                    accepted: a.accepted,
                    duplicates: a.duplicates,
                }),
                // Every indexer failure is on our side of the contract (busy, closing, disk):
                // the batch itself is fine, so it is kept and sent again.
                Err(e) => Err(SinkError::Retryable(e.to_string())),
            }
        })
    }
}
