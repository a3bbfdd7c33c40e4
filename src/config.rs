//! The TOML config file: every key optional, defaults that run on a laptop.
//!
//! ```toml
//! data_dir = "./shiplog-data"
//! listen = "127.0.0.1:7070"
//!
//! [docker]
//! enabled = true
//! host = "unix:///var/run/docker.sock"   # default: DOCKER_HOST, then the usual socket
//!
//! [indexer]
//! writer_memory = "256MiB"
//! writer_threads = 2
//! commit_interval = "500ms"
//! queue_batches = 64
//!
//! [collector]
//! batch_max_events = 10000
//! batch_max_bytes = "1MiB"
//! batch_max_age = "100ms"
//! exclude_names = ["^buildkit"]
//! multiline = true
//! multiline_flush_timeout = "50ms"
//! metrics_interval = "10s"
//! buffer_max_bytes = "1GiB"
//! buffer_when_full = "block"
//! buffer_spill_after = "5s"
//! telemetry_interval = "60s"
//! read_from_head = false
//! max_line_bytes = "256KiB"
//! docker_socket_logs = true
//! docker_log_files = true
//!
//! [[collector.parse]]
//! name = "nginx"
//! pattern = '^(?P<client>\S+) \S+ \S+ \[[^\]]+\] "(?P<method>\S+) (?P<path>\S+)'
//! image = "nginx"
//!
//! [[collector.redact]]
//! name = "email"
//! pattern = '[\w.+-]+@[\w-]+\.[\w.]+'
//!
//! [predictions]                         # model containers: JSON lines read as predictions
//! containers = ["^model-"]              # also any container labelled shiplog.predictions=true
//! images = ["^registry.local/models/"]
//! builtin_redactions = ["email", "card"]
//! builtin_action = "mask"
//! hash_key_env = "SHIPLOG_PREDICTIONS_HASH_KEY"
//!
//! [predictions.mapping]
//! request_id = ["request_id", "id", "trace_id"]
//! required = ["model", "request_id"]
//!
//! [[predictions.redact]]
//! name = "customer-email"
//! path = "input.customer.email"
//! action = "hash"
//!
//! [[predictions.redact]]
//! name = "api-key"
//! pattern = 'sk_[A-Za-z0-9]{16,}'
//! action = "drop"
//!
//! [api]
//! max_body = "16MiB"
//! max_decompressed = "64MiB"
//! max_search_limit = 10000
//! query_timeout = "30s"
//! max_concurrent_requests = 512
//! max_tail_subscribers = 256
//! max_concurrent_queries = 4             # default: two per core
//! max_queued_queries = 256
//! max_response = "32MiB"
//! max_response_memory = "256MiB"
//! max_days_per_batch = 32
//! # accept_past = "30d"                # unset: events of any age are accepted
//! # accept_future = "1h"               # unset: events of any future time are accepted
//! allow_unauthenticated = false
//! metrics_auth = false
//! # tls_cert = "/etc/shiplog/cert.pem"
//! # tls_key = "/etc/shiplog/key.pem"
//!
//! [telemetry]                          # shiplog's own traces and metrics over OTLP/HTTP
//! otlp_endpoint = "http://127.0.0.1:4318"   # unset: nothing is exported
//! service_name = "shiplog"
//! export_interval = "10s"                # metrics
//!
//! [[auth.token]]
//! name = "ci"
//! token = "change-me-to-a-long-random-string"
//! roles = ["ingest"]
//!
//! [[auth.token]]
//! name = "oncall"
//! token_sha256 = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
//! roles = ["read", "admin"]
//!
//! [retention]
//! logs = "7d"
//! metrics = "30d"
//! predictions = "400d"
//! max_total_size = "50GiB"
//! interval = "1h"
//!
//! [alerting]
//! repeat_interval = "4h"
//! eval_interval = "1s"
//! external_url = "http://shiplog.internal:7070"
//! queue_batches = 1024
//! max_backoff = "30s"
//!
//! [[alerting.webhook]]
//! name = "oncall"
//! url = "http://127.0.0.1:9000/hook"
//! secret = "change-me"
//! timeout = "5s"
//!
//! [[alerting.alertmanager]]
//! name = "am"
//! url = "http://127.0.0.1:9093"
//! resend_interval = "1m"
//!
//! [[alerting.command]]
//! name = "pager"
//! program = "/usr/local/bin/page-oncall"
//! args = ["--team", "ml"]
//! timeout = "10s"
//!
//! [[alert]]
//! name = "api-error-rate"
//! kind = "ratio"
//! query = "level:error OR level:fatal"
//! window = "1m"
//! threshold = 0.05
//! for = "30s"
//! group_by = ["service"]
//! severity = "critical"
//! min_events = 20
//! labels = { team = "ml" }
//! annotations = { summary = "more than 5% errors" }
//!
//! [[alert]]
//! name = "model-silent"
//! kind = "absence"
//! query = "kind:prediction"
//! window = "5m"
//! group_by = ["model"]
//!
//! [[alert]]
//! name = "slow-predictions"
//! kind = "percentile"
//! query = "kind:prediction"
//! field = "latency_ms"
//! percentile = 99
//! window = "5m"
//! threshold = 250
//! group_by = ["model"]
//! notify = ["oncall", "am"]
//!
//! [[alert]]
//! name = "memory"
//! kind = "metric"
//! metric = "mem_percent"
//! aggregate = "max"
//! window = "2m"
//! threshold = 90
//! group_by = ["container"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use shiplog_core::units::{ByteSize, HumanDuration};

