//! Docker's log rotation at its smallest setting (`max-size=1m`, `max-file=2`), with
//! containers writing numbered lines as fast as the engine takes them, and the node killed
//! with SIGKILL once mid-run and started again at once.
//!
//! What must hold, on every log path:
//! - no line is stored twice;
//! - no line is lost while the node runs: every line missing from the index lies inside a
//!   gap the collector reported (a `fields._gap` event between the lines around it);
//! - on the default path (the engine's files, held open through rotation) a gap can only
//!   come from the time the node was down, when the engine deleted files nobody read.
//!
//! The engine's own followed log (the socket reader's and the client's path) falls behind
//! a container writing flat out on two cores and skips whole files; those paths must read
//! back what is still stored and report the rest, never lose a line silently.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use shiplog_core::Timestamp;
use shiplog_tests::node::Node;
use shiplog_tests::{Container, docker_or_skip};

/// Containers writing at once.
const CONTAINERS: usize = 3;
/// Lines each writes: about 14 MB of the engine's log, fourteen rotations of 1 MB.
const LINES: usize = 100_000;

/// What the index holds of one container.
#[derive(Debug, Default)]
struct Stored {
    /// Line number → Docker's time of each copy stored.
    lines: BTreeMap<usize, Vec<Timestamp>>,
    /// Gap events: (after, before, estimated lines, when the collector made it).
    gaps: Vec<(Timestamp, Timestamp, u64, Timestamp)>,
}

fn time(value: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(value.as_str().unwrap_or_default()).unwrap_or(Timestamp(0))
}

