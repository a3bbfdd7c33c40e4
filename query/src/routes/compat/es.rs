//! An Elasticsearch 8 REST subset, enough for the official clients, Beats-style shippers
//! and `curl` habits: cluster info, `_bulk` ingest, `_search`, `_refresh` and a minimal
//! cluster health.
//!
//! - `GET|HEAD /`: cluster info (`version.number` 8.11.0). Every answer carries
//!   `X-Elastic-Product: Elasticsearch`, which the official clients check.
//! - `POST|PUT /_bulk`, `/{index}/_bulk`: NDJSON action/source pairs. `index` and `create`
//!   store the source as one log event (mapping in [`super::es_doc`]); `delete` and `update`
//!   are answered per item with 400 (shiplog is append-only). A malformed source fails its
//!   own item only; every valid item of the request is stored as one batch, durable before
//!   the answer. A malformed action line refuses the whole request (the pairs cannot be
//!   matched up after it). A resent document with the same `_id` is answered `created`
//!   again but stored once.
//! - `GET|POST /_search`, `/{index}/_search`: the query DSL of [`super::es_query`], `size`
//!   (default 10) and `from` with `from + size` ≤ 10,000, sort by `@timestamp` (newest first
//!   by default; oldest first is exact as long as `total - from` ≤ 10,000), and
//!   `date_histogram` and `terms` aggregations with one level of sub-aggregations
//!   ([`super::es_aggs`], run by [`super::es_aggs_run`] on the native engine); `size: 0`
//!   answers the aggregations and the total only. `hits.total` is always exact (`"relation":
//!   "eq"`). Indexes are `fields._index` values; `_all` and `*` search every event.
//! - `POST /_refresh`, `/{index}/_refresh`: commits, so what was acknowledged is searchable.
//!
//! Errors use Elasticsearch's shape (`error.type`, `error.reason`, `status`) together with
//! shiplog's (`error.code`, `error.message`).

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Map, Value, json};
use shiplog_core::Timestamp;
use shiplog_core::query::Query;
use shiplog_indexer::SearchRequest;
use shiplog_indexer::search::MAX_LIMIT;

use super::es_aggs::{self, EsAgg};
use super::{body, es_aggs_run, es_bulk, es_doc, es_query, refresh as commit};
use crate::error::ApiError;
use crate::state::AppState;

/// The Elasticsearch version the surface announces.
pub const VERSION: &str = "8.11.0";

/// Largest `from + size` of a search, as Elasticsearch's `index.max_result_window`.
pub const MAX_RESULT_WINDOW: usize = 10_000;

/// Search parameters accepted in the URL and ignored (they change nothing here).
const IGNORED_SEARCH_PARAMS: &[&str] = &[
    "track_total_hits",
    "ignore_unavailable",
    "allow_no_indices",
    "expand_wildcards",
    "timeout",
    "_source",
    "search_type",
    "pretty",
    "error_trace",
    "human",
    "request_cache",
    "preference",
    "routing",
    "ccs_minimize_roundtrips",
    "batched_reduce_size",
    "max_concurrent_shard_requests",
    "filter_path",
];

/// Search body keys accepted and ignored.
const IGNORED_SEARCH_KEYS: &[&str] = &[
    "_source",
    "track_total_hits",
    "timeout",
    "version",
    "seq_no_primary_term",
    "explain",
    "track_scores",
    "stored_fields",
];

fn product(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    resp
}

fn ok(value: Value) -> Response {
    product((StatusCode::OK, axum::Json(value)).into_response())
}

/// An error in Elasticsearch's shape, with shiplog's code and message alongside.
pub fn error(e: ApiError) -> Response {
    let es_type = match e.code {
        "bad_query" => "parsing_exception",
        "busy" => "es_rejected_execution_exception",
        "body_too_large" | "too_many_records" => "content_too_long_exception",
        "unknown_aggregation" => "parsing_exception",
        "too_many_buckets" => "too_many_buckets_exception",
        "unsupported_media_type" | "unsupported_encoding" => "media_type_header_exception",
        "internal" | "unavailable" | "disk_full" => "exception",
        _ => "illegal_argument_exception",
    };
    let mut inner = json!({
        "code": e.code,
        "message": e.message,
        "type": es_type,
        "reason": e.message,
        "root_cause": [{"type": es_type, "reason": e.message}],
    });
    if let Some(p) = e.position {
        inner["position"] = json!(p);
    }
    let mut resp = (
        e.status,
        axum::Json(json!({"error": inner, "status": e.status.as_u16()})),
    )
        .into_response();
    if let Some(secs) = e.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    product(resp)
}

