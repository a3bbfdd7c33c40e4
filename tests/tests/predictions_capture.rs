//! Predictions captured from a real model container: a container labelled
//! `shiplog.predictions=true` writes 10,000 JSON predictions (each input holding an e-mail
//! address) and a few malformed lines to a real `shiplog up` with the e-mail rule on.
//! Every prediction is found by request id and by an input field, the malformed lines are
//! kept as logs, and no e-mail address is left anywhere under the data directory, in plain
//! or in zstd-compressed bytes. Timings are printed, never asserted.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shiplog_core::{Event, Kind};
use shiplog_tests::{Node, docker_or_skip, test_image};

/// Predictions the container writes.
const PREDICTIONS: usize = 10_000;
/// Malformed JSON lines (no request id) among them, one every 2,500 predictions.
const MALFORMED: usize = 4;
/// The domain of every e-mail address the container writes.
const EMAIL_DOMAIN: &[u8] = b"@example.com";
/// Largest output accepted from one zstd frame found in a data file.
const MAX_FRAME_OUTPUT: u64 = 256 << 20;
/// Concurrent lookups while checking every prediction one by one.
const LOOKUP_THREADS: usize = 4;

/// A container removed when dropped, started with its own labels.
struct LabelledContainer {
    name: String,
    id: String,
}

impl LabelledContainer {
    fn start(name: &str, labels: &[&str], script: &str) -> LabelledContainer {
        let mut args = vec!["run", "-d", "--name", name, "--label", "shiplog.test=1"];
        for label in labels {
            args.extend(["--label", label]);
        }
        let image = test_image();
        args.extend([image, "sh", "-c", script]);
        let out = Command::new("docker").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "docker run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        LabelledContainer {
            name: name.to_string(),
            id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        }
    }

    fn wait(&self) -> i32 {
        let out = Command::new("docker")
            .args(["wait", &self.id])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(-1)
    }
}

impl Drop for LabelledContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

