//! Limits past which the API answers at once instead of queuing or running long:
//! concurrent requests (503 `overloaded` with `Retry-After`), tail subscribers (503
//! `too_many_subscribers`) and query time (503 `query_timeout`).
//!
//! Requests over the limit are refused, not queued: a client that retries after
//! `Retry-After` does better than one that waits in an unbounded line while the server
//! drowns. `/healthz`, `/metrics` and the tail stream (which has its own limit) do not take
//! a request slot, so monitoring keeps working under load.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::state::ApiLimits;

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
        return ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!(
                    "{} requests are in progress, the limit ([api] max_concurrent_requests): retry after a second",
                    guards.max_requests
                ),
            )
        }
        .into_response();
    };
    next.run(req).await
}

/// Runs blocking work (a search, an aggregation) on a blocking thread, answering 503
/// `query_timeout` once `timeout` passes. tantivy cannot cancel a search, so the thread
/// finishes in the background and its result is dropped (its request slot is freed when
/// the 503 is sent; tokio's bounded blocking pool caps how many such threads run at once).
pub async fn run_blocking<T, F>(timeout: Duration, what: &'static str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    let task = tokio::task::spawn_blocking(f);
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(ApiError::internal(format!("{what} task failed: {e}"))),
        Err(_) => Err(ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "query_timeout",
                format!(
                    "{what} ran longer than {}ms ([api] query_timeout): narrow the time window or the query",
                    timeout.as_millis()
                ),
            )
        }),
    }
}
