//! Command hook: runs a program (no shell) with the [`Notification`] as JSON on stdin.
//! Exit status 0 is a delivery; another status, a failure to start, or running past the
//! timeout (the program is then killed) is a failed attempt that the outbox retries.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{CommandConfig, Notification};

/// One attempt, on a blocking thread (the program may be slow to read its stdin).
pub async fn run(config: &CommandConfig, n: &Notification) -> Result<(), String> {
    let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
    let config = config.clone();
    tokio::task::spawn_blocking(move || run_blocking(&config, &body))
        .await
        .map_err(|e| format!("command hook task failed: {e}"))?
}

fn run_blocking(c: &CommandConfig, body: &[u8]) -> Result<(), String> {
    let started = Instant::now();
    let mut child = Command::new(&c.program)
        .args(&c.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("command {}: cannot run {}: {e}", c.name, c.program))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is its own business.
        let _ = stdin.write_all(body);
    }
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = (&mut e).take(4096).read_to_string(&mut err);
                }
                return Err(format!(
                    "command {}: {} exited with {status}: {}",
                    c.name,
                    c.program,
                    err.trim()
                ));
            }
            Ok(None) if started.elapsed() >= c.timeout.0 => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "command {}: {} ran past its timeout of {} and was killed",
                    c.name, c.program, c.timeout
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(format!(
                    "command {}: waiting for {}: {e}",
                    c.name, c.program
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use shiplog_core::units::HumanDuration;

    use super::*;

    fn note() -> Notification {
        serde_json::from_value(serde_json::json!({
            "version": "1", "idempotency_key": "k", "fingerprint": "f", "rule": "r",
            "state": "firing", "severity": "warning", "group": {}, "labels": {},
            "annotations": {}, "value": 1.0, "threshold": 0.5, "op": ">",
            "since": "2026-11-22T00:00:00Z", "ends_at": null, "query": "", "link": "",
            "repeat": 0
        }))
        .unwrap()
    }

    fn cmd(script: &str, timeout_ms: u64) -> CommandConfig {
        CommandConfig {
            name: "t".into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            timeout: HumanDuration(Duration::from_millis(timeout_ms)),
        }
    }

    #[test]
    fn the_program_reads_the_notification_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let script = format!("cat > {}", out.display());
        run_blocking(&cmd(&script, 10_000), &serde_json::to_vec(&note()).unwrap()).unwrap();
        let got: Notification = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
        assert_eq!(got, note());
    }

    #[test]
    fn failures_and_timeouts_are_failed_attempts() {
        let e = run_blocking(&cmd("echo nope >&2; exit 3", 10_000), b"{}").unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("nope"), "{e}");
        let e = run_blocking(&cmd("sleep 5", 200), b"{}").unwrap_err();
        assert!(e.contains("timeout"), "{e}");
        let mut missing = cmd("", 1000);
        missing.program = "/nonexistent/hook".into();
        let e = run_blocking(&missing, b"{}").unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
    }
}
