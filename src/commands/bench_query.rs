//! `shiplog bench query`: four everyday queries over millions of events made from Loghub
//! lines, timed through the HTTP API of an in-process node and through raw tantivy on the
//! same index directory (`shiplog_indexer::baseline_query`), after checking both sides
//! answer the same.
//!
//! The index is built once per `--data-dir`: a finished build leaves `bench-query.json`
//! there, and a later run with the same `--events` measures straight away.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use shiplog_core::{Event, EventId, Timestamp};
use shiplog_indexer::baseline_query::{RawDays, RawHits, RawRatio};
use shiplog_indexer::{Indexer, IndexerConfig};

use super::bench::{LocalNode, load_corpus, make_event, percentile};

/// Flags of `bench query`.
#[derive(Debug, Args)]
pub struct BenchQueryArgs {
    /// Events in the index (ignored when --data-dir already holds a finished build of the
    /// same size; a different size there is refused).
    #[arg(long, default_value_t = 5_000_000)]
    pub events: usize,
    /// Timed runs of each query on each side (API and raw tantivy, alternating).
    #[arg(long, default_value_t = 50)]
    pub repeat: usize,
    /// Untimed runs of each query on each side before the timed ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Hits per search page, on both sides (the API's default page size).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// The term query: a keyword field and value, `field:value`. Services are
    /// `<system>-0`, `-1` and `-2`, e.g. `hdfs-0`.
    #[arg(long, default_value = "service:hdfs-0")]
    pub term: String,
    /// The phrase query: words that follow each other in corpus lines.
    #[arg(long, default_value = "Receiving block")]
    pub phrase: String,
    /// Events per ingest batch while building.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Directory of Loghub samples (one folder per system with <name>_2k.log).
    #[arg(long, default_value = "../shared/data/loghub")]
    pub corpus: PathBuf,
    /// Where to build the index and keep it, so later runs skip the build [default: a
    /// temporary directory, removed afterwards].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Service instances per Loghub system: 7 systems give 21 services, so a top 10 leaves
/// some out.
const INSTANCES: usize = 3;
/// The events span this much time, the window every aggregation covers.
const SPAN_NS: i64 = 86_400 * 1_000_000_000;
const META: &str = "bench-query.json";

/// What a finished build leaves in the data directory.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    events: usize,
    since: Timestamp,
    until: Timestamp,
}

/// The i-th event: a Loghub line as `make_event` gives it (service per system, level
/// sniffed from the line), spread evenly over the window and split into service instances.
fn event(corpus: &[(String, Vec<String>)], i: usize, n: usize, since: Timestamp) -> Event {
    let mut e = make_event(corpus, i, since);
    let ts = since.offset((i as i128 * SPAN_NS as i128 / n as i128) as i64);
    let instance = (i / corpus.len()) % INSTANCES;
    e.service = format!("{}-{instance}", e.service);
    e.container_id = format!("{}-container", e.service);
    e.container_name = e.service.clone();
    e.ts = ts;
    e.received = Some(ts);
    e.id = EventId::for_source("bench", &e.container_id, "stdout", ts, 0);
    e
}

