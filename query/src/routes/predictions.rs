//! Predictions: `POST /api/v1/predictions` (direct ingest, `ingest` role),
//! `GET /api/v1/predictions` (auditor queries and streamed NDJSON/CSV exports, `audit`
//! role, each recorded), `GET /api/v1/predictions/exports/{id}` (an export's manifest),
//! `GET /api/v1/predictions/summary` (rate, error ratio and latency per model and version)
//! and `GET /api/v1/audit/access` (the access record, `admin`).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query as QueryParams, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use shiplog_core::query::{JsonRoot, KeywordField, NumberRange, Query};
use shiplog_core::{Event, Kind, Timestamp};
use shiplog_indexer::SearchRequest;

use crate::auth::{Caller, caller};
use crate::error::ApiError;
use crate::predictions::{ExportManifest, PredictionService};
use crate::routes::search::{SearchBody, page_limit, time_param};
use crate::state::AppState;

/// Records read per page while exporting or summarising.
const PAGE: usize = 1_000;
/// Most predictions a summary reads; past it the summary covers the newest ones and says
/// so (`truncated`).
pub const SUMMARY_CAP: u64 = 100_000;
/// Most reasons listed for malformed records in one ingest answer.
const MAX_REPORTED: usize = 100;

/// What `POST /api/v1/predictions` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct PredictionAck {
    /// Records stored (predictions and malformed ones kept as logs).
    pub accepted: usize,
    /// Records already stored before (same id).
    pub duplicates: usize,
    /// Records stored as predictions.
    pub predictions: usize,
    /// Records kept as logs because a required key was missing or ill-typed.
    pub malformed: usize,
    /// Why, for the first [`MAX_REPORTED`] malformed records (`record` counts from 1).
    pub errors: Vec<RecordError>,
}

/// One malformed record.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordError {
    /// Position in the body, from 1.
    pub record: usize,
    /// What was wrong.
    pub reason: String,
}

/// Splits a body into JSON records: a JSON array of objects, or NDJSON. A record that is
/// not valid JSON, or not an object, refuses the whole body (400 naming it), like the
/// native ingest endpoint.
fn records(body: &[u8], max_records: usize) -> Result<Vec<Map<String, Value>>, ApiError> {
    let bad = |record: usize, msg: String| ApiError {
        line: Some(record),
        ..ApiError::bad_request("bad_record", msg)
    };
    let as_object = |record: usize, v: Value| match v {
        Value::Object(m) => Ok(m),
        other => Err(bad(
            record,
            format!(
                "record {record} is {} not an object: send one JSON object per prediction",
                kind_of(&other)
            ),
        )),
    };
    let text = body.trim_ascii_start();
    let mut out = Vec::new();
    if text.starts_with(b"[") {
        let items: Vec<Value> = serde_json::from_slice(text)
            .map_err(|e| bad(1, format!("the JSON array is not valid: {e}")))?;
        if items.len() > max_records {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_records",
                format!(
                    "{} records in one request; at most {max_records}",
                    items.len()
                ),
            ));
        }
        for (i, v) in items.into_iter().enumerate() {
            out.push(as_object(i + 1, v)?);
        }
        return Ok(out);
    }
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if out.len() == max_records {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_records",
                format!("more than {max_records} records in one request"),
            ));
        }
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| bad(i + 1, format!("line {} is not valid JSON: {e}", i + 1)))?;
        out.push(as_object(i + 1, v)?);
    }
    Ok(out)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null,",
        Value::Bool(_) => "a boolean,",
        Value::Number(_) => "a number,",
        Value::String(_) => "a string,",
        Value::Array(_) => "an array,",
        Value::Object(_) => "an object,",
    }
}

/// Turns records into events: mapping, then redaction, then ids. Malformed records stay,
/// as logs.
fn to_events(svc: &PredictionService, recs: Vec<Map<String, Value>>, now: Timestamp) -> Prepared {
    let mut p = Prepared::default();
    for (i, rec) in recs.into_iter().enumerate() {
        let (mut event, outcome) = svc.rules.mapping.event_from_record(rec, now);
        match outcome {
            Ok(()) => p.predictions += 1,
            Err(e) => {
                p.malformed += 1;
                if p.errors.len() < MAX_REPORTED {
                    p.errors.push(RecordError {
                        record: i + 1,
                        reason: e.0,
                    });
                }
            }
        }
        if svc.rules.redact(&mut event) {
            p.redacted += 1;
        }
        // Records of one request that share a time keep their order.
        event.seq = i as u32;
        event.ensure_id();
        p.events.push(event);
    }
    p
}

