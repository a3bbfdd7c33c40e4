//! A real `shiplog up` process on a loopback port chosen by the OS.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::shiplog_bin;

/// A running node; stopped with SIGTERM (then killed) on drop.
pub struct Node {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// Its data directory.
    pub data_dir: std::path::PathBuf,
    /// Owns the data directory when the node made it (removed on drop).
    _owned_dir: Option<tempfile::TempDir>,
    log: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
}

impl Node {
    /// Starts `shiplog up` with extra arguments and environment, and waits until `/healthz`
    /// answers.
    pub fn start(extra_args: &[&str], env: &[(&str, &str)]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut node = Node::start_in(dir.path(), "up", extra_args, env);
        node._owned_dir = Some(dir);
        node
    }

    /// Starts `shiplog <command>` (`up` or `serve`) on an existing data directory.
    pub fn start_in(
        data_dir: &std::path::Path,
        command: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let mut cmd = Command::new(shiplog_bin());
        cmd.args([command, "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra_args)
            .env("RUST_LOG", "info,shiplog_collector=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start shiplog up");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("api=http://") {
                    let url = line[i + 4..]
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    let _ = tx.send(url);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "shiplog up did not report its address; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let node = Node {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            _owned_dir: None,
            log,
            http,
        };
        node.wait_until(Duration::from_secs(30), "healthz", || {
            node.http
                .get(format!("{}/healthz", node.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
        });
        node
    }

    /// Everything the node logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The HTTP client used by the helpers.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// Polls `check` every 50 ms until it holds, panicking with the node's log after `limit`.
    pub fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut() -> bool,
    ) -> Duration {
        let started = Instant::now();
        while started.elapsed() < limit {
            if check() {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out after {limit:?} waiting for {what}; node log:\n{}",
            self.log()
        );
    }

    /// `GET /api/v1/search` with the given parameters; the JSON answer and status.
    pub fn search(&self, params: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}/api/v1/search", self.url))
            .query(params)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// `POST /api/v1/ingest?refresh=true` (searchable on return) with a raw body and
    /// optional content encoding.
    pub fn ingest(&self, body: Vec<u8>, encoding: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/ingest?refresh=true", self.url))
            .header("content-type", "application/x-ndjson")
            .body(body);
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.is_running() {
            self.stop();
        }
    }
}

/// Writes `shiplog.toml` into `dir` with two tokens, `ingest` (named `ci`, role `ingest`) and
/// `read` (named `viewer`, role `read`), and returns its path.
pub fn two_token_config(dir: &std::path::Path, ingest: &str, read: &str) -> std::path::PathBuf {
    let config = dir.join("shiplog.toml");
    std::fs::write(
        &config,
        format!(
            "[[auth.token]]\nname = \"ci\"\ntoken = \"{ingest}\"\nroles = [\"ingest\"]\n\n\
             [[auth.token]]\nname = \"viewer\"\ntoken = \"{read}\"\nroles = [\"read\"]\n"
        ),
    )
    .unwrap();
    config
}