/// Runs the benchmark.
pub fn run(args: BenchQueryArgs) -> anyhow::Result<ExitCode> {
    if args.events == 0 || args.repeat == 0 || args.batch == 0 || args.limit == 0 {
        bail!("--events, --repeat, --batch and --limit must be at least 1");
    }
    let Some((term_field, term_value)) = args.term.split_once(':') else {
        bail!("--term must be field:value, e.g. service:hdfs-0");
    };
    let tmp;
    let data_dir: PathBuf = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let meta = match read_meta(&data_dir)? {
        Some(m) if m.events == args.events => {
            eprintln!(
                "reusing the index of {} events in {}",
                m.events,
                data_dir.display()
            );
            m
        }
        Some(m) => bail!(
            "{} holds a bench index of {} events, not {}: pass --events {} or another --data-dir",
            data_dir.display(),
            m.events,
            args.events,
            m.events
        ),
        None => {
            if data_dir.join("logs").exists() {
                bail!(
                    "{} has a logs/ directory but no finished bench build ({META}): use an empty directory",
                    data_dir.display()
                );
            }
            let corpus = load_corpus(&args.corpus)?;
            runtime.block_on(build(&data_dir, corpus, args.events, args.batch))?
        }
    };

    let node = runtime.block_on(LocalNode::start(&data_dir))?;
    let raw = RawDays::open(&data_dir)?;
    let http = reqwest::Client::new();
    let search_url = format!("{}/api/v1/search", node.url);
    let agg_url = format!("{}/api/v1/aggregate", node.url);
    let limit = args.limit.to_string();
    let window = |agg: serde_json::Value| {
        serde_json::json!({
            "q": "",
            "since": meta.since.to_rfc3339(),
            "until": meta.until.to_rfc3339(),
            "aggs": {"a": agg},
        })
    };
    // Timed up to the whole body received; decoding it is the client's business and is left
    // out, as the raw side hands back values that need no decoding.
    let rt = &runtime;
    let get = |q: String| {
        let req = http
            .get(&search_url)
            .query(&[("q", q.as_str()), ("limit", limit.as_str())]);
        move || fetch(rt, req.try_clone().expect("no streaming body"))
    };
    let post = |body: serde_json::Value| {
        let req = http.post(&agg_url).json(&body);
        move || fetch(rt, req.try_clone().expect("no streaming body"))
    };

    eprintln!(
        "{} day indexes; checking that both sides agree ...",
        raw.day_count()
    );
    let term_api = get(args.term.clone());
    let term_raw = || raw.term(term_field, term_value, args.limit);
    let term_label = format!("term {}", args.term);
    check_hits(&term_label, &term_api()?, &term_raw()?)?;

    let phrase_api = get(format!("\"{}\"", args.phrase));
    let phrase_raw = || raw.phrase(&args.phrase, args.limit);
    let phrase_label = format!("phrase \"{}\"", args.phrase);
    check_hits(&phrase_label, &phrase_api()?, &phrase_raw()?)?;

    let hist_api = post(window(serde_json::json!({"date_histogram": {}})));
    let first: serde_json::Value = serde_json::from_slice(&hist_api()?)?;
    let interval_ns = first["aggs"]["a"]["interval_ms"]
        .as_i64()
        .context("histogram answer without interval_ms")?
        * 1_000_000;
    let hist_raw = || raw.date_histogram(meta.since, meta.until, interval_ns);
    check_histogram(&first, &hist_raw()?, interval_ns)?;

    let ratio_api = post(window(
        serde_json::json!({"error_ratio": {"by": "service", "size": 10}}),
    ));
    let ratio_raw = || raw.error_ratio(meta.since, meta.until, "service", 10);
    check_ratios(&ratio_api()?, &ratio_raw()?)?;

    let rows = vec![
        measure(&term_label, &args, &term_api, &|| term_raw().map(drop))?,
        measure(&phrase_label, &args, &phrase_api, &|| {
            phrase_raw().map(drop)
        })?,
        measure("date histogram 24 h", &args, &hist_api, &|| {
            hist_raw().map(drop)
        })?,
        measure("error ratio by service, top 10", &args, &ratio_api, &|| {
            ratio_raw().map(drop)
        })?,
    ];
    drop(raw);
    runtime.block_on(node.stop())?;

    println!(
        "events {}  days {}  runs {} (after {} warm-up)  page {} hits  cores {}",
        meta.events,
        days_in(&data_dir),
        args.repeat,
        args.warmup,
        args.limit,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>16} {:>16}",
        "query", "API p50", "API p99", "raw p50", "raw p99", "p50 ratio", "p99 ratio"
    );
    let mut met = true;
    for r in &rows {
        let p50 = r.api.0 / r.raw.0;
        let p99 = r.api.1 / r.raw.1;
        met &= p50 <= 1.5 && p99 <= 2.0;
        println!(
            "{:<34} {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>5.2} (<= 1.5) {:>5.2} (<= 2.0)",
            r.name, r.api.0, r.api.1, r.raw.0, r.raw.1, p50, p99
        );
    }
    println!(
        "targets (API p50 <= 1.5x raw, p99 <= 2x): {}",
        if met { "met" } else { "NOT met" }
    );
    Ok(ExitCode::SUCCESS)
}

