//! The collector through container lifecycles, against the real Docker engine and real
//! `shiplog` processes:
//!
//! - a container restarted (`docker restart`) and another removed and created again under
//!   the same name, both while they write and are collected: every lifetime's lines are
//!   indexed exactly once, in order;
//! - a Java stack trace and a Python traceback arrive as one event each, a 1 MiB line cut
//!   to the 256 KiB cap and flagged, bytes that are not UTF-8 replaced and flagged, and a
//!   TTY's CRLF line endings without the `\r`;
//! - start, health, die and stop reach `/api/v1/services` within the 2 s the collector
//!   promises (plus slack for a loaded machine), with ports and tags;
//! - after the collector was down while containers started, stopped and were removed, the
//!   catalog's running instances match `docker ps` within 5 s (plus slack) of its restart.
//!
//! The deadlines are functional promises; measured times are printed, never asserted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use shiplog_core::{Event, Flag, Port, Stream};
use shiplog_tests::docker::{TEST_IMAGE, docker};
use shiplog_tests::process::{Proc, free_port, serve, wait_until};
use shiplog_tests::{Container, Node, docker_or_skip};

/// The 2 s the issue promises for a registration, plus slack for a machine shared with
/// compilers.
const REGISTRATION_DEADLINE: Duration = Duration::from_secs(3);
/// The 5 s the issue promises for the catalog after a collector restart, plus slack.
const RESYNC_DEADLINE: Duration = Duration::from_secs(7);
/// A container that idles until `docker stop` (a shell as PID 1 ignores SIGTERM unless it
/// traps it).
const IDLE: &str = "trap 'exit 0' TERM; while true; do usleep 100000; done";

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A config that collects only the containers whose names start with `prefix` (other
/// tests' containers stay out of the way) and samples no metrics.
fn collector_config(dir: &Path, prefix: &str, data_dir: Option<&Path>) -> std::path::PathBuf {
    let path = dir.join("shiplog.toml");
    let data = data_dir.map_or(String::new(), |d| format!("data_dir = {d:?}\n\n"));
    std::fs::write(
        &path,
        format!("{data}[collector]\ninclude_names = [\"^{prefix}\"]\nmetrics_interval = \"0s\"\n"),
    )
    .unwrap();
    path
}

/// A `shiplog up` collecting only containers named `prefix...`.
fn node_for(prefix: &str) -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = collector_config(dir.path(), prefix, None);
    let node = Node::start(&["--config", config.to_str().unwrap()], &[]);
    (node, dir)
}

