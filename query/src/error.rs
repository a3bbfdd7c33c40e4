//! The one error type every route returns, rendered as
//! `{"error": {"code", "message", "position"?, "line"?}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shiplog_core::query::ParseError;
use shiplog_indexer::IndexerError;

/// An error answer: HTTP status, a stable machine code and a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `bad_query`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Character position in the query, for query errors.
    pub position: Option<usize>,
    /// 1-based line of the body, for ingest errors.
    pub line: Option<usize>,
    /// Seconds after which a retry makes sense (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with no position.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            position: None,
            line: None,
            retry_after: None,
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A query that does not parse.
    pub fn query(e: &ParseError) -> Self {
        ApiError {
            position: Some(e.position),
            ..Self::bad_request("bad_query", e.message.clone())
        }
    }

    /// 401: no token, or one the server does not know.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a known token without the role the route needs.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A server-side failure that is not the client's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                position: self.position,
                line: self.line,
            },
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<IndexerError> for ApiError {
    fn from(e: IndexerError) -> Self {
        match e {
            IndexerError::Busy { .. } => ApiError {
                retry_after: Some(1),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "busy", e.to_string())
            },
            IndexerError::Closed | IndexerError::Commit(_) => ApiError {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            },
            IndexerError::DiskFull { .. } => ApiError {
                retry_after: Some(10),
                ..Self::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", e.to_string())
            },
            IndexerError::Wal(_) => ApiError {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            },
            IndexerError::BadCursor(_) => Self::bad_request("bad_cursor", e.to_string()),
            // The message is rewritten by `run_blocking`, which knows the timeout.
            IndexerError::Cancelled => ApiError {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "query_timeout",
                    e.to_string(),
                )
            },
            other => Self::internal(other.to_string()),
        }
    }
}
