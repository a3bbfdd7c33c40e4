//! The collector's own telemetry, in one place: counters and gauges of what it read,
//! shipped, retried, buffered and dropped, and how far behind each container is.
//!
//! As in Vector's `internal_events`, each thing worth counting is a typed event whose
//! [`emit`](InternalEvent::emit) writes the log line (never above `debug` for per-batch
//! events; drops are summarised at `warn` once per [`DROP_LOG_INTERVAL`]) and bumps the
//! metric, so the two never disagree.
//!
//! The counters are process-wide ([`render_prometheus`] serves them, `shiplog collect
//! --metrics-listen` exposes them on `/metrics`) and [`ship_periodically`] sends them to
//! the indexer as metric events of service `shiplog`.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `shiplog_collector_lines_read_total` | counter | events read from the sources |
//! | `shiplog_collector_bytes_read_total` | counter | message bytes of those events |
//! | `shiplog_collector_batches_sent_total` | counter | batches the receiver acknowledged |
//! | `shiplog_collector_events_sent_total` | counter | events in those batches |
//! | `shiplog_collector_events_duplicate_total` | counter | events the receiver already had |
//! | `shiplog_collector_send_retries_total` | counter | failed sends that were retried |
//! | `shiplog_collector_batches_buffered_total` | counter | batches written to the disk buffer |
//! | `shiplog_collector_buffer_bytes` | gauge | bytes in the disk buffer |
//! | `shiplog_collector_buffer_batches` | gauge | batches in the disk buffer |
//! | `shiplog_collector_events_dropped_total{reason}` | counter | events lost, by reason |
//! | `shiplog_collector_lag_seconds{container}` | gauge | now − time of the last shipped line |
//! | `shiplog_collector_rotation_checks_total` | counter | reads of what a followed log may have skipped at a rotation |
//! | `shiplog_collector_rotation_lines_recovered_total` | counter | lines those reads found that the followed log had skipped |
//! | `shiplog_collector_log_gaps_total` | counter | gaps: lines Docker deleted by rotation before they could be read |
//! | `shiplog_collector_lines_lost_total` | counter | lines in those gaps (estimated from the rate around them) |
//! | `shiplog_collector_predictions_total` | counter | JSON lines of prediction containers read as predictions |
//! | `shiplog_collector_predictions_malformed_total` | counter | such lines kept as logs for lacking a required key |
//! | `shiplog_collector_predictions_redacted_total` | counter | events of prediction containers a `[predictions]` rule changed |

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use shiplog_core::{Event, EventId, Kind, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

use crate::checkpoint::SourcePosition;
use crate::sources::{EventSender, SourceEvent};

/// Drops are logged at most once per this interval (with the count since the last line).
pub const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Containers tracked for lag; past this, the one shipped longest ago is forgotten.
const MAX_LAG_CONTAINERS: usize = 4096;
/// The service name of the collector's own metric events.
pub const SERVICE: &str = "shiplog";

/// Why events were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The disk buffer was full and its policy is `drop_newest`.
    BufferFull,
    /// The receiver refused the batch as malformed.
    Rejected,
    /// Still undeliverable when the shutdown grace period ran out.
    Abandoned,
    /// A buffered batch could not be read back or written.
    BufferError,
}

impl DropReason {
    const ALL: [DropReason; 4] = [
        DropReason::BufferFull,
        DropReason::Rejected,
        DropReason::Abandoned,
        DropReason::BufferError,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::Rejected => "rejected",
            DropReason::Abandoned => "abandoned",
            DropReason::BufferError => "buffer_error",
        }
    }
}

/// The process-wide counters.
#[derive(Debug, Default)]
struct Telemetry {
    lines_read: AtomicU64,
    bytes_read: AtomicU64,
    batches_sent: AtomicU64,
    events_sent: AtomicU64,
    events_duplicate: AtomicU64,
    send_retries: AtomicU64,
    batches_buffered: AtomicU64,
    buffer_bytes: AtomicU64,
    buffer_batches: AtomicU64,
    dropped: [AtomicU64; 4],
    lag: Mutex<LagBook>,
    drop_log: Mutex<DropLog>,
    predictions: AtomicU64,
    predictions_malformed: AtomicU64,
    predictions_redacted: AtomicU64,
    malformed_log: Mutex<MalformedLog>,
    rotation_checks: AtomicU64,
    rotation_recovered: AtomicU64,
    log_gaps: AtomicU64,
    lines_lost: AtomicU64,
}

