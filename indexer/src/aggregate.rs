//! Aggregations over a time window: counts, rates, date histograms, top terms, error ratios
//! per group and percentiles of numbers inside `fields`.
//!
//! Callers pass our query tree and get our types back; the work runs as custom tantivy
//! collectors over the fast columns (`ts`, the keyword fields), one search per aggregation
//! per day index, and the per-day results are merged here:
//!
//! - histograms and counts add up exactly (buckets are aligned to the interval since the
//!   Unix epoch, in UTC, so every day index fills the same buckets);
//! - terms are counted exactly per day; a day with more than [`TERMS_PER_DAY`] distinct
//!   values keeps its top ones and adds the rest to `other`, and the result says
//!   `"exact": false` (Elasticsearch's shard-size approximation, with days as shards);
//! - percentiles read the value from each matching event's stored JSON, because `fields`
//!   is not a fast column: up to [`PERCENTILE_SAMPLE`] events, taken at an even stride over
//!   all matches when there are more (`"sampled": true`), then merged and sorted once.
//!
//! Blocking (disk reads): call it from a blocking thread.

use std::collections::BTreeMap;

use serde::Serialize;
use shiplog_core::query::{KeywordField, Query};
use shiplog_core::{Event, Timestamp};
use tantivy::collector::{Collector, Count, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::Query as TQuery;
use tantivy::schema::Value;
use tantivy::{DateTime, DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};

use crate::compile::{compile, within};
use crate::error::{IndexerError, Result};
use crate::store::Store;
pub use crate::terms::{TERMS_PER_DAY, TermsField};
use crate::terms::{terms, top};

/// Most buckets a date histogram may have.
pub const MAX_BUCKETS: u64 = 10_000;
/// Bucket count an automatic histogram interval stays under.
pub const AUTO_BUCKETS: u64 = 200;
/// Most events whose values a percentiles aggregation reads.
pub const PERCENTILE_SAMPLE: u64 = 200_000;
/// Largest `size` of a terms or error-ratio aggregation.
pub const MAX_TERMS_SIZE: usize = 10_000;

const NS_PER_SEC: i64 = 1_000_000_000;

/// Intervals an automatic histogram chooses from, in seconds.
const NICE_INTERVALS: [i64; 18] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
];

/// One aggregation to compute.
#[derive(Debug, Clone, PartialEq)]
pub enum AggSpec {
    /// Matching events in the window.
    Count,
    /// Matching events per second of the window.
    Rate,
    /// Matching events per time bucket; `None` picks an interval giving at most
    /// [`AUTO_BUCKETS`] buckets.
    DateHistogram {
        /// Bucket width in nanoseconds.
        interval_ns: Option<i64>,
    },
    /// The most frequent values of a keyword field or of a path inside a JSON object.
    Terms {
        /// Which field.
        field: TermsField,
        /// How many values to return.
        size: usize,
    },
    /// Errors among all events, overall or per value of a keyword field.
    ErrorRatio {
        /// Group by this field; `None` gives one overall ratio.
        by: Option<KeywordField>,
        /// How many groups to return (highest ratio first).
        size: usize,
        /// What counts as an error; `None` means `level:error OR level:fatal`.
        matching: Option<Query>,
    },
    /// Percentiles of a number inside `fields`.
    Percentiles {
        /// Path below `fields`, dot-separated.
        path: String,
        /// Percents to report, each in 0..=100.
        percents: Vec<f64>,
        /// Most events to read, at most [`PERCENTILE_SAMPLE`].
        sample: u64,
    },
}

/// What to aggregate.
#[derive(Debug, Clone)]
pub struct AggregateRequest {
    /// Which events.
    pub query: Query,
    /// Start of the window (included).
    pub since: Timestamp,
    /// End of the window (included).
    pub until: Timestamp,
    /// Named aggregations.
    pub aggs: Vec<(String, AggSpec)>,
}

