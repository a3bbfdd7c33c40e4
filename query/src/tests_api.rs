//! Tests of aggregations, auth, limits, `/metrics` and TLS through the real router over a
//! real indexer on disk. Aggregation results are checked against the in-memory matcher
//! (`Query::matches`) over Loghub lines spread across two UTC days.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use shiplog_core::query::parse;
use shiplog_core::{Event, EventId, Level, Timestamp};
use shiplog_indexer::{Indexer, IndexerConfig};
use tower::ServiceExt;

use crate::auth::{ApiToken, Auth, Role, TokenSecret};
use crate::{AppState, router, router_with};

const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// 2026-11-19T00:00:00Z.
const BASE: i64 = 1_795_046_400 * 1_000_000_000;
/// Spacing of the corpus events: 12 000 events over about 33 hours, across two days.
const STEP_NS: i64 = 10 * 1_000_000_000;

pub(crate) fn indexer(dir: &std::path::Path) -> Arc<Indexer> {
    Arc::new(
        Indexer::open(IndexerConfig {
            data_dir: dir.to_path_buf(),
            writer_memory_bytes: 64 * 1024 * 1024,
            writer_threads: 1,
            commit_interval: Duration::from_millis(200),
            min_commit_interval: Duration::from_millis(10),
            ..IndexerConfig::default()
        })
        .unwrap(),
    )
}

