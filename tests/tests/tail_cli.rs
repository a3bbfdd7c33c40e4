//! `shiplog tail` against a real node: it outlives a node restart (it used to exit when the
//! stream dropped) and marks what it could not tail, and it stops with the node's own
//! message when retrying cannot help.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shiplog_tests::process::{Proc, free_port, wait_until};
use shiplog_tests::{Node, shiplog_bin};

/// Generous: a debug build opening an index on a busy machine.
const LIMIT: Duration = Duration::from_secs(120);

/// `shiplog up --no-docker` on a fixed port, so that a restart is reachable at the same URL.
fn up(port: u16, data: &Path, log: std::path::PathBuf) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let node = Proc::start(
        &[
            "up",
            "--no-docker",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        log,
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = format!("http://{listen}/healthz");
    wait_until(LIMIT, "the node to answer", &[&node], || {
        http.get(&health)
            .send()
            .is_ok_and(|r| r.status().is_success())
    });
    node
}

fn ingest(url: &str, message: &str) {
    let body = format!("{{\"message\":\"{message}\",\"service\":\"tailed\"}}\n");
    let resp = reqwest::blocking::Client::new()
        .post(format!("{url}/api/v1/ingest?refresh=true"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "ingest of {message}");
}

/// A running `shiplog tail`, its stdout lines and stderr collected as they come.
struct Tail {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Tail {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Tail {
        let mut cmd = Command::new(shiplog_bin());
        cmd.arg("tail")
            .args(args)
            .env_remove("SHIPLOG_URL")
            .env_remove("SHIPLOG_TOKEN")
            .env_remove("SHIPLOG_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start shiplog tail");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let text = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut t = text.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        Tail {
            child,
            stdout,
            stderr,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stdout line that `check` accepts; returns its index.
    fn wait_for_line(&mut self, what: &str, node: &Proc, check: impl Fn(&str) -> bool) -> usize {
        let mut found = None;
        let started = Instant::now();
        while started.elapsed() < LIMIT {
            if let Some(i) = self.lines().iter().position(|l| check(l)) {
                found = Some(i);
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "shiplog tail exited ({status}) before {what}; stdout:\n{}\nstderr:\n{}",
                    self.lines().join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        found.unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what}; stdout:\n{}\nstderr:\n{}\nnode log:\n{}",
                self.lines().join("\n"),
                self.stderr(),
                node.log()
            )
        })
    }

    /// Waits for the process to end by itself; kills it and panics after `LIMIT`.
    fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let started = Instant::now();
        while started.elapsed() < LIMIT {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the readers take in the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!(
            "shiplog tail did not exit {what}; stderr:\n{}",
            self.stderr()
        );
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tail_survives_a_node_restart_and_prints_a_gap_marker_before_the_next_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut node = up(port, &data, dir.path().join("node-1.log"));

    let mut tail = Tail::start(&["--url", &url, "--json", "service:tailed"], &[]);
    let t = &tail;
    wait_until(LIMIT, "tail to connect", &[&node], || {
        t.stderr().contains("following")
    });
    ingest(&url, "before the restart");
    let before = tail.wait_for_line("the first event", &node, |l| {
        l.contains("before the restart")
    });

    node.kill9();
    let node = up(port, &data, dir.path().join("node-2.log"));
    let gap = tail.wait_for_line("a gap marker", &node, |l| l.contains("\"gap\""));
    // Subscribed again once the marker is out: what is ingested now is tailed.
    ingest(&url, "after the restart");
    let after = tail.wait_for_line("the event after the restart", &node, |l| {
        l.contains("after the restart")
    });
    assert!(
        before < gap && gap < after,
        "{:#?}",
        &tail.lines()[..=after]
    );
    assert!(
        matches!(tail.child.try_wait(), Ok(None)),
        "tail kept running"
    );

    let lines = tail.lines();
    for line in &lines[..=after] {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("gap").is_some() != v.get("message").is_some(),
            "either a gap or an event: {line}"
        );
    }
    let marker: Value = serde_json::from_str(&lines[gap]).unwrap();
    let from = marker["gap"]["from"].as_str().unwrap();
    let to = marker["gap"]["to"].as_str().unwrap();
    assert!(from <= to, "{marker}");
    let first: Value = serde_json::from_str(&lines[before]).unwrap();
    assert_eq!(
        from, first["ts"],
        "the window starts at the last event tailed"
    );

    // The hint is a command that runs as printed and lists the window.
    let hint = marker["gap"]["hint"].as_str().unwrap();
    let words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(
        words[..6],
        ["shiplog", "search", "--since", from, "--until", to],
        "{hint}"
    );
    assert!(!hint.contains('\''), "nothing to unquote here: {hint}");
    let out = Command::new(shiplog_bin())
        .args(&words[1..])
        .env_remove("SHIPLOG_URL")
        .env_remove("SHIPLOG_TOKEN")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("before the restart"),
        "{hint}\n{listed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Said once when the node went away and once when it came back.
    let err = tail.stderr();
    assert_eq!(err.matches("unreachable").count(), 1, "{err}");
    assert_eq!(err.matches("reconnected to").count(), 1, "{err}");

    // Ctrl-C ends it quietly.
    Command::new("kill")
        .args(["-INT", &tail.child.id().to_string()])
        .status()
        .unwrap();
    let status = tail.wait_exit("on SIGINT");
    assert!(status.success() || status.signal() == Some(2), "{status}");
    let err = tail.stderr();
    assert!(
        !err.lines().any(|l| l.starts_with("error")) && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn tail_in_plain_mode_marks_the_gap_with_a_line_naming_the_search_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut node = up(port, &data, dir.path().join("node-1.log"));
    let mut tail = Tail::start(&["--url", &url, "service:tailed AND NOT noise"], &[]);
    let t = &tail;
    wait_until(LIMIT, "tail to connect", &[&node], || {
        t.stderr().contains("following")
    });
    ingest(&url, "plain first");
    tail.wait_for_line("the first event", &node, |l| l.contains("plain first"));
    node.kill9();
    let node = up(port, &data, dir.path().join("node-2.log"));
    let gap = tail.wait_for_line("a gap marker", &node, |l| l.starts_with("--- reconnected"));
    let line = &tail.lines()[gap];
    assert!(
        line.contains("were not tailed; see them with: shiplog search --since ")
            && line.ends_with(&format!(" --url {url} 'service:tailed AND NOT noise' ---")),
        "{line}"
    );
    ingest(&url, "plain after");
    let after = tail.wait_for_line("the event after the restart", &node, |l| {
        l.contains("plain after")
    });
    assert!(gap < after);
}

#[test]
fn tail_stops_with_the_nodes_answer_when_retrying_cannot_help() {
    const INGEST: &str = "tail-ingest-token-0123456789";
    const READ: &str = "tail-read-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let config = shiplog_tests::node::two_token_config(dir.path(), INGEST, READ);
    let node = Node::start(&["--no-docker", "--config", config.to_str().unwrap()], &[]);
    let url = node.url.as_str();

    let mut tail = Tail::start(&["--url", url], &[]);
    let status = tail.wait_exit("on 401");
    let err = tail.stderr();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("server answered 401") && err.contains("SHIPLOG_TOKEN"),
        "{err}"
    );

    let mut tail = Tail::start(&["--url", url], &[("SHIPLOG_TOKEN", INGEST)]);
    let status = tail.wait_exit("on 403");
    let err = tail.stderr();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("server answered 403"), "{err}");

    let mut tail = Tail::start(&["--url", url, "service:(web"], &[("SHIPLOG_TOKEN", READ)]);
    let status = tail.wait_exit("on a bad query");
    let err = tail.stderr();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("server answered 400 (bad_query)") && err.contains("expected ')'"),
        "the node's message: {err}"
    );
    assert!(
        err.contains("  service:(web\n") && err.contains('^'),
        "{err}"
    );
    assert!(tail.lines().is_empty(), "{:?}", tail.lines());
}
