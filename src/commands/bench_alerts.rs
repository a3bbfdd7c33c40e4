//! `shiplog bench alerts`: the cost of alert rules on the ingest path and how fast a
//! condition reaches a webhook.
//!
//! Two runs over fresh data directories at the same paced rate of real log lines: one with
//! no alert engine, one with the engine and `--rules` rules. The CPU time of the engine's
//! thread against the rest of the process in the second run (user + system, from
//! `/proc/self/task/*/stat`) gives the CPU alerting adds to ingest; the process CPU of the
//! two runs is printed too, but differs by several percent between identical runs on a
//! shared two-core machine. In
//! the second run one of the rules is a `count > 0` rule with `for = 0s` on trigger
//! services: every half second a trigger event for a new service is ingested, and the
//! delay from just before its ingest call to the webhook receiver (in this process, on
//! loopback) getting the `firing` message is recorded.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use shiplog_core::{Event, Level, Timestamp};
use shiplog_indexer::{Indexer, IndexerConfig};
use shiplog_query::alerts::notify::{AlertingSettings, WebhookConfig};
use shiplog_query::alerts::rule::{Rule, RuleSpec};

use super::bench::stat_cpu_seconds;
use shiplog_query::alerts::{Alerts, AlertsConfig};

use super::bench::{load_corpus, make_event, millis, p50_p99_max};
use crate::cli::BenchAlertsArgs;

const TERMS: [&str; 10] = [
    "error",
    "failed",
    "exception",
    "timeout",
    "denied",
    "refused",
    "warn",
    "closed",
    "connection",
    "session",
];

/// Background rules of every kind over the corpus services, plus the trigger rule.
fn rules(n: usize, services: &[String]) -> anyhow::Result<Vec<Rule>> {
    let mut specs = Vec::with_capacity(n);
    specs.push(json!({
        "name": "trigger", "kind": "count", "query": "service:trigger-*", "window": "2s",
        "threshold": 0, "group_by": ["service"]
    }));
    for i in 0..n.saturating_sub(1) {
        let svc = &services[i % services.len()];
        let term = TERMS[i % TERMS.len()];
        let name = format!("rule-{i}");
        specs.push(match i % 5 {
            0 => json!({"name": name, "kind": "ratio", "query": format!("level:error OR {term}"),
                "over": format!("service:{svc}"), "window": "1m", "threshold": 0.99,
                "min_events": 100, "group_by": ["service"]}),
            1 => {
                json!({"name": name, "kind": "count", "query": format!("service:{svc} AND {term}"),
                "window": "30s", "threshold": 1e12, "group_by": ["container"]})
            }
            2 => json!({"name": name, "kind": "percentile", "query": "kind:prediction",
                "field": "latency_ms", "percentile": 99, "window": "1m", "threshold": 1e12,
                "group_by": ["model"]}),
            3 => json!({"name": name, "kind": "absence", "query": format!("service:{svc}"),
                "window": "10m", "group_by": ["service"]}),
            _ => json!({"name": name, "kind": "metric", "metric": "cpu_percent",
                "window": "1m", "threshold": 1e12, "group_by": ["container"]}),
        });
    }
    let specs: Vec<RuleSpec> = serde_json::from_value(Value::Array(specs))?;
    Ok(shiplog_query::alerts::rule::compile_all(&specs, &[])?)
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// CPU time of this process's threads named `name` (the alert engine's), summed: the
/// engine's cost measured inside one run, free of the run-to-run noise of a shared machine.
fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|t| stat_cpu_seconds(t.path().join("stat")))
        .sum()
}

/// The alert engine's thread name (query/src/alerts).
const ENGINE_THREAD: &str = "shiplog-alerts";

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

async fn receiver() -> anyhow::Result<(String, Seen)> {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_slice::<Value>(&body)
                    && v["state"] == "firing"
                    && let Some(svc) = v["group"]["service"].as_str()
                {
                    s.lock().unwrap().entry(svc.to_string()).or_insert(at);
                }
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok((url, seen))
}

struct RunResult {
    cpu: f64,
    wall: f64,
    events: usize,
    delays: Vec<Duration>,
    engine_busy: f64,
    engine_cpu: f64,
    dropped: u64,
}

