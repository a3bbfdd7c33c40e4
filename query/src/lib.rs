//! shiplog-query: the HTTP API (axum) over an [`Indexer`](shiplog_indexer::Indexer).
//!
//! [`router`] builds the route table over [`AppState`]; each group of endpoints lives in
//! [`routes`]; every failure is an [`ApiError`] rendered as JSON. [`serve`] runs it with
//! graceful shutdown. Search and ingest decoding run on blocking threads; live tail reads
//! the indexer's broadcast of fresh events.

pub mod alerts;
pub mod auth;
pub mod error;
pub mod limits;
pub mod predictions;
pub mod router;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod tls;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::Auth;
pub use error::ApiError;
pub use router::{router, router_observed, router_with};
pub use state::{ApiLimits, AppState, ExtraMetrics};

/// Serves the API on a bound listener until `state.shutdown` is cancelled, then lets
/// requests in flight finish.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let shutdown: CancellationToken = state.shutdown.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Serves the API behind `auth`, over TLS when `tls` is given, until `state.shutdown` is
/// cancelled, then lets requests in flight finish.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    auth: Auth,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
) -> std::io::Result<()> {
    serve_observed(listener, state, auth, tls, Default::default()).await
}

/// [`serve_with`], counting requests into `telemetry` (see [`router::router_observed`]).
pub async fn serve_observed(
    listener: TcpListener,
    state: AppState,
    auth: Auth,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    telemetry: std::sync::Arc<telemetry::Telemetry>,
) -> std::io::Result<()> {
    let shutdown: CancellationToken = state.shutdown.clone();
    let app = router::router_observed(state, auth, telemetry);
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        }
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_api;

#[cfg(test)]
mod tests_queries;

#[cfg(test)]
mod tests_openapi;

#[cfg(test)]
mod tests_alerts;
#[cfg(test)]
mod tests_predictions;
#[cfg(test)]
mod tests_window;
