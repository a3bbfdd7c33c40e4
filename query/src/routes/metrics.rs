//! `GET /api/v1/metrics?container=&service=&name=&since=&until=&step=`: container metric
//! series, averaged per time bucket (see `shiplog_indexer::metrics_store`).

use std::time::Instant;

use axum::Json;
use axum::extract::{Query as QueryParams, State};
use serde::{Deserialize, Serialize};
use shiplog_core::Timestamp;
use shiplog_indexer::metrics_store::{DEFAULT_MAX_SAMPLES, MetricsRequest, Series};

use super::search::time_param;
use crate::error::ApiError;
use crate::state::AppState;

/// Window read when `since` is not given, in nanoseconds (one hour).
const DEFAULT_WINDOW_NANOS: i64 = 3600 * 1_000_000_000;
/// Most points one series may have; a smaller `step` over a long window is refused.
pub const MAX_POINTS_PER_SERIES: i64 = 10_000;

/// Query-string parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsParams {
    /// Container name or full id.
    pub container: Option<String>,
    /// Service name.
    pub service: Option<String>,
    /// Metric name: `cpu_percent`, `mem_bytes`, `mem_limit_bytes`, `net_rx_bytes`,
    /// `net_tx_bytes`, `blk_read_bytes`, `blk_write_bytes`, `pids`.
    pub name: Option<String>,
    /// Start of the window: `15m`, `now-1h` or RFC 3339 (default: an hour ago).
    pub since: Option<String>,
    /// End of the window, same forms (default: now).
    pub until: Option<String>,
    /// Bucket width: `10s`, `1m` (default: whole seconds giving at most 300 points).
    pub step: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct MetricsBody {
    /// One series per container and metric.
    pub series: Vec<Series>,
    /// Bucket width used, in milliseconds.
    pub step_ms: i64,
    /// Samples read.
    pub samples: usize,
    /// Whether the sample cap was reached: only the newest part of the window was read.
    pub truncated: bool,
    /// Server time spent, in milliseconds.
    pub took_ms: u64,
}

/// Reads metric series.
pub async fn metrics(
    State(state): State<AppState>,
    params: Result<QueryParams<MetricsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MetricsBody>, ApiError> {
    let started = Instant::now();
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let now = Timestamp::now();
    let until = time_param("until", p.until.as_deref(), now)?.unwrap_or(now);
    let since = time_param("since", p.since.as_deref(), now)?
        .unwrap_or_else(|| until.offset(-DEFAULT_WINDOW_NANOS));
    if since >= until {
        return Err(ApiError::bad_request(
            "bad_time",
            format!(
                "since ({}) must be before until ({})",
                since.to_rfc3339(),
                until.to_rfc3339()
            ),
        ));
    }
    let step_nanos = p
        .step
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            shiplog_core::timestamp::parse_duration_nanos(s)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_step",
                        format!("step '{s}' is not a positive duration: use 10s, 1m or 1h"),
                    )
                })
        })
        .transpose()?;
    let req = MetricsRequest {
        container: p.container,
        service: p.service,
        name: p.name,
        since,
        until,
        step_nanos,
        max_samples: DEFAULT_MAX_SAMPLES,
    };
    let points = (until.as_nanos() - since.as_nanos()) / req.step() + 1;
    if points > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_request(
            "bad_step",
            format!(
                "step gives {points} points per series, more than {MAX_POINTS_PER_SERIES}: use a larger step or a shorter window"
            ),
        ));
    }
    let indexer = state.indexer.clone();
    let res = tokio::task::spawn_blocking(move || indexer.metric_series(&req))
        .await
        .map_err(|e| ApiError::internal(format!("metrics task failed: {e}")))??;
    Ok(Json(MetricsBody {
        series: res.series,
        step_ms: res.step_ms,
        samples: res.samples,
        truncated: res.truncated,
        took_ms: started.elapsed().as_millis() as u64,
    }))
}