#[derive(Default)]
struct Prepared {
    events: Vec<Event>,
    predictions: usize,
    malformed: usize,
    redacted: usize,
    errors: Vec<RecordError>,
}

/// `POST /api/v1/predictions`: a JSON array or NDJSON of prediction records (plain or
/// zstd), mapped, redacted and stored; answered once durable.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PredictionAck>, ApiError> {
    let compressed = crate::routes::ingest::encoding(&headers)?;
    crate::routes::ingest::check_content_type(&headers)?;
    let bytes = crate::routes::ingest::read_body(&state, body).await?;
    let limits = state.limits.decode;
    let svc = state.predictions.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let raw: std::borrow::Cow<'_, [u8]> = if compressed {
            shiplog_core::codec::decompress_capped(&bytes, limits.max_decompressed_bytes)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| ApiError::bad_request("bad_body", e.to_string()))?
        } else {
            std::borrow::Cow::Borrowed(&bytes[..])
        };
        let recs = records(&raw, limits.max_events)?;
        Ok::<_, ApiError>(to_events(&svc, recs, Timestamp::now()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("decode task failed: {e}")))??;
    crate::routes::ingest::check_times(&state, &prepared.events)?;
    let ack = state.indexer.ingest(prepared.events).await?;
    state.predictions.count(
        prepared.predictions as u64,
        prepared.malformed as u64,
        prepared.redacted as u64,
    );
    Ok(Json(PredictionAck {
        accepted: ack.accepted,
        duplicates: ack.duplicates,
        predictions: prepared.predictions,
        malformed: prepared.malformed,
        errors: prepared.errors,
    }))
}

/// `GET` (audit queries and exports) and `POST` (direct ingest) on `/api/v1/predictions`.
pub fn route() -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(list).post(ingest)
}

/// Filters of `GET /api/v1/predictions`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionParams {
    /// Model name, exactly.
    pub model: Option<String>,
    /// Model version, exactly.
    pub version: Option<String>,
    /// Request id, exactly.
    pub request_id: Option<String>,
    /// Status, exactly (`ok`, `error`, ...).
    pub status: Option<String>,
    /// Lowest latency in milliseconds (included).
    pub min_latency_ms: Option<f64>,
    /// Highest latency in milliseconds (included).
    pub max_latency_ms: Option<f64>,
    /// Any further query in the language (`input.customer_id:123`).
    #[serde(default)]
    pub q: String,
    /// Lower time bound.
    pub since: Option<String>,
    /// Upper time bound.
    pub until: Option<String>,
    /// Page size (JSON answers only).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `json` (default, paged), `ndjson` or `csv` (streamed export of every match).
    pub format: Option<String>,
}

/// The query the filters make: `kind:prediction` and every filter given.
pub fn filter_query(p: &PredictionParams) -> Result<Query, ApiError> {
    let mut clauses = vec![Query::Keyword {
        field: KeywordField::Kind,
        value: Kind::Prediction.as_str().to_string(),
    }];
    for (field, value) in [
        (KeywordField::Model, &p.model),
        (KeywordField::ModelVersion, &p.version),
        (KeywordField::RequestId, &p.request_id),
        (KeywordField::Status, &p.status),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            clauses.push(Query::Keyword {
                field,
                value: v.to_string(),
            });
        }
    }
    if p.min_latency_ms.is_some() || p.max_latency_ms.is_some() {
        let bound = |v: Option<f64>, name: &str| match v {
            Some(x) if !x.is_finite() => Err(ApiError::bad_request(
                "bad_latency",
                format!("{name} must be a finite number"),
            )),
            Some(x) => Ok(std::ops::Bound::Included(x)),
            None => Ok(std::ops::Bound::Unbounded),
        };
        clauses.push(Query::Number {
            root: JsonRoot::Latency,
            path: String::new(),
            range: NumberRange {
                lower: bound(p.min_latency_ms, "min_latency_ms")?,
                upper: bound(p.max_latency_ms, "max_latency_ms")?,
            },
        });
    }
    let extra = shiplog_core::query::parse(&p.q).map_err(|e| ApiError::query(&e))?;
    if extra != Query::All {
        clauses.push(extra);
    }
    Ok(Query::And(clauses))
}

