//! What every route shares.

use std::sync::Arc;
use std::time::Duration;

use shiplog_core::codec::DecodeLimits;
use shiplog_indexer::Indexer;
use tokio_util::sync::CancellationToken;

/// Size limits of the HTTP surface.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Largest request body as sent (compressed), in bytes.
    pub max_body_bytes: usize,
    /// Caps applied while decoding an ingest batch.
    pub decode: DecodeLimits,
    /// Largest `limit` a search may ask for.
    pub max_search_limit: usize,
    /// Longest a search or aggregation may run before the answer is 503 `query_timeout`.
    pub query_timeout: Duration,
    /// Requests served at once (tail streams and monitoring not counted); past it, 503
    /// `overloaded` with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Live tails open at once; past it, 503 `too_many_subscribers`.
    pub max_tail_subscribers: usize,
    /// Queries (searches, aggregations) whose work runs at once.
    pub max_concurrent_queries: usize,
    /// Queries that may wait for a running one to finish; past it, 503 `overloaded`.
    pub max_queued_queries: usize,
    /// Most bytes of events one search page holds; a page that would pass it stops short
    /// with `truncated` and a cursor to the rest.
    pub max_response_bytes: usize,
    /// Most bytes that search answers being built or sent may hold at once, all clients
    /// together; past it, 503 `overloaded`.
    pub max_response_memory: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_body_bytes: 16 * 1024 * 1024,
            decode: DecodeLimits::default(),
            max_search_limit: shiplog_indexer::search::MAX_LIMIT,
            query_timeout: Duration::from_secs(30),
            max_concurrent_requests: 512,
            max_tail_subscribers: 256,
            max_concurrent_queries: default_concurrent_queries(),
            max_queued_queries: 256,
            max_response_bytes: 32 * 1024 * 1024,
            max_response_memory: 256 * 1024 * 1024,
        }
    }
}

/// Two queries per core: enough to overlap a query's reads with another's CPU work, few
/// enough that a storm of expensive ones leaves the machine able to answer.
fn default_concurrent_queries() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// Shared state of the router.
#[derive(Clone)]
pub struct AppState {
    /// The store behind every route.
    pub indexer: Arc<Indexer>,
    /// Size limits.
    pub limits: ApiLimits,
    /// Cancelled when the server stops, so endless streams (tail) end and shutdown drains.
    pub shutdown: CancellationToken,
    /// The alert engine, when the node runs one (`/api/v1/alerts` answers 503 without).
    pub alerts: Option<Arc<crate::alerts::Alerts>>,
    /// Prediction mapping, redaction, counters and the audit access record.
    pub predictions: Arc<crate::predictions::PredictionService>,
    /// More Prometheus text appended to `GET /metrics`: the counters of what else runs in
    /// the process (the collector under `shiplog up`), which this crate does not know.
    pub extra_metrics: Option<ExtraMetrics>,
    /// The query slots, made from `limits` on first use (so limits set after
    /// construction count); shared by every clone of the state.
    pub query_slots: Arc<std::sync::OnceLock<crate::limits::QuerySlots>>,
}

/// Renders Prometheus text (whole families: `# HELP`, `# TYPE`, then samples).
pub type ExtraMetrics = Arc<dyn Fn() -> String + Send + Sync>;

impl AppState {
    /// State over an open indexer with default limits. Starts the indexer's service
    /// catalog (see [`Indexer::start_catalog`]) so it is current by the first request.
    pub fn new(indexer: Arc<Indexer>) -> Self {
        indexer.start_catalog();
        let predictions = Arc::new(crate::predictions::PredictionService::new(
            indexer.data_dir(),
            shiplog_core::prediction_config::PredictionRules::default(),
        ));
        AppState {
            predictions,
            indexer,
            limits: ApiLimits::default(),
            shutdown: CancellationToken::new(),
            alerts: None,
            extra_metrics: None,
            query_slots: Default::default(),
        }
    }

    /// The query slots (see [`crate::limits::QuerySlots`]).
    pub fn query_slots(&self) -> &crate::limits::QuerySlots {
        self.query_slots
            .get_or_init(|| crate::limits::QuerySlots::new(&self.limits))
    }
}
