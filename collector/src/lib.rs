//! shiplog-collector: the per-node agent that reads container logs and ships them to an
//! indexer.
//!
//! Data moves one way:
//!
//! ```text
//! Docker engine ──▶ DockerSource ──▶ bounded channel ──▶ Batcher ──▶ Sink (HttpSink, ...)
//!                   one log task        (sources wait     adaptive      acked batches,
//!                   per container        when it is full)  batches       retried or dropped
//! ```
//!
//! - [`sources::docker::DockerSource`] follows every container's stdout and stderr through
//!   bollard and turns lines into [`shiplog_core::Event`]s with deterministic ids.
//! - [`pipeline::Batcher`] groups events into batches (by count, bytes, age, or at once when
//!   the pipeline is idle) and hands them to a [`Sink`] one at a time, retrying failures.
//! - [`Sink`] is where batches go: [`HttpSink`] posts zstd NDJSON to an indexer; the
//!   binary plugs in an in-process sink for `shiplog up`.
//! - [`run`] wires the three together for a [`CollectorConfig`] and stops on a
//!   cancellation token, flushing what it holds.

mod backoff;
pub mod config;
pub mod error;
pub mod pipeline;
pub mod sink;
pub mod sources;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::CollectorConfig;
pub use error::{Error, Result};
pub use sink::{Ack, HttpSink, Sink, SinkError};