/// `GET /api/v1/predictions`: a page of predictions as JSON, or every match streamed as
/// NDJSON or CSV with a manifest. Each call is recorded in the access record.
pub async fn list(
    State(state): State<AppState>,
    ext: Option<axum::Extension<Caller>>,
    RawQuery(raw): RawQuery,
    params: Result<QueryParams<PredictionParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let who = caller(ext);
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let query = filter_query(&p)?;
    let now = Timestamp::now();
    let since = time_param("since", p.since.as_deref(), now)?;
    let until = time_param("until", p.until.as_deref(), now)?;
    let raw = raw.unwrap_or_default();
    let format = p.format.as_deref().unwrap_or("json");
    match format {
        "json" => {}
        "ndjson" | "csv" => {
            return export(state, who, query, raw, since, until, format == "csv").await;
        }
        other => {
            return Err(ApiError::bad_request(
                "bad_format",
                format!("format '{other}' is not known: use json, ndjson or csv"),
            ));
        }
    }
    let limit = page_limit(p.limit, &state)?;
    let req = SearchRequest {
        query,
        since,
        until,
        limit,
        cursor: p.cursor,
    };
    let indexer = state.indexer.clone();
    let svc = state.predictions.clone();
    let max_bytes = state.limits.max_response_bytes;
    let body = crate::limits::run_blocking(&state, "search", move || {
        let res = indexer
            .search_capped(&req, max_bytes)
            .map_err(ApiError::from)?;
        let mut extra = Map::new();
        extra.insert("total".into(), res.total.into());
        svc.record_access(
            &who,
            "/api/v1/predictions",
            &raw,
            res.hits.len() as u64,
            extra,
        )
        .map_err(|e| ApiError::internal(format!("cannot write the access record: {e}")))?;
        Ok(SearchBody {
            hits: res
                .hits
                .into_iter()
                .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                .collect(),
            total: res.total,
            total_exact: res.total_exact,
            next_cursor: res.next_cursor,
            truncated: res.truncated,
            took_ms: 0,
        })
    })
    .await?;
    Ok(Json(SearchBody {
        took_ms: started.elapsed().as_millis() as u64,
        ..body
    })
    .into_response())
}

/// Columns of a CSV export, in order.
pub const CSV_COLUMNS: [&str; 12] = [
    "ts",
    "id",
    "model",
    "model_version",
    "request_id",
    "status",
    "latency_ms",
    "service",
    "node",
    "container_name",
    "input",
    "output",
];

/// One CSV field, quoted when it holds a comma, quote, CR or LF (RFC 4180).
fn csv_field(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn csv_row(out: &mut Vec<u8>, e: &Event) {
    let json = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
    let cells = [
        e.ts.to_rfc3339(),
        e.id.to_string(),
        e.model.clone().unwrap_or_default(),
        e.model_version.clone().unwrap_or_default(),
        e.request_id.clone().unwrap_or_default(),
        e.status.clone().unwrap_or_default(),
        e.latency_ms.map(|v| v.to_string()).unwrap_or_default(),
        e.service.clone(),
        e.node.clone(),
        e.container_name.clone(),
        json(&e.input),
        json(&e.output),
    ];
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, c);
    }
    out.extend_from_slice(b"\r\n");
}

