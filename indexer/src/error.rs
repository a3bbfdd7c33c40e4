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
    /// An index commit failed. What it covered is durable in the write-ahead log already
    /// and is indexed by a later commit.
    #[error(
        "index commit failed ({0}); the batches it covered are safe in the write-ahead log and are indexed when a commit succeeds"
    )]
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
    /// The filesystem holding the data directory is full at start, so the node cannot
    /// index what its write-ahead log holds (or open the log at all).
    #[error(
        "the filesystem holding {} is full ({free}): the {batches} batches waiting in its write-ahead log cannot be indexed. \
         Nothing acknowledged is lost, it stays in {}. Free space on that filesystem (other files, or, if you can lose \
         them, the oldest day directories under {}, one per UTC day), then start shiplog again",
        data_dir.display(),
        data_dir.join("wal").display(),
        data_dir.join("logs").display()
    )]
    FullAtStart {
        /// The data directory.
        data_dir: PathBuf,
        /// WAL batches that wait to be indexed.
        batches: usize,
        /// The free space, in words (`"12 KiB free"`, or why it is unknown).
        free: String,
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
        if is_storage_full(&source) {
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

    /// Classifies a tantivy failure while writing the index at `path` (a day's directory),
    /// recognising a full disk: tantivy wraps ENOSPC in several ways, and reports a worker
    /// thread that died writing a segment only as "an index writer was killed". Then the
    /// free space decides.
    pub fn from_tantivy_write(e: tantivy::TantivyError, path: &std::path::Path) -> Self {
        use tantivy::TantivyError as T;
        use tantivy::directory::error::OpenWriteError;
        let io = match &e {
            T::IoError(io) => Some(io.as_ref()),
            T::OpenWriteError(OpenWriteError::IoError { io_error, .. }) => Some(io_error.as_ref()),
            _ => None,
        };
        let full = io.is_some_and(is_storage_full)
            || (matches!(e, T::ErrorInThread(_)) && nearly_full(path));
        if full {
            return IndexerError::DiskFull {
                path: path.to_path_buf(),
            };
        }
        e.into()
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

/// Below this much free space a writer thread that died was most likely writing a segment
/// into a full disk (a segment is written in pieces of up to the writer's memory budget).
const NEARLY_FULL_BYTES: u64 = 64 * 1024 * 1024;

fn is_storage_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
        || e.raw_os_error() == Some(28)
}

/// Whether the filesystem holding `path` (or its nearest existing ancestor) is nearly full.
pub(crate) fn nearly_full(path: &std::path::Path) -> bool {
    free_space(path).is_some_and(|free| free < NEARLY_FULL_BYTES)
}

/// Bytes free to this process on the filesystem holding `path`, if it can be told.
pub(crate) fn free_space(path: &std::path::Path) -> Option<u64> {
    path.ancestors().find_map(|p| fs4::available_space(p).ok())
}

/// Result with [`IndexerError`].
pub type Result<T> = std::result::Result<T, IndexerError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tantivy_write_failures_on_a_full_disk_are_disk_full() {
        let path = std::path::Path::new("/nowhere/logs/2026-12-07");
        let enospc = || std::io::Error::from_raw_os_error(28);
        let wrapped = tantivy::TantivyError::OpenWriteError(
            tantivy::directory::error::OpenWriteError::wrap_io_error(enospc(), path.into()),
        );
        assert!(matches!(
            IndexerError::from_tantivy_write(wrapped, path),
            IndexerError::DiskFull { .. }
        ));
        let io = tantivy::TantivyError::IoError(std::sync::Arc::new(enospc()));
        assert!(matches!(
            IndexerError::from_tantivy_write(io, path),
            IndexerError::DiskFull { .. }
        ));
        // A dead worker thread on a disk with room is not called a full disk.
        let killed = tantivy::TantivyError::ErrorInThread("An index writer was killed".into());
        let here = std::env::temp_dir();
        if !nearly_full(&here) {
            assert!(matches!(
                IndexerError::from_tantivy_write(killed, &here),
                IndexerError::Tantivy(_)
            ));
        }
    }
}