/// Reads HOST:PORT, resolving a host name (`localhost:7070`) to its first address, IPv4
/// first so that `localhost` means the loopback address every client tries first.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    if !text.contains(':') {
        return Err(format!(
            "`{text}` has no port: give HOST:PORT, e.g. 127.0.0.1:7070 or localhost:7070"
        ));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{text}`: {e}; give HOST:PORT, e.g. 127.0.0.1:7070"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

fn listen_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where indexes and state live.
    pub data_dir: PathBuf,
    /// Address of the HTTP API (HOST:PORT; a host name is resolved).
    #[serde(deserialize_with = "listen_addr")]
    pub listen: SocketAddr,
    /// Docker engine access.
    pub docker: DockerSection,
    /// Storage and commits.
    pub indexer: IndexerSection,
    /// Batching of collected events.
    pub collector: CollectorSection,
    /// HTTP limits.
    pub api: ApiSection,
    /// How long data is kept.
    pub retention: RetentionSection,
    /// API tokens.
    pub auth: AuthSection,
    /// Notifiers and alert engine settings.
    pub alerting: shiplog_query::alerts::notify::AlertingSettings,
    /// `[[alert]]` rules (checked with their line by [`parse`]).
    pub alert: Vec<toml::Spanned<shiplog_query::alerts::rule::RuleSpec>>,
    /// The file this config came from, read again when alert rules are reloaded.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// `[predictions]`: which containers write predictions, their key mapping and the
    /// redactions they get before leaving the node (and again at the prediction endpoint).
    pub predictions: shiplog_core::prediction_config::PredictionsConfig,
    /// `[telemetry]`: shiplog's own traces and metrics over OTLP.
    pub telemetry: TelemetrySection,
}

/// `[telemetry]`: shiplog's own traces and metrics, exported over OTLP/HTTP (protobuf)
/// when `otlp_endpoint` is set; without it nothing is started.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySection {
    /// Base URL of an OTLP/HTTP receiver (`/v1/traces` and `/v1/metrics` are added).
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// How often metrics are exported.
    pub export_interval: HumanDuration,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        TelemetrySection {
            otlp_endpoint: None,
            service_name: "shiplog".to_string(),
            export_interval: HumanDuration(std::time::Duration::from_secs(10)),
        }
    }
}

/// An `http(s)://host[:port][/prefix]` URL, checked while the file is read so that a bad
/// value is reported at its line rather than when the first export fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OtlpEndpoint(String);

