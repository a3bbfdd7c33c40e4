//! The containers a collector benchmark reads: a `FROM scratch` busybox image, containers
//! started in parallel through the `docker` CLI, and the engine's own delivery rate.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Tag of the benchmark image.
pub const IMAGE: &str = "shiplog-bench-busybox:latest";
/// Label on every benchmark container, so a run cleans up what an interrupted one left.
pub const LABEL: &str = "shiplog.bench=1";

/// Runs `docker args`, failing with its stderr.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run docker: install the Docker CLI")?;
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds the image from the host's static busybox.
pub fn build_image() -> anyhow::Result<()> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("busybox is missing: install Debian's busybox-static")?;
    let dir = tempfile::tempdir()?;
    std::fs::copy(busybox, dir.path().join("busybox"))?;
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n",
    )?;
    docker(&["build", "-q", "-t", IMAGE, &dir.path().to_string_lossy()])?;
    Ok(())
}

/// Removes every benchmark container, running or not.
pub fn remove_all() -> anyhow::Result<()> {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={LABEL}")])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    for chunk in ids.chunks(50) {
        let mut args = vec!["rm", "-f"];
        args.extend(chunk);
        docker(&args)?;
    }
    Ok(())
}

/// One container to start.
pub struct Spec {
    /// Container name.
    pub name: String,
    /// Extra `docker run` options (`-v`, `-e`).
    pub options: Vec<String>,
    /// The `sh -c` script.
    pub script: String,
}

/// Starts `specs` with a few `docker run` at a time; returns their ids in order.
pub fn start(specs: &[Spec]) -> anyhow::Result<Vec<String>> {
    const AT_ONCE: usize = 8;
    let mut ids = Vec::with_capacity(specs.len());
    for chunk in specs.chunks(AT_ONCE) {
        let started: Vec<anyhow::Result<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|spec| {
                    s.spawn(move || {
                        let mut args: Vec<&str> =
                            vec!["run", "-d", "--name", &spec.name, "--label", LABEL];
                        args.extend(spec.options.iter().map(String::as_str));
                        args.extend([IMAGE, "sh", "-c", &spec.script]);
                        docker(&args)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("docker run panicked")))
                .collect()
        });
        for id in started {
            ids.push(id?);
        }
    }
    Ok(ids)
}

/// Waits until the last stored line of each container is `last`.
pub fn wait_for_last_line(ids: &[String], last: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    for id in ids {
        loop {
            let out = Command::new("docker")
                .args(["logs", "--tail", "1", id])
                .output()?;
            if String::from_utf8_lossy(&out.stdout).trim_end() == last {
                break;
            }
            if started.elapsed() > limit {
                bail!("container {id} did not write its lines within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// The engine's ceiling: every container's stored log read by parallel `docker logs` into
/// /dev/null; returns the wall time.
pub fn docker_logs_all(ids: &[String]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            Command::new("docker")
                .args(["logs", id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            bail!("docker logs failed: {status}");
        }
    }
    Ok(started.elapsed())
}

/// CPU seconds the Docker daemon has used so far, when it runs on this host and /proc shows
/// it (NaN otherwise): reading logs costs the engine too, and both share the cores.
pub fn engine_cpu_seconds() -> f64 {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return f64::NAN;
    };
    procs
        .filter_map(Result::ok)
        .filter(|p| {
            std::fs::read_to_string(p.path().join("comm")).is_ok_and(|c| c.trim_end() == "dockerd")
        })
        .map(|p| super::super::bench::stat_cpu_seconds(p.path().join("stat")))
        .sum()
}
