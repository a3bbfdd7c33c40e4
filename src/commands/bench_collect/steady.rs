//! Steady and tail phases: 100 containers writing 10,000 lines/s in all; the collector's
//! CPU and memory against a blackhole, then the delay to an SSE subscriber of a real indexer.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use shiplog_core::{Event, Timestamp};

use super::blackhole::Blackhole;
use super::process::{Collector, Setup};
use super::{BenchCollectArgs, WARM_UP, Writes, fleet, paced_script, paced_specs};
use crate::commands::bench::p50_p99_max;

pub(super) fn steady_and_tail(
    args: &BenchCollectArgs,
    payloads: &[String],
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    steady: bool,
    tail: bool,
) -> anyhow::Result<()> {
    let prefix = format!("shiplog-bench-st-{}-", std::process::id());
    let go = dir.join("steady-go");
    std::fs::create_dir_all(&go)?;
    // Each container writes a burst every 100 ms: a line-at-a-time writer at this rate
    // costs the engine and the shells more CPU than the two cores hold.
    let burst = (args.rate / args.steady_containers / 10).max(1);
    let interval_us = 1_000_000 * (burst * args.steady_containers) as u64 / args.rate as u64;
    let writes = if args.line_writes {
        Writes::PerLine
    } else {
        Writes::PerBurst
    };
    let script = paced_script(burst, interval_us, None, writes);
    let specs = paced_specs(&prefix, args.steady_containers, payloads, &go, &script);
    eprintln!(
        "steady: starting {} containers, each to write {burst} lines every {} ms ({})",
        specs.len(),
        interval_us / 1000,
        writes.describe()
    );
    fleet::start(&specs)?;
    let mut gate_open = false;
    let mut open_gate = || -> anyhow::Result<()> {
        if !gate_open {
            std::fs::write(go.join("now"), b"")?;
            gate_open = true;
        }
        Ok(())
    };

    if steady {
        let blackhole = runtime.block_on(Blackhole::start(false))?;
        let mut collector = Collector::start(
            &blackhole.url,
            &Setup {
                data_dir: &dir.join("steady-collector"),
                prefix: &prefix,
                read_from_head: false,
            },
        )?;
        // Let it list and attach to every container before the writing starts.
        std::thread::sleep(Duration::from_secs(3));
        open_gate()?;
        std::thread::sleep(WARM_UP);
        collector.check_alive()?;
        let (t0, cpu0, lines0) = (
            Instant::now(),
            collector.cpu_seconds(),
            blackhole.received.logs(),
        );
        progress_sleep("steady", Duration::from_secs(args.seconds), || {
            format!("{} lines shipped", blackhole.received.logs() - lines0)
        });
        collector.check_alive()?;
        let (elapsed, cpu, lines) = (
            t0.elapsed(),
            collector.cpu_seconds() - cpu0,
            blackhole.received.logs() - lines0,
        );
        let rss = collector.peak_rss_mib();
        collector.stop();
        report_warnings(&collector);
        if lines == 0 {
            bail!(
                "steady: no line shipped; collector log:\n{}",
                collector.log_tail()
            );
        }
        println!(
            "steady cost ({} containers, {:.0} lines/s shipped over {:.0} s, metrics off):",
            args.steady_containers,
            lines as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64()
        );
        println!(
            "  collector CPU: {:.2} s per million lines (target <= 10); {:.1}% of one core",
            cpu / lines as f64 * 1e6,
            cpu / elapsed.as_secs_f64() * 100.0
        );
        println!("  peak RSS: {rss:.1} MiB (target <= 24)");
    }

    if tail {
        tail_delay(args, runtime, dir, &prefix, &mut open_gate)?;
    }
    fleet::remove_all()?;
    Ok(())
}

