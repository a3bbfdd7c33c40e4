//! Errors of the audit chain.

use std::path::PathBuf;

/// What went wrong while keeping or reading the audit chain. Tampering and damage found by
/// [`super::verify`] are not errors: they are reported per day in [`super::DayReport`].
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
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
    /// A roots, root or holds file is not in a format this build reads.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A day is not written `yyyy-mm-dd`.
    #[error("invalid day '{0}': expected a UTC date written yyyy-mm-dd, e.g. 2026-11-22")]
    BadDay(String),
    /// A record is larger than the chain accepts; nothing of its batch was appended.
    #[error(
        "prediction {id} is {len} bytes, over the {max}-byte limit of an audit record; nothing of its batch was appended"
    )]
    TooLarge {
        /// The record's event id.
        id: String,
        /// Its size.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// `verify --day` named a day of which there is nothing: no chain, no root, no exported root.
    #[error(
        "no audit chain for day {0}: `shiplog audit roots --include-open` lists the days there are"
    )]
    NoSuchDay(String),
    /// A hold was added twice or released when there was none.
    #[error("{0}")]
    Hold(String),
}

impl AuditError {
    /// An I/O failure on `path`.
    pub fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        AuditError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A file whose content is not what this build reads.
    pub fn format(path: &std::path::Path, reason: impl Into<String>) -> Self {
        AuditError::Format {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Result with [`AuditError`].
pub type Result<T> = std::result::Result<T, AuditError>;
