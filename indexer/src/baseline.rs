//! The reference for `shiplog bench index`: plain tantivy indexing the same documents with
//! the same schema, analyzers, doc store and writer settings as the writer thread, with no
//! WAL, no dedupe and no decoding. Commits follow the same cadence (`commit_interval`), since
//! "searchable within a second" is part of what both sides deliver.

use std::path::Path;
use std::time::{Duration, Instant};

use shiplog_core::Event;
use tantivy::Index;

use crate::config::IndexerConfig;
use crate::error::Result;
use crate::schema::Fields;

/// What the reference run measured.
#[derive(Debug, Clone, Copy)]
pub struct BaselineReport {
    /// Documents indexed.
    pub events: usize,
    /// Wall time from the first document to the final commit.
    pub elapsed: Duration,
    /// Commits made, the final one included.
    pub commits: u64,
}

/// Indexes `batches` into a new index under `dir`, the way the writer thread would.
pub fn index_raw(
    dir: &Path,
    batches: &[Vec<Event>],
    config: &IndexerConfig,
) -> Result<BaselineReport> {
    let fields = Fields::new();
    std::fs::create_dir_all(dir).map_err(|e| crate::IndexerError::from_io("create", dir, e))?;
    let settings = crate::schema::index_settings();
    let index = Index::builder()
        .schema(fields.schema.clone())
        .settings(settings)
        .create_in_dir(dir)?;
    fields.register_analyzers(&index);
    let memory = crate::writer::writer_memory(config);
    let mut writer = index.writer_with_num_threads::<tantivy::TantivyDocument>(
        config.writer_threads.max(1),
        memory,
    )?;
    let started = Instant::now();
    let mut last_commit = Instant::now();
    let mut events = 0;
    let mut commits = 0;
    for batch in batches {
        for e in batch {
            let source = serde_json::to_vec(e).expect("events serialise");
            writer.add_document(fields.document(e, &source))?;
        }
        events += batch.len();
        if last_commit.elapsed() >= config.commit_interval {
            writer.commit()?;
            commits += 1;
            last_commit = Instant::now();
        }
    }
    writer.commit()?;
    commits += 1;
    let elapsed = started.elapsed();
    writer.wait_merging_threads()?;
    Ok(BaselineReport {
        events,
        elapsed,
        commits,
    })
}
