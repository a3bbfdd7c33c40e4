//! Rotation phase: containers with a small `max-size` write numbered lines flat out while a
//! `shiplog collect` ships them to a real `shiplog serve`; every line is counted in the
//! index. Then, as the reference measured in the same run, the same containers are read by
//! the engine's own followed log (`docker logs --follow`, what Vector's `docker_logs` and
//! every other reader of the Docker API get), and its distinct lines counted.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::BenchCollectArgs;
use super::fleet::{self, IMAGE, LABEL};
use super::process::{Collector, Setup};

/// A `shiplog serve` child (the node the collector ships to); killed on drop.
struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn start(dir: &Path) -> anyhow::Result<Node> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = std::env::current_exe().context("cannot find the shiplog binary")?;
        let mut command = Command::new(exe);
        command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir);
        // SHIPLOG_BENCH_NODE_TOML is the node's config file, to try a setting
        // (`[indexer]` `writer_memory = "64MiB"`) without a new build.
        if let Ok(toml) = std::env::var("SHIPLOG_BENCH_NODE_TOML") {
            let config = dir.with_extension("toml");
            std::fs::write(&config, toml)?;
            command.arg("--config").arg(config);
        }
        let child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.with_extension("log"))?)
            .spawn()
            .context("cannot start shiplog serve")?;
        let node = Node {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while reqwest::blocking::get(format!("{}/healthz", node.url)).is_err() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("shiplog serve did not answer /healthz within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(node)
    }

    /// The total of a search.
    fn count(&self, query: &str) -> anyhow::Result<u64> {
        let answer = self.search(query, 1)?;
        answer["total"]
            .as_u64()
            .with_context(|| format!("search answered {answer}"))
    }

    fn search(&self, query: &str, limit: usize) -> anyhow::Result<Value> {
        Ok(reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/search", self.url))
            .query(&[("q", query), ("since", "1d"), ("limit", &limit.to_string())])
            .send()?
            .json()?)
    }

    /// The runs of line numbers below `lines` that container `name` has no stored line of.
    fn missing_runs(&self, name: &str, lines: u64) -> anyhow::Result<Vec<(u64, u64)>> {
        let mut seen = vec![false; lines as usize];
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![
                ("q", format!("container_name:{name} AND rotline")),
                ("since", "1d".to_string()),
                ("limit", "10000".to_string()),
            ];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page: Value = reqwest::blocking::Client::new()
                .get(format!("{}/api/v1/search", self.url))
                .query(&query)
                .send()?
                .json()?;
            for hit in page["hits"].as_array().into_iter().flatten() {
                let n = hit["message"]
                    .as_str()
                    .and_then(|m| m.split(' ').nth(1))
                    .and_then(|n| n.parse::<usize>().ok());
                if let Some(slot) = n.and_then(|n| seen.get_mut(n)) {
                    *slot = true;
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let mut runs = Vec::new();
        let mut start = None;
        for (n, &have) in seen.iter().enumerate() {
            match (have, start) {
                (false, None) => start = Some(n as u64),
                (true, Some(s)) => {
                    runs.push((s, n as u64 - 1));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            runs.push((s, lines - 1));
        }
        Ok(runs)
    }

    fn peak_rss_mib(&self) -> f64 {
        super::process::status_kib(self.child.id(), "VmHWM:") / 1024.0
    }

    /// Resident anonymous memory now (heap, arenas, stacks), in MiB: the peak RSS also
    /// counts the index files' pages mapped in, which the kernel takes back when it needs to.
    fn anon_rss_mib(&self) -> f64 {
        super::process::status_kib(self.child.id(), "RssAnon:") / 1024.0
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the phase's containers: each writes `lines` numbered lines as fast as it can.
fn start_writers(args: &BenchCollectArgs, prefix: &str) -> anyhow::Result<Vec<String>> {
    let script = format!(
        "i=0; while [ $i -lt {} ]; do echo \"rotline $i padding-padding-padding-padding-padding-padding-padding\"; i=$((i+1)); done",
        args.rotation_lines
    );
    let max_size = format!("max-size={}", args.rotation_max_size);
    let max_file = format!("max-file={}", args.rotation_max_file);
    let compress = format!("compress={}", args.rotation_compress);
    (0..args.rotation_containers)
        .map(|n| {
            let name = format!("{prefix}{n}");
            fleet::docker(&[
                "run",
                "-d",
                "--name",
                &name,
                "--label",
                LABEL,
                "--log-opt",
                &max_size,
                "--log-opt",
                &max_file,
                "--log-opt",
                &compress,
                IMAGE,
                "sh",
                "-c",
                &script,
            ])
        })
        .collect()
}

/// Waits for every container of `ids` to exit; returns the time since `started`.
fn wait_exited(ids: &[String], started: Instant) -> anyhow::Result<Duration> {
    for id in ids {
        fleet::docker(&["wait", id])?;
    }
    Ok(started.elapsed())
}

/// Bytes under `dir` (the disk buffer), 0 when it is not there.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

pub(super) fn rotation(args: &BenchCollectArgs, dir: &Path) -> anyhow::Result<()> {
    let written = (args.rotation_containers * args.rotation_lines) as u64;
    let logopts = format!(
        "max-size={}, max-file={}, compress={}",
        args.rotation_max_size, args.rotation_max_file, args.rotation_compress
    );
    eprintln!(
        "rotation: {} containers writing {} lines each as fast as they can ({logopts})",
        args.rotation_containers, args.rotation_lines
    );
    let node_dir = dir.join("rotation-node");
    std::fs::create_dir_all(&node_dir)?;
    let node = Node::start(&node_dir)?;
    let prefix = format!("shiplog-bench-rot-{}-", std::process::id());
    let setup = Setup {
        data_dir: &dir.join("rotation-collector"),
        prefix: &prefix,
        read_from_head: false,
    };
    let mut collector = Collector::start(&node.url, &setup)?;
    // The collector is up (and follows the engine) before the first container starts.
    std::thread::sleep(Duration::from_secs(2));
    // The collector keeps its state (checkpoints, disk buffer) under its data dir.
    let buffer_dir = setup
        .data_dir
        .join("state")
        .join("collector")
        .join("buffer");
    let started = Instant::now();
    let ids = start_writers(args, &prefix)?;
    let mut buffer_peak = 0;
    let mut anon_peak = 0.0f64;
    let wrote = {
        let done = Arc::new(Mutex::new(None));
        let waiter = {
            let (ids, done) = (ids.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let result = wait_exited(&ids, started);
                *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
            })
        };
        loop {
            buffer_peak = buffer_peak.max(dir_bytes(&buffer_dir));
            anon_peak = anon_peak.max(node.anon_rss_mib());
            if waiter.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = waiter.join();
        let result = done.lock().unwrap_or_else(|p| p.into_inner()).take();
        result.context("the container waiter ended without an answer")??
    };
    // Until the index stops growing (or holds every line).
    let lines_query = format!("container_name:{prefix}* AND rotline");
    let mut last = (u64::MAX, Instant::now());
    let indexed = loop {
        buffer_peak = buffer_peak.max(dir_bytes(&buffer_dir));
        anon_peak = anon_peak.max(node.anon_rss_mib());
        collector.check_alive()?;
        let now = node.count(&lines_query)?;
        if now != last.0 {
            last = (now, Instant::now());
        }
        if now >= written || last.1.elapsed() > Duration::from_secs(10) {
            break now;
        }
        if started.elapsed() > wrote + Duration::from_secs(300) {
            eprintln!("rotation: giving up waiting; counting what arrived");
            break now;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let shipped = started.elapsed() - last.1.elapsed();
    let gaps_query = format!("container_name:{prefix}* AND fields._gap.reason:rotated");
    let gaps = node.count(&gaps_query)?;
    let gap_list: Vec<String> = node.search(&gaps_query, 5)?["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|hit| format!("{} {}", hit["container_name"], hit["fields"]["_gap"]))
        .collect();
    let (collector_rss, node_rss) = (collector.peak_rss_mib(), node.peak_rss_mib());
    let warnings = collector.warnings();
    collector.stop();
    // Lines that arrive only once the collector stopped were held back, not lost: a
    // different failure, told apart here.
    std::thread::sleep(Duration::from_secs(2));
    let after_stop = node.count(&lines_query)?;
    let missing: Vec<String> = if after_stop < written {
        (0..args.rotation_containers)
            .map(|n| {
                let name = format!("{prefix}{n}");
                node.missing_runs(&name, args.rotation_lines as u64)
                    .map(|runs| format!("{name}: {runs:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    // On a loss, the collector's whole log is kept (RUST_LOG=debug makes it say what each
    // log task opened and delivered).
    let kept_log = (!missing.is_empty()).then(|| collector.log_tail());
    fleet::remove_all()?;

    // The reference: the engine's followed log, read as fast as `docker logs` reads it.
    let reference_prefix = format!("shiplog-bench-rotref-{}-", std::process::id());
    let reference_ids = start_writers(args, &reference_prefix)?;
    let seen: Vec<Arc<Mutex<HashSet<u64>>>> = reference_ids
        .iter()
        .map(|_| Arc::new(Mutex::new(HashSet::new())))
        .collect();
    let readers: Vec<_> = reference_ids
        .iter()
        .zip(&seen)
        .map(|(id, seen)| -> anyhow::Result<_> {
            let mut child = Command::new("docker")
                .args(["logs", "--follow", id])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let out = child.stdout.take().context("no stdout")?;
            let seen = Arc::clone(seen);
            let counter = std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(n) = line.split(' ').nth(1).and_then(|n| n.parse().ok()) {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).insert(n);
                    }
                }
            });
            Ok((child, counter))
        })
        .collect::<anyhow::Result<_>>()?;
    let reference_started = Instant::now();
    let reference_wrote = wait_exited(&reference_ids, reference_started)?;
    for (mut child, counter) in readers {
        // The follow ends with the container; a reader still going after 60 s is stopped.
        let waited = Instant::now();
        while matches!(child.try_wait(), Ok(None)) && waited.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = counter.join();
    }
    let followed: u64 = seen
        .iter()
        .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len() as u64)
        .sum();
    fleet::remove_all()?;

    let lost = written.saturating_sub(indexed);
    println!(
        "rotation ({} containers x {} lines written flat out, {logopts}):",
        args.rotation_containers, args.rotation_lines
    );
    println!(
        "  shiplog: written {written} in {:.2} s ({:.0} lines/s), indexed {indexed}, lost {lost}; all indexed after {:.2} s ({:.0} lines/s end to end); gap events {gaps}",
        wrote.as_secs_f64(),
        written as f64 / wrote.as_secs_f64(),
        shipped.as_secs_f64(),
        indexed as f64 / shipped.as_secs_f64().max(1e-9),
    );
    println!(
        "  peak RSS: collector {collector_rss:.1} MiB, node (serve) {node_rss:.1} MiB (anonymous memory peak {anon_peak:.1} MiB, sampled every 0.1 s); disk buffer peak {:.1} MiB",
        buffer_peak as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  reference, the engine's followed log (docker logs --follow, the API every Docker reader uses): written {written} in {:.2} s, read {followed}, lost {} ({:.1}%)",
        reference_wrote.as_secs_f64(),
        written.saturating_sub(followed),
        100.0 * written.saturating_sub(followed) as f64 / written as f64
    );
    for gap in &gap_list {
        println!("  gap: {gap}");
    }
    if after_stop != indexed {
        println!("  indexed once the collector stopped: {after_stop}");
    }
    for runs in &missing {
        println!("  missing line numbers, {runs}");
    }
    if let Some(log) = kept_log {
        let kept = log.lines().last().unwrap_or_default();
        println!("  the collector's log {kept}");
    }
    if !warnings.is_empty() {
        println!(
            "  the collector warned {} times; first: {}",
            warnings.len(),
            warnings[0]
        );
    }
    Ok(())
}