fn tail_delay(
    args: &BenchCollectArgs,
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    prefix: &str,
    open_gate: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let node_dir = dir.join("tail-indexer");
    std::fs::create_dir_all(&node_dir)?;
    let node = runtime.block_on(super::super::bench::LocalNode::start(&node_dir))?;
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let subscriber = {
        let url = format!("{}/api/v1/tail", node.url);
        let (stop, measuring, prefix) = (stop.clone(), measuring.clone(), prefix.to_string());
        std::thread::spawn(move || subscribe(&url, &prefix, &stop, &measuring))
    };
    let mut collector = Collector::start(
        &node.url,
        &Setup {
            data_dir: &dir.join("tail-collector"),
            prefix,
            read_from_head: false,
        },
    )?;
    std::thread::sleep(Duration::from_secs(3));
    open_gate()?;
    std::thread::sleep(WARM_UP);
    collector.check_alive()?;
    measuring.store(true, Ordering::Relaxed);
    progress_sleep("tail", Duration::from_secs(args.seconds), || {
        "measuring".to_string()
    });
    stop.store(true, Ordering::Relaxed);
    collector.stop();
    report_warnings(&collector);
    let mut sample = subscriber
        .join()
        .map_err(|_| anyhow::anyhow!("the tail subscriber panicked"))??;
    runtime.block_on(node.stop())?;
    if sample.delays.is_empty() {
        bail!("tail: no line reached the subscriber");
    }
    println!(
        "live tail ({} containers at {} lines/s, collector -> indexer -> SSE):",
        args.steady_containers, args.rate
    );
    let (p50, p99, max) = p50_p99_max(&mut sample.delays);
    println!(
        "  Docker timestamp -> subscriber: p50 {p50:.0} ms, p99 {p99:.0} ms (target <= 200), max {max:.0} ms; {} lines, {} gaps",
        sample.delays.len(),
        sample.gaps
    );
    // Where the time went: up to the collector's read (the engine's part), and after it.
    let (p50, p99, max) = p50_p99_max(&mut sample.to_read);
    println!(
        "    Docker timestamp -> read by the collector: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"
    );
    let (p50, p99, max) = p50_p99_max(&mut sample.from_read);
    println!(
        "    read by the collector -> subscriber: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"
    );
    let late = sample.delays.iter().filter(|&&d| d > 1000.0).count();
    if let Some(worst) = sample.worst {
        // Which line was the latest tells a stall of one container from a saturated node.
        println!(
            "  over 1 s: {late} lines; the latest: {} line {:?}, written {}",
            worst.container_name,
            worst.message.split(' ').next().unwrap_or(""),
            worst.ts
        );
    }
    Ok(())
}

/// Milliseconds from `from` to `to`.
fn millis_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_nanos() - from.as_nanos()) as f64 / 1e6
}

/// What the tail subscriber saw while measuring.
#[derive(Default)]
struct TailSample {
    /// Docker timestamp to arrival, per line, in milliseconds.
    delays: Vec<f64>,
    /// Docker timestamp to the collector's read of it, per line that carries the latter.
    to_read: Vec<f64>,
    /// The collector's read to arrival, for the same lines.
    from_read: Vec<f64>,
    /// `gap` messages: lines the server dropped for this subscriber.
    gaps: u64,
    /// The line that came latest.
    worst: Option<Event>,
}

/// Reads the tail until `stop`; while `measuring`, records each benchmark line's delays.
fn subscribe(
    url: &str,
    prefix: &str,
    stop: &AtomicBool,
    measuring: &AtomicBool,
) -> anyhow::Result<TailSample> {
    use shiplog_tui::sse::SseDecoder;
    let http = reqwest::blocking::Client::builder().timeout(None).build()?;
    let mut resp = http
        .get(url)
        .header("accept", "text/event-stream")
        .send()?
        .error_for_status()?;
    let mut decoder = SseDecoder::default();
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut sample = TailSample::default();
    let mut worst_delay = f64::MIN;
    while !stop.load(Ordering::Relaxed) {
        let n = resp.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let now = Timestamp::now();
        decoder.push(&buf[..n], &mut messages)?;
        for m in messages.drain(..) {
            if m.event == "gap" {
                sample.gaps += 1;
                continue;
            }
            if m.event != "log" || !measuring.load(Ordering::Relaxed) {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Event>(&m.data) else {
                continue;
            };
            if event.container_name.starts_with(prefix) {
                let delay = millis_between(event.ts, now);
                sample.delays.push(delay);
                if let Some(received) = event.received {
                    sample.to_read.push(millis_between(event.ts, received));
                    sample.from_read.push(millis_between(received, now));
                }
                if delay > worst_delay {
                    worst_delay = delay;
                    sample.worst = Some(event);
                }
            }
        }
    }
    Ok(sample)
}

/// Prints how many warnings the collector logged, and the first few.
fn report_warnings(collector: &Collector) {
    let warnings = collector.warnings();
    if !warnings.is_empty() {
        eprintln!(
            "collector logged {} warnings or errors; the first:",
            warnings.len()
        );
        for line in warnings.iter().take(3) {
            eprintln!("  {line}");
        }
    }
}

/// Sleeps `total`, printing `what()` every 10 s.
fn progress_sleep(phase: &str, total: Duration, what: impl Fn() -> String) {
    let started = Instant::now();
    while started.elapsed() < total {
        std::thread::sleep((total - started.elapsed()).min(Duration::from_secs(10)));
        eprintln!(
            "{phase}: {:.0}/{} s, {}",
            started.elapsed().as_secs_f64(),
            total.as_secs(),
            what()
        );
    }
}
