//! `shiplog bench collect`: the collector against the real Docker engine, as a `shiplog
//! collect` process, in four phases:
//!
//! - throughput: N containers' stored logs shipped to a blackhole, against N parallel
//!   `docker logs` into /dev/null in the same run (the engine's ceiling);
//! - steady cost: collector CPU seconds per million lines and peak RSS while 100 containers
//!   write 10,000 lines/s in all (each a burst of 10 lines every 100 ms), shipped to a
//!   blackhole;
//! - live tail: Docker's timestamp of each line to its arrival at an SSE subscriber of a
//!   real indexer, at that same load;
//! - restart and exit: the collector SIGKILLed mid-stream and started again 3 s later while
//!   containers write numbered lines and then exit; lines lost, sent again (same event id:
//!   the indexer drops them) and doubled (two ids: the indexer would keep both).
//!
//! The blackhole decodes every batch and acknowledges it, so the collector does all of its
//! work (encoding, zstd, HTTP, acks, checkpoints) and nothing else competes for the CPU.

mod blackhole;
mod fleet;
mod process;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use shiplog_core::{Event, Timestamp};

use blackhole::Blackhole;
use fleet::Spec;
use process::{Collector, Setup};

/// Flags of `bench collect`.
#[derive(Debug, Args)]
pub struct BenchCollectArgs {
    /// Phases to run, in order: throughput, steady, tail, restart.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,steady,tail,restart"
    )]
    pub phases: Vec<Phase>,
    /// Throughput: containers with stored logs.
    #[arg(long, default_value_t = 8)]
    pub containers: usize,
    /// Throughput: lines of about 200 bytes stored by each container.
    #[arg(long, default_value_t = 150_000)]
    pub lines: usize,
    /// Steady and tail: containers writing at once.
    #[arg(long, default_value_t = 100)]
    pub steady_containers: usize,
    /// Steady and tail: lines per second written by all of them together.
    #[arg(long, default_value_t = 10_000)]
    pub rate: usize,
    /// Steady and tail: seconds measured (after a 5 s warm-up).
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Restart: containers writing numbered lines at 100 lines/s (10 every 100 ms), then
    /// exiting.
    #[arg(long, default_value_t = 20)]
    pub restart_containers: usize,
    /// Restart: lines each of them writes.
    #[arg(long, default_value_t = 3_000)]
    pub restart_lines: usize,
    /// Directory of Loghub samples (one folder per system with <name>_2k.log).
    #[arg(long, default_value = "../shared/data/loghub")]
    pub corpus: PathBuf,
}

/// One part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Stored logs against parallel `docker logs`.
    Throughput,
    /// CPU and memory at a steady rate.
    Steady,
    /// Write-to-subscriber delay through a real indexer.
    Tail,
    /// Lost and doubled lines across a SIGKILL and at container exit.
    Restart,
}

/// Warm-up before steady figures are taken.
const WARM_UP: Duration = Duration::from_secs(5);

