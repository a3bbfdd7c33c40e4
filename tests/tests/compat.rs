//! The compatibility surfaces against real clients from PyPI: the official Elasticsearch 8
//! client, opensearch-py, the OpenTelemetry SDK's OTLP/HTTP exporter and
//! python-logging-loki each ship records to a real `shiplog up` (the scripts in
//! `tests/python/` also read them back through their own client where it can), and the
//! records are then read back through shiplog's own `/api/v1/search`.
//!
//! The clients live in a virtualenv that `scripts/test.sh` creates (`target/pyenv`, or
//! `SHIPLOG_PYTHON`). Without it: under `CI=true` the test fails, elsewhere it says SKIPPED.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shiplog_tests::Node;

/// The virtualenv's interpreter, or `None` (after failing under CI) when there is none.
fn python_or_skip(test: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("SHIPLOG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/pyenv/bin/python"));
    if python.exists() {
        return Some(python);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: no Python virtualenv at {} and CI=true requires one: run scripts/test.sh",
            python.display()
        );
    }
    eprintln!(
        "SKIPPED {test}: no Python virtualenv at {} (scripts/test.sh creates it)",
        python.display()
    );
    None
}

/// Runs one client script against the node, failing the test with its output when it
/// fails or takes longer than two minutes.
fn run_client(python: &Path, script: &str, node: &Node, marker: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    let mut child = Command::new(python)
        .arg(&path)
        .args([&node.url, marker])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} took more than two minutes; node log:\n{}",
                node.log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nnode log:\n{}",
        out.status,
        node.log()
    );
    eprint!("{stdout}");
}

/// Polls shiplog's own search until `q` finds `n` events (refresh semantics: at most a
/// commit interval late), and returns them newest first.
fn read_back(node: &Node, q: &str, n: u64) -> Vec<Value> {
    let mut last = Value::Null;
    node.wait_until(
        Duration::from_secs(30),
        &format!("{n} events for {q}"),
        || {
            let (status, v) = node.search(&[("q", q), ("limit", "100")]);
            let done = status == 200 && v["total"].as_u64() == Some(n);
            last = v;
            done
        },
    );
    last["hits"].as_array().cloned().unwrap_or_default()
}

fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("m{:x}{:x}", nanos, std::process::id())
}

#[test]
fn real_clients_ship_through_every_compat_surface_and_read_back() {
    let test = "real_clients_ship_through_every_compat_surface";
    let Some(python) = python_or_skip(test) else {
        return;
    };
    let node = Node::start(&["--no-docker"], &[]);

    // Elasticsearch 8 client: helpers.bulk, refresh, search, and search(aggs=...) reading
    // histogram and terms buckets back (checked inside the script).
    let m = marker();
    run_client(&python, "es_client.py", &node, &m);
    let hits = read_back(
        &node,
        &format!("fields.marker:{m} AND fields._index:py-es"),
        5,
    );
    let newest = &hits[0];
    assert_eq!(newest["message"], format!("es client {m} line 4"));
    assert_eq!(newest["ts"], "2026-11-22T03:00:04.000000000Z");
    assert_eq!(newest["service"], "py-es");
    assert_eq!(newest["node"], "py-host");
    assert_eq!(newest["level"], "info");
    assert_eq!(newest["fields"]["n"], 4);
    assert_eq!(newest["fields"]["_id"], format!("{m}-4"));

    // opensearch-py: helpers.bulk with refresh, paged search, aggregations.
    let m = marker();
    run_client(&python, "opensearch_client.py", &node, &m);
    let hits = read_back(
        &node,
        &format!("fields.marker:{m} AND fields._index:py-os"),
        3,
    );
    assert_eq!(hits[2]["message"], format!("opensearch client {m} line 0"));
    assert_eq!(hits[2]["ts"], "2026-11-22T04:00:00.000000000Z");
    assert_eq!(hits[2]["level"], "error");
    assert_eq!(hits[2]["service"], "py-os");

    // OpenTelemetry SDK: logging handler, OTLP/HTTP protobuf, gzip.
    let m = marker();
    run_client(&python, "otlp_client.py", &node, &m);
    let hits = read_back(
        &node,
        &format!("fields.k8s.pod.name:pod-{m} AND kind:log"),
        2,
    );
    let mut by_message: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            assert_eq!(h["service"], "py-otlp", "{h}");
            assert_eq!(h["node"], "py-host", "{h}");
            assert_eq!(h["fields"]["marker"], m.as_str(), "{h}");
            (
                h["message"].as_str().unwrap().to_string(),
                h["level"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    by_message.sort();
    assert_eq!(
        by_message,
        vec![
            (format!("otlp client {m} line 0"), "error".to_string()),
            (format!("otlp client {m} line 1"), "info".to_string()),
        ]
    );
    // A record carrying model attributes is a prediction.
    let hits = read_back(&node, &format!("request_id:otlp-{m}"), 1);
    assert_eq!(hits[0]["kind"], "prediction", "{}", hits[0]);
    assert_eq!(hits[0]["model"], "churn");
    assert_eq!(hits[0]["model_version"], "v7");
    assert_eq!(hits[0]["latency_ms"], 12.5);
    assert_eq!(hits[0]["service"], "py-otlp");

    // python-logging-loki: Loki push v1, JSON.
    let m = marker();
    run_client(&python, "loki_client.py", &node, &m);
    let hits = read_back(&node, &format!("fields.marker:{m} AND service:py-loki"), 3);
    for h in &hits {
        assert_eq!(h["level"], "warn", "{h}");
        assert_eq!(h["node"], "py-host", "{h}");
        assert!(
            h["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("loki client {m} line ")),
            "{h}"
        );
    }
}
