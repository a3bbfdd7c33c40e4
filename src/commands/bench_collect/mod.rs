//! `shiplog bench collect`: the collector against the real Docker engine, as a `shiplog
//! collect` process, in five phases:
//!
//! - throughput: N containers' stored logs shipped to a blackhole, against N parallel
//!   `docker logs` into /dev/null in the same run (the engine's ceiling);
//! - steady cost: collector CPU seconds per million lines and peak RSS while 100 containers
//!   write 10,000 lines/s in all (each a burst of 10 lines every 100 ms), shipped to a
//!   blackhole;
//! - live tail: Docker's timestamp of each line to its arrival at an SSE subscriber of a
//!   real indexer, at that same load;
//! - restart and exit: the collector SIGKILLed mid-stream and started again 3 s later while
//!   containers write numbered lines and then exit; lines lost, sent again (same event id:
//!   the indexer drops them) and doubled (two ids: the indexer would keep both);
//! - rotation: containers with a small `max-size` write flat out to a real `shiplog serve`;
//!   lines written, indexed and lost, rates, peak RSS of collector and node, disk buffer
//!   growth, and the engine's own followed log on the same load as the reference.
//!
//! The blackhole decodes every batch and acknowledges it, so the collector does all of its
//! work (encoding, zstd, HTTP, acks, checkpoints) and nothing else competes for the CPU.

mod blackhole;
mod fleet;
mod process;
mod restart;
mod rotation;
mod steady;
mod throughput;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use fleet::Spec;

/// Flags of `bench collect`.
#[derive(Debug, Args)]
pub struct BenchCollectArgs {
    /// Phases to run, in order: throughput, steady, tail, restart, rotation.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "throughput,steady,tail,restart,rotation"
    )]
    pub phases: Vec<Phase>,
    /// Throughput: containers with stored logs.
    #[arg(long, default_value_t = 8)]
    pub containers: usize,
    /// Throughput: lines of about 200 bytes stored by each container.
    #[arg(long, default_value_t = 150_000)]
    pub lines: usize,
    /// Steady and tail: containers writing at once.
    #[arg(long, default_value_t = 100)]
    pub steady_containers: usize,
    /// Steady and tail: lines per second written by all of them together.
    #[arg(long, default_value_t = 10_000)]
    pub rate: usize,
    /// Steady and tail: each line in its own write(), as an unbuffered program does. By
    /// default a container writes each 100 ms burst in one write, as a program with
    /// buffered stdout does: line by line, 100 shells and their container shims take most of
    /// two cores, and the figures then measure a saturated node.
    #[arg(long)]
    pub line_writes: bool,
    /// Steady and tail: seconds measured (after a 5 s warm-up).
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Restart: containers writing numbered lines at 100 lines/s (10 every 100 ms), then
    /// exiting.
    #[arg(long, default_value_t = 20)]
    pub restart_containers: usize,
    /// Restart: lines each of them writes.
    #[arg(long, default_value_t = 3_000)]
    pub restart_lines: usize,
    /// Rotation: containers writing flat out.
    #[arg(long, default_value_t = 4)]
    pub rotation_containers: usize,
    /// Rotation: numbered lines of about 90 bytes each of them writes.
    #[arg(long, default_value_t = 250_000)]
    pub rotation_lines: usize,
    /// Rotation: the containers' `--log-opt max-size`.
    #[arg(long, default_value = "1m")]
    pub rotation_max_size: String,
    /// Rotation: the containers' `--log-opt max-file`.
    #[arg(long, default_value_t = 2)]
    pub rotation_max_file: u32,
    /// Rotation: the containers' `--log-opt compress=true`.
    #[arg(long)]
    pub rotation_compress: bool,
    /// Directory of Loghub samples (one folder per system with <name>_2k.log).
    #[arg(long, default_value = "../shared/data/loghub")]
    pub corpus: PathBuf,
}

/// One part of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Stored logs against parallel `docker logs`.
    Throughput,
    /// CPU and memory at a steady rate.
    Steady,
    /// Write-to-subscriber delay through a real indexer.
    Tail,
    /// Lost and doubled lines across a SIGKILL and at container exit.
    Restart,
    /// Lines lost to Docker's log rotation at a flat-out write rate.
    Rotation,
}

/// Warm-up before steady figures are taken.
const WARM_UP: Duration = Duration::from_secs(5);