pub(crate) fn loghub() -> Vec<Event> {
    let mut out = Vec::new();
    for system in [
        "Apache",
        "HDFS",
        "Hadoop",
        "OpenStack",
        "Spark",
        "Zookeeper",
    ] {
        let path = format!(
            "{}/../../shared/data/loghub/{system}/{system}_2k.log",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        for line in text.lines() {
            let i = out.len() as i64;
            let mut e = Event::log(
                Timestamp(BASE + 12 * 3600 * 1_000_000_000 + i * STEP_NS),
                line.trim_end_matches('\r'),
            );
            e.service = system.to_lowercase();
            e.node = format!("node-{}", i % 3);
            e.level = Level::sniff(line);
            e.id = EventId(i as u128 + 1);
            if i % 5 != 0 {
                e.fields.insert("latency_ms".into(), json!((i * 37) % 1000));
            }
            if i % 7 == 0 {
                e.fields
                    .insert("latency_ms".into(), json!(format!("{}", i)));
            }
            out.push(e);
        }
    }
    out
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) async fn load(ix: &Indexer, events: &[Event]) {
    for chunk in events.chunks(2000) {
        ix.ingest(chunk.to_vec()).await.unwrap();
    }
    tokio::task::block_in_place(|| ix.flush().unwrap());
}

pub(crate) async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

async fn post_json(app: &axum::Router, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = call(app, req).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub(crate) fn window() -> (String, String) {
    (
        Timestamp(BASE).to_rfc3339(),
        Timestamp(BASE + 2 * DAY_NS - 1).to_rfc3339(),
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

#[test]
fn aggregations_agree_with_the_in_memory_matcher_over_two_days() {
    let dir = tempfile::tempdir().unwrap();
    let ix = indexer(dir.path());
    let corpus = loghub();
    assert!(corpus.first().unwrap().ts.day_string() != corpus.last().unwrap().ts.day_string());
    let rt = rt();
    rt.block_on(load(&ix, &corpus));
    let app = router(AppState::new(ix.clone()));
    let (since, until) = window();
    for q in [
        "",
        "error",
        "service:hdfs",
        "block* OR level:warn",
        "NOT level:info",
    ] {
        let query = parse(q).unwrap();
        let matching: Vec<&Event> = corpus.iter().filter(|e| query.matches(e)).collect();
        let body = json!({"q": q, "since": since, "until": until, "aggs": {
            "n": {"count": {}},
            "r": {"rate": {}},
            "h": {"date_histogram": {"interval": "1h"}},
            "auto": {"date_histogram": {}},
            "top": {"terms": {"field": "service", "size": 3}},
            "lat_terms": {"terms": {"field": "fields.latency_ms", "size": 5}},
            "err": {"error_ratio": {"by": "service"}},
            "all_err": {"error_ratio": {}},
            "lat": {"percentiles": {"field": "fields.latency_ms", "percents": [50, 90, 99]}},
        }});
        let (status, v) = rt.block_on(post_json(&app, "/api/v1/aggregate", body));
        assert_eq!(status, StatusCode::OK, "{q}: {v}");
        let aggs = &v["aggs"];
        let n = matching.len() as u64;
        assert_eq!(aggs["n"]["value"], n, "{q}");
        let secs = (2 * DAY_NS - 1) as f64 / 1e9;
        assert!((aggs["r"]["value"].as_f64().unwrap() - n as f64 / secs).abs() < 1e-9);

        // Histogram: 48 hourly buckets, each the exact in-memory count.
        let buckets = aggs["h"]["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 48, "{q}");
        let mut hourly = vec![0u64; 48];
        for e in &matching {
            hourly[((e.ts.as_nanos() - BASE) / (3600 * 1_000_000_000)) as usize] += 1;
        }
        let got: Vec<u64> = buckets
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .collect();
        assert_eq!(got, hourly, "{q}");
        assert_eq!(buckets[0]["ts"], Timestamp(BASE).to_rfc3339());
        let auto = aggs["auto"]["buckets"].as_array().unwrap();
        assert!(auto.len() <= 201, "{}", auto.len());
        let auto_sum: u64 = auto.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(auto_sum, n);

        // Terms: top 3 services and the rest in `other`.
        let mut per_service: HashMap<&str, u64> = HashMap::new();
        for e in &matching {
            *per_service.entry(e.service.as_str()).or_default() += 1;
        }
        let mut expected: Vec<(&str, u64)> = per_service.clone().into_iter().collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top: Vec<(String, u64)> = aggs["top"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["key"].as_str().unwrap().to_string(),
                    b["count"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64)> = expected
            .iter()
            .take(3)
            .map(|(k, c)| (k.to_string(), *c))
            .collect();
        assert_eq!(top, want, "{q}");
        let rest: u64 = expected.iter().skip(3).map(|x| x.1).sum();
        assert_eq!(aggs["top"]["other"], rest, "{q}");
        assert_eq!(aggs["top"]["exact"], true);

        // Terms of a path inside `fields`: numbers and strings counted by their text.
        let mut per_value: HashMap<String, u64> = HashMap::new();
        let mut without = 0u64;
        for e in &matching {
            match e.fields.get("latency_ms") {
                Some(Value::String(s)) => *per_value.entry(s.clone()).or_default() += 1,
                Some(v) => *per_value.entry(v.to_string()).or_default() += 1,
                None => without += 1,
            }
        }
        let mut expected: Vec<(String, u64)> = per_value.into_iter().collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let got: Vec<(String, u64)> = aggs["lat_terms"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["key"].as_str().unwrap().to_string(),
                    b["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, expected[..expected.len().min(5)].to_vec(), "{q}");
        let rest: u64 = expected.iter().skip(5).map(|x| x.1).sum();
        assert_eq!(aggs["lat_terms"]["other"], rest, "{q}");
        assert_eq!(aggs["lat_terms"]["missing"], without, "{q}");
        assert_eq!(aggs["lat_terms"]["field"], "fields.latency_ms");

        // Error ratio per service.
        let is_err = |e: &&&Event| matches!(e.level, Some(Level::Error) | Some(Level::Fatal));
        let errors = matching.iter().filter(is_err).count() as u64;
        assert_eq!(aggs["all_err"]["errors"], errors, "{q}");
        assert_eq!(aggs["all_err"]["total"], n, "{q}");
        for g in aggs["err"]["groups"].as_array().unwrap() {
            let key = g["key"].as_str().unwrap();
            let e = matching
                .iter()
                .filter(|e| e.service == key)
                .filter(is_err)
                .count() as u64;
            assert_eq!(g["errors"], e, "{q} {key}");
            assert_eq!(g["total"], per_service[key], "{q} {key}");
        }
        assert_eq!(
            aggs["err"]["groups"].as_array().unwrap().len(),
            per_service.len()
        );

        // Percentiles over numbers only (string values are skipped).
        let mut values: Vec<f64> = matching
            .iter()
            .filter_map(|e| e.fields.get("latency_ms").and_then(Value::as_f64))
            .collect();
        values.sort_by(f64::total_cmp);
        assert_eq!(aggs["lat"]["count"], values.len() as u64, "{q}");
        assert_eq!(aggs["lat"]["sampled"], false);
        if !values.is_empty() {
            for p in [50.0, 90.0, 99.0] {
                let got = aggs["lat"]["values"][format!("p{p}")].as_f64().unwrap();
                assert!((got - percentile(&values, p)).abs() < 1e-9, "{q} p{p}");
            }
        }
    }
    // A custom numerator for the error ratio.
    let body = json!({"since": since, "until": until, "aggs": {
        "e": {"error_ratio": {"by": "node", "match": "block*"}}}});
    let (status, v) = rt.block_on(post_json(&app, "/api/v1/aggregate", body));
    assert_eq!(status, StatusCode::OK, "{v}");
    let num = parse("block*").unwrap();
    let expected = corpus.iter().filter(|e| num.matches(e)).count() as u64;
    assert_eq!(v["aggs"]["e"]["errors"], expected);
    assert_eq!(v["aggs"]["e"]["groups"].as_array().unwrap().len(), 3);
    ix.close();
}

#[test]
fn bad_aggregation_specs_are_400_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let app = router(AppState::new(ix.clone()));
    let cases = [
        (
            json!({"aggs": {"x": {"terms": {"field": "colour"}}}}),
            "aggs.x.terms.field",
        ),
        (
            json!({"aggs": {"x": {"terms": {"field": "service", "size": 0}}}}),
            "aggs.x.terms.size",
        ),
        (
            json!({"aggs": {"x": {"terms": {"field": "fields."}}}}),
            "aggs.x.terms.field",
        ),
        (json!({"aggs": {"x": {"terms": {}}}}), "aggs.x.terms.field"),
        (json!({"aggs": {"x": {"median": {}}}}), "aggs.x.median"),
        (json!({"aggs": {"x": {"count": {}, "rate": {}}}}), "aggs.x"),
        (
            json!({"aggs": {"x": {"count": {"foo": 1}}}}),
            "aggs.x.count.foo",
        ),
        (
            json!({"since": "30d", "aggs": {"x": {"date_histogram": {"interval": "1s"}}}}),
            "aggs.x.date_histogram.interval",
        ),
        (
            json!({"aggs": {"x": {"date_histogram": {"interval": "soon"}}}}),
            "aggs.x.date_histogram.interval",
        ),
        (
            json!({"aggs": {"x": {"percentiles": {"field": "latency"}}}}),
            "aggs.x.percentiles.field",
        ),
        (
            json!({"aggs": {"x": {"percentiles": {"field": "fields.a", "percents": [101]}}}}),
            "aggs.x.percentiles.percents",
        ),
        (
            json!({"aggs": {"x": {"error_ratio": {"match": "a AND ("}}}}),
            "aggs.x.error_ratio.match",
        ),
        (json!({"aggs": {}}), "aggs"),
        (
            json!({"aggs": {"x": {"count": {}}}, "limit": 3}),
            "unknown key 'limit'",
        ),
    ];
    for (body, key) in cases {
        let (status, v) = rt.block_on(post_json(&app, "/api/v1/aggregate", body.clone()));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(key) || msg.contains(key), "{body}: {msg}");
        assert!(!msg.ends_with('.'), "{msg}");
    }
    let (status, v) = rt.block_on(post_json(
        &app,
        "/api/v1/aggregate",
        json!({"q": "a AND (", "aggs": {"n": {"count": {}}}}),
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_query");
    ix.close();
}

#[test]
fn percentiles_past_the_sample_cap_read_an_even_sample_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let corpus = loghub();
    rt.block_on(load(&ix, &corpus));
    let app = router(AppState::new(ix.clone()));
    let (since, until) = window();
    let body = json!({"since": since, "until": until, "aggs": {
        "p": {"percentiles": {"field": "fields.latency_ms", "sample": 1000}}}});
    let (status, v) = rt.block_on(post_json(&app, "/api/v1/aggregate", body));
    assert_eq!(status, StatusCode::OK, "{v}");
    let p = &v["aggs"]["p"];
    assert_eq!(p["sampled"], true);
    assert_eq!(p["matched"], corpus.len() as u64);
    // 12 000 matches at a stride of 12; 4/5 × 6/7 of the events carry a number.
    let count = p["count"].as_u64().unwrap();
    assert!((600..=1000).contains(&count), "{count}");
    let p50 = p["values"]["p50"].as_f64().unwrap();
    assert!((400.0..600.0).contains(&p50), "{p50}");
    ix.close();
}

const INGEST_TOKEN: &str = "ingest-token-0123456789";
const READ_TOKEN: &str = "read-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-0123456789";

fn auth() -> Auth {
    let t = |name: &str, token: &str, roles: Vec<Role>| ApiToken {
        name: name.into(),
        secret: TokenSecret::Plain(token.into()),
        roles,
    };
    Auth::new(&[
        t("ci", INGEST_TOKEN, vec![Role::Ingest]),
        t("viewer", READ_TOKEN, vec![Role::Read]),
        t("root", ADMIN_TOKEN, vec![Role::Admin]),
    ])
    .unwrap()
}

#[test]
fn auth_matrix_of_route_classes_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let app = router_with(AppState::new(ix.clone()), auth());
    let line = serde_json::to_string(&Event::log(Timestamp::now(), "hello")).unwrap();
    // (method, path, body, role needed)
    let routes: Vec<(&str, &str, String, Option<&str>)> = vec![
        ("POST", "/api/v1/ingest", line.clone(), Some("ingest")),
        (
            "POST",
            "/_bulk",
            "{\"index\":{}}\n{\"message\":\"x\"}\n".into(),
            Some("ingest"),
        ),
        (
            "POST",
            "/loki/api/v1/push",
            "{\"streams\":[]}".into(),
            Some("ingest"),
        ),
        ("GET", "/api/v1/search?q=hello", String::new(), Some("read")),
        (
            "POST",
            "/api/v1/aggregate",
            "{\"aggs\":{\"n\":{\"count\":{}}}}".into(),
            Some("read"),
        ),
        ("GET", "/api/v1/services", String::new(), Some("read")),
        // Rates, error ratios and latencies per model are prediction data: audit only.
        (
            "GET",
            "/api/v1/predictions/summary",
            String::new(),
            Some("audit"),
        ),
        (
            "POST",
            "/api/v1/retention?dry_run=false",
            String::new(),
            Some("admin"),
        ),
        ("GET", "/healthz", String::new(), None),
        ("GET", "/metrics", String::new(), None),
    ];
    let tokens = [
        ("missing", None),
        ("wrong", Some("Bearer not-a-configured-token-at-all")),
        ("ingest", Some(INGEST_TOKEN)),
        ("read", Some(READ_TOKEN)),
        ("admin", Some(ADMIN_TOKEN)),
    ];
    for (method, path, body, needs) in &routes {
        for (who, token) in &tokens {
            let mut req = Request::builder().method(*method).uri(*path);
            if let Some(t) = token {
                let value = if t.starts_with("Bearer") {
                    t.to_string()
                } else {
                    format!("Bearer {t}")
                };
                req = req.header(header::AUTHORIZATION, value);
            }
            let req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let (status, headers, resp) = rt.block_on(call(&app, req));
            let v: Value = serde_json::from_slice(&resp).unwrap_or(Value::Null);
            let expect_ok = match (needs, *who) {
                (None, _) => true,
                (Some(_), "missing" | "wrong") => false,
                (Some(_), "admin") => true,
                (Some(role), who) => *role == who,
            };
            if expect_ok {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} as {who}: {status} {v}"
                );
                continue;
            }
            match *who {
                "missing" => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                    assert_eq!(
                        v["error"]["message"],
                        "missing token: send Authorization: Bearer <token>"
                    );
                    assert!(headers.contains_key(header::WWW_AUTHENTICATE));
                }
                "wrong" => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                    assert_eq!(v["error"]["code"], "unauthorized");
                }
                _ => {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{method} {path} as {who}: {v}"
                    );
                    let name = if *who == "ingest" { "ci" } else { "viewer" };
                    let msg = v["error"]["message"].as_str().unwrap();
                    assert!(
                        msg.starts_with(&format!("token '{name}' lacks role '{}'", needs.unwrap())),
                        "{msg}"
                    );
                }
            }
        }
    }
    // Elasticsearch clients: the token as the password of Basic auth.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("elastic:{READ_TOKEN}"));
    let req = Request::get("/api/v1/search")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(rt.block_on(call(&app, req)).0, StatusCode::OK);
    // A dry run of retention only reads.
    let req = Request::post("/api/v1/retention")
        .header(header::AUTHORIZATION, format!("Bearer {READ_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(rt.block_on(call(&app, req)).0, StatusCode::OK);
    // Unknown routes need a token too (no route discovery without one), then 404.
    let req = Request::get("/nope").body(Body::empty()).unwrap();
    assert_eq!(rt.block_on(call(&app, req)).0, StatusCode::UNAUTHORIZED);
    let req = Request::get("/nope")
        .header(header::AUTHORIZATION, format!("Bearer {READ_TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(rt.block_on(call(&app, req)).0, StatusCode::NOT_FOUND);
    // /metrics behind a token when configured.
    let app = router_with(AppState::new(ix.clone()), auth().with_metrics_token(true));
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    assert_eq!(rt.block_on(call(&app, req)).0, StatusCode::UNAUTHORIZED);
    ix.close();
}

#[test]
fn query_timeout_answers_503_without_waiting_for_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let mut quick = AppState::new(ix.clone());
    quick.limits.query_timeout = Duration::from_millis(50);
    rt.block_on(async {
        let started = std::time::Instant::now();
        let res = crate::limits::run_blocking(&quick, "search", || {
            std::thread::sleep(Duration::from_millis(600));
            Ok(())
        })
        .await;
        let e = res.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "query_timeout");
        assert_eq!(e.retry_after, Some(5));
    });
    // Through the routes: reading 10 000 hits, or the numbers of 12 000 stored events,
    // takes far longer than a millisecond.
    rt.block_on(load(&ix, &loghub()));
    let mut state = AppState::new(ix.clone());
    state.limits.query_timeout = Duration::from_millis(1);
    let app = router(state);
    let (since, until) = window();
    let req = Request::get(format!(
        "/api/v1/search?limit=10000&since={since}&until={until}"
    ))
    .body(Body::empty())
    .unwrap();
    let (status, headers, body) = rt.block_on(call(&app, req));
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    let body = json!({"since": since, "until": until, "aggs": {
        "p": {"percentiles": {"field": "fields.latency_ms"}}}});
    let (status, v) = rt.block_on(post_json(&app, "/api/v1/aggregate", body));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "query_timeout");
    ix.close();
}

#[test]
fn requests_past_the_concurrency_limit_get_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let mut state = AppState::new(ix.clone());
    state.limits.max_concurrent_requests = 1;
    state.limits.query_timeout = Duration::from_secs(5);
    let app = router(state);
    rt.block_on(async {
        // Hold the one slot with an ingest whose body never finishes arriving.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let slow = Request::post("/api/v1/ingest")
            .body(Body::from_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ))
            .unwrap();
        let held = tokio::spawn(app.clone().oneshot(slow));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        let req = Request::get("/api/v1/search").body(Body::empty()).unwrap();
        let (status, headers, body) = call(&app, req).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "overloaded");
        // Monitoring is never refused.
        let req = Request::get("/healthz").body(Body::empty()).unwrap();
        assert_eq!(call(&app, req).await.0, StatusCode::OK);
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        assert_eq!(call(&app, req).await.0, StatusCode::OK);
        drop(tx);
        held.await.unwrap().unwrap();
        let req = Request::get("/api/v1/search").body(Body::empty()).unwrap();
        assert_eq!(call(&app, req).await.0, StatusCode::OK);
    });
    ix.close();
}

