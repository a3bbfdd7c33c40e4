//! The daily indexes on disk (`logs/<yyyy-mm-dd>/`) and their readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use shiplog_core::Timestamp;
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, ReloadPolicy};

use crate::error::{IndexerError, Result};
use crate::schema::Fields;

/// One day's index and a reader over its last commit.
pub struct DayIndex {
    /// The day, `yyyy-mm-dd` (UTC).
    pub day: String,
    /// The tantivy index.
    pub index: Index,
    /// A reader reloaded after each commit.
    pub reader: IndexReader,
}

/// All daily indexes, newest last.
pub struct Store {
    root: PathBuf,
    fields: Fields,
    days: RwLock<BTreeMap<String, Arc<DayIndex>>>,
}

/// Maps an I/O error to [`IndexerError::Io`] naming the action and path.
pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> IndexerError + 'a {
    move |source| IndexerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn is_day_name(name: &str) -> bool {
    name.len() == 10 && Timestamp::parse_rfc3339(name).is_ok()
}

impl Store {
    /// Opens every day found under `<data_dir>/logs`.
    pub fn open(data_dir: &Path, fields: Fields) -> Result<Self> {
        let root = data_dir.join("logs");
        std::fs::create_dir_all(&root).map_err(io("create", &root))?;
        crate::upgrade::upgrade_days(&root, &fields)?;
        let store = Store {
            root: root.clone(),
            fields,
            days: RwLock::new(BTreeMap::new()),
        };
        for entry in std::fs::read_dir(&root).map_err(io("list", &root))? {
            let entry = entry.map_err(io("list", &root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_day_name(&name) || !entry.path().join("meta.json").exists() {
                tracing::debug!(entry = %name, "skipping non-index entry in logs directory");
                continue;
            }
            store.day(&name)?;
        }
        Ok(store)
    }

    /// The schema fields.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// The index for a day, creating it if it does not exist yet.
    pub fn day(&self, day: &str) -> Result<Arc<DayIndex>> {
        if let Some(d) = self.days.read().unwrap_or_else(|e| e.into_inner()).get(day) {
            return Ok(d.clone());
        }
        let mut days = self.days.write().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = days.get(day) {
            return Ok(d.clone());
        }
        let path = self.root.join(day);
        std::fs::create_dir_all(&path).map_err(|e| IndexerError::from_io("create", &path, e))?;
        let dir = MmapDirectory::open(&path).map_err(|e| IndexerError::Io {
            action: "open",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let settings = crate::schema::index_settings();
        let index = Index::builder()
            .schema(self.fields.schema.clone())
            .settings(settings)
            .open_or_create(dir)
            .map_err(|e| IndexerError::from_tantivy_write(e, &path))?;
        self.fields.register_analyzers(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let d = Arc::new(DayIndex {
            day: day.to_string(),
            index,
            reader,
        });
        days.insert(day.to_string(), d.clone());
        Ok(d)
    }

    /// The directory holding one index directory per day.
    pub fn logs_dir(&self) -> &Path {
        &self.root
    }

    /// Days that may hold events between `since` and `until`, newest first.
    pub fn days_between(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
    ) -> Vec<Arc<DayIndex>> {
        let lo = since.map(Timestamp::day_string);
        let hi = until.map(Timestamp::day_string);
        let days = self.days.read().unwrap_or_else(|e| e.into_inner());
        days.iter()
            .rev()
            .filter(|(d, _)| lo.as_ref().is_none_or(|lo| d.as_str() >= lo.as_str()))
            .filter(|(d, _)| hi.as_ref().is_none_or(|hi| d.as_str() <= hi.as_str()))
            .map(|(_, idx)| idx.clone())
            .collect()
    }

    /// A lookup of stored ids over the days' last commits, for checking many events: each
    /// day's searcher is taken once, on its first use.
    pub fn id_lookup(&self) -> IdLookup<'_> {
        IdLookup {
            store: self,
            searchers: std::collections::HashMap::new(),
        }
    }

    /// The newest event time stored (as of the last commit), if anything is stored.
    pub fn max_ts(&self) -> Result<Option<Timestamp>> {
        let mut max = None;
        for d in self.all_days() {
            let top = tantivy::collector::TopDocs::with_limit(1)
                .order_by_fast_field::<tantivy::DateTime>("ts", tantivy::Order::Desc);
            let hits = d
                .reader
                .searcher()
                .search(&tantivy::query::AllQuery, &top)?;
            if let Some((Some(ts), _)) = hits.first() {
                let t = Timestamp(ts.into_timestamp_nanos());
                max = max.max(Some(t));
            }
        }
        Ok(max)
    }

    /// What a day holds: bytes on disk and events per kind (as of the last commit).
    pub fn facts(&self, d: &DayIndex) -> Result<crate::retention::DayFacts> {
        let searcher = d.reader.searcher();
        let mut counts = Vec::new();
        for kind in [
            shiplog_core::Kind::Log,
            shiplog_core::Kind::Registration,
            shiplog_core::Kind::Metric,
            shiplog_core::Kind::Prediction,
        ] {
            let term = tantivy::Term::from_field_text(
                self.fields.keyword(shiplog_core::query::KeywordField::Kind),
                kind.as_str(),
            );
            let q = tantivy::query::TermQuery::new(term, tantivy::schema::IndexRecordOption::Basic);
            counts.push((
                kind,
                searcher.search(&q, &tantivy::collector::Count)? as u64,
            ));
        }
        let raw_metrics =
            searcher.search(&*self.raw_metrics_query(), &tantivy::collector::Count)? as u64;
        Ok(crate::retention::DayFacts {
            day: d.day.clone(),
            bytes: dir_bytes(&self.root.join(&d.day)),
            counts,
            raw_metrics,
        })
    }

    /// Metric samples that are not roll-ups: `kind:metric AND NOT fields.resolution:1m`.
    pub fn raw_metrics_query(&self) -> Box<dyn tantivy::query::Query> {
        let q = shiplog_core::query::Query::And(vec![
            shiplog_core::query::Query::Keyword {
                field: shiplog_core::query::KeywordField::Kind,
                value: "metric".into(),
            },
            shiplog_core::query::Query::Not(Box::new(shiplog_core::query::Query::Json {
                root: shiplog_core::query::JsonRoot::Fields,
                path: "resolution".into(),
                value: crate::rollup::RESOLUTION.into(),
            })),
        ]);
        crate::compile::compile(&self.fields, &q)
    }

    /// Takes a day out of the store and deletes its directory. Searches that already hold
    /// the day keep reading it (open files stay readable); new searches no longer see it.
    pub fn remove_day(&self, day: &str) -> Result<()> {
        let removed = self
            .days
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(day);
        if removed.is_some() {
            let path = self.root.join(day);
            std::fs::remove_dir_all(&path)
                .map_err(|e| IndexerError::from_io("remove", &path, e))?;
        }
        Ok(())
    }

    /// Every day currently open, oldest first.
    pub fn all_days(&self) -> Vec<Arc<DayIndex>> {
        self.days
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Bytes in every file under `path`.
pub fn dir_bytes(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Answers whether an event id is stored, against one snapshot of each day's last commit.
/// It reads the id's term straight from each segment's term dictionary: no query, scorer
/// or collector per event, since duplicate checks on a replay can run once per event.
pub struct IdLookup<'a> {
    store: &'a Store,
    /// `None` for a day with no index.
    searchers: std::collections::HashMap<String, Option<tantivy::Searcher>>,
}

impl IdLookup<'_> {
    /// Whether an event with this id is stored (and not deleted) in the index of its day.
    pub fn contains(&mut self, event: &shiplog_core::Event) -> Result<bool> {
        let store = self.store;
        let searcher = self
            .searchers
            .entry(event.ts.day_string())
            .or_insert_with_key(|day| {
                let days = store.days.read().unwrap_or_else(|e| e.into_inner());
                days.get(day).map(|d| d.reader.searcher())
            });
        let Some(searcher) = searcher else {
            return Ok(false);
        };
        let term = tantivy::Term::from_field_bytes(store.fields.id, &event.id.0.to_be_bytes());
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(store.fields.id)?;
            let Some(info) = inverted
                .get_term_info(&term)
                .map_err(io("read ids of", &store.root))?
            else {
                continue;
            };
            let Some(alive) = segment.alive_bitset() else {
                return Ok(true);
            };
            use tantivy::DocSet;
            let mut postings = inverted
                .read_postings_from_terminfo(&info, tantivy::schema::IndexRecordOption::Basic)
                .map_err(io("read ids of", &store.root))?;
            let mut doc = postings.doc();
            while doc != tantivy::TERMINATED {
                if alive.is_alive(doc) {
                    return Ok(true);
                }
                doc = postings.advance();
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiplog_core::{Event, EventId};

    #[test]
    fn id_lookup_finds_stored_ids_across_segments_and_not_deleted_or_absent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Fields::new()).unwrap();
        let ts = Timestamp::now();
        let event = |id: u128| {
            let mut e = Event::log(ts, format!("line {id}"));
            e.id = EventId(id);
            e
        };
        let day = store.day(&ts.day_string()).unwrap();
        let mut writer = day
            .index
            .writer_with_num_threads::<tantivy::TantivyDocument>(1, 30 * 1024 * 1024)
            .unwrap();
        // Two commits, so the ids sit in two segments.
        for ids in [[1u128, 2], [3, 4]] {
            for id in ids {
                writer
                    .add_document(store.fields().document(&event(id), b"{}"))
                    .unwrap();
            }
            writer.commit().unwrap();
        }
        writer.delete_term(tantivy::Term::from_field_bytes(
            store.fields().id,
            &3u128.to_be_bytes(),
        ));
        writer.commit().unwrap();
        day.reader.reload().unwrap();

        let mut lookup = store.id_lookup();
        assert!(lookup.contains(&event(1)).unwrap());
        assert!(lookup.contains(&event(4)).unwrap());
        assert!(!lookup.contains(&event(3)).unwrap(), "deleted");
        assert!(!lookup.contains(&event(5)).unwrap(), "never stored");
        let mut other_day = event(1);
        other_day.ts = ts.offset(-3 * 86_400 * 1_000_000_000);
        assert!(
            !lookup.contains(&other_day).unwrap(),
            "an id is looked up in its own day only"
        );
    }
}
