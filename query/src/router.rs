//! The route table.

use axum::Router;
use axum::routing::{get, post};

use crate::routes;
use crate::state::AppState;

/// Every route of the API over shared state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/api/v1/search", get(routes::search::search))
        .route("/api/v1/tail", get(routes::tail::tail))
        .route("/api/v1/ingest", post(routes::ingest::ingest))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> crate::error::ApiError {
    crate::error::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {}: see /api/v1/search, /api/v1/tail, /api/v1/ingest, /healthz",
            uri.path()
        ),
    )
}