#[test]
fn tail_subscribers_past_the_limit_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let mut state = AppState::new(ix.clone());
    state.limits.max_tail_subscribers = 2;
    let app = router(state);
    rt.block_on(async {
        let open = || Request::get("/api/v1/tail").body(Body::empty()).unwrap();
        let a = app.clone().oneshot(open()).await.unwrap();
        let b = app.clone().oneshot(open()).await.unwrap();
        assert_eq!(a.status(), StatusCode::OK);
        assert_eq!(b.status(), StatusCode::OK);
        let (status, headers, body) = call(&app, open()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key(header::RETRY_AFTER));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_subscribers");
        // Closing one frees its slot.
        drop(a);
        let c = app.clone().oneshot(open()).await.unwrap();
        assert_eq!(c.status(), StatusCode::OK);
        drop((b, c));
    });
    ix.close();
}

#[test]
fn body_and_result_limits_answer_400() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let mut state = AppState::new(ix.clone());
    state.limits.max_body_bytes = 1024;
    state.limits.max_search_limit = 50;
    let app = router(state);
    let req = Request::post("/api/v1/ingest")
        .body(Body::from(vec![b'x'; 4096]))
        .unwrap();
    let (status, _, body) = rt.block_on(call(&app, req));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8_lossy(&body).contains("body_too_large"));
    let req = Request::get("/api/v1/search?limit=51")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = rt.block_on(call(&app, req));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("bad_limit"));
    ix.close();
}

