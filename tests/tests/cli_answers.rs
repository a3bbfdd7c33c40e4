//! What the CLI answers a new user, with the real binary: `--json` means JSON on stdout
//! whatever happens, and errors say what is wrong.

use std::process::Command;

use serde_json::Value;

/// Runs the binary; exit code, stdout, stderr.
fn shiplog(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(shiplog_tests::shiplog_bin())
        .args(args)
        .env_remove("SHIPLOG_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const RULES: &str = r#"
[[alert]]
name = "api-error-rate"
kind = "ratio"
query = "level:error"
window = "1m"
threshold = 0.05
for = "30s"
severity = "critical"

[[alert]]
name = "few-lines"
kind = "count"
query = "service:api"
window = "5m"
op = "<"
threshold = 1
"#;

#[test]
fn alerts_check_json_is_one_json_object_for_a_good_and_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, RULES).unwrap();
    let (code, out, err) = shiplog(&["alerts", "check", "--json", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], true, "{v}");
    let names: Vec<&str> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-error-rate", "few-lines"]);
    assert_eq!(v["rules"][0]["kind"], "ratio");
    assert_eq!(v["rules"][0]["window_seconds"], 60.0);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, RULES.replace("window = \"1m\"", "window = \"soon\"")).unwrap();
    let (code, out, err) = shiplog(&["alerts", "check", "--json", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid time 'soon'"),
        "{v}"
    );
    assert_eq!(v["error"]["line"], 6, "{v}");

    let (code, out, _) = shiplog(&["alerts", "check", "--json", "/nonexistent/x.toml"]);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read"),
        "{v}"
    );
}

#[test]
fn flags_are_accepted_where_a_user_puts_them_and_help_says_each_thing_once() {
    // --url after the subcommand: the answer is about the unreachable node, not the flag.
    let (code, out, err) = shiplog(&["alerts", "list", "--url", "http://127.0.0.1:9"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(!err.contains("unexpected argument"), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    // A host name in --listen is resolved, a missing port is named.
    let (code, _, err) = shiplog(&[
        "serve",
        "--listen",
        "localhost",
        "--data-dir",
        "/nonexistent",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has no port"), "{err}");
    let (_, serve_help, _) = shiplog(&["serve", "--help"]);
    assert!(!serve_help.contains("--no-docker"), "{serve_help}");
    let (_, up_help, _) = shiplog(&["up", "--help"]);
    assert!(up_help.contains("--no-docker"), "{up_help}");
    let (_, hold_help, _) = shiplog(&["audit", "hold", "--help"]);
    let by = hold_help.lines().find(|l| l.contains("--by")).unwrap();
    assert_eq!(by.matches("default").count(), 1, "{by}");
}

#[test]
fn an_export_to_a_missing_directory_names_the_users_path_before_asking_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing/dir/p.ndjson");
    // No node listens on port 9: the check comes first.
    let (code, _, err) = shiplog(&[
        "predictions",
        "export",
        "--url",
        "http://127.0.0.1:9",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("p.ndjson") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!err.contains(".partial"), "{err}");
}

#[test]
fn audit_roots_with_only_an_open_day_says_why_and_writes_nothing() {
    let mut node = shiplog_tests::node::Node::start(&["--no-docker"], &[]);
    let resp = node
        .http()
        .post(format!("{}/api/v1/predictions", node.url))
        .body("{\"model\":\"churn\",\"request_id\":\"r1\",\"status\":\"ok\"}\n")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    node.stop();
    let data = node.data_dir.to_str().unwrap().to_string();
    let roots = node.data_dir.join("roots.json");
    let (code, _, err) = shiplog(&[
        "audit",
        "roots",
        "--data-dir",
        &data,
        "--out",
        roots.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no day has closed") && err.contains("--include-open"),
        "{err}"
    );
    assert!(!roots.exists(), "an empty roots file was written");
    let (code, _, err) = shiplog(&[
        "audit",
        "roots",
        "--data-dir",
        &data,
        "--include-open",
        "--out",
        roots.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(&roots).unwrap()).unwrap();
    assert_eq!(v["days"][0]["open"], true, "{v}");
}

#[test]
fn search_pages_past_ten_thousand_hits_and_resumes_from_its_cursor() {
    let node = shiplog_tests::node::Node::start(&["--no-docker"], &[]);
    // One batch without times: every line shares the arrival time.
    let body: String = (0..12_500)
        .map(|i| format!("{{\"message\":\"page line {i}\",\"service\":\"pager\"}}\n"))
        .collect();
    let resp = node
        .http()
        .post(format!("{}/api/v1/ingest?refresh=true", node.url))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let url = node.url.clone();
    let (code, out, err) = shiplog(&[
        "search",
        "--url",
        &url,
        "--json",
        "-n",
        "100000",
        "service:pager",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let all: std::collections::HashSet<&str> = out.lines().collect();
    assert_eq!((out.lines().count(), all.len()), (12_500, 12_500), "{err}");

    let (code, first, err) = shiplog(&[
        "search",
        "--url",
        &url,
        "--json",
        "-n",
        "10500",
        "service:pager",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let cursor = err
        .split_whitespace()
        .skip_while(|w| *w != "--cursor")
        .nth(1)
        .unwrap_or_else(|| panic!("no cursor in {err}"));
    let (code, rest, err) = shiplog(&[
        "search",
        "--url",
        &url,
        "--json",
        "--all",
        "--cursor",
        cursor,
        "service:pager",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let joined: std::collections::HashSet<&str> = first.lines().chain(rest.lines()).collect();
    assert_eq!(first.lines().count() + rest.lines().count(), 12_500);
    assert_eq!(joined, all);
}

#[test]
fn a_second_node_on_a_data_dir_in_use_stops_at_once_and_says_what_to_do() {
    let node = shiplog_tests::node::Node::start(&["--no-docker"], &[]);
    let data = node.data_dir.to_str().unwrap().to_string();
    let (code, _, err) = shiplog(&[
        "up",
        "--no-docker",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
    ]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("in use by another shiplog node"), "{err}");
    assert!(
        err.contains("--data-dir") && !err.contains("LockBusy"),
        "{err}"
    );
    assert!(
        node.search(&[("q", "")]).0 == 200,
        "the first node kept serving"
    );
}
