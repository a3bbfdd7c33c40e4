//! Runs Elasticsearch aggregations ([`super::es_aggs`]) on the native aggregation engine
//! (`shiplog_indexer::aggregate`, the one behind `POST /api/v1/aggregate`) and writes
//! Elasticsearch's answer.
//!
//! The engine aggregates over a window, while Elasticsearch buckets a histogram from the
//! first matching event to the last; so a request first finds the time span of its matches
//! (one pass over the `ts` column), and every aggregation runs over that window.
//!
//! Sub-aggregations run the engine once per non-empty bucket, in a narrower scope that
//! matches exactly the events the bucket counted: a histogram bucket adds its time range
//! to the query, a terms bucket adds its value (`service:web`, `fields.status:200`). Empty
//! buckets need no run. The runs are capped ([`MAX_SUB_RUNS`]), as is the number of buckets
//! in one answer ([`MAX_BUCKETS_TOTAL`], Elasticsearch's `search.max_buckets`).
//!
//! Blocking (disk reads): call it from a blocking thread.

use std::ops::Bound;

use serde_json::{Map, Value, json};
use shiplog_core::Timestamp;
use shiplog_core::query::{Query, TimeRange};
use shiplog_indexer::Indexer;
use shiplog_indexer::aggregate::{
    AggResult, AggSpec, AggregateRequest, MAX_BUCKETS, MAX_TERMS_SIZE, TermBucket, TermsField,
    bucket_count,
};
use shiplog_indexer::span::TimeSpan;

use super::es_aggs::{DateHistogram, EsAgg, EsAggKind, Terms, TermsOrder};
use crate::error::ApiError;

/// Most buckets in one answer, sub-aggregation buckets included.
pub const MAX_BUCKETS_TOTAL: usize = 65_536;

/// Most buckets whose sub-aggregations one request runs (one engine run each).
pub const MAX_SUB_RUNS: usize = 1_000;

const NS_PER_MS: i64 = 1_000_000;

/// The `aggregations` of a search answer, and how many events the query matched.
#[derive(Debug)]
pub struct Answer {
    /// Results by name (or `type#name` with `typed_keys`).
    pub aggregations: Map<String, Value>,
    /// Events matching the query, counted exactly on the way.
    pub matched: u64,
}

/// Runs `aggs` over the events matching `query`.
pub fn run(
    ix: &Indexer,
    query: &Query,
    aggs: &[EsAgg],
    typed_keys: bool,
) -> Result<Answer, ApiError> {
    let span = ix.time_span(query, None, None)?;
    let mut scope = Scope {
        query: query.clone(),
        window: span.map(|s| (s.first, s.last)),
        span: Some(span),
    };
    let mut runner = Runner {
        ix,
        typed_keys,
        buckets: 0,
        sub_runs: 0,
    };
    let aggregations = runner.level(&mut scope, aggs, "")?;
    Ok(Answer {
        aggregations,
        matched: span.map_or(0, |s| s.count),
    })
}

/// The events an aggregation sees.
struct Scope {
    /// Which events.
    query: Query,
    /// Where they lie in time, both ends included; `None` when there are none.
    window: Option<(Timestamp, Timestamp)>,
    /// Their exact span, once looked up.
    span: Option<Option<TimeSpan>>,
}

impl Scope {
    /// A scope that is known to hold nothing (an empty bucket).
    fn empty() -> Scope {
        Scope {
            query: Query::All,
            window: None,
            span: Some(None),
        }
    }

    /// Narrows the scope to the events that also match `extra`, inside `window`.
    fn narrowed(&self, extra: Query, window: (Timestamp, Timestamp)) -> Scope {
        let query = match &self.query {
            Query::All => extra,
            Query::And(qs) => {
                let mut qs = qs.clone();
                qs.push(extra);
                Query::And(qs)
            }
            q => Query::And(vec![q.clone(), extra]),
        };
        Scope {
            query,
            window: Some(window),
            span: None,
        }
    }
}

fn too_many(message: String) -> ApiError {
    ApiError::bad_request("too_many_buckets", message)
}

struct Runner<'a> {
    ix: &'a Indexer,
    typed_keys: bool,
    buckets: usize,
    sub_runs: usize,
}