/// Checks the text exposition format: every sample belongs to a family announced by a
/// preceding `# TYPE`, counters end in `_total`, values parse as numbers.
fn check_exposition(text: &str) -> HashMap<String, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{line}");
            }
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE before: {line}");
        samples.insert(series.to_string(), value.to_string());
    }
    samples
}

#[test]
fn metrics_are_valid_prometheus_text() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let app = router(AppState::new(ix.clone()));
    let events: Vec<Event> = loghub().into_iter().take(50).collect();
    rt.block_on(load(&ix, &events));
    let req = Request::get("/api/v1/search?q=error")
        .body(Body::empty())
        .unwrap();
    assert_eq!(rt.block_on(call(&app, req)).0, StatusCode::OK);
    let req = Request::get("/api/v1/search?q=(")
        .body(Body::empty())
        .unwrap();
    assert_eq!(rt.block_on(call(&app, req)).0, StatusCode::BAD_REQUEST);
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let (status, headers, body) = rt.block_on(call(&app, req));
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(body).unwrap();
    let samples = check_exposition(&text);
    assert_eq!(
        samples["shiplog_http_requests_total{route=\"/api/v1/search\",method=\"GET\",status=\"200\"}"],
        "1",
        "{text}"
    );
    assert_eq!(
        samples["shiplog_http_requests_total{route=\"/api/v1/search\",method=\"GET\",status=\"400\"}"],
        "1"
    );
    assert_eq!(
        samples["shiplog_http_request_duration_seconds_count{route=\"/api/v1/search\"}"],
        "2"
    );
    assert_eq!(
        samples["shiplog_http_request_duration_seconds_bucket{route=\"/api/v1/search\",le=\"+Inf\"}"],
        "2"
    );
    assert_eq!(samples["shiplog_ingest_events_total"], "50");
    let day = format!(
        "shiplog_index_bytes{{day=\"{}\"}}",
        Timestamp(BASE).day_string()
    );
    assert!(samples.contains_key(&day), "{text}");
    assert!(samples.contains_key("shiplog_tail_subscribers"));
    assert!(samples.contains_key("shiplog_wal_bytes"));
    ix.close();
}

