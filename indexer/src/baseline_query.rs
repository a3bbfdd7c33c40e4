//! The reference for `shiplog bench query`: the day indexes under `<data_dir>/logs` opened
//! with tantivy's own API and queried the way a program using tantivy directly would,
//! without our query language, compiler, aggregation engine or HTTP layer.
//!
//! Each function computes what the matching API request answers, so the benchmark can check
//! both sides agree before it compares their speed:
//!
//! - searches: a `TermQuery` or `PhraseQuery`, the newest `limit` hits by the `ts` fast
//!   field plus an exact count, per day, merged, then the stored `_source` of each hit;
//! - the date histogram and the error ratio per group: tantivy's aggregation framework
//!   (`date_histogram`, and `terms` with a `filter` sub-aggregation), one search per day,
//!   intermediate results merged across days.

use std::path::Path;

use shiplog_core::Timestamp;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::{
    AggContextParams, AggregationLimitsGuard, DistributedAggregationCollector,
};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{
    DateTime, DocAddress, Index, IndexReader, Order, ReloadPolicy, TantivyDocument, Term,
};

use crate::error::{IndexerError, Result};
use crate::schema::Fields;

/// Every day index of a data directory, each with its own reader.
pub struct RawDays {
    fields: Fields,
    days: Vec<(Index, IndexReader)>,
}

/// What a raw search found.
#[derive(Debug, Clone)]
pub struct RawHits {
    /// Matching documents over all days.
    pub total: u64,
    /// The stored JSON of the newest hits, newest first.
    pub sources: Vec<Vec<u8>>,
}

/// One group of a raw error ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRatio {
    /// The group's value.
    pub key: String,
    /// Documents of the group matching `level:error OR level:fatal`.
    pub errors: u64,
    /// Documents of the group.
    pub total: u64,
}

fn corrupt(e: impl std::fmt::Display) -> IndexerError {
    IndexerError::Corrupt(e.to_string())
}

impl RawDays {
    /// Opens every `logs/<yyyy-mm-dd>/` index under `data_dir`, oldest first.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("logs");
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .map_err(|e| IndexerError::from_io("list", &root, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("meta.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let fields = Fields::new();
        let mut days = Vec::with_capacity(names.len());
        for name in names {
            let index = Index::open_in_dir(root.join(&name))?;
            // The schema names our message analyzer; tantivy needs it registered to tokenize.
            fields.register_analyzers(&index);
            let reader = index
                .reader_builder()
                .reload_policy(ReloadPolicy::Manual)
                .try_into()?;
            days.push((index, reader));
        }
        Ok(RawDays { fields, days })
    }

    /// Number of day indexes.
    pub fn day_count(&self) -> usize {
        self.days.len()
    }

    /// Exact matches of `field:value` on a keyword field, with the newest `limit` hits.
    pub fn term(&self, field: &str, value: &str, limit: usize) -> Result<RawHits> {
        let field = self.fields.schema.get_field(field)?;
        let query = TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        );
        self.search(&query, limit)
    }

    /// Matches of a phrase in the message, tokenized by the index's own analyzer, with the
    /// newest `limit` hits.
    pub fn phrase(&self, text: &str, limit: usize) -> Result<RawHits> {
        let field = self.fields.message;
        let Some((index, _)) = self.days.first() else {
            return Ok(RawHits {
                total: 0,
                sources: Vec::new(),
            });
        };
        let mut analyzer = index.tokenizer_for_field(field)?;
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(Term::from_field_text(field, &stream.token().text));
        }
        if terms.len() < 2 {
            return Err(corrupt(format!(
                "'{text}' is not a phrase of two words or more"
            )));
        }
        self.search(&PhraseQuery::new(terms), limit)
    }

    fn search(&self, query: &dyn Query, limit: usize) -> Result<RawHits> {
        let mut total = 0u64;
        let mut candidates: Vec<(i64, usize, DocAddress)> = Vec::new();
        let mut searchers = Vec::with_capacity(self.days.len());
        for (day_no, (_, reader)) in self.days.iter().enumerate() {
            let searcher = reader.searcher();
            let top = TopDocs::with_limit(limit).order_by_fast_field::<DateTime>("ts", Order::Desc);
            let (count, hits) = searcher.search(query, &(Count, top))?;
            total += count as u64;
            for (ts, addr) in hits {
                let nanos = ts.map_or(i64::MIN, |t| t.into_timestamp_nanos());
                candidates.push((nanos, day_no, addr));
            }
            searchers.push(searcher);
        }
        candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
        candidates.truncate(limit);
        let mut sources = Vec::with_capacity(candidates.len());
        for (_, day_no, addr) in candidates {
            let doc: TantivyDocument = searchers[day_no].doc(addr)?;
            let source = doc
                .get_first(self.fields.source)
                .and_then(|v| v.as_bytes())
                .ok_or_else(|| corrupt("document has no _source"))?;
            sources.push(source.to_vec());
        }
        Ok(RawHits { total, sources })
    }