/// Runs the chosen phases.
pub fn run(args: BenchCollectArgs) -> anyhow::Result<ExitCode> {
    if args.containers == 0
        || args.lines == 0
        || args.steady_containers == 0
        || args.rate < args.steady_containers
        || args.seconds == 0
        || args.restart_containers == 0
        || args.restart_lines == 0
        || args.rotation_containers == 0
        || args.rotation_lines == 0
        || args.rotation_max_file == 0
    {
        bail!("every count must be at least 1, and --rate at least --steady-containers");
    }
    fleet::docker(&["version", "--format", "{{.Server.Version}}"])
        .context("bench collect needs a running Docker engine")?;
    let corpus = super::bench::load_corpus(&args.corpus)?;
    let payloads = payloads(&corpus, 200);
    fleet::build_image()?;
    let _cleanup = RemoveContainers;
    fleet::remove_all()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    for phase in &args.phases {
        match phase {
            Phase::Throughput => throughput::throughput(&args, &payloads, &runtime, dir.path())?,
            Phase::Steady | Phase::Tail => {}
            Phase::Restart => restart::restart(&args, &payloads, &runtime, dir.path())?,
            Phase::Rotation => rotation::rotation(&args, dir.path())?,
        }
    }
    let steady = args.phases.contains(&Phase::Steady);
    let tail = args.phases.contains(&Phase::Tail);
    if steady || tail {
        steady::steady_and_tail(&args, &payloads, &runtime, dir.path(), steady, tail)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the benchmark's containers however the run ends.
struct RemoveContainers;

impl Drop for RemoveContainers {
    fn drop(&mut self) {
        if let Err(e) = fleet::remove_all() {
            eprintln!("warning: could not remove benchmark containers: {e:#}");
        }
    }
}

/// Loghub lines joined to about `target` bytes, with nothing a shell or the multiline
/// rules would treat specially.
fn payloads(corpus: &[(String, Vec<String>)], target: usize) -> Vec<String> {
    let mut lines = corpus
        .iter()
        .flat_map(|(_, lines)| lines.iter())
        .map(|l| {
            l.chars()
                .filter(|c| c.is_ascii_graphic() || *c == ' ')
                .filter(|c| !matches!(c, '\\' | '"' | '$' | '`'))
                .collect::<String>()
        })
        .filter(|l| !l.trim().is_empty());
    let mut out = Vec::new();
    let mut current = String::new();
    for line in lines.by_ref() {
        if !current.is_empty() {
            current.push_str(" | ");
        }
        current.push_str(line.trim());
        if current.len() >= target {
            current.truncate(target);
            out.push(std::mem::take(&mut current).trim_end().to_string());
        }
    }
    if out.is_empty() {
        out.push("x".repeat(target));
    }
    out
}

/// How a paced container writes its lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// One `write()` per line, as an unbuffered program does.
    PerLine,
    /// One `write()` per burst, as a program with buffered stdout does.
    PerBurst,
}

impl Writes {
    /// How the progress line names it.
    fn describe(self) -> &'static str {
        match self {
            Writes::PerLine => "a write per line",
            Writes::PerBurst => "one write per burst",
        }
    }
}

/// Script of a container writing `{n} $P` lines once /go/now exists, `burst` lines every
/// `interval_us`, forever (`lines` = None) or until `lines` are written, then exiting.
fn paced_script(burst: usize, interval_us: u64, lines: Option<usize>, writes: Writes) -> String {
    let condition = match lines {
        Some(n) => format!("[ $n -lt {n} ]"),
        None => ":".into(),
    };
    // A burst gathered in a variable leaves the shell in one printf; the quoted newline
    // ends each line.
    let (line, flush) = match writes {
        Writes::PerLine => ("echo \"$n $P\";", ""),
        Writes::PerBurst => ("s=\"$s$n $P\n\";", " printf %s \"$s\"; s=;"),
    };
    // Pacing against the clock (not a fixed sleep per burst) keeps the rate whatever the
    // loop itself costs; ${EPOCHREALTIME/./} is the time in microseconds. The waits are
    // `read -t` on a FIFO nobody writes to, a shell builtin: busybox's `usleep` forks a
    // process, and a thousand forks a second would load the node more than the logging.
    // `${f#1}` is the wait's microseconds zero-padded to six digits, without a subshell.
    format!(
        "mkfifo /pace && exec 3<>/pace || exit 1; \
         while [ ! -e /go/now ]; do read -t 0.02 -u 3 x; done; n=0; s=; t=${{EPOCHREALTIME/./}}; \
         while {condition}; do b=0; while [ $b -lt {burst} ] && {condition}; do \
         {line} n=$((n+1)); b=$((b+1)); done;{flush} t=$((t+{interval_us})); \
         d=$((t-${{EPOCHREALTIME/./}})); if [ $d -gt 0 ]; then f=$((1000000+d%1000000)); \
         read -t $((d/1000000)).${{f#1}} -u 3 x; fi; done"
    )
}

/// Specs of `count` paced containers behind the gate directory `go`.
fn paced_specs(
    prefix: &str,
    count: usize,
    payloads: &[String],
    go: &Path,
    script: &str,
) -> Vec<Spec> {
    (0..count)
        .map(|i| Spec {
            name: format!("{prefix}{i}"),
            options: vec![
                "-v".into(),
                format!("{}:/go:ro", go.display()),
                "-e".into(),
                format!("P={}", payloads[i % payloads.len()]),
            ],
            script: script.to_string(),
        })
        .collect()
}
