//! Tests of query admission and cancellation: a timed-out query stops its work and frees
//! its slot, and past the running and waiting slots the answer is 503 `overloaded` at once.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::tests_api::{call, indexer, load, loghub, rt, window};
use crate::{AppState, router};

fn gauge(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[test]
fn a_timed_out_search_stops_its_work_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    rt.block_on(load(&ix, &loghub()));
    let mut state = AppState::new(ix.clone());
    state.limits.query_timeout = Duration::from_millis(300);
    state.limits.max_concurrent_queries = 2;
    let app = router(state);
    let (since, until) = window();
    // A thousand patterns, each a walk over every message term of every segment: many
    // seconds of work per query, and four of them.
    let heavy: String = (0..1000)
        .map(|i| format!("*{}*", ["a", "e", "o", "1"][i % 4]))
        .collect::<Vec<_>>()
        .join(" ");
    let uri = format!(
        "/api/v1/search?since={since}&until={until}&q={}",
        heavy.replace(' ', "%20")
    );
    rt.block_on(async {
        let mut storm = Vec::new();
        for _ in 0..4 {
            let req = Request::get(&uri).body(Body::empty()).unwrap();
            let app = app.clone();
            storm.push(tokio::spawn(async move { call(&app, req).await }));
        }
        for t in storm {
            let (status, _, body) = t.await.unwrap();
            let body = String::from_utf8_lossy(&body).to_string();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("query_timeout"), "{body}");
        }
        // The work behind the 503s stops at its next check instead of running on: the
        // running gauge falls back to zero (generously bounded: this is not a timing
        // figure, the uncancelled work takes minutes here).
        let mut running = u64::MAX;
        for _ in 0..300 {
            let req = Request::get("/metrics").body(Body::empty()).unwrap();
            let (_, _, body) = call(&app, req).await;
            let text = String::from_utf8(body).unwrap();
            running = gauge(&text, "shiplog_queries_running");
            if running == 0 {
                assert_eq!(gauge(&text, "shiplog_queries_waiting"), 0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(running, 0, "timed-out searches kept running");
        let req = Request::get(format!(
            "/api/v1/search?since={since}&until={until}&q=error"
        ))
        .body(Body::empty())
        .unwrap();
        let (status, _, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    });
    ix.close();
}

/// Takes the state's one query slot with work that runs until the sender is used.
async fn hold_slot(
    state: &AppState,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<u32, crate::ApiError>>,
) {
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let st = state.clone();
    let held = tokio::spawn(async move {
        crate::limits::run_blocking(&st, "search", move || {
            hold.recv().ok();
            Ok(1)
        })
        .await
    });
    while state.query_slots().running() < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (release, held)
}

#[test]
fn past_the_running_and_waiting_slots_queries_get_503_overloaded_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let mut state = AppState::new(ix.clone());
    state.limits.max_concurrent_queries = 1;
    state.limits.max_queued_queries = 1;
    state.limits.query_timeout = Duration::from_secs(60);
    rt.block_on(async {
        let (release, first) = hold_slot(&state).await;
        let second = {
            let st = state.clone();
            tokio::spawn(
                async move { crate::limits::run_blocking(&st, "search", || Ok(2u32)).await },
            )
        };
        while state.query_slots().waiting() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let e = crate::limits::run_blocking(&state, "search", || Ok(3))
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "overloaded", "{}", e.message);
        assert!(
            e.message.contains("max_concurrent_queries"),
            "{}",
            e.message
        );
        assert_eq!(e.retry_after, Some(1));
        // The waiting query runs once the running one ends; nothing was lost by waiting.
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(state.query_slots().running(), 0);
        assert_eq!(state.query_slots().waiting(), 0);
    });
    ix.close();
}

#[test]
fn a_query_waiting_for_a_slot_past_its_timeout_answers_query_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    let mut state = AppState::new(ix.clone());
    state.limits.max_concurrent_queries = 1;
    state.limits.query_timeout = Duration::from_millis(200);
    rt.block_on(async {
        let (release, held) = hold_slot(&state).await;
        let e = crate::limits::run_blocking(&state, "search", || Ok(()))
            .await
            .unwrap_err();
        assert_eq!(e.code, "query_timeout");
        assert!(
            e.message.contains("waiting for a free query slot"),
            "{}",
            e.message
        );
        // The held work is past its timeout: its caller got 503 too, and the slot stays
        // taken until the thread returns.
        assert_eq!(held.await.unwrap().unwrap_err().code, "query_timeout");
        assert_eq!(state.query_slots().running(), 1);
        release.send(()).unwrap();
        while state.query_slots().running() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    ix.close();
}

fn big_events(n: usize, size: usize) -> Vec<shiplog_core::Event> {
    (0..n)
        .map(|i| {
            let mut e = shiplog_core::Event::log(
                shiplog_core::Timestamp(1_795_046_400_000_000_000 + i as i64 * 1_000_000),
                format!("big {i} {}", "y".repeat(size)),
            );
            e.service = "big".into();
            e.id = shiplog_core::EventId(i as u128 + 1);
            e
        })
        .collect()
}

async fn body_of(resp: axum::response::Response) -> (StatusCode, serde_json::Value, usize) {
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        bytes.len(),
    )
}

#[test]
fn search_pages_stop_at_max_response_and_page_on_with_a_cursor() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    rt.block_on(load(&ix, &big_events(40, 50_000)));
    let mut state = AppState::new(ix.clone());
    state.limits.max_response_bytes = 200_000;
    let app = router(state);
    rt.block_on(async {
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        let mut pages = 0;
        loop {
            let uri = match &cursor {
                Some(c) => format!("/api/v1/search?q=big&limit=1000&cursor={c}"),
                None => "/api/v1/search?q=big&limit=1000".to_string(),
            };
            let req = Request::get(uri).body(Body::empty()).unwrap();
            let (status, v, len) = body_of(app.clone().oneshot(req).await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            assert!(len <= 200_000 + 50_000, "a page of {len} bytes");
            assert_eq!(v["total"], 40);
            for h in v["hits"].as_array().unwrap() {
                assert!(seen.insert(h["id"].as_str().unwrap().to_string()), "twice");
            }
            pages += 1;
            match v["next_cursor"].as_str() {
                Some(c) => {
                    assert_eq!(
                        v["truncated"],
                        true,
                        "{}",
                        v["hits"].as_array().unwrap().len()
                    );
                    cursor = Some(c.to_string());
                }
                None => break,
            }
            assert!(pages < 100);
        }
        assert_eq!(seen.len(), 40);
        assert!(pages >= 10, "{pages} pages");
        // Elasticsearch's from/size has no cursor: a page past the cap is refused by name.
        let req = Request::post("/_all/_search")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"size": 100}"#))
            .unwrap();
        let (status, v, _) = body_of(app.clone().oneshot(req).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert!(v.to_string().contains("max_response"), "{v}");
    });
    ix.close();
}

#[test]
fn answers_held_by_slow_readers_are_bounded_by_max_response_memory() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let rt = rt();
    let ix = indexer(dir.path());
    rt.block_on(load(&ix, &big_events(10, 50_000)));
    let mut state = AppState::new(ix.clone());
    state.limits.max_response_memory = 800 * 1024;
    let app = router(state.clone());
    rt.block_on(async {
        let get = || {
            Request::get("/api/v1/search?q=big&limit=10")
                .body(Body::empty())
                .unwrap()
        };
        // A client that has not read its answer yet: ~500 KB held.
        let unread = app.clone().oneshot(get()).await.unwrap();
        assert_eq!(unread.status(), StatusCode::OK);
        assert!(state.query_slots().response_bytes() >= 500_000);
        let (status, v, _) = body_of(app.clone().oneshot(get()).await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["error"]["code"], "overloaded");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_response_memory")
        );
        // Once read, the share goes back and the next answer fits.
        let (status, v, _) = body_of(unread).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["hits"].as_array().unwrap().len(), 10);
        assert_eq!(state.query_slots().response_bytes(), 0);
        let (status, _, _) = body_of(app.clone().oneshot(get()).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
    });
    ix.close();
}
