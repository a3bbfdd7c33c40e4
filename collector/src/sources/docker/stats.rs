//! Container metrics from Docker's stats stream: one sample set (CPU, memory, network,
//! block I/O, pids) per container per interval, each sample an [`Event`] of kind `metric`.
//!
//! Values are computed as the Docker CLI computes them for `docker stats`, so the numbers
//! agree with what operators already know. The task that reads the stream is
//! `sample_container`; the arithmetic is in [`samples`].

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;
use serde_json::Value;
use shiplog_core::{Event, EventId, Kind, Timestamp};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::metadata::ContainerMeta;
use crate::error::chain;
use crate::sources::{EventSender, SourceEvent};

/// Docker sends a stats sample about once a second; a sample this much early still counts
/// as due, so a 10 s interval does not drift to 11 s.
const DUE_SLACK: Duration = Duration::from_millis(500);

/// One measurement: name, value and unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `cpu_percent`, `mem_bytes`, ...
    pub name: &'static str,
    /// The value.
    pub value: f64,
    /// `percent`, `bytes` or `count`.
    pub unit: &'static str,
}

/// CPU use in percent of one CPU (200 = two CPUs busy), as `docker stats` shows it: the
/// container's CPU time delta over the host's, times the online CPUs, times 100. `None`
/// when there is no previous sample to compare with (the first one of a stream).
pub fn cpu_percent(cpu: &ContainerCpuStats, precpu: &ContainerCpuStats) -> Option<f64> {
    let total = |c: &ContainerCpuStats| c.cpu_usage.as_ref().and_then(|u| u.total_usage);
    let cpu_delta = total(cpu)?.saturating_sub(total(precpu).unwrap_or(0));
    let system_delta = cpu
        .system_cpu_usage?
        .checked_sub(precpu.system_cpu_usage.filter(|&s| s > 0)?)?;
    if system_delta == 0 {
        return None;
    }
    let online = match cpu.online_cpus.filter(|&n| n > 0) {
        Some(n) => n as f64,
        None => cpu
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map_or(1.0, |p| p.len().max(1) as f64),
    };
    Some(cpu_delta as f64 / system_delta as f64 * online * 100.0)
}

/// The samples in one stats answer; empty for the blank answers Docker sends for a
/// container that is not running.
pub fn samples(stats: &ContainerStatsResponse) -> Vec<Sample> {
    let mut out = Vec::with_capacity(8);
    let mut push = |name, value: f64, unit| out.push(Sample { name, value, unit });
    if let (Some(cpu), Some(precpu)) = (&stats.cpu_stats, &stats.precpu_stats)
        && let Some(percent) = cpu_percent(cpu, precpu)
    {
        push("cpu_percent", percent, "percent");
    }
    if let Some(memory) = &stats.memory_stats
        && let Some(usage) = memory.usage
    {
        // Page cache the kernel can drop is not the container's memory (docker stats):
        // cgroup v1 `total_inactive_file`, v2 `inactive_file`, older engines `cache`.
        let stat = |key: &str| memory.stats.as_ref().and_then(|s| s.get(key)).copied();
        let reclaimable = stat("total_inactive_file")
            .or_else(|| stat("inactive_file"))
            .or_else(|| stat("cache"))
            .filter(|&r| r < usage)
            .unwrap_or(0);
        push("mem_bytes", (usage - reclaimable) as f64, "bytes");
        if let Some(limit) = memory.limit.filter(|&l| l > 0) {
            push("mem_limit_bytes", limit as f64, "bytes");
        }
    }
    if let Some(networks) = &stats.networks {
        let rx: u64 = networks.values().filter_map(|n| n.rx_bytes).sum();
        let tx: u64 = networks.values().filter_map(|n| n.tx_bytes).sum();
        push("net_rx_bytes", rx as f64, "bytes");
        push("net_tx_bytes", tx as f64, "bytes");
    }
    if let Some(entries) = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
    {
        let sum = |op: &str| -> u64 {
            entries
                .iter()
                .filter(|e| e.op.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(op)))
                .filter_map(|e| e.value)
                .sum()
        };
        push("blk_read_bytes", sum("read") as f64, "bytes");
        push("blk_write_bytes", sum("write") as f64, "bytes");
    }
    if let Some(pids) = stats.pids_stats.as_ref().and_then(|p| p.current) {
        push("pids", pids as f64, "count");
    }
    out
}

/// The metric events of one sample set of `meta`'s container on `node` at `ts`. Each
/// carries its name in `fields.metric` too, so `fields.metric:cpu_percent` finds it.
pub fn metric_events(
    node: &str,
    meta: &ContainerMeta,
    ts: Timestamp,
    samples: &[Sample],
) -> Vec<Event> {
    let received = Timestamp::now();
    samples
        .iter()
        .map(|sample| {
            let mut fields = meta.fields.clone();
            fields.insert("metric".into(), Value::String(sample.name.to_string()));
            Event {
                id: EventId::for_source(node, &meta.id, sample.name, ts, 0),
                ts,
                received: Some(received),
                kind: Kind::Metric,
                node: node.to_string(),
                container_id: meta.id.clone(),
                container_name: meta.name.clone(),
                image: meta.image.clone(),
                service: meta.service.clone(),
                fields,
                name: Some(sample.name.to_string()),
                value: Some(sample.value),
                unit: Some(sample.unit.to_string()),
                ..Event::default()
            }
        })
        .collect()
}

