//! `GET /metrics`: Prometheus text exposition (format 0.0.4) of the node's counters.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `shiplog_http_requests_total{route,method,status}` | counter | answered requests |
//! | `shiplog_http_request_duration_seconds{route}` | histogram | time to answer |
//! | `shiplog_http_requests_in_flight` | gauge | requests holding a slot now |
//! | `shiplog_ingest_events_total` | counter | events stored |
//! | `shiplog_ingest_bytes_total` | counter | bytes of event JSON taken in |
//! | `shiplog_ingest_duplicates_total` | counter | events dropped as duplicates |
//! | `shiplog_index_commits_total` | counter | index commits |
//! | `shiplog_wal_bytes` | gauge | bytes in write-ahead log segments |
//! | `shiplog_index_bytes{day}` | gauge | bytes on disk per day index |
//! | `shiplog_tail_subscribers` | gauge | open live tails |

use std::fmt::Write;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::limits::Guards;
use crate::state::AppState;
use crate::telemetry::{Telemetry, escape, family};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every metric.
pub async fn metrics(
    State(state): State<AppState>,
    Extension(telemetry): Extension<Arc<Telemetry>>,
    Extension(guards): Extension<Arc<Guards>>,
) -> Result<impl IntoResponse, ApiError> {
    let indexer = state.indexer.clone();
    // Day sizes walk directories: off the async runtime.
    let days = tokio::task::spawn_blocking(move || indexer.day_sizes())
        .await
        .map_err(|e| ApiError::internal(format!("metrics task failed: {e}")))?;
    let stats = state.indexer.stats();
    let mut out = String::with_capacity(4096);
    telemetry.render(&mut out);
    let mut one = |name: &str, kind: &str, help: &str, value: u64| {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    };
    one(
        "shiplog_http_requests_in_flight",
        "gauge",
        "Requests being served now (tail streams and monitoring not counted).",
        guards.requests_in_flight() as u64,
    );
    one(
        "shiplog_ingest_events_total",
        "counter",
        "Events stored since start.",
        stats.events,
    );
    one(
        "shiplog_ingest_bytes_total",
        "counter",
        "Bytes of event JSON taken in since start.",
        stats.bytes_in,
    );
    one(
        "shiplog_ingest_duplicates_total",
        "counter",
        "Events dropped as duplicates since start.",
        stats.duplicates,
    );
    one(
        "shiplog_index_commits_total",
        "counter",
        "Index commits since start.",
        stats.commits,
    );
    one(
        "shiplog_wal_bytes",
        "gauge",
        "Bytes in write-ahead log segment files.",
        stats.wal_bytes,
    );
    one(
        "shiplog_tail_subscribers",
        "gauge",
        "Live tail streams open.",
        guards.tail_subscribers() as u64,
    );
    family(
        &mut out,
        "shiplog_index_bytes",
        "gauge",
        "Bytes on disk of each day index.",
    );
    for (day, bytes) in days {
        let _ = writeln!(
            out,
            "shiplog_index_bytes{{day=\"{}\"}} {bytes}",
            escape(&day)
        );
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out))
}
