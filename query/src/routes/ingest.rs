//! `POST /api/v1/ingest`: NDJSON batches, plain or zstd, acknowledged once committed.
//!
//! A batch is all-or-nothing: a bad line refuses the whole batch (400 naming the line, the
//! field and the problem), so a sender can fix and resend it without creating duplicates or
//! holes. `?partial=true` stores the good lines instead and lists the bad ones.
//!
//! A resend is recognised as a duplicate when its lines carry `ts` (or `id`), or when the
//! request carries an `Idempotency-Key` header (or the body a header line's `batch_id`):
//! lines without a time then get ids from the key, their place and their bytes.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use shiplog_core::codec::{self, CodecError};
use shiplog_core::{Event, Timestamp};
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

/// A refused batch: too big as a whole is 413 (the same answer as a body or a gzip bomb
/// over the cap on any route), anything about its content is 400 naming the line.
fn codec_error(e: CodecError) -> ApiError {
    match e {
        CodecError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        ),
        CodecError::TooManyEvents { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_records",
            e.to_string(),
        ),
        _ => ApiError {
            line: e.line(),
            ..ApiError::bad_request("bad_batch", e.to_string())
        },
    }
}

/// Refuses a batch built from records of another format (the compatibility routes,
/// prediction records) whose times fall outside `[api]`'s window, naming the first record
/// at fault (0-based, in the order the request held them). The native route refuses per
/// line while decoding instead, with `partial=true` to keep the rest.
pub(crate) fn check_times(state: &AppState, events: &[Event]) -> Result<(), ApiError> {
    let mut window = state.limits.decode.window.start(Timestamp::now());
    for (i, event) in events.iter().enumerate() {
        if let Err(reason) = window.check(event.ts) {
            return Err(ApiError::bad_request(
                "out_of_window",
                format!("record {i}: {reason}; nothing in this request was stored"),
            ));
        }
    }
    Ok(())
}

/// Reads a request body up to the configured limit (413 `body_too_large` past it).
pub(crate) async fn read_body(state: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let limit = state.limits.max_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
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
    /// `true`: store the good lines and list the bad ones in `rejected`, instead of
    /// refusing the whole batch for one bad line.
    #[serde(default)]
    pub partial: bool,
}

/// The longest `Idempotency-Key` accepted.
const MAX_KEY_BYTES: usize = 256;

/// The sender's `Idempotency-Key` header: visible ASCII, at most 256 bytes.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "bad_idempotency_key",
            format!(
                "Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters (a UUID, say)"
            ),
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() || text.len() > MAX_KEY_BYTES || !text.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad());
    }
    Ok(Some(text.to_string()))
}

/// The answer to an ingest: what was stored, and whether a requested refresh happened.
#[derive(Debug, serde::Serialize)]
pub struct IngestAnswer {
    /// What the batch came to.
    #[serde(flatten)]
    pub ack: IngestAck,
    /// With `refresh=true`: `false` when the batch is stored but the commit that makes it
    /// searchable failed (it is retried, and the batch becomes searchable by itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub searchable: Option<bool>,
    /// Why `searchable` is `false`, and that the batch must not be sent again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// With `partial=true`: the lines left out and why (always present then, maybe empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Vec<codec::Rejected>>,
}

/// Commits so what was acknowledged is searchable now. A failure here does not undo the
/// acknowledgement (the batch is in the fsynced WAL and is indexed when the commit that is
/// retried every second succeeds), so it comes back as the words of a warning, never as an
/// error a sender would answer by sending the batch again.
pub(crate) async fn refresh_stored(state: &AppState) -> Option<String> {
    let indexer = state.indexer.clone();
    let outcome = tokio::task::spawn_blocking(move || indexer.flush())
        .await
        .map_err(|e| format!("refresh task failed: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()));
    let reason = outcome.err()?;
    tracing::warn!(error = %reason, "refresh after a stored batch failed; the commit is retried");
    Some(format!(
        "stored durably but not searchable yet ({reason}); it becomes searchable once the \
         commit succeeds (retried every second; free disk space if the disk is full). \
         Do not send this batch again"
    ))
}

/// Stores one batch; answers once it is durable (and, with `refresh=true`, searchable).
///
/// 200 when stored (and searchable, if asked); 202 with `searchable: false` when stored
/// but the refresh failed, so the answer never tells a sender to resend a stored batch.
pub async fn ingest(
    State(state): State<AppState>,
    params: Result<axum::extract::Query<IngestParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestAnswer>), ApiError> {
    let axum::extract::Query(params) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let compressed = encoding(&headers)?;
    check_content_type(&headers)?;
    let key = idempotency_key(&headers)?;
    let bytes = read_body(&state, body).await?;
    let decode_limits = state.limits.decode;
    let partial = params.partial;
    let batch = tokio::task::spawn_blocking(move || {
        let options = codec::DecodeOptions {
            key: key.as_deref(),
            partial,
        };
        codec::decode_batch_with(&bytes, compressed, decode_limits, Timestamp::now(), options)
    })
    .await
    .map_err(|e| ApiError::internal(format!("decode task failed: {e}")))?
    .map_err(codec_error)?;
    let n = batch.events.len();
    let rejected = partial.then_some(batch.rejected);
    let ack = state
        .indexer
        .ingest_with_sources(batch.events, batch.sources)
        .await?;
    let mut answer = IngestAnswer {
        ack,
        searchable: None,
        warning: None,
        rejected,
    };
    if params.refresh {
        answer.warning = refresh_stored(&state).await;
        answer.searchable = Some(answer.warning.is_none());
    }
    tracing::debug!(events = n, accepted = ack.accepted, duplicates = ack.duplicates, batch_id = ?batch.batch_id, "batch stored");
    let status = if answer.warning.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)))
}