#[test]
fn metrics_of_the_rest_of_the_process_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let extra: crate::ExtraMetrics = Arc::new(|| {
        "# HELP shiplog_collector_lines_read_total Lines read.\n\
         # TYPE shiplog_collector_lines_read_total counter\n\
         shiplog_collector_lines_read_total 42\n"
            .to_string()
    });
    let app = router(AppState {
        extra_metrics: Some(extra),
        ..AppState::new(ix.clone())
    });
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let (status, _, body) = rt.block_on(call(&app, req));
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    let samples = check_exposition(&text);
    assert_eq!(
        samples["shiplog_collector_lines_read_total"], "42",
        "{text}"
    );
    assert!(samples.contains_key("shiplog_wal_bytes"), "{text}");
    ix.close();
}

#[test]
fn tls_serves_https_with_the_configured_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata");
    let cert = std::path::Path::new(testdata).join("tls-cert.pem");
    let key = std::path::Path::new(testdata).join("tls-key.pem");
    let config = crate::tls::server_config(&cert, &key).unwrap();
    assert!(
        crate::tls::server_config(&key, &key)
            .unwrap_err()
            .contains("tls_cert")
    );
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let state = AppState::new(ix.clone());
    let shutdown = state.shutdown.clone();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(crate::serve_with(
            listener,
            state,
            Auth::disabled(),
            Some(config),
        ));
        // A client that connects and never speaks does not block the next handshake.
        let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        let ca = std::path::Path::new(testdata).join("tls-ca.pem");
        for c in rustls_pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
            .await
            .unwrap()
            .unwrap();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        tls.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains("\"status\":\"ok\""), "{resp}");
        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
        shutdown.cancel();
        server.await.unwrap().unwrap();
    });
    ix.close();
}

