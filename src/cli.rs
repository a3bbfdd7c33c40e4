//! Command-line flags. Every command honours `SHIPLOG_URL` and `SHIPLOG_TOKEN`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// shiplog: collect, index, search and tail the logs of every container on a host.
#[derive(Debug, Parser)]
#[command(name = "shiplog", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors in the log output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an all-in-one node: collector, indexer and query API in one process.
    ///
    /// Follows every container of the local Docker engine (retrying in the background when
    /// there is none), stores their output under the data directory, and serves the API.
    Up(UpArgs),
    /// Run the indexer and query API only (collectors ship to it over HTTP).
    Serve(NodeArgs),
    /// Run the collector only, shipping to a remote node's ingest endpoint.
    Collect(CollectArgs),
    /// Search stored events, newest first.
    ///
    /// Examples: shiplog search 'service:web AND error';
    /// shiplog search --since 1h 'level:error OR level:fatal'; shiplog search --json '"disk full"'
    Search(SearchArgs),
    /// Print new events live as they are stored; reconnects when the node restarts.
    ///
    /// When the stream drops or the node cannot be reached, it says so once on stderr and
    /// retries (0.5 s doubling to 10 s). Once back it prints a gap marker on stdout, a
    /// `--- reconnected: ... ---` line (with --json a `{"gap":{"from":..,"to":..,"hint":..}}`
    /// object) naming the `shiplog search --since FROM --until TO` that lists the events it
    /// missed. A refused token, a bad query or another 4xx answer ends it with the node's
    /// message.
    ///
    /// Examples: shiplog tail 'service:web AND level:error'; shiplog tail --json > live.ndjson
    Tail(TailArgs),
    /// Open the terminal UI: tail, search, services, metrics, predictions and alerts.
    ///
    /// Press ? inside for every key.
    Tui(TuiArgs),
    /// Show what retention removes (by default), or remove it now with --apply.
    ///
    /// Ages per kind and the size cap come from the node's [retention] config; the node
    /// also applies them by itself every `interval`.
    Retention(RetentionArgs),
    /// Search prediction history by model, version, request id, status, latency and
    /// input/output fields, or export it with a checksummed manifest (audit role).
    Predictions(Box<crate::commands::predictions::PredictionsArgs>),
    /// Measure throughput of whole-system paths.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Prove stored predictions untouched: export day roots, verify the hash chain, and
    /// place legal holds. Works offline on a data directory.
    ///
    /// Predictions are chained per day of arrival; each day closes with a root. Export the
    /// roots regularly (`shiplog audit roots --out roots-2026-11.json`) and keep them where
    /// you trust; `shiplog audit verify --roots FILE` then catches any edited, inserted,
    /// deleted or reordered record even if the chain on the node was recomputed.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List firing and pending alerts (default), their history, or check and reload rules.
    ///
    /// Examples: shiplog alerts; shiplog alerts check shiplog.toml; shiplog alerts reload
    Alerts(AlertsArgs),
}

/// Flags of `alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
}

/// `alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Firing and pending alerts (the default).
    List,
    /// Recent state changes, newest first.
    History {
        /// Most transitions to show.
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
    },
    /// Check the [[alert]] rules and [alerting] notifiers of a config file; reports the
    /// file, line and reason of the first problem and exits 1.
    Check {
        /// The config file.
        file: PathBuf,
    },
    /// Make the node read its config file's rules again (a bad file keeps the running
    /// rules; the node also reloads on SIGHUP).
    Reload,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print (or write with --out) the roots of every closed day as a JSON roots file.
    Roots(AuditRootsArgs),
    /// Recompute every day's chain and report the first mismatch; exit 1 if there is one.
    ///
    /// Without --roots this catches any change made without recomputing the chain. With
    /// --roots (a file from `shiplog audit roots`) it also catches changes whose chain and
    /// .root file were recomputed, and deleted or added days.
    Verify(AuditVerifyArgs),
    /// Place a legal hold on a day: retention never deletes it until it is released.
    Hold(AuditHoldArgs),
    /// Release the legal hold on a day (the hold stays on record as released).
    Release(AuditReleaseArgs),
    /// List legal holds.
    Holds(AuditHoldsArgs),
}

