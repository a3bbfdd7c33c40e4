//! Route tests through the real router, a real indexer on disk, and (for tail) a real
//! socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::StreamExt;
use serde_json::Value;
use shiplog_core::{Event, EventId, Timestamp};
use shiplog_indexer::{Indexer, IndexerConfig};
use tower::ServiceExt;

use super::*;

pub(crate) fn state(dir: &std::path::Path) -> AppState {
    let ix = Indexer::open(IndexerConfig {
        data_dir: dir.to_path_buf(),
        writer_memory_bytes: 64 * 1024 * 1024,
        writer_threads: 1,
        commit_interval: Duration::from_millis(200),
        min_commit_interval: Duration::from_millis(10),
        ..IndexerConfig::default()
    })
    .unwrap();
    AppState::new(Arc::new(ix))
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = Event::log(
                Timestamp::now().offset(i as i64),
                format!("hello {i} error"),
            );
            e.service = if i % 2 == 0 {
                "web".into()
            } else {
                "api".into()
            };
            e.id = EventId(i as u128 + 7);
            e
        })
        .collect()
}

pub(crate) async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(body: Vec<u8>, encoding: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/api/v1/ingest?refresh=true")
        .header(header::CONTENT_TYPE, "application/x-ndjson");
    if let Some(enc) = encoding {
        b = b.header(header::CONTENT_ENCODING, enc);
    }
    b.body(Body::from(body)).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn ingest_then_search_with_the_contract_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let body = shiplog_core::codec::encode_batch(&events(10), Some("b1"), 3);
    let (status, v) = call(&st, post(body.clone(), Some("zstd"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"accepted": 10, "duplicates": 0, "searchable": true})
    );
    let (_, v) = call(&st, post(body, Some("zstd"))).await;
    assert_eq!(
        v,
        serde_json::json!({"accepted": 0, "duplicates": 10, "searchable": true}),
        "a retried batch is not stored twice"
    );

    let (status, v) = call(
        &st,
        get("/api/v1/search?q=service:web%20AND%20error&since=15m&limit=3"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 5);
    assert_eq!(v["total_exact"], true);
    assert!(v["took_ms"].is_u64());
    let hits = v["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["message"], "hello 8 error");
    assert_eq!(hits[0]["id"].as_str().unwrap().len(), 32);
    assert!(v["next_cursor"].is_string());
    // Lucene's match-everything forms, as ES users type them, find all ten.
    for q in ["*", "*:*", "*%20AND%20service:web"] {
        let (status, v) = call(&st, get(&format!("/api/v1/search?q={q}"))).await;
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        let want = if q.contains("web") { 5 } else { 10 };
        assert_eq!(v["total"], want, "{q}: {v}");
    }
    let (status, v) = call(&st, get("/healthz")).await;
    assert_eq!(
        (status, v),
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
}

fn post_to(uri: &str, body: &[u8], key: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri);
    if let Some(key) = key {
        b = b.header("idempotency-key", key);
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

#[tokio::test]
async fn partial_ingest_keeps_the_good_lines_and_lists_the_bad() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let body = b"{\"message\":\"kept one\"}\n{\"message\":\"oops\"\n{\"message\":\"kept two\"}\n";
    let (status, v) = call(
        &st,
        post_to("/api/v1/ingest?partial=true&refresh=true", body, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    assert_eq!(v["rejected"][0]["line"], 2, "{v}");
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("the line ends before its JSON does"),
        "{v}"
    );
    let (_, v) = call(&st, get("/api/v1/search?q=kept")).await;
    assert_eq!(v["total"], 2, "{v}");
    // Without partial the same body is refused whole.
    let (status, _) = call(&st, post_to("/api/v1/ingest", body, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_resend_with_its_idempotency_key_is_a_duplicate_even_without_times() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let body = b"{\"message\":\"resent line\"}\n{\"message\":\"resent line\"}\n";
    let uri = "/api/v1/ingest?refresh=true";
    let (_, first) = call(&st, post_to(uri, body, Some("k-1"))).await;
    assert_eq!(first["accepted"], 2, "{first}");
    // A second later, as a retry comes: the arrival time differs, the key does not.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, again) = call(&st, post_to(uri, body, Some("k-1"))).await;
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(again["duplicates"], 2, "{again}");
    let (_, other) = call(&st, post_to(uri, body, Some("k-2"))).await;
    assert_eq!(
        other["accepted"], 2,
        "another key is another batch: {other}"
    );
    let (_, v) = call(&st, get("/api/v1/search?q=%22resent%20line%22")).await;
    assert_eq!(v["total"], 4, "{v}");
    for bad in ["", "has space", &"k".repeat(300)] {
        let (status, v) = call(&st, post_to(uri, body, Some(bad))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(v["error"]["code"], "bad_idempotency_key", "{v}");
    }
}

#[tokio::test]
async fn bad_ingest_bodies_are_refused_whole_with_the_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = state(dir.path());
    st.limits.max_body_bytes = 4096;
    let (status, v) = call(
        &st,
        post(b"\x28\xb5\x2f\xfdnot really zstd".to_vec(), Some("zstd")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_batch");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("zstd"),
        "{v}"
    );

    let (status, v) = call(
        &st,
        post(
            b"{\"message\":\"good\"}\n{\"message\":\"bad\",}\n".to_vec(),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["line"], 2, "{v}");
    assert_eq!(
        v["error"]["message"],
        "line 2: not valid JSON at column 18: a comma before a closing bracket",
        "the line, where, and what in words: {v}"
    );
    let (status, v) = call(&st, post(b"{\"message\":\"x\",\"user\":1}".to_vec(), None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("line 1: unknown field `user`") && message.contains("`fields`"),
        "{v}"
    );

    let big = vec![b' '; 10_000];
    let (status, v) = call(&st, post(big, None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["code"], "body_too_large", "{v}");

    let (status, v) = call(&st, post(b"{}".to_vec(), Some("br"))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");

    // Nothing of the refused batches was stored, and the server still answers.
    let (status, v) = call(&st, get("/api/v1/search")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["total"], 0, "{v}");
}

#[tokio::test]
async fn bad_search_parameters_say_where_and_what() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let (status, v) = call(&st, get("/api/v1/search?q=service%3A")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_query");
    assert_eq!(v["error"]["position"], 8);
    let (_, v) = call(&st, get("/api/v1/search?since=yesterday")).await;
    assert_eq!(v["error"]["code"], "bad_time", "{v}");
    let (_, v) = call(&st, get("/api/v1/search?limit=0")).await;
    assert_eq!(v["error"]["code"], "bad_limit");
    let (_, v) = call(&st, get("/api/v1/search?limit=abc")).await;
    assert_eq!(v["error"]["code"], "bad_parameters");
    let (_, v) = call(&st, get("/api/v1/search?cursor=zz")).await;
    assert_eq!(v["error"]["code"], "bad_cursor");
    let (status, v) = call(&st, get("/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn tail_streams_matching_events_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, st.clone()));

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /api/v1/tail?q=service:web HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    // Wait until the subscription exists before ingesting.
    for _ in 0..100 {
        if st.indexer.subscribers() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    st.indexer.ingest(events(4)).await.unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.matches("event: log").count() < 2 && tokio::time::Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("text/event-stream"), "{got}");
    assert_eq!(
        got.matches("event: log").count(),
        2,
        "only service:web passes the filter: {got}"
    );
    assert!(
        got.contains("hello 0 error") && got.contains("hello 2 error"),
        "{got}"
    );
    assert!(!got.contains("hello 1 error"));

    st.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown drains open tails")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_lagging_tail_subscriber_gets_a_gap_event() {
    let (tx, rx) = tokio::sync::broadcast::channel(4);
    for e in events(10) {
        tx.send(Arc::new(e)).unwrap();
    }
    drop(tx);
    let items: Vec<_> = routes::tail::events(rx, shiplog_core::query::Query::All)
        .collect()
        .await;
    // 10 sent into a buffer of 4: one gap of 6, then the last 4.
    let text: Vec<String> = items
        .iter()
        .map(|i| format!("{:?}", i.as_ref().unwrap()))
        .collect();
    assert_eq!(text.len(), 5);
    assert!(
        text[0].contains("gap") && text[0].contains(r#"{\"missed\":6}"#),
        "{}",
        text[0]
    );
    assert!(text[1].contains("hello 6 error"), "{}", text[1]);
}

#[tokio::test]
async fn tail_refuses_a_bad_filter() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let (status, v) = call(&st, get("/api/v1/tail?q=(a")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["position"], 2);
}

fn registration(container: &str, state: shiplog_core::RegistrationState, ts: Timestamp) -> Event {
    Event {
        id: EventId::for_source("n1", container, state.as_str(), ts, 0),
        ts,
        kind: shiplog_core::Kind::Registration,
        node: "n1".into(),
        container_id: format!("{container}-id"),
        container_name: container.into(),
        image: "shop/web:1".into(),
        service: "web".into(),
        state: Some(state),
        ports: vec![shiplog_core::Port {
            private: 8080,
            public: Some(32768),
            proto: "tcp".into(),
            host_ip: Some("127.0.0.1".into()),
        }],
        tags: vec!["a".into(), "b".into()],
        ..Event::default()
    }
}

/// Polls `uri` until `check` holds on its JSON (10 s at most).
async fn poll(st: &AppState, uri: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = call(st, get(uri)).await;
        if check(&v) || std::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn services_show_the_catalog_in_the_contract_shape() {
    use shiplog_core::RegistrationState as S;
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let t0 = Timestamp::now();
    st.indexer
        .ingest(vec![
            registration("web-1", S::Started, t0),
            registration("web-2", S::Started, t0.offset(1)),
        ])
        .await
        .unwrap();
    let v = poll(&st, "/api/v1/services", |v| {
        v["services"][0]["instances"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{v}");
    assert_eq!(services[0]["name"], "web");
    let instance = &services[0]["instances"][0];
    for key in [
        "container_id",
        "container_name",
        "node",
        "image",
        "state",
        "health",
        "ports",
        "since",
    ] {
        assert!(instance.get(key).is_some(), "{key} missing: {instance}");
    }
    assert_eq!(instance["container_name"], "web-1");
    assert_eq!(instance["state"], "started");
    assert_eq!(instance["health"], Value::Null);
    assert_eq!(instance["ports"][0]["public"], 32768);
    assert_eq!(instance["since"], t0.to_rfc3339());
    assert_eq!(instance["tags"], serde_json::json!(["a", "b"]));

    let mut died = registration("web-1", S::Died, t0.offset(10));
    died.exit_code = Some(3);
    st.indexer.ingest(vec![died]).await.unwrap();
    let v = poll(&st, "/api/v1/services/web", |v| {
        v["instances"][0]["state"] == "died"
    })
    .await;
    assert_eq!(v["name"], "web");
    assert_eq!(v["instances"][0]["state"], "died", "{v}");
    assert_eq!(v["history"][0]["state"], "died");
    assert_eq!(v["history"][0]["exit_code"], 3);
    assert_eq!(v["history"][0]["container_name"], "web-1");
    assert_eq!(v["history"].as_array().unwrap().len(), 3);

    let (status, v) = call(&st, get("/api/v1/services/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_service");
}

#[tokio::test]
async fn a_restarted_node_rebuilds_the_catalog_from_the_index() {
    use shiplog_core::RegistrationState as S;
    let dir = tempfile::tempdir().unwrap();
    let t0 = Timestamp::now().offset(-60_000_000_000);
    {
        let ix = Indexer::open(IndexerConfig {
            data_dir: dir.path().to_path_buf(),
            writer_threads: 1,
            writer_memory_bytes: 64 * 1024 * 1024,
            ..IndexerConfig::default()
        })
        .unwrap();
        ix.ingest(vec![
            registration("web-1", S::Started, t0),
            registration("web-1", S::Healthy, t0.offset(5)),
        ])
        .await
        .unwrap();
        ix.flush().unwrap();
        ix.close();
    }
    let st = state(dir.path());
    let v = poll(&st, "/api/v1/services", |v| {
        v["services"][0]["instances"][0]["health"] == "healthy"
    })
    .await;
    assert_eq!(v["services"][0]["instances"][0]["health"], "healthy", "{v}");
    assert_eq!(v["services"][0]["instances"][0]["state"], "started");
}

#[tokio::test]
async fn metrics_are_bucketed_into_series() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let base = Timestamp::now().offset(-120_000_000_000);
    let sample = |container: &str, name: &str, i: i64, value: f64| {
        let ts = base.offset(i * 1_000_000_000);
        let mut fields = serde_json::Map::new();
        fields.insert("metric".into(), Value::String(name.into()));
        Event {
            id: EventId::for_source("n1", container, name, ts, 0),
            ts,
            kind: shiplog_core::Kind::Metric,
            node: "n1".into(),
            container_id: format!("{container}-id"),
            container_name: container.into(),
            service: "web".into(),
            name: Some(name.into()),
            value: Some(value),
            unit: Some("percent".into()),
            fields,
            ..Event::default()
        }
    };
    let mut batch = Vec::new();
    for i in 0..20 {
        batch.push(sample("web-1", "cpu_percent", i, i as f64));
        batch.push(sample("web-1", "mem_bytes", i, 100.0));
        batch.push(sample("web-2", "cpu_percent", i, 50.0));
    }
    st.indexer.ingest(batch).await.unwrap();
    st.indexer.flush().unwrap();
    let since = base.to_rfc3339();
    let until = base.offset(20_000_000_000).to_rfc3339();
    let uri = format!(
        "/api/v1/metrics?container=web-1&name=cpu_percent&step=10s&since={since}&until={until}"
    );
    let (status, v) = call(&st, get(&uri)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{v}");
    let s = &series[0];
    assert_eq!(s["container_name"], "web-1");
    assert_eq!(s["container_id"], "web-1-id");
    assert_eq!(s["service"], "web");
    assert_eq!(s["name"], "cpu_percent");
    assert_eq!(s["unit"], "percent");
    // Two buckets of ten samples: averages of 0..9 and 10..19.
    assert_eq!(
        s["points"],
        serde_json::json!([
            [base.to_rfc3339(), 4.5],
            [base.offset(10_000_000_000).to_rfc3339(), 14.5]
        ])
    );
    assert_eq!(v["samples"], 20);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["step_ms"], 10_000);

    let uri = format!("/api/v1/metrics?service=web&since={since}&until={until}");
    let (_, v) = call(&st, get(&uri)).await;
    assert_eq!(v["series"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["samples"], 60);

    let (status, v) = call(&st, get("/api/v1/metrics?step=0s")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_step");
    let (status, v) = call(&st, get("/api/v1/metrics?since=1h&step=1ms")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, _) = call(&st, get("/api/v1/metrics?bogus=1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Reads from a socket until `done` holds for what arrived, or fails after 10 s.
async fn read_until(stream: &mut tokio::net::TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&got) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("timed out reading the tail")
            .unwrap();
        assert!(
            n > 0,
            "the server closed the stream: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

async fn serve_for_test(st: &AppState) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, st.clone()));
    addr
}

#[tokio::test]
async fn tail_since_sends_the_stored_window_oldest_first_then_live_events_once() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let stored = events(3);
    st.indexer.ingest(stored.clone()).await.unwrap();
    st.indexer.flush().unwrap();
    let addr = serve_for_test(&st).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /api/v1/tail?since=15m HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let got = read_until(&mut stream, |b| {
        String::from_utf8_lossy(b).matches("event: log").count() >= 3
    })
    .await;
    let text = String::from_utf8_lossy(&got).to_string();
    let order: Vec<usize> = ["hello 0 error", "hello 1 error", "hello 2 error"]
        .iter()
        .map(|m| text.find(m).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {text}"
    );
    // A live event arrives after the backlog; a retried backlog event is not sent again.
    let mut fresh = Event::log(Timestamp::now(), "live one");
    fresh.id = EventId(999);
    st.indexer.ingest(vec![fresh]).await.unwrap();
    let got = read_until(&mut stream, |b| {
        String::from_utf8_lossy(b).contains("live one")
    })
    .await;
    assert!(
        !String::from_utf8_lossy(&got).contains("hello 0 error"),
        "no repeat of the backlog"
    );
    let (status, v) = call(&st, get("/api/v1/tail?since=15m&backlog=20000")).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_backlog"))
    );
    st.shutdown.cancel();
}

#[tokio::test]
async fn tail_over_a_websocket_sends_json_messages() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let addr = serve_for_test(&st).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /api/v1/tail?q=service:web HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_until(&mut stream, |b| b.windows(4).any(|w| w == b"\r\n\r\n")).await;
    let head_text = String::from_utf8_lossy(&head).to_string();
    assert!(head_text.starts_with("HTTP/1.1 101"), "{head_text}");
    assert!(
        head_text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the accept key of RFC 6455's example: {head_text}"
    );
    let after_head = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut frames = head[after_head..].to_vec();
    for _ in 0..100 {
        if st.indexer.subscribers() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    st.indexer.ingest(events(2)).await.unwrap();
    // One unmasked text frame: 0x81, a length, the payload (service:web passes event 0 only).
    let rest = read_until(&mut stream, |b| {
        let all = [frames.as_slice(), b].concat();
        all.len() >= 4 && {
            let (len, start) = match all[1] {
                126 => (usize::from(u16::from_be_bytes([all[2], all[3]])), 4),
                n => (usize::from(n), 2),
            };
            all.len() >= start + len
        }
    })
    .await;
    frames.extend_from_slice(&rest);
    assert_eq!(frames[0], 0x81, "a final text frame");
    let (len, start) = match frames[1] {
        126 => (usize::from(u16::from_be_bytes([frames[2], frames[3]])), 4),
        n => (usize::from(n), 2),
    };
    let msg: Value = serde_json::from_slice(&frames[start..start + len]).unwrap();
    assert_eq!(msg["type"], "log");
    assert_eq!(msg["event"]["message"], "hello 0 error");
    st.shutdown.cancel();
}

#[tokio::test]
async fn search_returns_only_the_requested_keys() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let mut e = events(1).remove(0);
    e.fields = serde_json::from_str(r#"{"user":"ann","plan":"pro"}"#).unwrap();
    st.indexer.ingest(vec![e]).await.unwrap();
    st.indexer.flush().unwrap();
    let (status, v) = call(&st, get("/api/v1/search?fields=ts,message,fields.user")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let hit = v["hits"][0].as_object().unwrap();
    let mut keys: Vec<_> = hit.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["fields", "message", "ts"]);
    assert_eq!(hit["fields"], serde_json::json!({"user": "ann"}));
    let (status, v) = call(&st, get("/api/v1/search?fields=ts,colour")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_fields");
    assert!(v["error"]["message"].as_str().unwrap().contains("colour"));
}

/// One CPU sample of container `web-1`, `i` seconds after `base`.
fn metric_sample(base: Timestamp, i: i64) -> Event {
    let ts = base.offset(i * 1_000_000_000);
    Event {
        id: EventId::for_source("n1", "web-1", "cpu_percent", ts, 0),
        ts,
        kind: shiplog_core::Kind::Metric,
        node: "n1".into(),
        container_id: "web-1-id".into(),
        container_name: "web-1".into(),
        service: "web".into(),
        name: Some("cpu_percent".into()),
        value: Some(i as f64),
        unit: Some("percent".into()),
        ..Event::default()
    }
}

fn kinds(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits: {v}"))
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_blank_search_leaves_out_metric_samples_and_star_finds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let base = Timestamp::now().offset(-60_000_000_000);
    let mut batch = events(3);
    batch.push(registration(
        "web-1",
        shiplog_core::RegistrationState::Started,
        base,
    ));
    batch.extend((0..7).map(|i| metric_sample(base, i)));
    st.indexer.ingest(batch).await.unwrap();
    st.indexer.flush().unwrap();

    for uri in [
        "/api/v1/search?since=15m",
        "/api/v1/search?since=15m&q=",
        "/api/v1/search?since=15m&q=%20%20",
    ] {
        let (status, v) = call(&st, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {v}");
        assert_eq!(v["total"], 4, "{uri}: three logs and a registration: {v}");
        let mut got = kinds(&v);
        got.sort();
        assert_eq!(got, ["log", "log", "log", "registration"], "{uri}");
    }
    let (status, v) = call(
        &st,
        post_to("/api/v1/search", br#"{"q": "", "since": "15m"}"#, None),
    )
    .await;
    assert_eq!(
        (status, &v["total"]),
        (StatusCode::OK, &Value::from(4)),
        "{v}"
    );

    // The default pages like any query: the total stays 4 and no page holds a sample.
    let (_, first) = call(&st, get("/api/v1/search?since=15m&limit=3")).await;
    assert_eq!(first["total"], 4, "{first}");
    assert_eq!(kinds(&first).len(), 3);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let (_, second) = call(
        &st,
        get(&format!("/api/v1/search?since=15m&limit=3&cursor={cursor}")),
    )
    .await;
    assert_eq!(kinds(&second), ["registration"], "{second}");

    let (_, v) = call(&st, get("/api/v1/search?since=15m&q=kind:metric")).await;
    assert_eq!(v["total"], 7, "{v}");
    assert!(kinds(&v).iter().all(|k| k == "metric"), "{v}");
    for q in ["*", "*:*"] {
        let (_, v) = call(&st, get(&format!("/api/v1/search?since=15m&q={q}"))).await;
        assert_eq!(v["total"], 11, "{q}: {v}");
    }
    let (_, v) = call(&st, get("/api/v1/search?since=15m&q=error")).await;
    assert_eq!(v["total"], 3, "a typed query is unchanged: {v}");
}

#[tokio::test]
async fn a_blank_tail_leaves_out_metric_samples_stored_and_live() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let base = Timestamp::now().offset(-60_000_000_000);
    let mut stored: Vec<Event> = (0..3).map(|i| metric_sample(base, i)).collect();
    let mut old = Event::log(base.offset(5_000_000_000), "stored line");
    old.id = EventId(501);
    stored.push(old);
    st.indexer.ingest(stored).await.unwrap();
    st.indexer.flush().unwrap();
    let addr = serve_for_test(&st).await;

    let mut blank = tokio::net::TcpStream::connect(addr).await.unwrap();
    blank
        .write_all(
            b"GET /api/v1/tail?q=&since=15m HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let got = read_until(&mut blank, |b| {
        String::from_utf8_lossy(b).contains("stored line")
    })
    .await;
    assert!(
        !String::from_utf8_lossy(&got).contains("\"metric\""),
        "no stored sample in the backlog: {}",
        String::from_utf8_lossy(&got)
    );
    // Live: samples sent ahead of a line in the same batch would arrive before it.
    let mut live: Vec<Event> = (10..14).map(|i| metric_sample(base, i)).collect();
    let mut line = Event::log(Timestamp::now(), "live line");
    line.id = EventId(502);
    live.push(line);
    st.indexer.ingest(live).await.unwrap();
    let got = read_until(&mut blank, |b| {
        String::from_utf8_lossy(b).contains("live line")
    })
    .await;
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(!text.contains("\"metric\""), "no live sample: {text}");

    // Asked for, the samples come.
    st.indexer.flush().unwrap();
    let mut metrics = tokio::net::TcpStream::connect(addr).await.unwrap();
    metrics
        .write_all(
            b"GET /api/v1/tail?q=kind:metric&since=15m HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let got = read_until(&mut metrics, |b| {
        String::from_utf8_lossy(b).matches("event: log").count() >= 7
    })
    .await;
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(
        !text.contains("live line") && !text.contains("stored line"),
        "{text}"
    );
    st.shutdown.cancel();
}
