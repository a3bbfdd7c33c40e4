//! A data directory on a small filesystem that fills up: ingest refuses cleanly (507 with a
//! message), nothing acknowledged is lost, and ingest resumes by itself once space is freed.
//! With `refresh=true`, a batch stored whose commit then failed answers 202 `searchable:
//! false` (never an error a sender would resend for), and a batch resent with its
//! `Idempotency-Key` is stored once, whatever the first answer was.
//!
//! Needs root to mount a tmpfs. Under `CI=true` a failed mount fails the test; elsewhere it
//! prints that it was skipped.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use shiplog_tests::Node;

/// A tmpfs mount point, unmounted on drop; the temporary directory holding it goes after.
struct Mount {
    point: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(size: &str) -> Option<Mount> {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("fs");
        Self::tmpfs_at(size, point, dir)
    }

    fn tmpfs_at(size: &str, point: PathBuf, dir: tempfile::TempDir) -> Option<Mount> {
        std::fs::create_dir_all(&point).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&point)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Mount { point, _dir: dir })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

fn fill(path: &Path, bytes: usize) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x55u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        if f.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n;
    }
}

/// A batch of lines as `curl` users send them: no id and no time, so only the
/// `Idempotency-Key` can make a resend a duplicate.
fn body(batch: u64) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..200 {
        let n = batch * 200 + i;
        // Incompressible-ish text so the disk fills in a few hundred batches.
        let noise = format!(
            "{:x}{:x}",
            n.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            n.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        );
        out.push_str(&format!(
            "{{\"message\":\"fill n{n} {noise} {noise}\",\"service\":\"filler\"}}\n"
        ));
    }
    zstd::encode_all(out.as_bytes(), 1).unwrap()
}

/// Posts batch `b` with the idempotency key `<key>-<b>`, the same on every resend.
fn send(
    http: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    b: u64,
) -> reqwest::blocking::Response {
    http.post(url)
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "zstd")
        .header("idempotency-key", format!("{key}-{b}"))
        .body(body(b))
        .send()
        .unwrap()
}