impl OtlpEndpoint {
    /// Checks `value`; the error says what is wrong and what would be accepted.
    pub fn parse(value: &str) -> Result<Self, String> {
        const HINT: &str = "expected the base URL of an OTLP/HTTP receiver such as \"http://127.0.0.1:4318\" (shiplog adds /v1/traces and /v1/metrics; gRPC on port 4317 is not supported)";
        let uri: axum::http::Uri = value
            .parse()
            .map_err(|e| format!("otlp_endpoint {value:?} is not a URL ({e}): {HINT}"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => {
                return Err(format!(
                    "otlp_endpoint {value:?}: scheme {other:?} is not http or https: {HINT}"
                ));
            }
            None => {
                return Err(format!(
                    "otlp_endpoint {value:?} has no http:// or https://: {HINT}"
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("otlp_endpoint {value:?} has no host: {HINT}"));
        }
        if uri.query().is_some() {
            return Err(format!(
                "otlp_endpoint {value:?} has a query string: {HINT}"
            ));
        }
        Ok(OtlpEndpoint(value.trim_end_matches('/').to_string()))
    }

    /// The URL a signal is posted to, e.g. `signal_url("traces")` for `/v1/traces`.
    pub fn signal_url(&self, signal: &str) -> String {
        format!("{}/v1/{signal}", self.0)
    }
}

impl<'de> Deserialize<'de> for OtlpEndpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OtlpEndpoint::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[auth]`: API tokens. None configured: the API is open and listens on loopback only.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `[[auth.token]]` entries.
    pub token: Vec<TokenSection>,
}

/// `[[auth.token]]`: one API token; give exactly one of `token` and `token_sha256`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// Name shown in logs and errors.
    pub name: String,
    /// The token (at least 16 characters).
    pub token: Option<String>,
    /// SHA-256 of the token in hex (`printf %s TOKEN | sha256sum`), so the file holds no
    /// secret.
    pub token_sha256: Option<String>,
    /// What the token may do: `ingest`, `read`, `audit`, `admin` (admin may do everything).
    pub roles: Vec<shiplog_query::auth::Role>,
}

/// `[retention]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    /// Logs and registrations.
    pub logs: HumanDuration,
    /// Metric samples.
    pub metrics: HumanDuration,
    /// Predictions.
    pub predictions: HumanDuration,
    /// Cap on the total size of all day indexes; oldest days go first. Unset: no cap.
    pub max_total_size: Option<ByteSize>,
    /// How often retention runs.
    pub interval: HumanDuration,
}

impl Default for RetentionSection {
    fn default() -> Self {
        let d = shiplog_indexer::retention::RetentionPolicy::default();
        RetentionSection {
            logs: HumanDuration(d.logs),
            metrics: HumanDuration(d.metrics),
            predictions: HumanDuration(d.predictions),
            max_total_size: None,
            interval: HumanDuration(std::time::Duration::from_secs(3600)),
        }
    }
}

impl RetentionSection {
    /// The indexer's policy.
    pub fn policy(&self) -> shiplog_indexer::retention::RetentionPolicy {
        shiplog_indexer::retention::RetentionPolicy {
            logs: self.logs.0,
            metrics: self.metrics.0,
            predictions: self.predictions.0,
            max_total_bytes: self.max_total_size.map(|b| b.0),
        }
    }
}

/// `[docker]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerSection {
    /// Collect from the local Docker engine.
    pub enabled: bool,
    /// Engine address; unset means `DOCKER_HOST`, then the usual socket.
    pub host: Option<String>,
}

/// `[indexer]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerSection {
    /// tantivy writer memory budget.
    pub writer_memory: ByteSize,
    /// tantivy indexing threads.
    pub writer_threads: usize,
    /// Longest wait for a commit while data flows.
    pub commit_interval: HumanDuration,
    /// Batches queued for the writer before ingest answers 429.
    pub queue_batches: usize,
    /// Recent event ids remembered to drop duplicates.
    pub dedupe_ids: usize,
    /// How far back a possible duplicate is looked up in the index.
    pub dedupe_window: HumanDuration,
    /// Size at which the write-ahead log starts a new segment.
    pub wal_segment: ByteSize,
    /// Events a tail subscriber may lag before it gets a gap.
    pub tail_buffer: usize,
}

/// `[collector]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorSection {
    /// Flush a batch at this many events.
    pub batch_max_events: usize,
    /// Flush a batch at this many bytes.
    pub batch_max_bytes: ByteSize,
    /// Flush a batch when its oldest event is this old.
    pub batch_max_age: HumanDuration,
    /// Events buffered between the sources and the batcher; sources wait when it is full.
    pub channel_capacity: usize,
    /// Containers whose name matches one of these regexes are not collected.
    pub exclude_names: Vec<String>,
    /// Containers whose image matches one of these regexes are not collected.
    pub exclude_images: Vec<String>,
    /// When any include list is set, only matching containers are collected.
    pub include_names: Vec<String>,
    /// Image regexes of containers to collect.
    pub include_images: Vec<String>,
    /// Labels (`key=value` or `key`) of containers to collect.
    pub include_labels: Vec<String>,
    /// Join stack traces, tracebacks and indented lines into one event.
    pub multiline: bool,
    /// Regex: a matching line starts a new event (default: built-in Java/Python rules).
    pub multiline_start_pattern: Option<String>,
    /// How long the last line of a burst waits for a continuation.
    pub multiline_flush_timeout: HumanDuration,
    /// How often each running container's CPU, memory, network and block I/O are sampled;
    /// `"0s"` turns metrics off.
    pub metrics_interval: HumanDuration,
    /// Cap on the disk buffer (`<data_dir>/collector/buffer/`) that holds batches while the
    /// indexer is down or slow.
    pub buffer_max_bytes: ByteSize,
    /// When the disk buffer is full: `"block"` (stop reading; Docker keeps the lines in its
    /// log files) or `"drop_newest"` (drop the batch, counted in
    /// `shiplog_collector_events_dropped_total`).
    pub buffer_when_full: shiplog_collector::config::WhenFull,
    /// A send to the indexer taking longer than this goes to the disk buffer instead.
    pub buffer_spill_after: HumanDuration,
    /// How often the collector ships its own metrics (service `shiplog`); `"0s"` turns it
    /// off.
    pub telemetry_interval: HumanDuration,
    /// Containers running at start with no checkpoint: read their stored logs whole
    /// (`true`) or from a second before the start (`false`).
    pub read_from_head: bool,
    /// Longest line kept (1KiB to 512KiB); the rest is cut and the event flagged.
    pub max_line_bytes: ByteSize,
    /// Logs of containers without a TTY read straight from the engine's Unix socket
    /// (`true`, default: about two thirds of the CPU per line) or through the Docker client
    /// (`false`).
    pub docker_socket_logs: bool,
    /// Followed `json-file` logs read straight from the engine's files, held open through
    /// rotations (`true`, default, where the engine is local and its files readable) or
    /// through the engine's log endpoint (`false`).
    pub docker_log_files: bool,
    /// `[[collector.parse]]`: regexes whose named captures become fields.
    pub parse: Vec<ParseSection>,
    /// `[[collector.redact]]`: regexes whose matches are masked or hashed before shipping.
    pub redact: Vec<RedactSection>,
}

