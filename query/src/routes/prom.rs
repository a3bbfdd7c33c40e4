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
//! | `shiplog_predictions_received_total` | counter | prediction records received by the API (direct and OTLP), resent duplicates included |
//! | `shiplog_predictions_malformed_total` | counter | records kept as logs for lack of a required key |
//! | `shiplog_predictions_redacted_total` | counter | records a redaction rule changed |
//! | `shiplog_alerts_events_total` | counter | events counted into alert windows |
//! | `shiplog_alerts_events_dropped_total` | counter | events left out because the alert queue was full (windows are then rebuilt from the index) |
//! | `shiplog_alerts_rebuilds_total` | counter | alert windows rebuilt from the index |
//! | `shiplog_alerts_groups_refused_total` | counter | events of groups past a rule's `max_groups` |
//! | `shiplog_alerts_notifications_total` | counter | notifications delivered |
//! | `shiplog_alerts_notification_failures_total` | counter | failed delivery attempts |

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
        "shiplog_queries_running",
        "gauge",
        "Searches and aggregations whose work is running now (past their timeout too, until their next cancellation check).",
        state.query_slots().running() as u64,
    );
    one(
        "shiplog_queries_waiting",
        "gauge",
        "Searches and aggregations waiting for a query slot.",
        state.query_slots().waiting() as u64,
    );
    one(
        "shiplog_search_response_bytes",
        "gauge",
        "Bytes held by search answers being sent now (bounded by [api] max_response_memory).",
        state.query_slots().response_bytes() as u64,
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
    let p = state.predictions.counters();
    one(
        "shiplog_predictions_received_total",
        "counter",
        "Prediction records received by POST /api/v1/predictions and OTLP since start (resent duplicates included).",
        p.accepted,
    );
    one(
        "shiplog_predictions_malformed_total",
        "counter",
        "Prediction records kept as logs for lack of a required key since start.",
        p.malformed,
    );
    one(
        "shiplog_predictions_redacted_total",
        "counter",
        "Prediction records a redaction rule changed since start.",
        p.redacted,
    );
    if let Some(alerts) = &state.alerts {
        use std::sync::atomic::Ordering::Relaxed;
        let st = alerts.stats();
        let (delivered, failures) = alerts.deliveries();
        for (name, help, value) in [
            (
                "shiplog_alerts_events_total",
                "Events counted into alert windows.",
                st.events.load(Relaxed),
            ),
            (
                "shiplog_alerts_events_dropped_total",
                "Events left out of alert windows because the engine queue was full.",
                st.dropped.load(Relaxed),
            ),
            (
                "shiplog_alerts_rebuilds_total",
                "Alert windows rebuilt from the index.",
                st.rebuilds.load(Relaxed),
            ),
            (
                "shiplog_alerts_groups_refused_total",
                "Events of groups past a rule's max_groups.",
                alerts.refused_groups(),
            ),
            (
                "shiplog_alerts_notifications_total",
                "Alert notifications delivered.",
                delivered,
            ),
            (
                "shiplog_alerts_notification_failures_total",
                "Failed alert delivery attempts.",
                failures,
            ),
        ] {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
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
    if let Some(extra) = &state.extra_metrics {
        out.push_str(&extra());
    }
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], out))
}
