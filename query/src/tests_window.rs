//! Event times one request may carry (`[api] max_days_per_batch`, `accept_past`,
//! `accept_future`) on every ingest route, through the real router and a real indexer.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use shiplog_core::Timestamp;
use shiplog_core::accept::AcceptWindow;

use crate::AppState;
use crate::tests::{call, state};

const DAY: i64 = 86_400 * 1_000_000_000;
/// 2020-01-01, the first of the days the tests' events fall on.
const FIRST_DAY: i64 = 18_262;

fn post(uri: &str, content_type: &str, body: String) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

fn day(d: usize) -> Timestamp {
    Timestamp((FIRST_DAY + d as i64) * DAY + 3_600 * 1_000_000_000)
}

/// Day directories the indexer made.
fn day_indexes(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("logs")).map_or(0, |d| d.count())
}

async fn total(st: &AppState) -> u64 {
    let (status, v) = call(
        st,
        Request::get("/api/v1/search?q=kind:log&since=3000d&limit=1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_batch_on_two_thousand_days_is_refused_at_the_first_line_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let max = AcceptWindow::default().max_days;
    let body: String = (0..2_000)
        .map(|d| {
            format!(
                "{}\n",
                json!({"ts": day(d).to_rfc3339(), "message": format!("d{d}")})
            )
        })
        .collect();
    let (status, v) = call(
        &st,
        post("/api/v1/ingest", "application/x-ndjson", body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_batch", "{v}");
    assert_eq!(v["error"]["line"], max + 1, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("max_days_per_batch"), "{message}");
    assert_eq!(
        day_indexes(dir.path()),
        0,
        "a refused batch opens no day index"
    );

    let (status, v) = call(
        &st,
        post(
            "/api/v1/ingest?partial=true&refresh=true",
            "application/x-ndjson",
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], max, "{v}");
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2_000 - max);
    assert_eq!(rejected[0]["line"], max + 1);
    assert_eq!(day_indexes(dir.path()), max);
    assert_eq!(total(&st).await, max as u64);
}

#[tokio::test]
async fn configured_time_bounds_refuse_old_and_future_lines_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = state(dir.path());
    st.limits.decode.window = AcceptWindow {
        max_past: Some(Duration::from_secs(7 * 86_400)),
        max_future: Some(Duration::from_secs(3_600)),
        ..AcceptWindow::default()
    };
    let now = Timestamp::now();
    let lines = [
        now.offset(-DAY),
        now.offset(-30 * DAY),
        now.offset(2 * DAY),
        now,
    ];
    let body: String = lines
        .iter()
        .map(|t| format!("{}\n", json!({"ts": t.to_rfc3339(), "message": "bounded"})))
        .collect();
    let (status, v) = call(
        &st,
        post(
            "/api/v1/ingest?partial=true&refresh=true",
            "application/x-ndjson",
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    assert_eq!(v["rejected"][0]["line"], 2, "{v}");
    assert!(
        v["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("accept_past"),
        "{v}"
    );
    assert_eq!(v["rejected"][1]["line"], 3, "{v}");
    assert!(
        v["rejected"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("accept_future"),
        "{v}"
    );
}

#[tokio::test]
async fn elasticsearch_bulk_fails_the_items_past_the_bound_and_stores_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let max = AcceptWindow::default().max_days;
    let body: String = (0..max + 8)
        .map(|d| {
            format!(
                "{}\n{}\n",
                json!({"index": {"_index": "app"}}),
                json!({"@timestamp": day(d).to_rfc3339(), "message": format!("d{d}")})
            )
        })
        .collect();
    let (status, v) = call(
        &st,
        post("/_bulk?refresh=true", "application/x-ndjson", body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["errors"], true, "{v}");
    let items = v["items"].as_array().unwrap();
    let failed: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| i["index"]["status"] != 201)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(failed, (max..max + 8).collect::<Vec<_>>(), "{v}");
    assert!(
        items[max]["index"]["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("max_days_per_batch"),
        "{v}"
    );
    assert_eq!(total(&st).await, max as u64);
}

#[tokio::test]
async fn a_loki_push_on_too_many_days_is_refused_whole_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let max = AcceptWindow::default().max_days;
    let values: Vec<Value> = (0..max + 1)
        .map(|d| json!([day(d).as_nanos().to_string(), format!("d{d}")]))
        .collect();
    let body = json!({"streams": [{"stream": {"job": "old"}, "values": values}]});
    let (status, v) = call(
        &st,
        post("/loki/api/v1/push", "application/json", body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "out_of_window", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.starts_with(&format!("record {max}: ")), "{message}");
    assert!(
        message.contains("nothing in this request was stored"),
        "{message}"
    );
    assert_eq!(day_indexes(dir.path()), 0);
}
