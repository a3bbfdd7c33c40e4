//! `POST /api/v1/retention?dry_run=true`: what retention would remove (or removes now).

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use shiplog_indexer::retention::RetentionPlan;

use crate::error::ApiError;
use crate::state::AppState;

/// Query-string parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionParams {
    /// Only report the plan (default `true`: removing data takes an explicit `false`).
    #[serde(default = "yes")]
    pub dry_run: bool,
}

fn yes() -> bool {
    true
}

/// Plans retention under the node's policy, and applies it when `dry_run=false`.
pub async fn retention(
    State(state): State<AppState>,
    params: Result<Query<RetentionParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RetentionPlan>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let indexer = state.indexer.clone();
    let plan = tokio::task::spawn_blocking(move || indexer.apply_retention(p.dry_run))
        .await
        .map_err(|e| ApiError::internal(format!("retention task failed: {e}")))??;
    Ok(Json(plan))
}
