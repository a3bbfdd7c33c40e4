//! shiplog's own traces and metrics over OTLP/HTTP (protobuf), when `[telemetry]
//! otlp_endpoint` is set.
//!
//! Traces: the `tracing` spans of shiplog's own crates (one per API request, from the
//! query service's middleware, plus whatever is logged inside them) go through
//! `tracing-opentelemetry` to a batch span processor. Metrics: the figures `/metrics` shows
//! (requests and latencies per route, ingest counters, index and WAL sizes, tail
//! subscribers), read by observable instruments from the same counters, sent by a periodic
//! reader.
//!
//! Both exporters run on threads of their own with a blocking HTTP client: recording a span
//! or a latency on the async runtime only queues it (the span queue is bounded and drops
//! when full). A receiver that is down costs one warning a minute, and shutdown waits at
//! most [`SHUTDOWN_TIMEOUT`] for the last export.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use shiplog_indexer::Indexer;
use shiplog_query::telemetry::{LATENCY_BUCKETS, Telemetry};
use tracing::span;
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};

use crate::config::TelemetrySection;

/// Longest one HTTP export may take before it counts as failed. A receiver that accepts
/// connections but never answers holds an exporter thread this long, never a request.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest shutdown waits for the last spans and metrics to leave.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Spans are sent at least this often (sooner when a batch fills, or every
/// `export_interval` when that is shorter).
const MAX_SPAN_DELAY: Duration = Duration::from_secs(5);

/// How often a failing export may be reported.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Spans held while the receiver is slow or down; past it new spans are dropped.
const SPAN_QUEUE: usize = 4096;

type Inner = Box<dyn Layer<Registry> + Send + Sync>;

/// The OpenTelemetry layer, installed once export starts. The subscriber is set up before
/// the config file is read, so it holds a [`Slot`] that forwards here.
static OTEL_LAYER: OnceLock<Inner> = OnceLock::new();

/// A `tracing` layer that forwards shiplog's own spans and events to the OpenTelemetry
/// layer once [`start`] has installed it, and does nothing before (or without) it.
///
/// Other crates' spans (hyper, reqwest: the exporter's own HTTP calls among them) are left
/// out so that exporting never produces more to export.
#[derive(Debug, Default, Clone, Copy)]
pub struct Slot;

fn ours(meta: &tracing::Metadata<'_>) -> bool {
    let t = meta.target();
    t == "shiplog" || t.starts_with("shiplog::") || t.starts_with("shiplog_")
}

impl Slot {
    fn inner(&self) -> Option<&'static Inner> {
        OTEL_LAYER.get()
    }

    fn ours_by_id(id: &span::Id, ctx: &Context<'_, Registry>) -> bool {
        ctx.metadata(id).is_some_and(ours)
    }
}

