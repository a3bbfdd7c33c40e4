//! `GET /healthz`.

use axum::Json;
use serde_json::{Value, json};

/// 200 `{"status": "ok"}` once the node can take and serve data (the router only exists
/// after the indexer opened).
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
