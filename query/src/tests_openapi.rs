//! The OpenAPI document stays in step with the router: every route is documented, and every
//! documented path and method is served.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::*;

fn document() -> Value {
    serde_json::from_str(routes::openapi::OPENAPI_JSON).expect("openapi.json is valid JSON")
}

/// Paths the router declares, read from its source.
fn routed_paths() -> BTreeSet<String> {
    // rustfmt puts a long `.route(` call's arguments on the lines after it.
    let source = include_str!("router.rs").replace(".route(\n", ".route(");
    source
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let rest = l.trim_start_matches(".route(").trim_start();
            (l.starts_with(".route(") && rest.starts_with('"'))
                .then(|| rest[1..].split('"').next().map(str::to_string))
                .flatten()
        })
        .collect()
}

#[test]
fn every_route_is_documented_with_a_summary_and_responses() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let routed = routed_paths();
    assert!(
        routed.len() >= 20,
        "the router source was not read: {routed:?}"
    );
    for path in &routed {
        assert!(
            paths.contains_key(path),
            "route {path} is missing from query/api/openapi.json"
        );
    }
    for (path, ops) in paths {
        assert!(routed.contains(path), "{path} is documented but not routed");
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let st = AppState::new(std::sync::Arc::new(
        shiplog_indexer::Indexer::open(shiplog_indexer::IndexerConfig {
            data_dir: dir.path().to_path_buf(),
            writer_memory_bytes: 64 * 1024 * 1024,
            writer_threads: 1,
            ..shiplog_indexer::IndexerConfig::default()
        })
        .unwrap(),
    ));
    let doc = document();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let uri = path.replace("{name}", "demo").replace("{index}", "logs");
        for method in ops.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let req = Request::builder()
                .method(m)
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let resp = router(st.clone()).oneshot(req).await.unwrap();
            let status = resp.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                let body = tokio::time::timeout(
                    Duration::from_secs(5),
                    axum::body::to_bytes(resp.into_body(), 1 << 20),
                )
                .await
                .unwrap()
                .unwrap();
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                assert_ne!(
                    v["error"]["code"], "not_found",
                    "{method} {path} fell through to the fallback"
                );
            }
        }
    }
    let resp = router(st.clone())
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    st.shutdown.cancel();
}

/// Every error code a route can answer is listed in README.md's table of codes.
#[test]
fn every_error_code_is_listed_in_the_readme() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let table_start = readme
        .find("| status | codes |")
        .expect("README has the code table");
    let table = &readme[table_start..];
    let table = &table[..table.find("\n\n").unwrap_or(table.len())];
    let patterns = [
        regex::Regex::new(r#"ApiError::new\(\s*StatusCode::[A-Z_]+,\s*"([a-z_]+)""#).unwrap(),
        regex::Regex::new(r#"Self::new\(\s*StatusCode::[A-Z_]+,\s*"([a-z_]+)""#).unwrap(),
        regex::Regex::new(r#"bad_request\(\s*"([a-z_]+)""#).unwrap(),
    ];
    // The codes given to the framework's own error answers, by status.
    let error_rs = std::fs::read_to_string(root.join("src/error.rs")).unwrap();
    let code_for = error_rs
        .split("fn code_for")
        .nth(1)
        .and_then(|t| t.split("\n}\n").next())
        .expect("error.rs has code_for");
    let by_status = regex::Regex::new(r#"=> "([a-z_]+)""#).unwrap();
    let mut found = BTreeSet::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".rs") && !name.starts_with("tests") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Test modules inside a file come last; their codes are not answers.
                let text = text.split("#[cfg(test)]").next().unwrap_or(&text);
                for re in &patterns {
                    for c in re.captures_iter(text) {
                        found.insert(c[1].to_string());
                    }
                }
            }
        }
    }
    for c in by_status.captures_iter(code_for) {
        found.insert(c[1].to_string());
    }
    assert!(found.len() >= 30, "the sources were not read: {found:?}");
    let missing: Vec<_> = found
        .iter()
        .filter(|c| !table.contains(&format!("`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from README.md's table: {missing:?}"
    );
}
