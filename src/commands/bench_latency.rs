//! `shiplog bench latency`: how long after its ingest ack a batch becomes searchable,
//! through the HTTP API as a user sees it, at fixed event rates.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use shiplog_core::{Event, EventId, Timestamp};

use super::bench::{LocalNode, load_corpus, make_event, millis, p50_p99_max};
use crate::cli::BenchLatencyArgs;

/// Batches sent per second at every rate.
const BATCHES_PER_SECOND: usize = 50;
/// One batch in this many is followed until it is searchable.
const SAMPLE_EVERY: usize = 5;

/// Runs every rate and prints p50/p99.
pub fn run(args: BenchLatencyArgs) -> anyhow::Result<ExitCode> {
    if args.rates.iter().any(|r| *r < BATCHES_PER_SECOND) || args.seconds == 0 {
        bail!("every rate must be at least {BATCHES_PER_SECOND} events/s and --seconds at least 1");
    }
    let corpus = Arc::new(load_corpus(&args.corpus)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    for rate in &args.rates {
        let RateRun {
            delays,
            acks,
            sent,
            late,
        } = runtime.block_on(one_rate(corpus.clone(), *rate, args.seconds))?;
        if delays.is_empty() {
            bail!("no sample became searchable at {rate} events/s");
        }
        let (p50, p99, max) = p50_p99_max(&mut millis(&delays));
        println!(
            "{rate:>6} events/s: ack -> searchable p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms ({} samples, {sent} events sent, sender behind schedule {late} times)",
            delays.len()
        );
        let (p50, p99, max) = p50_p99_max(&mut millis(&acks));
        println!(
            "{rate:>6} events/s: POST -> ack p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} batches; merges run in the background meanwhile)",
            acks.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What one rate measured.
struct RateRun {
    /// Ack to searchable, of the sampled batches.
    delays: Vec<Duration>,
    /// POST to ack, of every batch: a merge or commit that held ingest up shows here.
    acks: Vec<Duration>,
    /// Events sent.
    sent: usize,
    /// Times the sender fell behind its schedule.
    late: usize,
}

async fn one_rate(
    corpus: Arc<Vec<(String, Vec<String>)>>,
    rate: usize,
    seconds: u64,
) -> anyhow::Result<RateRun> {
    let dir = tempfile::tempdir()?;
    let node = LocalNode::start(dir.path()).await?;
    let base_url = node.url.clone();
    let http = reqwest::Client::new();
    let per_batch = rate / BATCHES_PER_SECOND;
    let total_batches = BATCHES_PER_SECOND * seconds as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / BATCHES_PER_SECOND as u32);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut probes = Vec::new();
    let mut late = 0;
    let mut sent = 0;
    for b in 0..total_batches {
        ticker.tick().await;
        if started.elapsed()
            > Duration::from_secs(1) * (b as u32 + 1) / BATCHES_PER_SECOND as u32
                + Duration::from_millis(50)
        {
            late += 1;
        }
        let now = Timestamp::now();
        let marker = format!("probe{b}x{rate}");
        let events: Vec<Event> = (0..per_batch)
            .map(|i| {
                let mut e = make_event(&corpus, b * per_batch + i, now);
                if i == 0 {
                    e.message = format!("{marker} {}", e.message);
                }
                e.id = EventId::for_content(&[marker.as_bytes(), &i.to_le_bytes()]);
                e
            })
            .collect();
        let body = shiplog_core::codec::encode_batch(&events, None, 3);
        sent += events.len();
        let (http, url) = (http.clone(), base_url.clone());
        let sample = b % SAMPLE_EVERY == 0;
        probes.push(tokio::spawn(async move {
            let posted = Instant::now();
            let resp = http
                .post(format!("{url}/api/v1/ingest"))
                .header("content-type", "application/x-ndjson")
                .header("content-encoding", "zstd")
                .body(body)
                .send()
                .await?;
            if !resp.status().is_success() {
                bail!("ingest answered {}", resp.status());
            }
            let acked = Instant::now();
            let ack = acked - posted;
            if !sample {
                return Ok((ack, None));
            }
            loop {
                let v: serde_json::Value = http
                    .get(format!("{url}/api/v1/search"))
                    .query(&[("q", marker.as_str()), ("limit", "1")])
                    .send()
                    .await?
                    .json()
                    .await?;
                if v["total"].as_u64().unwrap_or(0) > 0 {
                    return Ok((ack, Some(acked.elapsed())));
                }
                if acked.elapsed() > Duration::from_secs(30) {
                    bail!("batch {marker} not searchable 30 s after its ack");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let (mut delays, mut acks) = (Vec::new(), Vec::new());
    for p in probes {
        let (ack, searchable) = p.await??;
        acks.push(ack);
        delays.extend(searchable);
    }
    node.stop().await?;
    Ok(RateRun {
        delays,
        acks,
        sent,
        late,
    })
}
