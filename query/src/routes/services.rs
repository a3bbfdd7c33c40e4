//! `GET /api/v1/services` and `GET /api/v1/services/{name}`: the service catalog built
//! from registrations (see `shiplog_indexer::catalog`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use shiplog_indexer::catalog::{ServiceDetail, ServiceView};

use crate::error::ApiError;
use crate::state::AppState;

/// The answer of `GET /api/v1/services`: the contract in DESIGN.md.
#[derive(Debug, Serialize)]
pub struct ServicesBody {
    /// Every service with at least one instance, by name.
    pub services: Vec<ServiceView>,
}

/// Lists services and their instances.
pub async fn list(State(state): State<AppState>) -> Json<ServicesBody> {
    Json(ServicesBody {
        services: state.indexer.start_catalog().services(),
    })
}

/// One service: its instances and its recent history, newest first.
pub async fn detail(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ServiceDetail>, ApiError> {
    state
        .indexer
        .start_catalog()
        .service(&name)
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_service",
                format!(
                    "no service named '{}': GET /api/v1/services lists them",
                    name.chars().take(200).collect::<String>()
                ),
            )
        })
}