/// The total and the hits of one search, hits oldest first (the API answers newest
/// first, ordered by time, then sequence, then id).
fn search(base: &str, query: &str) -> (u64, Vec<Event>) {
    let v: Value = http()
        .get(format!("{base}/api/v1/search"))
        .query(&[("q", query), ("limit", "10000"), ("since", "1h")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut hits: Vec<Event> = serde_json::from_value(v["hits"].clone())
        .unwrap_or_else(|e| panic!("cannot read hits: {e}: {v}"));
    hits.reverse();
    assert!(
        hits.windows(2)
            .all(|w| (w[0].ts, w[0].seq) <= (w[1].ts, w[1].seq)),
        "hits are ordered by time and sequence"
    );
    (v["total"].as_u64().unwrap(), hits)
}

/// The log lines of containers named `name` (every lifetime), oldest first.
fn logs_of(base: &str, name: &str) -> Vec<Event> {
    search(base, &format!("container:{name} AND kind:log")).1
}

fn messages(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.message.as_str()).collect()
}

/// Shortens 256 KiB messages for failure output.
fn preview(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            let m: String = e.message.chars().take(120).collect();
            format!(
                "{:?} {:?} {m:?} ({} bytes)",
                e.stream,
                e.flags,
                e.message.len()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Numbered lines `life<life> line 0001` to `life<life> line <last>`.
fn numbered(life: u32, last: usize) -> Vec<String> {
    (1..=last)
        .map(|i| format!("life{life} line {i:04}"))
        .collect()
}

/// A script writing `LINES` numbered lines of lifetime `$life` about 100 a second, then
/// idling; `life` is shell code setting `life`.
fn writer(life: &str) -> String {
    format!(
        "trap 'exit 0' TERM; {life}; i=1; while [ $i -le {LINES} ]; do \
         printf 'life%d line %04d\\n' $life $i; i=$((i+1)); usleep 10000; done; \
         while true; do usleep 100000; done"
    )
}

const LINES: usize = 600;

/// What `docker logs` holds for a container, line by line.
fn docker_logs(id: &str) -> Vec<String> {
    docker(&["logs", id]).lines().map(str::to_string).collect()
}

#[test]
fn restarted_and_recreated_containers_keep_every_lifetimes_lines_once_in_order() {
    if !docker_or_skip("restarted_and_recreated_containers") {
        return;
    }
    let prefix = Container::unique_name("shiplog-lifetimes");
    let (node, _config) = node_for(&prefix);
    let base = node.url.clone();
    let started = Instant::now();

    // Counts its lifetimes in a file of its own writable layer, which a restart keeps.
    let restarted = Container::run(
        &format!("{prefix}-restarted"),
        &[],
        &writer("life=$(( $(cat /lifetimes 2>/dev/null || echo 0) + 1 )); echo $life > /lifetimes"),
    );
    let recreated_name = format!("{prefix}-recreated");
    let first = Container::run(&recreated_name, &[], &writer("life=1"));
    let count = |id: &str| search(&base, &format!("container_id:{id} AND kind:log")).0;
    node.wait_until(
        Duration::from_secs(60),
        "both containers' first lines indexed",
        || count(&restarted.id) >= 20 && count(&first.id) >= 20,
    );

    // Mid-stream: remove one (after noting what Docker holds of it) and restart the other.
    let written_before_rm = docker_logs(&first.id).len();
    docker(&["rm", "-f", &first.id]);
    docker(&["restart", "-t", "10", &restarted.id]);
    println!(
        "removed after {written_before_rm} lines and restarted, {:?} after start",
        started.elapsed()
    );
    let second = Container::run(&recreated_name, &[], &writer("life=2"));
    let last_line = format!("life2 line {LINES:04}");
    node.wait_until(
        Duration::from_secs(120),
        "both second lifetimes to write their lines",
        || {
            [&restarted.id, &second.id]
                .iter()
                .all(|id| docker_logs(id).last() == Some(&last_line))
        },
    );

    // The restarted container: exactly what Docker holds, which is a prefix of lifetime 1
    // (the restart landed mid-stream) and all of lifetime 2.
    let expected = docker_logs(&restarted.id);
    let cut = expected
        .iter()
        .position(|l| l.starts_with("life2 "))
        .unwrap();
    assert!(
        cut < LINES,
        "the restart must land mid-stream (lifetime 1 wrote {cut} lines)"
    );
    assert_eq!(
        expected,
        [numbered(1, cut), numbered(2, LINES)].concat(),
        "docker logs of the restarted container"
    );
    node.wait_until(
        Duration::from_secs(120),
        "every line of the restarted container",
        || count(&restarted.id) >= expected.len() as u64,
    );
    node.wait_until(
        Duration::from_secs(120),
        "every line of the recreated container",
        || count(&first.id) >= written_before_rm as u64 && count(&second.id) >= LINES as u64,
    );
    // Anything sent twice would have arrived by now.
    std::thread::sleep(Duration::from_secs(3));

    let events = logs_of(&base, &restarted.name);
    assert_eq!(
        messages(&events),
        expected,
        "the restarted container's lines, once each, in order"
    );
    assert!(events.iter().all(|e| e.container_id == restarted.id));

    let events = logs_of(&base, &recreated_name);
    let lived = events
        .iter()
        .take_while(|e| e.container_id == first.id)
        .count();
    assert!(
        lived >= written_before_rm,
        "lifetime 1 had written {written_before_rm} lines before its removal; {lived} indexed"
    );
    assert_eq!(
        messages(&events),
        [numbered(1, lived), numbered(2, LINES)].concat(),
        "the recreated container's lines, once each, in order"
    );
    assert!(
        events[lived..]
            .iter()
            .all(|e| e.container_id == second.id && e.container_name == recreated_name)
    );
    println!(
        "{} + {} lines indexed once each, in order, {:?} after start",
        expected.len(),
        lived + LINES,
        started.elapsed()
    );
}

/// Polls until `name` has at least `n` log events; on timeout panics with what arrived and
/// the node's log.
fn wait_for_logs(node: &Node, name: &str, n: usize) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if logs_of(&node.url, name).len() >= n {
            // A line split in two would arrive with its first half: give it time.
            std::thread::sleep(Duration::from_secs(1));
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{name}: fewer than {n} events after 60 s:\n{}\nnode log:\n{}",
        preview(&logs_of(&node.url, name)),
        node.log()
    );
}

fn on(events: &[Event], stream: Stream) -> Vec<&Event> {
    events.iter().filter(|e| e.stream == Some(stream)).collect()
}

#[test]
fn stack_traces_long_lines_bad_bytes_and_tty_line_endings_arrive_whole_and_flagged() {
    if !docker_or_skip("stack_traces_long_lines_bad_bytes_and_tty") {
        return;
    }
    let prefix = Container::unique_name("shiplog-hostile");
    let (node, _config) = node_for(&prefix);

    let java = [
        "Exception in thread \"main\" java.lang.IllegalStateException: checkout failed",
        "\tat com.example.shop.Checkout.run(Checkout.java:42)",
        "\tat com.example.shop.Main.main(Main.java:7)",
        "Caused by: java.lang.NullPointerException: cart is null",
        "\tat com.example.shop.Cart.total(Cart.java:13)",
        "\t... 3 more",
    ];
    let python = [
        "Traceback (most recent call last):",
        "  File \"/app/main.py\", line 10, in <module>",
        "    main()",
        "  File \"/app/main.py\", line 6, in main",
        "    raise ValueError(\"boom\")",
        "ValueError: boom",
    ];
    // Each trace is one printf, its lines separated by `\n` (printf's escapes, tabs as `\t`).
    let printf = |lines: &[&str]| {
        let text: String = lines
            .iter()
            .map(|l| format!("{}\\n", l.replace('\t', "\\t").replace('\'', "'\\''")))
            .collect();
        format!("printf '{text}'")
    };
    let big_line = 1024 * 1024;
    let script = format!(
        "printf 'before the traces\\n'; {java} >&2; printf 'after the java trace\\n' >&2; \
         {python}; printf 'after the traceback\\n'; \
         printf 'BIG'; head -c {rest} /dev/zero | tr '\\000' x; printf '\\n'; \
         printf 'the end\\n'",
        java = printf(&java),
        python = printf(&python),
        rest = big_line - 3,
    );
    let traces = Container::run(&format!("{prefix}-traces"), &[], &script);
    // The json-file driver (the default) stores lines as JSON strings and replaces bytes
    // that are not UTF-8 itself, before any reader sees them; the local driver keeps them.
    let bad_bytes = Container::run(
        &format!("{prefix}-bytes"),
        &["--log-driver", "local"],
        "printf '\\377\\376 bad bytes\\n'; printf 'fine\\n'",
    );
    let tty = Container::run(
        &format!("{prefix}-tty"),
        &["-t"],
        "printf 'tty one\\n'; printf 'tty two\\r\\n'; printf 'tty three\\n'",
    );
    for c in [&traces, &bad_bytes, &tty] {
        assert_eq!(c.wait(), 0, "{} ran to its end", c.name);
    }
    let tty_raw = docker(&["logs", &tty.id]);
    assert!(
        tty_raw.contains("tty one\r\n") && tty_raw.contains("tty two\r\r\n"),
        "the TTY ends lines with CRLF: {tty_raw:?}"
    );

    wait_for_logs(&node, &traces.name, 7);
    let events = logs_of(&node.url, &traces.name);
    let stderr = on(&events, Stream::Stderr);
    let stdout = on(&events, Stream::Stdout);
    let all = preview(&events);
    assert_eq!(
        stderr
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        [java.join("\n").as_str(), "after the java trace"],
        "the Java trace is one event:\n{all}"
    );
    assert_eq!(stdout.len(), 5, "stdout events:\n{all}");
    assert_eq!(stdout[0].message, "before the traces");
    assert_eq!(
        stdout[1].message,
        python.join("\n"),
        "the Python traceback is one event:\n{all}"
    );
    assert_eq!(stdout[2].message, "after the traceback");
    let big = stdout[3];
    assert_eq!(
        big.message.len(),
        256 * 1024,
        "the 1 MiB line is cut to the cap"
    );
    assert!(
        big.message.starts_with("BIG") && big.message[3..].bytes().all(|b| b == b'x'),
        "the cut line keeps its beginning"
    );
    assert_eq!(big.flags, [Flag::Truncated]);
    assert_eq!(stdout[4].message, "the end");
    for e in events.iter().filter(|e| e.message.len() < 1024) {
        assert!(
            e.flags.is_empty(),
            "{:?} has flags {:?}",
            e.message,
            e.flags
        );
    }

    wait_for_logs(&node, &bad_bytes.name, 2);
    let events = logs_of(&node.url, &bad_bytes.name);
    let got: Vec<(&str, &[Flag])> = events
        .iter()
        .map(|e| (e.message.as_str(), e.flags.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            ("\u{fffd}\u{fffd} bad bytes", &[Flag::InvalidUtf8][..]),
            ("fine", &[][..]),
        ],
        "{}",
        preview(&events)
    );

    wait_for_logs(&node, &tty.name, 3);
    let events = logs_of(&node.url, &tty.name);
    assert_eq!(
        messages(&events),
        ["tty one", "tty two", "tty three"],
        "no \\r left: {events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e.stream == Some(Stream::Stdout) && e.flags.is_empty())
    );
}

/// The instance of container `id` in service `service`, if listed.
fn instance(base: &str, service: &str, id: &str) -> Option<Value> {
    let v: Value = http()
        .get(format!("{base}/api/v1/services"))
        .send()
        .ok()?
        .json()
        .ok()?;
    shiplog_tests::service_instance(&v, service, id)
}

/// Waits (at most `REGISTRATION_DEADLINE`) until the instance satisfies `check`, and
/// returns it; prints how long it took after `what` happened.
fn registered(
    node: &Node,
    service: &str,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let waited = node.wait_until(REGISTRATION_DEADLINE, what, || {
        instance(&node.url, service, id).is_some_and(|i| check(&i))
    });
    println!(
        "{what}: in the catalog {:.0} ms later",
        waited.as_secs_f64() * 1e3
    );
    instance(&node.url, service, id).unwrap()
}

fn ports(instance: &Value) -> Vec<Port> {
    let mut ports: Vec<Port> = serde_json::from_value(instance["ports"].clone()).unwrap();
    ports.sort();
    ports
}

/// Polls `docker inspect` until the container's health is `status`.
fn wait_for_health(id: &str, status: &str) {
    let started = Instant::now();
    loop {
        let now = docker(&["inspect", "-f", "{{.State.Health.Status}}", id]);
        if now == status {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{id} did not become {status} (still {now})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The states of container `id` in the service's history, oldest first.
fn history(base: &str, service: &str, id: &str) -> Vec<(String, Option<i64>)> {
    let v: Value = http()
        .get(format!("{base}/api/v1/services/{service}"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mut states: Vec<(String, Option<i64>)> = v["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {v}"))
        .iter()
        .filter(|t| t["container_id"] == id)
        .map(|t| {
            (
                t["state"].as_str().unwrap().to_string(),
                t["exit_code"].as_i64(),
            )
        })
        .collect();
    states.reverse();
    states
}

fn state(name: &str, exit_code: Option<i64>) -> (String, Option<i64>) {
    (name.to_string(), exit_code)
}

#[test]
fn start_health_die_and_stop_reach_the_catalog_within_two_seconds_with_ports_and_tags() {
    if !docker_or_skip("start_health_die_and_stop_reach_the_catalog") {
        return;
    }
    let prefix = Container::unique_name("shiplog-registrations");
    let (node, _config) = node_for(&prefix);
    let service = format!("{prefix}-svc");
    let service_env = format!("SERVICE_NAME={service}");

    // The image has no /bin/sh for Docker's shell-form health check: the container links
    // busybox there first. Health fails once /sick exists.
    let checked = Container::run(
        &format!("{prefix}-checked"),
        &[
            "-e",
            &service_env,
            "-e",
            "SERVICE_TAGS=a,b",
            "--expose",
            "9090",
            "-p",
            "127.0.0.1::8080",
            "--health-cmd",
            "test ! -e /sick",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        "ln -s /bin/busybox /bin/sh; trap 'exit 3' TERM; while true; do usleep 100000; done",
    );
    let host_port: u16 = docker(&["port", &checked.id, "8080/tcp"])
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let want_ports = vec![
        Port {
            private: 8080,
            public: Some(host_port),
            proto: "tcp".into(),
            host_ip: Some("127.0.0.1".into()),
        },
        Port {
            private: 9090,
            public: None,
            proto: "tcp".into(),
            host_ip: None,
        },
    ];
    let id = checked.id.as_str();

    let running = registered(&node, &service, id, "start", |i| i["state"] == "started");
    assert_eq!(running["container_name"], checked.name.as_str());
    assert_eq!(running["image"], TEST_IMAGE);
    assert_eq!(running["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(ports(&running), want_ports, "{running}");
    // Inspected at its start: the first check may or may not have run yet.
    assert!(
        running["health"] == "starting" || running["health"] == "healthy",
        "{running}"
    );

    wait_for_health(id, "healthy");
    let healthy = registered(&node, &service, id, "health_status: healthy", |i| {
        i["health"] == "healthy"
    });
    assert_eq!(healthy["state"], "started", "{healthy}");
    assert_eq!(ports(&healthy), want_ports, "{healthy}");
    assert_eq!(healthy["tags"], serde_json::json!(["a", "b"]));

    docker(&["exec", id, "/bin/busybox", "touch", "/sick"]);
    wait_for_health(id, "unhealthy");
    let unhealthy = registered(&node, &service, id, "health_status: unhealthy", |i| {
        i["health"] == "unhealthy"
    });
    assert_eq!(unhealthy["state"], "started", "{unhealthy}");

    docker(&["stop", "-t", "10", id]);
    let stopped = registered(&node, &service, id, "stop", |i| i["state"] == "stopped");
    assert_eq!(stopped["health"], Value::Null, "{stopped}");
    assert_eq!(ports(&stopped), want_ports, "{stopped}");
    assert_eq!(stopped["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        history(&node.url, &service, id),
        [
            state("started", None),
            state("healthy", None),
            state("unhealthy", None),
            state("killed", None),
            state("died", Some(3)),
            state("stopped", None),
        ],
        "the lifecycle in order"
    );

    // A container whose process exits by itself: `die` without `stop`.
    let exits_service = format!("{prefix}-exits");
    let exits = Container::run(
        &format!("{prefix}-exits"),
        &["-e", &format!("SERVICE_NAME={exits_service}")],
        "while [ ! -e /go ]; do usleep 100000; done; exit 7",
    );
    let running = registered(&node, &exits_service, &exits.id, "start", |i| {
        i["state"] == "started"
    });
    assert_eq!(running["ports"], serde_json::json!([]));
    assert_eq!(running["tags"], serde_json::json!([]));
    assert_eq!(running["health"], Value::Null);
    docker(&["exec", &exits.id, "/bin/busybox", "touch", "/go"]);
    assert_eq!(exits.wait(), 7);
    let died = registered(&node, &exits_service, &exits.id, "die", |i| {
        i["state"] == "died"
    });
    assert_eq!(died["container_name"], exits.name.as_str());
    assert_eq!(
        history(&node.url, &exits_service, &exits.id),
        [state("started", None), state("died", Some(7))]
    );
}

/// Running instances (`started` or `paused`) of containers named `prefix...` in the
/// catalog, by container id, and every instance's id.
fn catalog(base: &str, prefix: &str) -> Option<(BTreeMap<String, String>, BTreeSet<String>)> {
    let v: Value = http()
        .get(format!("{base}/api/v1/services"))
        .send()
        .ok()?
        .json()
        .ok()?;
    let mut running = BTreeMap::new();
    let mut all = BTreeSet::new();
    for service in v["services"].as_array()? {
        for i in service["instances"].as_array()? {
            let name = i["container_name"].as_str()?;
            if !name.starts_with(prefix) {
                continue;
            }
            let id = i["container_id"].as_str()?.to_string();
            if i["state"] == "started" || i["state"] == "paused" {
                running.insert(id.clone(), name.to_string());
            }
            all.insert(id);
        }
    }
    Some((running, all))
}

/// `docker ps` of this test's running containers: id → name.
fn docker_ps(prefix: &str) -> BTreeMap<String, String> {
    docker(&[
        "ps",
        "--no-trunc",
        "--filter",
        "label=shiplog.test=1",
        "--filter",
        &format!("name={prefix}"),
        "--format",
        "{{.ID}} {{.Names}}",
    ])
    .lines()
    .filter_map(|l| l.split_once(' '))
    .filter(|(_, name)| name.starts_with(prefix))
    .map(|(id, name)| (id.to_string(), name.to_string()))
    .collect()
}

#[test]
fn after_collector_downtime_the_catalog_matches_docker_ps_within_five_seconds() {
    if !docker_or_skip("after_collector_downtime_the_catalog_matches_docker_ps") {
        return;
    }
    let prefix = Container::unique_name("shiplog-downtime");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = collector_config(dir.path(), &prefix, Some(&dir.path().join("collect")));
    let server = serve(
        port,
        &dir.path().join("serve"),
        dir.path().join("serve.log"),
    );
    let collect = |n: usize| {
        Proc::start(
            &[
                "collect",
                "--url",
                &base,
                "--config",
                config.to_str().unwrap(),
            ],
            dir.path().join(format!("collect-{n}.log")),
        )
    };
    let mut collector = collect(1);

    let stays = Container::run(&format!("{prefix}-stays"), &[], IDLE);
    let removed = Container::run(&format!("{prefix}-removed"), &[], IDLE);
    let stopped = Container::run(&format!("{prefix}-stopped"), &[], IDLE);
    let before: BTreeMap<String, String> = [&stays, &removed, &stopped]
        .iter()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    wait_until(
        Duration::from_secs(60),
        "the three containers listed as running",
        &[&server, &collector],
        || catalog(&base, &prefix).is_some_and(|(running, _)| running == before),
    );

    collector.kill9();
    docker(&["rm", "-f", &removed.id]);
    docker(&["stop", "-t", "10", &stopped.id]);
    let new_ones = [
        Container::run(&format!("{prefix}-new1"), &[], IDLE),
        Container::run(&format!("{prefix}-new2"), &[], IDLE),
    ];
    let expected = docker_ps(&prefix);
    let want: BTreeMap<String, String> = [&stays, &new_ones[0], &new_ones[1]]
        .iter()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect();
    assert_eq!(expected, want, "docker ps of the test's containers");
    // The catalog still shows the world as the killed collector left it.
    assert_eq!(catalog(&base, &prefix).unwrap().0, before);

    collector = collect(2);
    let took = wait_until(
        RESYNC_DEADLINE,
        "the catalog to match docker ps",
        &[&server, &collector],
        || {
            catalog(&base, &prefix)
                .is_some_and(|(running, all)| running == expected && !all.contains(&removed.id))
        },
    );
    println!(
        "catalog matched docker ps {:.0} ms after the collector was restarted",
        took.as_secs_f64() * 1e3
    );

    // And it stays that way, even for a moment: nothing replayed late brings a ghost back.
    let why = || {
        format!(
            "registrations:\n{}\nlogs:\n{}\n-----\n{}",
            registrations(&base),
            server.log(),
            collector.log()
        )
    };
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        let (running, all) = catalog(&base, &prefix).unwrap();
        assert_eq!(running, expected, "{}", why());
        assert!(
            !all.contains(&removed.id),
            "no ghost of the removed container; {}",
            why()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        docker_ps(&prefix),
        expected,
        "docker ps did not change meanwhile"
    );
}

/// Every stored registration, oldest first, one line each, for failure messages.
fn registrations(base: &str) -> String {
    search(base, "kind:registration")
        .1
        .iter()
        .map(|e| {
            format!(
                "{} {} {:?} {} {}",
                e.ts.to_rfc3339(),
                e.container_name,
                e.state,
                &e.container_id[..e.container_id.len().min(12)],
                Value::Object(e.fields.clone())
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