/// The results, by aggregation name.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateResponse {
    /// One result per requested name.
    pub aggs: BTreeMap<String, AggResult>,
}

/// The result of one aggregation; serialised with a `type` tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AggResult {
    /// See [`AggSpec::Count`].
    Count {
        /// Matching events.
        value: u64,
    },
    /// See [`AggSpec::Rate`].
    Rate {
        /// Events per second.
        value: f64,
        /// Matching events.
        count: u64,
        /// Length of the window in seconds.
        seconds: f64,
    },
    /// See [`AggSpec::DateHistogram`].
    DateHistogram {
        /// Bucket width in milliseconds.
        interval_ms: i64,
        /// Every bucket of the window, oldest first, empty ones included.
        buckets: Vec<HistogramBucket>,
    },
    /// See [`AggSpec::Terms`].
    Terms {
        /// The field counted, as a query names it (`service`, `fields.status`).
        field: String,
        /// Values by count, highest first (ties by value).
        buckets: Vec<TermBucket>,
        /// Matching events with a value not among `buckets`.
        other: u64,
        /// Matching events without a value.
        missing: u64,
        /// Whether the counts are exact (see the module docs).
        exact: bool,
    },
    /// See [`AggSpec::ErrorRatio`].
    ErrorRatio {
        /// The grouping field, if any.
        by: Option<&'static str>,
        /// Errors over all matching events.
        errors: u64,
        /// All matching events.
        total: u64,
        /// `errors / total`, 0 when there is nothing.
        ratio: f64,
        /// Per group, highest ratio first (empty without `by`).
        groups: Vec<RatioGroup>,
        /// Whether the per-group counts are exact.
        exact: bool,
    },
    /// See [`AggSpec::Percentiles`].
    Percentiles {
        /// The path below `fields`.
        path: String,
        /// `p50` → value; absent when no event had a number there.
        values: BTreeMap<String, f64>,
        /// Numbers read.
        count: u64,
        /// Smallest number read.
        min: Option<f64>,
        /// Largest number read.
        max: Option<f64>,
        /// Mean of the numbers read.
        avg: Option<f64>,
        /// Events that matched the query.
        matched: u64,
        /// Whether only a sample of the matching events was read.
        sampled: bool,
    },
}

/// One histogram bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistogramBucket {
    /// Start of the bucket.
    pub ts: Timestamp,
    /// Events in it.
    pub count: u64,
}

/// One value of a terms aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TermBucket {
    /// The value.
    pub key: String,
    /// Events with it.
    pub count: u64,
}

/// One group of an error-ratio aggregation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatioGroup {
    /// The group's value.
    pub key: String,
    /// Errors in the group.
    pub errors: u64,
    /// Events in the group.
    pub total: u64,
    /// `errors / total`.
    pub ratio: f64,
}

/// The interval an automatic histogram uses over a window of `span_ns`: the smallest
/// "nice" width (1s, 5s, 1m, 1h, 1d, …) that gives at most [`AUTO_BUCKETS`] buckets.
pub fn auto_interval(span_ns: i64) -> i64 {
    for secs in NICE_INTERVALS {
        let ns = secs * NS_PER_SEC;
        if bucket_count(0, span_ns.max(0), ns) <= AUTO_BUCKETS {
            return ns;
        }
    }
    let day = 86_400 * NS_PER_SEC;
    let days = (span_ns / day / AUTO_BUCKETS as i64).max(1) + 1;
    days * day
}

/// Buckets of width `interval_ns` (aligned to the epoch) that `since..=until` touches.
pub fn bucket_count(since_ns: i64, until_ns: i64, interval_ns: i64) -> u64 {
    if interval_ns <= 0 || until_ns < since_ns {
        return 0;
    }
    let first = since_ns.div_euclid(interval_ns);
    let last = until_ns.div_euclid(interval_ns);
    (last - first + 1) as u64
}