/// Malformed predictions not reported yet, so a model server writing nothing but
/// malformed records is one warning per interval, not one per line.
#[derive(Debug, Default)]
struct MalformedLog {
    last: Option<Instant>,
    unlogged: u64,
}

/// Per container: its name and the time of its last shipped line.
#[derive(Debug, Default)]
struct LagBook {
    names: HashMap<String, String>,
    shipped: HashMap<String, Timestamp>,
}

/// Drops not logged yet, so a storm of drops is one line per interval.
#[derive(Debug, Default)]
struct DropLog {
    last: Option<Instant>,
    unlogged: HashMap<&'static str, u64>,
}

static TELEMETRY: LazyLock<Telemetry> = LazyLock::new(Telemetry::default);

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A thing that happened inside the collector: logs it and counts it.
pub trait InternalEvent {
    /// Writes the log line (if any) and updates the metrics.
    fn emit(self);
}

/// Events read from the sources, on their way to the batcher.
#[derive(Debug, Clone, Copy)]
pub struct EventsReceived {
    /// How many.
    pub count: usize,
    /// Their message bytes.
    pub bytes: usize,
}

impl InternalEvent for EventsReceived {
    fn emit(self) {
        trace!(count = self.count, bytes = self.bytes, "events received");
        add(&TELEMETRY.lines_read, self.count as u64);
        add(&TELEMETRY.bytes_read, self.bytes as u64);
    }
}

/// A batch the receiver acknowledged, with the positions it covered.
#[derive(Debug, Clone, Copy)]
pub struct BatchSent<'a> {
    /// Events in it.
    pub events: usize,
    /// Events the receiver already had.
    pub duplicates: usize,
    /// Whether it came from the disk buffer.
    pub from_buffer: bool,
    /// Where its events end in their sources (for lag).
    pub positions: &'a [SourcePosition],
}

impl InternalEvent for BatchSent<'_> {
    fn emit(self) {
        debug!(
            events = self.events,
            duplicates = self.duplicates,
            from_buffer = self.from_buffer,
            "batch delivered"
        );
        add(&TELEMETRY.batches_sent, 1);
        add(&TELEMETRY.events_sent, self.events as u64);
        add(&TELEMETRY.events_duplicate, self.duplicates as u64);
        if self.positions.is_empty() {
            return;
        }
        let mut book = TELEMETRY.lag.lock().unwrap_or_else(|e| e.into_inner());
        for p in self.positions {
            let last = book
                .shipped
                .entry(p.container_id.to_string())
                .or_insert(p.position.ts);
            *last = (*last).max(p.position.ts);
        }
        if book.shipped.len() > MAX_LAG_CONTAINERS
            && let Some(stalest) = book
                .shipped
                .iter()
                .min_by_key(|(_, ts)| **ts)
                .map(|(id, _)| id.clone())
        {
            book.shipped.remove(&stalest);
            book.names.remove(&stalest);
        }
    }
}

/// A send that failed and will be retried.
#[derive(Debug, Clone, Copy)]
pub struct SendRetried<'a> {
    /// Attempts so far.
    pub attempt: u64,
    /// What went wrong.
    pub error: &'a str,
}

impl InternalEvent for SendRetried<'_> {
    fn emit(self) {
        debug!(attempt = self.attempt, error = %self.error, "batch send failed; retrying");
        add(&TELEMETRY.send_retries, 1);
    }
}

/// A batch written to the disk buffer.
#[derive(Debug, Clone, Copy)]
pub struct BatchBuffered {
    /// Events in it.
    pub events: usize,
    /// Encoded bytes.
    pub bytes: usize,
}

impl InternalEvent for BatchBuffered {
    fn emit(self) {
        debug!(
            events = self.events,
            bytes = self.bytes,
            "batch written to the disk buffer"
        );
        add(&TELEMETRY.batches_buffered, 1);
    }
}

/// Events lost: counted at once, logged at `warn` at most once per [`DROP_LOG_INTERVAL`].
#[derive(Debug, Clone, Copy)]
pub struct EventsDropped<'a> {
    /// How many.
    pub count: usize,
    /// Why.
    pub reason: DropReason,
    /// Detail for the debug line.
    pub detail: &'a str,
}

