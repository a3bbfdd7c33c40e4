//! Alerts and silences: `GET /api/v1/alerts`, `GET /api/v1/alerts/history`,
//! `GET /api/v1/alerts/rules`, `POST /api/v1/alerts/reload`, `GET|POST /api/v1/silences`,
//! `DELETE /api/v1/silences/{id}`. Reading needs `read`; reload and silences need `admin`
//! (see [`crate::auth::route_class`]).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::alerts::Alerts;
use crate::alerts::silence::NewSilence;
use crate::error::ApiError;
use crate::state::AppState;

/// Largest silence body.
const MAX_SILENCE_BODY: usize = 64 * 1024;

fn engine(state: &AppState) -> Result<Arc<Alerts>, ApiError> {
    state.alerts.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "alerts_disabled",
            "alerting is not running on this node: start it with shiplog up or serve (with [[alert]] rules in --config)",
        )
    })
}

/// Pending and firing alerts.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let alerts = engine(&state)?;
    Ok(Json(json!({ "alerts": alerts.alerts() })))
}

/// `history` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Most transitions, newest first (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Recorded transitions, newest first.
pub async fn history(
    State(state): State<AppState>,
    params: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > crate::alerts::eval::HISTORY {
        return Err(ApiError::bad_request(
            "bad_parameters",
            format!(
                "limit {limit} is out of range: use 1 to {}",
                crate::alerts::eval::HISTORY
            ),
        ));
    }
    let alerts = engine(&state)?;
    Ok(Json(json!({ "transitions": alerts.history(limit) })))
}

/// The loaded rules.
pub async fn rules(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let alerts = engine(&state)?;
    Ok(Json(json!({ "rules": alerts.rules() })))
}

/// Reads the rules again; a bad file leaves the running rules in place (400 with why).
pub async fn reload(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let alerts = engine(&state)?;
    let result = tokio::task::spawn_blocking(move || alerts.reload())
        .await
        .map_err(|e| ApiError::internal(format!("reload task failed: {e}")))?;
    match result {
        Ok(n) => Ok(Json(json!({ "rules": n }))),
        Err(e) => Err(ApiError::bad_request(
            "bad_rules",
            format!("{e}; the running rules are unchanged"),
        )),
    }
}

/// Every silence, newest first.
pub async fn silences(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let alerts = engine(&state)?;
    Ok(Json(json!({ "silences": alerts.silences() })))
}

/// Adds a silence.
pub async fn add_silence(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if body.len() > MAX_SILENCE_BODY {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("a silence is at most {MAX_SILENCE_BODY} bytes"),
        ));
    }
    let req: NewSilence = serde_json::from_slice(&body).map_err(|e| ApiError {
        line: Some(e.line()),
        ..ApiError::bad_request(
            "bad_silence",
            format!(
                "{e}; expected {{\"matchers\":[{{\"name\":\"service\",\"value\":\"api\",\"is_regex\":false}}],\"ends_at\":\"<RFC 3339>\",\"comment\":\"...\",\"created_by\":\"...\"}}"
            ),
        )
    })?;
    let alerts = engine(&state)?;
    let id = alerts
        .add_silence(req)
        .map_err(|e| ApiError::bad_request("bad_silence", e))?;
    Ok(Json(json!({ "id": id })))
}

/// Ends a silence now.
pub async fn expire(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let alerts = engine(&state)?;
    if !alerts.expire_silence(&id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_silence",
            format!("no silence has id '{id}': see GET /api/v1/silences"),
        ));
    }
    Ok(Json(json!({ "id": id, "state": "expired" })))
}
