//! Reading a compatibility request's body: the size cap of the API, then, for
//! `Content-Encoding: gzip`, a decompression capped at the ingest decode limit.
//!
//! A gzip body is read through `take(cap + 1)`, so a decompression bomb costs at most the cap
//! in memory before it is refused with 413.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;

use crate::error::ApiError;
use crate::state::AppState;

/// How a body was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Sent as is.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// Reads `Content-Encoding`: gzip or none; anything else is 415.
pub fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let text = value.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match text.as_str() {
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "" | "identity" => Ok(Encoding::Identity),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
            format!("content-encoding '{other}' is not supported here: send gzip or no encoding"),
        )),
    }
}

/// The media type of `Content-Type` without parameters, lower-cased; empty when absent.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads the whole body under `state.limits.max_body_bytes`, then decompresses it when it
/// is gzip, under `state.limits.decode.max_decompressed_bytes`.
pub async fn read(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let enc = encoding(headers)?;
    let limit = state.limits.max_body_bytes;
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
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
    })?;
    let cap = state.limits.decode.max_decompressed_bytes;
    match enc {
        Encoding::Identity => {
            if raw.len() > cap {
                return Err(too_large_decompressed(cap));
            }
            Ok(raw)
        }
        Encoding::Gzip => tokio::task::spawn_blocking(move || gunzip_capped(&raw, cap))
            .await
            .map_err(|e| ApiError::internal(format!("decompression task failed: {e}")))?
            .map(Bytes::from),
    }
}

fn too_large_decompressed(cap: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("decompressed body exceeds the limit of {cap} bytes: send smaller batches"),
    )
}

/// Decompresses gzip (several members allowed), refusing output past `cap` bytes.
pub fn gunzip_capped(raw: &[u8], cap: usize) -> Result<Vec<u8>, ApiError> {
    let decoder = flate2::read::MultiGzDecoder::new(raw);
    let mut out = Vec::new();
    decoder
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::bad_request("bad_gzip", format!("body is not valid gzip: {e}")))?;
    if out.len() > cap {
        return Err(too_large_decompressed(cap));
    }
    Ok(out)
}