#[test]
fn a_full_disk_refuses_ingest_cleanly_loses_nothing_acked_and_recovers() {
    let Some(mount) = Mount::tmpfs("40m") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("cannot mount a tmpfs (root needed); CI=true requires this test to run");
        }
        eprintln!("SKIPPED a_full_disk_refuses_ingest_cleanly: cannot mount a tmpfs (run as root)");
        return;
    };
    let data = mount.point.join("data");
    std::fs::create_dir(&data).unwrap();
    // Leave only a few MiB free.
    let filler = mount.point.join("filler");
    fill(&filler, 30 << 20);
    let node = Node::start_in(&data, "serve", &[], &[]);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/ingest?refresh=true", node.url);
    let post = |b: u64| send(&http, &url, "disk-full-batch", b);

    let mut acked: HashSet<u64> = HashSet::new();
    let mut refused: HashSet<u64> = HashSet::new();
    let mut stored_unsearchable = 0;
    let mut refusals = 0;
    let mut batch = 0;
    let started = Instant::now();
    while refusals < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the disk never filled up"
        );
        let resp = post(batch);
        let status = resp.status().as_u16();
        if status == 200 || status == 202 {
            let v: serde_json::Value = resp.json().unwrap();
            assert_eq!(
                v["accepted"].as_u64().unwrap() + v["duplicates"].as_u64().unwrap(),
                200,
                "{v}"
            );
            if status == 202 {
                // Stored in the WAL, not yet committed: the answer says so and says not
                // to resend; it becomes searchable once space is back.
                assert_eq!(v["searchable"], false, "{v}");
                assert!(
                    v["warning"]
                        .as_str()
                        .unwrap()
                        .contains("Do not send this batch again"),
                    "{v}"
                );
                stored_unsearchable += 1;
            } else {
                assert_eq!(v["searchable"], true, "{v}");
            }
            acked.insert(batch);
            batch += 1;
            continue;
        }
        refused.insert(batch);
        batch += 1;
        let v: serde_json::Value = resp.json().unwrap_or_default();
        assert!(
            matches!(status, 507 | 503 | 429),
            "a full disk is 507 (or 503/429 while retrying): {status} {v}"
        );
        if status == 507 {
            assert_eq!(v["error"]["code"], "disk_full", "{v}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("free space"),
                "the message says what to do: {v}"
            );
        }
        refusals += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "disk full after {} acked batches ({stored_unsearchable} answered 202 stored, not searchable); {} refused",
        acked.len(),
        refused.len()
    );
    assert!(
        acked.len() >= 3,
        "some batches must be acked before the disk fills"
    );
    let health = http.get(format!("{}/healthz", node.url)).send().unwrap();
    assert_eq!(health.status().as_u16(), 200, "the server stays up");

    // Free space: ingest resumes by itself, with no restart.
    std::fs::remove_file(&filler).unwrap();
    let resumed_at = Instant::now();
    loop {
        assert!(
            resumed_at.elapsed() < Duration::from_secs(60),
            "ingest did not resume after space was freed\n{}",
            node.log()
        );
        if post(batch).status().is_success() {
            acked.insert(batch);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // A sender resends everything it was not told was stored, and also (as a sender whose
    // connection broke would) the acked ones: with the same keys each is stored once.
    for b in refused
        .iter()
        .chain(acked.iter())
        .copied()
        .collect::<Vec<_>>()
    {
        let resp = post(b);
        assert!(
            resp.status().is_success(),
            "resend of batch {b}: {}",
            resp.status()
        );
        acked.insert(b);
    }
    eprintln!(
        "ingest resumed {:.1} s after space was freed",
        resumed_at.elapsed().as_secs_f64()
    );

    // Every acked event is stored exactly once.
    let expected: usize = acked.len() * 200;
    let mut counts: HashMap<String, usize> = HashMap::new();
    node.wait_until(
        Duration::from_secs(60),
        "every acked event to be searchable",
        || {
            counts.clear();
            let mut cursor: Option<String> = None;
            loop {
                let mut p = vec![
                    ("q", "service:filler".to_string()),
                    ("limit", "10000".to_string()),
                ];
                if let Some(c) = &cursor {
                    p.push(("cursor", c.clone()));
                }
                let params: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let (status, v) = node.search(&params);
                assert_eq!(status, 200, "{v}");
                for h in v["hits"].as_array().unwrap() {
                    *counts
                        .entry(
                            h["message"]
                                .as_str()
                                .unwrap()
                                .split(' ')
                                .nth(1)
                                .unwrap()
                                .to_string(),
                        )
                        .or_default() += 1;
                }
                match v["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            let missing: Vec<u64> = acked
                .iter()
                .filter(|b| (0..200).any(|i| !counts.contains_key(&format!("n{}", *b * 200 + i))))
                .copied()
                .collect();
            if !missing.is_empty() {
                eprintln!(
                    "{} events stored; batches not (fully) searchable yet: {:?}",
                    counts.len(),
                    &missing[..missing.len().min(20)]
                );
            }
            missing.is_empty()
        },
    );
    assert!(
        counts.values().all(|c| *c == 1),
        "an event was stored twice"
    );
    assert!(counts.len() >= expected);
    drop(node);
    drop(mount);
}

/// Only the index directory (`logs/`) sits on the small filesystem, so every batch reaches
/// the WAL and only the commits fail: `refresh=true` answers 202 `searchable: false` with
/// words saying not to resend, and each such batch is searchable, once, after space is back.
#[test]
fn a_full_index_disk_answers_stored_not_searchable_and_indexes_it_later() {
    let data = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs_at(
        "12m",
        data.path().join("logs"),
        tempfile::tempdir().unwrap(),
    ) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("cannot mount a tmpfs (root needed); CI=true requires this test to run");
        }
        eprintln!(
            "SKIPPED a_full_index_disk_answers_stored_not_searchable: cannot mount a tmpfs (run as root)"
        );
        return;
    };
    let filler = mount.point.join("filler");
    fill(&filler, 10 << 20);
    let node = Node::start_in(data.path(), "serve", &[], &[]);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/ingest?refresh=true", node.url);
    let post = |b: u64| send(&http, &url, "index-full", b);
    let mut unsearchable = Vec::new();
    let started = Instant::now();
    let mut batch = 0;
    while unsearchable.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no commit ever failed\n{}",
            node.log()
        );
        let resp = post(batch);
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp.json().unwrap_or_default();
        match status {
            200 => assert_eq!(v["searchable"], true, "{v}"),
            202 => {
                assert_eq!(v["searchable"], false, "{v}");
                assert_eq!(v["accepted"], 200, "{v}");
                let warning = v["warning"].as_str().unwrap();
                assert!(
                    warning.contains("stored durably")
                        && warning.contains("Do not send this batch again"),
                    "{v}"
                );
                unsearchable.push(batch);
            }
            other => panic!("the WAL has room, so the batch is stored: {other} {v}"),
        }
        batch += 1;
    }
    eprintln!(
        "{} batches before commits failed; 202 for {unsearchable:?}",
        batch - 3
    );
    let sent = batch;
    // A sender that resends anyway (a retry policy that ignores the body) adds nothing.
    let again: serde_json::Value = post(unsearchable[0]).json().unwrap();
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(again["duplicates"], 200, "{again}");

    std::fs::remove_file(&filler).unwrap();
    let mut total = 0;
    node.wait_until(
        Duration::from_secs(60),
        "every stored batch to become searchable after space came back",
        || {
            let (status, v) = node.search(&[("q", "service:filler"), ("limit", "1")]);
            assert_eq!(status, 200, "{v}");
            total = v["total"].as_u64().unwrap_or(0);
            total >= sent * 200
        },
    );
    assert_eq!(total, sent * 200, "each stored line once");
    drop(node);
    drop(mount);
}

/// A node restarted on a filesystem that is full says what is wrong, that nothing is lost
/// and what to do (not tantivy's "an index writer was killed"), and once space is freed the
/// next start has every acknowledged event.
#[test]
fn a_restart_on_a_full_disk_says_so_and_the_next_start_loses_nothing() {
    let Some(mount) = Mount::tmpfs("24m") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("cannot mount a tmpfs (root needed); CI=true requires this test to run");
        }
        eprintln!("SKIPPED a_restart_on_a_full_disk_says_so: cannot mount a tmpfs (run as root)");
        return;
    };
    let data = mount.point.join("data");
    std::fs::create_dir(&data).unwrap();
    let mut node = Node::start_in(&data, "serve", &[], &[]);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/api/v1/ingest", node.url);
    let batches = 20;
    for b in 0..batches {
        let resp = send(&http, &url, "restart-full", b);
        assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().unwrap());
    }
    node.kill9();
    drop(node);
    let filler = mount.point.join("filler");
    fill(&filler, 24 << 20);

    let mut child = Command::new(shiplog_tests::shiplog_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("a node on a full disk neither started nor stopped with an error");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("is full"), "{stderr}");
    assert!(stderr.contains("Nothing acknowledged is lost"), "{stderr}");
    assert!(stderr.contains("then start shiplog again"), "{stderr}");
    assert!(!stderr.contains("was killed"), "{stderr}");

    std::fs::remove_file(&filler).unwrap();
    let node = Node::start_in(&data, "serve", &[], &[]);
    let (status, v) = node.search(&[("q", "service:filler"), ("limit", "1"), ("since", "1d")]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"], batches * 200, "{v}");
}
