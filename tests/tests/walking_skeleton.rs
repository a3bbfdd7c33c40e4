//! The walking skeleton end to end: a real `shiplog up`, the real Docker engine, real
//! sockets. Timings are printed, never asserted (shared machines are noisy).

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use shiplog_core::{Event, Timestamp};
use shiplog_tests::{Container, Node, docker_or_skip};

fn hits(v: &serde_json::Value) -> Vec<Event> {
    serde_json::from_value(v["hits"].clone()).unwrap()
}

#[test]
fn every_line_of_a_container_started_after_up_is_searchable_once_with_its_stream() {
    if !docker_or_skip("every_line_of_a_container_started_after_up") {
        return;
    }
    let node = Node::start(&[], &[]);
    let c = Container::sh(
        "shiplog-e2e-2000",
        "i=1; while [ $i -le 1000 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done",
    );
    assert_eq!(c.wait(), 0);
    let exited = Instant::now();
    // Registrations and metric samples carry the container name too: count its log lines.
    let query = format!("container:{} AND kind:log", c.name);
    let waited = node.wait_until(
        Duration::from_secs(60),
        "2000 lines to be searchable",
        || {
            let (_, v) = node.search(&[("q", &query), ("limit", "1")]);
            v["total"].as_u64() == Some(2000)
        },
    );
    eprintln!(
        "all 2000 lines searchable {:.0} ms after the container exited",
        waited.as_secs_f64() * 1e3
    );
    let _ = exited;

    let (status, v) = node.search(&[("q", &query), ("limit", "10000")]);
    assert_eq!(status, 200);
    let events = hits(&v);
    assert_eq!(events.len(), 2000);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &events {
        *seen.entry(e.message.clone()).or_default() += 1;
        let want = if e.message.starts_with("out ") {
            "stdout"
        } else {
            "stderr"
        };
        assert_eq!(e.stream.map(|s| s.as_str()), Some(want), "{}", e.message);
        assert_eq!(e.container_name, c.name);
        assert_eq!(e.container_id, c.id);
        assert_eq!(
            e.service, c.name,
            "no compose label: the service is the container name"
        );
        assert_eq!(e.image, shiplog_tests::docker::TEST_IMAGE);
    }
    for i in 1..=1000 {
        assert_eq!(seen.get(&format!("out {i}")), Some(&1), "out {i}");
        assert_eq!(seen.get(&format!("err {i}")), Some(&1), "err {i}");
    }
    assert!(
        events.windows(2).all(|w| w[0].ts >= w[1].ts),
        "newest first"
    );

    // The stream field is searchable too.
    let (_, v) = node.search(&[("q", &format!("{query} AND stream:stderr")), ("limit", "1")]);
    assert_eq!(v["total"], 1000);

    // The node's one /metrics carries the in-process collector's counters too.
    let text = node
        .http()
        .get(format!("{}/metrics", node.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let counter = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    assert!(
        counter("shiplog_collector_lines_read_total") >= 2000,
        "{text}"
    );
    assert!(
        counter("shiplog_collector_events_sent_total") >= 2000,
        "{text}"
    );
    assert!(
        text.contains("# TYPE shiplog_http_requests_total counter"),
        "{text}"
    );
}

#[test]
fn a_tail_subscriber_receives_a_line_a_container_writes() {
    if !docker_or_skip("a_tail_subscriber_receives_a_line_a_container_writes") {
        return;
    }
    let node = Node::start(&[], &[]);
    let marker = format!("tail-marker-{}", std::process::id());
    let client = reqwest::blocking::Client::builder()
        .timeout(None)
        .build()
        .unwrap();
    let mut resp = client
        .get(format!("{}/api/v1/tail", node.url))
        .query(&[("q", format!("\"{marker}\""))])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // The container prints the marker a few times so a line written before the subscription
    // settled cannot make the test flaky; the first one received is measured.
    let _c = Container::sh(
        "shiplog-e2e-tail",
        &format!("sleep 1; for i in 1 2 3 4 5; do echo {marker} $i; sleep 1; done"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut text = String::new();
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                if message.contains("event: log") {
                    let data = message
                        .lines()
                        .find_map(|l| l.strip_prefix("data: "))
                        .unwrap_or("")
                        .to_string();
                    let received = Timestamp::now();
                    if tx.send((data, received)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let (data, received) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("no tail event within 60 s");
    let event: Event = serde_json::from_str(&data).unwrap();
    assert!(event.message.starts_with(&marker), "{}", event.message);
    assert_eq!(event.stream.map(|s| s.as_str()), Some("stdout"));
    let delay_ms = (received.as_nanos() - event.ts.as_nanos()) as f64 / 1e6;
    eprintln!("tail delay, container write -> SSE subscriber: {delay_ms:.1} ms");
}

#[test]
fn bad_ingest_bodies_get_400_with_line_and_reason_and_nothing_is_stored() {
    let node = Node::start(&["--no-docker"], &[]);
    let (status, v) = node.ingest(b"\x28\xb5\x2f\xfd\x00\x01garbage".to_vec(), Some("zstd"));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("zstd"),
        "{v}"
    );

    let body =
        b"{\"message\":\"good one\"}\n{\"message\":\"good two\"}\n{\"message\": \"broken\" \n";
    let (status, v) = node.ingest(body.to_vec(), None);
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["line"], 3, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 3:"),
        "{v}"
    );

    let huge = vec![b'x'; 17 * 1024 * 1024];
    let (status, v) = node.ingest(huge, None);
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");

    let bomb = zstd::bulk::compress(&vec![b' '; 200 * 1024 * 1024], 19).unwrap();
    let (status, v) = node.ingest(bomb, Some("zstd"));
    // The same answer as a gzip bomb on the compatibility routes.
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("exceeds"),
        "{v}"
    );

    let (status, v) = node.search(&[("q", "good")]);
    assert_eq!(status, 200);
    assert_eq!(v["total"], 0, "nothing from a refused batch is stored: {v}");
    let (status, v) = node.ingest(b"{\"message\":\"good three\"}\n".to_vec(), None);
    assert_eq!(
        (status, v["accepted"].as_u64()),
        (200, Some(1)),
        "the server is still up: {v}"
    );
}

#[test]
fn up_without_a_docker_engine_still_serves_and_says_so_once() {
    let mut node = Node::start(&[], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let (status, v) = node.ingest(
        b"{\"message\":\"no engine, still here\",\"service\":\"web\"}\n".to_vec(),
        None,
    );
    assert_eq!(status, 200, "{v}");
    let (_, v) = node.search(&[("q", "service:web AND engine")]);
    assert_eq!(v["total"], 1);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        node.is_running(),
        "the node must not exit without an engine"
    );
    let log = node.log();
    assert_eq!(
        log.matches("no Docker engine").count(),
        1,
        "said once, in plain words:\n{log}"
    );
    assert!(node.stop().success(), "clean exit on SIGTERM");
}

#[test]
fn the_cli_searches_as_a_table_and_as_json_lines() {
    let node = Node::start(&["--no-docker"], &[]);
    let body = b"{\"message\":\"ERROR payment failed\",\"service\":\"web\",\"level\":\"error\"}\n{\"message\":\"ok\",\"service\":\"web\"}\n";
    assert_eq!(node.ingest(body.to_vec(), None).0, 200);
    let run = |args: &[&str]| {
        std::process::Command::new(shiplog_tests::shiplog_bin())
            .args(args)
            .env("SHIPLOG_URL", &node.url)
            .output()
            .unwrap()
    };
    let out = run(&["search", "service:web AND error"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("TIME (UTC)"), "{table}");
    assert!(
        table.contains("ERROR payment failed") && !table.contains(" ok\n"),
        "{table}"
    );

    let out = run(&["search", "--json", "service:web"]);
    let lines: Vec<Event> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].message, "ok", "newest first");

    let out = run(&["search", "service:(web"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected ')'") && err.contains('^'), "{err}");

    let out = std::process::Command::new(shiplog_tests::shiplog_bin())
        .args(["search", "x"])
        .env("SHIPLOG_URL", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach shiplog"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