#[test]
fn every_error_is_json_with_a_code_even_the_frameworks_own() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let app = router(AppState::new(ix.clone()));
    let json_error = |status: StatusCode, headers: &axum::http::HeaderMap, body: &[u8]| {
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{status}: {headers:?}"
        );
        let v: Value = serde_json::from_slice(body).unwrap();
        assert!(v["error"]["code"].is_string(), "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{v}");
        v
    };
    // An unsupported method: axum answers 405 with an empty body by itself.
    let req = Request::get("/api/v1/silences/x")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = rt.block_on(call(&app, req));
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let v = json_error(status, &headers, &body);
    assert_eq!(v["error"]["code"], "method_not_allowed");
    assert_eq!(
        v["error"]["message"],
        "GET is not allowed on /api/v1/silences/x: /api/v1/openapi.json lists each route's methods"
    );

    let req = Request::get("/no/such/route").body(Body::empty()).unwrap();
    let (status, headers, body) = rt.block_on(call(&app, req));
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        json_error(status, &headers, &body)["error"]["code"],
        "not_found"
    );

    // An extractor's rejection (a JSON body that is not JSON).
    let req = Request::post("/api/v1/silences")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, headers, body) = rt.block_on(call(&app, req));
    assert!(status.is_client_error(), "{status}");
    json_error(status, &headers, &body);

    // A bad fields= is refused before any search runs.
    let req = Request::get("/api/v1/search?fields=bogus")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = rt.block_on(call(&app, req));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_error(status, &headers, &body)["error"]["code"],
        "bad_fields"
    );
}