/// Renders a result: the value with the product header, or [`error`].
pub(super) fn respond(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => ok(v),
        Err(e) => error(e),
    }
}

/// `POST|PUT /_bulk`.
pub fn bulk_route() -> MethodRouter<AppState> {
    post(es_bulk::bulk).put(es_bulk::bulk)
}

/// `POST|PUT /{index}/_bulk`.
pub fn bulk_index_route() -> MethodRouter<AppState> {
    post(es_bulk::bulk_index).put(es_bulk::bulk_index)
}

/// `GET|POST /_search`.
pub fn search_route() -> MethodRouter<AppState> {
    get(search).post(search)
}

/// `GET|POST /{index}/_search`.
pub fn search_index_route() -> MethodRouter<AppState> {
    get(search_index).post(search_index)
}

/// `POST|GET /_refresh` and `/{index}/_refresh` (one store holds every index).
pub fn refresh_route() -> MethodRouter<AppState> {
    post(refresh).get(refresh)
}

/// `GET /`: who we are, in Elasticsearch's words.
pub async fn info() -> Response {
    ok(json!({
        "name": "shiplog",
        "cluster_name": "shiplog",
        "cluster_uuid": "c1a2b3c4d5e6f7a8b9c0d1",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "shiplog",
            "build_hash": env!("CARGO_PKG_VERSION"),
            "build_date": "2023-11-04T10:04:57.184859352Z",
            "build_snapshot": false,
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    }))
}

/// `GET /_cluster/health`: always green once the API answers.
pub async fn cluster_health() -> Response {
    ok(json!({
        "cluster_name": "shiplog",
        "status": "green",
        "timed_out": false,
        "number_of_nodes": 1,
        "number_of_data_nodes": 1,
        "active_primary_shards": 1,
        "active_shards": 1,
        "relocating_shards": 0,
        "initializing_shards": 0,
        "unassigned_shards": 0,
        "delayed_unassigned_shards": 0,
        "number_of_pending_tasks": 0,
        "number_of_in_flight_fetch": 0,
        "task_max_waiting_in_queue_millis": 0,
        "active_shards_percent_as_number": 100.0
    }))
}

/// `POST /_refresh`: makes everything acknowledged searchable.
pub async fn refresh(State(state): State<AppState>) -> Response {
    respond(
        commit(&state)
            .await
            .map(|()| json!({"_shards": {"total": 1, "successful": 1, "failed": 0}})),
    )
}

/// Checks an index name: 1 to 255 bytes, no wildcard, comma, quote, space or slash.
pub(super) fn check_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err(format!("index name '{name}' must be 1 to 255 bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '*' | ',' | '"' | ' ' | '/' | '\\'))
    {
        return Err(format!("index name '{name}' must not contain '{c}'"));
    }
    Ok(())
}

/// `GET|POST /_search`: every index.
pub async fn search(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = crate::auth::caller(caller);
    respond(run_search(&state, &caller, "_all", &params, &headers, body).await)
}

/// `GET|POST /{index}/_search`: the named indexes (comma-separated), `_all` or `*`.
pub async fn search_index(
    State(state): State<AppState>,
    Path(index): Path<String>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = crate::auth::caller(caller);
    respond(run_search(&state, &caller, &index, &params, &headers, body).await)
}

/// What a `_search` asks for, once read from the URL and the body.
#[derive(Debug)]
pub struct EsSearch {
    /// The filter, index scope included.
    pub query: Query,
    /// Hits to skip.
    pub from: usize,
    /// Hits to return.
    pub size: usize,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    /// Whether a sort was asked for (hits then carry `sort` values).
    pub sorted: bool,
    /// `hits.total` as a plain number (`rest_total_hits_as_int`).
    pub total_as_int: bool,
    /// The aggregations of the request (`aggs` or `aggregations`), empty when none.
    pub aggs: Vec<EsAgg>,
    /// Aggregation names prefixed with their type (`sterms#by_service`), `typed_keys`.
    pub typed_keys: bool,
}

fn index_scope(index: &str) -> Result<Option<Query>, ApiError> {
    let names: Vec<&str> = index.split(',').map(str::trim).collect();
    if names.iter().any(|n| matches!(*n, "_all" | "*")) {
        return Ok(None);
    }
    let mut alternatives = Vec::new();
    for name in names {
        if name.contains('*') {
            return Err(ApiError::bad_request(
                "bad_index",
                format!(
                    "index pattern '{name}' is not supported: name the indexes, or search _all \
                     and filter with fields._index"
                ),
            ));
        }
        check_index_name(name).map_err(|e| ApiError::bad_request("bad_index", e))?;
        alternatives.push(Query::Json {
            root: shiplog_core::query::JsonRoot::Fields,
            path: "_index".into(),
            value: name.to_string(),
        });
    }
    Ok(Some(if alternatives.len() == 1 {
        alternatives.pop().expect("one name")
    } else {
        Query::Or(alternatives)
    }))
}

fn usize_param(name: &str, v: &Value) -> Result<usize, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
        ApiError::bad_request(
            "bad_parameters",
            format!("{name} must be a whole number ≥ 0, got {v}"),
        )
    })
}

