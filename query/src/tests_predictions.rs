//! Prediction endpoints through the real router over a real indexer on disk: direct
//! ingest with mapping and redaction, audit queries by every filter, streamed exports whose
//! manifest checksum matches the body, roles, and the access record.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use shiplog_core::prediction_config::{Builtin, PredictionsConfig};
use shiplog_indexer::{Indexer, IndexerConfig};
use tower::ServiceExt;

use crate::auth::{ApiToken, Auth, Role, TokenSecret};
use crate::predictions::PredictionService;
use crate::{AppState, router_with};

const INGEST: &str = "ingest-token-0123456789";
const AUDIT: &str = "audit-token-0123456789";
const READ: &str = "read-token-0123456789ab";
const ADMIN: &str = "admin-token-0123456789";

fn app(dir: &std::path::Path) -> axum::Router {
    let indexer = Arc::new(
        Indexer::open(IndexerConfig {
            data_dir: dir.to_path_buf(),
            writer_threads: 1,
            writer_memory_bytes: 32 * 1024 * 1024,
            commit_interval: Duration::from_millis(100),
            min_commit_interval: Duration::from_millis(10),
            ..IndexerConfig::default()
        })
        .unwrap(),
    );
    let mut state = AppState::new(indexer.clone());
    let rules = PredictionsConfig {
        builtin_redactions: vec![Builtin::Email],
        ..PredictionsConfig::default()
    }
    .build()
    .unwrap();
    state.predictions = Arc::new(PredictionService::new(dir, rules));
    let token = |name: &str, secret: &str, role| ApiToken {
        name: name.into(),
        secret: TokenSecret::Plain(secret.into()),
        roles: vec![role],
    };
    let auth = Auth::new(&[
        token("shipper", INGEST, Role::Ingest),
        token("auditor", AUDIT, Role::Audit),
        token("viewer", READ, Role::Read),
        token("root", ADMIN, Role::Admin),
    ])
    .unwrap();
    router_with(state, auth)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec(), headers)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

