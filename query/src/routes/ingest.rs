//! `POST /api/v1/ingest`: NDJSON batches, plain or zstd, acknowledged once committed.
//!
//! A batch is all-or-nothing: a bad line refuses the whole batch (400 naming the line), so
//! a sender can fix and resend it without creating duplicates or holes.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use shiplog_core::Timestamp;
use shiplog_core::codec::{self, CodecError};
use shiplog_indexer::IngestAck;

use crate::error::ApiError;
use crate::state::AppState;

pub(crate) fn encoding(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    match value
        .to_str()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "zstd" => Ok(true),
        "" | "identity" => Ok(false),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("content-encoding '{other}' is not supported: send zstd or no encoding"),
        )),
    }
}

pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = value.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/json"
        | "text/plain"
        | "" => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content-type '{other}' is not supported: send application/x-ndjson"),
        )),
    }
}

fn codec_error(e: CodecError) -> ApiError {
    ApiError {
        line: e.line(),
        ..ApiError::bad_request("bad_batch", e.to_string())
    }
}

/// Reads a request body up to the configured limit (400 `body_too_large` past it).
pub(crate) async fn read_body(state: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let limit = state.limits.max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::bad_request(
                "body_too_large",
                format!("request body exceeds the limit of {limit} bytes: send smaller batches"),
            )
        } else {
            ApiError::bad_request("bad_body", format!("could not read the request body: {e}"))
        }
    })
}

/// Query-string parameters of ingest.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    /// `true`: commit before answering, so the batch is searchable when the answer arrives
    /// (like Elasticsearch's `refresh=true`). Costs a commit per request: for tests and
    /// low-rate senders, not for bulk shipping.
    #[serde(default)]
    pub refresh: bool,
}

/// Stores one batch; answers once it is durable (and, with `refresh=true`, searchable).
pub async fn ingest(
    State(state): State<AppState>,
    params: Result<axum::extract::Query<IngestParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestAck>, ApiError> {
    let axum::extract::Query(params) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let compressed = encoding(&headers)?;
    check_content_type(&headers)?;
    let bytes = read_body(&state, body).await?;
    let decode_limits = state.limits.decode;
    let batch = tokio::task::spawn_blocking(move || {
        codec::decode_batch(&bytes, compressed, decode_limits, Timestamp::now())
    })
    .await
    .map_err(|e| ApiError::internal(format!("decode task failed: {e}")))?
    .map_err(codec_error)?;
    let n = batch.events.len();
    let ack = state
        .indexer
        .ingest_with_sources(batch.events, batch.sources)
        .await?;
    if params.refresh {
        let indexer = state.indexer.clone();
        tokio::task::spawn_blocking(move || indexer.flush())
            .await
            .map_err(|e| ApiError::internal(format!("refresh task failed: {e}")))??;
    }
    tracing::debug!(events = n, accepted = ack.accepted, duplicates = ack.duplicates, batch_id = ?batch.batch_id, "batch stored");
    Ok(Json(ack))
}
