//! The alert routes over a running engine, with a real webhook receiver on loopback.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use shiplog_core::{Event, Level, Timestamp};
use shiplog_indexer::{Indexer, IndexerConfig};
use tower::ServiceExt;

use crate::alerts::notify::{AlertingSettings, WebhookConfig};
use crate::alerts::rule::{Rule, RuleSpec};
use crate::alerts::{Alerts, AlertsConfig, Loader};
use crate::{AppState, router};

type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on 127.0.0.1 that records every request.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

fn rules(v: Value) -> Vec<Rule> {
    let specs: Vec<RuleSpec> = serde_json::from_value(v).unwrap();
    specs.iter().map(|s| s.compile().unwrap()).collect()
}

fn error_rule() -> Value {
    json!([{
        "name": "api-errors", "kind": "ratio", "query": "level:error", "window": "30s",
        "threshold": 0.2, "for": "1s", "group_by": ["service"], "severity": "critical",
        "annotations": {"summary": "errors"}
    }])
}

async fn start(dir: &std::path::Path, hook: &str, loader: Option<Loader>) -> AppState {
    let ix = Arc::new(
        Indexer::open(IndexerConfig {
            data_dir: dir.to_path_buf(),
            writer_memory_bytes: 64 * 1024 * 1024,
            writer_threads: 1,
            commit_interval: Duration::from_millis(200),
            ..IndexerConfig::default()
        })
        .unwrap(),
    );
    let settings = AlertingSettings {
        eval_interval: shiplog_core::units::HumanDuration(Duration::from_millis(200)),
        webhook: vec![WebhookConfig {
            name: "hook".into(),
            url: hook.into(),
            secret: Some("s3cret".into()),
            timeout: shiplog_core::units::HumanDuration(Duration::from_secs(2)),
            headers: Default::default(),
        }],
        ..AlertingSettings::default()
    };
    let alerts = Alerts::start(
        ix.clone(),
        AlertsConfig {
            rules: rules(error_rule()),
            settings,
            data_dir: dir.to_path_buf(),
            default_url: "http://127.0.0.1:7070".into(),
        },
        loader,
    )
    .unwrap();
    AppState {
        alerts: Some(alerts),
        ..AppState::new(ix)
    }
}

