//! `POST|PUT /_bulk` and `/{index}/_bulk`: Elasticsearch's bulk ingest (see [`super::es`]).
//!
//! The body is NDJSON action/source pairs. `index` and `create` store the source as one log
//! event (mapping in [`super::es_doc`]); `delete` and `update` are answered per item with
//! 400, since shiplog is append-only. A malformed source fails its own item only; every
//! valid item of the request is stored as one batch, durable before the answer, and
//! `?refresh=true|wait_for` also makes it searchable. A malformed action line refuses the
//! whole request, because the pairs cannot be matched up after it. The answer lists one
//! item per action, in order, each with its `status`.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use shiplog_core::Timestamp;

use super::es::{check_index_name, respond};
use super::es_doc::{self, DocId};
use super::{body, check_count, store};
use crate::error::ApiError;
use crate::state::AppState;

/// `POST|PUT /_bulk`.
pub async fn bulk(
    State(state): State<AppState>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(run_bulk(&state, None, &params, &headers, body).await)
}

/// `POST|PUT /{index}/_bulk`: items without `_index` go to `index`.
pub async fn bulk_index(
    State(state): State<AppState>,
    Path(index): Path<String>,
    UrlQuery(params): UrlQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(run_bulk(&state, Some(index), &params, &headers, body).await)
}

fn check_bulk_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    match body::media_type(headers).as_str() {
        ""
        | "application/x-ndjson"
        | "application/json"
        | "application/vnd.elasticsearch+x-ndjson"
        | "application/vnd.elasticsearch+json" => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("content-type '{other}' is not supported for _bulk: send application/x-ndjson"),
        )),
    }
}

/// One action of a bulk request and how it ended.
struct Item {
    action: &'static str,
    index: String,
    id: String,
    /// `Ok(())`: stored with the batch; `Err((status, type, reason))`: refused.
    outcome: Result<(), (u16, &'static str, String)>,
}

fn refresh_requested(params: &HashMap<String, String>) -> Result<bool, ApiError> {
    match params.get("refresh").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("" | "true" | "wait_for") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "bad_parameters",
            format!("refresh '{other}' is not one of true, false, wait_for"),
        )),
    }
}

async fn run_bulk(
    state: &AppState,
    path_index: Option<String>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    raw: Body,
) -> Result<Value, ApiError> {
    let started = Instant::now();
    let refresh = refresh_requested(params)?;
    check_bulk_content_type(headers)?;
    if let Some(index) = &path_index {
        check_index_name(index).map_err(|e| ApiError::bad_request("bad_index", e))?;
    }
    let bytes = body::read(state, headers, raw).await?;
    let max_line = state.limits.decode.max_line_bytes;
    let received = Timestamp::now();
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    let mut items: Vec<Item> = Vec::new();
    let mut events = Vec::new();
    // Items whose times fall outside `[api]`'s window fail one by one, as Elasticsearch
    // answers a document it cannot take, and the rest are stored.
    let mut window = state.limits.decode.window.start(received);
    let mut repeats: HashMap<&[u8], usize> = HashMap::new();
    while let Some((line_no, line)) = lines.next() {
        let line_err = |msg: String| ApiError {
            line: Some(line_no),
            ..ApiError::bad_request("bad_bulk", format!("line {line_no}: {msg}"))
        };
        if line.len() > max_line {
            return Err(line_err(format!(
                "action line of {} bytes exceeds the line limit of {max_line} bytes",
                line.len()
            )));
        }
        let action: Value = serde_json::from_slice(line)
            .map_err(|e| line_err(format!("malformed action/metadata line: {e}")))?;
        let (name, meta) = match action.as_object().map(|o| (o.len(), o.iter().next())) {
            Some((1, Some((k, v)))) => (k.as_str(), v),
            _ => {
                return Err(line_err(
                    "an action line must be one object with one key: index, create, delete or update"
                        .into(),
                ));
            }
        };
        let action: &'static str = match name {
            "index" => "index",
            "create" => "create",
            "delete" => "delete",
            "update" => "update",
            other => {
                return Err(line_err(format!(
                    "unknown bulk action [{other}]: use index or create"
                )));
            }
        };
        let meta = meta.as_object().cloned().unwrap_or_default();
        let index = meta
            .get("_index")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| path_index.clone())
            .unwrap_or_default();
        let given_id = match meta.get("_id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let source = if action == "delete" {
            None
        } else {
            let (_, src) = lines.next().ok_or_else(|| {
                line_err(format!("the {action} action needs a source line after it"))
            })?;
            Some(src)
        };
        let mut item = Item {
            action,
            index: index.clone(),
            id: given_id.clone().unwrap_or_default(),
            outcome: Ok(()),
        };
        item.outcome = (|| {
            if matches!(action, "delete" | "update") {
                return Err((
                    400,
                    "illegal_argument_exception",
                    format!(
                        "shiplog stores logs append-only: the {action} action is not supported"
                    ),
                ));
            }
            check_index_name(&index).map_err(|e| {
                (
                    400,
                    "invalid_index_name_exception",
                    if index.is_empty() {
                        "index is missing: name it in the action or the path (/{index}/_bulk)"
                            .to_string()
                    } else {
                        e
                    },
                )
            })?;
            let src = source.unwrap_or_default();
            if src.len() > max_line {
                return Err((
                    400,
                    "mapper_parsing_exception",
                    format!(
                        "document of {} bytes exceeds the line limit of {max_line} bytes",
                        src.len()
                    ),
                ));
            }
            let doc_id = match &given_id {
                Some(id) => DocId::Given(id),
                None => {
                    let seen = repeats.entry(src).or_default();
                    *seen += 1;
                    DocId::Auto(*seen - 1)
                }
            };
            let (event, answer_id) = es_doc::to_event(&index, doc_id, src, received)
                .map_err(|reason| (400, "mapper_parsing_exception", reason))?;
            window
                .check(event.ts)
                .map_err(|reason| (400, "illegal_argument_exception", reason))?;
            item.id = answer_id;
            events.push(event);
            Ok(())
        })();
        items.push(item);
    }
    check_count(state, events.len())?;
    store(state, events).await?;
    // The items are stored whatever the refresh does: a failed one is logged, not
    // answered as an error the client would resend the stored documents for.
    if refresh {
        let _ = crate::routes::ingest::refresh_stored(state).await;
    }
    let errors = items.iter().any(|i| i.outcome.is_err());
    let rendered: Vec<Value> = items
        .into_iter()
        .enumerate()
        .map(|(n, item)| {
            let mut body = Map::new();
            body.insert("_index".into(), json!(item.index));
            body.insert("_id".into(), json!(item.id));
            match item.outcome {
                Ok(()) => {
                    body.insert("_version".into(), json!(1));
                    body.insert("result".into(), json!("created"));
                    body.insert(
                        "_shards".into(),
                        json!({"total": 1, "successful": 1, "failed": 0}),
                    );
                    body.insert("_seq_no".into(), json!(n));
                    body.insert("_primary_term".into(), json!(1));
                    body.insert("status".into(), json!(201));
                }
                Err((status, kind, reason)) => {
                    body.insert("status".into(), json!(status));
                    body.insert("error".into(), json!({"type": kind, "reason": reason}));
                }
            }
            json!({ item.action: body })
        })
        .collect();
    Ok(json!({
        "took": started.elapsed().as_millis() as u64,
        "errors": errors,
        "items": rendered,
    }))
}