    fn window(&self, since: Timestamp, until: Timestamp) -> RangeQuery {
        let at = |t: Timestamp| {
            std::ops::Bound::Included(Term::from_field_date(
                self.fields.ts,
                DateTime::from_timestamp_nanos(t.as_nanos()),
            ))
        };
        RangeQuery::new(at(since), at(until))
    }

    /// Runs one aggregation request over the window on every day and merges the days.
    fn aggregate(
        &self,
        since: Timestamp,
        until: Timestamp,
        request: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let aggs: Aggregations = serde_json::from_value(request).map_err(corrupt)?;
        let query = self.window(since, until);
        let mut merged: Option<IntermediateAggregationResults> = None;
        for (index, reader) in &self.days {
            let context = AggContextParams::new(
                AggregationLimitsGuard::default(),
                index.tokenizers().clone(),
            );
            let collector = DistributedAggregationCollector::from_aggs(aggs.clone(), context);
            let part = reader.searcher().search(&query, &collector)?;
            match &mut merged {
                Some(m) => m.merge_fruits(part)?,
                None => merged = Some(part),
            }
        }
        let Some(merged) = merged else {
            return Ok(serde_json::Value::Null);
        };
        let result = merged.into_final_result(aggs, AggregationLimitsGuard::default())?;
        serde_json::to_value(result).map_err(corrupt)
    }

    /// Documents per `interval_ns` bucket of `ts` in `since..=until`: the non-empty buckets
    /// as (bucket start in ns, count), oldest first.
    pub fn date_histogram(
        &self,
        since: Timestamp,
        until: Timestamp,
        interval_ns: i64,
    ) -> Result<Vec<(i64, u64)>> {
        let request = serde_json::json!({"h": {"date_histogram": {
            "field": "ts",
            "fixed_interval": format!("{}ms", interval_ns / 1_000_000),
        }}});
        let result = self.aggregate(since, until, request)?;
        let mut out = Vec::new();
        for b in result["h"]["buckets"].as_array().into_iter().flatten() {
            let count = b["doc_count"].as_u64().unwrap_or(0);
            if count > 0 {
                let key_ms = b["key"]
                    .as_f64()
                    .ok_or_else(|| corrupt("bucket without key"))?;
                out.push((key_ms as i64 * 1_000_000, count));
            }
        }
        Ok(out)
    }

    /// Errors (`level:error OR level:fatal`) over all documents per value of keyword field
    /// `by` in `since..=until`: the `size` groups of highest ratio (ties: more errors first,
    /// then by key), as the aggregate API orders them.
    pub fn error_ratio(
        &self,
        since: Timestamp,
        until: Timestamp,
        by: &str,
        size: usize,
    ) -> Result<Vec<RawRatio>> {
        // Every group must be counted to rank them by ratio, not by size: ask for all of them.
        let request = serde_json::json!({"g": {
            "terms": {"field": by, "size": 65_000, "segment_size": 65_000},
            "aggs": {"errors": {"filter": "level:error OR level:fatal"}},
        }});
        let result = self.aggregate(since, until, request)?;
        let mut groups = Vec::new();
        for b in result["g"]["buckets"].as_array().into_iter().flatten() {
            groups.push(RawRatio {
                key: b["key"].as_str().unwrap_or_default().to_string(),
                total: b["doc_count"].as_u64().unwrap_or(0),
                errors: b["errors"]["doc_count"].as_u64().unwrap_or(0),
            });
        }
        let ratio = |g: &RawRatio| g.errors as f64 / g.total.max(1) as f64;
        groups.sort_by(|a, b| {
            ratio(b)
                .total_cmp(&ratio(a))
                .then(b.errors.cmp(&a.errors))
                .then_with(|| a.key.cmp(&b.key))
        });
        groups.truncate(size);
        Ok(groups)
    }
}
