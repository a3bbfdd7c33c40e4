//! `POST /api/v1/aggregate`: counts, rates, histograms, top terms, error ratios and
//! percentiles over a time window.
//!
//! Request (every key but `aggs` optional; `since` defaults to `1h`, `until` to `now`):
//!
//! ```json
//! {"q": "service:api", "since": "1h", "until": "now", "aggs": {
//!   "n":       {"count": {}},
//!   "per_sec": {"rate": {}},
//!   "volume":  {"date_histogram": {"interval": "5m"}},
//!   "top":     {"terms": {"field": "service", "size": 10}},
//!   "errors":  {"error_ratio": {"by": "service", "size": 100, "match": "level:error OR timeout"}},
//!   "latency": {"percentiles": {"field": "fields.latency_ms", "percents": [50, 90, 99]}}
//! }}
//! ```
//!
//! Answer, one entry per name, tagged with its `type`:
//!
//! ```json
//! {"aggs": {
//!   "n":       {"type": "count", "value": 1234},
//!   "per_sec": {"type": "rate", "value": 0.34, "count": 1234, "seconds": 3600.0},
//!   "volume":  {"type": "date_histogram", "interval_ms": 300000,
//!               "buckets": [{"ts": "2026-11-22T10:00:00Z", "count": 12}, ...]},
//!   "top":     {"type": "terms", "field": "service", "buckets": [{"key": "api", "count": 900}],
//!               "other": 300, "missing": 34, "exact": true},
//!   "errors":  {"type": "error_ratio", "by": "service", "errors": 12, "total": 1234,
//!               "ratio": 0.0097, "exact": true,
//!               "groups": [{"key": "api", "errors": 10, "total": 900, "ratio": 0.011}]},
//!   "latency": {"type": "percentiles", "path": "latency_ms", "values": {"p50": 12.0, "p90": 40.5,
//!               "p99": 180.0}, "count": 1200, "min": 1.0, "max": 950.0, "avg": 20.1,
//!               "matched": 1234, "sampled": false}
//! },
//! "since": "...", "until": "...", "took_ms": 8}
//! ```
//!
//! - `date_histogram`: buckets aligned to the interval in UTC, every bucket of the window
//!   listed (empty ones with 0). Without `interval`, the smallest of 1s, 2s, 5s, … 1d that
//!   gives at most 200 buckets; at most 10 000 buckets.
//! - `terms`: `field` is a keyword field (service, node, container_name, container_id, image,
//!   stream, level, kind) or a path inside `fields`, `input` or `output` (`fields.status`:
//!   values counted by their text, so `"200"` and `200` are one key); `size` defaults to 10.
//!   Exact unless a day holds more than 10 000 distinct values (then `exact: false`; see
//!   `shiplog_indexer::aggregate`).
//! - `error_ratio`: errors are events matching `match` (default `level:error OR
//!   level:fatal`) among the events of the query; `by` groups them by a keyword field, groups
//!   sorted by ratio, highest first; `size` defaults to 100.
//! - `percentiles`: of the numbers at `fields.<path>` (arrays flattened, strings ignored),
//!   read from the stored events because `fields` is not a columnar field: at most 200 000
//!   events (or `sample`, if smaller), an even sample of the matches beyond that
//!   (`sampled: true`). Percents default to 50, 90, 99, linear interpolation between ranks.
//!
//! A bad spec is a 400 `bad_aggregation` naming the key (`aggs.top.terms.field: …`).

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Map, Value};
use shiplog_core::Timestamp;
use shiplog_core::query::{JsonRoot, KeywordField, Query};
use shiplog_core::units::HumanDuration;
use shiplog_indexer::aggregate::{
    AggResult, AggSpec, AggregateRequest, MAX_BUCKETS, MAX_TERMS_SIZE, PERCENTILE_SAMPLE,
    TermsField, bucket_count,
};

use crate::error::ApiError;
use crate::routes::search::time_param;
use crate::state::AppState;

/// Most aggregations in one request.
pub const MAX_AGGS: usize = 20;

/// The answer.
#[derive(Debug, Serialize)]
pub struct AggregateBody {
    /// One result per requested name.
    pub aggs: std::collections::BTreeMap<String, AggResult>,
    /// Start of the window used.
    pub since: Timestamp,
    /// End of the window used.
    pub until: Timestamp,
    /// Server time spent, in milliseconds.
    pub took_ms: u64,
}

fn bad(key: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("bad_aggregation", format!("{key}: {message}"))
}

/// A query string inside the request, with the key named on error.
fn query_at(key: &str, text: &str) -> Result<Query, ApiError> {
    shiplog_core::query::parse(text).map_err(|e| ApiError {
        position: Some(e.position),
        ..bad(key, &e.message)
    })
}

fn keyword_at(key: &str, v: Option<&Value>) -> Result<KeywordField, ApiError> {
    let name = v
        .and_then(Value::as_str)
        .ok_or_else(|| bad(key, "missing: name a keyword field such as \"service\""))?;
    KeywordField::from_name(name).ok_or_else(|| {
        bad(
            key,
            format!(
                "unknown field '{name}': use service, node, container_name, container_id, image, stream, level or kind"
            ),
        )
    })
}

