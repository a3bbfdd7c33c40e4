//! Request counters and latency histograms for `/metrics`, recorded by a middleware per
//! route template (`/{index}/_bulk`, not the path itself, so label sets stay bounded).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Upper bounds of the latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Count per bucket (not cumulative), then one for `+Inf`.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

/// Told of every answered request (route template, method, status, seconds), after the
/// counters are updated: how the binary feeds an exporter's histograms without this
/// crate knowing about the exporter.
pub type Observer = Box<dyn Fn(&str, &str, u16, f64) + Send + Sync>;

/// Target of the per-request span, so subscribers can pick it out (stderr logging leaves it
/// out of its lines; OTLP export turns it into a server span).
pub const REQUEST_SPAN_TARGET: &str = "shiplog_query::request";

/// What the HTTP layer counts.
#[derive(Default)]
pub struct Telemetry {
    inner: Mutex<Inner>,
    observer: OnceLock<Observer>,
    guards: OnceLock<Arc<crate::limits::Guards>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("inner", &self.inner)
            .field("observed", &self.observer.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Installs the request observer; only the first call has an effect.
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// Lets [`Telemetry::tail_subscribers`] and [`Telemetry::requests_in_flight`] read the
    /// router's limits; set by the router that owns both.
    pub fn watch(&self, guards: Arc<crate::limits::Guards>) {
        let _ = self.guards.set(guards);
    }

    /// Live tail streams open now (0 before a router is built).
    pub fn tail_subscribers(&self) -> usize {
        self.guards.get().map_or(0, |g| g.tail_subscribers())
    }

    /// Requests holding a slot now (0 before a router is built).
    pub fn requests_in_flight(&self) -> usize {
        self.guards.get().map_or(0, |g| g.requests_in_flight())
    }

    /// Answered requests so far: route template, method, status and count.
    pub fn requests(&self) -> Vec<(String, String, u16, u64)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .requests
            .iter()
            .map(|((route, method, status), n)| (route.clone(), method.clone(), *status, *n))
            .collect()
    }

    /// Counts one answered request.
    pub fn record(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.count(route, method, status, seconds);
        if let Some(observer) = self.observer.get() {
            observer(route, method, status, seconds);
        }
    }

    fn count(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *inner
            .requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let h = inner.latency.entry(route.to_string()).or_default();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        h.buckets[i] += 1;
        h.sum += seconds;
        h.count += 1;
    }

    /// Appends the request families in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        family(
            out,
            "shiplog_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status.",
        );
        for ((route, method, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "shiplog_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        family(
            out,
            "shiplog_http_request_duration_seconds",
            "histogram",
            "Time to answer a request (to the first byte for streams), by route template.",
        );
        for (route, h) in &inner.latency {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i];
                let _ = writeln!(
                    out,
                    "shiplog_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "shiplog_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "shiplog_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "shiplog_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: times each request and counts its answer.
pub async fn track(State(t): State<Arc<Telemetry>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().as_str().to_string();
    // One span per request, named like OpenTelemetry's HTTP server spans ("GET /route"),
    // so events logged while handling it are grouped under it when spans are exported.
    let span = tracing::info_span!(
        target: REQUEST_SPAN_TARGET,
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.route = %route,
        http.request.method = %method,
        http.response.status_code = tracing::field::Empty,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    // i64: OpenTelemetry has no unsigned integers, and a u64 would arrive as a string.
    span.record("http.response.status_code", i64::from(status));
    t.record(&route, &method, status, started.elapsed().as_secs_f64());
    resp
}