/// Reads `meta`'s stats stream and sends a sample set every `interval` until the stream
/// ends (the container stopped), `stop` is cancelled or the pipeline closes. Sends wait
/// when the channel is full, like log lines (see [`crate::sources`]); meanwhile Docker's
/// samples are not read, so a slow sink means sparser metrics, never more memory.
/// Returns the container id.
pub(super) async fn sample_container(
    docker: Docker,
    node: Arc<str>,
    meta: Arc<ContainerMeta>,
    interval: Duration,
    tx: EventSender,
    stop: CancellationToken,
) -> String {
    let options = StatsOptions {
        stream: true,
        one_shot: false,
    };
    let mut stream = docker.stats(&meta.id, Some(options));
    let mut last: Option<Instant> = None;
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = stop.cancelled() => break,
        };
        let stats = match item {
            Some(Ok(stats)) => stats,
            Some(Err(error)) => {
                debug!(container = %meta.name, error = %chain(&error), "stats stream failed");
                break;
            }
            None => break,
        };
        if last.is_some_and(|at| at.elapsed() + DUE_SLACK < interval) {
            continue;
        }
        let Some(ts) = stats
            .read
            .as_deref()
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .filter(|t| t.as_secs() > 0)
        else {
            // A blank sample: the container is not running (any more).
            break;
        };
        let set = samples(&stats);
        if set.is_empty() {
            break;
        }
        last = Some(Instant::now());
        for event in metric_events(&node, &meta, ts, &set) {
            tokio::select! {
                sent = tx.send(SourceEvent::from(event)) => {
                    if sent.is_err() {
                        return meta.id.clone();
                    }
                }
                () = stop.cancelled() => return meta.id.clone(),
            }
        }
    }
    debug!(container = %meta.name, "stats sampling ended");
    meta.id.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> ContainerStatsResponse {
        let path = format!("{}/testdata/stats-cgroup2.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn value(set: &[Sample], name: &str) -> Option<f64> {
        set.iter().find(|s| s.name == name).map(|s| s.value)
    }

    #[test]
    fn computes_docker_cli_values_from_a_stats_fixture() {
        let stats = fixture();
        let set = samples(&stats);
        // cpu delta 400_000_000 ns over system delta 4_000_000_000 ns, 4 CPUs: 40 %.
        let cpu = value(&set, "cpu_percent").unwrap();
        assert!((cpu - 40.0).abs() < 1e-9, "{cpu}");
        // usage 10 MiB minus inactive_file 2 MiB.
        assert_eq!(value(&set, "mem_bytes"), Some(8.0 * 1024.0 * 1024.0));
        assert_eq!(value(&set, "mem_limit_bytes"), Some(2_147_483_648.0));
        assert_eq!(value(&set, "net_rx_bytes"), Some(1500.0 + 20.0));
        assert_eq!(value(&set, "net_tx_bytes"), Some(700.0 + 10.0));
        assert_eq!(value(&set, "blk_read_bytes"), Some(4096.0));
        assert_eq!(value(&set, "blk_write_bytes"), Some(8192.0 + 100.0));
        assert_eq!(value(&set, "pids"), Some(3.0));

        let meta = ContainerMeta {
            id: "c1".into(),
            name: "web-1".into(),
            image: "web".into(),
            service: "web".into(),
            tty: false,
            opted_out: None,
            labels: Default::default(),
            fields: Default::default(),
        };
        let ts = Timestamp::parse_rfc3339(stats.read.as_deref().unwrap()).unwrap();
        let events = metric_events("n", &meta, ts, &set);
        assert_eq!(events.len(), set.len());
        let cpu_event = &events[0];
        assert_eq!(cpu_event.kind, Kind::Metric);
        assert_eq!(cpu_event.name.as_deref(), Some("cpu_percent"));
        assert_eq!(cpu_event.unit.as_deref(), Some("percent"));
        assert_eq!(cpu_event.fields["metric"], "cpu_percent");
        assert_eq!(cpu_event.service, "web");
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), events.len(), "one id per metric");
    }

    #[test]
    fn first_and_blank_samples() {
        let mut stats = fixture();
        // The first sample of a stream has no previous CPU reading.
        stats.precpu_stats = Some(ContainerCpuStats::default());
        let set = samples(&stats);
        assert_eq!(value(&set, "cpu_percent"), None);
        assert!(value(&set, "mem_bytes").is_some());
        // cgroup v1 names and the old `cache` are used when present.
        let memory = stats.memory_stats.as_mut().unwrap();
        memory.stats = Some([("cache".to_string(), 1024 * 1024)].into());
        assert_eq!(
            value(&samples(&stats), "mem_bytes"),
            Some(9.0 * 1024.0 * 1024.0)
        );
        assert!(samples(&ContainerStatsResponse::default()).is_empty());

        // No per-CPU list and no online count: one CPU.
        let cpu = ContainerCpuStats {
            cpu_usage: Some(bollard::models::ContainerCpuUsage {
                total_usage: Some(300),
                ..Default::default()
            }),
            system_cpu_usage: Some(2000),
            ..Default::default()
        };
        let precpu = ContainerCpuStats {
            cpu_usage: Some(bollard::models::ContainerCpuUsage {
                total_usage: Some(100),
                ..Default::default()
            }),
            system_cpu_usage: Some(1000),
            ..Default::default()
        };
        assert_eq!(cpu_percent(&cpu, &precpu), Some(20.0));
        assert_eq!(cpu_percent(&cpu, &cpu), None, "no time passed");
    }
}