impl InternalEvent for EventsDropped<'_> {
    fn emit(self) {
        let index = DropReason::ALL
            .iter()
            .position(|r| *r == self.reason)
            .expect("every reason is listed");
        add(&TELEMETRY.dropped[index], self.count as u64);
        debug!(events = self.count, reason = self.reason.as_str(), detail = %self.detail, "events dropped");
        let mut log = TELEMETRY.drop_log.lock().unwrap_or_else(|e| e.into_inner());
        *log.unlogged.entry(self.reason.as_str()).or_default() += self.count as u64;
        let due = log.last.is_none_or(|t| t.elapsed() >= DROP_LOG_INTERVAL);
        if due {
            log.last = Some(Instant::now());
            for (reason, events) in log.unlogged.drain() {
                warn!(
                    events,
                    reason,
                    "events dropped since the last report; see shiplog_collector_events_dropped_total"
                );
            }
        }
    }
}

/// A JSON line of a prediction container, read as a prediction or kept as a malformed one.
#[derive(Debug, Clone, Copy)]
pub struct PredictionRead<'a> {
    /// Why it is malformed; `None` for a well-formed prediction.
    pub malformed: Option<&'a str>,
    /// The container it came from.
    pub container: &'a str,
}

impl InternalEvent for PredictionRead<'_> {
    fn emit(self) {
        let Some(reason) = self.malformed else {
            add(&TELEMETRY.predictions, 1);
            return;
        };
        add(&TELEMETRY.predictions_malformed, 1);
        debug!(container = %self.container, reason, "malformed prediction kept as a log");
        let mut log = TELEMETRY
            .malformed_log
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        log.unlogged += 1;
        if log.last.is_none_or(|t| t.elapsed() >= DROP_LOG_INTERVAL) {
            log.last = Some(Instant::now());
            warn!(
                events = log.unlogged,
                container = %self.container,
                last_reason = reason,
                "malformed predictions kept as logs since the last report (fields._prediction_error holds each reason); see shiplog_collector_predictions_malformed_total"
            );
            log.unlogged = 0;
        }
    }
}

/// An event of a prediction container that a `[predictions]` redaction changed.
#[derive(Debug, Clone, Copy)]
pub struct PredictionRedacted {
    /// Whether it was a prediction (else a log of that container).
    pub prediction: bool,
}

impl InternalEvent for PredictionRedacted {
    fn emit(self) {
        trace!(
            prediction = self.prediction,
            "prediction container event redacted"
        );
        add(&TELEMETRY.predictions_redacted, 1);
    }
}

/// What a followed log skipped at a rotation, read back from the engine's files.
#[derive(Debug, Clone, Copy)]
pub struct RotationChecked<'a> {
    /// The container.
    pub container: &'a str,
    /// Lines found that the followed log had skipped.
    pub recovered: u64,
}

impl InternalEvent for RotationChecked<'_> {
    fn emit(self) {
        if self.recovered > 0 {
            info!(container = %self.container, lines = self.recovered, "read back lines the engine's followed log skipped at a rotation");
        } else {
            debug!(container = %self.container, "checked a jump in a followed log: nothing skipped");
        }
        add(&TELEMETRY.rotation_checks, 1);
        add(&TELEMETRY.rotation_recovered, self.recovered);
    }
}

/// Lines Docker deleted by rotation before they could be read: one warning per gap.
#[derive(Debug, Clone, Copy)]
pub struct LinesLost<'a> {
    /// The container.
    pub container: &'a str,
    /// Estimated lines (0: unknown).
    pub estimate: u64,
    /// Docker's time of the last line read before the gap.
    pub after: Timestamp,
    /// Docker's time of the first line stored after it.
    pub before: Timestamp,
}

impl InternalEvent for LinesLost<'_> {
    fn emit(self) {
        warn!(
            container = %self.container,
            lines_estimate = self.estimate,
            after = %self.after.to_rfc3339(),
            before = %self.before.to_rfc3339(),
            "lines of this container were deleted by Docker's log rotation before they could be read (a gap event marks them in its log); raise the container's max-size or max-file, or see shiplog_collector_lag_seconds for why reading fell behind"
        );
        add(&TELEMETRY.log_gaps, 1);
        add(&TELEMETRY.lines_lost, self.estimate);
    }
}

/// Gaps reported and lines lost in them so far.
pub fn lines_lost() -> (u64, u64) {
    (get(&TELEMETRY.log_gaps), get(&TELEMETRY.lines_lost))
}

/// Predictions read and malformed ones kept as logs so far.
pub fn predictions() -> (u64, u64) {
    (
        get(&TELEMETRY.predictions),
        get(&TELEMETRY.predictions_malformed),
    )
}

/// Records the names of containers, for the `container` label of lag.
pub fn learn_names<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut book = TELEMETRY.lag.lock().unwrap_or_else(|e| e.into_inner());
    for (id, name) in pairs {
        if !id.is_empty() && !name.is_empty() && !book.names.contains_key(id) {
            book.names.insert(id.to_string(), name.to_string());
        }
    }
}