/// Runs the chosen phases.
pub fn run(args: BenchCollectArgs) -> anyhow::Result<ExitCode> {
    if args.containers == 0
        || args.lines == 0
        || args.steady_containers == 0
        || args.rate < args.steady_containers
        || args.seconds == 0
        || args.restart_containers == 0
        || args.restart_lines == 0
    {
        bail!("every count must be at least 1, and --rate at least --steady-containers");
    }
    fleet::docker(&["version", "--format", "{{.Server.Version}}"])
        .context("bench collect needs a running Docker engine")?;
    let corpus = super::bench::load_corpus(&args.corpus)?;
    let payloads = payloads(&corpus, 200);
    fleet::build_image()?;
    let _cleanup = RemoveContainers;
    fleet::remove_all()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    for phase in &args.phases {
        match phase {
            Phase::Throughput => throughput(&args, &payloads, &runtime, dir.path())?,
            Phase::Steady | Phase::Tail => {}
            Phase::Restart => restart(&args, &payloads, &runtime, dir.path())?,
        }
    }
    let steady = args.phases.contains(&Phase::Steady);
    let tail = args.phases.contains(&Phase::Tail);
    if steady || tail {
        steady_and_tail(&args, &payloads, &runtime, dir.path(), steady, tail)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the benchmark's containers however the run ends.
struct RemoveContainers;

impl Drop for RemoveContainers {
    fn drop(&mut self) {
        if let Err(e) = fleet::remove_all() {
            eprintln!("warning: could not remove benchmark containers: {e:#}");
        }
    }
}

/// Loghub lines joined to about `target` bytes, with nothing a shell or the multiline
/// rules would treat specially.
fn payloads(corpus: &[(String, Vec<String>)], target: usize) -> Vec<String> {
    let mut lines = corpus
        .iter()
        .flat_map(|(_, lines)| lines.iter())
        .map(|l| {
            l.chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .filter(|c| !matches!(c, '\\' | '"' | '$' | '`'))
                .collect::<String>()
        })
        .filter(|l| !l.trim().is_empty());
    let mut out = Vec::new();
    let mut current = String::new();
    for line in lines.by_ref() {
        if !current.is_empty() {
            current.push_str(" | ");
        }
        current.push_str(line.trim());
        if current.len() >= target {
            current.truncate(target);
            out.push(std::mem::take(&mut current).trim_end().to_string());
        }
    }
    if out.is_empty() {
        out.push("x".repeat(target));
    }
    out
}

fn throughput(
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
    let elapsed = loop {
        let got = blackhole.received.logs();
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

/// Script of a container writing `{n} $P` lines once /go/now exists, `burst` lines every
/// `interval_us`, forever (`lines` = None) or until `lines` are written, then exiting.
fn paced_script(burst: usize, interval_us: u64, lines: Option<usize>) -> String {
    let condition = match lines {
        Some(n) => format!("[ $n -lt {n} ]"),
        None => ":".into(),
    };
    // Pacing against the clock (not a fixed sleep per burst) keeps the rate whatever the
    // loop itself costs; ${EPOCHREALTIME/./} is the time in microseconds.
    format!(
        "while [ ! -e /go/now ]; do usleep 20000; done; n=0; t=${{EPOCHREALTIME/./}}; \
         while {condition}; do b=0; while [ $b -lt {burst} ] && {condition}; do \
         echo \"$n $P\"; n=$((n+1)); b=$((b+1)); done; t=$((t+{interval_us})); \
         d=$((t-${{EPOCHREALTIME/./}})); if [ $d -gt 0 ]; then usleep $d; fi; done"
    )
}

/// Specs of `count` paced containers behind the gate directory `go`.
fn paced_specs(
    prefix: &str,
    count: usize,
    payloads: &[String],
    go: &Path,
    script: &str,
) -> Vec<Spec> {
    (0..count)
        .map(|i| Spec {
            name: format!("{prefix}{i}"),
            options: vec![
                "-v".into(),
                format!("{}:/go:ro", go.display()),
                "-e".into(),
                format!("P={}", payloads[i % payloads.len()]),
            ],
            script: script.to_string(),
        })
        .collect()
}

fn steady_and_tail(
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
    let script = paced_script(burst, interval_us, None);
    let specs = paced_specs(&prefix, args.steady_containers, payloads, &go, &script);
    eprintln!(
        "steady: starting {} containers, each to write {burst} lines every {} ms",
        specs.len(),
        interval_us / 1000
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
    let node = runtime.block_on(super::bench::LocalNode::start(&node_dir))?;
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
    let (mut delays, gaps) = subscriber
        .join()
        .map_err(|_| anyhow::anyhow!("the tail subscriber panicked"))??;
    runtime.block_on(node.stop())?;
    if delays.is_empty() {
        bail!("tail: no line reached the subscriber");
    }
    delays.sort_unstable();
    let pct = |p: f64| delays[((delays.len() - 1) as f64 * p).round() as usize] as f64 / 1e6;
    println!(
        "live tail ({} containers at {} lines/s, collector -> indexer -> SSE):",
        args.steady_containers, args.rate
    );
    println!(
        "  Docker timestamp -> subscriber: p50 {:.0} ms, p99 {:.0} ms (target <= 200), max {:.0} ms; {} lines, {} gaps",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        delays.len(),
        gaps
    );
    Ok(())
}

/// Reads the tail until `stop`; while `measuring`, records each benchmark line's delay
/// from its Docker timestamp, in nanoseconds. Returns the delays and the gap count.
fn subscribe(
    url: &str,
    prefix: &str,
    stop: &AtomicBool,
    measuring: &AtomicBool,
) -> anyhow::Result<(Vec<i64>, u64)> {
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
    let (mut delays, mut gaps) = (Vec::new(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        let n = resp.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let now = Timestamp::now();
        decoder.push(&buf[..n], &mut messages)?;
        for m in messages.drain(..) {
            if m.event == "gap" {
                gaps += 1;
                continue;
            }
            if m.event != "log" || !measuring.load(Ordering::Relaxed) {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Event>(&m.data) else {
                continue;
            };
            if event.container_name.starts_with(prefix) {
                delays.push(now.as_nanos() - event.ts.as_nanos());
            }
        }
    }
    Ok((delays, gaps))
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

fn restart(
    args: &BenchCollectArgs,
    payloads: &[String],
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
) -> anyhow::Result<()> {
    let prefix = format!("shiplog-bench-rs-{}-", std::process::id());
    let go = dir.join("restart-go");
    std::fs::create_dir_all(&go)?;
    let script = paced_script(10, 100_000, Some(args.restart_lines));
    let specs = paced_specs(&prefix, args.restart_containers, payloads, &go, &script);
    let write_time = Duration::from_millis(10 * args.restart_lines as u64);
    eprintln!(
        "restart: {} containers writing {} numbered lines each over {:.0} s, then exiting",
        specs.len(),
        args.restart_lines,
        write_time.as_secs_f64()
    );
    let ids = fleet::start(&specs)?;
    let blackhole = runtime.block_on(Blackhole::start(true))?;
    let setup = Setup {
        data_dir: &dir.join("restart-collector"),
        prefix: &prefix,
        read_from_head: false,
    };
    let mut collector = Collector::start(&blackhole.url, &setup)?;
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(go.join("now"), b"")?;
    let kill_at = write_time / 3;
    std::thread::sleep(kill_at);
    collector.check_alive()?;
    let before_kill = blackhole.received.logs();
    collector.kill9();
    eprintln!("restart: collector SIGKILLed after {before_kill} lines; down for 3 s");
    std::thread::sleep(Duration::from_secs(3));
    let mut collector = Collector::start(&blackhole.url, &setup)?;
    // Every container exits after its last line; then wait for the count to settle.
    let expected = (args.restart_containers * args.restart_lines) as u64;
    let started = Instant::now();
    let mut last = (blackhole.received.logs(), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(500));
        collector.check_alive()?;
        let got = blackhole.received.logs();
        if got != last.0 {
            last = (got, Instant::now());
        }
        let running = fleet::docker(&["ps", "-q", "--filter", &format!("name={prefix}")])?;
        if running.is_empty() && got >= expected && last.1.elapsed() > Duration::from_secs(5) {
            break;
        }
        if started.elapsed() > write_time + Duration::from_secs(120) {
            eprintln!("restart: giving up waiting; counting what arrived");
            break;
        }
    }
    collector.stop();
    let lines = blackhole
        .received
        .lines
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let mut per_container: HashMap<&str, HashMap<usize, Vec<&String>>> = HashMap::new();
    for ((container, message), ids) in lines.iter() {
        let Some(n) = message.split(' ').next().and_then(|n| n.parse().ok()) else {
            continue;
        };
        per_container
            .entry(container)
            .or_default()
            .insert(n, ids.iter().collect());
    }
    let (mut lost, mut resent, mut doubled, mut last_lost, mut last_doubled) = (0, 0, 0, 0, 0);
    let mut last_resent = 0;
    for spec in &specs {
        let seen = per_container.get(spec.name.as_str());
        for n in 0..args.restart_lines {
            let copies = seen.and_then(|s| s.get(&n));
            let (copies_n, distinct) = copies.map_or((0, 0), |ids| {
                let mut d: Vec<&&String> = ids.iter().collect();
                d.sort();
                d.dedup();
                (ids.len(), d.len())
            });
            let is_last = n + 1 == args.restart_lines;
            if copies_n == 0 {
                lost += 1;
                last_lost += usize::from(is_last);
            }
            resent += copies_n.saturating_sub(distinct);
            if distinct > 1 {
                doubled += 1;
                last_doubled += usize::from(is_last);
            }
            if is_last && copies_n > 1 {
                last_resent += 1;
            }
        }
    }
    drop(lines);
    println!(
        "restart and exit ({} containers x {} numbered lines; collector SIGKILLed after {} s, down 3 s):",
        args.restart_containers,
        args.restart_lines,
        kill_at.as_secs()
    );
    println!(
        "  lines lost: {lost} of {expected}; doubled (two event ids): {doubled}; sent again with the same id (dropped by the indexer's dedupe): {resent}"
    );
    println!(
        "  at container exit: last line lost in {last_lost} of {} containers, doubled in {last_doubled}, sent again in {last_resent}",
        ids.len()
    );
    fleet::remove_all()?;
    Ok(())
}
