//! Limits past which the API answers at once instead of queuing or running long:
//! concurrent requests (503 `overloaded` with `Retry-After`), tail subscribers (503
//! `too_many_subscribers`), queries' blocking work (a few run, a bounded number wait, the
//! rest get 503 `overloaded`) and query time (503 `query_timeout`, and the work stops).
//!
//! Requests over the limit are refused, not queued: a client that retries after
//! `Retry-After` does better than one that waits in an unbounded line while the server
//! drowns. `/healthz`, `/metrics` and the tail stream (which has its own limit) do not take
//! a request slot, so monitoring keeps working under load.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shiplog_indexer::Budget;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::state::{ApiLimits, AppState};

/// The shared counters behind the limits.
#[derive(Debug)]
pub struct Guards {
    requests: Arc<Semaphore>,
    max_requests: usize,
    tail: Arc<Semaphore>,
    max_tail: usize,
}

impl Guards {
    /// Slots for the limits in `limits`.
    pub fn new(limits: &ApiLimits) -> Self {
        let max_requests = limits.max_concurrent_requests.max(1);
        let max_tail = limits.max_tail_subscribers;
        Guards {
            requests: Arc::new(Semaphore::new(max_requests)),
            max_requests,
            tail: Arc::new(Semaphore::new(max_tail)),
            max_tail,
        }
    }

    /// A tail subscriber slot, held as long as the stream lives.
    pub fn tail_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.tail.clone().try_acquire_owned().map_err(|_| ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_subscribers",
                format!(
                    "{} live tails are open, the limit ([api] max_tail_subscribers): close one or retry later",
                    self.max_tail
                ),
            )
        })
    }

    /// Live tail streams open now.
    pub fn tail_subscribers(&self) -> usize {
        self.max_tail - self.tail.available_permits()
    }

    /// Requests being served now (tail streams and monitoring not counted).
    pub fn requests_in_flight(&self) -> usize {
        self.max_requests - self.requests.available_permits()
    }
}

/// 503 `overloaded` with `Retry-After: 1`, every limit's refusal.
fn overloaded(message: String) -> ApiError {
    ApiError {
        retry_after: Some(1),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
    }
}

fn exempt(route: &str) -> bool {
    matches!(route, "/healthz" | "/metrics" | "/api/v1/tail")
}

/// Middleware: takes a request slot for the time the handler runs, or answers 503 at once.
pub async fn concurrency(State(guards): State<Arc<Guards>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str());
    if route.is_some_and(exempt) {
        return next.run(req).await;
    }
    let Ok(_slot) = guards.requests.clone().try_acquire_owned() else {
        return overloaded(format!(
            "{} requests are in progress, the limit ([api] max_concurrent_requests): retry after a second",
            guards.max_requests
        ))
        .into_response();
    };
    next.run(req).await
}

/// Slots for queries' blocking work: `max_running` run at once, up to `max_waiting` more
/// wait (without a thread) for one to free up, and past that the answer is 503
/// `overloaded` at once. Each slot is held by the blocking thread until its work has
/// really stopped, timed out or not, so admission counts work, not requests, and the
/// blocking pool never fills with abandoned searches.
#[derive(Debug)]
pub struct QuerySlots {
    running: Arc<Semaphore>,
    max_running: usize,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
    /// `max_response_memory` in KiB: taken by a search answer once built (its size),
    /// released once it is sent.
    response_kib: Arc<Semaphore>,
    max_response_kib: usize,
}

/// A share of `max_response_memory`, held by a search answer until it is sent.
#[derive(Debug)]
pub struct ResponseMemory {
    _held: OwnedSemaphorePermit,
}

const KIB: usize = 1024;
/// Chunk size of a held body: the share is released when the last chunk is taken.
const BODY_CHUNK: usize = 64 * KIB;

impl QuerySlots {
    /// Slots for the query limits in `limits`.
    pub fn new(limits: &ApiLimits) -> Self {
        let max_running = limits.max_concurrent_queries.max(1);
        QuerySlots {
            running: Arc::new(Semaphore::new(max_running)),
            max_running,
            waiting: Default::default(),
            max_waiting: limits.max_queued_queries,
            response_kib: Arc::new(Semaphore::new(limits.max_response_memory / KIB)),
            max_response_kib: limits.max_response_memory / KIB,
        }
    }

