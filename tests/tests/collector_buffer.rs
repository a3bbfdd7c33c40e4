//! The collector with the real binary against real containers.
//!
//! - Its disk buffer: `shiplog serve` is stopped for 30 seconds while a container
//!   writes numbered lines and `shiplog collect` keeps reading; after `serve` is back (same
//!   data dir, same port) every line is indexed exactly once and the buffer has drained to
//!   zero.
//! - Its checkpoints: 50 containers write 2,000 numbered lines each while the collector is
//!   SIGKILLed twice and restarted; every line is indexed exactly once.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use shiplog_core::Event;
use shiplog_tests::docker::docker;
use shiplog_tests::process::{Proc, free_port, serve, wait_until};
use shiplog_tests::{Container, docker_or_skip};

/// At about 200 lines a second: the container writes through the whole 30 s outage.
const LINES: usize = 8000;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Bytes in the collector's buffer directory.
fn buffer_dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// A gauge's value from the Prometheus text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn lines_written_while_the_indexer_is_down_are_buffered_and_indexed_exactly_once() {
    if !docker_or_skip("collector_buffer") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serve_data = dir.path().join("serve");
    let collect_data = dir.path().join("collect");
    let buffer_dir = collect_data.join("collector/buffer");
    let port = free_port();
    let metrics_port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let prefix = format!("shiplog-buftest-{}", std::process::id());
    let config = dir.path().join("collect.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n\n[collector]\ninclude_names = [\"^{prefix}\"]\nmetrics_interval = \"0s\"\n\
             telemetry_interval = \"3s\"\nbuffer_spill_after = \"2s\"\n",
            collect_data.to_str().unwrap()
        ),
    )
    .unwrap();

    let started = Instant::now();
    let mut server = serve(port, &serve_data, dir.path().join("serve-1.log"));
    let collector = Proc::start(
        &[
            "collect",
            "--url",
            &base,
            "--config",
            config.to_str().unwrap(),
            "--metrics-listen",
            &format!("127.0.0.1:{metrics_port}"),
        ],
        dir.path().join("collect.log"),
    );
    wait_until(
        Duration::from_secs(30),
        "collector metrics",
        &[&collector],
        || {
            http()
                .get(&metrics_url)
                .send()
                .is_ok_and(|r| r.status().is_success())
        },
    );
    // About 200 lines a second for about 40 seconds.
    let container = Container::sh(
        &prefix,
        &format!(
            "i=1; while [ $i -le {LINES} ]; do echo \"line $i\"; i=$((i+1)); usleep 5000; done"
        ),
    );
    // Its log lines only (registrations of the container match its name too).
    let query = format!("container_name:{} AND kind:log", container.name);
    let count = |http: &reqwest::blocking::Client| -> Option<u64> {
        let v: serde_json::Value = http
            .get(format!("{base}/api/v1/search"))
            .query(&[("q", query.as_str()), ("limit", "1"), ("since", "1h")])
            .send()
            .ok()?
            .json()
            .ok()?;
        v["total"].as_u64()
    };
    wait_until(
        Duration::from_secs(30),
        "first lines indexed",
        &[&server, &collector],
        || count(&http()).is_some_and(|n| n > 0),
    );
    let before_outage = count(&http()).unwrap_or(0);
    println!(
        "{before_outage} lines indexed {:?} after start; stopping serve",
        started.elapsed()
    );

    server.stop();
    let outage = Instant::now();
    std::thread::sleep(Duration::from_secs(30));
    let buffered_bytes = buffer_dir_bytes(&buffer_dir);
    let metrics_during = http().get(&metrics_url).send().unwrap().text().unwrap();
    let buffered_gauge = gauge(&metrics_during, "shiplog_collector_buffer_bytes").unwrap();
    println!(
        "outage of {:?}: buffer dir {buffered_bytes} bytes, gauge {buffered_gauge} bytes",
        outage.elapsed()
    );
    let server = serve(port, &serve_data, dir.path().join("serve-2.log"));
    let restarted = Instant::now();

    assert_eq!(container.wait(), 0, "the line writer finished");
    wait_until(
        Duration::from_secs(120),
        "every line indexed",
        &[&server, &collector],
        || count(&http()).is_some_and(|n| n >= LINES as u64),
    );
    println!(
        "all {LINES} lines indexed {:?} after serve came back",
        restarted.elapsed()
    );
    wait_until(
        Duration::from_secs(60),
        "the buffer to drain",
        &[&collector],
        || {
            let text = http().get(&metrics_url).send().and_then(|r| r.text());
            text.is_ok_and(|t| gauge(&t, "shiplog_collector_buffer_bytes") == Some(0.0))
                && buffer_dir_bytes(&buffer_dir) == 0
        },
    );
    println!(
        "buffer drained {:?} after serve came back",
        restarted.elapsed()
    );

    // Exactly once: the total and the distinct lines both match.
    let v: serde_json::Value = http()
        .get(format!("{base}/api/v1/search"))
        .query(&[("q", query.as_str()), ("limit", "10000"), ("since", "1h")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let hits: Vec<Event> = serde_json::from_value(v["hits"].clone()).unwrap();
    assert_eq!(
        v["total"].as_u64(),
        Some(LINES as u64),
        "no duplicates: {}",
        v["total"]
    );
    let lines: HashSet<&str> = hits.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(lines.len(), LINES, "every line once");
    for n in 1..=LINES {
        assert!(
            lines.contains(format!("line {n}").as_str()),
            "line {n} is missing"
        );
    }
    assert!(
        buffered_bytes > 0 || buffered_gauge > 0.0,
        "the outage went through the disk buffer; collector log:\n{}",
        collector.log()
    );

    // The collector ships its own metrics as events of service shiplog.
    wait_until(
        Duration::from_secs(30),
        "self-telemetry events",
        &[&collector],
        || {
            http()
                .get(format!("{base}/api/v1/search"))
                .query(&[("q", "service:shiplog"), ("limit", "1"), ("since", "1h")])
                .send()
                .and_then(|r| r.json::<serde_json::Value>())
                .is_ok_and(|v| v["total"].as_u64().is_some_and(|n| n > 0))
        },
    );
    let metrics = http().get(&metrics_url).send().unwrap().text().unwrap();
    println!(
        "collector: {} lines read, {} retries, {} batches buffered; total {:?}",
        gauge(&metrics, "shiplog_collector_lines_read_total").unwrap_or(-1.0),
        gauge(&metrics, "shiplog_collector_send_retries_total").unwrap_or(-1.0),
        gauge(&metrics, "shiplog_collector_batches_buffered_total").unwrap_or(-1.0),
        started.elapsed()
    );
}

/// One search's total and hits.
fn search(base: &str, query: &str, limit: usize) -> Option<(u64, Vec<Event>)> {
    let v: serde_json::Value = http()
        .get(format!("{base}/api/v1/search"))
        .query(&[("q", query), ("limit", &limit.to_string()), ("since", "1h")])
        .send()
        .ok()?
        .json()
        .ok()?;
    let hits = serde_json::from_value(v["hits"].clone()).ok()?;
    Some((v["total"].as_u64()?, hits))
}

/// For each container with lines missing from the index: how many it has, and what every
/// collector run logged about it (which names the log task that held the missing lines).
fn shortfall(base: &str, containers: &[Container], each: usize, logs: &Path) -> String {
    let runs: Vec<String> = (1..=3)
        .map(|n| std::fs::read_to_string(logs.join(format!("collect-{n}.log"))).unwrap_or_default())
        .collect();
    let mut report = String::new();
    // The checkpoints as the last collector left them (`<data_dir>/collector/`).
    let checkpoints = std::fs::read_to_string(logs.join("collect/collector/checkpoints.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
    for c in containers {
        let query = format!("container_name:{} AND kind:log", c.name);
        let total = search(base, &query, 1).map_or(0, |(n, _)| n);
        if total as usize == each {
            continue;
        }
        // Which line numbers are missing, as ranges, and when the lines around them were
        // written (Docker's time), to tell a lost read from a lost tail.
        let hits = search(base, &query, each + 10).map_or_else(Vec::new, |(_, hits)| hits);
        let numbered: std::collections::BTreeMap<usize, String> = hits
            .iter()
            .filter_map(|e| {
                let n = e.message.strip_prefix("line ")?.parse().ok()?;
                Some((n, e.ts.to_rfc3339()))
            })
            .collect();
        let mut missing = Vec::new();
        let mut n = 1;
        while n <= each {
            if numbered.contains_key(&n) {
                n += 1;
                continue;
            }
            let from = n;
            while n <= each && !numbered.contains_key(&n) {
                n += 1;
            }
            let before = numbered
                .range(..from)
                .next_back()
                .map(|(_, ts)| ts.as_str());
            let after = numbered.range(n..).next().map(|(_, ts)| ts.as_str());
            missing.push(format!(
                "{from}..={} (line before at {}, after at {})",
                n - 1,
                before.unwrap_or("-"),
                after.unwrap_or("-")
            ));
        }
        report += &format!(
            "{}: {total} of {each} lines indexed; missing {}\n",
            c.name,
            missing.join(", ")
        );
        // Docker's own record of the missing lines and their neighbours: whether the
        // engine has them, and at which times.
        let stored = docker(&["logs", "--timestamps", &c.id]);
        let wanted: HashSet<usize> = (1..=each)
            .filter(|n| {
                !numbered.contains_key(n)
                    || !numbered.contains_key(&(n + 1))
                    || (*n > 1 && !numbered.contains_key(&(n - 1)))
            })
            .collect();
        for line in stored.lines() {
            let number = line
                .rsplit_once("line ")
                .and_then(|(_, n)| n.trim().parse::<usize>().ok());
            if number.is_some_and(|n| wanted.contains(&n)) {
                report += &format!("  docker: {line}\n");
            }
        }
        if let Some(found) = checkpoints.as_ref().map(|v| &v["containers"][&c.id]) {
            report += &format!("  checkpoint: {found}\n");
        }
        let short = &c.id[..12];
        for (n, log) in runs.iter().enumerate() {
            for line in log
                .lines()
                .filter(|l| l.contains(c.name.as_str()) || l.contains(short))
            {
                report += &format!("  collect-{}: {line}\n", n + 1);
            }
        }
    }
    report
}

#[test]
fn fifty_containers_across_two_collector_sigkills_are_indexed_exactly_once() {
    const CONTAINERS: usize = 50;
    const EACH: usize = 2_000;
    if !docker_or_skip("collector_sigkill") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serve_data = dir.path().join("serve");
    let collect_data = dir.path().join("collect");
    let port = free_port();
    let metrics_port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let prefix = format!("shiplog-killtest-{}", std::process::id());
    let config = dir.path().join("collect.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n\n[collector]\ninclude_names = [\"^{prefix}\"]\nmetrics_interval = \"0s\"\n{}",
            collect_data.to_str().unwrap(),
            // SHIPLOG_TEST_SOCKET_LOGS=0 runs it through the client's log path instead of
            // the default socket reader.
            if std::env::var("SHIPLOG_TEST_SOCKET_LOGS").as_deref() == Ok("0") {
                "docker_socket_logs = false\n"
            } else {
                ""
            }
        ),
    )
    .unwrap();
    let _server = serve(port, &serve_data, dir.path().join("serve.log"));
    let collect = |n: usize| {
        let proc = Proc::start(
            &[
                "collect",
                "--url",
                &base,
                "--config",
                config.to_str().unwrap(),
                "--metrics-listen",
                &format!("127.0.0.1:{metrics_port}"),
            ],
            dir.path().join(format!("collect-{n}.log")),
        );
        wait_until(
            Duration::from_secs(30),
            "collector metrics",
            &[&proc],
            || {
                http()
                    .get(&metrics_url)
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            },
        );
        proc
    };
    let mut collector = collect(1);
    // About 100 lines a second each, 20 at a time, so 50 shells stay light on two cores.
    let script = format!(
        "i=1; while [ $i -le {EACH} ]; do echo \"line $i\"; \
         if [ $((i % 20)) -eq 0 ]; then usleep 200000; fi; i=$((i+1)); done"
    );
    let started = Instant::now();
    let containers: Vec<Container> = (0..CONTAINERS)
        .map(|_| Container::sh(&prefix, &script))
        .collect();
    println!("{CONTAINERS} containers started in {:?}", started.elapsed());
    let everything = format!("container_name:{prefix}-* AND kind:log");
    let indexed = || search(&base, &everything, 1).map_or(0, |(n, _)| n);

    // Two SIGKILLs mid-stream, each followed by a restart on the same state directory.
    for kill in 1..=2 {
        std::thread::sleep(Duration::from_secs(4));
        let before = indexed();
        collector.kill9();
        println!(
            "SIGKILL {kill} after {:?}, {before} of {} lines indexed",
            started.elapsed(),
            CONTAINERS * EACH
        );
        assert!(
            before < (CONTAINERS * EACH) as u64,
            "the kill must land mid-stream"
        );
        std::thread::sleep(Duration::from_secs(1));
        collector = collect(kill + 1);
    }
    for c in &containers {
        assert_eq!(c.wait(), 0, "{} finished writing", c.name);
    }
    println!("writers done after {:?}", started.elapsed());
    let waited = Instant::now();
    while indexed() < (CONTAINERS * EACH) as u64 {
        if waited.elapsed() > Duration::from_secs(180) {
            panic!(
                "not every line indexed 180 s after the writers finished:\n{}",
                shortfall(&base, &containers, EACH, dir.path())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing more arrives late: the count stays put after the collector had time to
    // send any duplicate it would send.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        indexed(),
        (CONTAINERS * EACH) as u64,
        "no duplicates overall"
    );
    for c in &containers {
        let query = format!("container_name:{} AND kind:log", c.name);
        let (total, hits) = search(&base, &query, EACH + 10).unwrap();
        assert_eq!(total, EACH as u64, "{}: no duplicates", c.name);
        let lines: HashSet<&str> = hits.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(lines.len(), EACH, "{}: every line once", c.name);
        for n in 1..=EACH {
            assert!(
                lines.contains(format!("line {n}").as_str()),
                "{}: line {n} is missing",
                c.name
            );
        }
    }
    println!(
        "{} lines from {CONTAINERS} containers indexed exactly once after {:?}",
        CONTAINERS * EACH,
        started.elapsed()
    );
}