/// Every event of container `name`, paged through.
fn stored(node: &Node, name: &str) -> Stored {
    let mut stored = Stored::default();
    let mut cursor = String::new();
    let query = format!("container_name:{name} AND kind:log");
    loop {
        let mut params = vec![
            ("q", query.as_str()),
            ("since", "1h"),
            ("limit", "10000"),
            ("fields", "ts,received,message,fields"),
        ];
        if !cursor.is_empty() {
            params.push(("cursor", cursor.as_str()));
        }
        let (status, answer) = node.search(&params);
        assert_eq!(status, 200, "{answer}");
        for hit in answer["hits"].as_array().unwrap() {
            let gap = &hit["fields"]["_gap"];
            if gap.is_object() {
                stored.gaps.push((
                    time(&gap["after"]),
                    time(&gap["before"]),
                    gap["lines_estimate"].as_u64().unwrap_or(0),
                    time(&hit["received"]),
                ));
                continue;
            }
            let message = hit["message"].as_str().unwrap_or_default();
            if let Some(n) = message
                .strip_prefix("rot ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
            {
                stored.lines.entry(n).or_default().push(time(&hit["ts"]));
            }
        }
        match answer["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => return stored,
        }
    }
}

/// Runs the whole scenario with `collector` as the `[collector]` settings that pick the
/// log path; returns per container the lines missing and the gaps reported.
fn rotate_flat_out(test: &str, collector: &str, default_path: bool, kill: bool) {
    if !docker_or_skip(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = Container::unique_name("shiplog-rot");
    let config = dir.path().join("shiplog.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\ninclude_names = [\"^{prefix}\"]\nmetrics_interval = \"0s\"\n{collector}\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let args = ["--config", config.to_str().unwrap()];
    let mut node = Node::start_in(&data, "up", &args, &[]);

    let script = format!(
        "i=0; while [ $i -lt {LINES} ]; do \
         echo \"rot $i padding-padding-padding-padding-padding-padding-padding-padding\"; \
         i=$((i+1)); done"
    );
    let options = ["--log-opt", "max-size=1m", "--log-opt", "max-file=2"];
    let started = Instant::now();
    let containers: Vec<Container> = (0..CONTAINERS)
        .map(|n| Container::run(&format!("{prefix}-{n}"), &options, &script))
        .collect();
    // When the node was killed (never, without a kill): a gap reported after it is the
    // restarted node's. Not when the restart answered: the new node reads and reports
    // before its API is up.
    let restarted = if kill {
        std::thread::sleep(Duration::from_millis(500));
        node.kill9();
        let killed_at = Timestamp::now();
        let killed = Instant::now();
        node = Node::start_in(&data, "up", &args, &[]);
        println!(
            "SIGKILL after {:?}, down for {:?}",
            started.elapsed() - killed.elapsed(),
            killed.elapsed()
        );
        killed_at
    } else {
        Timestamp(i64::MAX)
    };
    for c in &containers {
        assert_eq!(c.wait(), 0, "{} finished writing", c.name);
    }
    println!(
        "{CONTAINERS} × {LINES} lines written in {:?}",
        started.elapsed()
    );

    // Until every container's lines and gaps stop changing.
    let settle = Instant::now();
    let mut last = Vec::new();
    let all = loop {
        std::thread::sleep(Duration::from_secs(3));
        let now: Vec<Stored> = containers.iter().map(|c| stored(&node, &c.name)).collect();
        let counts: Vec<(usize, usize)> =
            now.iter().map(|s| (s.lines.len(), s.gaps.len())).collect();
        let complete = counts.iter().all(|(n, _)| *n == LINES);
        if complete || counts == last || settle.elapsed() > Duration::from_secs(180) {
            break now;
        }
        last = counts;
    };

    let mut lost_total = 0;
    for (c, stored) in containers.iter().zip(&all) {
        let doubled: Vec<_> = stored
            .lines
            .iter()
            .filter(|(_, copies)| copies.len() > 1)
            .map(|(n, _)| *n)
            .collect();
        assert!(
            doubled.is_empty(),
            "{}: lines stored twice: {doubled:?}",
            c.name
        );
        // Each run of missing lines must sit inside a reported gap: the gap begins at or
        // before the line before the run and ends at or after the line after it.
        let mut missing = Vec::new();
        let mut n = 0;
        while n < LINES {
            if stored.lines.contains_key(&n) {
                n += 1;
                continue;
            }
            let first = n;
            while n < LINES && !stored.lines.contains_key(&n) {
                n += 1;
            }
            missing.push((first, n - 1));
        }
        let lost: usize = missing.iter().map(|(a, b)| b - a + 1).sum();
        lost_total += lost;
        println!(
            "{}: {} stored, {lost} lost in {} runs, {} gaps reported {:?}",
            c.name,
            stored.lines.len(),
            missing.len(),
            stored.gaps.len(),
            stored.gaps.iter().map(|g| g.2).collect::<Vec<_>>()
        );
        for &(first, end) in missing.iter().take(8) {
            println!("  lost {first}..={end}");
        }
        for &(first, end) in &missing {
            let after = stored
                .lines
                .get(&(end + 1))
                .map_or(Timestamp(i64::MAX), |copies| copies[0]);
            // Lost from the very first line: the gap begins at the container's start.
            let before = first
                .checked_sub(1)
                .and_then(|p| stored.lines.get(&p))
                .map_or(after, |copies| copies[0]);
            let reported = stored
                .gaps
                .iter()
                .find(|(from, to, _, _)| *from <= before && *to >= after);
            let Some(&(from, to, _, made)) = reported else {
                panic!(
                    "{}: lines {first}..={end} lost with no gap reported around them \
                     (between {} and {}); gaps: {:?}\nnode log:\n{}",
                    c.name,
                    before.to_rfc3339(),
                    after.to_rfc3339(),
                    stored.gaps,
                    node.log()
                );
            };
            if default_path {
                // Read from the files, nothing is lost while the node runs: lines go only
                // when the node dies before reading them and the engine deletes their file
                // before it is back, which the restarted node finds and reports.
                assert!(
                    made >= restarted,
                    "{}: lines {first}..={end} (written from {} to {}) lost while the node \
                     ran: the gap was reported at {}, before the node was killed at {}\nnode log:\n{}",
                    c.name,
                    from.to_rfc3339(),
                    to.to_rfc3339(),
                    made.to_rfc3339(),
                    restarted.to_rfc3339(),
                    node.log()
                );
            }
        }
    }
    println!(
        "{lost_total} of {} lines lost, every one inside a reported gap",
        CONTAINERS * LINES
    );
    if default_path && !kill {
        assert_eq!(lost_total, 0, "lines lost while the node ran");
    }
}

#[test]
fn rotation_loses_no_line_read_from_the_engines_files() {
    rotate_flat_out("rotation_files", "", true, false);
}

#[test]
fn rotation_across_a_sigkill_loses_only_what_the_engine_deleted_meanwhile_and_says_so() {
    rotate_flat_out("rotation_files_sigkill", "", true, true);
}

#[test]
fn rotation_through_the_socket_reader_loses_no_line_silently() {
    rotate_flat_out("rotation_socket", "docker_log_files = false", false, true);
}

#[test]
fn rotation_through_the_client_loses_no_line_silently() {
    rotate_flat_out(
        "rotation_client",
        "docker_log_files = false\ndocker_socket_logs = false",
        false,
        true,
    );
}
