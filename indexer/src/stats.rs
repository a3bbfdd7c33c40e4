//! Counters the indexer keeps for `/metrics` and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events stored (acknowledged).
    pub events: AtomicU64,
    /// Events dropped as duplicates.
    pub duplicates: AtomicU64,
    /// Bytes of event JSON taken in.
    pub bytes_in: AtomicU64,
    /// Commits made.
    pub commits: AtomicU64,
    /// Bytes in WAL segment files.
    pub wal_bytes: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Events stored.
    pub events: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Bytes of event JSON taken in.
    pub bytes_in: u64,
    /// Commits made.
    pub commits: u64,
    /// Bytes in WAL segment files.
    pub wal_bytes: u64,
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            events: self.events.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            wal_bytes: self.wal_bytes.load(Ordering::Relaxed),
        }
    }
}