    /// Bytes of `max_response_memory` held now by built answers not yet sent.
    pub fn response_bytes(&self) -> usize {
        (self.max_response_kib - self.response_kib.available_permits()) * KIB
    }

    /// Takes `bytes` (capped at the whole pool) for a built answer until it is sent, or
    /// answers 503 `overloaded` at once.
    pub fn reserve_response(&self, bytes: usize) -> Result<ResponseMemory, ApiError> {
        let kib = bytes.div_ceil(KIB).clamp(1, self.max_response_kib.max(1));
        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
        self.response_kib
            .clone()
            .try_acquire_many_owned(kib)
            .map(|held| ResponseMemory { _held: held })
            .map_err(|_| {
                overloaded(format!(
                    "search answers in flight hold {} MiB, the limit ([api] max_response_memory): retry after a second, or ask for smaller pages (limit, fields)",
                    self.max_response_kib / KIB
                ))
            })
    }

    /// Queries whose work is running now (including work past its timeout, until its
    /// next cancellation check).
    pub fn running(&self) -> usize {
        self.max_running - self.running.available_permits()
    }

    /// Queries waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    async fn admit(
        &self,
        deadline: tokio::time::Instant,
        timeout: Duration,
        what: &'static str,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(slot) = self.running.clone().try_acquire_owned() {
            return Ok(slot);
        }
        let queued = self.waiting.fetch_add(1, Ordering::Relaxed);
        struct Leave<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _leave = Leave(&self.waiting);
        if queued >= self.max_waiting {
            return Err(overloaded(format!(
                "{} queries are running and {} waiting, the limits ([api] max_concurrent_queries, max_queued_queries): retry after a second",
                self.max_running, self.max_waiting
            )));
        }
        match tokio::time::timeout_at(deadline, self.running.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            Ok(Err(_)) => Err(ApiError::internal("query slots closed")),
            Err(_) => Err(timed_out(what, timeout, " waiting for a free query slot")),
        }
    }
}

fn timed_out(what: &str, timeout: Duration, while_: &str) -> ApiError {
    ApiError {
        retry_after: Some(5),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "query_timeout",
            format!(
                "{what} ran longer than {}ms ([api] query_timeout){while_}: narrow the time window or the query",
                timeout.as_millis()
            ),
        )
    }
}

/// Runs a query's blocking work (a search, an aggregation) on a blocking thread under a
/// [`Budget`] of the state's `query_timeout`, answering 503 `query_timeout` once it
/// passes. The budget stops the work at its next check (see `shiplog_indexer::cancel`),
/// also when the client goes away; the query slot is held until the thread returns.
pub async fn run_blocking<T, F>(state: &AppState, what: &'static str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    let timeout = state.limits.query_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let budget = Budget::new(timeout);
    // Cancels on every way out of this future, the client hanging up included.
    struct CancelOnDrop(Budget);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let _cancel = CancelOnDrop(budget.clone());
    let slot = state.query_slots().admit(deadline, timeout, what).await?;
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        budget.run(f)
    });
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(Err(e))) if e.code == "query_timeout" => Err(timed_out(what, timeout, "")),
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(ApiError::internal(format!("{what} task failed: {e}"))),
        Err(_) => Err(timed_out(what, timeout, "")),
    }
}

impl ResponseMemory {
    /// Sends `body` as JSON, holding this share until the connection has taken its last
    /// chunk (a slow reader keeps its share; the pool bounds how much they all hold).
    pub fn send(self, body: Vec<u8>) -> Response {
        let whole = bytes::Bytes::from(body);
        let mut chunks: Vec<bytes::Bytes> = (0..whole.len())
            .step_by(BODY_CHUNK)
            .map(|at| whole.slice(at..(at + BODY_CHUNK).min(whole.len())))
            .rev()
            .collect();
        drop(whole);
        let mut share = Some(self);
        let stream = futures_util::stream::poll_fn(move |_| {
            let next = chunks.pop();
            if chunks.is_empty() {
                share.take();
            }
            std::task::Poll::Ready(next.map(Ok::<_, std::convert::Infallible>))
        });
        let mut resp = Response::new(axum::body::Body::from_stream(stream));
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}