#[test]
fn a_search_runs_as_post_with_a_json_body_and_a_long_query_gets_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let events = loghub();
    rt.block_on(load(&ix, &events));
    let app = router(AppState::new(ix.clone()));
    let (since, until) = window();
    // Near the 8 KiB query limit, as a body; past it, a JSON 400 saying the limit.
    let mut q = String::from("service:hdfs AND (");
    for i in 0..560 {
        q.push_str(&format!("nomatch{i} OR "));
    }
    q.push_str("blk)");
    assert!(q.len() > 7_000 && q.len() < 8_192, "{}", q.len());
    let want = events
        .iter()
        .filter(|e| parse("service:hdfs AND blk").unwrap().matches(e))
        .count();
    let body = json!({"q": q, "since": since, "until": until, "limit": 1});
    let req = Request::post("/api/v1/search")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = rt.block_on(call(&app, req));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(want > 0);
    assert_eq!(v["total"], want, "{v}");
    let long = format!("{q} OR {}", "x".repeat(100_000));
    let req = Request::post("/api/v1/search")
        .body(Body::from(json!({ "q": long }).to_string()))
        .unwrap();
    let (status, _, body) = rt.block_on(call(&app, req));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_query", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("8192"),
        "{v}"
    );
    let req = Request::post("/api/v1/search")
        .body(Body::from("{\"q\":\"x\",\"sort\":\"asc\"}"))
        .unwrap();
    let (status, _, body) = rt.block_on(call(&app, req));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "bad_body", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("sort"),
        "{v}"
    );
}