/// Sets the disk buffer gauges.
pub fn buffer_size(bytes: u64, batches: u64) {
    TELEMETRY.buffer_bytes.store(bytes, Ordering::Relaxed);
    TELEMETRY.buffer_batches.store(batches, Ordering::Relaxed);
}

/// Bytes in the disk buffer now.
pub fn buffer_bytes() -> u64 {
    get(&TELEMETRY.buffer_bytes)
}

/// Events dropped so far for `reason`.
pub fn dropped(reason: DropReason) -> u64 {
    let index = DropReason::ALL
        .iter()
        .position(|r| *r == reason)
        .expect("every reason is listed");
    get(&TELEMETRY.dropped[index])
}

/// One metric sample: name, labels, value, unit.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    unit: &'static str,
    labels: Vec<(&'static str, String)>,
    value: f64,
}

/// Every metric now.
fn samples(now: Timestamp) -> Vec<Sample> {
    let t = &*TELEMETRY;
    let counter = |name, help, unit, value: u64| Sample {
        name,
        help,
        kind: "counter",
        unit,
        labels: Vec::new(),
        value: value as f64,
    };
    let mut out = vec![
        counter(
            "shiplog_collector_lines_read_total",
            "Events read from the sources.",
            "count",
            get(&t.lines_read),
        ),
        counter(
            "shiplog_collector_bytes_read_total",
            "Message bytes of the events read.",
            "bytes",
            get(&t.bytes_read),
        ),
        counter(
            "shiplog_collector_batches_sent_total",
            "Batches the receiver acknowledged.",
            "count",
            get(&t.batches_sent),
        ),
        counter(
            "shiplog_collector_events_sent_total",
            "Events in acknowledged batches.",
            "count",
            get(&t.events_sent),
        ),
        counter(
            "shiplog_collector_events_duplicate_total",
            "Events the receiver already had.",
            "count",
            get(&t.events_duplicate),
        ),
        counter(
            "shiplog_collector_send_retries_total",
            "Failed sends that were retried.",
            "count",
            get(&t.send_retries),
        ),
        counter(
            "shiplog_collector_batches_buffered_total",
            "Batches written to the disk buffer.",
            "count",
            get(&t.batches_buffered),
        ),
        counter(
            "shiplog_collector_rotation_checks_total",
            "Reads of what a followed log may have skipped at a log rotation.",
            "count",
            get(&t.rotation_checks),
        ),
        counter(
            "shiplog_collector_rotation_lines_recovered_total",
            "Lines those reads found that the followed log had skipped.",
            "count",
            get(&t.rotation_recovered),
        ),
        counter(
            "shiplog_collector_log_gaps_total",
            "Gaps: lines Docker deleted by log rotation before they could be read.",
            "count",
            get(&t.log_gaps),
        ),
        counter(
            "shiplog_collector_lines_lost_total",
            "Lines in those gaps, estimated from the rate the container wrote at around them.",
            "count",
            get(&t.lines_lost),
        ),
        counter(
            "shiplog_collector_predictions_total",
            "JSON lines of prediction containers read as predictions.",
            "count",
            get(&t.predictions),
        ),
        counter(
            "shiplog_collector_predictions_malformed_total",
            "JSON lines of prediction containers kept as logs for lacking a required key.",
            "count",
            get(&t.predictions_malformed),
        ),
        counter(
            "shiplog_collector_predictions_redacted_total",
            "Events of prediction containers a [predictions] redaction changed.",
            "count",
            get(&t.predictions_redacted),
        ),
        Sample {
            kind: "gauge",
            ..counter(
                "shiplog_collector_buffer_bytes",
                "Bytes in the disk buffer.",
                "bytes",
                get(&t.buffer_bytes),
            )
        },
        Sample {
            kind: "gauge",
            ..counter(
                "shiplog_collector_buffer_batches",
                "Batches in the disk buffer.",
                "count",
                get(&t.buffer_batches),
            )
        },
    ];
    for (reason, count) in DropReason::ALL.iter().zip(&t.dropped) {
        out.push(Sample {
            labels: vec![("reason", reason.as_str().to_string())],
            ..counter(
                "shiplog_collector_events_dropped_total",
                "Events lost, by reason.",
                "count",
                get(count),
            )
        });
    }
    let book = t.lag.lock().unwrap_or_else(|e| e.into_inner());
    let mut lags: Vec<(String, f64)> = book
        .shipped
        .iter()
        .map(|(id, ts)| {
            let name = book
                .names
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.chars().take(12).collect());
            let lag = (now.as_nanos() - ts.as_nanos()).max(0) as f64 / 1e9;
            (name, lag)
        })
        .collect();
    lags.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, lag) in lags {
        out.push(Sample {
            name: "shiplog_collector_lag_seconds",
            help: "Now minus the source time of the container's last shipped line.",
            kind: "gauge",
            unit: "seconds",
            labels: vec![("container", name)],
            value: lag,
        });
    }
    out
}