/// The numerator of an error ratio when none is given: `level:error OR level:fatal`.
pub fn default_error_query() -> Query {
    let level = |v: &str| Query::Keyword {
        field: KeywordField::Level,
        value: v.to_string(),
    };
    Query::Or(vec![level("error"), level("fatal")])
}

/// Runs every aggregation of a request. Blocking.
pub fn aggregate(store: &Store, req: &AggregateRequest) -> Result<AggregateResponse> {
    let mut aggs = BTreeMap::new();
    for (name, spec) in &req.aggs {
        aggs.insert(name.clone(), one(store, req, spec)?);
    }
    Ok(AggregateResponse { aggs })
}

fn one(store: &Store, req: &AggregateRequest, spec: &AggSpec) -> Result<AggResult> {
    let base = |q: &Query| -> Box<dyn TQuery> {
        within(
            store.fields(),
            compile(store.fields(), q),
            Some(req.since),
            Some(req.until),
        )
    };
    let days = store.days_between(Some(req.since), Some(req.until));
    let span_ns = req
        .until
        .as_nanos()
        .saturating_sub(req.since.as_nanos())
        .max(0);
    match spec {
        AggSpec::Count => Ok(AggResult::Count {
            value: count(&days, &*base(&req.query))?,
        }),
        AggSpec::Rate => {
            let n = count(&days, &*base(&req.query))?;
            let seconds = (span_ns as f64 / NS_PER_SEC as f64).max(1e-9);
            Ok(AggResult::Rate {
                value: n as f64 / seconds,
                count: n,
                seconds,
            })
        }
        AggSpec::DateHistogram { interval_ns } => {
            let mut interval = interval_ns.unwrap_or_else(|| auto_interval(span_ns)).max(1);
            let mut n = bucket_count(req.since.as_nanos(), req.until.as_nanos(), interval);
            if n > MAX_BUCKETS {
                // Callers validate the interval; this only keeps memory bounded regardless.
                interval = auto_interval(span_ns);
                n = bucket_count(req.since.as_nanos(), req.until.as_nanos(), interval);
            }
            let first = req.since.as_nanos().div_euclid(interval);
            let collector = HistogramCollector {
                first,
                interval,
                buckets: n as usize,
            };
            let q = base(&req.query);
            let mut counts = vec![0u64; n as usize];
            for d in &days {
                let part = d.reader.searcher().search(&*q, &collector)?;
                for (total, c) in counts.iter_mut().zip(part) {
                    *total += c;
                }
            }
            let buckets = counts
                .into_iter()
                .enumerate()
                .map(|(i, count)| HistogramBucket {
                    ts: Timestamp((first + i as i64).saturating_mul(interval)),
                    count,
                })
                .collect();
            Ok(AggResult::DateHistogram {
                interval_ms: interval / 1_000_000,
                buckets,
            })
        }
        AggSpec::Terms { field, size } => {
            let t = terms(store.fields(), &days, &*base(&req.query), field)?;
            let (buckets, rest) = top(t.counts, *size);
            Ok(AggResult::Terms {
                field: field.describe(),
                buckets,
                other: rest + t.dropped,
                missing: t.missing,
                exact: t.exact,
            })
        }
        AggSpec::ErrorRatio { by, size, matching } => {
            let numerator = matching.clone().unwrap_or_else(default_error_query);
            let errors_query = Query::And(vec![req.query.clone(), numerator.clone()]);
            let ratio = |e: u64, t: u64| if t == 0 { 0.0 } else { e as f64 / t as f64 };
            let mut groups = Vec::new();
            let mut exact = true;
            let (total, errors);
            if let Some(field) = by {
                let field = TermsField::Keyword(*field);
                let all = terms(store.fields(), &days, &*base(&req.query), &field)?;
                let err = terms(store.fields(), &days, &*base(&errors_query), &field)?;
                // A keyword field holds one value or none per event, so the groups, the
                // capped-off rest and the events without a value add up to the totals
                // exactly, with no separate counting pass.
                total = all.matched();
                errors = err.matched();
                exact = all.exact && err.exact;
                groups = all
                    .counts
                    .into_iter()
                    .map(|(key, t)| {
                        let e = err.counts.get(&key).copied().unwrap_or(0);
                        RatioGroup {
                            key,
                            errors: e,
                            total: t,
                            ratio: ratio(e, t),
                        }
                    })
                    .collect();
                groups.sort_by(|a, b| {
                    b.ratio
                        .total_cmp(&a.ratio)
                        .then(b.errors.cmp(&a.errors))
                        .then_with(|| a.key.cmp(&b.key))
                });
                groups.truncate(*size);
            } else {
                total = count(&days, &*base(&req.query))?;
                errors = count(&days, &*base(&errors_query))?;
            }
            Ok(AggResult::ErrorRatio {
                by: by.map(KeywordField::name),
                errors,
                total,
                ratio: ratio(errors, total),
                groups,
                exact,
            })
        }
        AggSpec::Percentiles {
            path,
            percents,
            sample,
        } => percentiles(store, &days, req, path, percents, *sample),
    }
}

