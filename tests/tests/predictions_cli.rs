//! `shiplog predictions` against a real node: predictions sent to the direct endpoint are
//! found by request id and by an input field from the CLI, and an export's manifest
//! checksum matches the file it wrote.

use shiplog_tests::Node;

fn run(node: &Node, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(shiplog_tests::shiplog_bin())
        .args(args)
        .env("SHIPLOG_URL", &node.url)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn predictions_are_found_exported_and_chained() {
    let mut node = Node::start(&["--no-docker"], &[]);
    let mut body = String::new();
    for i in 0..2_000 {
        body.push_str(&format!(
            "{{\"model\":\"churn\",\"version\":\"v{}\",\"request_id\":\"req-{i}\",\"latency_ms\":{},\"features\":{{\"customer_id\":{i}}},\"prediction\":{{\"score\":0.5}},\"status\":\"ok\"}}\n",
            i % 2,
            i % 300
        ));
    }
    let resp = node
        .http()
        .post(format!("{}/api/v1/predictions", node.url))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ack: serde_json::Value = resp.json().unwrap();
    assert_eq!(ack["predictions"], 2_000, "{ack}");
    node.wait_until(
        std::time::Duration::from_secs(30),
        "predictions searchable",
        || node.search(&[("q", "kind:prediction")]).1["total"] == 2_000,
    );

    let (ok, out, err) = run(
        &node,
        &["predictions", "--request-id", "req-1234", "--json"],
    );
    assert!(ok, "{err}");
    let hit: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(hit["input"]["customer_id"], 1234);
    assert!(err.contains("1 of 1 predictions"), "{err}");

    let (ok, out, err) = run(&node, &["predictions", "input.customer_id:77"]);
    assert!(ok, "{err}");
    assert!(out.contains("req-77") && out.contains("churn"), "{out}");

    let (ok, _, err) = run(&node, &["predictions", "input.:1"]);
    assert!(!ok);
    assert!(err.contains("bad query"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v1.csv");
    let (ok, _, err) = run(
        &node,
        &[
            "predictions",
            "export",
            "--model-version",
            "v1",
            "--format",
            "csv",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let data = std::fs::read(&file).unwrap();
    assert_eq!(
        data.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
        1_001,
        "header and 1000 rows"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(format!("{}.manifest.json", file.display())).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["records"], 1_000);
    assert_eq!(
        manifest["sha256"],
        shiplog_core::digest::hex(&shiplog_core::digest::sha256(&[&data]))
    );
    assert_eq!(manifest["query"], "version=v1&format=csv");

    // The node chained every prediction as it indexed it: the chain verifies against the
    // roots exported from it, and an edited record is caught.
    assert!(node.stop().success());
    let data = node.data_dir.to_str().unwrap().to_string();
    let roots = dir.path().join("roots.json");
    let roots = roots.to_str().unwrap();
    let (ok, _, err) = run(
        &node,
        &[
            "audit",
            "roots",
            "--include-open",
            "--data-dir",
            &data,
            "--out",
            roots,
        ],
    );
    assert!(ok, "{err}");
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(roots).unwrap()).unwrap();
    let count: u64 = exported["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(count, 2_000, "{exported}");
    let (ok, out, err) = run(
        &node,
        &["audit", "verify", "--data-dir", &data, "--roots", roots],
    );
    assert!(ok, "{out}{err}");
    let chain = std::fs::read_dir(node.data_dir.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "chain"))
        .unwrap();
    let mut bytes = std::fs::read(&chain).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"req-1234")
        .expect("the record is in the chain");
    bytes[at + 7] = b'5';
    std::fs::write(&chain, bytes).unwrap();
    let (ok, out, err) = run(
        &node,
        &["audit", "verify", "--data-dir", &data, "--roots", roots],
    );
    assert!(!ok, "an edited record must fail verify: {out}{err}");
    assert!((out.clone() + &err).contains("position"), "{out}{err}");
}
