//! Errors of the indexer.

use std::path::PathBuf;

/// What went wrong in the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// tantivy refused an operation.
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// A file or directory could not be used.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer's queue is full; the caller should keep the batch and retry later.
    #[error("indexer is busy: its queue of {capacity} batches is full, retry later")]
    Busy {
        /// Queue capacity in batches.
        capacity: usize,
    },
    /// The indexer is shutting down or its writer thread stopped.
    #[error("indexer is shutting down")]
    Closed,
    /// A commit failed, so the batch was not made durable.
    #[error("commit failed, batch not stored: {0}")]
    Commit(String),
    /// A stored document could not be read back.
    #[error("stored event is unreadable: {0}")]
    Corrupt(String),
    /// A search cursor could not be decoded.
    #[error("invalid cursor '{0}': pass next_cursor from a previous response unchanged")]
    BadCursor(String),
}

/// Result with [`IndexerError`].
pub type Result<T> = std::result::Result<T, IndexerError>;
