//! `shiplog bench predictions`: lookups of one prediction by request id among many (through
//! the HTTP API, access record included), and the throughput of a streamed export.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use shiplog_core::{Event, EventId, Kind, Stream, Timestamp};

use crate::commands::bench::{LocalNode, p50_p99_max};

/// Flags of `bench predictions`.
#[derive(Debug, Args)]
pub struct BenchPredictionsArgs {
    /// Predictions stored before measuring.
    #[arg(long, default_value_t = 10_000_000)]
    pub records: usize,
    /// Lookups by request id to time.
    #[arg(long, default_value_t = 2_000)]
    pub lookups: usize,
    /// Data directory to keep (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

const MODELS: [&str; 5] = ["churn", "fraud", "ranker", "pricing", "intent"];
const BATCH: usize = 10_000;

/// The i-th benchmark prediction: five models, three versions, a realistic input.
fn prediction(i: usize, base: Timestamp) -> Event {
    let ts = base.offset(i as i64 * 1_000);
    let model = MODELS[i % MODELS.len()];
    let country = ["de", "fr", "us", "jp"][i % 4];
    Event {
        id: EventId::for_source("bench", "model-server", "stdout", ts, 0),
        ts,
        kind: Kind::Prediction,
        node: "bench".into(),
        container_id: format!("{model}-server"),
        container_name: format!("{model}-server"),
        image: format!("{model}:latest"),
        service: format!("{model}-server"),
        stream: Some(Stream::Stdout),
        message: format!("prediction model={model} request_id=req-{i}"),
        model: Some(model.into()),
        model_version: Some(format!("v{}", i % 3)),
        request_id: Some(format!("req-{i:010}")),
        latency_ms: Some((i % 997) as f64 / 7.0),
        status: Some(if i.is_multiple_of(50) { "error" } else { "ok" }.into()),
        input: Some(serde_json::json!({
            "customer_id": i % 1_000_003,
            "amount": (i % 10_000) as f64 / 3.0,
            "country": country,
        })),
        output: Some(
            serde_json::json!({"score": (i % 1000) as f64 / 1000.0, "label": i.is_multiple_of(2)}),
        ),
        ..Event::default()
    }
}

/// Runs the benchmark.
pub fn run(args: BenchPredictionsArgs) -> anyhow::Result<ExitCode> {
    if args.records == 0 || args.lookups == 0 {
        bail!("--records and --lookups must be at least 1");
    }
    let tmp;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let node = LocalNode::start(&data_dir).await?;
        // Two hours ago, so every record sits in the past and in at most two day indexes.
        let base = Timestamp::now().offset(-2 * 3_600 * 1_000_000_000);
        let started = Instant::now();
        let mut last = Instant::now();
        let mut stored = 0;
        while stored < args.records {
            let end = (stored + BATCH).min(args.records);
            let events: Vec<Event> = (stored..end).map(|i| prediction(i, base)).collect();
            node.indexer.ingest(events).await?;
            stored = end;
            if last.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "stored {stored} of {} predictions ({:.0}/s)",
                    args.records,
                    stored as f64 / started.elapsed().as_secs_f64()
                );
                last = Instant::now();
            }
        }
        let indexer = node.indexer.clone();
        tokio::task::spawn_blocking(move || indexer.flush()).await??;
        let ingest_secs = started.elapsed().as_secs_f64();
        eprintln!("stored {stored} predictions in {ingest_secs:.1} s; timing lookups");

        let http = reqwest::Client::new();
        let mut timings = Vec::with_capacity(args.lookups);
        // A fixed stride over the ids, so lookups hit old and new records alike.
        let stride = (args.records / args.lookups).max(1);
        for k in 0..args.lookups {
            let i = (k * stride + k * 7919) % args.records;
            let url = format!(
                "{}/api/v1/predictions?request_id=req-{i:010}&limit=1",
                node.url
            );
            let t = Instant::now();
            let resp = http.get(&url).send().await?;
            let body: serde_json::Value = resp.json().await?;
            timings.push(t.elapsed().as_secs_f64() * 1e3);
            if body["total"] != 1 {
                bail!("lookup of req-{i:010} found {} records, not 1", body["total"]);
            }
        }

        let t = Instant::now();
        let mut resp = http
            .get(format!(
                "{}/api/v1/predictions?model={}&format=ndjson",
                node.url, MODELS[0]
            ))
            .send()
            .await?;
        let (mut bytes, mut lines) = (0u64, 0u64);
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let export_secs = t.elapsed().as_secs_f64();
        node.stop().await?;

        println!("predictions stored     {stored} ({:.0}/s)", stored as f64 / ingest_secs);
        let (p50, p99, max) = p50_p99_max(&mut timings);
        println!(
            "lookup by request id   p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms ({} lookups over HTTP, access record included)",
            timings.len()
        );
        println!(
            "export (ndjson)        {lines} records, {:.1} MB in {export_secs:.1} s: {:.1} MB/s, {:.0} records/s",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / export_secs,
            lines as f64 / export_secs
        );
        println!(
            "settings               {} cores",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        Ok(ExitCode::SUCCESS)
    })
}
