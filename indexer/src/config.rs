//! Indexer settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the indexer stores and commits data. Every field has a laptop-friendly default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerConfig {
    /// Root of the data directory (`logs/<day>/` lives below it).
    pub data_dir: PathBuf,
    /// tantivy writer memory budget in bytes, shared by the open day writers.
    pub writer_memory_bytes: usize,
    /// tantivy indexing threads per writer.
    pub writer_threads: usize,
    /// Longest time data waits for a commit while it keeps flowing.
    #[serde(with = "duration_ms")]
    pub commit_interval: Duration,
    /// A pause in the flow this long triggers a commit of what is pending, so the end of a
    /// burst is searchable at once instead of after `commit_interval`.
    #[serde(with = "duration_ms")]
    pub min_commit_interval: Duration,
    /// Batches the writer queue holds; past that, ingest answers "busy, retry later".
    pub queue_batches: usize,
    /// How many recent event ids are remembered to drop duplicates.
    pub dedupe_ids: usize,
    /// How far back duplicates are looked up in the index (events older than this process
    /// or than the oldest remembered id).
    #[serde(with = "duration_ms")]
    pub dedupe_window: Duration,
    /// Events a live-tail subscriber may lag behind before it is told of a gap.
    pub tail_buffer: usize,
    /// Size at which the WAL starts a new segment file.
    pub wal_segment_bytes: u64,
    /// How long data is kept.
    pub retention: crate::retention::RetentionPolicy,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            data_dir: PathBuf::from("shiplog-data"),
            writer_memory_bytes: 256 * 1024 * 1024,
            writer_threads: 2,
            commit_interval: Duration::from_millis(500),
            min_commit_interval: Duration::from_millis(200),
            queue_batches: 64,
            dedupe_ids: 2_000_000,
            dedupe_window: Duration::from_secs(24 * 3600),
            tail_buffer: 16_384,
            wal_segment_bytes: 64 * 1024 * 1024,
            retention: crate::retention::RetentionPolicy::default(),
        }
    }
}

pub(crate) mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let nanos = shiplog_core::timestamp::parse_duration_nanos(&text)
            .map_err(serde::de::Error::custom)?;
        Ok(Duration::from_nanos(nanos.max(0) as u64))
    }
}
