//! `shiplog bench ingest`: events made from real log lines, pushed through HTTP ingest into
//! a fresh node in this process, timed from the first request to the last ack.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shiplog_core::{Event, EventId, Level, Stream, Timestamp};
use shiplog_indexer::{Indexer, IndexerConfig};
use shiplog_query::AppState;
use tokio_util::sync::CancellationToken;

use crate::cli::BenchIngestArgs;

/// The `p`th percentile (0 to 100) of `samples`, by nearest rank: the smallest sample with
/// at least p% of all samples at or below it (p100 is the largest). Every bench command
/// reports percentiles this way. Sorts `samples`; NaN when there are none.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable_by(f64::total_cmp);
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// p50, p99 and the largest of `samples` (see [`percentile`]).
pub fn p50_p99_max(samples: &mut [f64]) -> (f64, f64, f64) {
    (
        percentile(samples, 50.0),
        percentile(samples, 99.0),
        percentile(samples, 100.0),
    )
}

/// Each duration in milliseconds.
pub fn millis(durations: &[Duration]) -> Vec<f64> {
    durations.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}

/// User plus system CPU seconds of the process or thread whose `/proc/.../stat` is at
/// `path`; NaN when it cannot be read (the process is gone). Every bench command reads CPU
/// time this way.
pub fn stat_cpu_seconds(path: impl AsRef<Path>) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name (which may hold spaces and ')'); utime
    // and stime are the 14th and 15th of the whole line, 11th and 12th after the name.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports in clock ticks of 1/100 s (USER_HZ) on every common platform.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU time (user + system) this process has used so far; zero if /proc cannot be read.
pub fn cpu_time() -> Duration {
    let seconds = stat_cpu_seconds("/proc/self/stat");
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

/// Reads every `<system>/<system>_2k.log` under the corpus directory.
pub fn load_corpus(dir: &Path) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut systems = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot read corpus {}: pass --corpus with the loghub folder",
            dir.display()
        )
    })?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.path().join(format!("{name}_2k.log"));
        if !file.is_file() {
            continue;
        }
        let bytes = std::fs::read(&file)?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        systems.push((name.to_lowercase(), lines));
    }
    systems.sort();
    if systems.is_empty() {
        bail!("no <system>/<system>_2k.log files under {}", dir.display());
    }
    Ok(systems)
}

/// The i-th benchmark event: real lines in turn from each system, fresh ids and times.
pub fn make_event(corpus: &[(String, Vec<String>)], i: usize, base: Timestamp) -> Event {
    let (system, lines) = &corpus[i % corpus.len()];
    let line = &lines[(i / corpus.len()) % lines.len()];
    let ts = base.offset(i as i64 * 1_000);
    let mut e = Event::log(ts, line.clone());
    e.node = "bench".into();
    e.container_id = format!("{system}-container");
    e.container_name = system.clone();
    e.image = format!("{system}:latest");
    e.service = system.clone();
    e.stream = Some(Stream::Stdout);
    e.level = Level::sniff(line);
    e.received = Some(ts);
    e.id = EventId::for_source("bench", &e.container_id, "stdout", ts, 0);
    e
}

/// A node (indexer and API on a loopback port) inside the benchmark's own process.
pub struct LocalNode {
    /// The indexer behind the API.
    pub indexer: Arc<Indexer>,
    /// `http://127.0.0.1:<port>`
    pub url: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LocalNode {
    /// Opens a data directory with default settings and serves the API on a free port.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let config = IndexerConfig {
            data_dir: data_dir.to_path_buf(),
            ..IndexerConfig::default()
        };
        let indexer = Arc::new(tokio::task::spawn_blocking(move || Indexer::open(config)).await??);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shutdown = CancellationToken::new();
        let state = AppState {
            shutdown: shutdown.clone(),
            ..AppState::new(indexer.clone())
        };
        let server = tokio::spawn(shiplog_query::serve(listener, state));
        Ok(LocalNode {
            indexer,
            url,
            shutdown,
            server,
        })
    }

    /// Stops the API, then commits and closes the indexer.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let _ = self.server.await;
        let indexer = self.indexer;
        tokio::task::spawn_blocking(move || indexer.close()).await?;
        Ok(())
    }
}

