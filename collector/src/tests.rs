//! Tests of the whole collector against a real Docker engine.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use shiplog_core::{Event, Stream};

use super::*;

const TEST_IMAGE: &str = "shiplog-test-busybox:latest";

/// An in-memory sink that keeps every event it acknowledges; while `held`, it does not
/// answer (a receiver that is slow to take a batch), so the collector stops reading.
#[derive(Default)]
struct RecordingSink {
    events: Mutex<Vec<Event>>,
    held: std::sync::atomic::AtomicBool,
}

impl Sink for RecordingSink {
    fn send(&self, events: Vec<Event>) -> BoxFuture<'_, std::result::Result<Ack, SinkError>> {
        Box::pin(async move {
            while self.held.load(std::sync::atomic::Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
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
    docker(&["version", "--format", "{{.Server.APIVersion}}"]).is_ok_and(|out| out.status.success())
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
    create_test_container_with(&[], script)
}

/// As [`create_test_container`], with extra `docker create` options (`-e`, `--label`).
fn create_test_container_with(options: &[&str], script: &str) -> (String, String) {
    build_test_image();
    let name = format!(
        "shiplog-test-{}-{}",
        std::process::id(),
        shiplog_core::Timestamp::now().as_nanos()
    );
    let mut args = vec!["create", "--label", "shiplog.test=1", "--name", &name];
    args.extend_from_slice(options);
    args.extend([TEST_IMAGE, "sh", "-c", script]);
    let id = docker_ok(&args);
    (id, name)
}

/// The log events the sink holds from the container called `name`.
fn events_of(sink: &RecordingSink, name: &str) -> Vec<Event> {
    let mut events = all_events_of(sink, name);
    events.retain(|e| e.kind == shiplog_core::Kind::Log);
    events
}

/// Every event (logs, registrations, metrics) the sink holds from the container `name`.
fn all_events_of(sink: &RecordingSink, name: &str) -> Vec<Event> {
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
    start_collector_with(CollectorConfig {
        node: "test-node".into(),
        ..CollectorConfig::default()
    })
}

/// Starts a collector with `config` on the real engine with a recording sink.
fn start_collector_with(
    config: CollectorConfig,
) -> (
    Arc<RecordingSink>,
    CancellationToken,
    tokio::task::JoinHandle<Result<()>>,
) {
    start_collector_into(config, Arc::new(RecordingSink::default()))
}

/// Starts a collector with `config` on the real engine, delivering to `sink`.
fn start_collector_into(
    config: CollectorConfig,
    sink: Arc<RecordingSink>,
) -> (
    Arc<RecordingSink>,
    CancellationToken,
    tokio::task::JoinHandle<Result<()>>,
) {
    let shutdown = CancellationToken::new();
    let collector = tokio::spawn(run(config, sink.clone(), shutdown.clone()));
    (sink, shutdown, collector)
}

/// Runs a collector with `config` until container `name` has `count` log events shipped
/// (30 s at most), stops it, and returns whether they all came and their messages.
async fn run_until_lines(config: CollectorConfig, name: &str, count: usize) -> (bool, Vec<String>) {
    let (sink, shutdown, collector) = start_collector_with(config);
    let arrived = wait_for_events(&sink, name, count).await;
    stop_collector(shutdown, collector).await;
    let lines = events_of(&sink, name)
        .into_iter()
        .map(|e| e.message)
        .collect();
    (arrived, lines)
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

/// Through the engine's socket (`docker_socket_logs = true`, the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_source_reads_a_real_container() {
    reads_a_real_container(true, None).await;
}

/// The same through bollard's log stream: what `docker_socket_logs = false` and engines
/// reached over TCP use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_source_reads_a_real_container_through_the_client() {
    reads_a_real_container(false, None).await;
}

/// An engine reached over TCP (`docker_host = "tcp://..."`): everything, logs included,
/// goes through the client, with the socket reader left on. The engine here listens on its
/// Unix socket only, so the test forwards a loopback TCP port to it, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_source_reads_a_real_container_over_tcp() {
    if !docker_available() {
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let forwarder = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                if let Ok(mut unix) = tokio::net::UnixStream::connect("/var/run/docker.sock").await
                {
                    let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
                }
            });
        }
    });
    reads_a_real_container(true, Some(format!("tcp://127.0.0.1:{port}"))).await;
    forwarder.abort();
    assert!(
        connections.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the collector reached the engine through the TCP port"
    );
}