fn count(days: &[std::sync::Arc<crate::store::DayIndex>], q: &dyn TQuery) -> Result<u64> {
    let mut n = 0u64;
    for d in days {
        n += d.reader.searcher().search(q, &Count)? as u64;
    }
    Ok(n)
}

fn percentiles(
    store: &Store,
    days: &[std::sync::Arc<crate::store::DayIndex>],
    req: &AggregateRequest,
    path: &str,
    percents: &[f64],
    sample: u64,
) -> Result<AggResult> {
    let q = within(
        store.fields(),
        compile(store.fields(), &req.query),
        Some(req.since),
        Some(req.until),
    );
    let matched = count(days, &*q)?;
    let stride = matched.div_ceil(sample.clamp(1, PERCENTILE_SAMPLE)).max(1);
    let segments: Vec<&str> = path.split('.').collect();
    let mut values = Vec::new();
    for d in days {
        let searcher = d.reader.searcher();
        let docs = searcher.search(&*q, &SampleCollector { stride })?;
        for addr in docs {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let Some(source) = doc
                .get_first(store.fields().source)
                .and_then(|v| v.as_bytes())
            else {
                continue;
            };
            let event: Event =
                serde_json::from_slice(source).map_err(|e| IndexerError::Corrupt(e.to_string()))?;
            let fields = serde_json::Value::Object(event.fields.into_iter().collect());
            numbers_at(&fields, &segments, &mut values);
        }
    }
    values.sort_by(f64::total_cmp);
    let mut out = BTreeMap::new();
    if !values.is_empty() {
        for p in percents {
            out.insert(percent_name(*p), percentile(&values, *p));
        }
    }
    let sum: f64 = values.iter().sum();
    Ok(AggResult::Percentiles {
        path: path.to_string(),
        values: out,
        count: values.len() as u64,
        min: values.first().copied(),
        max: values.last().copied(),
        avg: (!values.is_empty()).then(|| sum / values.len() as f64),
        matched,
        sampled: stride > 1,
    })
}

/// `50` → `p50`, `99.9` → `p99.9`.
pub fn percent_name(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("p{}", p as i64)
    } else {
        format!("p{p}")
    }
}

/// The `p`th percentile of sorted values, interpolating linearly between the two nearest
/// ranks (numpy's default).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let rank = (p.clamp(0.0, 100.0) / 100.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Pushes every number found at `path` below `value`: through arrays at every level (as the
/// index flattens them), and trying dotted keys too (`{"a.b": 1}` answers `a.b`). Strings
/// never count, like numeric range queries.
pub fn numbers_at(value: &serde_json::Value, path: &[&str], out: &mut Vec<f64>) {
    use serde_json::Value as J;
    match value {
        J::Array(items) => {
            for item in items {
                numbers_at(item, path, out);
            }
        }
        J::Number(n) if path.is_empty() => out.extend(n.as_f64().filter(|f| f.is_finite())),
        J::Object(map) if !path.is_empty() => {
            for i in 1..=path.len() {
                let key = path[..i].join(".");
                if let Some(v) = map.get(&key) {
                    numbers_at(v, &path[i..], out);
                }
            }
        }
        _ => {}
    }
}

