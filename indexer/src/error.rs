//! Errors of the indexer.

use std::path::PathBuf;

/// What went wrong in the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// tantivy refused an operation.
    #[error("index error: {0}")]
    Tantivy(tantivy::TantivyError),
    /// The query's [`Budget`](crate::cancel::Budget) was spent (its timeout passed, or
    /// the caller gave up), so its work stopped part way.
    #[error("query stopped: it ran past its time budget")]
    Cancelled,
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
    /// Another process (or another indexer in this one) holds the data directory.
    #[error(
        "the data directory {} is in use by another shiplog node{holder}: stop that node first, or give this one its own --data-dir",
        path.display()
    )]
    InUse {
        /// The data directory.
        path: PathBuf,
        /// " (pid N)" when the holder wrote its pid, else empty.
        holder: String,
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
    /// The disk is full: nothing was acknowledged; retry once space is freed.
    #[error(
        "disk full while writing {path}: free space under the data directory; ingest resumes by itself"
    )]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// Writing the WAL failed for another reason; nothing was acknowledged.
    #[error("write-ahead log unavailable: {0}")]
    Wal(String),
    /// The audit chain or legal holds could not be used.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A search cursor could not be decoded.
    #[error("invalid cursor '{0}': pass next_cursor from a previous response unchanged")]
    BadCursor(String),
}

impl IndexerError {
    /// Classifies an I/O failure, recognising a full disk.
    pub fn from_io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        if matches!(
            source.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded
        ) || source.raw_os_error() == Some(28)
        {
            return IndexerError::DiskFull {
                path: path.to_path_buf(),
            };
        }
        IndexerError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A copy to hand to each of several waiters (I/O errors are not `Clone`).
    pub fn clone_kind(&self) -> Self {
        match self {
            IndexerError::DiskFull { path } => IndexerError::DiskFull { path: path.clone() },
            IndexerError::Busy { capacity } => IndexerError::Busy {
                capacity: *capacity,
            },
            IndexerError::Closed => IndexerError::Closed,
            IndexerError::Cancelled => IndexerError::Cancelled,
            other => IndexerError::Wal(other.to_string()),
        }
    }
}

impl From<tantivy::TantivyError> for IndexerError {
    fn from(e: tantivy::TantivyError) -> Self {
        match e {
            tantivy::TantivyError::InternalError(m) if m == crate::cancel::CANCELLED => {
                IndexerError::Cancelled
            }
            other => IndexerError::Tantivy(other),
        }
    }
}

/// Result with [`IndexerError`].
pub type Result<T> = std::result::Result<T, IndexerError>;