/// Streams every match, newest first, a page at a time through a bounded channel (the
/// producer waits while the client is slow: memory stays at a few pages whatever the size
/// of the export). The SHA-256 of the body is computed as it is sent; the manifest is kept
/// and the access record written when the stream ends.
async fn export(
    state: AppState,
    who: Caller,
    query: Query,
    raw: String,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    csv: bool,
) -> Result<Response, ApiError> {
    let svc = state.predictions.clone();
    let id = svc.export_id();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let indexer = state.indexer.clone();
    let export_id = id.clone();
    let started = Timestamp::now();
    tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        let (mut records, mut bytes, mut complete) = (0u64, 0u64, true);
        let mut cursor = None;
        let mut first = true;
        loop {
            let req = SearchRequest {
                query: query.clone(),
                since,
                until,
                limit: PAGE,
                cursor: cursor.take(),
            };
            let res = match indexer.search(&req) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(export = %export_id, error = %e, "export stopped by a search error");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    complete = false;
                    break;
                }
            };
            let mut chunk = Vec::with_capacity(res.hits.len() * 256);
            if csv && first {
                chunk.extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
                chunk.extend_from_slice(b"\r\n");
            }
            first = false;
            for e in &res.hits {
                if csv {
                    csv_row(&mut chunk, e);
                } else {
                    if serde_json::to_writer(&mut chunk, e).is_err() {
                        continue;
                    }
                    chunk.push(b'\n');
                }
                records += 1;
            }
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            if !chunk.is_empty() && tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                complete = false;
                break;
            }
            match res.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let manifest = ExportManifest {
            id: export_id,
            format: if csv { "csv" } else { "ndjson" }.to_string(),
            query: raw,
            since,
            until,
            records,
            bytes,
            sha256: shiplog_core::digest::hex(&hasher.finalize()),
            complete,
            started,
            token: who.name.clone(),
        };
        let mut extra = Map::new();
        extra.insert("export_id".into(), manifest.id.clone().into());
        extra.insert("format".into(), manifest.format.clone().into());
        extra.insert("sha256".into(), manifest.sha256.clone().into());
        extra.insert("bytes".into(), bytes.into());
        extra.insert("complete".into(), complete.into());
        if let Err(e) =
            svc.record_access(&who, "/api/v1/predictions", &manifest.query, records, extra)
        {
            tracing::error!(error = %e, "cannot write the access record of an export");
        }
        svc.keep_manifest(manifest);
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    let (ct, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-shiplog-export-id", v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"predictions-{id}.{ext}\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `GET /api/v1/predictions/exports/{id}`: the manifest of a finished export (404 while it
/// is still streaming or once [`crate::predictions::MANIFESTS_KEPT`] newer ones pushed it
/// out; its checksum stays in the access record).
pub async fn manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ExportManifest>, ApiError> {
    state.predictions.manifest(&id).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_export",
            format!(
                "no finished export '{id}': read the body to its end first, or find its sha256 \
                 in /api/v1/audit/access"
            ),
        )
    })
}

/// Parameters of the summary.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    /// Window start (default `1h`).
    pub since: Option<String>,
    /// Window end (default now).
    pub until: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// Buckets of the series (default 30, at most 500).
    pub buckets: Option<usize>,
}

/// The summary of one model version.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelSummary {
    /// Model name.
    pub model: String,
    /// Model version (empty when records carry none).
    pub model_version: String,
    /// Predictions in the window.
    pub count: u64,
    /// Predictions per second over the window.
    pub rate_per_s: f64,
    /// Share of predictions with status `error` (or an error level).
    pub error_ratio: f64,
    /// Median latency.
    pub latency_p50: Option<f64>,
    /// 95th percentile latency.
    pub latency_p95: Option<f64>,
    /// The same per time bucket, oldest first.
    pub series: Vec<SeriesPoint>,
}

/// One bucket of a model's series.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SeriesPoint {
    /// Bucket start.
    pub ts: Timestamp,
    /// Predictions.
    pub count: u64,
    /// Errors among them.
    pub errors: u64,
    /// Median latency.
    pub latency_p50: Option<f64>,
    /// 95th percentile latency.
    pub latency_p95: Option<f64>,
}

/// What the summary answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct SummaryBody {
    /// One entry per model and version, busiest first.
    pub models: Vec<ModelSummary>,
    /// Window start.
    pub since: Timestamp,
    /// Window end.
    pub until: Timestamp,
    /// Bucket width in seconds.
    pub bucket_s: f64,
    /// Whether more than [`SUMMARY_CAP`] predictions fell in the window (the summary then
    /// covers the newest ones).
    pub truncated: bool,
    /// Records sent to `POST /api/v1/predictions` since this server started that were
    /// kept as logs for lack of a required key.
    pub malformed_since_start: u64,
    /// Server time spent.
    pub took_ms: u64,
}

