//! `GET /api/v1/tail`: events as they are stored, filtered with the query language on the
//! server, as Server-Sent Events or, when the request asks for a WebSocket upgrade, as
//! WebSocket text messages (`{"type":"log","event":{...}}`, `{"type":"gap","missed":n}`).
//! A blank `q` is the same default as search's: every kind but metric samples.
//!
//! `since=15m` first sends the stored events of that window (oldest first, at most
//! `backlog` of them, default 1,000, at most 10,000), then the live ones; an event in both
//! is sent once.
//!
//! Each subscriber reads from its own position in a bounded broadcast buffer; one that
//! falls behind by more than the buffer never slows ingest: it skips ahead and receives
//! `event: gap` with `{"missed": n}`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query as QueryParams, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use shiplog_core::query::Query;
use shiplog_core::{Event, EventId, Timestamp};
use shiplog_indexer::SearchRequest;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::error::ApiError;
use crate::state::AppState;

/// Most stored events a tail sends before the live ones.
pub const MAX_BACKLOG: usize = 10_000;

/// Query-string parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailParams {
    /// Filter; blank passes every kind but metric samples
    /// ([`shiplog_core::query::default_query`]), `*` passes everything.
    #[serde(default)]
    pub q: String,
    /// Also send stored events from this far back: `15m`, `now-1h` or RFC 3339.
    pub since: Option<String>,
    /// How many stored events at most (default 1,000, at most 10,000).
    pub backlog: Option<usize>,
}

/// One item of a tail, whatever carries it.
#[derive(Debug, Clone)]
pub enum TailItem {
    /// A matching event.
    Log(Arc<Event>),
    /// This many events were skipped because the subscriber fell behind.
    Gap(u64),
}

/// Opens a live tail: a WebSocket when the request asks for an upgrade, else SSE.
///
/// Past `max_tail_subscribers` open tails the answer is 503 `too_many_subscribers`; the
/// slot is held by the stream and freed when the client goes away.
pub async fn tail(
    State(state): State<AppState>,
    guards: Option<axum::Extension<Arc<crate::limits::Guards>>>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    params: Result<QueryParams<TailParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let query = shiplog_core::query::parse_or_default(&p.q).map_err(|e| ApiError::query(&e))?;
    let query = crate::auth::caller(caller).scope(query);
    let since = crate::routes::search::time_param("since", p.since.as_deref(), Timestamp::now())?;
    let limit = p.backlog.unwrap_or(1_000);
    if limit > MAX_BACKLOG {
        return Err(ApiError::bad_request(
            "bad_backlog",
            format!("backlog must be at most {MAX_BACKLOG}, got {limit}"),
        ));
    }
    let slot = guards.map(|g| g.tail_slot()).transpose()?;
    // Subscribe before reading the backlog, so nothing stored in between is missed.
    let rx = state.indexer.subscribe();
    let backlog = match since {
        Some(since) if limit > 0 => {
            let req = SearchRequest {
                query: query.clone(),
                since: Some(since),
                until: None,
                limit,
                cursor: None,
            };
            let indexer = state.indexer.clone();
            let mut hits = tokio::task::spawn_blocking(move || indexer.search(&req))
                .await
                .map_err(|e| ApiError::internal(format!("backlog task failed: {e}")))??
                .hits;
            hits.reverse();
            hits
        }
        _ => Vec::new(),
    };
    let items = items(rx, query, backlog).take_until(state.shutdown.clone().cancelled_owned());
    if let Ok(ws) = ws {
        return Ok(ws.on_upgrade(move |socket| async move {
            let _held = slot;
            websocket(socket, items).await;
        }));
    }
    let stream = items.map(move |item| {
        let _held = &slot;
        Ok::<_, Infallible>(sse_event(&item))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Sends items as WebSocket text messages until the stream ends or the client leaves.
async fn websocket(mut socket: WebSocket, items: impl Stream<Item = TailItem>) {
    let mut items = std::pin::pin!(items);
    loop {
        tokio::select! {
            item = items.next() => {
                let Some(item) = item else { break };
                let text = match &item {
                    TailItem::Log(e) => serde_json::json!({"type": "log", "event": &**e}).to_string(),
                    TailItem::Gap(n) => serde_json::json!({"type": "gap", "missed": n}).to_string(),
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by axum; anything else from the client is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

fn sse_event(item: &TailItem) -> SseEvent {
    match item {
        TailItem::Log(e) => SseEvent::default()
            .event("log")
            .data(serde_json::to_string(&**e).unwrap_or_default()),
        TailItem::Gap(n) => SseEvent::default()
            .event("gap")
            .data(format!("{{\"missed\":{n}}}")),
    }
}

/// The backlog (oldest first), then live events matching `query`; a live event already
/// sent in the backlog is skipped.
pub fn items(
    rx: broadcast::Receiver<Arc<Event>>,
    query: Query,
    backlog: Vec<Event>,
) -> impl Stream<Item = TailItem> {
    let sent: HashSet<EventId> = backlog.iter().map(|e| e.id).collect();
    let live =
        futures_util::stream::unfold((rx, query, sent), |(mut rx, query, sent)| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if !query.matches(&event) || sent.contains(&event.id) {
                            continue;
                        }
                        return Some((TailItem::Log(event), (rx, query, sent)));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        return Some((TailItem::Gap(missed), (rx, query, sent)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        });
    futures_util::stream::iter(backlog.into_iter().map(|e| TailItem::Log(Arc::new(e)))).chain(live)
}

/// The SSE stream of live events for one subscriber.
pub fn events(
    rx: broadcast::Receiver<Arc<Event>>,
    query: Query,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    items(rx, query, Vec::new()).map(|item| Ok(sse_event(&item)))
}
