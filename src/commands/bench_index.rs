//! `shiplog bench index`: shiplog's full ingest path (decode, WAL, dedupe, index) and raw
//! tantivy on the same documents, in one run, with bytes on disk per event.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use shiplog_core::codec::{self, DecodeLimits};
use shiplog_core::{Event, Timestamp};
use shiplog_indexer::{Indexer, IndexerConfig};

use super::bench::{cpu_time, load_corpus, make_event};
use crate::cli::BenchIndexArgs;
use shiplog_indexer::store::dir_bytes as dir_size;

struct Side {
    elapsed: Duration,
    cpu: Duration,
    disk: u64,
    /// Commits the side made: more commits mean smaller segments and more merging.
    commits: u64,
}

/// Runs the comparison.
pub fn run(args: BenchIndexArgs) -> anyhow::Result<ExitCode> {
    if args.events == 0 || args.batch == 0 {
        bail!("--events and --batch must be at least 1");
    }
    let corpus = load_corpus(&args.corpus)?;
    eprintln!(
        "generating {} events from {} systems ...",
        args.events,
        corpus.len()
    );
    let base = Timestamp::now();
    let mut batches: Vec<Vec<Event>> = Vec::new();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut raw_bytes = 0u64;
    let mut whole = zstd::stream::write::Encoder::new(CountingSink(0), 3)?;
    let mut start = 0;
    while start < args.events {
        let end = (start + args.batch).min(args.events);
        let events: Vec<Event> = (start..end).map(|i| make_event(&corpus, i, base)).collect();
        let raw = codec::encode_ndjson(&events, None);
        // The header line is framing, not data: leave it out of the NDJSON reference.
        let data = &raw[raw.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1)..];
        raw_bytes += data.len() as u64;
        whole.write_all(data)?;
        bodies.push(zstd::bulk::compress(&raw, 3)?);
        batches.push(events);
        start = end;
    }
    let zstd3_bytes = whole.finish()?.0;
    let mut config = IndexerConfig::default();
    if let Some(threads) = args.writer_threads {
        config.writer_threads = threads.max(1);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let n = args.events as f64;
    let mb = raw_bytes as f64 / 1e6;
    let line = |name: &str, s: &Side| {
        let secs = s.elapsed.as_secs_f64();
        println!(
            "{name:<12} {:>9.0} events/s  {:>6.1} MB/s  {:>5.1} MB/s per core  {:>5.1} MB per CPU-second  {:>6.1} s wall  {:>6.1} s CPU  {:>5.0} bytes/event on disk  {:>4} commits",
            n / secs,
            mb / secs,
            mb / secs / cores as f64,
            mb / s.cpu.as_secs_f64().max(1e-9),
            secs,
            s.cpu.as_secs_f64(),
            s.disk as f64 / n,
            s.commits
        );
    };
    println!(
        "events {}  raw NDJSON {:.1} MB ({:.0} bytes/event)  zstd -3 of it {:.1} MB  cores {cores}  writer threads {}",
        args.events,
        mb,
        raw_bytes as f64 / n,
        zstd3_bytes as f64 / 1e6,
        config.writer_threads
    );
    let bodies: Arc<[Vec<u8>]> = bodies.into();
    let rounds = args.rounds.max(1);
    let mut results = Vec::new();
    let mut batches = Some(batches);
    for round in 1..=rounds {
        // Later rounds rebuild the raw side's documents from the bodies, outside the timing.
        let docs = match batches.take() {
            Some(b) => b,
            None => decode_all(&bodies)?,
        };
        eprintln!(
            "round {round}/{rounds}: raw tantivy indexing {} events ...",
            args.events
        );
        let raw_dir = tempfile::tempdir()?;
        let cpu0 = cpu_time();
        let report = shiplog_indexer::baseline::index_raw(raw_dir.path(), &docs, &config)?;
        let raw = Side {
            elapsed: report.elapsed,
            cpu: cpu_time() - cpu0,
            disk: dir_size(raw_dir.path()),
            commits: report.commits,
        };
        drop(raw_dir);
        drop(docs);
        eprintln!(
            "round {round}/{rounds}: shiplog decode, WAL, dedupe, index {} events ...",
            args.events
        );
        let ours_dir = tempfile::tempdir()?;
        let ours = run_shiplog(ours_dir.path(), bodies.clone(), &config)?;
        drop(ours_dir);
        println!("round {round}");
        line("raw tantivy", &raw);
        line("shiplog", &ours);
        let ratio = raw.elapsed.as_secs_f64() / ours.elapsed.as_secs_f64();
        println!("throughput ratio shiplog/raw tantivy: {ratio:.3}");
        results.push((ratio, raw, ours));
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, raw, ours) = &results[results.len() / 2];
    let all: Vec<String> = results.iter().map(|r| format!("{:.3}", r.0)).collect();
    println!(
        "median throughput ratio shiplog/raw tantivy over {rounds} rounds: {ratio:.3} (target >= 0.85; all: {})",
        all.join(", ")
    );
    println!(
        "shiplog MB/s per core in the median round: {:.1} (target >= 15)",
        mb / ours.elapsed.as_secs_f64() / cores as f64
    );
    let stages = stage_costs(&bodies, &config)?;
    println!(
        "shiplog-only stages, one thread each, CPU seconds for all events: decode (zstd + JSON) {:.1} s, WAL payload (zstd -1) {:.1} s, dedupe {:.1} s; {:.1} s in all, {:.0}% of raw tantivy's CPU in the median round",
        stages.decode.as_secs_f64(),
        stages.wal.as_secs_f64(),
        stages.dedupe.as_secs_f64(),
        stages.total().as_secs_f64(),
        100.0 * stages.total().as_secs_f64() / raw.cpu.as_secs_f64().max(1e-9)
    );
    println!(
        "on disk (index + doc store + WAL at rest): {:.3} of raw NDJSON (target <= 0.33), {:.2}x zstd -3 of it",
        ours.disk as f64 / raw_bytes as f64,
        ours.disk as f64 / zstd3_bytes as f64
    );
    Ok(ExitCode::SUCCESS)
}

