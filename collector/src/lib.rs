//! shiplog-collector: the per-node agent that reads container logs and ships them to an
//! indexer.
//!
//! Data moves one way; acknowledgements come back as checkpoints:
//!
//! ```text
//! Docker engine ──▶ DockerSource ──▶ transforms ──▶ bounded channel ──▶ Batcher ──▶ Sink
//!                   one log task     multiline,      (sources wait       adaptive    acked
//!                   per container    JSON, parse,     when it is full)    batches     batches
//!                        ▲           redact                                  │
//!                        └──── CheckpointStore ◀── acked positions ─────────┘
//!                              (state_dir/checkpoints.json, written ≤ 1/s and on shutdown)
//! ```
//!
//! - [`sources::docker::DockerSource`] follows every selected container's stdout and stderr
//!   through bollard and turns lines into [`shiplog_core::Event`]s with deterministic ids;
//!   it also registers every container's lifecycle changes (Registrator style: service,
//!   ports, tags, health) and samples each running container's metrics, into the same
//!   bounded channel.
//! - [`transforms`] join multi-line events, lift JSON lines, read a model container's JSON
//!   lines as predictions, add regex captures and redact, on each container's log task,
//!   before anything leaves the node.
//! - [`checkpoint::CheckpointStore`] keeps, per container and stream, the last line the sink
//!   acknowledged, so a restarted collector neither loses nor repeats lines.
//! - [`pipeline::Batcher`] groups events into batches (by count, bytes, age, or at once when
//!   the pipeline is idle) and hands them to a [`Sink`] one at a time, retrying failures.
//! - [`Sink`] is where batches go: [`HttpSink`] posts zstd NDJSON to an indexer; the
//!   binary plugs in an in-process sink for `shiplog up`.
//! - [`buffer`] holds batches on disk (`state_dir/buffer/`) while the sink is down or slow,
//!   so reading goes on, and replays them in order once it recovers.
//! - [`telemetry`] counts what the collector does ([`render_prometheus`] serves it) and
//!   ships it as metric events of service `shiplog`.
//! - [`run`] wires the three together for a [`CollectorConfig`] and stops on a
//!   cancellation token, flushing what it holds.

mod backoff;
pub mod buffer;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod pipeline;
pub mod sink;
pub mod sources;
pub mod telemetry;
pub mod transforms;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::CollectorConfig;
pub use error::{Error, Result};
pub use sink::{Ack, HttpSink, Sink, SinkError};
pub use telemetry::render_prometheus;

use checkpoint::CheckpointStore;
use pipeline::{Batcher, BatcherConfig};
use sources::docker::DockerSource;
use sources::docker::filter::ContainerFilter;
use transforms::Transforms;

/// Runs the Docker source → batcher → sink until `shutdown` is cancelled; on cancel, flushes
/// what it holds and returns.
///
/// Fails at once on an unusable setting; an unreachable Docker engine or sink is waited for
/// and retried in the background, never returned as an error.
pub async fn run(
    config: CollectorConfig,
    sink: Arc<dyn Sink>,
    shutdown: CancellationToken,
) -> Result<()> {
    config.validate()?;
    let checkpoints = Arc::new(open_checkpoints(&config).await?);
    let source = DockerSource::new(config.docker_host.clone(), &config.node)?
        .with_filter(ContainerFilter::from_config(&config)?)
        .with_transforms(Transforms::from_config(&config)?)
        .with_checkpoints(Arc::clone(&checkpoints))
        .with_metrics_interval(config.metrics_interval)
        .with_read_from_head(config.read_from_head)
        .with_socket_logs(config.docker_socket_logs)
        .with_log_files(config.docker_log_files);
    let (tx, rx) = tokio::sync::mpsc::channel(config.channel_capacity);
    let batcher = Batcher::new(
        BatcherConfig {
            max_events: config.batch_max_events,
            max_bytes: config.batch_max_bytes,
            max_age: config.batch_max_age,
            flush_when_idle: true,
            ..BatcherConfig::default()
        },
        sink,
    )
    .with_checkpoints(Arc::clone(&checkpoints));
    let batcher = match open_buffer(&config).await? {
        Some(buffer) => batcher.with_buffer(Arc::new(buffer), config.buffer_spill_after),
        None => batcher,
    };
    let batching = tokio::spawn(batcher.run(rx, shutdown.clone()));
    let shipping = tokio::spawn(telemetry::ship_periodically(
        config.node.clone(),
        config.telemetry_interval,
        tx.clone(),
        shutdown.clone(),
    ));
    let stop_persister = CancellationToken::new();
    let persister = tokio::spawn(checkpoint::persist_periodically(
        Arc::clone(&checkpoints),
        stop_persister.clone(),
    ));
    info!(node = %config.node, "collector started");
    // Returns once shutdown is cancelled and every log task has stopped; that drops the last
    // sender, so the batcher drains the channel, sends the rest and returns too.
    source.run(tx, shutdown).await;
    shipping.await?;
    let batched = batching.await;
    // Last write after the final acknowledgements, whether or not the batcher ended well.
    stop_persister.cancel();
    persister.await?;
    checkpoint::persist_now(checkpoints, false).await;
    batched?;
    info!("collector stopped");
    Ok(())
}

/// The disk buffer in `config.state_dir/buffer`, or none without a state directory.
async fn open_buffer(config: &CollectorConfig) -> Result<Option<buffer::Buffer>> {
    let Some(dir) = config.state_dir.as_ref().map(|d| d.join(buffer::DIR_NAME)) else {
        return Ok(None);
    };
    let path = dir.display().to_string();
    let (max_bytes, when_full) = (config.buffer_max_bytes, config.buffer_when_full);
    tokio::task::spawn_blocking(move || buffer::Buffer::open(&dir, max_bytes, when_full))
        .await?
        .map(Some)
        .map_err(|source| Error::StateDir { path, source })
}

/// The checkpoint store of `config.state_dir`, or one kept in memory only.
async fn open_checkpoints(config: &CollectorConfig) -> Result<CheckpointStore> {
    let Some(dir) = config.state_dir.clone() else {
        return Ok(CheckpointStore::in_memory());
    };
    let path = dir.display().to_string();
    tokio::task::spawn_blocking(move || CheckpointStore::open(&dir))
        .await?
        .map_err(|source| Error::StateDir { path, source })
}

#[cfg(test)]
mod tests;