/// Counts per time bucket on the `ts` column.
struct HistogramCollector {
    first: i64,
    interval: i64,
    buckets: usize,
}

struct HistogramSegment {
    ts: Column<DateTime>,
    first: i64,
    interval: i64,
    counts: Vec<u64>,
}

impl Collector for HistogramCollector {
    type Fruit = Vec<u64>;
    type Child = HistogramSegment;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<HistogramSegment> {
        Ok(HistogramSegment {
            ts: segment.fast_fields().date("ts")?,
            first: self.first,
            interval: self.interval,
            counts: vec![0; self.buckets],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, parts: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut total = vec![0; self.buckets];
        for part in parts {
            for (t, c) in total.iter_mut().zip(part) {
                *t += c;
            }
        }
        Ok(total)
    }
}

impl SegmentCollector for HistogramSegment {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        let Some(ts) = self.ts.first(doc) else {
            return;
        };
        let bucket = ts.into_timestamp_nanos().div_euclid(self.interval) - self.first;
        // The window query keeps documents inside the buckets; the check guards the index.
        if let Some(c) = usize::try_from(bucket)
            .ok()
            .and_then(|b| self.counts.get_mut(b))
        {
            *c += 1;
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.counts
    }
}

/// Every `stride`-th matching document of each segment.
struct SampleCollector {
    stride: u64,
}

struct SampleSegment {
    segment: SegmentOrdinal,
    stride: u64,
    seen: u64,
    docs: Vec<DocAddress>,
}

impl Collector for SampleCollector {
    type Fruit = Vec<DocAddress>;
    type Child = SampleSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        _: &SegmentReader,
    ) -> tantivy::Result<SampleSegment> {
        Ok(SampleSegment {
            segment,
            stride: self.stride,
            seen: 0,
            docs: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, parts: Vec<Vec<DocAddress>>) -> tantivy::Result<Vec<DocAddress>> {
        Ok(parts.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SampleSegment {
    type Fruit = Vec<DocAddress>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if self.seen.is_multiple_of(self.stride) {
            self.docs.push(DocAddress::new(self.segment, doc));
        }
        self.seen += 1;
    }

    fn harvest(self) -> Vec<DocAddress> {
        self.docs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_interval_keeps_buckets_under_the_cap() {
        for span_s in [1, 59, 3600, 86_400, 7 * 86_400, 90 * 86_400, 4000 * 86_400] {
            let span = span_s * NS_PER_SEC;
            let i = auto_interval(span);
            assert!(
                bucket_count(0, span, i) <= AUTO_BUCKETS + 1,
                "{span_s}s → {i}"
            );
        }
        assert_eq!(auto_interval(3600 * NS_PER_SEC), 30 * NS_PER_SEC);
    }

    #[test]
    fn percentiles_interpolate() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!((percentile(&v, 50.0) - 50.5).abs() < 1e-9);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percent_name(99.9), "p99.9");
        assert_eq!(percent_name(50.0), "p50");
    }

    #[test]
    fn numbers_are_found_through_arrays_and_dotted_keys() {
        let v = serde_json::json!({"a": {"b": [1, {"c": 2}]}, "x.y": 3, "s": "4", "spans": [{"ms": 4}, {"ms": [9, 12]}]});
        let mut out = Vec::new();
        numbers_at(&v, &["x", "y"], &mut out);
        numbers_at(&v, &["s"], &mut out);
        numbers_at(&v, &["spans", "ms"], &mut out);
        assert_eq!(out, vec![3.0, 4.0, 9.0, 12.0]);
        out.clear();
        numbers_at(&v, &["a", "b"], &mut out);
        assert_eq!(out, vec![1.0]);
    }
}