impl Layer<Registry> for Slot {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = self.inner()
            && ours(attrs.metadata())
        {
            l.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, Registry>) {
        if let Some(l) = self.inner()
            && Self::ours_by_id(id, &ctx)
        {
            l.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = self.inner()
            && Self::ours_by_id(id, &ctx)
        {
            l.on_follows_from(id, follows, ctx);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, Registry>) {
        if let Some(l) = self.inner()
            && ours(event.metadata())
        {
            l.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = self.inner()
            && Self::ours_by_id(id, &ctx)
        {
            l.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = self.inner()
            && Self::ours_by_id(id, &ctx)
        {
            l.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, Registry>) {
        if let Some(l) = self.inner()
            && Self::ours_by_id(&id, &ctx)
        {
            l.on_close(id, ctx);
        }
    }
}

/// Running exporters; [`Otel::shutdown`] flushes them.
pub struct Otel {
    endpoint: String,
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

/// Starts both exporters when `section.otlp_endpoint` is set, `None` otherwise. Call it
/// outside the async runtime: the blocking HTTP client has a runtime of its own.
pub fn start(section: &TelemetrySection) -> anyhow::Result<Option<Otel>> {
    let Some(endpoint) = &section.otlp_endpoint else {
        return Ok(None);
    };
    let resource = Resource::builder()
        .with_service_name(section.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();

    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.signal_url("traces"))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("cannot set up the OTLP trace exporter")?;
    let spans = Reported::new(spans, endpoint.signal_url("traces"));
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(SPAN_QUEUE)
        .with_scheduled_delay(section.export_interval.0.min(MAX_SPAN_DELAY))
        .build();
    let tracer = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(spans)
                .with_batch_config(batch)
                .build(),
        )
        .with_resource(resource.clone())
        .build();

    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.signal_url("metrics"))
        .with_timeout(EXPORT_TIMEOUT)
        // Cumulative, like the Prometheus counters these mirror.
        .with_temporality(Temporality::Cumulative)
        .build()
        .context("cannot set up the OTLP metric exporter")?;
    let metrics = Reported::new(metrics, endpoint.signal_url("metrics"));
    let reader = PeriodicReader::builder(metrics)
        .with_interval(section.export_interval.0.max(Duration::from_millis(100)))
        .build();
    let meter = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();

    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer.tracer("shiplog"))
        // Thread names and ids say little about a request served on a pool.
        .with_threads(false);
    if OTEL_LAYER.set(Box::new(layer)).is_err() {
        anyhow::bail!("OTLP export is already running in this process");
    }
    let endpoint = endpoint.signal_url("{traces,metrics}");
    tracing::info!(endpoint = %endpoint, "exporting shiplog's own traces and metrics over OTLP");
    Ok(Some(Otel {
        endpoint,
        tracer,
        meter,
    }))
}

impl Otel {
    /// Registers the metrics: the request figures of `telemetry` (the query service's
    /// counters) and the indexer's. Observable instruments are read on the exporter's
    /// thread at each export; the latency histogram is fed per request.
    pub fn watch(&self, telemetry: &Arc<Telemetry>, indexer: &Arc<Indexer>) {
        let meter = self.meter.meter("shiplog");
        let t = telemetry.clone();
        meter
            .u64_observable_counter("shiplog.http.requests")
            .with_description("HTTP requests answered, by route template, method and status.")
            .with_callback(move |obs| {
                for (route, method, status, n) in t.requests() {
                    obs.observe(
                        n,
                        &[
                            KeyValue::new("http.route", route),
                            KeyValue::new("http.request.method", method),
                            KeyValue::new("http.response.status_code", i64::from(status)),
                        ],
                    );
                }
            })
            .build();
        let latency = meter
            .f64_histogram("shiplog.http.request.duration")
            .with_unit("s")
            .with_description(
                "Time to answer a request (to the first byte for streams), by route template.",
            )
            .with_boundaries(LATENCY_BUCKETS.to_vec())
            .build();
        telemetry.observe(Box::new(move |route, _method, _status, seconds| {
            latency.record(seconds, &[KeyValue::new("http.route", route.to_string())]);
        }));
        let t = telemetry.clone();
        meter
            .u64_observable_gauge("shiplog.http.requests_in_flight")
            .with_description(
                "Requests being served now (tail streams and monitoring not counted).",
            )
            .with_callback(move |obs| obs.observe(t.requests_in_flight() as u64, &[]))
            .build();
        let t = telemetry.clone();
        meter
            .u64_observable_gauge("shiplog.tail.subscribers")
            .with_description("Live tail streams open.")
            .with_callback(move |obs| obs.observe(t.tail_subscribers() as u64, &[]))
            .build();
        type Stat = fn(&shiplog_indexer::StatsSnapshot) -> u64;
        let counters: [(&'static str, &'static str, &'static str, Stat); 4] = [
            (
                "shiplog.ingest.events",
                "Events stored since start.",
                "{event}",
                |s| s.events,
            ),
            (
                "shiplog.ingest.bytes",
                "Bytes of event JSON taken in since start.",
                "By",
                |s| s.bytes_in,
            ),
            (
                "shiplog.ingest.duplicates",
                "Events dropped as duplicates since start.",
                "{event}",
                |s| s.duplicates,
            ),
            (
                "shiplog.index.commits",
                "Index commits since start.",
                "{commit}",
                |s| s.commits,
            ),
        ];
        for (name, help, unit, read) in counters {
            let ix = indexer.clone();
            meter
                .u64_observable_counter(name)
                .with_description(help)
                .with_unit(unit)
                .with_callback(move |obs| obs.observe(read(&ix.stats()), &[]))
                .build();
        }
        let ix = indexer.clone();
        meter
            .u64_observable_gauge("shiplog.wal.size")
            .with_description("Bytes in write-ahead log segment files.")
            .with_unit("By")
            .with_callback(move |obs| obs.observe(ix.stats().wal_bytes, &[]))
            .build();
        let ix = indexer.clone();
        meter
            .u64_observable_gauge("shiplog.index.size")
            .with_description("Bytes on disk of each day index.")
            .with_unit("By")
            // Reads the per-day sizes the store keeps; runs on the exporter's thread.
            .with_callback(move |obs| {
                for (day, bytes) in ix.day_sizes() {
                    obs.observe(bytes, &[KeyValue::new("day", day)]);
                }
            })
            .build();
    }

    /// Sends what is left (spans queued, a last metrics export), waiting at most
    /// [`SHUTDOWN_TIMEOUT`]; a receiver that does not answer by then loses it. Call it
    /// outside the async runtime.
    pub fn shutdown(self) {
        let (done, wait) = std::sync::mpsc::channel();
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        let tracer = self.tracer;
        let meter = self.meter;
        // One thread each: a stuck trace export must not eat the metrics' time.
        for part in [
            Box::new(move || tracer.shutdown_with_timeout(SHUTDOWN_TIMEOUT))
                as Box<dyn FnOnce() -> OTelSdkResult + Send>,
            Box::new(move || meter.shutdown_with_timeout(SHUTDOWN_TIMEOUT)),
        ] {
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name("shiplog-otel-stop".into())
                .spawn(move || {
                    let _ = done.send(part());
                });
            if spawned.is_err() {
                tracing::warn!("cannot start a thread to flush OTLP exports; they are dropped");
                return;
            }
        }
        drop(done);
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match wait.recv_timeout(left) {
                Ok(Ok(())) => {}
                // Failures were already reported by the exporter; shutting down twice or
                // with nothing left is not worth a line.
                Ok(Err(_)) => {}
                Err(_) => {
                    tracing::warn!(
                        endpoint = %self.endpoint,
                        "OTLP receiver did not take the last spans and metrics within {:?}; they are dropped",
                        SHUTDOWN_TIMEOUT
                    );
                    return;
                }
            }
        }
    }
}

/// Failures of one signal's exports, reported at most once per [`WARN_EVERY`].
#[derive(Debug)]
struct Health {
    url: String,
    last_warning: Mutex<Option<Instant>>,
    failed_since_warning: AtomicU64,
    failing: std::sync::atomic::AtomicBool,
}

impl Health {
    fn report(&self, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(url = %self.url, "OTLP export works again");
                }
            }
            Err(e) => {
                self.failing.store(true, Ordering::Relaxed);
                let failed = self.failed_since_warning.fetch_add(1, Ordering::Relaxed) + 1;
                let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                    *last = Some(Instant::now());
                    self.failed_since_warning.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        url = %self.url,
                        failed,
                        error = %e,
                        "OTLP export failed; its data is dropped and requests are not held up (this warning repeats at most every {}s while exports fail)",
                        WARN_EVERY.as_secs()
                    );
                }
            }
        }
    }
}

/// An exporter whose failures become rate-limited warnings (the SDK's own logging is off).
#[derive(Debug)]
struct Reported<E> {
    inner: E,
    health: Health,
}

impl<E> Reported<E> {
    fn new(inner: E, url: String) -> Self {
        Reported {
            inner,
            health: Health {
                url,
                last_warning: Mutex::new(None),
                failed_since_warning: AtomicU64::new(0),
                failing: Default::default(),
            },
        }
    }
}

impl<E: SpanExporter> SpanExporter for Reported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.health.report(&result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Reported<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.health.report(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