/// Runs the ingest benchmark.
pub fn ingest(args: BenchIngestArgs) -> anyhow::Result<ExitCode> {
    if args.events == 0 || args.batch == 0 || args.concurrency == 0 {
        bail!("--events, --batch and --concurrency must be at least 1");
    }
    let corpus = load_corpus(&args.corpus)?;
    let tmp;
    let data_dir: PathBuf = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    eprintln!(
        "corpus: {} systems, {} lines; encoding {} events in batches of {}",
        corpus.len(),
        corpus.iter().map(|c| c.1.len()).sum::<usize>(),
        args.events,
        args.batch
    );
    let base = Timestamp::now();
    let mut batches = Vec::new();
    let mut raw_bytes = 0usize;
    let mut wire_bytes = 0usize;
    let mut start = 0;
    while start < args.events {
        let end = (start + args.batch).min(args.events);
        let events: Vec<Event> = (start..end).map(|i| make_event(&corpus, i, base)).collect();
        let raw = shiplog_core::codec::encode_ndjson(&events, None);
        raw_bytes += raw.len();
        let body = zstd::bulk::compress(&raw, 3)?;
        wire_bytes += body.len();
        batches.push(body);
        start = end;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (elapsed, accepted, retries) =
        runtime.block_on(run_ingest(&data_dir, batches, args.concurrency))?;
    let secs = elapsed.as_secs_f64();
    let disk = shiplog_indexer::store::dir_bytes(&data_dir.join("logs"));
    println!("events            {accepted}");
    println!(
        "elapsed           {secs:.2} s (first request to all events committed and searchable)"
    );
    println!("throughput        {:.0} events/s", accepted as f64 / secs);
    println!(
        "raw NDJSON        {:.1} MB ({:.1} MB/s)",
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / 1e6 / secs
    );
    println!(
        "on the wire       {:.1} MB zstd ({:.2}x smaller)",
        wire_bytes as f64 / 1e6,
        raw_bytes as f64 / wire_bytes as f64
    );
    println!(
        "index on disk     {:.1} MB ({:.0} bytes/event, {:.2} of raw NDJSON)",
        disk as f64 / 1e6,
        disk as f64 / accepted.max(1) as f64,
        disk as f64 / raw_bytes as f64
    );
    println!("429 retries       {retries}");
    println!(
        "settings          batch {} events, {} in flight, {} cores",
        args.batch,
        args.concurrency,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_ingest(
    data_dir: &Path,
    batches: Vec<Vec<u8>>,
    concurrency: usize,
) -> anyhow::Result<(Duration, usize, usize)> {
    let node = LocalNode::start(data_dir).await?;
    let indexer = node.indexer.clone();
    let url = format!("{}/api/v1/ingest", node.url);
    let http = reqwest::Client::new();
    let total = batches.len();
    let queue = Arc::new(std::sync::Mutex::new(
        batches.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (queue, http, url, done) = (queue.clone(), http.clone(), url.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut accepted = 0usize;
            let mut retries = 0usize;
            loop {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let Some((n, body)) = next else { break };
                loop {
                    let resp = http
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .header("content-encoding", "zstd")
                        .header("x-shiplog-batch-id", format!("bench-{n}"))
                        .body(body.clone())
                        .send()
                        .await?;
                    if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    if !resp.status().is_success() {
                        bail!(
                            "ingest answered {}: {}",
                            resp.status(),
                            resp.text().await.unwrap_or_default()
                        );
                    }
                    let v: serde_json::Value = resp.json().await?;
                    accepted += v["accepted"].as_u64().unwrap_or(0) as usize;
                    break;
                }
                let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if d % (total / 10).max(1) == 0 {
                    eprintln!(
                        "  {d}/{total} batches acked ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            anyhow::Ok((accepted, retries))
        }));
    }
    let mut accepted = 0;
    let mut retries = 0;
    for w in workers {
        let (a, r) = w.await??;
        accepted += a;
        retries += r;
    }
    let acked_after = started.elapsed();
    // Indexing is only done once the last batch is committed and searchable.
    let ix = indexer.clone();
    tokio::task::spawn_blocking(move || ix.flush()).await??;
    let elapsed = started.elapsed();
    eprintln!(
        "  last ack after {:.2} s, all searchable after {:.2} s",
        acked_after.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    node.stop().await?;
    Ok((elapsed, accepted, retries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let dir = tempfile::tempdir().unwrap();
        let stat = dir.path().join("stat");
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        // utime stime ...
        std::fs::write(
            &stat,
            "4242 (tokio rt) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 3 0",
        )
        .unwrap();
        assert_eq!(stat_cpu_seconds(&stat), 3.8);
        assert!(stat_cpu_seconds(dir.path().join("gone")).is_nan());
    }

    #[test]
    fn percentiles_are_nearest_rank_and_nan_when_empty() {
        let mut samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p50_p99_max(&mut samples), (50.0, 99.0, 100.0));
        let mut few = vec![3.0, 1.0, 2.0];
        assert_eq!(percentile(&mut few, 0.0), 1.0);
        assert_eq!(percentile(&mut few, 50.0), 2.0);
        assert_eq!(percentile(&mut few, 99.0), 3.0);
        assert!(percentile(&mut [], 50.0).is_nan());
        assert_eq!(
            millis(&[Duration::from_micros(1500)]),
            vec![1.5],
            "durations become milliseconds"
        );
    }
}