/// `[[collector.parse]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseSection {
    /// Rule name.
    pub name: String,
    /// Regex with named captures.
    pub pattern: String,
    /// Only containers whose name matches this regex.
    pub container: Option<String>,
    /// Only containers whose image matches this regex.
    pub image: Option<String>,
}

/// `[[collector.redact]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactSection {
    /// Rule name, recorded in `fields._redacted` of events it changed.
    pub name: String,
    /// Regex of what to hide.
    pub pattern: String,
    /// Unset: mask with `****`; set: replace with a keyed SHA-256 of the match.
    pub hash_key: Option<String>,
    /// Only containers whose name matches this regex.
    pub container: Option<String>,
    /// Only containers whose image matches this regex.
    pub image: Option<String>,
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    /// Largest request body as sent.
    pub max_body: ByteSize,
    /// Largest decompressed ingest batch.
    pub max_decompressed: ByteSize,
    /// Largest `limit` a search may ask for.
    pub max_search_limit: usize,
    /// Longest a search or aggregation runs before the answer is 503 `query_timeout`.
    pub query_timeout: HumanDuration,
    /// Requests served at once (tail streams, /healthz and /metrics not counted); past it,
    /// 503 with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Live tails open at once; past it, 503 `too_many_subscribers`.
    pub max_tail_subscribers: usize,
    /// Searches and aggregations whose work runs at once (default: two per core).
    pub max_concurrent_queries: usize,
    /// Queries that wait for a running one to finish; past it, 503 `overloaded`.
    pub max_queued_queries: usize,
    /// Most bytes of events one search page holds (the page stops short, with a cursor).
    pub max_response: ByteSize,
    /// Most bytes all search answers being built or sent hold at once; 503 past it.
    pub max_response_memory: ByteSize,
    /// Serve without tokens on a non-loopback address (otherwise refused at start).
    pub allow_unauthenticated: bool,
    /// `/metrics` needs a `read` token too (when tokens are configured).
    pub metrics_auth: bool,
    /// Most different UTC days the events of one ingest batch may fall on; lines of
    /// further days are refused with a reason.
    pub max_days_per_batch: usize,
    /// Events older than this before their arrival are refused (unset: any age).
    pub accept_past: Option<HumanDuration>,
    /// Events further than this ahead of the node's clock are refused (unset: any).
    pub accept_future: Option<HumanDuration>,
    /// PEM certificate chain; with `tls_key`, the API speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("shiplog-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            docker: DockerSection::default(),
            indexer: IndexerSection::default(),
            collector: CollectorSection::default(),
            api: ApiSection::default(),
            retention: RetentionSection::default(),
            auth: AuthSection::default(),
            alerting: Default::default(),
            alert: Vec::new(),
            source: None,
            predictions: shiplog_core::prediction_config::PredictionsConfig::default(),
            telemetry: TelemetrySection::default(),
        }
    }
}

impl Default for DockerSection {
    fn default() -> Self {
        DockerSection {
            enabled: true,
            host: None,
        }
    }
}