fn hits(v: &Value) -> Vec<Event> {
    serde_json::from_value(v["hits"].clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn total(node: &Node, q: &str) -> Option<u64> {
    let (status, v) = node.search(&[("q", q), ("limit", "1"), ("since", "24h")]);
    (status == 200).then(|| v["total"].as_u64()).flatten()
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What every zstd frame inside `bytes` decompresses to (WAL payloads and tantivy's doc
/// store blocks are zstd frames inside other framing): decoded from each frame magic on,
/// capped, keeping what decodes before any error.
fn zstd_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(offset) = bytes[at..].windows(4).position(|w| w == MAGIC) {
        let start = at + offset;
        if let Ok(decoder) = zstd::stream::read::Decoder::new(&bytes[start..]) {
            let mut decoded = Vec::new();
            let _ = decoder
                .single_frame()
                .take(MAX_FRAME_OUTPUT)
                .read_to_end(&mut decoded);
            if !decoded.is_empty() {
                out.push(decoded);
            }
        }
        at = start + 1;
    }
    out
}

/// One file of the data dir: its bytes and what its zstd frames decompress to.
struct Scanned {
    path: PathBuf,
    raw: Vec<u8>,
    frames: Vec<Vec<u8>>,
}

/// Files whose bytes, or whose decompressed zstd frames, contain `needle`.
fn files_holding(files: &[Scanned], needle: &[u8]) -> Vec<String> {
    files
        .iter()
        .filter(|f| contains(&f.raw, needle) || f.frames.iter().any(|d| contains(d, needle)))
        .map(|f| f.path.display().to_string())
        .collect()
}

#[test]
fn ten_thousand_predictions_are_findable_and_no_email_reaches_the_disk() {
    if !docker_or_skip("ten_thousand_predictions_are_findable_and_no_email_reaches_the_disk") {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let run = format!("{}x{nanos}", std::process::id());
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("shiplog.toml");
    std::fs::write(
        &config,
        "[collector]\ntelemetry_interval = \"1s\"\n\n[predictions]\nbuiltin_redactions = [\"email\"]\n",
    )
    .unwrap();
    let mut node = Node::start(&["--config", config.to_str().unwrap()], &[]);

    // Each prediction: a unique request id and customer id, an e-mail address in its input,
    // and a marker only stored data can hold (the scan below must find that one).
    let script = format!(
        r#"i=1; while [ $i -le {PREDICTIONS} ]; do
echo "{{\"model\":\"churn\",\"version\":\"3\",\"request_id\":\"req-{run}-$i\",\"latency_ms\":$((i % 500)),\"input\":{{\"customer_id\":$i,\"email\":\"user$i-{run}@example.com\",\"plan\":\"plan{run}\"}},\"output\":{{\"score\":0.5}},\"status\":\"ok\"}}";
if [ $((i % 2500)) -eq 0 ]; then echo "{{\"model\":\"churn\",\"input\":{{\"email\":\"broken$i@example.com\"}}}}"; fi;
i=$((i+1)); done; echo "done writing, questions to ops-{run}@example.com""#
    );
    let name = format!("model-e2e-{run}");
    let c = LabelledContainer::start(&name, &["shiplog.predictions=true"], &script);
    assert_eq!(c.wait(), 0);
    let exited = Instant::now();

    let predictions_q = format!("container:{} AND kind:prediction", c.name);
    node.wait_until(
        Duration::from_secs(300),
        "10,000 predictions to be searchable",
        || total(&node, &predictions_q) == Some(PREDICTIONS as u64),
    );
    let logs_q = format!("container:{} AND kind:log", c.name);
    node.wait_until(Duration::from_secs(120), "the 5 log lines", || {
        total(&node, &logs_q) == Some(MALFORMED as u64 + 1)
    });
    eprintln!(
        "all predictions and logs searchable {:.1} s after the container exited",
        exited.elapsed().as_secs_f64()
    );

    // The whole set in one page: every request id once, every input redacted.
    let (status, v) = node.search(&[("q", &predictions_q), ("limit", "10000"), ("since", "24h")]);
    assert_eq!(status, 200, "{v}");
    let events = hits(&v);
    assert_eq!(events.len(), PREDICTIONS);
    let mut ids = HashSet::new();
    for e in &events {
        assert_eq!(e.kind, Kind::Prediction);
        assert_eq!(e.model.as_deref(), Some("churn"));
        assert_eq!(e.model_version.as_deref(), Some("3"));
        assert_eq!(e.status.as_deref(), Some("ok"));
        let input = e.input.as_ref().unwrap();
        assert_eq!(input["email"], "****", "{input}");
        assert_eq!(e.fields["_redacted"], json!(["email"]));
        assert!(!e.message.contains('@'), "{}", e.message);
        ids.insert(e.request_id.clone().unwrap());
    }
    assert_eq!(ids.len(), PREDICTIONS, "every request id once");

    // Each prediction found alone, by its request id and by an input field.
    let started = Instant::now();
    let next = AtomicUsize::new(1);
    std::thread::scope(|scope| {
        for _ in 0..LOOKUP_THREADS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i > PREDICTIONS {
                        return;
                    }
                    let request_id = format!("req-{run}-{i}");
                    let by_id = format!("request_id:{request_id}");
                    let (status, v) = node.search(&[("q", &by_id), ("since", "24h")]);
                    assert_eq!(status, 200, "{by_id}: {v}");
                    let found = hits(&v);
                    assert_eq!(found.len(), 1, "{by_id}: {v}");
                    assert_eq!(found[0].input.as_ref().unwrap()["customer_id"], i);
                    let by_input = format!("input.customer_id:{i} AND container:{}", c.name);
                    let (status, v) = node.search(&[("q", &by_input), ("since", "24h")]);
                    assert_eq!(status, 200, "{by_input}: {v}");
                    let found = hits(&v);
                    assert_eq!(found.len(), 1, "{by_input}: {v}");
                    assert_eq!(found[0].request_id.as_deref(), Some(request_id.as_str()));
                }
            });
        }
    });
    eprintln!(
        "{} single lookups in {:.1} s",
        2 * PREDICTIONS,
        started.elapsed().as_secs_f64()
    );

    // The malformed lines are logs with their reason, and redacted too; so is the plain one.
    let (_, v) = node.search(&[("q", &logs_q), ("limit", "100"), ("since", "24h")]);
    let logs = hits(&v);
    let malformed: Vec<&Event> = logs
        .iter()
        .filter(|e| e.fields.contains_key("_prediction_error"))
        .collect();
    assert_eq!(malformed.len(), MALFORMED, "{v}");
    for e in &malformed {
        assert_eq!(e.fields["_prediction_error"], "missing request_id");
        assert_eq!(e.fields["model"], "churn");
        assert_eq!(e.fields["input"]["email"], "****");
    }
    let plain: Vec<&Event> = logs
        .iter()
        .filter(|e| !e.fields.contains_key("_prediction_error"))
        .collect();
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].message, "done writing, questions to ****");
    assert_eq!(
        total(&node, &format!("{logs_q} AND malformed")),
        Some(MALFORMED as u64),
        "malformed lines are searchable by their message"
    );

    // The collector counted them (its own metrics are shipped every second here).
    node.wait_until(
        Duration::from_secs(60),
        "the malformed count in the collector's metrics",
        || {
            let (_, v) = node.search(&[
                ("q", "service:shiplog AND kind:metric"),
                ("limit", "1000"),
                ("since", "10m"),
            ]);
            let metrics = hits(&v);
            let value = |name: &str| {
                metrics
                    .iter()
                    .find(|e| e.name.as_deref() == Some(name))
                    .and_then(|e| e.value)
                    .unwrap_or(0.0)
            };
            value("collector_predictions_total") >= PREDICTIONS as f64
                && value("collector_predictions_malformed_total") >= MALFORMED as f64
        },
    );

    // Nothing under the data dir holds an address, in plain or compressed bytes; the marker
    // every stored input holds is found, so the scan does see stored data.
    assert!(node.stop().success(), "{}", node.log());
    let scanned: Vec<Scanned> = files(&node.data_dir)
        .into_iter()
        .map(|path| {
            let raw = std::fs::read(&path).unwrap();
            let frames = zstd_frames(&raw);
            Scanned { path, raw, frames }
        })
        .collect();
    let frames: usize = scanned.iter().map(|f| f.frames.len()).sum();
    eprintln!("scanned {} files, {frames} zstd frames", scanned.len());
    let marker = format!("plan{run}");
    let in_plain = scanned
        .iter()
        .filter(|f| contains(&f.raw, marker.as_bytes()))
        .count();
    eprintln!(
        "stored inputs found in {:?} ({in_plain} of them in plain bytes)",
        files_holding(&scanned, marker.as_bytes())
    );
    assert!(
        !files_holding(&scanned, marker.as_bytes()).is_empty(),
        "the stored inputs were not found by the scan: it cannot prove anything"
    );
    let leaks = files_holding(&scanned, EMAIL_DOMAIN);
    assert!(leaks.is_empty(), "e-mail addresses on disk in {leaks:?}");
}

#[test]
fn the_scan_finds_an_address_inside_a_zstd_frame_inside_other_bytes() {
    let mut raw = b"header\x00\x01".to_vec();
    let frame = zstd::bulk::compress(b"{\"email\":\"ada@example.com\"}", 3).unwrap();
    raw.extend_from_slice(&frame);
    raw.extend_from_slice(b"\xff\xfetrailer");
    let frames = zstd_frames(&raw);
    assert!(
        frames.iter().any(|f| f.starts_with(b"{\"email\"")),
        "the frame decodes from its magic on, trailing bytes ignored"
    );
    let scanned = [Scanned {
        path: PathBuf::from("segment"),
        frames: zstd_frames(&raw),
        raw,
    }];
    assert_eq!(files_holding(&scanned, EMAIL_DOMAIN), ["segment"]);
}
