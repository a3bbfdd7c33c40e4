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
