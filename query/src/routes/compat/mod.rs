//! Compatibility surfaces: endpoints that speak other tools' protocols so existing shippers
//! and clients can send logs to shiplog and read them back.
//!
//! | module | protocol | endpoints |
//! |---|---|---|
//! | [`es`], [`es_bulk`], [`es_query`], [`es_aggs`] | Elasticsearch 8 REST subset | `GET /`, `_bulk`, `_search` (with aggregations), `_refresh`, `_cluster/health` |
//! | [`otlp`] | OTLP/HTTP logs, protobuf or JSON | `POST /v1/logs` |
//! | [`loki`] | Loki push API, JSON | `POST /loki/api/v1/push` |
//!
//! Every protocol maps its records to one [`Event`] of kind `log` each: the message, the
//! source time, the level, the service, the node (host) and the container when the record
//! names them, and everything else under `fields`. Dotted keys (`k8s.pod.name`) are
//! expanded into nested objects so the query language reaches them as
//! `fields.k8s.pod.name` ([`fields::insert_path`]). Bodies go through the same caps as
//! `/api/v1/ingest` ([`body`]), and every batch enters the store through [`store`], the one
//! place that calls [`Indexer::ingest`](shiplog_indexer::Indexer::ingest).

pub mod body;
pub mod es;
pub mod es_aggs;
pub mod es_aggs_histogram;
pub mod es_aggs_run;
pub mod es_bulk;
pub mod es_doc;
pub mod es_query;
pub mod fields;
pub mod loki;
pub mod otlp;

use axum::http::StatusCode;
use shiplog_core::Event;
use shiplog_indexer::IngestAck;

use crate::error::ApiError;
use crate::state::AppState;

/// Stores a batch of mapped events; resolves once it is durable (WAL fsynced). The batch is
/// one WAL record, so it is stored whole or not at all; one whose times fall outside
/// `[api]`'s window is refused whole (400 `out_of_window`).
pub async fn store(state: &AppState, events: Vec<Event>) -> Result<IngestAck, ApiError> {
    crate::routes::ingest::check_times(state, &events)?;
    Ok(state.indexer.ingest(events).await?)
}

/// Commits what was acknowledged so far so it is searchable now (Elasticsearch's refresh).
pub async fn refresh(state: &AppState) -> Result<(), ApiError> {
    let indexer = state.indexer.clone();
    tokio::task::spawn_blocking(move || indexer.flush())
        .await
        .map_err(|e| ApiError::internal(format!("refresh task failed: {e}")))??;
    Ok(())
}

/// Refuses a request that carries more records than one ingest batch may hold.
pub fn check_count(state: &AppState, n: usize) -> Result<(), ApiError> {
    let max = state.limits.decode.max_events;
    if n > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_records",
            format!(
                "request holds {n} records, more than the limit of {max}: send smaller batches"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests_es;
#[cfg(test)]
mod tests_push;

#[cfg(test)]
mod proptests;