async fn reads_a_real_container(socket_logs: bool, docker_host: Option<String>) {
    if !docker_available() {
        return;
    }
    let (id, name) = create_test_container("for i in 1 2 3; do echo out$i; echo err$i >&2; done");
    let _cleanup = RemoveOnDrop(id.clone());
    let (sink, shutdown, collector) = start_collector_with(CollectorConfig {
        node: "test-node".into(),
        docker_socket_logs: socket_logs,
        docker_host,
        ..CollectorConfig::default()
    });
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

/// `docker rename` while the container writes: lines after it carry the new name, and
/// none is lost or doubled across the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_container_is_followed_under_its_new_name_without_a_gap() {
    if !docker_available() {
        return;
    }
    let (id, name) = create_test_container(
        "i=1; while [ $i -le 80 ]; do echo line$i; i=$((i+1)); usleep 50000; done",
    );
    let _cleanup = RemoveOnDrop(id.clone());
    let renamed = format!("{name}-renamed");
    let (sink, shutdown, collector) = start_collector_with(CollectorConfig {
        node: "test-node".into(),
        metrics_interval: Duration::ZERO,
        telemetry_interval: Duration::ZERO,
        ..CollectorConfig::default()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    docker_ok(&["start", &id]);
    assert!(
        wait_for_events(&sink, &name, 10).await,
        "lines arrive under the first name"
    );
    docker_ok(&["rename", &name, &renamed]);
    let wait_id = id.clone();
    tokio::task::spawn_blocking(move || docker_ok(&["wait", &wait_id]))
        .await
        .unwrap();
    let all_arrived = tokio::time::timeout(Duration::from_secs(30), async {
        while events_of(&sink, &name).len() + events_of(&sink, &renamed).len() < 80 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok();
    // A copy would arrive after the last line: give it time to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_collector(shutdown, collector).await;
    let before: Vec<String> = events_of(&sink, &name)
        .into_iter()
        .map(|e| e.message)
        .collect();
    let after: Vec<String> = events_of(&sink, &renamed)
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert!(all_arrived, "before {before:?}, after {after:?}");
    assert!(
        !after.is_empty(),
        "lines after the rename carry the new name: {before:?}"
    );
    let mut numbers: Vec<u32> = before
        .iter()
        .chain(&after)
        .map(|m| m.trim_start_matches("line").parse().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=80).collect::<Vec<u32>>(), "each line once");
    for e in events_of(&sink, &renamed) {
        assert_eq!(
            e.service, renamed,
            "the service named after the container follows it"
        );
    }
    // The catalog hears of it: a registration in its current state under the new name.
    let moved: Vec<Event> = all_events_of(&sink, &renamed)
        .into_iter()
        .filter(|e| {
            e.kind == shiplog_core::Kind::Registration && e.fields.contains_key("renamed_from")
        })
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].fields["renamed_from"], name.as_str());
    assert_eq!(
        moved[0].state,
        Some(shiplog_core::RegistrationState::Started)
    );
    assert_eq!(moved[0].service, renamed);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_collector_ships_every_line_exactly_once() {
    if !docker_available() {
        return;
    }
    const LINES: usize = 40;
    let state = tempfile::tempdir().unwrap();
    let (id, name) = create_test_container(
        "i=1; while [ $i -le 40 ]; do echo line$i; \
         if [ $((i % 4)) -eq 0 ]; then sleep 0.3; fi; i=$((i+1)); done",
    );
    let _cleanup = RemoveOnDrop(id.clone());
    let config = CollectorConfig {
        node: "test-node".into(),
        state_dir: Some(state.path().to_path_buf()),
        ..CollectorConfig::default()
    };

    let (first_sink, shutdown, collector) = start_collector_with(config.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    docker_ok(&["start", &id]);
    assert!(
        wait_for_events(&first_sink, &name, 8).await,
        "first run got lines"
    );
    stop_collector(shutdown, collector).await;
    let first = events_of(&first_sink, &name);
    assert!(
        first.len() < LINES,
        "the first run stopped midway: {}",
        first.len()
    );
    let saved = std::fs::read_to_string(state.path().join(checkpoint::FILE_NAME)).unwrap();
    assert!(
        saved.contains(&id),
        "checkpoint written on shutdown: {saved}"
    );

    let (second_sink, shutdown, collector) = start_collector_with(config);
    let rest = wait_for_events(&second_sink, &name, LINES - first.len()).await;
    // Give a duplicate time to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_collector(shutdown, collector).await;
    let second = events_of(&second_sink, &name);

    let got: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|e| e.message.as_str())
        .collect();
    let want: Vec<String> = (1..=LINES).map(|i| format!("line{i}")).collect();
    assert!(rest, "lines missing after the restart: {got:?}");
    assert_eq!(got, want, "every line once, in order, across both runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_traces_arrive_whole_and_opted_out_containers_are_skipped() {
    if !docker_available() {
        return;
    }
    // printf turns the \\n and \\t escapes into newlines and tabs inside the container.
    let script = concat!(
        "printf '",
        "before\\n",
        "Exception in thread \"main\" java.lang.IllegalStateException: boom\\n",
        "\\tat com.example.App.run(App.java:10)\\n",
        "\\tat com.example.App.main(App.java:5)\\n",
        "Caused by: java.io.IOException: disk\\n",
        "\\tat com.example.Io.read(Io.java:3)\\n",
        "\\t... 2 more\\n",
        "Traceback (most recent call last):\\n",
        "  File \"app.py\", line 3, in <module>\\n",
        "    main()\\n",
        "ValueError: bad input\\n",
        "after\\n",
        "'",
    );
    let (id, name) = create_test_container(script);
    let _cleanup = RemoveOnDrop(id.clone());
    let (label_id, label_name) =
        create_test_container_with(&["--label", "shiplog.exclude=true"], "echo hidden");
    let _label_cleanup = RemoveOnDrop(label_id.clone());
    let (env_id, env_name) = create_test_container_with(&["-e", "LOGSPOUT=ignore"], "echo hidden");
    let _env_cleanup = RemoveOnDrop(env_id.clone());

    let (sink, shutdown, collector) = start_collector();
    tokio::time::sleep(Duration::from_secs(2)).await;
    docker_ok(&["start", &label_id]);
    docker_ok(&["start", &env_id]);
    docker_ok(&["start", &id]);
    let arrived = wait_for_events(&sink, &name, 4).await;
    for waited in [&label_id, &env_id] {
        let waited = waited.clone();
        tokio::task::spawn_blocking(move || docker_ok(&["wait", &waited]))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_collector(shutdown, collector).await;

    let events = events_of(&sink, &name);
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    assert!(arrived, "events missing: {messages:?}");
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert_eq!(messages[0], "before");
    assert!(
        messages[1].starts_with("Exception in thread") && messages[1].ends_with("\t... 2 more"),
        "{messages:?}"
    );
    assert_eq!(messages[1].lines().count(), 6, "{messages:?}");
    assert!(
        messages[2].starts_with("Traceback") && messages[2].ends_with("ValueError: bad input"),
        "{messages:?}"
    );
    assert_eq!(messages[3], "after");
    assert!(
        events_of(&sink, &label_name).is_empty(),
        "shiplog.exclude=true was collected"
    );
    assert!(
        events_of(&sink, &env_name).is_empty(),
        "LOGSPOUT=ignore was collected"
    );
}

/// Waits (30 s at most) until `check` holds over the events of container `name`.
async fn wait_until_events(
    sink: &RecordingSink,
    name: &str,
    check: impl Fn(&[Event]) -> bool,
) -> bool {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !check(&all_events_of(sink, name)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok()
}

fn registration_states(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter(|e| e.kind == shiplog_core::Kind::Registration)
        .filter_map(|e| e.state.map(|s| s.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_container_is_registered_sampled_and_deregistered() {
    use shiplog_core::{Kind, RegistrationState};
    if !docker_available() {
        return;
    }
    let (id, name) = create_test_container_with(
        &[
            "--expose",
            "8080",
            "-p",
            "127.0.0.1::8080",
            "-e",
            "SERVICE_TAGS=a, b",
        ],
        "trap 'exit 3' TERM; while true; do sleep 0.2; done",
    );
    let _cleanup = RemoveOnDrop(id.clone());
    let (sink, shutdown, collector) = start_collector_with(CollectorConfig {
        node: "test-node".into(),
        metrics_interval: Duration::from_secs(1),
        ..CollectorConfig::default()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    docker_ok(&["start", &id]);
    let started = wait_until_events(&sink, &name, |events| {
        registration_states(events).contains(&"started")
    })
    .await;
    let sampled = wait_until_events(&sink, &name, |events| {
        events.iter().any(|e| {
            e.kind == Kind::Metric
                && e.name.as_deref() == Some("mem_bytes")
                && e.value.is_some_and(|v| v > 0.0)
        })
    })
    .await;
    let stop_id = id.clone();
    tokio::task::spawn_blocking(move || docker_ok(&["stop", "-t", "5", &stop_id]))
        .await
        .unwrap();
    let stopped = wait_until_events(&sink, &name, |events| {
        let states = registration_states(events);
        states.contains(&"died") && states.contains(&"stopped")
    })
    .await;
    // Metrics end with the container: nothing new after a pause.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics_after_stop = all_events_of(&sink, &name)
        .iter()
        .filter(|e| e.kind == Kind::Metric)
        .count();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop_collector(shutdown, collector).await;

    let events = all_events_of(&sink, &name);
    assert!(started, "no started registration: {events:?}");
    assert!(sampled, "no mem_bytes sample above zero: {events:?}");
    assert!(stopped, "no died and stopped registrations: {events:?}");
    let registrations: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == Kind::Registration)
        .collect();
    let start = registrations
        .iter()
        .find(|e| e.state == Some(RegistrationState::Started))
        .unwrap();
    assert_eq!(start.container_id, id);
    assert_eq!(start.service, name);
    assert_eq!(start.node, "test-node");
    assert_eq!(start.tags, ["a", "b"]);
    let published: Vec<_> = start.ports.iter().filter(|p| p.public.is_some()).collect();
    assert!(
        !published.is_empty() && published.iter().all(|p| p.private == 8080),
        "published port 8080: {:?}",
        start.ports
    );
    assert_eq!(published[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(published[0].proto, "tcp");
    let died = registrations
        .iter()
        .find(|e| e.state == Some(RegistrationState::Died))
        .unwrap();
    assert_eq!(died.exit_code, Some(3), "the trap's exit code");
    assert_eq!(died.ports, start.ports, "a dead container keeps its ports");
    let order = registration_states(&events);
    let pos = |s: &str| order.iter().position(|x| *x == s).unwrap();
    assert!(
        pos("started") < pos("died") && pos("died") < pos("stopped"),
        "{order:?}"
    );
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), events.len(), "no event twice");

    let metrics: Vec<&Event> = events.iter().filter(|e| e.kind == Kind::Metric).collect();
    let names: std::collections::HashSet<&str> =
        metrics.iter().filter_map(|e| e.name.as_deref()).collect();
    for want in ["mem_bytes", "mem_limit_bytes", "pids"] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    assert!(
        metrics
            .iter()
            .all(|e| e.fields["metric"] == e.name.as_deref().unwrap()),
        "fields.metric names each sample"
    );
    let metrics_total = metrics.len();
    assert_eq!(
        metrics_total, metrics_after_stop,
        "sampling ended with the container"
    );

    // The snapshot marker of this node lists what ran when the collector connected.
    let all = sink.events.lock().unwrap();
    assert!(
        all.iter()
            .any(|e| e.state == Some(RegistrationState::Snapshot)
                && e.node == "test-node"
                && e.fields["containers"].is_array()),
        "no snapshot marker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_from_head_ships_the_history_of_containers_running_at_start() {
    if !docker_available() {
        return;
    }
    let (id, name) = create_test_container("for i in 1 2 3; do echo old$i; done; sleep 600");
    let _cleanup = RemoveOnDrop(id.clone());
    docker_ok(&["start", &id]);
    // Past the one-second lookback a first start applies by default.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let include = vec![format!("^{name}$")];

    let (sink, shutdown, collector) = start_collector_with(CollectorConfig {
        node: "test-node".into(),
        include_names: include.clone(),
        metrics_interval: Duration::ZERO,
        ..CollectorConfig::default()
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_collector(shutdown, collector).await;
    assert!(
        events_of(&sink, &name).is_empty(),
        "by default history before the start is not re-read: {:?}",
        events_of(&sink, &name)
    );

    let (sink, shutdown, collector) = start_collector_with(CollectorConfig {
        node: "test-node".into(),
        include_names: include,
        metrics_interval: Duration::ZERO,
        read_from_head: true,
        ..CollectorConfig::default()
    });
    let arrived = wait_for_events(&sink, &name, 3).await;
    stop_collector(shutdown, collector).await;
    let lines: Vec<String> = events_of(&sink, &name)
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert!(arrived, "history did not arrive: {lines:?}");
    assert_eq!(lines, ["old1", "old2", "old3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_ran_and_exited_while_no_collector_ran_is_read_whole() {
    if !docker_available() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let (id, name) = create_test_container("for i in 1 2 3; do echo gone$i; done");
    let _cleanup = RemoveOnDrop(id.clone());
    let config = CollectorConfig {
        node: "test-node".into(),
        state_dir: Some(state.path().to_path_buf()),
        include_names: vec![format!("^{name}$")],
        metrics_interval: Duration::ZERO,
        telemetry_interval: Duration::ZERO,
        ..CollectorConfig::default()
    };
    // An earlier run: alive for a while, then gone before the container does anything.
    let (_, shutdown, collector) = start_collector_with(config.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_collector(shutdown, collector).await;
    assert!(
        state.path().join("checkpoints.json").exists(),
        "a run leaves its checkpoint file even with nothing shipped"
    );

    docker_ok(&["start", &id]);
    docker_ok(&["wait", &id]);
    // Past the last second of engine events a new run replays.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let (arrived, lines) = run_until_lines(config, &name, 3).await;
    assert!(
        arrived,
        "the lines written while no collector ran: {lines:?}"
    );
    assert_eq!(lines, ["gone1", "gone2", "gone3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_an_earlier_run_followed_without_shipping_a_line_is_read_on_from_there() {
    if !docker_available() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    // Silent until told, so the earlier run follows it and acknowledges nothing of it.
    let (quiet_id, quiet) = create_test_container(
        "while [ ! -e /go ]; do usleep 100000; done; echo between1; echo between2; exec sleep 600",
    );
    let _cleanup_quiet = RemoveOnDrop(quiet_id.clone());
    // Its lines are acknowledged all along, so the earlier run rewrites its checkpoint
    // file to the end: the quiet container is then older than that run's last sign of life
    // by more than the slack, not one created while no collector ran.
    let (ticker_id, ticker) = create_test_container("while :; do echo tick; usleep 300000; done");
    let _cleanup_ticker = RemoveOnDrop(ticker_id.clone());
    docker_ok(&["start", &quiet_id, &ticker_id]);
    let created = std::time::SystemTime::now();
    let config = CollectorConfig {
        node: "test-node".into(),
        state_dir: Some(state.path().to_path_buf()),
        include_names: vec![format!("^{quiet}$"), format!("^{ticker}$")],
        metrics_interval: Duration::ZERO,
        telemetry_interval: Duration::ZERO,
        ..CollectorConfig::default()
    };

    let (sink, shutdown, collector) = start_collector_with(config.clone());
    tokio::time::sleep(Duration::from_millis(12_500)).await;
    stop_collector(shutdown, collector).await;
    assert!(events_of(&sink, &quiet).is_empty(), "nothing to ship yet");
    assert!(
        !events_of(&sink, &ticker).is_empty(),
        "the ticker was shipped"
    );
    let written = std::fs::metadata(state.path().join("checkpoints.json"))
        .and_then(|m| m.modified())
        .unwrap();
    assert!(
        written.duration_since(created).unwrap_or_default() >= Duration::from_secs(11),
        "the test needs the earlier run's last checkpoint write 11 s after the containers \
         were created (was {:?})",
        written.duration_since(created)
    );

    // Written while no collector runs, and more than the one-second look-back before the
    // next run starts.
    docker_ok(&["exec", &quiet_id, "/bin/busybox", "touch", "/go"]);
    tokio::time::timeout(Duration::from_secs(30), async {
        while !docker_ok(&["logs", &quiet_id]).contains("between2") {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the quiet container writes once told");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (arrived, lines) = run_until_lines(config, &quiet, 2).await;
    assert!(
        arrived,
        "the lines written between the runs did not arrive: {lines:?}"
    );
    assert_eq!(lines, ["between1", "between2"]);
}

/// Docker 20.10 (json-file) ends a followed log once its stored part is sent if the
/// container has stopped by then, without the lines written meanwhile. A sink that does not
/// answer holds the collector back in the middle of the stored part while the container
/// writes its last lines and exits: those must still arrive, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_left_out_of_a_followed_log_at_exit_are_read_again() {
    lines_left_out_at_exit_are_read_again(true, 20).await;
}

/// More lines left out than the first, short read of the log's end asks for: the log is
/// read again from the last line read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stretch_left_out_of_a_followed_log_at_exit_is_read_again() {
    lines_left_out_at_exit_are_read_again(true, 1_500).await;
}

/// The same through bollard's log stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_left_out_of_a_followed_log_at_exit_are_read_again_through_the_client() {
    lines_left_out_at_exit_are_read_again(false, 20).await;
}

async fn lines_left_out_at_exit_are_read_again(socket_logs: bool, last: usize) {
    const STORED: usize = 30_000;
    if !docker_available() {
        return;
    }
    let (id, name) = create_test_container(&format!(
        "i=0; while [ $i -lt {STORED} ]; do echo \"stored $i\"; i=$((i+1)); done; \
         while [ ! -e /go ]; do usleep 50000; done; \
         i=1; while [ $i -le {last} ]; do echo \"last $i\"; i=$((i+1)); done"
    ));
    let _cleanup = RemoveOnDrop(id.clone());
    docker_ok(&["start", &id]);
    tokio::time::timeout(Duration::from_secs(60), async {
        while !docker_ok(&["logs", "--tail", "1", &id]).contains(&format!("stored {}", STORED - 1))
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the container writes its stored lines");
    // Past the last second of engine events the collector replays when it subscribes: a
    // replayed `start` would have it follow the container again after the log ends,
    // which would hide what this test is about.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let sink = Arc::new(RecordingSink::default());
    sink.held.store(true, std::sync::atomic::Ordering::Release);
    let (sink, shutdown, collector) = start_collector_into(
        CollectorConfig {
            node: "test-node".into(),
            include_names: vec![format!("^{name}$")],
            read_from_head: true,
            docker_socket_logs: socket_logs,
            metrics_interval: Duration::ZERO,
            telemetry_interval: Duration::ZERO,
            ..CollectorConfig::default()
        },
        sink,
    );
    // The collector opens the log and stops reading once its channel is full.
    tokio::time::sleep(Duration::from_secs(2)).await;
    docker_ok(&["exec", &id, "/bin/busybox", "touch", "/go"]);
    docker_ok(&["wait", &id]);
    // The engine closes the container's log a moment after it exits; the stream must still
    // be in its stored part then.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sink.held.store(false, std::sync::atomic::Ordering::Release);

    let arrived = wait_for_events(&sink, &name, STORED + last).await;
    // Time for a line that came twice to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_collector(shutdown, collector).await;
    let lines: Vec<String> = events_of(&sink, &name)
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert!(
        arrived,
        "{} of {} lines arrived; the last ones: {:?}",
        lines.len(),
        STORED + last,
        &lines[lines.len().saturating_sub(3)..]
    );
    let expected: Vec<String> = (0..STORED)
        .map(|i| format!("stored {i}"))
        .chain((1..=last).map(|i| format!("last {i}")))
        .collect();
    assert!(lines == expected, "every line once, in order");
}
