//! Restart phase: containers write numbered lines and exit while the collector is SIGKILLed
//! and started again; every copy of every line is counted at the blackhole.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::blackhole::Blackhole;
use super::process::{Collector, Setup};
use super::{BenchCollectArgs, Writes, fleet, paced_script, paced_specs};

pub(super) fn restart(
    args: &BenchCollectArgs,
    payloads: &[String],
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
) -> anyhow::Result<()> {
    let prefix = format!("shiplog-bench-rs-{}-", std::process::id());
    let go = dir.join("restart-go");
    std::fs::create_dir_all(&go)?;
    let script = paced_script(10, 100_000, Some(args.restart_lines), Writes::PerLine);
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
