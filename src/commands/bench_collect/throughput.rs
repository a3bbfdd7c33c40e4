//! Throughput phase: N containers' stored logs shipped to a blackhole, against N parallel
//! `docker logs` into /dev/null in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::BenchCollectArgs;
use super::blackhole::Blackhole;
use super::fleet::{self, Spec};
use super::process::{Collector, Setup};

pub(super) fn throughput(
    args: &BenchCollectArgs,
    payloads: &[String],
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
) -> anyhow::Result<()> {
    let prefix = format!("shiplog-bench-tp-{}-", std::process::id());
    let file = dir.join("throughput-lines.txt");
    let mut text = String::with_capacity(args.lines * 212);
    let mut last = String::new();
    for i in 0..args.lines {
        last = format!("{i:09} {}", payloads[i % payloads.len()]);
        text.push_str(&last);
        text.push('\n');
    }
    std::fs::write(&file, &text)?;
    let bytes_per_container = text.len();
    drop(text);
    eprintln!(
        "throughput: {} containers storing {} lines ({:.1} MB) each",
        args.containers,
        args.lines,
        bytes_per_container as f64 / 1e6
    );
    let specs: Vec<Spec> = (0..args.containers)
        .map(|i| Spec {
            name: format!("{prefix}{i}"),
            options: vec![
                "-v".into(),
                format!("{}:/data/lines:ro", file.display()),
                // A daemon's default rotation (often 10 MB x 3) would keep only part of
                // the stored log: the engine and the collector must read the same lines.
                "--log-opt".into(),
                "max-size=2g".into(),
            ],
            script: "cat /data/lines; exec sleep 1000000".into(),
        })
        .collect();
    let ids = fleet::start(&specs)?;
    fleet::wait_for_last_line(&ids, &last, Duration::from_secs(600))?;
    let total = (args.containers * args.lines) as u64;
    eprintln!(
        "throughput: the engine's ceiling, {} parallel `docker logs` into /dev/null",
        ids.len()
    );
    let engine0 = fleet::engine_cpu_seconds();
    let ceiling_before = fleet::docker_logs_all(&ids)?;
    let engine_ceiling = fleet::engine_cpu_seconds() - engine0;

    let blackhole = runtime.block_on(Blackhole::start(false))?;
    let mut collector = Collector::start(
        &blackhole.url,
        &Setup {
            data_dir: &dir.join("throughput-collector"),
            prefix: &prefix,
            read_from_head: true,
        },
    )?;
    let started = Instant::now();
    let engine0 = fleet::engine_cpu_seconds();
    let mut last_progress = (0, Instant::now());
    let mut last_report = Instant::now();
    let mut first_line = None;
    let elapsed = loop {
        let got = blackhole.received.logs();
        if got > 0 && first_line.is_none() {
            first_line = Some(started.elapsed());
        }
        if got >= total {
            break started.elapsed();
        }
        collector.check_alive()?;
        if got > last_progress.0 {
            last_progress = (got, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(60) {
            bail!(
                "throughput: stuck at {got} of {total} lines for 60 s; collector log:\n{}",
                collector.log_tail()
            );
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("throughput: {got}/{total} lines shipped");
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let cpu = collector.cpu_seconds();
    let engine_collect = fleet::engine_cpu_seconds() - engine0;
    let rss = collector.peak_rss_mib();
    collector.stop();
    let extra = blackhole.received.logs().saturating_sub(total);
    let ceiling_after = fleet::docker_logs_all(&ids)?;
    let ceiling = ceiling_before.min(ceiling_after);
    let ceiling_rate = total as f64 / ceiling.as_secs_f64();
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "throughput ({} containers x {} stored lines of ~{} B):",
        args.containers,
        args.lines,
        bytes_per_container / args.lines
    );
    println!(
        "  engine ceiling ({} parallel docker logs): {:.0} lines/s (best of {:.2} s and {:.2} s)",
        ids.len(),
        ceiling_rate,
        ceiling_before.as_secs_f64(),
        ceiling_after.as_secs_f64()
    );
    println!(
        "  shiplog collect -> blackhole:            {:.0} lines/s in {:.2} s (start to last line acked)",
        rate,
        elapsed.as_secs_f64()
    );
    println!("  ratio: {:.2} (target >= 0.9)", rate / ceiling_rate);
    // Start-up (process, container listing, opening the logs) counts in the collector's
    // time as the CLI's start does in `docker logs`; this shows how much of it there was.
    println!(
        "  first line acked {:.2} s after the start; {:.0} lines/s from then on",
        first_line.unwrap_or(elapsed).as_secs_f64(),
        total as f64
            / (elapsed - first_line.unwrap_or_default())
                .as_secs_f64()
                .max(1e-3)
    );
    println!(
        "  Docker daemon CPU: {:.2} s per million lines under docker logs, {:.2} under the collector",
        engine_ceiling / total as f64 * 1e6,
        engine_collect / total as f64 * 1e6
    );
    println!(
        "  collector CPU: {:.2} s per million lines; peak RSS {:.1} MiB; {} lines beyond the {} written",
        cpu / total as f64 * 1e6,
        rss,
        extra,
        total
    );
    fleet::remove_all()?;
    Ok(())
}