/// A terms field: a keyword field, or a path inside `fields`, `input` or `output`.
fn terms_field_at(key: &str, v: Option<&Value>) -> Result<TermsField, ApiError> {
    let name = v.and_then(Value::as_str).unwrap_or_default();
    for root in [JsonRoot::Fields, JsonRoot::Input, JsonRoot::Output] {
        if let Some(path) = name
            .strip_prefix(root.name())
            .and_then(|rest| rest.strip_prefix('.'))
        {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(bad(
                    key,
                    format!(
                        "'{name}' is not a path: use {}.<path>, e.g. {}.status",
                        root.name(),
                        root.name()
                    ),
                ));
            }
            return Ok(TermsField::Json {
                root,
                path: path.to_string(),
            });
        }
    }
    if name.is_empty() {
        return Err(bad(
            key,
            "missing: name a keyword field such as \"service\" or a path such as \"fields.status\"",
        ));
    }
    KeywordField::from_name(name)
        .map(TermsField::Keyword)
        .ok_or_else(|| {
            bad(
                key,
                format!(
                    "unknown field '{name}': use service, node, container_name, container_id, image, stream, level, kind or fields.<path>"
                ),
            )
        })
}

fn size_at(key: &str, v: Option<&Value>, default: usize) -> Result<usize, ApiError> {
    let Some(v) = v else {
        return Ok(default);
    };
    match v.as_u64() {
        Some(n) if n >= 1 && n as usize <= MAX_TERMS_SIZE => Ok(n as usize),
        _ => Err(bad(
            key,
            format!("must be a whole number from 1 to {MAX_TERMS_SIZE}, got {v}"),
        )),
    }
}

fn only_keys(key: &str, body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    for k in body.keys() {
        if !allowed.contains(&k.as_str()) {
            let hint = if allowed.is_empty() {
                "takes no options".to_string()
            } else {
                format!("allowed: {}", allowed.join(", "))
            };
            return Err(bad(
                &format!("{key}.{k}"),
                format!("unknown option; {hint}"),
            ));
        }
    }
    Ok(())
}