#[derive(Default)]
struct Acc {
    count: u64,
    errors: u64,
    latencies: Vec<f64>,
    buckets: BTreeMap<usize, (u64, u64, Vec<f64>)>,
}

fn pct(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(shiplog_indexer::aggregate::percentile(values, p))
}

fn is_error(e: &Event) -> bool {
    e.status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("error"))
        || matches!(
            e.level,
            Some(shiplog_core::Level::Error | shiplog_core::Level::Fatal)
        )
}

/// `GET /api/v1/predictions/summary`: per model and version, rate, error ratio and latency
/// percentiles over the window, and the same per bucket. Aggregates only: no record leaves,
/// so `read` is enough.
pub async fn summary(
    State(state): State<AppState>,
    params: Result<QueryParams<SummaryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SummaryBody>, ApiError> {
    let started = Instant::now();
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let now = Timestamp::now();
    let since = time_param("since", Some(p.since.as_deref().unwrap_or("1h")), now)?
        .unwrap_or(now.offset(-3_600_000_000_000));
    let until = time_param("until", p.until.as_deref(), now)?.unwrap_or(now);
    if until <= since {
        return Err(ApiError::bad_request(
            "bad_time",
            "until must be after since",
        ));
    }
    let buckets = p.buckets.unwrap_or(30);
    if buckets == 0 || buckets > 500 {
        return Err(ApiError::bad_request(
            "bad_buckets",
            format!("buckets must be between 1 and 500, got {buckets}"),
        ));
    }
    let query = filter_query(&PredictionParams {
        model: p.model,
        ..PredictionParams::default()
    })?;
    let span = (until.as_nanos() - since.as_nanos()) as f64;
    let width = span / buckets as f64;
    let indexer = state.indexer.clone();
    let (mut accs, truncated) = crate::limits::run_blocking(&state, "summary", move || {
        let mut accs: BTreeMap<(String, String), Acc> = BTreeMap::new();
        let mut cursor = None;
        let mut seen = 0u64;
        loop {
            let res = indexer
                .search(&SearchRequest {
                    query: query.clone(),
                    since: Some(since),
                    until: Some(until),
                    limit: PAGE,
                    cursor: cursor.take(),
                })
                .map_err(ApiError::from)?;
            for e in &res.hits {
                let key = (
                    e.model.clone().unwrap_or_default(),
                    e.model_version.clone().unwrap_or_default(),
                );
                let acc = accs.entry(key).or_default();
                let err = u64::from(is_error(e));
                acc.count += 1;
                acc.errors += err;
                let b = (((e.ts.as_nanos() - since.as_nanos()) as f64 / width) as usize)
                    .min(buckets - 1);
                let bucket = acc.buckets.entry(b).or_default();
                bucket.0 += 1;
                bucket.1 += err;
                if let Some(ms) = e.latency_ms {
                    acc.latencies.push(ms);
                    bucket.2.push(ms);
                }
            }
            seen += res.hits.len() as u64;
            match res.next_cursor {
                Some(c) if seen < SUMMARY_CAP => cursor = Some(c),
                Some(_) => return Ok((accs, true)),
                None => return Ok((accs, false)),
            }
        }
    })
    .await?;
    let secs = span / 1e9;
    let mut models: Vec<ModelSummary> = std::mem::take(&mut accs)
        .into_iter()
        .map(|((model, model_version), mut acc)| {
            let series = (0..buckets)
                .map(|i| {
                    let (count, errors, mut lat) = acc.buckets.remove(&i).unwrap_or_default();
                    SeriesPoint {
                        ts: since.offset((width * i as f64) as i64),
                        count,
                        errors,
                        latency_p50: pct(&mut lat, 50.0),
                        latency_p95: pct(&mut lat, 95.0),
                    }
                })
                .collect();
            ModelSummary {
                model,
                model_version,
                count: acc.count,
                rate_per_s: acc.count as f64 / secs,
                error_ratio: acc.errors as f64 / acc.count.max(1) as f64,
                latency_p50: pct(&mut acc.latencies, 50.0),
                latency_p95: pct(&mut acc.latencies, 95.0),
                series,
            }
        })
        .collect();
    models.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.model.cmp(&b.model)));
    Ok(Json(SummaryBody {
        models,
        since,
        until,
        bucket_s: width / 1e9,
        truncated,
        malformed_since_start: state.predictions.counters().malformed,
        took_ms: started.elapsed().as_millis() as u64,
    }))
}

