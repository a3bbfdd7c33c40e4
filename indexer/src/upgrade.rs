//! Brings a day index written with an older schema up to the current one.
//!
//! tantivy refuses to open an index under a schema other than the one it was created with,
//! and every event is kept whole in `_source`, so a day from an older release is re-indexed
//! from its own stored events when the indexer starts. The steps survive a crash at any
//! point: the old index is first renamed to `<day>.upgrading` (atomic), the new one is built
//! under `<day>`, and only then is the old one removed; a start that finds a
//! `<day>.upgrading` throws away the half-built `<day>` and builds it again.

use std::path::{Path, PathBuf};

use shiplog_core::Event;
use tantivy::schema::Value;
use tantivy::{Index, TantivyDocument};

use crate::error::{IndexerError, Result};
use crate::schema::{Fields, index_settings};
use crate::store::io;

/// Suffix of a day directory whose upgrade has begun but not finished.
pub const UPGRADING_SUFFIX: &str = ".upgrading";

const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Upgrades every day under `root` (the `logs/` directory) whose schema is not `fields`',
/// and finishes upgrades a crash interrupted. Returns the days upgraded.
pub fn upgrade_days(root: &Path, fields: &Fields) -> Result<Vec<String>> {
    let mut upgraded = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map_err(io("list", root))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        if let Some(day) = name.strip_suffix(UPGRADING_SUFFIX) {
            tracing::warn!(day, "finishing an index upgrade a restart interrupted");
            let partial = root.join(day);
            if partial.exists() {
                std::fs::remove_dir_all(&partial).map_err(io("remove", &partial))?;
            }
            rebuild(&root.join(name), &partial, fields)?;
            upgraded.push(day.to_string());
        }
    }
    for name in &names {
        let dir = root.join(name);
        if name.ends_with(UPGRADING_SUFFIX)
            || upgraded.contains(name)
            || !dir.join("meta.json").exists()
        {
            continue;
        }
        let old = Index::open_in_dir(&dir)?;
        if old.schema() == fields.schema {
            continue;
        }
        drop(old);
        tracing::warn!(day = %name, "day index has an older schema: re-indexing it from its stored events");
        let moved = root.join(format!("{name}{UPGRADING_SUFFIX}"));
        std::fs::rename(&dir, &moved).map_err(io("rename", &dir))?;
        rebuild(&moved, &dir, fields)?;
        upgraded.push(name.clone());
    }
    Ok(upgraded)
}

/// Copies every stored event of the index at `old` into a new index at `new`, then removes
/// `old`.
fn rebuild(old: &Path, new: &PathBuf, fields: &Fields) -> Result<()> {
    let source_index = Index::open_in_dir(old)?;
    let source_field = source_index.schema().get_field("_source").map_err(|_| {
        IndexerError::Corrupt(format!(
            "{} has no _source field: it cannot be upgraded; move it away to start",
            old.display()
        ))
    })?;
    std::fs::create_dir_all(new).map_err(io("create", new))?;
    let index = Index::builder()
        .schema(fields.schema.clone())
        .settings(index_settings())
        .create_in_dir(new)?;
    fields.register_analyzers(&index);
    let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, WRITER_MEMORY_BYTES)?;
    let searcher = source_index.reader()?.searcher();
    let total = searcher.num_docs();
    let mut copied = 0u64;
    for (ord, segment) in searcher.segment_readers().iter().enumerate() {
        let store = segment
            .get_store_reader(1)
            .map_err(|e| IndexerError::Corrupt(format!("doc store of {}: {e}", old.display())))?;
        for doc_id in segment.doc_ids_alive() {
            let doc: TantivyDocument = store.get(doc_id)?;
            let Some(bytes) = doc.get_first(source_field).and_then(|v| v.as_bytes()) else {
                tracing::warn!(
                    segment = ord,
                    doc_id,
                    "stored document without _source skipped"
                );
                continue;
            };
            let event: Event = serde_json::from_slice(bytes).map_err(|e| {
                IndexerError::Corrupt(format!(
                    "a stored event in {} is not valid: {e}",
                    old.display()
                ))
            })?;
            writer.add_document(fields.document(&event, bytes))?;
            copied += 1;
            if copied.is_multiple_of(100_000) {
                tracing::info!(copied, total, "re-indexing {}", new.display());
            }
        }
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    drop(searcher);
    drop(source_index);
    std::fs::remove_dir_all(old).map_err(io("remove", old))?;
    tracing::info!(events = copied, "re-indexed {}", new.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiplog_core::{EventId, Timestamp};
    use tantivy::schema::{STORED, Schema};

    /// Writes a day index the way an older release did: a smaller schema, events in
    /// `_source`.
    fn old_day(root: &Path, day: &str, events: &[Event]) {
        let mut b = Schema::builder();
        let source = b.add_bytes_field("_source", STORED);
        let dir = root.join(day);
        std::fs::create_dir_all(&dir).unwrap();
        let index = Index::create_in_dir(&dir, b.build()).unwrap();
        let mut w = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for e in events {
            let mut doc = TantivyDocument::new();
            doc.add_bytes(source, &serde_json::to_vec(e).unwrap());
            w.add_document(doc).unwrap();
        }
        w.commit().unwrap();
    }

    fn events(n: u64) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = Event::log(
                    Timestamp::parse_rfc3339("2026-11-18T10:00:00Z").unwrap(),
                    format!("old line {i}"),
                );
                e.seq = i as u32;
                e.id = EventId(u128::from(i) + 1);
                e
            })
            .collect()
    }

    #[test]
    fn a_day_with_an_older_schema_is_reindexed_and_stays_searchable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        old_day(&root, "2026-11-18", &events(250));
        let ix = crate::Indexer::open(crate::IndexerConfig {
            data_dir: dir.path().to_path_buf(),
            ..crate::IndexerConfig::default()
        })
        .unwrap();
        let found = ix
            .search(&crate::SearchRequest {
                query: shiplog_core::query::parse("old").unwrap(),
                since: None,
                until: None,
                limit: 10,
                cursor: None,
            })
            .unwrap();
        assert_eq!(found.total, 250);
        assert!(found.hits.iter().all(|h| h.message.starts_with("old line")));
        assert!(!root.join(format!("2026-11-18{UPGRADING_SUFFIX}")).exists());
        ix.close();
    }

    #[test]
    fn an_interrupted_upgrade_is_finished_from_the_old_copy() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        // The state a crash mid-upgrade leaves: the old index moved aside, a partial new one.
        old_day(&root, &format!("2026-11-18{UPGRADING_SUFFIX}"), &events(40));
        std::fs::create_dir_all(root.join("2026-11-18")).unwrap();
        std::fs::write(root.join("2026-11-18/half-written"), b"x").unwrap();
        let fields = Fields::new();
        let upgraded = upgrade_days(&root, &fields).unwrap();
        assert_eq!(upgraded, vec!["2026-11-18".to_string()]);
        let index = Index::open_in_dir(root.join("2026-11-18")).unwrap();
        assert_eq!(index.schema(), fields.schema);
        assert_eq!(index.reader().unwrap().searcher().num_docs(), 40);
        assert!(!root.join(format!("2026-11-18{UPGRADING_SUFFIX}")).exists());
        // A second start finds nothing to do.
        assert!(upgrade_days(&root, &fields).unwrap().is_empty());
    }
}