/// Where an offline command finds the data directory.
#[derive(Debug, Args, Clone)]
pub struct DataDirArgs {
    /// Data directory [default: ./shiplog-data, or data_dir in the config file].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML config file, read for data_dir only.
    #[arg(long, env = "SHIPLOG_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `audit roots`.
#[derive(Debug, Args)]
pub struct AuditRootsArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Write the roots file here (atomically) instead of to standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also export the root so far of days still open, marked "open": verify then checks
    /// that their first `count` records are unchanged.
    #[arg(long)]
    pub include_open: bool,
}

/// Flags of `audit verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Only this day (yyyy-mm-dd).
    #[arg(long, value_name = "DAY")]
    pub day: Option<String>,
    /// Exported roots file to verify against.
    #[arg(long, value_name = "FILE")]
    pub roots: Option<PathBuf>,
}

/// Flags of `audit hold`.
#[derive(Debug, Args)]
pub struct AuditHoldArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// The day to hold (yyyy-mm-dd, UTC).
    #[arg(long, value_name = "DAY")]
    pub day: String,
    /// Why: a case or ticket reference, kept with the hold.
    #[arg(long)]
    pub reason: String,
    /// Who places the hold (defaults to $USER, else "unknown").
    #[arg(
        long,
        env = "USER",
        hide_env_values = true,
        default_value = "unknown",
        hide_default_value = true
    )]
    pub by: String,
}

/// Flags of `audit release`.
#[derive(Debug, Args)]
pub struct AuditReleaseArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// The held day (yyyy-mm-dd).
    #[arg(long, value_name = "DAY")]
    pub day: String,
    /// Who releases it (defaults to $USER, else "unknown").
    #[arg(
        long,
        env = "USER",
        hide_env_values = true,
        default_value = "unknown",
        hide_default_value = true
    )]
    pub by: String,
}

/// Flags of `audit holds`.
#[derive(Debug, Args)]
pub struct AuditHoldsArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Also list released holds.
    #[arg(long)]
    pub all: bool,
    /// Print the holds file's entries as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// The node a remote command talks to when neither `--url` nor `SHIPLOG_URL` says.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// Where a client command connects.
#[derive(Debug, Args, Clone)]
pub struct RemoteArgs {
    /// Base URL of a shiplog node.
    // Global so that it is accepted after a subcommand too (`alerts list --url ...`).
    #[arg(
        long,
        env = "SHIPLOG_URL",
        default_value = DEFAULT_URL,
        global = true
    )]
    pub url: String,
    /// API token sent as a bearer token.
    #[arg(long, env = "SHIPLOG_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

/// Flags of `tui`.
#[derive(Debug, Args)]
pub struct TuiArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Most tail lines kept for scrolling back; the oldest are dropped first.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub buffer_lines: u64,
}

/// Flags of `up` and `serve`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Data directory [default: ./shiplog-data, or data_dir in the config file].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address for the HTTP API, HOST:PORT (a name such as localhost is resolved)
    /// [default: 127.0.0.1:7070, or listen in the config file].
    #[arg(long, value_parser = crate::config::parse_listen)]
    pub listen: Option<SocketAddr>,
    /// TOML config file; every key is optional.
    #[arg(long, env = "SHIPLOG_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Flags of `up`: a node's flags, and whether to collect from Docker.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Do not collect from Docker: index and serve only what is shipped to the API.
    #[arg(long)]
    pub no_docker: bool,
}

/// Flags of `collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// TOML config file ([docker] and [collector] sections are used).
    #[arg(long, env = "SHIPLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve the collector's own metrics (lines read, batches sent, retries, disk buffer
    /// size, drops, lag per container) in Prometheus format on http://ADDR/metrics.
    #[arg(long, value_name = "ADDR", value_parser = crate::config::parse_listen)]
    pub metrics_listen: Option<SocketAddr>,
}

/// Flags of `retention`.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Only show what would be removed (the default).
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Remove it now.
    #[arg(long)]
    pub apply: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print each hit as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Oldest time: a duration ago (15m, 2h, 7d), now-5m, or RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// Newest time, same forms.
    #[arg(long)]
    pub until: Option<String>,
    /// Most hits to print; past one page (10,000) the pages are fetched one after another.
    #[arg(long, short = 'n', default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// Print every hit, however many (page by page).
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Continue a listing from the cursor a previous run printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// The query: words, "phrases", field:value, AND/OR/NOT, parentheses.
    #[arg(default_value = "")]
    pub query: String,
}

