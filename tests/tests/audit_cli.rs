//! `shiplog audit` on a real data directory with the real binary: roots are exported,
//! an untouched chain verifies, a changed byte fails with exit code 1 naming day and
//! position, and legal holds are placed, listed and released.

use std::path::Path;
use std::process::Command;

fn shiplog(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(shiplog_tests::shiplog_bin())
        .args(args)
        .env_remove("SHIPLOG_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn data_dir_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_string()
}

#[test]
fn audit_roots_verify_and_holds_work_on_a_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir_arg(tmp.path());
    // `bench verify --dir` leaves a closed day of predictions under <dir>/audit.
    let (code, out) = shiplog(&[
        "bench",
        "verify",
        "--records",
        "3000",
        "--runs",
        "1",
        "--dir",
        &data,
    ]);
    assert_eq!(code, Some(0), "{out}");

    let roots = tmp.path().join("roots.json");
    let roots_arg = data_dir_arg(&roots);
    let (code, out) = shiplog(&["audit", "roots", "--data-dir", &data, "--out", &roots_arg]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 closed day(s)"), "{out}");
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&roots).unwrap()).unwrap();
    assert_eq!(exported["magic"], "shiplog-audit-roots");
    assert_eq!(exported["days"][0]["count"], 3000);

    let (code, out) = shiplog(&[
        "audit",
        "verify",
        "--data-dir",
        &data,
        "--roots",
        &roots_arg,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("2026-01-01  closed") && out.contains("all ok"),
        "{out}"
    );
    assert!(out.contains("records/s"), "{out}");

    // One byte of one stored record, in the middle of the day.
    let chain = tmp.path().join("audit/2026-01-01.chain");
    let mut bytes = std::fs::read(&chain).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&chain, &bytes).unwrap();
    for extra in [&["--roots", roots_arg.as_str()][..], &[]] {
        let mut args = vec![
            "audit",
            "verify",
            "--data-dir",
            &data,
            "--day",
            "2026-01-01",
        ];
        args.extend_from_slice(extra);
        let (code, out) = shiplog(&args);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("first mismatch: day 2026-01-01, position "),
            "{out}"
        );
        assert!(out.contains("FAILED"), "{out}");
    }

    let (code, out) = shiplog(&[
        "audit",
        "verify",
        "--data-dir",
        &data,
        "--day",
        "2026-02-30",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("invalid day '2026-02-30'"), "{out}");
    std::fs::write(&roots, b"{\"magic\":\"shiplog-audit-roots\",\"version\":9}").unwrap();
    let (code, out) = shiplog(&[
        "audit",
        "verify",
        "--data-dir",
        &data,
        "--roots",
        &roots_arg,
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("version 9 is not supported"), "{out}");

    let (code, out) = shiplog(&[
        "audit",
        "hold",
        "--data-dir",
        &data,
        "--day",
        "2026-01-01",
        "--reason",
        "case 7",
        "--by",
        "auditor",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = shiplog(&[
        "audit",
        "hold",
        "--data-dir",
        &data,
        "--day",
        "2026-01-01",
        "--reason",
        "again",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("already held"), "{out}");
    let (_, out) = shiplog(&["audit", "holds", "--data-dir", &data]);
    assert!(
        out.contains("2026-01-01") && out.contains("auditor") && out.contains("case 7"),
        "{out}"
    );
    let (code, out) = shiplog(&[
        "audit",
        "release",
        "--data-dir",
        &data,
        "--day",
        "2026-01-01",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (_, out) = shiplog(&["audit", "holds", "--data-dir", &data]);
    assert!(out.contains("no days on legal hold"), "{out}");
    let (_, out) = shiplog(&["audit", "holds", "--all", "--data-dir", &data]);
    assert!(out.contains("released by"), "{out}");
}

#[test]
fn every_audit_subcommand_explains_itself() {
    for sub in ["roots", "verify", "hold", "release", "holds"] {
        let (code, out) = shiplog(&["audit", sub, "--help"]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("--data-dir"), "{sub}: {out}");
    }
    let (code, out) = shiplog(&["bench", "verify", "--help"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("--records"), "{out}");
}

#[test]
fn retention_keeps_a_day_under_legal_hold() {
    let node = shiplog_tests::Node::start(&["--no-docker"], &[]);
    let old = shiplog_core::Timestamp::now().offset(-30 * 86_400 * 1_000_000_000);
    let body = format!(
        "{{\"message\":\"evidence line\",\"ts\":\"{}\"}}\n",
        old.to_rfc3339()
    );
    assert_eq!(node.ingest(body.into_bytes(), None).0, 200);
    let data = data_dir_arg(&node.data_dir);
    let day = old.day_string();
    let (code, out) = shiplog(&[
        "audit",
        "hold",
        "--data-dir",
        &data,
        "--day",
        &day,
        "--reason",
        "case 9",
    ]);
    assert_eq!(code, Some(0), "{out}");

    let retention = |apply: bool| {
        let mut cmd = Command::new(shiplog_tests::shiplog_bin());
        cmd.arg("retention").env("SHIPLOG_URL", &node.url);
        if apply {
            cmd.arg("--apply");
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let out = retention(false);
    assert!(out.contains(&day) && out.contains("held"), "{out}");
    assert!(out.contains("1 day(s) under legal hold kept"), "{out}");
    retention(true);
    assert_eq!(
        node.search(&[("q", "evidence"), ("since", "60d")]).1["total"],
        1,
        "a held day survives --apply"
    );

    let (code, out) = shiplog(&["audit", "release", "--data-dir", &data, "--day", &day]);
    assert_eq!(code, Some(0), "{out}");
    let out = retention(true);
    assert!(out.contains("drop day"), "{out}");
    assert_eq!(
        node.search(&[("q", "evidence"), ("since", "60d")]).1["total"],
        0
    );
}
