//! `GET /api/v1/search`, and `POST /api/v1/search` with the same parameters as a JSON
//! body, for queries longer than a URI may be (the HTTP layer refuses URIs over 64 KiB).

use std::time::Instant;

use axum::extract::{Query as QueryParams, State};
use serde::{Deserialize, Serialize};
use shiplog_core::{Event, Timestamp};
use shiplog_indexer::SearchRequest;

use crate::error::ApiError;
use crate::state::AppState;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;

/// Query-string parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Query text; blank is every kind but metric samples
    /// ([`shiplog_core::query::default_query`]), `*` is everything.
    #[serde(default)]
    pub q: String,
    /// Lower time bound: `15m`, `now-1h` or RFC 3339.
    pub since: Option<String>,
    /// Upper time bound, same forms.
    pub until: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Comma-separated keys to return for each hit (`ts,service,message`); all when unset.
    pub fields: Option<String>,
}

/// The answer: the contract in DESIGN.md.
#[derive(Debug, Serialize, Deserialize)]
pub struct SearchBody {
    /// Hits, newest first (events, or the requested keys of each).
    pub hits: Vec<serde_json::Value>,
    /// Matches in the window.
    pub total: u64,
    /// Whether `total` is exact.
    pub total_exact: bool,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
    /// Whether the page stopped short of `limit` because its events reached `[api]
    /// max_response` bytes; `next_cursor` continues from there.
    #[serde(default)]
    pub truncated: bool,
    /// Server time spent, in milliseconds.
    pub took_ms: u64,
}

/// The `limit` parameter, defaulted and checked against the configured maximum.
pub fn page_limit(limit: Option<usize>, state: &AppState) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let max = state.limits.max_search_limit;
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and {max}, got {limit}"),
        ));
    }
    Ok(limit)
}

/// Reads a time bound parameter, naming it in the error.
pub fn time_param(
    name: &str,
    value: Option<&str>,
    now: Timestamp,
) -> Result<Option<Timestamp>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            Timestamp::parse_bound(v, now).map_err(|e| {
                ApiError::bad_request(
                    "bad_time",
                    format!("{name}: {e}; use 15m, now-1h or an RFC 3339 time"),
                )
            })
        })
        .transpose()
}

/// Keys of an event that `fields=` may name.
const EVENT_KEYS: &[&str] = &[
    "id",
    "ts",
    "received",
    "seq",
    "kind",
    "node",
    "container_id",
    "container_name",
    "image",
    "service",
    "stream",
    "level",
    "message",
    "fields",
    "flags",
    "state",
    "ports",
    "tags",
    "labels",
    "exit_code",
    "name",
    "value",
    "unit",
    "model",
    "model_version",
    "request_id",
    "latency_ms",
    "input",
    "output",
    "status",
];

/// The keys `fields=` asks for, checked before any search runs; `None` means all.
fn wanted_keys(fields: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(list) = fields.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let wanted: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    for k in &wanted {
        let top = k.split('.').next().unwrap_or(k);
        if !EVENT_KEYS.contains(&top) || (top != "fields" && k.contains('.')) {
            return Err(ApiError::bad_request(
                "bad_fields",
                format!(
                    "unknown key '{k}' in fields=: use {} or fields.<key>",
                    EVENT_KEYS.join(", ")
                ),
            ));
        }
    }
    Ok(Some(wanted))
}

/// Keeps only the requested keys of each hit (`fields.x` keeps one key of `fields`).
fn project(hits: Vec<Event>, wanted: Option<&[String]>) -> Vec<serde_json::Value> {
    let to_value = |e: Event| serde_json::to_value(e).unwrap_or(serde_json::Value::Null);
    let Some(wanted) = wanted else {
        return hits.into_iter().map(to_value).collect();
    };
    hits.into_iter()
        .map(|e| {
            let full = to_value(e);
            let mut out = serde_json::Map::new();
            for k in wanted {
                match k.strip_prefix("fields.") {
                    Some(sub) => {
                        if let Some(v) = full["fields"].get(sub) {
                            let entry =
                                out.entry("fields").or_insert_with(|| serde_json::json!({}));
                            entry[sub] = v.clone();
                        }
                    }
                    None => {
                        if let Some(v) = full.get(k.as_str()) {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            serde_json::Value::Object(out)
        })
        .collect()
}

/// Runs a search given in the query string.
pub async fn search(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    params: Result<QueryParams<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    run(state, caller, p).await
}

/// Runs a search given as a JSON body (`{"q", "since", "until", "limit", "cursor",
/// "fields"}`), for queries too long for a URI.
pub async fn search_post(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    body: axum::body::Body,
) -> Result<axum::response::Response, ApiError> {
    let bytes = crate::routes::ingest::read_body(&state, body).await?;
    let p: SearchParams = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "bad_body",
            format!(
                "the body must be a JSON object with q, since, until, limit, cursor, fields: {e}"
            ),
        )
    })?;
    run(state, caller, p).await
}

async fn run(
    state: AppState,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    p: SearchParams,
) -> Result<axum::response::Response, ApiError> {
    let started = Instant::now();
    let wanted = wanted_keys(p.fields.as_deref())?;
    let query = shiplog_core::query::parse_or_default(&p.q).map_err(|e| ApiError::query(&e))?;
    let query = crate::auth::caller(caller).scope(query);
    let now = Timestamp::now();
    let since = time_param("since", p.since.as_deref(), now)?;
    let until = time_param("until", p.until.as_deref(), now)?;
    let limit = page_limit(p.limit, &state)?;
    let req = SearchRequest {
        query,
        since,
        until,
        limit,
        cursor: p.cursor,
    };
    let indexer = state.indexer.clone();
    let max_bytes = state.limits.max_response_bytes;
    // The page is read, shaped and serialized under the query slot, so the memory of
    // answers being built is bounded by the running queries times `max_response`.
    let body = crate::limits::run_blocking(&state, "search", move || {
        let res = indexer
            .search_capped(&req, max_bytes)
            .map_err(ApiError::from)?;
        let hits = project(res.hits, wanted.as_deref());
        serde_json::to_vec(&SearchBody {
            hits,
            total: res.total,
            total_exact: res.total_exact,
            next_cursor: res.next_cursor,
            truncated: res.truncated,
            took_ms: started.elapsed().as_millis() as u64,
        })
        .map_err(|e| ApiError::internal(format!("search answer not serializable: {e}")))
    })
    .await?;
    let share = state.query_slots().reserve_response(body.len())?;
    Ok(share.send(body))
}
