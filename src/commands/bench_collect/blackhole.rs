//! An ingest endpoint that stores nothing: it decompresses each batch, counts its events
//! and log events, acknowledges them all, and, when asked to record, decodes each batch
//! whole and remembers every log line with its event id so losses and duplicates can be
//! counted afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use shiplog_core::codec::{DecodeLimits, decode_batch, decompress_capped};
use shiplog_core::{Kind, Timestamp};
use tokio_util::sync::CancellationToken;

/// What the blackhole has seen.
#[derive(Debug, Default)]
pub struct Received {
    /// Log events received (every copy).
    pub logs: AtomicU64,
    /// Batches received.
    pub batches: AtomicU64,
    /// Bodies that did not decode.
    pub refused: AtomicU64,
    /// With recording on: per (container name, message), the event ids of every copy.
    pub lines: Mutex<HashMap<(String, String), Vec<String>>>,
    record: bool,
}

impl Received {
    /// Log events received so far.
    pub fn logs(&self) -> u64 {
        self.logs.load(Ordering::Relaxed)
    }
}

/// A running blackhole.
pub struct Blackhole {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    /// Its counters.
    pub received: Arc<Received>,
    shutdown: CancellationToken,
}

impl Blackhole {
    /// Serves on a free loopback port; `record` keeps every line (costs CPU, for small runs).
    pub async fn start(record: bool) -> anyhow::Result<Blackhole> {
        let received = Arc::new(Received {
            record,
            ..Received::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new()
            .route("/api/v1/ingest", axum::routing::post(ingest))
            .layer(DefaultBodyLimit::disable())
            .with_state(received.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Ok(Blackhole {
            url,
            received,
            shutdown,
        })
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn ingest(
    State(received): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let compressed = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"zstd");
    // Decoding is the receiver's cost, not the collector's: off the async workers.
    let counted = tokio::task::spawn_blocking(move || count(&received, &body, compressed)).await;
    match counted {
        Ok(Ok(events)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"accepted": events, "duplicates": 0})),
        )
            .into_response(),
        Ok(Err(reason)) => (StatusCode::BAD_REQUEST, reason).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Counts one body; returns its number of events.
fn count(received: &Received, body: &[u8], compressed: bool) -> Result<usize, String> {
    let refuse = |e: String| {
        received.refused.fetch_add(1, Ordering::Relaxed);
        e
    };
    received.batches.fetch_add(1, Ordering::Relaxed);
    if received.record {
        let batch = decode_batch(body, compressed, DecodeLimits::default(), Timestamp::now())
            .map_err(|e| refuse(e.to_string()))?;
        let mut lines = received.lines.lock().unwrap_or_else(|p| p.into_inner());
        let mut logs = 0;
        for e in &batch.events {
            if e.kind == Kind::Log {
                logs += 1;
                lines
                    .entry((e.container_name.clone(), e.message.clone()))
                    .or_default()
                    .push(e.id.to_string());
            }
        }
        received.logs.fetch_add(logs, Ordering::Relaxed);
        return Ok(batch.events.len());
    }
    let owned;
    let raw: &[u8] = if compressed {
        owned = decompress_capped(body, 256 * 1024 * 1024).map_err(|e| refuse(e.to_string()))?;
        &owned
    } else {
        body
    };
    // The header line and every event are one line each; the header carries no kind.
    let events = memchr::memchr_iter(b'\n', raw).count().saturating_sub(1);
    let logs = memchr::memmem::find_iter(raw, br#""kind":"log""#).count();
    received.logs.fetch_add(logs as u64, Ordering::Relaxed);
    Ok(events)
}