fn read_meta(dir: &Path) -> anyhow::Result<Option<Meta>> {
    match std::fs::read(dir.join(META)) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).with_context(|| format!("reading {META}"))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn days_in(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("logs")).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.path().join("meta.json").is_file())
            .count()
    })
}

/// Builds the index through the indexer's ingest (WAL, dedupe, day writers), as events
/// arriving from collectors would be stored, and records the window it covers.
async fn build(
    data_dir: &Path,
    corpus: Vec<(String, Vec<String>)>,
    n: usize,
    batch: usize,
) -> anyhow::Result<Meta> {
    // Whole seconds, so the window printed in RFC 3339 and parsed back is the same window.
    let now = Timestamp::now().as_nanos();
    let until = Timestamp(now - now.rem_euclid(1_000_000_000));
    let since = until.offset(-SPAN_NS);
    let config = IndexerConfig {
        data_dir: data_dir.to_path_buf(),
        ..IndexerConfig::default()
    };
    let indexer = Arc::new(tokio::task::spawn_blocking(move || Indexer::open(config)).await??);
    let corpus = Arc::new(corpus);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    eprintln!(
        "building an index of {n} events from {} systems in {} ...",
        corpus.len(),
        data_dir.display()
    );
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let d = done.load(Ordering::Relaxed);
                let secs = started.elapsed().as_secs_f64();
                eprintln!(
                    "  {d}/{n} events acked after {secs:.0} s ({:.0} events/s)",
                    d as f64 / secs
                );
            }
        })
    };
    let mut workers = Vec::new();
    // Four batches in flight keep the WAL and writer threads busy and never fill the
    // indexer's queue of 64, so no 429-style retry is needed.
    for _ in 0..4 {
        let (indexer, corpus, next, done) =
            (indexer.clone(), corpus.clone(), next.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let start = next.fetch_add(batch, Ordering::Relaxed);
                if start >= n {
                    break;
                }
                let end = (start + batch).min(n);
                let corpus = corpus.clone();
                let (events, sources) = tokio::task::spawn_blocking(move || {
                    let events: Vec<Event> =
                        (start..end).map(|i| event(&corpus, i, n, since)).collect();
                    let sources = events
                        .iter()
                        .map(|e| serde_json::to_vec(e).expect("events serialise"))
                        .collect::<Vec<_>>();
                    (events, sources)
                })
                .await?;
                indexer.ingest_with_sources(events, sources).await?;
                done.fetch_add(end - start, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    let ix = indexer.clone();
    tokio::task::spawn_blocking(move || ix.flush()).await??;
    progress.abort();
    eprintln!(
        "  all {n} events committed after {:.0} s; closing (merges finish) ...",
        started.elapsed().as_secs_f64()
    );
    tokio::task::spawn_blocking(move || indexer.close()).await?;
    let meta = Meta {
        events: n,
        since,
        until,
    };
    std::fs::write(data_dir.join(META), serde_json::to_vec_pretty(&meta)?)?;
    eprintln!("  built in {:.0} s", started.elapsed().as_secs_f64());
    Ok(meta)
}

/// Sends a request and reads the whole answer, failing on anything but 2xx.
fn fetch(
    runtime: &tokio::runtime::Runtime,
    req: reqwest::RequestBuilder,
) -> anyhow::Result<Vec<u8>> {
    runtime.block_on(async move {
        let resp = req.send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("API answered {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    })
}

fn check_hits(name: &str, api: &[u8], raw: &RawHits) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(api)?;
    let total = v["total"].as_u64().context("search answer without total")?;
    let ids = |hits: Vec<serde_json::Value>| -> Vec<String> {
        let mut ids: Vec<String> = hits
            .iter()
            .map(|h| h["id"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        ids
    };
    let api_ids = ids(v["hits"].as_array().cloned().unwrap_or_default());
    let raw_ids = ids(raw
        .sources
        .iter()
        .map(|s| serde_json::from_slice(s))
        .collect::<Result<_, _>>()?);
    eprintln!(
        "  {name}: API {total} hits ({} returned), raw {} hits ({} returned)",
        api_ids.len(),
        raw.total,
        raw_ids.len()
    );
    if total != raw.total || api_ids != raw_ids {
        bail!("{name}: the API and raw tantivy disagree");
    }
    if total == 0 {
        bail!("{name}: nothing matches, so there is nothing to measure");
    }
    Ok(())
}

fn check_histogram(
    api: &serde_json::Value,
    raw: &[(i64, u64)],
    interval_ns: i64,
) -> anyhow::Result<()> {
    let mut buckets = Vec::new();
    for b in api["aggs"]["a"]["buckets"].as_array().into_iter().flatten() {
        let count = b["count"].as_u64().unwrap_or(0);
        if count > 0 {
            let ts = Timestamp::parse_rfc3339(b["ts"].as_str().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("bucket time: {e}"))?;
            buckets.push((ts.as_nanos(), count));
        }
    }
    let sum = |b: &[(i64, u64)]| b.iter().map(|x| x.1).sum::<u64>();
    eprintln!(
        "  date histogram: interval {} s; API {} non-empty buckets, {} events; raw {} non-empty buckets, {} events",
        interval_ns / 1_000_000_000,
        buckets.len(),
        sum(&buckets),
        raw.len(),
        sum(raw)
    );
    if buckets != raw {
        bail!("date histogram: the API and raw tantivy disagree");
    }
    Ok(())
}

fn check_ratios(api: &[u8], raw: &[RawRatio]) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(api)?;
    let groups: Vec<RawRatio> = v["aggs"]["a"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| RawRatio {
            key: g["key"].as_str().unwrap_or_default().to_string(),
            errors: g["errors"].as_u64().unwrap_or(0),
            total: g["total"].as_u64().unwrap_or(0),
        })
        .collect();
    let show = |g: &[RawRatio]| {
        g.iter()
            .map(|g| format!("{} {}/{}", g.key, g.errors, g.total))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "  error ratio: API {} groups: {}",
        groups.len(),
        show(&groups)
    );
    eprintln!("  error ratio: raw {} groups: {}", raw.len(), show(raw));
    if groups != raw {
        bail!("error ratio: the API and raw tantivy disagree");
    }
    Ok(())
}

struct Row {
    name: String,
    /// p50 and p99 in milliseconds.
    api: (f64, f64),
    raw: (f64, f64),
}

/// Warms both sides up, then times them in alternation so that load from elsewhere on the
/// machine falls on both alike.
fn measure<A, R>(name: &str, args: &BenchQueryArgs, api: &A, raw: &R) -> anyhow::Result<Row>
where
    A: Fn() -> anyhow::Result<Vec<u8>>,
    R: Fn() -> shiplog_indexer::Result<()>,
{
    eprintln!("timing {name} ...");
    for _ in 0..args.warmup {
        api()?;
        raw()?;
    }
    let mut api_ms = Vec::with_capacity(args.repeat);
    let mut raw_ms = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let t = Instant::now();
        api()?;
        api_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        raw()?;
        raw_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Row {
        name: name.to_string(),
        api: (percentile(&mut api_ms, 50.0), percentile(&mut api_ms, 99.0)),
        raw: (percentile(&mut raw_ms, 50.0), percentile(&mut raw_ms, 99.0)),
    })
}