fn records(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..n {
        let rec = json!({
            "ts": format!("2026-11-20T10:00:{:02}.{:09}Z", i % 60, i),
            "model": if i % 2 == 0 { "churn" } else { "fraud" },
            "version": format!("v{}", i % 3),
            "request_id": format!("req-{i}"),
            "latency_ms": i as f64 / 2.0,
            "features": {"customer_id": i, "email": format!("user{i}@example.com")},
            "prediction": {"score": (i % 100) as f64 / 100.0},
            "status": if i % 10 == 0 { "error" } else { "ok" },
        });
        body.extend_from_slice(&serde_json::to_vec(&rec).unwrap());
        body.push(b'\n');
    }
    body.extend_from_slice(b"{\"model\":\"churn\",\"latency_ms\":1}\n");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_are_stored_redacted_found_exported_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());

    // Direct ingest: the read token is refused, the ingest token stores everything.
    let (status, _, _) = call(&app, "POST", "/api/v1/predictions", READ, records(3)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body, _) = call(&app, "POST", "/api/v1/predictions", INGEST, records(500)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let ack = json_of(&body);
    assert_eq!(ack["accepted"], 501);
    assert_eq!(ack["predictions"], 500);
    assert_eq!(ack["malformed"], 1);
    assert_eq!(ack["errors"][0]["record"], 501);
    assert_eq!(ack["errors"][0]["reason"], "missing request_id");
    // Sending the same records again stores nothing twice.
    let (_, body, _) = call(&app, "POST", "/api/v1/predictions", INGEST, records(500)).await;
    assert_eq!(json_of(&body)["duplicates"], 500);
    // A bad record refuses the request and names it.
    let (status, body, _) = call(
        &app,
        "POST",
        "/api/v1/predictions",
        INGEST,
        b"{\"model\":1}\n[2]\n".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("record 2 is an array"));
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Audit queries need the audit role.
    let (status, _, _) = call(
        &app,
        "GET",
        "/api/v1/predictions?request_id=req-42",
        READ,
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body, _) = call(
        &app,
        "GET",
        "/api/v1/predictions?request_id=req-42",
        AUDIT,
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page = json_of(&body);
    assert_eq!(page["total"], 1);
    let hit = &page["hits"][0];
    assert_eq!(hit["model"], "churn");
    assert_eq!(hit["model_version"], "v0");
    assert_eq!(hit["input"]["customer_id"], 42);
    assert_eq!(hit["input"]["email"], "****", "redacted before storage");
    assert_eq!(hit["fields"]["_redacted"], json!(["email"]));
    for (uri, want) in [
        ("/api/v1/predictions?model=fraud&limit=1", 250),
        ("/api/v1/predictions?model=churn&version=v1", 83),
        ("/api/v1/predictions?status=error", 50),
        (
            "/api/v1/predictions?min_latency_ms=100&max_latency_ms=149.5",
            100,
        ),
        (
            "/api/v1/predictions?q=input.customer_id:%5B10%20TO%2019%5D",
            10,
        ),
        ("/api/v1/predictions?q=output.score:%3E0.98", 5),
    ] {
        let (status, body, _) = call(&app, "GET", uri, AUDIT, vec![]).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(json_of(&body)["total"], want, "{uri}");
    }
    // The read token's plain search does not see predictions; the auditor's does.
    let (_, body, _) = call(
        &app,
        "GET",
        "/api/v1/search?q=request_id:req-42",
        READ,
        vec![],
    )
    .await;
    assert_eq!(json_of(&body)["total"], 0);
    let (_, body, _) = call(
        &app,
        "GET",
        "/api/v1/search?q=request_id:req-42",
        ADMIN,
        vec![],
    )
    .await;
    assert_eq!(json_of(&body)["total"], 1);

    // Exports stream every match; the manifest's checksum is the body's.
    for format in ["ndjson", "csv"] {
        let uri = format!("/api/v1/predictions?model=churn&format={format}");
        let (status, body, headers) = call(&app, "GET", &uri, AUDIT, vec![]).await;
        assert_eq!(status, StatusCode::OK);
        let id = headers["x-shiplog-export-id"].to_str().unwrap().to_string();
        let lines = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert_eq!(lines, if format == "csv" { 251 } else { 250 }, "{format}");
        let mut manifest = Value::Null;
        for _ in 0..50 {
            let (status, m, _) = call(
                &app,
                "GET",
                &format!("/api/v1/predictions/exports/{id}"),
                AUDIT,
                vec![],
            )
            .await;
            if status == StatusCode::OK {
                manifest = json_of(&m);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(manifest["records"], 250);
        assert_eq!(manifest["complete"], true);
        assert_eq!(manifest["bytes"], body.len());
        assert_eq!(
            manifest["sha256"],
            shiplog_core::digest::hex(&shiplog_core::digest::sha256(&[&body]))
        );
    }

    // Every audit query is in the access record, which only admin may read.
    let (status, _, _) = call(&app, "GET", "/api/v1/audit/access", AUDIT, vec![]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body, _) = call(
        &app,
        "GET",
        "/api/v1/audit/access?q=fields.token:auditor&limit=100",
        ADMIN,
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let access = json_of(&body);
    assert_eq!(access["total"], 9, "7 queries and 2 exports");
    let newest = &access["hits"][0];
    assert_eq!(newest["fields"]["format"], "csv");
    assert_eq!(newest["fields"]["count"], 250);
    assert!(
        access["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["fields"]["query"] == "request_id=req-42")
    );

    // The summary: per model and version, for auditors only.
    let summary = "/api/v1/predictions/summary?since=2026-11-20T09:59:00Z&until=2026-11-20T10:02:00Z&buckets=3";
    let (status, _, _) = call(&app, "GET", summary, READ, vec![]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token sees no prediction rates"
    );
    let (status, body, _) = call(&app, "GET", summary, AUDIT, vec![]).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let s = json_of(&body);
    let models = s["models"].as_array().unwrap();
    assert_eq!(models.len(), 6);
    let total: u64 = models.iter().map(|m| m["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 500);
    let churn_v0 = models
        .iter()
        .find(|m| m["model"] == "churn" && m["model_version"] == "v0")
        .unwrap();
    assert_eq!(churn_v0["count"], 84);
    assert_eq!(churn_v0["series"].as_array().unwrap().len(), 3);
    assert!(s["malformed_since_start"].as_u64().unwrap() >= 1);
    let (_, body, _) = call(&app, "GET", "/metrics", READ, vec![]).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("shiplog_predictions_received_total 1000"),
        "{text}"
    );
    assert!(
        text.contains("shiplog_predictions_malformed_total 2"),
        "{text}"
    );
}