/// Flags of `tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Print each event as one JSON line; a gap is a line of its own, `{"gap":{...}}`.
    #[arg(long)]
    pub json: bool,
    /// Only events matching this query.
    #[arg(default_value = "")]
    pub query: String,
}

/// `bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Push events made from real log lines through HTTP ingest and indexing.
    Ingest(BenchIngestArgs),
    /// Full ingest path (decode, WAL, dedupe, index) against raw tantivy on the same
    /// documents, plus bytes on disk per event.
    Index(BenchIndexArgs),
    /// Delay from an ingest ack to the batch being searchable, at fixed rates.
    Latency(BenchLatencyArgs),
    /// CPU that alert rules add to ingest, and detection delay to a webhook.
    Alerts(BenchAlertsArgs),
    /// Lookups of one prediction by request id among many, and export throughput.
    Predictions(crate::commands::bench_predictions::BenchPredictionsArgs),
    /// Audit chain verification throughput: build a day of predictions, then verify it.
    Verify(BenchVerifyArgs),
    /// The collector against the real Docker engine: stored-log throughput against
    /// `docker logs`, CPU and memory at a steady rate, live-tail delay, and lines lost or
    /// doubled across a SIGKILL and at container exit.
    Collect(crate::commands::bench_collect::BenchCollectArgs),
    /// Term, phrase, 24 h date histogram and error ratio per service over millions of
    /// events, through the HTTP API and through raw tantivy on the same index.
    Query(crate::commands::bench_query::BenchQueryArgs),
}

/// Flags of `bench alerts`.
#[derive(Debug, Args)]
pub struct BenchAlertsArgs {
    /// Events per second, paced in 100 ms steps.
    #[arg(long, default_value_t = 50_000)]
    pub rate: usize,
    /// Seconds per run.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Alert rules in the second run.
    #[arg(long, default_value_t = 100)]
    pub rules: usize,
    /// Directory of Loghub samples.
    #[arg(long, default_value = "../shared/data/loghub")]
    pub corpus: PathBuf,
}

/// Flags of `bench verify`.
#[derive(Debug, Args)]
pub struct BenchVerifyArgs {
    /// Prediction records in the chain.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Times to run verify over the same chain (the best run is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Where to build the chain [default: a temporary directory, removed afterwards].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Flags of `bench index`.
#[derive(Debug, Args)]
pub struct BenchIndexArgs {
    /// Events to index (each side).
    #[arg(long, default_value_t = 5_000_000)]
    pub events: usize,
    /// Events per batch.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Directory of Loghub samples (one folder per system with <name>_2k.log).
    #[arg(long, default_value = "../shared/data/loghub")]
    pub corpus: PathBuf,
    /// Rounds of raw tantivy then shiplog; the median ratio is the result (one round on a
    /// shared machine can be off by 15% either way).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// tantivy indexing threads per day writer, on both sides (the indexer's default when
    /// not given).
    #[arg(long)]
    pub writer_threads: Option<usize>,
}

/// Flags of `bench latency`.
#[derive(Debug, Args)]
pub struct BenchLatencyArgs {
    /// Rates to measure, in events per second.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000")]
    pub rates: Vec<usize>,
    /// How long to run each rate, in seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Directory of Loghub samples.
    #[arg(long, default_value = "../shared/data/loghub")]
    pub corpus: PathBuf,
}

/// Flags of `bench ingest`.
#[derive(Debug, Args)]
pub struct BenchIngestArgs {
    /// Events to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Events per batch.
    #[arg(long, default_value_t = 5_000)]
    pub batch: usize,
    /// Batches in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Directory of Loghub samples (one folder per system with <name>_2k.log).
    #[arg(long, default_value = "../shared/data/loghub")]
    pub corpus: PathBuf,
    /// Where to put the index [default: a temporary directory, removed afterwards].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Report unknown keys and bad values with their line; exit 1 if any.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the defaults as a TOML file to start from.
    Default,
}