/// Every metric in the Prometheus text exposition format (version 0.0.4).
pub fn render_prometheus() -> String {
    let mut out = String::new();
    let mut last_name = "";
    for s in samples(Timestamp::now()) {
        if s.name != last_name {
            let _ = writeln!(out, "# HELP {} {}", s.name, s.help);
            let _ = writeln!(out, "# TYPE {} {}", s.name, s.kind);
            last_name = s.name;
        }
        out.push_str(s.name);
        if !s.labels.is_empty() {
            out.push('{');
            for (i, (key, value)) in s.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{key}=\"{}\"", escape_label(value));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", s.value);
    }
    out
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every metric as metric events of service [`SERVICE`] from `node` at `ts`; the name
/// drops the `shiplog_` prefix and carries its labels in `fields` (lag's container only
/// there, so a search by `container_name` finds that container's own lines only).
pub fn metric_events(node: &str, ts: Timestamp) -> Vec<Event> {
    samples(ts)
        .into_iter()
        .map(|s| {
            let name = s.name.trim_start_matches("shiplog_").to_string();
            let mut fields = Map::new();
            fields.insert("metric".into(), Value::String(name.clone()));
            let mut key = name.clone();
            for (label, value) in &s.labels {
                fields.insert((*label).to_string(), Value::String(value.clone()));
                let _ = write!(key, ",{label}={value}");
            }
            Event {
                id: EventId::for_source(node, SERVICE, &key, ts, 0),
                ts,
                received: Some(ts),
                kind: Kind::Metric,
                node: node.to_string(),
                service: SERVICE.to_string(),
                fields,
                name: Some(name),
                value: Some(s.value),
                unit: Some(s.unit.to_string()),
                ..Event::default()
            }
        })
        .collect()
}

/// Sends [`metric_events`] into the pipeline every `interval` until `shutdown`; zero
/// turns it off. Sends wait while the channel is full, like every source.
pub async fn ship_periodically(
    node: String,
    interval: Duration,
    tx: EventSender,
    shutdown: CancellationToken,
) {
    if interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for event in metric_events(&node, Timestamp::now()) {
            tokio::select! {
                sent = tx.send(SourceEvent::from(event)) => if sent.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shiplog_core::Stream;

    use super::*;
    use crate::checkpoint::Position;

    #[test]
    fn renders_prometheus_text_and_metric_events() {
        EventsReceived {
            count: 3,
            bytes: 30,
        }
        .emit();
        learn_names([("telemetry-test-id", "web \"1\"")]);
        let positions = [SourcePosition {
            container_id: Arc::from("telemetry-test-id"),
            stream: Stream::Stdout,
            position: Position {
                ts: Timestamp::now().offset(-2_000_000_000),
                seq: 0,
            },
        }];
        BatchSent {
            events: 3,
            duplicates: 0,
            from_buffer: false,
            positions: &positions,
        }
        .emit();
        EventsDropped {
            count: 2,
            reason: DropReason::BufferFull,
            detail: "test",
        }
        .emit();
        let text = render_prometheus();
        assert!(
            text.contains("# TYPE shiplog_collector_lines_read_total counter"),
            "{text}"
        );
        assert!(
            text.contains("shiplog_collector_events_dropped_total{reason=\"buffer_full\"}"),
            "{text}"
        );
        let lag_line = text
            .lines()
            .find(|l| l.starts_with("shiplog_collector_lag_seconds{container=\"web \\\"1\\\"\"}"))
            .unwrap_or_else(|| panic!("{text}"));
        let lag: f64 = lag_line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(lag >= 2.0, "{lag_line}");
        assert!(dropped(DropReason::BufferFull) >= 2);

        let events = metric_events("node-1", Timestamp(5));
        let read = events
            .iter()
            .find(|e| e.name.as_deref() == Some("collector_lines_read_total"))
            .unwrap();
        assert_eq!(read.kind, Kind::Metric);
        assert_eq!(read.service, "shiplog");
        assert!(read.value.unwrap() >= 3.0);
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), events.len(), "every sample has its own id");
    }
}