/// Reads one aggregation spec (`{"terms": {...}}`), checking it against the window.
fn spec_at(name: &str, v: &Value, since: Timestamp, until: Timestamp) -> Result<AggSpec, ApiError> {
    let key = format!("aggs.{name}");
    let obj = v
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| {
            bad(
                &key,
                "must be an object with exactly one kind: count, rate, date_histogram, terms, error_ratio or percentiles",
            )
        })?;
    let (kind, body) = obj.iter().next().expect("one entry");
    let key = format!("{key}.{kind}");
    let empty = Map::new();
    let body = match body {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(bad(&key, "must be an object")),
    };
    let at = |k: &str| format!("{key}.{k}");
    match kind.as_str() {
        "count" => {
            only_keys(&key, body, &[])?;
            Ok(AggSpec::Count)
        }
        "rate" => {
            only_keys(&key, body, &[])?;
            Ok(AggSpec::Rate)
        }
        "date_histogram" => {
            only_keys(&key, body, &["field", "interval"])?;
            if let Some(f) = body.get("field")
                && f.as_str() != Some("ts")
            {
                return Err(bad(
                    &at("field"),
                    format!("only \"ts\" can be bucketed by time, got {f}"),
                ));
            }
            let interval_ns = match body.get("interval") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s == "auto" => None,
                Some(v) => {
                    let d: HumanDuration = serde_json::from_value(v.clone()).map_err(|e| {
                        bad(
                            &at("interval"),
                            format!("{e}; use e.g. \"30s\", \"5m\", \"1h\" or \"auto\""),
                        )
                    })?;
                    let ns = i64::try_from(d.0.as_nanos()).unwrap_or(i64::MAX);
                    if ns < 1_000_000 {
                        return Err(bad(&at("interval"), "must be at least 1ms"));
                    }
                    let n = bucket_count(since.as_nanos(), until.as_nanos(), ns);
                    if n > MAX_BUCKETS {
                        return Err(bad(
                            &at("interval"),
                            format!(
                                "{d} gives {n} buckets over the window, more than {MAX_BUCKETS}: use a longer interval or \"auto\""
                            ),
                        ));
                    }
                    Some(ns)
                }
            };
            Ok(AggSpec::DateHistogram { interval_ns })
        }
        "terms" => {
            only_keys(&key, body, &["field", "size"])?;
            Ok(AggSpec::Terms {
                field: terms_field_at(&at("field"), body.get("field"))?,
                size: size_at(&at("size"), body.get("size"), 10)?,
            })
        }
        "error_ratio" => {
            only_keys(&key, body, &["by", "size", "match"])?;
            let by = match body.get("by") {
                None | Some(Value::Null) => None,
                v => Some(keyword_at(&at("by"), v)?),
            };
            let matching = match body.get("match") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(query_at(&at("match"), s)?),
                Some(_) => return Err(bad(&at("match"), "must be a query string")),
            };
            Ok(AggSpec::ErrorRatio {
                by,
                size: size_at(&at("size"), body.get("size"), 100)?,
                matching,
            })
        }
        "percentiles" => {
            only_keys(&key, body, &["field", "percents", "sample"])?;
            let sample = match body.get("sample") {
                None => PERCENTILE_SAMPLE,
                Some(v) => v
                    .as_u64()
                    .filter(|n| (1..=PERCENTILE_SAMPLE).contains(n))
                    .ok_or_else(|| {
                        bad(
                            &at("sample"),
                            format!(
                                "must be a whole number from 1 to {PERCENTILE_SAMPLE}, got {v}"
                            ),
                        )
                    })?,
            };
            let field = body.get("field").and_then(Value::as_str).ok_or_else(|| {
                bad(
                    &at("field"),
                    "missing: name a number inside fields, e.g. \"fields.latency_ms\"",
                )
            })?;
            let path = field
                .strip_prefix("fields.")
                .filter(|p| !p.is_empty() && !p.split('.').any(str::is_empty))
                .ok_or_else(|| {
                    bad(
                        &at("field"),
                        format!("'{field}' is not a path inside fields: use fields.<path>, e.g. fields.latency_ms"),
                    )
                })?;
            let percents = match body.get("percents") {
                None => vec![50.0, 90.0, 99.0],
                Some(Value::Array(items)) if !items.is_empty() && items.len() <= 20 => items
                    .iter()
                    .map(|p| {
                        p.as_f64()
                            .filter(|p| (0.0..=100.0).contains(p))
                            .ok_or_else(|| {
                                bad(
                                    &at("percents"),
                                    format!("{p} is not a number from 0 to 100"),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?,
                Some(v) => {
                    return Err(bad(
                        &at("percents"),
                        format!("must be a list of 1 to 20 numbers, got {v}"),
                    ));
                }
            };
            Ok(AggSpec::Percentiles {
                path: path.to_string(),
                percents,
                sample,
            })
        }
        other => Err(bad(
            &key,
            format!(
                "unknown aggregation '{other}': use count, rate, date_histogram, terms, error_ratio or percentiles"
            ),
        )),
    }
}

/// Reads and checks a whole request body.
pub fn parse_request(body: &[u8], now: Timestamp) -> Result<AggregateRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("bad_body", format!("request body is not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("bad_body", "request body must be a JSON object"))?;
    for k in obj.keys() {
        if !["q", "since", "until", "aggs"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "bad_body",
                format!("unknown key '{k}': use q, since, until and aggs"),
            ));
        }
    }
    let text = |k: &str| -> Result<Option<&str>, ApiError> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ApiError::bad_request(
                "bad_body",
                format!("{k}: must be a string, got {v}"),
            )),
        }
    };
    let query = query_text(text("q")?.unwrap_or(""))?;
    let since = time_param("since", Some(text("since")?.unwrap_or("1h")), now)?.unwrap_or(now);
    let until = time_param("until", Some(text("until")?.unwrap_or("now")), now)?.unwrap_or(now);
    if until < since {
        return Err(ApiError::bad_request(
            "bad_time",
            format!("until ({until}) is before since ({since})"),
        ));
    }
    let aggs = obj
        .get("aggs")
        .and_then(Value::as_object)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_aggregation",
                "aggs: missing: give at least one, e.g. {\"n\": {\"count\": {}}}",
            )
        })?;
    if aggs.len() > MAX_AGGS {
        return Err(ApiError::bad_request(
            "bad_aggregation",
            format!(
                "aggs: {} aggregations, more than {MAX_AGGS}: split the request",
                aggs.len()
            ),
        ));
    }
    let aggs = aggs
        .iter()
        .map(|(name, spec)| Ok((name.clone(), spec_at(name, spec, since, until)?)))
        .collect::<Result<_, ApiError>>()?;
    Ok(AggregateRequest {
        query,
        since,
        until,
        aggs,
    })
}

fn query_text(q: &str) -> Result<Query, ApiError> {
    shiplog_core::query::parse(q).map_err(|e| ApiError::query(&e))
}

/// Runs the aggregations of the body.
pub async fn aggregate(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    body: Bytes,
) -> Result<Json<AggregateBody>, ApiError> {
    let started = Instant::now();
    let mut req = parse_request(&body, Timestamp::now())?;
    req.query = crate::auth::caller(caller).scope(req.query);
    let (since, until) = (req.since, req.until);
    let indexer = state.indexer.clone();
    let res = crate::limits::run_blocking(&state, "aggregation", move || {
        indexer.aggregate(&req).map_err(ApiError::from)
    })
    .await?;
    Ok(Json(AggregateBody {
        aggs: res.aggs,
        since,
        until,
        took_ms: started.elapsed().as_millis() as u64,
    }))
}
