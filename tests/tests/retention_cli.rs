//! `shiplog retention` against a real node: the plan is shown, nothing is removed without
//! `--apply`, and old days go with it.

use shiplog_tests::Node;

fn run(node: &Node, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(shiplog_tests::shiplog_bin())
        .args(args)
        .env("SHIPLOG_URL", &node.url)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn retention_shows_its_plan_and_applies_it_only_when_asked() {
    let node = Node::start(&["--no-docker"], &[]);
    // One event 30 days old, one from now: the old day is past the 7-day log retention.
    let old = shiplog_core::Timestamp::now()
        .offset(-30 * 86_400 * 1_000_000_000)
        .to_rfc3339();
    let body = format!(
        "{{\"message\":\"ancient line\",\"ts\":\"{old}\"}}\n{{\"message\":\"fresh line\"}}\n"
    );
    assert_eq!(node.ingest(body.into_bytes(), None).0, 200);

    let (ok, out) = run(&node, &["retention"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("drop day") && out.contains("would remove"),
        "{out}"
    );
    assert_eq!(
        node.search(&[("q", "ancient")]).1["total"],
        1,
        "a dry run removes nothing"
    );

    let (ok, out) = run(&node, &["retention", "--apply"]);
    assert!(ok && out.contains("removed"), "{out}");
    assert_eq!(node.search(&[("q", "ancient")]).1["total"], 0);
    assert_eq!(node.search(&[("q", "fresh")]).1["total"], 1);
    let (_, out) = run(&node, &["retention"]);
    assert!(out.contains("nothing to remove"), "{out}");
}