impl Default for IndexerSection {
    fn default() -> Self {
        let d = shiplog_indexer::IndexerConfig::default();
        IndexerSection {
            writer_memory: ByteSize(d.writer_memory_bytes as u64),
            writer_threads: d.writer_threads,
            commit_interval: HumanDuration(d.commit_interval),
            queue_batches: d.queue_batches,
            dedupe_ids: d.dedupe_ids,
            dedupe_window: HumanDuration(d.dedupe_window),
            wal_segment: ByteSize(d.wal_segment_bytes),
            tail_buffer: d.tail_buffer,
        }
    }
}

impl Default for CollectorSection {
    fn default() -> Self {
        let d = shiplog_collector::CollectorConfig::default();
        CollectorSection {
            batch_max_events: d.batch_max_events,
            batch_max_bytes: ByteSize(d.batch_max_bytes as u64),
            batch_max_age: HumanDuration(d.batch_max_age),
            channel_capacity: d.channel_capacity,
            exclude_names: d.exclude_names,
            exclude_images: d.exclude_images,
            include_names: d.include_names,
            include_images: d.include_images,
            include_labels: d.include_labels,
            multiline: d.multiline,
            multiline_start_pattern: d.multiline_start_pattern,
            multiline_flush_timeout: HumanDuration(d.multiline_flush_timeout),
            metrics_interval: HumanDuration(d.metrics_interval),
            buffer_max_bytes: ByteSize(d.buffer_max_bytes),
            buffer_when_full: d.buffer_when_full,
            buffer_spill_after: HumanDuration(d.buffer_spill_after),
            telemetry_interval: HumanDuration(d.telemetry_interval),
            read_from_head: d.read_from_head,
            max_line_bytes: ByteSize(d.max_line_bytes as u64),
            docker_socket_logs: d.docker_socket_logs,
            docker_log_files: d.docker_log_files,
            parse: Vec::new(),
            redact: Vec::new(),
        }
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        let d = shiplog_query::ApiLimits::default();
        ApiSection {
            max_body: ByteSize(d.max_body_bytes as u64),
            max_decompressed: ByteSize(d.decode.max_decompressed_bytes as u64),
            max_search_limit: d.max_search_limit,
            query_timeout: HumanDuration(d.query_timeout),
            max_concurrent_requests: d.max_concurrent_requests,
            max_tail_subscribers: d.max_tail_subscribers,
            max_concurrent_queries: d.max_concurrent_queries,
            max_queued_queries: d.max_queued_queries,
            max_response: ByteSize(d.max_response_bytes as u64),
            max_response_memory: ByteSize(d.max_response_memory as u64),
            max_days_per_batch: d.decode.window.max_days,
            accept_past: d.decode.window.max_past.map(HumanDuration),
            accept_future: d.decode.window.max_future.map(HumanDuration),
            allow_unauthenticated: false,
            metrics_auth: false,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Why a config file was refused, with the line and column.
#[derive(Debug)]
pub struct ConfigError {
    /// File path.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses config text; errors carry the line and column of the bad key or value. Alert
/// rules and notifiers are checked too.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let config = parse_toml(path, text)?;
    config.alert_rules(path, text)?;
    Ok(config)
}

/// The 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn parse_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str::<Config>(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ConfigError {
            path: path.to_path_buf(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    Ok(parse(path, &text)?)
}

impl Config {
    /// The `[[alert]]` rules compiled, and the notifiers checked. A rule whose keys do not
    /// fit together is reported at the line of the key at fault (or of its table).
    pub fn alert_rules(
        &self,
        path: &Path,
        text: &str,
    ) -> Result<Vec<shiplog_query::alerts::rule::Rule>, ConfigError> {
        let error = |offset: Option<usize>, message: String| {
            let (line, column) = offset.map(|o| line_col(text, o)).unzip();
            ConfigError {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        if let Err(e) = self.alerting.notifiers() {
            let at = text.find("[alerting").or_else(|| text.find("[[alerting"));
            return Err(error(at, e));
        }
        let names = self.alerting.names();
        let mut rules: Vec<shiplog_query::alerts::rule::Rule> =
            Vec::with_capacity(self.alert.len());
        for spanned in &self.alert {
            let span = spanned.span();
            let spec = spanned.get_ref();
            let at_key = |key: &str| -> usize {
                // The table runs from its header to the next header (or the end).
                let table = &text[span.start.min(text.len())..];
                let mut offset = 0;
                for (n, line) in table.split_inclusive('\n').enumerate() {
                    let t = line.trim_start();
                    if n > 0 && t.starts_with('[') {
                        break;
                    }
                    if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
                        return span.start + offset + (line.len() - t.len());
                    }
                    offset += line.len();
                }
                span.start
            };
            let mut one =
                shiplog_query::alerts::rule::compile_all(std::slice::from_ref(spec), &names)
                    .map_err(|e| error(Some(at_key(e.key)), e.to_string()))?;
            let rule = one.remove(0);
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(error(
                    Some(at_key("name")),
                    format!(
                        "alert '{}': name: another rule has the same name: names must be unique",
                        rule.name
                    ),
                ));
            }
            rules.push(rule);
        }
        Ok(rules)
    }

    /// The `[[alert]]` rules compiled (already checked with their lines by [`parse`]).
    pub fn compiled_alerts(&self) -> anyhow::Result<Vec<shiplog_query::alerts::rule::Rule>> {
        let specs: Vec<_> = self.alert.iter().map(|s| s.get_ref().clone()).collect();
        Ok(shiplog_query::alerts::rule::compile_all(
            &specs,
            &self.alerting.names(),
        )?)
    }

    /// The indexer's settings.
    pub fn indexer(&self) -> shiplog_indexer::IndexerConfig {
        shiplog_indexer::IndexerConfig {
            data_dir: self.data_dir.clone(),
            writer_memory_bytes: self.indexer.writer_memory.as_usize(),
            writer_threads: self.indexer.writer_threads,
            commit_interval: self.indexer.commit_interval.0,
            queue_batches: self.indexer.queue_batches,
            dedupe_ids: self.indexer.dedupe_ids,
            dedupe_window: self.indexer.dedupe_window.0,
            wal_segment_bytes: self.indexer.wal_segment.0,
            tail_buffer: self.indexer.tail_buffer,
            retention: self.retention.policy(),
            ..shiplog_indexer::IndexerConfig::default()
        }
    }

    /// The HTTP limits.
    pub fn api_limits(&self) -> shiplog_query::ApiLimits {
        let defaults = shiplog_query::ApiLimits::default();
        shiplog_query::ApiLimits {
            max_body_bytes: self.api.max_body.as_usize(),
            decode: shiplog_core::codec::DecodeLimits {
                max_decompressed_bytes: self.api.max_decompressed.as_usize(),
                window: shiplog_core::accept::AcceptWindow {
                    max_days: self.api.max_days_per_batch,
                    max_past: self.api.accept_past.map(|d| d.0),
                    max_future: self.api.accept_future.map(|d| d.0),
                },
                ..defaults.decode
            },
            max_search_limit: self.api.max_search_limit,
            query_timeout: self.api.query_timeout.0,
            max_concurrent_requests: self.api.max_concurrent_requests,
            max_tail_subscribers: self.api.max_tail_subscribers,
            max_concurrent_queries: self.api.max_concurrent_queries,
            max_queued_queries: self.api.max_queued_queries,
            max_response_bytes: self.api.max_response.as_usize(),
            max_response_memory: self.api.max_response_memory.as_usize(),
        }
    }

    /// The API tokens, checked (names, lengths, digests, roles).
    pub fn auth(&self) -> anyhow::Result<shiplog_query::Auth> {
        use shiplog_query::auth::{ApiToken, TokenSecret};
        let mut tokens = Vec::with_capacity(self.auth.token.len());
        for t in &self.auth.token {
            let secret = match (&t.token, &t.token_sha256) {
                (Some(plain), None) => TokenSecret::Plain(plain.clone()),
                (None, Some(hex)) => TokenSecret::Sha256Hex(hex.clone()),
                _ => anyhow::bail!(
                    "[[auth.token]] '{}' must set exactly one of token and token_sha256",
                    t.name
                ),
            };
            tokens.push(ApiToken {
                name: t.name.clone(),
                secret,
                roles: t.roles.clone(),
            });
        }
        let auth = shiplog_query::Auth::new(&tokens)
            .map_err(|e| anyhow::anyhow!("invalid [auth] settings: {e}"))?;
        Ok(auth.with_metrics_token(self.api.metrics_auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TOML example in this module's documentation.
    fn documented_example() -> String {
        include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_string() + "\n")
            .collect()
    }

    #[test]
    fn the_documented_example_parses() {
        let example = documented_example();
        let c = parse(Path::new("example.toml"), &example).unwrap();
        assert_eq!(c.indexer.writer_memory, ByteSize(256 << 20));
        assert_eq!(
            c.collector.batch_max_age.0,
            std::time::Duration::from_millis(100)
        );
        assert_eq!(
            c.docker.host.as_deref(),
            Some("unix:///var/run/docker.sock")
        );
        assert_eq!(c.collector.buffer_max_bytes, ByteSize(1 << 30));
        assert_eq!(c.collector.max_line_bytes, ByteSize(256 << 10));
        let capped = parse(Path::new("x"), "[collector]\nmax_line_bytes = \"64KiB\"\n").unwrap();
        assert_eq!(
            crate::node::collector_config(&capped).max_line_bytes,
            64 * 1024,
            "the cap reaches the collector"
        );
        assert_eq!(
            c.collector.buffer_when_full,
            shiplog_collector::config::WhenFull::Block
        );
        let drop = parse(
            Path::new("x"),
            "[collector]\nbuffer_when_full = \"drop_newest\"\n",
        )
        .unwrap();
        assert_eq!(
            drop.collector.buffer_when_full,
            shiplog_collector::config::WhenFull::DropNewest
        );
        assert!(
            parse(
                Path::new("x"),
                "[collector]\nbuffer_when_full = \"spill\"\n"
            )
            .is_err()
        );
    }

    #[test]
    fn the_documented_auth_example_parses() {
        let example = documented_example();
        let c = parse(Path::new("example.toml"), &example).unwrap();
        assert_eq!(c.auth.token.len(), 2);
        assert_eq!(c.api.query_timeout.0, std::time::Duration::from_secs(30));
        assert!(c.auth().unwrap().is_enabled());
    }

    #[test]
    fn token_sections_are_checked() {
        let c = parse(
            Path::new("a.toml"),
            "[[auth.token]]\nname = \"x\"\nroles = [\"read\"]\n",
        )
        .unwrap();
        let e = c.auth().unwrap_err().to_string();
        assert!(e.contains("exactly one of token and token_sha256"), "{e}");
        let e = parse(
            Path::new("a.toml"),
            "[[auth.token]]\nname = \"x\"\ntoken = \"0123456789abcdef0\"\nroles = [\"root\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn bad_prediction_rules_are_refused_at_their_line() {
        let cases = [
            (
                "[predictions]\ncontainers = [\"^model-\"]\n\n[[predictions.redact]]\nname = \"r\"\npattern = \"(unclosed\"\n",
                "rule 'r': pattern '(unclosed' is not a valid regex",
            ),
            (
                "[[predictions.redact]]\nname = \"p\"\npath = \"body.email\"\n",
                "bad redaction path 'body.email'",
            ),
            (
                "[[predictions.redact]]\nname = \"h\"\npath = \"input.x\"\naction = \"hash\"\n",
                "neither hash_key nor hash_key_env",
            ),
            (
                "[predictions]\nbuiltin_redactions = [\"email\", \"phone\"]\n",
                "phone",
            ),
            (
                "[predictions]\ncontainers = [\"[\"]\n",
                "predictions.containers",
            ),
            ("[predictions.mapping]\nmodle = [\"m\"]\n", "modle"),
        ];
        for (text, want) in cases {
            let e = parse(Path::new("p.toml"), text).unwrap_err();
            assert!(e.message.contains(want), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: {e}");
        }
        let e = parse(
            Path::new("p.toml"),
            "listen = \"127.0.0.1:1\"\n\n[[predictions.redact]]\nname = \"r\"\npattern = \"(x\"\n",
        )
        .unwrap_err();
        assert!(e.line.is_some_and(|l| l >= 3), "{e}");
        let ok = parse(
            Path::new("p.toml"),
            "[predictions]\nbuiltin_redactions = [\"email\"]\n",
        )
        .unwrap();
        assert_eq!(
            ok.predictions.builtin_redactions,
            [shiplog_core::prediction_config::Builtin::Email]
        );
        let example = documented_example();
        let c = parse(Path::new("example.toml"), &example).unwrap();
        assert_eq!(c.predictions.redact.len(), 2);
        assert_eq!(c.predictions.containers, ["^model-"]);
        let rules = c.predictions.build_with_env(|_| Some("k".into())).unwrap();
        assert_eq!(rules.redact.len(), 4);
    }

    #[test]
    fn the_documented_alert_example_compiles() {
        let example = documented_example();
        let c = parse(Path::new("example.toml"), &example).unwrap();
        let rules = c.compiled_alerts().unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(c.alerting.notifiers().unwrap().len(), 3);
    }

    #[test]
    fn bad_alert_rules_are_reported_at_their_line() {
        let rule = |extra: &str| {
            format!(
                "listen = \"127.0.0.1:1\"\n\n[[alert]]\nname = \"a\"\nkind = \"ratio\"\nwindow = \"1m\"\nthreshold = 0.5\n{extra}"
            )
        };
        let cases = [
            ("query = \"level:(\"\n", 8, "bad query"),
            ("colour = \"red\"\n", 8, "unknown field `colour`"),
            ("for = \"soon\"\n", 8, "invalid time"),
            (
                "group_by = [\"service\", \"planet\"]\n",
                8,
                "unknown field 'planet'",
            ),
            ("field = \"latency_ms\"\n", 8, "only applies to percentile"),
            ("notify = [\"pager\"]\n", 8, "no notifier named 'pager'"),
        ];
        for (extra, line, want) in cases {
            let e = parse(Path::new("rules.toml"), &rule(extra)).unwrap_err();
            assert_eq!(e.line, Some(line), "{extra}: {e}");
            assert!(e.message.contains(want), "{extra}: {e}");
            assert!(
                e.to_string().starts_with(&format!("rules.toml:{line}:")),
                "{e}"
            );
        }
        // A threshold out of range is reported at the threshold's line.
        let e = parse(
            Path::new("rules.toml"),
            &rule("").replace("threshold = 0.5", "threshold = 5"),
        )
        .unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        let two = format!(
            "{}\n{}",
            rule(""),
            rule("").replace("listen = \"127.0.0.1:1\"\n", "")
        );
        let e = parse(Path::new("rules.toml"), &two).unwrap_err();
        assert!(e.message.contains("same name"), "{e}");
        assert_eq!(e.line, Some(11), "{e}");
        let e = parse(
            Path::new("rules.toml"),
            "[[alerting.webhook]]\nname = \"h\"\nurl = \"ftp://x\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("must be http"), "{e}");
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse(Path::new("x"), "").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
        assert_eq!(c.data_dir, PathBuf::from("shiplog-data"));
    }

    #[test]
    fn the_documented_telemetry_example_parses() {
        let c = parse(Path::new("example.toml"), &documented_example()).unwrap();
        let endpoint = c
            .telemetry
            .otlp_endpoint
            .expect("example sets otlp_endpoint");
        assert_eq!(
            endpoint.signal_url("traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(c.telemetry.service_name, "shiplog");
        assert_eq!(
            c.telemetry.export_interval.0,
            std::time::Duration::from_secs(10)
        );
        let d = parse(Path::new("a.toml"), "").unwrap();
        assert!(d.telemetry.otlp_endpoint.is_none());
        let prefixed = parse(
            Path::new("a.toml"),
            "[telemetry]\notlp_endpoint = \"https://otel.internal/otlp/\"\n",
        )
        .unwrap();
        assert_eq!(
            prefixed
                .telemetry
                .otlp_endpoint
                .unwrap()
                .signal_url("metrics"),
            "https://otel.internal/otlp/v1/metrics"
        );
    }

    #[test]
    fn bad_telemetry_settings_are_refused_at_their_line() {
        for (value, want) in [
            ("127.0.0.1:4318", "no http:// or https://"),
            ("localhost", "no http:// or https://"),
            ("grpc://127.0.0.1:4317", "scheme \"grpc\""),
            ("http://", "not a URL"),
            ("http://h:4318/?x=1", "query string"),
            ("not a url", "not a URL"),
        ] {
            let text =
                format!("listen = \"127.0.0.1:1\"\n\n[telemetry]\notlp_endpoint = \"{value}\"\n");
            let e = parse(Path::new("a.toml"), &text).unwrap_err();
            assert_eq!(e.line, Some(4), "{value}: {e}");
            assert!(e.to_string().starts_with("a.toml:4:"), "{value}: {e}");
            assert!(e.message.contains(want), "{value}: {e}");
            assert!(e.message.contains("http://127.0.0.1:4318"), "no hint: {e}");
        }
        let e = parse(
            Path::new("a.toml"),
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nendpoint = \"x\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("endpoint"), "{e}");
        let e = parse(
            Path::new("a.toml"),
            "[telemetry]\nexport_interval = \"often\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e = parse(
            Path::new("a.toml"),
            "listen = \"127.0.0.1:1\"\n\n[indexer]\nwriter_memroy = \"1GiB\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("writer_memroy"), "{e}");
        let e = parse(
            Path::new("a.toml"),
            "[collector]\nbatch_max_age = \"soon\"\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.to_string().starts_with("a.toml:2:"), "{e}");
        let e = parse(Path::new("a.toml"), "listen = 7070").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = parse(Path::new("a.toml"), "[api\nmax_body=1").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn listen_takes_a_host_name_as_well_as_an_address() {
        assert_eq!(
            parse_listen("localhost:7070").unwrap(),
            "127.0.0.1:7070".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
        let no_port = parse_listen("localhost").unwrap_err();
        assert!(no_port.contains("has no port"), "{no_port}");
        let c = parse(Path::new("a.toml"), "listen = \"localhost:7071\"\n").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7071");
        let e = parse(Path::new("a.toml"), "listen = \"no.such.host.invalid:1\"\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("cannot resolve"), "{e}");
    }
}