/// Reads a sort specification; `Some(true)` for oldest first, `None` when it does not sort.
fn sort_order(spec: &Value) -> Result<Option<bool>, ApiError> {
    let entries: Vec<Value> = match spec {
        Value::Array(a) => a.clone(),
        Value::String(s) => s.split(',').map(|p| json!(p.trim())).collect(),
        other => vec![other.clone()],
    };
    let mut order = None;
    for entry in entries {
        let (field, dir) = match &entry {
            Value::String(s) => match s.split_once(':') {
                Some((f, d)) => (f.to_string(), Some(d.to_string())),
                None => (s.clone(), None),
            },
            Value::Object(o) if o.len() == 1 => {
                let (f, v) = o.iter().next().expect("len 1");
                let d = match v {
                    Value::String(d) => Some(d.clone()),
                    Value::Object(opts) => opts
                        .get("order")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    _ => None,
                };
                (f.clone(), d)
            }
            other => {
                return Err(ApiError::bad_request(
                    "bad_sort",
                    format!("sort entry {other} is not a field name or {{\"field\": \"order\"}}"),
                ));
            }
        };
        match field.as_str() {
            "@timestamp" | "timestamp" | "ts" => {
                let asc = match dir.as_deref().map(str::to_ascii_lowercase).as_deref() {
                    None | Some("desc") => false,
                    Some("asc") => true,
                    Some(other) => {
                        return Err(ApiError::bad_request(
                            "bad_sort",
                            format!("sort order '{other}' is not asc or desc"),
                        ));
                    }
                };
                order.get_or_insert(asc);
            }
            "_score" | "_doc" => {}
            other => {
                return Err(ApiError::bad_request(
                    "bad_sort",
                    format!("sorting by [{other}] is not supported: sort by @timestamp"),
                ));
            }
        }
    }
    Ok(order)
}

/// Reads a `_search` request from its URL parameters and body.
pub fn parse_search(
    index: &str,
    params: &HashMap<String, String>,
    body: &[u8],
    now: Timestamp,
) -> Result<EsSearch, ApiError> {
    let mut req = EsSearch {
        query: Query::All,
        from: 0,
        size: 10,
        ascending: false,
        sorted: false,
        total_as_int: false,
        aggs: Vec::new(),
        typed_keys: false,
    };
    let mut clauses: Vec<Query> = Vec::new();
    clauses.extend(index_scope(index)?);
    for (k, v) in params {
        match k.as_str() {
            "q" => clauses.push(super::es_query::lucene_text(v)?),
            "size" => req.size = usize_param("size", &json!(v))?,
            "from" => req.from = usize_param("from", &json!(v))?,
            "sort" => {
                if let Some(asc) = sort_order(&json!(v))? {
                    req.ascending = asc;
                    req.sorted = true;
                }
            }
            "rest_total_hits_as_int" => req.total_as_int = v.is_empty() || v == "true",
            "typed_keys" => req.typed_keys = v.is_empty() || v == "true",
            other if IGNORED_SEARCH_PARAMS.contains(&other) => {}
            other => {
                return Err(ApiError::bad_request(
                    "bad_parameters",
                    format!("_search does not recognise the parameter [{other}]"),
                ));
            }
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("bad_body", format!("search body is not valid JSON: {e}"))
        })?;
        let obj = match v {
            Value::Object(obj) => obj,
            Value::Null => Map::new(),
            _ => {
                return Err(ApiError::bad_request(
                    "bad_body",
                    "search body must be a JSON object",
                ));
            }
        };
        for (k, v) in &obj {
            match k.as_str() {
                "query" => clauses.push(es_query::translate(v, now)?),
                "size" => req.size = usize_param("size", v)?,
                "from" => req.from = usize_param("from", v)?,
                "sort" => {
                    if let Some(asc) = sort_order(v)? {
                        req.ascending = asc;
                        req.sorted = true;
                    }
                }
                "aggs" | "aggregations" => {
                    if obj.contains_key("aggs") && obj.contains_key("aggregations") {
                        return Err(ApiError::bad_request(
                            "bad_aggregation",
                            "search body has both aggs and aggregations: use one",
                        ));
                    }
                    req.aggs = es_aggs::parse(v, now)?;
                }
                other if IGNORED_SEARCH_KEYS.contains(&other) => {}
                other => {
                    return Err(ApiError::bad_request(
                        "bad_body",
                        format!("search option [{other}] is not supported"),
                    ));
                }
            }
        }
    }
    let window = req.from.saturating_add(req.size);
    if window > MAX_RESULT_WINDOW {
        return Err(ApiError::bad_request(
            "result_window_too_large",
            format!(
                "result window is too large: from + size must be at most {MAX_RESULT_WINDOW}, \
                 got {window}; narrow the query with a range on @timestamp instead"
            ),
        ));
    }
    req.query = match clauses.len() {
        0 => Query::All,
        1 => clauses.pop().expect("one clause"),
        _ => Query::And(clauses),
    };
    Ok(req)
}

