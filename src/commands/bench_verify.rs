//! `shiplog bench verify`: builds one day's audit chain of realistic prediction records,
//! then times `verify` over it (recomputing every hash against exported roots).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use shiplog_core::{EventId, Timestamp};
use shiplog_indexer::audit::{self, AuditLog};

use super::bench::cpu_time;
use crate::cli::BenchVerifyArgs;

const MODELS: [&str; 4] = ["fraud", "churn", "ranker", "eta"];

/// The i-th prediction event as the indexer stores it: about 350 bytes of JSON.
fn prediction(i: usize, base: Timestamp) -> (EventId, Vec<u8>) {
    let id = EventId::for_source("bench", "model-0", "stdout", base, i as u32);
    let ts = base.offset(i as i64 * 1_000);
    let model = MODELS[i % MODELS.len()];
    let json = format!(
        concat!(
            r#"{{"id":"{id}","ts":"{ts}","kind":"prediction","node":"node-1","#,
            r#""container_name":"{model}-model-1","service":"{model}-model","#,
            r#""model":"{model}","model_version":"3.1.{v}","request_id":"req-{i:010}","#,
            r#""latency_ms":{lat}.{latf:02},"input":{{"customer_id":{cust},"amount":{amt}.{c:02}}},"#,
            r#""output":{{"score":0.{score:04}}},"status":"ok"}}"#
        ),
        id = id,
        ts = ts.to_rfc3339(),
        model = model,
        v = i % 7,
        i = i,
        lat = (i * 37) % 250,
        latf = i % 100,
        cust = (i * 7919) % 1_000_000,
        amt = (i * 131) % 10_000,
        c = i % 100,
        score = (i * 17) % 10_000,
    );
    (id, json.into_bytes())
}

/// Runs the benchmark.
pub fn run(args: BenchVerifyArgs) -> anyhow::Result<ExitCode> {
    if args.records == 0 || args.runs == 0 {
        bail!("--records and --runs must be at least 1");
    }
    let tmp;
    let dir: PathBuf = match &args.dir {
        Some(d) => d.join("audit"),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("audit")
        }
    };
    if dir.join(format!("{}.chain", "2026-01-01")).exists() {
        bail!(
            "{} already holds a benchmark chain: pass an empty --dir",
            dir.display()
        );
    }
    // A fixed day, so the chain is the same on every run and never meets a real one.
    let day_start = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z")?;
    let now = day_start.offset(3_600 * 1_000_000_000);
    let (mut log, _) = AuditLog::open(&dir, now)?;
    eprintln!(
        "building a chain of {} prediction records ...",
        args.records
    );
    let build = Instant::now();
    let mut record_bytes = 0u64;
    let batch = 10_000;
    let mut start = 0;
    while start < args.records {
        let end = (start + batch).min(args.records);
        let made: Vec<(EventId, Vec<u8>)> =
            (start..end).map(|i| prediction(i, day_start)).collect();
        record_bytes += made.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        let a = log.append(now, &made)?;
        if a.appended != made.len() {
            bail!("{} of the benchmark ids collided", made.len() - a.appended);
        }
        start = end;
    }
    log.sync()?;
    log.close_days_before("2026-01-02")?;
    let build_secs = build.elapsed().as_secs_f64();
    drop(log);
    let roots = audit::export(&dir, false)?;
    let file_bytes = std::fs::metadata(dir.join("2026-01-01.chain"))?.len();
    eprintln!(
        "  built in {build_secs:.2} s ({:.0} records/s appended, without fsync per batch)",
        args.records as f64 / build_secs
    );

    let mut best: Option<(Duration, Duration)> = None;
    for run in 1..=args.runs {
        let cpu = cpu_time();
        let t = Instant::now();
        let reports = audit::verify(&dir, None, Some(&roots))?;
        let wall = t.elapsed();
        let cpu = cpu_time().saturating_sub(cpu);
        if let Some(m) = reports.iter().find_map(|r| r.mismatch.as_ref()) {
            bail!("verify found a mismatch in an untouched chain: {m}");
        }
        let checked: u64 = reports.iter().map(|r| r.records).sum();
        if checked != args.records as u64 {
            bail!(
                "verify checked {checked} records, expected {}",
                args.records
            );
        }
        eprintln!(
            "  run {run}: {:.3} s, {:.2} M records/s",
            wall.as_secs_f64(),
            args.records as f64 / wall.as_secs_f64() / 1e6
        );
        if best.is_none_or(|(w, _)| wall < w) {
            best = Some((wall, cpu));
        }
    }
    let Some((wall, cpu)) = best else {
        bail!("no run");
    };
    let secs = wall.as_secs_f64();
    println!("records           {}", args.records);
    println!(
        "record size       {:.0} bytes of JSON on average ({:.1} MB; chain file {:.1} MB)",
        record_bytes as f64 / args.records as f64,
        record_bytes as f64 / 1e6,
        file_bytes as f64 / 1e6
    );
    println!(
        "verify (best of {}) {secs:.3} s wall, {:.2} s CPU",
        args.runs,
        cpu.as_secs_f64()
    );
    println!(
        "throughput        {:.2} M records/s",
        args.records as f64 / secs / 1e6
    );
    // On a shared machine wall time includes waiting for a core; CPU time does not.
    println!(
        "                  {:.2} M records per CPU second",
        args.records as f64 / cpu.as_secs_f64().max(1e-9) / 1e6
    );
    println!(
        "                  {:.0} MB/s of records, {:.0} MB/s of chain file",
        record_bytes as f64 / 1e6 / secs,
        file_bytes as f64 / 1e6 / secs
    );
    println!(
        "settings          one thread, file in the page cache (just written), against exported roots, {} cores on the machine",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}
