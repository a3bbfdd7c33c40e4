//! The audit trail of predictions: a tamper-evident hash chain per day, day roots that
//! auditors export and keep elsewhere, verification against both, and legal holds.
//!
//! # Model
//!
//! Every stored prediction is appended, as the exact JSON bytes stored for it, to the chain
//! of the UTC day on which it *arrived* at the indexer (the indexer's clock when
//! [`AuditLog::append`] is called), not the day of its source timestamp: a day can then
//! really close, since after midnight nothing more is appended to it, even a late record.
//! Record `i` of a day is linked by `h_i = SHA-256(h_{i-1} || i as u64 LE || len as u32 LE
//! || bytes)`; `h_{-1}` hashes a fixed domain string and the day, so records or whole
//! chains cannot be moved from one day to another without every hash changing.
//!
//! # Files, under `<data_dir>/audit/`
//!
//! - `<yyyy-mm-dd>.chain`, append-only: a header (magic `SHPLGAUD`, version 1, the day)
//!   then framed records with their chain hash and a frame checksum ([`format`]).
//! - `<yyyy-mm-dd>.root`, written (atomically) when the day closes: JSON with magic and
//!   version, the day, the record count, the root (`h` of the last record) and a checkpoint
//!   every 1024 records ([`root`]). Its presence is what makes a day closed.
//! - `<yyyy-mm-dd>.chain.cut-<offset>`: bytes cut from the end of an unclosed chain on open
//!   because they were not a whole record (a crash mid-append); kept, never deleted.
//! - `holds.json`: legal holds ([`holds`]).
//!
//! # Life of a day
//!
//! The indexer owns one [`AuditLog`]. [`AuditLog::append`] writes a batch with one `write`
//! (no fsync); [`AuditLog::sync`] fsyncs, and must run before the WAL checkpoint moves past
//! the batch, so every record the WAL forgets is durable in the chain. The first append of
//! a new day, or [`AuditLog::close_days_before`] at midnight, closes the day before.
//! [`AuditLog::open`] after a crash cuts an incomplete tail, closes days left open, and
//! remembers the ids of the open day and of the newest closed day: the WAL replay that
//! follows re-appends what the chain lacks and skips what it has, even across midnight.
//! Those ids are the only per-record memory (about 40 bytes a record, two days at most).
//!
//! # What verification proves
//!
//! [`verify`] recomputes every chain front to back and compares it with the stored hashes
//! and `.root` files: that catches any edit that did not recompute the chain. Whoever can
//! write the data directory can recompute the chain and `.root` files, though; that is what
//! exported roots ([`RootsFile`], `shiplog audit roots`) are for. Kept where the auditor
//! trusts, they commit to each closed day's count, root and checkpoints, and `verify` with
//! them catches any edited, inserted, deleted or reordered record (narrowed to the range
//! between two checkpoints when the chain was recomputed), a deleted day, and an inserted
//! day. Records appended after an export (the open day, later days) are only as safe as the
//! data directory until the next export.

pub mod chain;
pub mod error;
pub mod format;
pub mod holds;
pub mod log;
pub mod root;
pub mod verify;

pub use error::{AuditError, Result};
pub use format::{DEFAULT_CHECKPOINT_EVERY, Digest, MAX_RECORD};
pub use holds::{Hold, Holds};
pub use log::{Appended, AuditLog, Cut, OpenReport};
pub use root::{DayRoot, RootsFile, export};
pub use verify::{DayReport, Mismatch, Progress, Reason, verify, verify_with_progress};

/// The audit directory of a data directory.
pub fn audit_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("audit")
}

#[cfg(test)]
mod tests;