async fn run_once(
    args: &BenchAlertsArgs,
    corpus: &[(String, Vec<String>)],
    with_rules: bool,
) -> anyhow::Result<RunResult> {
    let dir = tempfile::tempdir()?;
    let config = IndexerConfig {
        data_dir: dir.path().to_path_buf(),
        ..IndexerConfig::default()
    };
    let indexer = Arc::new(tokio::task::spawn_blocking(move || Indexer::open(config)).await??);
    let (url, seen) = receiver().await?;
    let alerts = if with_rules {
        let services: Vec<String> = corpus.iter().map(|c| c.0.clone()).collect();
        let settings = AlertingSettings {
            webhook: vec![WebhookConfig {
                name: "bench".into(),
                url,
                secret: Some("bench-secret".into()),
                timeout: shiplog_core::units::HumanDuration(Duration::from_secs(5)),
                headers: Default::default(),
            }],
            ..AlertingSettings::default()
        };
        Some(
            Alerts::start(
                indexer.clone(),
                AlertsConfig {
                    rules: rules(args.rules, &services)?,
                    settings,
                    data_dir: dir.path().to_path_buf(),
                    default_url: crate::cli::DEFAULT_URL.into(),
                },
                None,
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        )
    } else {
        None
    };
    // Let the engine finish its (empty) rebuild before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tick = Duration::from_millis(100);
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).round() as usize;
    let ticks = (args.seconds * 1000 / tick.as_millis() as u64) as usize;
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let cpu0 = cpu_seconds();
    let engine0 = thread_cpu_seconds(ENGINE_THREAD);
    let started = Instant::now();
    let mut i = 0usize;
    let mut next = tokio::time::Instant::now();
    for t in 0..ticks {
        next += tick;
        let base = Timestamp::now();
        let mut batch: Vec<Event> = (0..per_tick)
            .map(|k| {
                let mut e = make_event(corpus, i + k, base);
                e.ts = Timestamp::now();
                e.id = shiplog_core::EventId::for_source(
                    "bench",
                    &e.container_id,
                    "stdout",
                    base,
                    (i + k) as u32,
                );
                e
            })
            .collect();
        i += per_tick;
        let mut trigger = None;
        if with_rules && t.is_multiple_of(5) {
            let svc = format!("trigger-{t}");
            let mut e = Event::log(Timestamp::now(), "trigger");
            e.service = svc.clone();
            e.level = Some(Level::Error);
            e.ensure_id();
            batch.push(e);
            trigger = Some(svc);
        }
        let at = Instant::now();
        indexer.ingest(batch).await?;
        if let Some(svc) = trigger {
            sent_at.insert(svc, at);
        }
        tokio::time::sleep_until(next).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let engine_cpu = thread_cpu_seconds(ENGINE_THREAD) - engine0;
    let (engine_busy, dropped, counted) = match &alerts {
        Some(a) => {
            use std::sync::atomic::Ordering::Relaxed;
            (
                a.stats().busy_ns.load(Relaxed) as f64 / 1e9,
                a.stats().dropped.load(Relaxed),
                a.stats().events.load(Relaxed),
            )
        }
        None => (0.0, 0, 0),
    };
    if with_rules {
        eprintln!(
            "engine had counted {counted} of {} events when the run ended",
            i
        );
    }
    // Late notifications still count as delays.
    if with_rules {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && seen.lock().unwrap().len() < sent_at.len() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let seen = seen.lock().unwrap().clone();
    let mut delays: Vec<Duration> = sent_at
        .iter()
        .filter_map(|(svc, at)| seen.get(svc).map(|r| r.saturating_duration_since(*at)))
        .collect();
    delays.sort();
    let missing = sent_at.len() - delays.len();
    if missing > 0 {
        eprintln!(
            "warning: {missing} of {} triggers never reached the webhook",
            sent_at.len()
        );
    }
    if let Some(a) = alerts {
        tokio::task::spawn_blocking(move || a.shutdown()).await?;
    }
    let ix = indexer.clone();
    tokio::task::spawn_blocking(move || ix.close()).await?;
    Ok(RunResult {
        cpu,
        wall,
        events: i,
        delays,
        engine_busy,
        engine_cpu,
        dropped,
    })
}

/// Runs the alerting benchmark.
pub fn run(args: BenchAlertsArgs) -> anyhow::Result<ExitCode> {
    if args.rate == 0 || args.seconds == 0 || args.rules == 0 {
        bail!("--rate, --seconds and --rules must be at least 1");
    }
    let corpus = load_corpus(&args.corpus)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    eprintln!(
        "run 1: {} events/s for {} s, no alert engine",
        args.rate, args.seconds
    );
    let base = runtime.block_on(run_once(&args, &corpus, false))?;
    eprintln!("run 2: the same with {} rules", args.rules);
    let with = runtime.block_on(run_once(&args, &corpus, true))?;
    let rate = |r: &RunResult| r.events as f64 / r.wall;
    println!(
        "rate              {:.0} events/s without, {:.0} with rules",
        rate(&base),
        rate(&with)
    );
    println!(
        "process CPU       {:.2} s without, {:.2} s with {} rules ({:+.1}% between the runs)",
        base.cpu,
        with.cpu,
        args.rules,
        (with.cpu - base.cpu) / base.cpu * 100.0
    );
    println!(
        "engine thread CPU {:.2} s of {:.2} s process CPU in the same run ({:+.1}% added to ingest)",
        with.engine_cpu,
        with.cpu,
        with.engine_cpu / (with.cpu - with.engine_cpu) * 100.0
    );
    println!(
        "engine thread     {:.2} s busy, wall clock, state writes included ({:.1}% of {:.1} s)",
        with.engine_busy,
        with.engine_busy / with.wall * 100.0,
        with.wall
    );
    println!("events dropped    {} (engine queue full)", with.dropped);
    let (p50, p99, max) = p50_p99_max(&mut millis(&with.delays));
    println!(
        "detection delay   p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms over {} triggers (first event to webhook, for = 0s)",
        with.delays.len()
    );
    println!(
        "settings          eval_interval 1s, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}
