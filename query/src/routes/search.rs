//! `GET /api/v1/search`.

use std::time::Instant;

use axum::Json;
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
    /// Query text; empty matches everything.
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
}

/// The answer: the contract in DESIGN.md.
#[derive(Debug, Serialize, Deserialize)]
pub struct SearchBody {
    /// Hits, newest first.
    pub hits: Vec<Event>,
    /// Matches in the window.
    pub total: u64,
    /// Whether `total` is exact.
    pub total_exact: bool,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
    /// Server time spent, in milliseconds.
    pub took_ms: u64,
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

/// Runs a search.
pub async fn search(
    State(state): State<AppState>,
    params: Result<QueryParams<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchBody>, ApiError> {
    let started = Instant::now();
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let query = shiplog_core::query::parse(&p.q).map_err(|e| ApiError::query(&e))?;
    let now = Timestamp::now();
    let since = time_param("since", p.since.as_deref(), now)?;
    let until = time_param("until", p.until.as_deref(), now)?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    let max = state.limits.max_search_limit;
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and {max}, got {limit}"),
        ));
    }
    let req = SearchRequest {
        query,
        since,
        until,
        limit,
        cursor: p.cursor,
    };
    let indexer = state.indexer.clone();
    let res = crate::limits::run_blocking(state.limits.query_timeout, "search", move || {
        indexer.search(&req).map_err(ApiError::from)
    })
    .await?;
    Ok(Json(SearchBody {
        hits: res.hits,
        total: res.total,
        total_exact: res.total_exact,
        next_cursor: res.next_cursor,
        took_ms: started.elapsed().as_millis() as u64,
    }))
}