async fn call(st: &AppState, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn batch(errors: usize, infos: usize) -> Vec<Event> {
    (0..errors + infos)
        .map(|i| {
            let mut e = Event::log(Timestamp::now(), format!("line {i}"));
            e.service = "api".into();
            e.level = Some(if i < errors {
                Level::Error
            } else {
                Level::Info
            });
            e.ensure_id();
            e
        })
        .collect()
}

async fn until(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_fires_once_with_a_signed_webhook_and_shows_in_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, got) = receiver().await;
    let st = start(dir.path(), &hook, None).await;
    st.indexer.ingest(batch(5, 5)).await.unwrap();
    until(Duration::from_secs(20), "a firing webhook", async || {
        !got.lock().unwrap().is_empty()
    })
    .await;
    let (s, v) = call(&st, "GET", "/api/v1/alerts", "").await;
    assert_eq!(s, StatusCode::OK);
    let a = &v["alerts"][0];
    assert_eq!(a["rule"], "api-errors");
    assert_eq!(a["state"], "firing");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["group"], json!({"service": "api"}));
    assert_eq!(a["value"], 0.5);
    assert_eq!(a["threshold"], 0.2);
    assert_eq!(a["silenced"], false);
    assert!(a["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(a["labels"]["alertname"], "api-errors");
    assert_eq!(a["annotations"]["summary"], "errors");
    until(Duration::from_secs(10), "delivery ok", async || {
        call(&st, "GET", "/api/v1/alerts", "").await.1["alerts"][0]["delivery"] == "ok"
    })
    .await;
    let (headers, body) = got.lock().unwrap()[0].clone();
    let sig = headers["x-shiplog-signature"].to_str().unwrap();
    assert_eq!(
        sig,
        crate::alerts::notify::webhook::signature("s3cret", &body)
    );
    let note: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(note["state"], "firing");
    assert_eq!(note["rule"], "api-errors");
    assert_eq!(
        headers["idempotency-key"],
        note["idempotency_key"].as_str().unwrap()
    );
    assert!(
        note["link"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:7070/api/v1/search?q=")
    );
    // Still firing a while later: no second message.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(got.lock().unwrap().len(), 1);
    let (_, h) = call(&st, "GET", "/api/v1/alerts/history?limit=10", "").await;
    let to: Vec<&str> = h["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["firing", "pending"]);
    let (s, e) = call(&st, "GET", "/api/v1/alerts/history?limit=0", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (_, r) = call(&st, "GET", "/api/v1/alerts/rules", "").await;
    assert_eq!(r["rules"][0]["name"], "api-errors");
    st.alerts.as_ref().unwrap().shutdown();
    st.indexer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_added_listed_expired_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, _got) = receiver().await;
    let st = start(dir.path(), &hook, None).await;
    let good = r#"{"matchers":[{"name":"service","value":"api","is_regex":false}],"ends_at":"2099-01-01T00:00:00Z","comment":"deploy","created_by":"ops"}"#;
    let (s, v) = call(&st, "POST", "/api/v1/silences", good).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (_, list) = call(&st, "GET", "/api/v1/silences", "").await;
    assert_eq!(list["silences"][0]["state"], "active");
    // A silenced alert shows as silenced.
    st.indexer.ingest(batch(5, 5)).await.unwrap();
    until(
        Duration::from_secs(20),
        "a silenced firing alert",
        async || {
            let a = call(&st, "GET", "/api/v1/alerts", "").await.1;
            a["alerts"][0]["state"] == "firing" && a["alerts"][0]["silenced"] == true
        },
    )
    .await;
    for (body, want) in [
        ("{", "EOF"),
        (
            r#"{"matchers":[],"ends_at":"2099-01-01T00:00:00Z"}"#,
            "at least one",
        ),
        (
            r#"{"matchers":[{"name":"service","value":"api"}],"ends_at":"yesterday"}"#,
            "ends_at",
        ),
        (
            r#"{"matchers":[{"name":"service","value":"api"}],"ends_at":"2099-01-01T00:00:00Z","until":"x"}"#,
            "unknown field `until`",
        ),
    ] {
        let (s, e) = call(&st, "POST", "/api/v1/silences", body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(e["error"]["code"], "bad_silence");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want),
            "{body}: {e}"
        );
    }
    let (s, _) = call(&st, "DELETE", &format!("/api/v1/silences/{id}"), "").await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = call(&st, "GET", "/api/v1/silences", "").await;
    assert_eq!(list["silences"][0]["state"], "expired");
    let (s, e) = call(&st, "DELETE", "/api/v1/silences/nope", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "no_such_silence");
    st.alerts.as_ref().unwrap().shutdown();
    st.indexer.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_keeps_the_running_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, _got) = receiver().await;
    let good = Arc::new(Mutex::new(false));
    let g = good.clone();
    let hook2 = hook.clone();
    let loader: Loader = Box::new(move || {
        if !*g.lock().unwrap() {
            return Err(
                "rules.toml:3:9: bad query 'level:(' at character 7: expected a value".into(),
            );
        }
        let mut two = error_rule();
        two.as_array_mut()
            .unwrap()
            .push(json!({"name": "quiet", "kind": "absence", "window": "1m"}));
        let settings = AlertingSettings {
            webhook: vec![WebhookConfig {
                name: "hook".into(),
                url: hook2.clone(),
                secret: None,
                timeout: shiplog_core::units::HumanDuration(Duration::from_secs(1)),
                headers: Default::default(),
            }],
            ..AlertingSettings::default()
        };
        Ok((rules(two), settings))
    });
    let st = start(dir.path(), &hook, Some(loader)).await;
    let (s, e) = call(&st, "POST", "/api/v1/alerts/reload", "").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "bad_rules");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("rules.toml:3:9") && msg.contains("unchanged"),
        "{msg}"
    );
    assert_eq!(
        call(&st, "GET", "/api/v1/alerts/rules", "").await.1["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    *good.lock().unwrap() = true;
    let (s, v) = call(&st, "POST", "/api/v1/alerts/reload", "").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rules"], 2);
    assert_eq!(
        call(&st, "GET", "/api/v1/alerts/rules", "").await.1["rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    st.alerts.as_ref().unwrap().shutdown();
    st.indexer.close();
}

#[tokio::test]
async fn without_an_engine_the_routes_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let st = AppState::new(Arc::new(
        Indexer::open(IndexerConfig {
            data_dir: dir.path().to_path_buf(),
            writer_memory_bytes: 64 * 1024 * 1024,
            writer_threads: 1,
            ..IndexerConfig::default()
        })
        .unwrap(),
    ));
    let (s, e) = call(&st, "GET", "/api/v1/alerts", "").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e["error"]["code"], "alerts_disabled");
    st.indexer.close();
}