async fn run_search(
    state: &AppState,
    caller: &crate::auth::Caller,
    index: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    raw: Body,
) -> Result<Value, ApiError> {
    let started = Instant::now();
    let bytes = body::read(state, headers, raw).await?;
    let mut req = parse_search(index, params, &bytes, Timestamp::now())?;
    req.query = caller.scope(std::mem::replace(&mut req.query, Query::All));
    let aggs = if req.aggs.is_empty() {
        None
    } else {
        let indexer = state.indexer.clone();
        let (query, aggs, typed) = (
            req.query.clone(),
            std::mem::take(&mut req.aggs),
            req.typed_keys,
        );
        Some(
            crate::limits::run_blocking(state, "aggregation", move || {
                es_aggs_run::run(&indexer, &query, &aggs, typed)
            })
            .await?,
        )
    };
    let want = req.from + req.size;
    // The aggregations counted the matches already: a `size: 0` search needs no other pass.
    let mut res = match &aggs {
        Some(a) if want == 0 => shiplog_indexer::SearchResponse {
            hits: Vec::new(),
            total: a.matched,
            total_exact: true,
            next_cursor: None,
            truncated: false,
        },
        _ => search_page(state, &req.query, want.max(1)).await?,
    };
    let total = res.total;
    let hits = if !req.ascending || total <= want as u64 {
        if req.ascending {
            res.hits.reverse();
        }
        res.hits.into_iter().skip(req.from).take(req.size).collect()
    } else {
        let need = usize::try_from(total).unwrap_or(usize::MAX) - req.from;
        if need > MAX_LIMIT {
            return Err(ApiError::bad_request(
                "bad_sort",
                format!(
                    "sorting {total} matches oldest first needs them all in one page: narrow the \
                     query to at most {MAX_LIMIT} matches with a range on @timestamp, or sort desc"
                ),
            ));
        }
        let res = search_page(state, &req.query, need).await?;
        let start = res.hits.len().saturating_sub(req.size);
        let mut page: Vec<_> = res.hits.into_iter().skip(start).collect();
        page.reverse();
        page
    };
    let hits: Vec<Value> = hits
        .iter()
        .map(|e| {
            let mut hit = json!({
                "_index": es_doc::index_of(e),
                "_id": es_doc::id_of(e),
                "_score": null,
                "_source": es_doc::to_source(e),
            });
            if req.sorted {
                hit["sort"] = json!([e.ts.as_nanos().div_euclid(1_000_000)]);
            }
            hit
        })
        .collect();
    let total_value = if req.total_as_int {
        json!(total)
    } else {
        json!({"value": total, "relation": if res.total_exact { "eq" } else { "gte" }})
    };
    let mut answer = json!({
        "took": started.elapsed().as_millis() as u64,
        "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": total_value, "max_score": null, "hits": hits},
    });
    if let Some(a) = aggs {
        answer["aggregations"] = Value::Object(a.aggregations);
    }
    Ok(answer)
}

async fn search_page(
    state: &AppState,
    query: &Query,
    limit: usize,
) -> Result<shiplog_indexer::SearchResponse, ApiError> {
    let req = SearchRequest {
        query: query.clone(),
        since: None,
        until: None,
        limit,
        cursor: None,
    };
    let indexer = state.indexer.clone();
    let max_bytes = state.limits.max_response_bytes;
    let res = crate::limits::run_blocking(state, "search", move || {
        indexer
            .search_capped(&req, max_bytes)
            .map_err(ApiError::from)
    })
    .await?;
    // from/size paging has no cursor to continue a short page with: refuse instead of
    // answering fewer hits than asked as if they were all.
    if res.truncated {
        return Err(ApiError::bad_request(
            "response_too_large",
            format!(
                "the {limit} hits asked for hold more than {} MiB of events ([api] max_response): ask for fewer (size) or narrow the query",
                max_bytes / (1024 * 1024)
            ),
        ));
    }
    Ok(res)
}