use pipeline::{Batcher, BatcherConfig};
use sources::docker::DockerSource;

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
    let source = DockerSource::new(config.docker_host.clone(), &config.node)?;
    let (tx, rx) = tokio::sync::mpsc::channel(config.channel_capacity);
    let batcher = Batcher::new(
        BatcherConfig {
            max_events: config.batch_max_events,
            max_bytes: config.batch_max_bytes,
            max_age: config.batch_max_age,
            flush_when_idle: true,
        },
        sink,
    );
    let batching = tokio::spawn(batcher.run(rx, shutdown.clone()));
    info!(node = %config.node, "collector started");
    // Returns once shutdown is cancelled and every log task has stopped; that drops the last
    // sender, so the batcher drains the channel, sends the rest and returns too.
    source.run(tx, shutdown).await;
    batching.await?;
    info!("collector stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;
    use std::sync::Mutex;
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use shiplog_core::{Event, Stream};

    use super::*;

    const TEST_IMAGE: &str = "shiplog-test-busybox:latest";

    /// An in-memory sink that keeps every event it acknowledges.
    #[derive(Default)]
    struct RecordingSink {
        events: Mutex<Vec<Event>>,
    }

    impl Sink for RecordingSink {
        fn send(&self, events: Vec<Event>) -> BoxFuture<'_, std::result::Result<Ack, SinkError>> {
            Box::pin(async move {
                let accepted = events.len();
                self.events.lock().unwrap().extend(events);
                Ok(Ack {
                    accepted,
                    duplicates: 0,
                })
            })
        }
    }

    fn docker(args: &[&str]) -> std::io::Result<std::process::Output> {
        Command::new("docker").args(args).output()
    }

    fn docker_ok(args: &[&str]) -> String {
        let out = docker(args).expect("docker cli runs");
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn engine_answers() -> bool {
        docker(&["version", "--format", "{{.Server.APIVersion}}"])
            .is_ok_and(|out| out.status.success())
    }

    /// Builds a `FROM scratch` image holding Debian's static busybox.
    fn build_test_image() {
        let dir = tempfile::tempdir().unwrap();
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is installed");
        std::fs::copy(busybox, dir.path().join("busybox")).unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n",
        )
        .unwrap();
        docker_ok(&[
            "build",
            "-q",
            "-t",
            TEST_IMAGE,
            dir.path().to_str().unwrap(),
        ]);
    }

    /// Removes the container however the test ends.
    struct RemoveOnDrop(String);

    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", &self.0]);
        }
    }

    /// Whether a Docker engine answers; when none does, fails under `CI=true` and otherwise
    /// says loudly that the test is skipped.
    fn docker_available() -> bool {
        if engine_answers() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no Docker engine answers and CI=true: this test needs one"
        );
        println!("SKIPPED: no Docker engine");
        false
    }

    /// Creates (does not start) a labelled busybox container running `script`; returns its
    /// id and name.
    fn create_test_container(script: &str) -> (String, String) {
        build_test_image();
        let name = format!(
            "shiplog-test-{}-{}",
            std::process::id(),
            shiplog_core::Timestamp::now().as_nanos()
        );
        let id = docker_ok(&[
            "create",
            "--label",
            "shiplog.test=1",
            "--name",
            &name,
            TEST_IMAGE,
            "sh",
            "-c",
            script,
        ]);
        (id, name)
    }

    /// The events the sink holds from the container called `name`.
    fn events_of(sink: &RecordingSink, name: &str) -> Vec<Event> {
        let events = sink.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e.container_name == name)
            .cloned()
            .collect()
    }

    /// Waits (30 s at most) until the sink holds `count` events of container `name`.
    async fn wait_for_events(sink: &RecordingSink, name: &str, count: usize) -> bool {
        tokio::time::timeout(Duration::from_secs(30), async {
            while events_of(sink, name).len() < count {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_ok()
    }

    /// Starts a collector on the real engine with a recording sink.
    fn start_collector() -> (
        Arc<RecordingSink>,
        CancellationToken,
        tokio::task::JoinHandle<Result<()>>,
    ) {
        let sink = Arc::new(RecordingSink::default());
        let shutdown = CancellationToken::new();
        let config = CollectorConfig {
            node: "test-node".into(),
            ..CollectorConfig::default()
        };
        let collector = tokio::spawn(run(config, sink.clone(), shutdown.clone()));
        (sink, shutdown, collector)
    }

    async fn stop_collector(
        shutdown: CancellationToken,
        collector: tokio::task::JoinHandle<Result<()>>,
    ) {
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), collector)
            .await
            .expect("collector stops after shutdown")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_missing_engine_is_waited_for_and_shutdown_still_stops_the_collector() {
        let config = CollectorConfig {
            docker_host: Some("unix:///nonexistent/docker.sock".into()),
            ..CollectorConfig::default()
        };
        let sink = Arc::new(RecordingSink::default());
        let shutdown = CancellationToken::new();
        let collector = tokio::spawn(run(config, sink, shutdown.clone()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            !collector.is_finished(),
            "the collector keeps waiting for the engine"
        );
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), collector)
            .await
            .expect("collector stops after shutdown")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn an_unusable_setting_fails_at_once() {
        let config = CollectorConfig {
            batch_max_events: 0,
            ..CollectorConfig::default()
        };
        let sink = Arc::new(RecordingSink::default());
        let err = run(config, sink, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("batch_max_events"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn docker_source_reads_a_real_container() {
        if !docker_available() {
            return;
        }
        let (id, name) =
            create_test_container("for i in 1 2 3; do echo out$i; echo err$i >&2; done");
        let _cleanup = RemoveOnDrop(id.clone());
        let (sink, shutdown, collector) = start_collector();
        // Start the container once the collector has had time to subscribe to events (the
        // subscription also replays the last second).
        tokio::time::sleep(Duration::from_secs(2)).await;
        docker_ok(&["start", &id]);

        let arrived = wait_for_events(&sink, &name, 6).await;
        stop_collector(shutdown, collector).await;
        let events = events_of(&sink, &name);
        assert!(
            arrived,
            "only {} of 6 lines arrived: {events:?}",
            events.len()
        );

        let lines = |stream: Stream| -> Vec<String> {
            events
                .iter()
                .filter(|e| e.stream == Some(stream))
                .map(|e| e.message.clone())
                .collect()
        };
        assert_eq!(lines(Stream::Stdout), ["out1", "out2", "out3"]);
        assert_eq!(lines(Stream::Stderr), ["err1", "err2", "err3"]);
        assert_eq!(events.len(), 6, "no line twice: {events:?}");
        for event in &events {
            assert_eq!(event.container_id, id);
            assert_eq!(event.service, name);
            assert_eq!(event.image, TEST_IMAGE);
            assert_eq!(event.node, "test-node");
            assert!(!event.id.is_unset());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn docker_source_resumes_a_restarted_container_without_rereading_it() {
        if !docker_available() {
            return;
        }
        let (id, name) = create_test_container("echo run");
        let _cleanup = RemoveOnDrop(id.clone());
        let (sink, shutdown, collector) = start_collector();
        tokio::time::sleep(Duration::from_secs(2)).await;
        docker_ok(&["start", &id]);
        let first = wait_for_events(&sink, &name, 1).await;
        let wait_id = id.clone();
        tokio::task::spawn_blocking(move || docker_ok(&["wait", &wait_id]))
            .await
            .unwrap();
        docker_ok(&["start", &id]);
        let second = wait_for_events(&sink, &name, 2).await;
        stop_collector(shutdown, collector).await;

        let events = events_of(&sink, &name);
        assert!(first && second, "lines missing: {events:?}");
        // Read from the beginning again, the first run's line would arrive a second time.
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[0].ts < events[1].ts, "{events:?}");
        assert_ne!(events[0].id, events[1].id);
    }
}
