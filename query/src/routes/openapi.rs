//! `GET /api/v1/openapi.json`: the API described in OpenAPI 3.1, kept in step with the
//! router by a test (every route documented, every documented path served).

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as written in `query/api/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../api/openapi.json");

/// Serves the document.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