impl Runner<'_> {
    fn level(
        &mut self,
        scope: &mut Scope,
        aggs: &[EsAgg],
        parent: &str,
    ) -> Result<Map<String, Value>, ApiError> {
        let mut out = Map::new();
        for agg in aggs {
            let path = if parent.is_empty() {
                agg.name.clone()
            } else {
                format!("{parent}>{}", agg.name)
            };
            let mut value = match &agg.kind {
                EsAggKind::DateHistogram(h) => self.histogram(scope, h, &agg.subs, &path)?,
                EsAggKind::Terms(t) => self.terms(scope, t, &agg.subs, &path)?,
            };
            if let Some(meta) = &agg.meta {
                value["meta"] = meta.clone();
            }
            let key = if self.typed_keys {
                format!("{}#{}", agg.kind.typed_name(), agg.name)
            } else {
                agg.name.clone()
            };
            out.insert(key, value);
        }
        Ok(out)
    }

    fn span(&self, scope: &mut Scope) -> Result<Option<TimeSpan>, ApiError> {
        if let Some(span) = scope.span {
            return Ok(span);
        }
        let span = match scope.window {
            Some((lo, hi)) => self.ix.time_span(&scope.query, Some(lo), Some(hi))?,
            None => None,
        };
        scope.span = Some(span);
        Ok(span)
    }

    fn count_buckets(&mut self, n: usize) -> Result<(), ApiError> {
        self.buckets += n;
        if self.buckets > MAX_BUCKETS_TOTAL {
            return Err(too_many(format!(
                "trying to create too many buckets: must be at most {MAX_BUCKETS_TOTAL}, this request makes more; \
                 use a longer interval, a smaller size or a narrower query"
            )));
        }
        Ok(())
    }

    fn count_sub_runs(&mut self, n: usize, path: &str) -> Result<(), ApiError> {
        self.sub_runs += n;
        if self.sub_runs > MAX_SUB_RUNS {
            return Err(too_many(format!(
                "aggregation [{path}] needs sub-aggregations in more than {MAX_SUB_RUNS} buckets: \
                 use a longer interval, a smaller size or a narrower query"
            )));
        }
        Ok(())
    }

    fn engine(&self, req: AggregateRequest) -> Result<AggResult, ApiError> {
        let mut res = self.ix.aggregate(&req)?;
        res.aggs
            .pop_first()
            .map(|(_, r)| r)
            .ok_or_else(|| ApiError::internal("the aggregation engine answered nothing"))
    }

    fn histogram(
        &mut self,
        scope: &mut Scope,
        h: &DateHistogram,
        subs: &[EsAgg],
        path: &str,
    ) -> Result<Value, ApiError> {
        let span = self.span(scope)?;
        let bounds = match (span, h.extended_bounds) {
            (Some(s), Some((min, max))) => Some((s.first.min(min), s.last.max(max))),
            (Some(s), None) => Some((s.first, s.last)),
            (None, Some((min, max))) if h.min_doc_count == 0 => Some((min, max)),
            (None, _) => None,
        };
        let mut buckets: Vec<(i64, u64)> = Vec::new();
        if let Some((lo, hi)) = bounds {
            let n = bucket_count(lo.as_nanos(), hi.as_nanos(), h.interval_ns);
            if n > MAX_BUCKETS {
                return Err(too_many(format!(
                    "date_histogram [{path}] would make {n} buckets from {lo} to {hi}, more than {MAX_BUCKETS}: \
                     use a longer interval or narrow the query with a range on @timestamp"
                )));
            }
            if span.is_some() {
                let res = self.engine(AggregateRequest {
                    query: scope.query.clone(),
                    since: lo,
                    until: hi,
                    aggs: vec![(
                        "h".into(),
                        AggSpec::DateHistogram {
                            interval_ns: Some(h.interval_ns),
                        },
                    )],
                })?;
                let AggResult::DateHistogram { buckets: got, .. } = res else {
                    return Err(ApiError::internal(
                        "the engine answered another aggregation",
                    ));
                };
                buckets = got.iter().map(|b| (b.ts.as_nanos(), b.count)).collect();
            } else {
                let first = lo.as_nanos().div_euclid(h.interval_ns);
                buckets = (0..n as i64)
                    .map(|i| ((first + i).saturating_mul(h.interval_ns), 0))
                    .collect();
            }
        }
        buckets.retain(|(_, count)| *count >= h.min_doc_count);
        self.count_buckets(buckets.len())?;
        if !subs.is_empty() {
            self.count_sub_runs(buckets.iter().filter(|(_, c)| *c > 0).count(), path)?;
        }
        let mut list = Vec::with_capacity(buckets.len());
        for (start, count) in buckets {
            let key_ms = start.div_euclid(NS_PER_MS);
            let key_as_string = if h.epoch_millis {
                key_ms.to_string()
            } else {
                iso_millis(Timestamp(start))
            };
            let mut bucket =
                json!({"key_as_string": key_as_string, "key": key_ms, "doc_count": count});
            if !subs.is_empty() {
                let end = start.saturating_add(h.interval_ns);
                let mut sub = if count == 0 {
                    Scope::empty()
                } else {
                    scope.narrowed(
                        Query::Time(TimeRange {
                            from: Bound::Included(Timestamp(start)),
                            to: Bound::Excluded(Timestamp(end)),
                        }),
                        (Timestamp(start), Timestamp(end - 1)),
                    )
                };
                let inner = self.level(&mut sub, subs, path)?;
                extend(&mut bucket, inner);
            }
            list.push(bucket);
        }
        if h.keyed {
            let keyed: Map<String, Value> = list
                .into_iter()
                .map(|b| {
                    (
                        b["key_as_string"].as_str().unwrap_or_default().to_string(),
                        b,
                    )
                })
                .collect();
            return Ok(json!({"buckets": keyed}));
        }
        Ok(json!({"buckets": list}))
    }

    fn terms(
        &mut self,
        scope: &mut Scope,
        t: &Terms,
        subs: &[EsAgg],
        path: &str,
    ) -> Result<Value, ApiError> {
        let Some((lo, hi)) = scope.window else {
            return Ok(terms_answer(0, 0, Vec::new()));
        };
        // Ordering by key needs every value, not only the most frequent ones.
        let engine_size = match t.order {
            TermsOrder::CountDesc => t.size,
            TermsOrder::KeyAsc | TermsOrder::KeyDesc => MAX_TERMS_SIZE,
        };
        let res = self.engine(AggregateRequest {
            query: scope.query.clone(),
            since: lo,
            until: hi,
            aggs: vec![(
                "t".into(),
                AggSpec::Terms {
                    field: t.field.clone(),
                    size: engine_size,
                },
            )],
        })?;
        let AggResult::Terms {
            buckets,
            other,
            exact,
            ..
        } = res
        else {
            return Err(ApiError::internal(
                "the engine answered another aggregation",
            ));
        };
        let with_value: u64 = other + buckets.iter().map(|b| b.count).sum::<u64>();
        let mut kept: Vec<TermBucket> = buckets
            .into_iter()
            .filter(|b| b.count >= t.min_doc_count)
            .collect();
        match t.order {
            TermsOrder::CountDesc => {}
            TermsOrder::KeyAsc => kept.sort_by(|a, b| a.key.cmp(&b.key)),
            TermsOrder::KeyDesc => kept.sort_by(|a, b| b.key.cmp(&a.key)),
        }
        kept.truncate(t.size);
        let returned: u64 = kept.iter().map(|b| b.count).sum();
        self.count_buckets(kept.len())?;
        if !subs.is_empty() {
            self.count_sub_runs(kept.len(), path)?;
        }
        let mut list = Vec::with_capacity(kept.len());
        for b in kept {
            let mut bucket = json!({"key": b.key, "doc_count": b.count});
            if !subs.is_empty() {
                let mut sub = scope.narrowed(value_query(&t.field, &b.key), (lo, hi));
                let inner = self.level(&mut sub, subs, path)?;
                extend(&mut bucket, inner);
            }
            list.push(bucket);
        }
        // -1 is Elasticsearch's "unknown": a day held more distinct values than were kept.
        let error_bound = if exact { 0 } else { -1 };
        Ok(terms_answer(error_bound, with_value - returned, list))
    }
}

