//! The collector under test: a real `shiplog collect` process, its CPU time and memory read
//! from /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// A `shiplog collect` child; killed on drop.
pub struct Collector {
    child: Child,
    log: PathBuf,
}

/// Settings written into the collector's config file.
pub struct Setup<'a> {
    /// Its data dir (checkpoints and disk buffer live under it).
    pub data_dir: &'a Path,
    /// Only containers whose name starts with this are collected.
    pub prefix: &'a str,
    /// Read containers running at start from the beginning of their logs.
    pub read_from_head: bool,
}

impl Collector {
    /// Writes the config and starts `shiplog collect --url url`.
    pub fn start(url: &str, setup: &Setup<'_>) -> anyhow::Result<Collector> {
        std::fs::create_dir_all(setup.data_dir)?;
        let config = setup.data_dir.join("collect.toml");
        // Metrics and self-telemetry off: the figures are about logs, as in the reference.
        // SHIPLOG_BENCH_COLLECTOR_TOML adds lines to the `[collector]` table, to try a
        // setting (`batch_max_age = "50ms"`) without a new build.
        let extra = std::env::var("SHIPLOG_BENCH_COLLECTOR_TOML").unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[collector]\ninclude_names = [\"^{}\"]\nmetrics_interval = \"0s\"\ntelemetry_interval = \"0s\"\nread_from_head = {}\n{extra}\n",
                setup.data_dir.join("state"),
                setup.prefix,
                setup.read_from_head
            ),
        )?;
        let log = setup.data_dir.join("collector.log");
        let exe = std::env::current_exe().context("cannot find the shiplog binary")?;
        // SHIPLOG_BENCH_WRAP runs the collector under a profiler ("heaptrack", "perf record
        // -g"); its process then is the wrapper's, so CPU and RSS figures include it.
        let wrap = std::env::var("SHIPLOG_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = command
            .args(["collect", "--url", url, "--config"])
            .arg(&config)
            // RUST_LOG, when set, reaches the collector too (its log is in the data dir).
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("cannot start shiplog collect")?;
        Ok(Collector { child, log })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU seconds so far.
    pub fn cpu_seconds(&self) -> f64 {
        super::super::bench::stat_cpu_seconds(format!("/proc/{}/stat", self.pid()))
    }

    /// Peak resident memory so far, in MiB (`VmHWM`).
    pub fn peak_rss_mib(&self) -> f64 {
        status_kib(self.pid(), "VmHWM:") / 1024.0
    }

    /// The end of what it logged, for an error message, and where the whole log is kept
    /// (the data dir goes away with the run).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let kept =
            std::env::temp_dir().join(format!("shiplog-bench-collector-{}.log", self.child.id()));
        let kept = match std::fs::write(&kept, &text) {
            Ok(()) => format!("(whole log: {})", kept.display()),
            Err(_) => String::new(),
        };
        let start = text.len().saturating_sub(2000);
        format!("{}\n{kept}", &text[text.ceil_char_boundary(start)..])
    }

    /// The warnings and errors it logged: a run with any is not a clean figure.
    pub fn warnings(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .map(str::to_string)
            .collect()
    }

    /// SIGKILL: no chance to flush or checkpoint.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL after 30 s.
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
        self.kill9();
    }

    /// Fails with its log if it has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            anyhow::bail!("the collector exited ({status}):\n{}", self.log_tail());
        }
        Ok(())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// A `kB` field of /proc/<pid>/status.
pub(super) fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}
