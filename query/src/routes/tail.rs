//! `GET /api/v1/tail`: Server-Sent Events of events as they are stored, filtered with the
//! query language on the server.
//!
//! Each subscriber reads from its own position in a bounded broadcast buffer; one that
//! falls behind by more than the buffer never slows ingest: it skips ahead and receives
//! `event: gap` with `{"missed": n}`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query as QueryParams, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use shiplog_core::Event;
use shiplog_core::query::Query;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::error::ApiError;
use crate::state::AppState;

/// Query-string parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailParams {
    /// Filter; empty passes everything.
    #[serde(default)]
    pub q: String,
}

/// Opens a live tail.
///
/// Past `max_tail_subscribers` open tails the answer is 503 `too_many_subscribers`; the
/// slot is held by the stream and freed when the client goes away.
pub async fn tail(
    State(state): State<AppState>,
    guards: Option<axum::Extension<Arc<crate::limits::Guards>>>,
    params: Result<QueryParams<TailParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let QueryParams(p) =
        params.map_err(|e| ApiError::bad_request("bad_parameters", e.body_text()))?;
    let query = shiplog_core::query::parse(&p.q).map_err(|e| ApiError::query(&e))?;
    let slot = guards.map(|g| g.tail_slot()).transpose()?;
    let rx = state.indexer.subscribe();
    let stream = events(rx, query)
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(move |item| {
            let _held = &slot;
            item
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The SSE stream for one subscriber.
pub fn events(
    rx: broadcast::Receiver<Arc<Event>>,
    query: Query,
) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold((rx, query), |(mut rx, query)| async move {
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if !query.matches(&event) {
                        continue;
                    }
                    let data = serde_json::to_string(&*event).unwrap_or_default();
                    return Some((Ok(SseEvent::default().event("log").data(data)), (rx, query)));
                }
                Err(RecvError::Lagged(missed)) => {
                    let data = format!("{{\"missed\":{missed}}}");
                    return Some((Ok(SseEvent::default().event("gap").data(data)), (rx, query)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}
