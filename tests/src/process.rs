//! `shiplog` processes started apart (`serve`, `collect`), for tests that stop, kill and
//! restart one part while the others keep running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::shiplog_bin;

/// A `shiplog` process whose stderr goes to a file; SIGTERM (then SIGKILL) on drop.
pub struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `shiplog args`, its stderr written to `log`.
    pub fn start(args: &[&str], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(shiplog_bin())
            .args(args)
            .env("RUST_LOG", "info,shiplog_collector=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start shiplog");
        Proc { child, log }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or checkpoint anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait up to 30 s for the exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls `check` every 100 ms until it holds; after `limit`, panics with the logs of
/// `logs`. Returns how long it took.
pub fn wait_until(
    limit: Duration,
    what: &str,
    logs: &[&Proc],
    mut check: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: Vec<String> = logs.iter().map(|p| p.log()).collect();
    panic!(
        "timed out after {limit:?} waiting for {what}; logs:\n{}",
        logs.join("\n-----\n")
    );
}

/// Starts `shiplog serve` on `port` with data in `data`, and waits until it answers.
pub fn serve(port: u16, data: &Path, log: PathBuf) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let proc = Proc::start(
        &[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        log,
    );
    let url = format!("http://{listen}/healthz");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_until(Duration::from_secs(60), "serve to answer", &[&proc], || {
        http.get(&url).send().is_ok_and(|r| r.status().is_success())
    });
    proc
}
