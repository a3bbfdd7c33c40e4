//! The route table.

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::{Extension, Router, middleware};

use crate::auth::{self, Auth};
use crate::limits::{self, Guards};
use crate::routes;
use crate::routes::predictions;
use crate::state::AppState;
use crate::telemetry::{self, Telemetry};

/// Every route of the API over shared state, without auth.
pub fn router(state: AppState) -> Router {
    router_with(state, Auth::disabled())
}

/// Every route of the API over shared state, behind `auth`, the request limits and the
/// request telemetry (outermost first: telemetry, auth, concurrency limit, handler).
pub fn router_with(state: AppState, auth: Auth) -> Router {
    router_observed(state, auth, Arc::new(Telemetry::default()))
}

/// [`router_with`], counting into `telemetry`, which the caller keeps to read the same
/// figures `/metrics` shows (exporters, for instance).
pub fn router_observed(state: AppState, auth: Auth, telemetry: Arc<Telemetry>) -> Router {
    let guards = Arc::new(Guards::new(&state.limits));
    telemetry.watch(guards.clone());
    routes(state)
        .layer(Extension(guards.clone()))
        .layer(Extension(telemetry.clone()))
        .layer(middleware::from_fn_with_state(guards, limits::concurrency))
        .layer(middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require,
        ))
        .layer(middleware::from_fn_with_state(telemetry, telemetry::track))
        .layer(middleware::from_fn(crate::error::json_errors))
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::prom::metrics))
        .route("/api/v1/openapi.json", get(routes::openapi::openapi))
        .route("/api/v1/aggregate", post(routes::aggregate::aggregate))
        .route(
            "/api/v1/search",
            get(routes::search::search).post(routes::search::search_post),
        )
        .route("/api/v1/tail", get(routes::tail::tail))
        .route("/api/v1/ingest", post(routes::ingest::ingest))
        .route("/api/v1/services", get(routes::services::list))
        .route("/api/v1/services/{name}", get(routes::services::detail))
        .route("/api/v1/metrics", get(routes::metrics::metrics))
        .route("/api/v1/retention", post(routes::retention::retention))
        .route("/api/v1/alerts", get(routes::alerts::list))
        .route("/api/v1/alerts/history", get(routes::alerts::history))
        .route("/api/v1/alerts/rules", get(routes::alerts::rules))
        .route("/api/v1/alerts/reload", post(routes::alerts::reload))
        .route("/api/v1/silences", get(routes::alerts::silences))
        .route("/api/v1/silences", post(routes::alerts::add_silence))
        .route("/api/v1/silences/{id}", delete(routes::alerts::expire))
        .route("/api/v1/predictions", routes::predictions::route())
        .route("/api/v1/predictions/summary", get(predictions::summary))
        .route(
            "/api/v1/predictions/exports/{id}",
            get(predictions::manifest),
        )
        .route("/api/v1/audit/access", get(routes::predictions::access))
        .route("/", get(routes::compat::es::info))
        .route("/_cluster/health", get(routes::compat::es::cluster_health))
        .route("/_bulk", routes::compat::es::bulk_route())
        .route("/{index}/_bulk", routes::compat::es::bulk_index_route())
        .route("/_search", routes::compat::es::search_route())
        .route("/{index}/_search", routes::compat::es::search_index_route())
        .route("/_refresh", routes::compat::es::refresh_route())
        .route("/{index}/_refresh", routes::compat::es::refresh_route())
        .route("/v1/logs", post(routes::compat::otlp::logs))
        .route("/loki/api/v1/push", post(routes::compat::loki::push))
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