fn terms_answer(error_bound: i64, other: u64, buckets: Vec<Value>) -> Value {
    json!({
        "doc_count_error_upper_bound": error_bound,
        "sum_other_doc_count": other,
        "buckets": buckets,
    })
}

/// The query matching the events a terms bucket counted.
fn value_query(field: &TermsField, key: &str) -> Query {
    match field {
        TermsField::Keyword(k) => Query::Keyword {
            field: *k,
            value: key.to_string(),
        },
        TermsField::Json { root, path } => Query::Json {
            root: *root,
            path: path.clone(),
            value: key.to_string(),
        },
    }
}

fn extend(bucket: &mut Value, inner: Map<String, Value>) {
    if let Value::Object(b) = bucket {
        b.extend(inner);
    }
}

/// `2026-11-22T03:00:00.000Z`, Elasticsearch's default `strict_date_optional_time` output.
fn iso_millis(t: Timestamp) -> String {
    let full = t.to_rfc3339();
    // `to_rfc3339` always writes nine fraction digits: keep three.
    match full.get(..23) {
        Some(head) => format!("{head}Z"),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_elasticsearch_writes_them() {
        let t = Timestamp::parse_rfc3339("2026-11-22T03:04:05.678901234Z").unwrap();
        assert_eq!(iso_millis(t), "2026-11-22T03:04:05.678Z");
        assert_eq!(iso_millis(Timestamp(0)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn narrowing_adds_one_clause() {
        let base = Scope {
            query: Query::All,
            window: None,
            span: None,
        };
        let kw = |v: &str| Query::Keyword {
            field: shiplog_core::query::KeywordField::Service,
            value: v.into(),
        };
        let w = (Timestamp(0), Timestamp(1));
        let one = base.narrowed(kw("a"), w);
        assert_eq!(one.query, kw("a"));
        let two = one.narrowed(kw("b"), w);
        assert_eq!(two.query, Query::And(vec![kw("a"), kw("b")]));
        let three = two.narrowed(kw("c"), w);
        assert_eq!(three.query, Query::And(vec![kw("a"), kw("b"), kw("c")]));
    }
}
