//! Elasticsearch surface through the real router and a real indexer on disk.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use shiplog_indexer::{Indexer, IndexerConfig};
use tower::ServiceExt;

use crate::{AppState, router};

pub(super) fn state(dir: &std::path::Path) -> AppState {
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

pub(super) async fn call_raw(
    state: &AppState,
    req: Request<Body>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, bytes.to_vec())
}

pub(super) async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, bytes) = call_raw(state, req).await;
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn bulk_req(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(
            header::CONTENT_TYPE,
            "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        )
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn search_req(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Runs a `_search` and returns the status and body.
async fn es_search(st: &AppState, uri: &str, body: Value) -> (StatusCode, Value) {
    let (status, headers, v) = call(st, search_req(uri, body)).await;
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    (status, v)
}

fn messages(v: &Value) -> Vec<String> {
    v["hits"]["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {v}"))
        .iter()
        .map(|h| h["_source"]["message"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn info_and_health_look_like_elasticsearch_8() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let (status, headers, v) = call(&st, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    assert_eq!(v["version"]["number"], "8.11.0");
    assert_eq!(v["tagline"], "You Know, for Search");
    let (status, headers, _) = call_raw(&st, Request::head("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    let (status, _, v) = call(
        &st,
        Request::get("/_cluster/health")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::OK, Some("green"))
    );
}

const BULK: &str = concat!(
    r#"{"index":{"_index":"app","_id":"0123456789abcdef0123456789abcdef"}}"#,
    "\n",
    r#"{"@timestamp":"2026-11-22T03:00:00Z","message":"payment failed for order","log.level":"ERROR","service":{"name":"billing"},"host":{"name":"node-1"},"latency_ms":250,"user":{"id":"u1"}}"#,
    "\n",
    r#"{"create":{"_id":"order-7"}}"#,
    "\n",
    r#"{"@timestamp":1795316460000,"msg":"payment retried","level":"warn","service.name":"billing","host":"node-2","latency_ms":90,"container":{"name":"billing-1","id":"c0ffee"}}"#,
    "\n",
    r#"{"index":{}}"#,
    "\n",
    r#"{"message":"broken source","#,
    "\n",
    r#"{"delete":{"_id":"x"}}"#,
    "\n",
    r#"{"update":{"_id":"order-7"}}"#,
    "\n",
    r#"{"doc":{"message":"changed"}}"#,
    "\n",
    r#"{"index":{"_index":"other"}}"#,
    "\n",
    r#"{"timestamp":"2026-11-22T03:02:00.5Z","log":"cache warm","service":"web"}"#,
    "\n",
    r#"{"index":{}}"#,
    "\n",
    r#"[1,2]"#,
    "\n",
);

async fn bulk_fixture(st: &AppState) -> Value {
    let (status, headers, v) = call(st, bulk_req("/app/_bulk?refresh=true", BULK)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    v
}

#[tokio::test]
async fn bulk_answers_every_item_in_order_and_stores_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let v = bulk_fixture(&st).await;
    assert_eq!(v["errors"], true);
    let items = v["items"].as_array().unwrap();
    let summary: Vec<(String, u64)> = items
        .iter()
        .map(|i| {
            let (action, body) = i.as_object().unwrap().iter().next().unwrap();
            (action.clone(), body["status"].as_u64().unwrap())
        })
        .collect();
    let want = [
        ("index", 201),
        ("create", 201),
        ("index", 400),
        ("delete", 400),
        ("update", 400),
        ("index", 201),
        ("index", 400),
    ];
    assert_eq!(
        summary,
        want.iter()
            .map(|(a, s)| (a.to_string(), *s))
            .collect::<Vec<_>>()
    );
    assert_eq!(items[0]["index"]["_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(items[0]["index"]["result"], "created");
    assert_eq!(items[1]["create"]["_id"], "order-7");
    assert_eq!(items[1]["create"]["_index"], "app");
    assert_eq!(
        items[2]["index"]["error"]["type"],
        "mapper_parsing_exception"
    );
    assert!(
        items[3]["delete"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("append-only")
    );
    assert_eq!(items[5]["index"]["_index"], "other");
    assert!(
        items[6]["index"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("got an array"),
        "{v}"
    );

    // Read back through shiplog's own API: the mapping.
    let (status, _, v) = call(
        &st,
        Request::get("/api/v1/search?q=fields._index:app")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["total"], 2, "{v}");
    let first = &v["hits"][1];
    assert_eq!(first["id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(first["ts"], "2026-11-22T03:00:00.000000000Z");
    assert_eq!(first["message"], "payment failed for order");
    assert_eq!(first["level"], "error");
    assert_eq!(first["service"], "billing");
    assert_eq!(first["node"], "node-1");
    assert_eq!(first["kind"], "log");
    assert_eq!(
        first["fields"],
        json!({"_index": "app", "latency_ms": 250, "user": {"id": "u1"}})
    );
    let second = &v["hits"][0];
    assert_eq!(
        second["ts"], "2026-11-22T03:01:00.000000000Z",
        "epoch millis"
    );
    assert_eq!(second["message"], "payment retried");
    assert_eq!(second["level"], "warn");
    assert_eq!(second["node"], "node-2");
    assert_eq!(second["container_name"], "billing-1");
    assert_eq!(second["container_id"], "c0ffee");
    assert_eq!(second["fields"]["_id"], "order-7");

    // Resending the same bulk stores nothing new.
    bulk_fixture(&st).await;
    let (_, _, v) = call(
        &st,
        Request::get("/api/v1/search?q=fields._index:(app%20OR%20other)")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(v["total"], 3, "{v}");
}

#[tokio::test]
async fn search_translates_the_query_dsl() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    bulk_fixture(&st).await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"match_all": {}}),
            vec!["payment retried", "payment failed for order"],
        ),
        (
            json!({"match": {"message": "failed nothing"}}),
            vec!["payment failed for order"],
        ),
        (
            json!({"match": {"message": {"query": "payment failed", "operator": "and"}}}),
            vec!["payment failed for order"],
        ),
        (
            json!({"match_phrase": {"message": "failed for"}}),
            vec!["payment failed for order"],
        ),
        (json!({"match_phrase": {"message": "for failed"}}), vec![]),
        (
            json!({"term": {"host.name": "node-2"}}),
            vec!["payment retried"],
        ),
        (
            json!({"term": {"log.level": {"value": "ERROR"}}}),
            vec!["payment failed for order"],
        ),
        (
            json!({"terms": {"host": ["node-1", "node-9"]}}),
            vec!["payment failed for order"],
        ),
        (
            json!({"term": {"user.id": "u1"}}),
            vec!["payment failed for order"],
        ),
        (
            json!({"range": {"latency_ms": {"gte": 100}}}),
            vec!["payment failed for order"],
        ),
        (
            json!({"range": {"@timestamp": {"gt": "2026-11-22T03:00:00Z", "lte": 1795316460000u64}}}),
            vec!["payment retried"],
        ),
        (
            json!({"query_string": {"query": "*"}}),
            vec!["payment retried", "payment failed for order"],
        ),
        (
            json!({"query_string": {"query": " *:* "}}),
            vec!["payment retried", "payment failed for order"],
        ),
        (
            json!({"query_string": {"query": "payment AND level:warn"}}),
            vec!["payment retried"],
        ),
        (
            json!({"bool": {"must": [{"match": {"message": "payment"}}],
                "must_not": [{"term": {"level": "error"}}]}}),
            vec!["payment retried"],
        ),
        (
            json!({"bool": {"should": [{"term": {"host": "node-1"}}, {"term": {"host": "node-2"}}]}}),
            vec!["payment retried", "payment failed for order"],
        ),
        (
            json!({"bool": {"filter": {"term": {"service.name": "billing"}},
                "should": [{"term": {"host": "node-1"}}]}}),
            vec!["payment retried", "payment failed for order"],
        ),
        (
            json!({"bool": {"should": [{"term": {"host": "node-1"}}, {"match": {"message": "order"}},
                {"term": {"host": "node-2"}}], "minimum_should_match": 2}}),
            vec!["payment failed for order"],
        ),
        (
            json!({"prefix": {"container.name": "billing-"}}),
            vec!["payment retried"],
        ),
        (
            json!({"wildcard": {"message": "retr*"}}),
            vec!["payment retried"],
        ),
        (
            json!({"regexp": {"host.name": "node-[12]"}}),
            vec!["payment retried", "payment failed for order"],
        ),
    ];
    for (query, want) in cases {
        let (status, v) = es_search(&st, "/app/_search", json!({"query": query})).await;
        assert_eq!(status, StatusCode::OK, "{query}: {v}");
        assert_eq!(messages(&v), want, "{query}");
        assert_eq!(v["hits"]["total"]["value"], want.len(), "{query}");
        assert_eq!(v["hits"]["total"]["relation"], "eq");
        assert_eq!(v["timed_out"], false);
    }
    // The index scopes the search; _all and q= work too.
    let (_, v) = es_search(&st, "/other/_search", json!({})).await;
    assert_eq!(messages(&v), vec!["cache warm"]);
    assert_eq!(v["hits"]["hits"][0]["_index"], "other");
    let (_, v) = es_search(&st, "/app/_search?q=*", json!(null)).await;
    assert_eq!(
        v["hits"]["total"]["value"], 2,
        "q=* matches everything: {v}"
    );
    let (_, v) = es_search(&st, "/_search?q=payment&size=1", json!(null)).await;
    assert_eq!(messages(&v), vec!["payment retried"]);
    assert_eq!(v["hits"]["total"]["value"], 2);
    let (_, v) = es_search(
        &st,
        "/app,other/_search?rest_total_hits_as_int=true",
        json!(null),
    )
    .await;
    assert_eq!(v["hits"]["total"], 3);
}

#[tokio::test]
async fn search_pages_sorts_and_shapes_hits() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    bulk_fixture(&st).await;
    let (_, v) = es_search(
        &st,
        "/_all/_search",
        json!({"sort": [{"@timestamp": "asc"}], "size": 2}),
    )
    .await;
    assert_eq!(
        messages(&v),
        vec!["payment failed for order", "payment retried"]
    );
    assert_eq!(v["hits"]["hits"][0]["sort"], json!([1795316400000u64]));
    let (_, v) = es_search(
        &st,
        "/_search",
        json!({"sort": "@timestamp:asc", "from": 1, "size": 1}),
    )
    .await;
    assert_eq!(messages(&v), vec!["payment retried"]);
    let (_, v) = es_search(
        &st,
        "/_search",
        json!({"sort": [{"@timestamp": {"order": "desc"}}], "from": 1}),
    )
    .await;
    assert_eq!(
        messages(&v),
        vec!["payment retried", "payment failed for order"]
    );
    let (_, v) = es_search(&st, "/_search?sort=ts:asc&from=2&size=5", json!(null)).await;
    assert_eq!(messages(&v), vec!["cache warm"]);

    let (_, v) = es_search(
        &st,
        "/app/_search",
        json!({"query": {"term": {"host": "node-2"}}}),
    )
    .await;
    let hit = &v["hits"]["hits"][0];
    assert_eq!(hit["_id"], "order-7", "the client's own id comes back");
    assert_eq!(hit["_index"], "app");
    assert_eq!(hit["_score"], Value::Null);
    assert_eq!(
        hit["_source"],
        json!({"@timestamp": "2026-11-22T03:01:00.000000000Z", "message": "payment retried",
            "log": {"level": "warn"}, "service": {"name": "billing"}, "host": {"name": "node-2"},
            "container": {"name": "billing-1", "id": "c0ffee"}, "latency_ms": 90})
    );
    assert_eq!(v["_shards"]["failed"], 0);
}

#[tokio::test]
async fn bad_searches_are_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let cases = [
        (json!({"query": {"fuzzy": {"message": "x"}}}), "[fuzzy]"),
        (
            json!({"from": 9995, "size": 10}),
            "from + size must be at most 10000",
        ),
        (
            json!({"aggs": {"by_host": {"cardinality": {"field": "host"}}}}),
            "unknown aggregation type [cardinality]",
        ),
        (
            json!({"sort": [{"latency_ms": "asc"}]}),
            "sorting by [latency_ms]",
        ),
        (
            json!({"query": {"range": {"message": {"gte": 1}}}}),
            "[range] on [message]",
        ),
        (
            json!({"query": {"range": {"@timestamp": {"gte": "now-1d/d"}}}}),
            "date math",
        ),
        (
            json!({"query": {"term": {"level": "loud"}}}),
            "unknown level 'loud'",
        ),
        (
            json!({"query": {"query_string": {"query": "service:"}}}),
            "service",
        ),
        (
            json!({"query": {"match": {"a": 1}, "term": {"b": 2}}}),
            "one query type",
        ),
        (json!({"highlight": {}}), "[highlight]"),
    ];
    for (body, needle) in cases {
        let (status, v) = es_search(&st, "/_search", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        let reason = v["error"]["reason"].as_str().unwrap();
        assert!(reason.contains(needle), "{body}: {reason}");
        assert_eq!(v["error"]["message"], v["error"]["reason"]);
        assert_eq!(v["status"], 400);
        assert!(!reason.ends_with('.'), "{reason}");
    }
    let (status, v) = es_search(&st, "/logs-*/_search", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("index pattern 'logs-*'")
    );
    let (status, v) = es_search(&st, "/_search?frm=1", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["reason"].as_str().unwrap().contains("[frm]"),
        "{v}"
    );
    let (status, _) = es_search(&st, "/_search", json!("not an object")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_bulk_bodies_are_refused_whole_when_items_cannot_be_paired() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = state(dir.path());
    st.limits.decode.max_decompressed_bytes = 64 * 1024;
    let body =
        "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"ok\"}\n{\"index\":\n{\"message\":\"x\"}\n";
    let (status, _, v) = call(&st, bulk_req("/_bulk", body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("line 3: malformed action"),
        "{v}"
    );
    let (status, _, v) = call(&st, bulk_req("/_bulk", "{\"index\":{\"_index\":\"a\"}}\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("needs a source line"),
        "{v}"
    );
    let (status, _, v) = call(&st, bulk_req("/_bulk", "{\"upsert\":{}}\n{}\n")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["reason"].as_str().unwrap().contains("[upsert]"),
        "{v}"
    );

    let (status, _, v) = call(
        &st,
        Request::post("/_bulk")
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from("a,b"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");

    // A gzip bomb is refused at the decompression cap.
    let bomb = gzip(&vec![b' '; 1024 * 1024]);
    let (status, _, v) = call(
        &st,
        Request::post("/_bulk")
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(bomb))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("65536 bytes"),
        "{v}"
    );

    // Nothing of the refused requests was stored; gzip bulk bodies work.
    st.indexer.flush().unwrap();
    let (_, v) = es_search(&st, "/_search", json!({})).await;
    assert_eq!(v["hits"]["total"]["value"], 0, "{v}");
    let ok = gzip(b"{\"index\":{\"_index\":\"z\"}}\n{\"message\":\"zipped\"}\n");
    let (status, _, v) = call(
        &st,
        Request::post("/_bulk?refresh=wait_for")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(ok))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["errors"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{v}"
    );
    let (_, v) = es_search(&st, "/z/_search", json!({})).await;
    assert_eq!(messages(&v), vec!["zipped"]);
}

#[tokio::test]
async fn refresh_makes_acknowledged_items_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let body = "{\"index\":{}}\n{\"message\":\"later\"}\n";
    let (status, _, v) = call(&st, bulk_req("/r/_bulk", body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, headers, v) = call(
        &st,
        Request::post("/r/_refresh").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(headers["x-elastic-product"], "Elasticsearch");
    let (_, v) = es_search(
        &st,
        "/r/_search",
        json!({"query": {"match": {"message": "later"}}}),
    )
    .await;
    assert_eq!(messages(&v), vec!["later"]);
}

/// 2026-11-22T00:00:00Z in milliseconds.
const AGG_DAY_MS: i64 = 1_795_305_600_000;
const HOUR_MS: i64 = 3_600_000;

/// One document of the aggregation corpus: 60 events at hours 0, 1 and 3 (hour 2 is
/// empty), three services, two levels, a numeric `status`.
struct AggDoc {
    ms: i64,
    service: &'static str,
    level: &'static str,
    status: u32,
}

fn agg_corpus() -> Vec<AggDoc> {
    (0..60)
        .map(|i: i64| AggDoc {
            ms: AGG_DAY_MS + [0, 1, 3][(i % 3) as usize] * HOUR_MS + i * 55_000,
            service: ["api", "web", "db", "api", "api"][(i % 5) as usize],
            level: if i % 4 == 0 { "error" } else { "info" },
            status: if i % 6 == 0 { 500 } else { 200 },
        })
        .collect()
}

/// Ships the corpus into index `aggs` and one unrelated event into `noise`.
async fn agg_fixture(st: &AppState) -> Vec<AggDoc> {
    let docs = agg_corpus();
    let mut body = String::new();
    for (i, d) in docs.iter().enumerate() {
        body.push_str(&format!(
            "{{\"index\":{{\"_index\":\"aggs\",\"_id\":\"a{i}\"}}}}\n"
        ));
        body.push_str(
            &json!({"@timestamp": d.ms, "message": format!("request {i}"), "service.name": d.service,
                "log.level": d.level, "status": d.status})
            .to_string(),
        );
        body.push('\n');
    }
    body.push_str("{\"index\":{\"_index\":\"noise\"}}\n");
    body.push_str(r#"{"@timestamp":"2026-11-22T02:30:00Z","message":"noise","service":"other"}"#);
    body.push('\n');
    let (status, _, v) = call(st, bulk_req("/_bulk?refresh=true", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["errors"], false, "{v}");
    docs
}

fn buckets(v: &Value) -> Vec<Value> {
    v["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets in {v}"))
        .clone()
}

fn key_counts(v: &Value) -> Vec<(Value, u64)> {
    buckets(v)
        .iter()
        .map(|b| (b["key"].clone(), b["doc_count"].as_u64().unwrap()))
        .collect()
}

/// Expected (key, count) pairs, most frequent first, ties by key.
fn expected_terms<'a>(
    docs: impl Iterator<Item = &'a AggDoc>,
    key: impl Fn(&AggDoc) -> String,
) -> Vec<(Value, u64)> {
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for d in docs {
        *counts.entry(key(d)).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.into_iter().map(|(k, c)| (json!(k), c)).collect()
}

#[tokio::test]
async fn date_histograms_bucket_from_the_first_match_to_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let docs = agg_fixture(&st).await;
    let per_hour = |docs: &[AggDoc], h: i64| {
        docs.iter()
            .filter(|d| (d.ms - AGG_DAY_MS).div_euclid(HOUR_MS) == h)
            .count() as u64
    };
    for spec in [
        json!({"field": "@timestamp", "fixed_interval": "1h"}),
        json!({"field": "@timestamp", "calendar_interval": "hour"}),
        json!({"field": "timestamp", "calendar_interval": "1h"}),
        json!({"field": "@timestamp", "interval": "1h"}),
    ] {
        let (status, v) = es_search(
            &st,
            "/aggs/_search",
            json!({"size": 0, "aggs": {"per_hour": {"date_histogram": spec}}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["hits"]["total"], json!({"value": 60, "relation": "eq"}));
        assert_eq!(v["hits"]["hits"], json!([]));
        let got = key_counts(&v["aggregations"]["per_hour"]);
        let want: Vec<(Value, u64)> = (0..4)
            .map(|h| (json!(AGG_DAY_MS + h * HOUR_MS), per_hour(&docs, h)))
            .collect();
        assert_eq!(got, want, "{spec}");
        assert_eq!(want[2].1, 0, "the empty hour is listed with 0");
        assert_eq!(
            buckets(&v["aggregations"]["per_hour"])[1]["key_as_string"],
            "2026-11-22T01:00:00.000Z"
        );
    }

    // min_doc_count drops the empty hour; extended_bounds reach past the data; the query
    // narrows what is counted; keyed answers an object.
    let (_, v) = es_search(
        &st,
        "/aggs/_search",
        json!({"size": 0, "aggs": {
            "dense": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h", "min_doc_count": 1}},
            "wide": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h",
                "extended_bounds": {"min": AGG_DAY_MS - HOUR_MS, "max": "2026-11-22T05:10:00Z"}}},
            "keyed": {"date_histogram": {"field": "@timestamp", "fixed_interval": "30m", "keyed": true,
                "format": "epoch_millis"}}
        }}),
    )
    .await;
    let aggs = &v["aggregations"];
    assert_eq!(buckets(&aggs["dense"]).len(), 3, "{aggs}");
    let wide = key_counts(&aggs["wide"]);
    assert_eq!(wide.len(), 7, "{aggs}");
    assert_eq!(wide[0], (json!(AGG_DAY_MS - HOUR_MS), 0));
    assert_eq!(wide[6], (json!(AGG_DAY_MS + 5 * HOUR_MS), 0));
    let keyed = aggs["keyed"]["buckets"].as_object().unwrap();
    let first = AGG_DAY_MS.to_string();
    assert_eq!(keyed[&first]["key"], AGG_DAY_MS);
    assert_eq!(
        keyed
            .values()
            .map(|b| b["doc_count"].as_u64().unwrap())
            .sum::<u64>(),
        60
    );

    let (_, v) = es_search(
        &st,
        "/_search",
        json!({"size": 1, "query": {"term": {"log.level": "error"}},
            "aggs": {"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}}}}),
    )
    .await;
    let errors: Vec<&AggDoc> = docs.iter().filter(|d| d.level == "error").collect();
    assert_eq!(v["hits"]["total"]["value"], errors.len());
    assert_eq!(v["hits"]["hits"].as_array().unwrap().len(), 1);
    let sum: u64 = key_counts(&v["aggregations"]["h"])
        .iter()
        .map(|(_, c)| c)
        .sum();
    assert_eq!(sum, errors.len() as u64);

    // Nothing matches: no buckets, and no error.
    let (status, v) = es_search(
        &st,
        "/aggs/_search",
        json!({"size": 0, "query": {"term": {"service": "nobody"}},
            "aggs": {"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}},
                     "t": {"terms": {"field": "service"}}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["aggregations"]["h"]["buckets"], json!([]));
    assert_eq!(v["aggregations"]["t"]["buckets"], json!([]));
    assert_eq!(v["hits"]["total"]["value"], 0);
}

#[tokio::test]
async fn terms_count_keyword_fields_and_paths_inside_fields() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let docs = agg_fixture(&st).await;
    let (status, v) = es_search(
        &st,
        "/aggs/_search?typed_keys=true",
        json!({"size": 0, "aggs": {
            "services": {"terms": {"field": "service.name", "size": 2}},
            "levels": {"terms": {"field": "log.level.keyword"}},
            "statuses": {"terms": {"field": "status"}},
            "by_key": {"terms": {"field": "service", "order": {"_key": "desc"}, "min_doc_count": 15}},
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let aggs = &v["aggregations"];
    let services = expected_terms(docs.iter(), |d| d.service.to_string());
    assert_eq!(key_counts(&aggs["sterms#services"]), services[..2].to_vec());
    assert_eq!(
        aggs["sterms#services"]["sum_other_doc_count"],
        services[2].1
    );
    assert_eq!(aggs["sterms#services"]["doc_count_error_upper_bound"], 0);
    assert_eq!(
        key_counts(&aggs["sterms#levels"]),
        expected_terms(docs.iter(), |d| d.level.to_string())
    );
    assert_eq!(
        key_counts(&aggs["sterms#statuses"]),
        expected_terms(docs.iter(), |d| d.status.to_string())
    );
    let mut by_key: Vec<(Value, u64)> =
        services.iter().filter(|(_, c)| *c >= 15).cloned().collect();
    by_key.sort_by(|a, b| b.0.as_str().cmp(&a.0.as_str()));
    assert_eq!(key_counts(&aggs["sterms#by_key"]), by_key);

    // Index names are values too, and the index in the path scopes the counts.
    let (_, v) = es_search(
        &st,
        "/_all/_search",
        json!({"size": 0, "aggs": {"indexes": {"terms": {"field": "_index"}}}}),
    )
    .await;
    assert_eq!(
        key_counts(&v["aggregations"]["indexes"]),
        vec![(json!("aggs"), 60), (json!("noise"), 1)]
    );
}

#[tokio::test]
async fn sub_aggregations_count_inside_each_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let docs = agg_fixture(&st).await;
    let (status, v) = es_search(
        &st,
        "/aggs/_search",
        json!({"size": 0, "aggs": {
            "per_hour": {
                "date_histogram": {"field": "@timestamp", "fixed_interval": "1h"},
                "meta": {"panel": "volume"},
                "aggs": {"services": {"terms": {"field": "service"}}}
            },
            "per_service": {
                "terms": {"field": "service"},
                "aggregations": {"per_hour": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}},
                                 "levels": {"terms": {"field": "level"}}}
            }
        }}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let aggs = &v["aggregations"];
    assert_eq!(aggs["per_hour"]["meta"], json!({"panel": "volume"}));
    for b in buckets(&aggs["per_hour"]) {
        let start = b["key"].as_i64().unwrap();
        let in_hour = docs
            .iter()
            .filter(|d| d.ms >= start && d.ms < start + HOUR_MS);
        let want = expected_terms(in_hour, |d| d.service.to_string());
        assert_eq!(key_counts(&b["services"]), want, "hour {start}");
    }
    for b in buckets(&aggs["per_service"]) {
        let service = b["key"].as_str().unwrap().to_string();
        let mine: Vec<&AggDoc> = docs.iter().filter(|d| d.service == service).collect();
        assert_eq!(b["doc_count"], mine.len());
        let hours = key_counts(&b["per_hour"]);
        assert_eq!(hours.iter().map(|(_, c)| c).sum::<u64>(), mine.len() as u64);
        let first = mine.iter().map(|d| d.ms).min().unwrap();
        assert_eq!(
            hours[0].0,
            json!(first - first.rem_euclid(HOUR_MS)),
            "{service}"
        );
        assert_eq!(
            key_counts(&b["levels"]),
            expected_terms(mine.iter().copied(), |d| d.level.to_string())
        );
    }
}

#[tokio::test]
async fn bad_aggregations_are_400_in_elasticsearch_shape() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    agg_fixture(&st).await;
    let cases = [
        (
            json!({"aggs": {"lat": {"avg": {"field": "latency_ms"}}}}),
            "parsing_exception",
            "unknown aggregation type [avg] in aggregation [lat]",
        ),
        (
            json!({"aggs": {"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1ms"}}}}),
            "too_many_buckets_exception",
            "would make",
        ),
        (
            json!({"aggs": {"h": {"date_histogram": {"field": "@timestamp", "calendar_interval": "month"}}}}),
            "illegal_argument_exception",
            "calendar interval [month] is not supported",
        ),
        (
            json!({"aggs": {"t": {"terms": {"field": "service"}, "aggs": {"u": {"terms": {"field": "level"},
                "aggs": {"v": {"terms": {"field": "host"}}}}}}}}),
            "illegal_argument_exception",
            "one level of sub-aggregations",
        ),
        (
            json!({"aggs": {"t": {"terms": {"field": "service"}}}, "aggregations": {}}),
            "illegal_argument_exception",
            "both aggs and aggregations",
        ),
    ];
    for (body, es_type, needle) in cases {
        let (status, v) = es_search(&st, "/aggs/_search", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["type"], es_type, "{body}: {v}");
        assert_eq!(v["error"]["root_cause"][0]["type"], es_type);
        let reason = v["error"]["reason"].as_str().unwrap();
        assert!(reason.contains(needle), "{body}: {reason}");
        assert_eq!(v["status"], 400);
    }
}
