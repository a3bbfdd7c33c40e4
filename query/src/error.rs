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

/// The stable code of an error status that no route chose a code for.
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "body_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "bad_body",
        429 => "busy",
        431 => "headers_too_large",
        503 => "unavailable",
        504 => "timeout",
        _ if status.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// The most of a non-JSON error body kept as the message.
const MAX_PLAIN_ERROR: usize = 4096;

/// Middleware: every error answer is `{"error": {"code", "message"}}`. Routes answer with
/// [`ApiError`] already; this catches what the framework answers by itself (an unsupported
/// method's empty 405, an extractor's plain-text rejection) so a client never has to parse
/// two shapes.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json || method == "HEAD" {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        match parts
            .headers
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
        {
            Some(allowed) if !allowed.is_empty() => {
                format!("{method} is not allowed on {path}: use {allowed}")
            }
            _ => format!(
                "{method} is not allowed on {path}: /api/v1/openapi.json lists each route's methods"
            ),
        }
    } else if text.is_empty() {
        format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        )
    } else {
        text
    };
    let mut answer = ApiError::new(status, code_for(status), message).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, v.clone());
        }
    }
    answer
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