/// Parameters of `GET /api/v1/audit/access`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessParams {
    /// A query over the records (`fields.token:alice`, `fields.route:*predictions*`).
    #[serde(default)]
    pub q: String,
    /// Lower time bound.
    pub since: Option<String>,
    /// Upper time bound.
    pub until: Option<String>,
    /// Most records returned (default 100, at most 10,000).
    pub limit: Option<usize>,
}

/// What `GET /api/v1/audit/access` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessBody {
    /// Matching access records, newest first.
    pub hits: Vec<Event>,
    /// Matching records in all.
    pub total: u64,
}

/// `GET /api/v1/audit/access`: who ran which audit query or export, and what it returned.
pub async fn access(
    State(state): State<AppState>,
    params: Result<QueryParams<AccessParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AccessBody>, ApiError> {
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let query = shiplog_core::query::parse(&p.q).map_err(|e| ApiError::query(&e))?;
    let now = Timestamp::now();
    let since = time_param("since", p.since.as_deref(), now)?;
    let until = time_param("until", p.until.as_deref(), now)?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and 10000, got {limit}"),
        ));
    }
    let svc = state.predictions.clone();
    let (hits, total) = crate::limits::run_blocking(&state, "access", move || {
        svc.search_access(&query, since, until, limit)
            .map_err(|e| ApiError::internal(format!("cannot read the access record: {e}")))
    })
    .await?;
    Ok(Json(AccessBody { hits, total }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_split_into_records_or_name_the_bad_one() {
        let recs = records(b"[{\"a\":1},{\"b\":2}]", 10).unwrap();
        assert_eq!(recs.len(), 2);
        let recs = records(b"{\"a\":1}\n\n  {\"b\":2}\r\n", 10).unwrap();
        assert_eq!(recs.len(), 2);
        for (body, want) in [
            (&b"{\"a\":1}\n{oops\n"[..], "line 2 is not valid JSON"),
            (b"[1]", "record 1 is a number, not an object"),
            (b"{\"a\":1}\n\"x\"", "record 2 is a string, not an object"),
            (b"[{\"a\":1}", "the JSON array is not valid"),
        ] {
            let err = records(body, 10).unwrap_err();
            assert!(err.message.contains(want), "{}", err.message);
        }
        let err = records(b"{}\n{}\n{}", 2).unwrap_err();
        assert_eq!(err.code, "too_many_records");
        let err = records(b"[{},{},{}]", 2).unwrap_err();
        assert_eq!(err.code, "too_many_records");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            records(deep.as_bytes(), 10).is_err(),
            "deep nesting is refused"
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut out = Vec::new();
        csv_field(&mut out, "plain");
        out.push(b'|');
        csv_field(&mut out, "a,b \"c\"\nd");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain|\"a,b \"\"c\"\"\nd\""
        );
    }

    #[test]
    fn filters_become_one_query() {
        let q = filter_query(&PredictionParams {
            model: Some("churn".into()),
            request_id: Some("r-1".into()),
            min_latency_ms: Some(10.0),
            q: "input.customer_id:42".into(),
            ..PredictionParams::default()
        })
        .unwrap();
        let mut e = Event {
            kind: Kind::Prediction,
            model: Some("churn".into()),
            request_id: Some("r-1".into()),
            latency_ms: Some(12.0),
            input: Some(serde_json::json!({"customer_id": 42})),
            ..Event::default()
        };
        assert!(q.matches(&e));
        e.latency_ms = Some(9.0);
        assert!(!q.matches(&e));
        let bad = filter_query(&PredictionParams {
            q: "input.:1".into(),
            ..PredictionParams::default()
        })
        .unwrap_err();
        assert_eq!(bad.code, "bad_query");
        let bad = filter_query(&PredictionParams {
            max_latency_ms: Some(f64::NAN),
            ..PredictionParams::default()
        })
        .unwrap_err();
        assert_eq!(bad.code, "bad_latency");
    }
}
