//! API tokens end to end: a real `shiplog up` with `[[auth.token]]` in its config, and the
//! refusal to serve a non-loopback address without tokens.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shiplog_tests::{Node, shiplog_bin};

const INGEST: &str = "e2e-ingest-token-0123456789";
const READ: &str = "e2e-read-token-0123456789";

#[test]
fn a_node_with_tokens_checks_them_on_every_route_class() {
    let dir = tempfile::tempdir().unwrap();
    let config = shiplog_tests::node::two_token_config(dir.path(), INGEST, READ);
    let node = Node::start(&["--no-docker", "--config", config.to_str().unwrap()], &[]);
    assert!(
        node.log().contains("API tokens configured"),
        "{}",
        node.log()
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let search = format!("{}/api/v1/search?q=hello", node.url);

    let r = http.get(&search).send().unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().unwrap();
    assert_eq!(
        v["error"]["message"],
        "missing token: send Authorization: Bearer <token>"
    );

    let line = r#"{"ts":"2026-11-22T10:00:00Z","message":"hello from e2e","service":"e2e"}"#;
    let ingest = format!("{}/api/v1/ingest?refresh=true", node.url);
    let r = http
        .post(&ingest)
        .bearer_auth(READ)
        .body(line)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("token 'viewer' lacks role 'ingest'"),
        "{v}"
    );
    let r = http
        .post(&ingest)
        .bearer_auth(INGEST)
        .body(line)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());

    let r = http.get(&search).bearer_auth(INGEST).send().unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("{search}&since=2026-11-22T00:00:00Z"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["total"], 1, "{v}");

    let r = http
        .post(format!("{}/api/v1/aggregate", node.url))
        .bearer_auth(READ)
        .body(r#"{"since": "2026-11-22T00:00:00Z", "until": "2026-11-23T00:00:00Z", "aggs": {"n": {"count": {}}, "s": {"terms": {"field": "service"}}}}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["aggs"]["n"]["value"], 1, "{v}");
    assert_eq!(v["aggs"]["s"]["buckets"][0]["key"], "e2e", "{v}");

    // Monitoring stays open.
    let r = http.get(format!("{}/metrics", node.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    assert!(text.contains("shiplog_ingest_events_total 1"), "{text}");
    assert!(text.contains("status=\"401\""), "{text}");
}

#[test]
fn a_non_loopback_address_without_tokens_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(shiplog_bin())
        .args(["up", "--no-docker", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without API tokens"),
        "{stderr}"
    );
    assert!(stderr.contains("allow_unauthenticated"), "{stderr}");
    // Nothing was opened: the refusal comes before the data directory is touched.
    assert!(!dir.path().join("wal").exists());
}