fn run_shiplog(dir: &Path, bodies: Arc<[Vec<u8>]>, config: &IndexerConfig) -> anyhow::Result<Side> {
    let config = IndexerConfig {
        data_dir: dir.to_path_buf(),
        ..config.clone()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cpu0 = cpu_time();
    let (elapsed, commits) = runtime.block_on(async move {
        let indexer = Arc::new(tokio::task::spawn_blocking(move || Indexer::open(config)).await??);
        // Oldest batch first, as collectors send them: the workers take the next index.
        let next_batch = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (next_batch, bodies, indexer) =
                (next_batch.clone(), bodies.clone(), indexer.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next_batch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= bodies.len() {
                        break;
                    }
                    let bodies = bodies.clone();
                    let batch = tokio::task::spawn_blocking(move || {
                        codec::decode_batch(
                            &bodies[i],
                            true,
                            DecodeLimits::default(),
                            Timestamp::now(),
                        )
                    })
                    .await??;
                    // Four batches in flight never fill the queue of 64, so no retry is needed.
                    indexer
                        .ingest_with_sources(batch.events, batch.sources)
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for w in workers {
            w.await??;
        }
        let ix = indexer.clone();
        tokio::task::spawn_blocking(move || ix.flush()).await??;
        let elapsed = started.elapsed();
        let commits = indexer.stats().commits;
        tokio::task::spawn_blocking(move || indexer.close()).await?;
        anyhow::Ok((elapsed, commits))
    })?;
    let cpu = cpu_time() - cpu0;
    Ok(Side {
        elapsed,
        cpu,
        disk: dir_size(dir),
        commits,
    })
}

/// The events of every body, for the raw side of a later round.
fn decode_all(bodies: &[Vec<u8>]) -> anyhow::Result<Vec<Vec<Event>>> {
    eprintln!("decoding the documents again for the raw side ...");
    bodies
        .iter()
        .map(|b| {
            Ok(codec::decode_batch(b, true, DecodeLimits::default(), Timestamp::now())?.events)
        })
        .collect()
}

/// CPU time of the stages only shiplog's path has, each run alone on this thread.
struct Stages {
    decode: Duration,
    wal: Duration,
    dedupe: Duration,
}

impl Stages {
    fn total(&self) -> Duration {
        self.decode + self.wal + self.dedupe
    }
}

/// Runs decode, WAL payload encoding and dedupe over every batch on this thread alone,
/// so the difference to raw tantivy can be read stage by stage.
fn stage_costs(bodies: &[Vec<u8>], config: &IndexerConfig) -> anyhow::Result<Stages> {
    eprintln!("timing shiplog-only stages ...");
    let thread_cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer for the duration of the call.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    };
    let mut encoder = shiplog_indexer::wal::PayloadEncoder::new();
    let window = i64::try_from(config.dedupe_window.as_nanos()).unwrap_or(i64::MAX);
    let mut dedupe = shiplog_indexer::dedupe::Dedupe::new(config.dedupe_ids, window, None);
    let mut stages = Stages {
        decode: Duration::ZERO,
        wal: Duration::ZERO,
        dedupe: Duration::ZERO,
    };
    let (mut wal_bytes, mut new) = (0, 0);
    // Batch by batch, so only one decoded batch is in memory at a time.
    for body in bodies {
        let t0 = thread_cpu();
        let batch = codec::decode_batch(body, true, DecodeLimits::default(), Timestamp::now())?;
        let t1 = thread_cpu();
        wal_bytes += encoder.encode(&batch.sources).len();
        let t2 = thread_cpu();
        for e in &batch.events {
            if dedupe.check_new(e.id, e.ts, || anyhow::Ok(false))? {
                new += 1;
            }
        }
        let t3 = thread_cpu();
        stages.decode += t1 - t0;
        stages.wal += t2 - t1;
        stages.dedupe += t3 - t2;
    }
    tracing::debug!(wal_bytes, new, "stage run done");
    Ok(stages)
}

/// Counts bytes written, for the size of a whole-stream zstd.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
