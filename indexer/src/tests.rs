//! Tests of the indexer against real tantivy indexes in temporary directories.

use std::time::Duration;

use shiplog_core::query::parse;
use shiplog_core::{Event, EventId, Level, Stream, Timestamp};

use super::*;

const DAY_NS: i64 = 86_400 * 1_000_000_000;
const BASE: i64 = 1_795_000_000_000_000_000; // 2026-11-18

fn open(dir: &std::path::Path) -> Indexer {
    Indexer::open(IndexerConfig {
        data_dir: dir.to_path_buf(),
        writer_memory_bytes: 64 * 1024 * 1024,
        writer_threads: 1,
        commit_interval: Duration::from_millis(200),
        min_commit_interval: Duration::from_millis(10),
        ..IndexerConfig::default()
    })
    .unwrap()
}

fn event(i: i64, service: &str, msg: &str) -> Event {
    let mut e = Event::log(Timestamp(BASE + i * 1_000_000), msg);
    e.service = service.into();
    e.stream = Some(if i % 2 == 0 {
        Stream::Stdout
    } else {
        Stream::Stderr
    });
    e.level = Level::sniff(msg);
    e.id = EventId(i as u128 + 1);
    e
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn search(ix: &Indexer, q: &str, limit: usize) -> SearchResponse {
    ix.search(&SearchRequest {
        query: parse(q).unwrap(),
        since: None,
        until: None,
        limit,
        cursor: None,
    })
    .unwrap()
}

fn loghub_lines(system: &str) -> Vec<String> {
    let path = format!(
        "{}/../../shared/data/loghub/{system}/{system}_2k.log",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

#[test]
fn ingested_events_are_searchable_newest_first_once() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let events: Vec<Event> = (0..100)
        .map(|i| {
            event(
                i,
                if i % 3 == 0 { "web" } else { "api" },
                &format!("line {i} ok"),
            )
        })
        .collect();
    let ack = rt().block_on(ix.ingest(events.clone())).unwrap();
    ix.flush().unwrap();
    assert_eq!(
        ack,
        IngestAck {
            accepted: 100,
            duplicates: 0
        }
    );
    let again = rt().block_on(ix.ingest(events[..10].to_vec())).unwrap();
    ix.flush().unwrap();
    assert_eq!(
        again,
        IngestAck {
            accepted: 0,
            duplicates: 10
        }
    );

    let all = search(&ix, "", 1000);
    assert_eq!(all.total, 100);
    assert_eq!(all.hits.len(), 100);
    assert!(
        all.hits.windows(2).all(|w| w[0].ts > w[1].ts),
        "newest first"
    );
    assert_eq!(all.hits[0].message, "line 99 ok");
    let web = search(&ix, "service:web AND ok", 1000);
    assert_eq!(web.total, 34);
    assert!(web.hits.iter().all(|e| e.service == "web"));
    assert_eq!(search(&ix, "\"line 42\"", 10).hits[0].message, "line 42 ok");
    assert_eq!(search(&ix, "stream:stderr", 1000).total, 50);
    ix.close();
}

#[test]
fn cursor_pages_through_everything_once_even_with_equal_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let events: Vec<Event> = (0..95)
        .map(|i| {
            let mut e = event(i / 10, "web", &format!("n{i}"));
            e.id = EventId(1000 + i as u128);
            e.seq = (i % 10) as u32;
            e
        })
        .collect();
    rt().block_on(ix.ingest(events)).unwrap();
    ix.flush().unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = ix
            .search(&SearchRequest {
                query: parse("").unwrap(),
                since: None,
                until: None,
                limit: 7,
                cursor: cursor.clone(),
            })
            .unwrap();
        assert_eq!(page.total, 95);
        for h in &page.hits {
            assert!(seen.insert(h.id), "duplicate hit {}", h.message);
        }
        pages += 1;
        assert!(pages < 50, "pagination does not terminate");
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 95);
    let bad = ix.search(&SearchRequest {
        query: parse("").unwrap(),
        since: None,
        until: None,
        limit: 7,
        cursor: Some("x.y".into()),
    });
    assert!(matches!(bad, Err(IndexerError::BadCursor(_))));
}

#[test]
fn a_batch_sharing_one_time_pages_past_the_largest_page_with_small_cursors() {
    // A batch sent without times shares its arrival time, told apart by seq: more of them
    // than one page holds must still page through, each once, in the order they were sent,
    // with a cursor that does not grow with the page.
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let n = crate::search::MAX_LIMIT + 2_500;
    let events: Vec<Event> = (0..n)
        .map(|i| {
            let mut e = Event::log(Timestamp(BASE), format!("sent {i}"));
            e.service = "batch".into();
            e.id = EventId(10_000_000 + i as u128);
            e.seq = i as u32;
            e
        })
        .collect();
    for chunk in events.chunks(5_000) {
        rt().block_on(ix.ingest(chunk.to_vec())).unwrap();
    }
    ix.flush().unwrap();
    let mut order = Vec::new();
    let mut cursor = None;
    loop {
        let page = ix
            .search(&SearchRequest {
                query: parse("service:batch").unwrap(),
                since: None,
                until: None,
                limit: 4_000,
                cursor: cursor.clone(),
            })
            .unwrap();
        assert_eq!(page.total, n as u64, "the total stays exact on every page");
        order.extend(page.hits.iter().map(|h| h.seq));
        assert!(order.len() <= n, "pages repeat events");
        match page.next_cursor {
            Some(c) => {
                assert!(c.len() < 100, "cursor grew to {} bytes", c.len());
                cursor = Some(c);
            }
            None => break,
        }
    }
    let expected: Vec<u32> = (0..n as u32).rev().collect();
    assert_eq!(order.len(), n);
    assert!(order == expected, "not newest-sent first, each once");
}

#[test]
fn time_windows_span_days_and_merge_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let mut events = Vec::new();
    for day in 0..4 {
        for k in 0..5 {
            let mut e = event(0, "web", &format!("day{day} k{k}"));
            e.ts = Timestamp(BASE + day * DAY_NS + k * 1000);
            e.id = EventId((day * 10 + k) as u128 + 1);
            events.push(e);
        }
    }
    rt().block_on(ix.ingest(events)).unwrap();
    ix.flush().unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("logs")).unwrap().count(),
        4,
        "one index per day"
    );
    let req = SearchRequest {
        query: parse("").unwrap(),
        since: Some(Timestamp(BASE + DAY_NS + 2000)),
        until: Some(Timestamp(BASE + 3 * DAY_NS + 1000)),
        limit: 100,
        cursor: None,
    };
    let got = ix.search(&req).unwrap();
    let msgs: Vec<_> = got.hits.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "day3 k1", "day3 k0", "day2 k4", "day2 k3", "day2 k2", "day2 k1", "day2 k0", "day1 k4",
            "day1 k3", "day1 k2"
        ]
    );
    assert_eq!(got.total, 10);
    ix.close();
    let reopened = open(dir.path());
    assert_eq!(
        search(&reopened, "", 100).total,
        20,
        "data survives a reopen"
    );
}

#[test]
fn totals_stay_exact_on_every_cursor_page_across_days() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let mut events = Vec::new();
    for day in 0..3 {
        for k in 0..30 {
            let mut e = event(
                k,
                if k % 3 == 0 { "db" } else { "web" },
                &format!("d{day} k{k}"),
            );
            // Pairs of events share a time, so cursors stop between equal timestamps.
            e.ts = Timestamp(BASE + day * DAY_NS + (k / 2) * 3_600_000_000_000);
            e.id = EventId((day * 100 + k) as u128 + 1);
            events.push(e);
        }
    }
    rt().block_on(ix.ingest(events.clone())).unwrap();
    ix.flush().unwrap();
    let windows = [
        (None, None),
        (Some(Timestamp(BASE + 7 * 3_600_000_000_000)), None),
        (None, Some(Timestamp(BASE + DAY_NS + 5 * 3_600_000_000_000))),
        (
            Some(Timestamp(BASE + 12 * 3_600_000_000_000)),
            Some(Timestamp(BASE + 2 * DAY_NS + 6 * 3_600_000_000_000)),
        ),
    ];
    for (since, until) in windows {
        let query = parse("service:web").unwrap();
        let want: std::collections::HashSet<EventId> = events
            .iter()
            .filter(|e| query.matches(e))
            .filter(|e| since.is_none_or(|s| e.ts >= s) && until.is_none_or(|u| e.ts <= u))
            .map(|e| e.id)
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut cursor = None;
        loop {
            let page = ix
                .search(&SearchRequest {
                    query: query.clone(),
                    since,
                    until,
                    limit: 3,
                    cursor: cursor.clone(),
                })
                .unwrap();
            assert_eq!(
                page.total,
                want.len() as u64,
                "{since:?}..{until:?} at {cursor:?}"
            );
            assert!(page.total_exact);
            seen.extend(page.hits.iter().map(|h| h.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, want, "{since:?}..{until:?}");
    }
    ix.close();
}

#[test]
fn json_fields_are_searchable_by_path_as_strings_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let mut a = event(1, "web", "a");
    a.fields =
        serde_json::from_str(r#"{"user":{"id":42},"plan":"pro","ok":true,"ratio":0.5}"#).unwrap();
    let mut b = event(2, "web", "b");
    b.fields = serde_json::from_str(r#"{"user":{"id":"42"},"plan":"free"}"#).unwrap();
    rt().block_on(ix.ingest(vec![a, b])).unwrap();
    ix.flush().unwrap();
    assert_eq!(search(&ix, "fields.user.id:42", 10).total, 2);
    assert_eq!(search(&ix, "fields.plan:pro", 10).total, 1);
    assert_eq!(search(&ix, "fields.ok:true", 10).total, 1);
    assert_eq!(search(&ix, "fields.ratio:0.5", 10).total, 1);
    assert_eq!(search(&ix, "fields.plan:Pro", 10).total, 0);
}

/// Predictions: keyword, input/output path and latency queries agree with the tail matcher.
#[test]
fn prediction_keys_are_searchable_and_agree_with_the_tail_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let events: Vec<Event> = (0..60)
        .map(|i| {
            let mut e = event(i, "model-server", "");
            e.kind = shiplog_core::Kind::Prediction;
            e.model = Some(if i % 2 == 0 { "churn" } else { "fraud" }.into());
            e.model_version = Some(format!("v{}", i % 3));
            e.request_id = Some(format!("req-{i}"));
            e.status = Some(if i % 10 == 0 { "error" } else { "ok" }.into());
            e.latency_ms = Some(i as f64 * 10.5);
            let tier = ["a", "b"][i as usize % 2];
            e.input = Some(serde_json::json!({"customer_id": i, "tier": tier}));
            e.output = if i == 7 {
                Some(serde_json::json!("scalar answer"))
            } else {
                Some(serde_json::json!({"score": i as f64 / 60.0}))
            };
            e
        })
        .collect();
    rt().block_on(ix.ingest(events.clone())).unwrap();
    ix.flush().unwrap();
    let queries = [
        ("kind:prediction", 60),
        ("model:churn", 30),
        ("model:fr*", 30),
        ("version:v1 AND model:churn", 10),
        ("request_id:req-42", 1),
        ("request_id:/req-4[0-9]/", 10),
        ("status:error", 6),
        ("latency_ms:>500", 12),
        ("latency_ms:[105 TO 210]", 11),
        ("latency_ms:31.5", 1),
        ("input.customer_id:42", 1),
        ("input.customer_id:[10 TO 19]", 10),
        ("input.tier:b AND status:ok", 30),
        ("input.tier:a AND status:ok", 24),
        ("output.score:>0.5", 29),
        ("output.score:0.5", 1),
        ("NOT latency_ms:<100", 50),
    ];
    for (q, want) in queries {
        let parsed = parse(q).unwrap();
        let expected = events.iter().filter(|e| parsed.matches(e)).count();
        assert_eq!(expected, want, "tail matcher count for {q}");
        assert_eq!(
            search(&ix, q, 100).total,
            want as u64,
            "search count for {q}"
        );
    }
    let hit = &search(&ix, "request_id:req-7", 1).hits[0];
    assert_eq!(hit.output, Some(serde_json::json!("scalar answer")));
    assert_eq!(hit.latency_ms, Some(73.5));
}

/// Search and the in-memory tail filter must agree on every query, over real log lines.
#[test]
fn search_agrees_with_the_tail_matcher_on_real_logs() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let mut events = Vec::new();
    for (s, system) in ["HDFS", "Apache", "Zookeeper", "OpenStack"]
        .iter()
        .enumerate()
    {
        for (i, line) in loghub_lines(system).into_iter().take(500).enumerate() {
            let n = (s * 1000 + i) as i64;
            let mut e = event(n, &system.to_lowercase(), &line);
            e.id = EventId(n as u128 + 1);
            events.push(e);
        }
    }
    rt().block_on(ix.ingest(events.clone())).unwrap();
    ix.flush().unwrap();
    let queries = [
        "INFO",
        "level:warn",
        "level:error OR level:fatal",
        "service:hdfs AND PacketResponder",
        "\"Received block\"",
        "blk_-1608999687919862906",
        "NOT service:apache AND error",
        "service:(zookeeper OR openstack) -INFO",
        "\"workerEnv.init() ok\"",
        "nova AND \"GET /v2\"",
        "stream:stderr AND level:info",
        "dfs.DataNode",
        "10.251.43.21",
        "\"jk2_init() Found child\"",
    ];
    for q in queries {
        let parsed = parse(q).unwrap();
        let want = events.iter().filter(|e| parsed.matches(e)).count() as u64;
        let got = search(&ix, q, 10);
        assert_eq!(got.total, want, "query {q}");
        assert!(
            got.hits.iter().all(|e| parsed.matches(e)),
            "query {q} returned a non-matching hit"
        );
    }
    // Ground truth from the structured CSV: HDFS template E13 is "Receiving block blk_<*> src: ... dest: ...".
    let csv = std::fs::read_to_string(format!(
        "{}/../../shared/data/loghub/HDFS/HDFS_2k.log_structured.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let e13 = csv
        .lines()
        .skip(1)
        .take(500)
        .filter(|l| l.contains(",E13,"))
        .count() as u64;
    assert!(e13 > 0);
    assert_eq!(
        search(&ix, "service:hdfs AND \"Receiving block\"", 1).total,
        e13
    );
}

#[test]
fn full_queue_answers_busy_instead_of_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(IndexerConfig {
        data_dir: dir.path().to_path_buf(),
        writer_memory_bytes: 64 * 1024 * 1024,
        writer_threads: 1,
        queue_batches: 1,
        ..IndexerConfig::default()
    })
    .unwrap();
    let big: Vec<Event> = (0..20_000).map(|i| event(i, "web", "x y z")).collect();
    let mut receivers = Vec::new();
    let mut busy = 0;
    for k in 0..50 {
        let batch: Vec<Event> = big
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.id = EventId(e.id.0 + k * 100_000);
                e
            })
            .collect();
        match ix.wal.submit(crate::wal::Prepared::new(batch)) {
            Ok(rx) => receivers.push(rx),
            Err(IndexerError::Busy { capacity: 1 }) => busy += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(busy > 0, "a queue of one batch must overflow");
    let rt = rt();
    for rx in receivers {
        rt.block_on(rx).unwrap().unwrap();
    }
    // The writer thread is still indexing: stop it before the directory goes, or it
    // makes the day's index again in a removed temporary directory.
    ix.close();
}

#[test]
fn tail_subscribers_see_stored_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let mut rx = ix.subscribe();
    let events: Vec<Event> = (0..10).map(|i| event(i, "web", &format!("m{i}"))).collect();
    rt().block_on(ix.ingest(events)).unwrap();
    ix.flush().unwrap();
    for i in 0..10 {
        assert_eq!(rx.try_recv().unwrap().message, format!("m{i}"));
    }
}

/// The loghub corpus spread over three days, with containers, levels and JSON numbers, so
/// wildcards, regexes and time and numeric ranges all have something to find and to miss.
fn varied_loghub_events() -> Vec<Event> {
    let mut events = Vec::new();
    for (s, system) in ["HDFS", "Apache", "Zookeeper", "OpenStack"]
        .iter()
        .enumerate()
    {
        for (i, line) in loghub_lines(system).into_iter().take(400).enumerate() {
            let n = (s * 1000 + i) as i64;
            let mut e = event(n, &system.to_lowercase(), &line);
            e.id = EventId(n as u128 + 1);
            // Every 8 hours or so, across 2026-11-18 .. 2026-11-20 (UTC).
            e.ts = Timestamp(BASE + (n % 7) * DAY_NS / 3 + n * 1_000_000);
            e.container_name = format!("{}-{}", system.to_lowercase(), n % 13);
            let fields = match n % 6 {
                0 => format!(
                    r#"{{"latency_ms": {}, "status": {}}}"#,
                    n % 500,
                    200 + n % 400
                ),
                1 => format!(
                    r#"{{"latency_ms": {}.5, "status": "{}"}}"#,
                    n % 400,
                    200 + n % 100
                ),
                2 => format!(
                    r#"{{"spans": [{{"ms": {}}}, {{"ms": [{}, 7]}}]}}"#,
                    n % 30,
                    n % 50
                ),
                3 => format!(r#"{{"big": {}, "neg": -{}}}"#, u64::MAX - n as u64, n % 20),
                4 => r#"{"latency_ms": "250", "code": "300", "ok": true}"#.to_string(),
                _ => "{}".to_string(),
            };
            e.fields = serde_json::from_str(&fields).unwrap();
            events.push(e);
        }
    }
    events
}

/// Wildcards, regexes and ranges mean the same in search and in the tail matcher.
#[test]
fn search_agrees_with_the_tail_matcher_on_patterns_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let events = varied_loghub_events();
    rt().block_on(ix.ingest(events.clone())).unwrap();
    ix.flush().unwrap();
    // (query, whether some events must match: guards against vacuous agreement)
    let queries = [
        ("service:hd*", true),
        ("service:*stack", true),
        ("service:?dfs", true),
        ("service:*", true),
        ("service:HD*", false),
        ("container:apache-?", true),
        ("container:apache-1?", true),
        ("container:/zookeeper-1[0-2]/", true),
        ("container:/(?i)HDFS-.*/", true),
        ("container:/hdfs/", false),
        ("service:/open.*|apache/", true),
        ("NOT service:/hdfs|apache/ AND container:*-3", true),
        ("level:w*", true),
        ("level:/WARN|error/", true),
        ("time*", true),
        ("timeout*", false),
        ("connect*", true),
        ("block*", true),
        ("*ing", true),
        ("pack?t*", true),
        ("Receiv*", true),
        ("message:/blk/", true),
        ("message:/[0-9]{3}/", true),
        ("message:/Recei.*/ AND NOT dfs*", true),
        ("service:(/hd.*/ OR apache) AND *ed", true),
        ("\"Received block\" OR verif*", true),
        ("ts:[2026-11-18 TO 2026-11-19]", true),
        ("ts:2026-11-19", true),
        ("ts:>2026-11-19", true),
        ("ts:{2026-11-18 TO *]", true),
        ("ts:<2026-11-19", true),
        ("ts:>=2026-11-19T11:06:40Z", true),
        (
            "ts:{2026-11-19T11:06:40.123Z TO 2026-11-20T03:00:00Z}",
            true,
        ),
        ("ts:[* TO *]", true),
        ("ts:<now", true),
        ("ts:>now+1000d", false),
        ("ts:(<2026-11-19 OR >2026-11-19) AND level:info", true),
        ("fields.latency_ms:>250", true),
        ("fields.latency_ms:[100 TO 250.5]", true),
        ("fields.latency_ms:{249 TO 251}", true),
        ("fields.latency_ms:{250.5 TO 251}", false),
        ("fields.latency_ms:[* TO *]", true),
        ("fields.status:[200 TO 299]", true),
        ("fields.status:>=500", true),
        ("fields.spans.ms:[10 TO 20]", true),
        ("fields.spans.ms:7", true),
        ("fields.spans.ms:{6 TO 8}", true),
        ("fields.big:>9223372036854775807", true),
        // Near 2^64 floats are 2048 apart: u64::MAX - n rounds to 2^64 or to 2^64 - 2048,
        // the same way on both sides.
        ("fields.big:[1e19 TO 1.8446744073709552e19]", true),
        ("fields.big:<1.8446744073709552e19", true),
        ("fields.big:<1.8446744073709e19", false),
        ("fields.big:>1e300", false),
        ("fields.neg:<-5", true),
        ("fields.neg:[-19.5 TO -0.5]", true),
        ("fields.code:[200 TO 300]", false),
        ("fields.ok:[0 TO 1]", false),
        ("fields.status:[500 TO *] AND level:info", true),
        ("NOT fields.latency_ms:<100 AND service:hdfs", true),
    ];
    let mut wrong = Vec::new();
    for (q, nonempty) in queries {
        let parsed = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        let want = events.iter().filter(|e| parsed.matches(e)).count() as u64;
        let got = ix
            .search(&SearchRequest {
                query: parsed.clone(),
                since: None,
                until: None,
                limit: 10,
                cursor: None,
            })
            .unwrap();
        if got.total != want || (want > 0) != nonempty {
            wrong.push(format!("{q}: search {} tail {want}", got.total));
        }
        assert!(
            got.hits.iter().all(|e| parsed.matches(e)),
            "query {q} returned a non-matching hit"
        );
    }
    assert!(
        wrong.is_empty(),
        "disagreements or vacuous queries: {wrong:#?}"
    );
}

#[test]
fn time_ranges_split_days_at_midnight_utc() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let midnight = Timestamp::parse_rfc3339("2026-11-19").unwrap().as_nanos();
    let events: Vec<Event> = [-2, -1, 0, 1]
        .iter()
        .enumerate()
        .map(|(k, delta)| {
            let mut e = event(k as i64, "web", &format!("m{k}"));
            e.ts = Timestamp(midnight + delta);
            e
        })
        .collect();
    rt().block_on(ix.ingest(events)).unwrap();
    ix.flush().unwrap();
    let count = |q: &str| search(&ix, q, 10).total;
    assert_eq!(count("ts:2026-11-18"), 2);
    assert_eq!(count("ts:[2026-11-18 TO 2026-11-19]"), 4);
    assert_eq!(count("ts:>2026-11-18"), 2);
    assert_eq!(count("ts:<2026-11-19"), 2);
    assert_eq!(count("ts:>=2026-11-19T00:00:00Z"), 2);
    assert_eq!(count("ts:>2026-11-19T00:00:00Z"), 1);
    assert_eq!(
        count("ts:{2026-11-18T23:59:59.999999998Z TO 2026-11-19T00:00:00Z]"),
        2
    );
}

/// Every prediction indexed is in the audit chain once, also after a restart replays the
/// same ids; logs never are.
#[test]
fn predictions_are_chained_once_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let make = |i: i64| {
        let mut e = event(i, "model-server", "");
        // Recent, so the restarted indexer's id window covers them.
        e.ts = now.offset(-i * 1_000_000);
        if i % 3 != 0 {
            e.kind = shiplog_core::Kind::Prediction;
            e.model = Some("churn".into());
            e.request_id = Some(format!("req-{i}"));
        }
        e
    };
    let events: Vec<Event> = (0..300).map(make).collect();
    {
        let ix = open(dir.path());
        rt().block_on(ix.ingest(events.clone())).unwrap();
        ix.flush().unwrap();
        ix.close();
    }
    {
        // A sender retrying the whole batch after a restart: nothing new anywhere.
        let ix = open(dir.path());
        let ack = rt().block_on(ix.ingest(events)).unwrap();
        assert_eq!(ack.duplicates, 300);
        ix.flush().unwrap();
        ix.close();
    }
    let reports = crate::audit::verify(&crate::audit::audit_dir(dir.path()), None, None).unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].mismatch.is_none(), "{reports:?}");
    assert_eq!(reports[0].records, 200, "predictions only, once each");
}

#[test]
fn a_spent_budget_stops_searches_aggregations_and_spans_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    let events: Vec<Event> = loghub_lines("HDFS")
        .iter()
        .enumerate()
        .map(|(i, l)| event(i as i64 * 60_000, "hdfs", l))
        .collect();
    rt().block_on(ix.ingest(events)).unwrap();
    ix.flush().unwrap();
    let heavy = vec!["*a*"; 50].join(" OR ");
    let req = SearchRequest {
        query: parse(&heavy).unwrap(),
        since: None,
        until: None,
        limit: 10,
        cursor: None,
    };
    // The same work with budget to spare answers, so the refusals below are the budget's.
    let fine = Budget::new(Duration::from_secs(3600)).run(|| ix.search(&req));
    assert!(fine.unwrap().total > 0);

    let spent = Budget::unlimited();
    spent.cancel();
    let e = spent.run(|| ix.search(&req)).unwrap_err();
    assert!(matches!(e, IndexerError::Cancelled), "{e:?}");
    let agg = aggregate::AggregateRequest {
        query: req.query.clone(),
        since: Timestamp(BASE - DAY_NS),
        until: Timestamp(BASE + 3 * DAY_NS),
        aggs: vec![("n".into(), aggregate::AggSpec::Count)],
    };
    let e = spent.run(|| ix.aggregate(&agg)).unwrap_err();
    assert!(matches!(e, IndexerError::Cancelled), "{e:?}");
    let e = spent
        .run(|| ix.time_span(&req.query, None, None))
        .unwrap_err();
    assert!(matches!(e, IndexerError::Cancelled), "{e:?}");
    // A deadline that passes counts the same as a cancel.
    let e = Budget::new(Duration::ZERO)
        .run(|| ix.search(&req))
        .unwrap_err();
    assert!(matches!(e, IndexerError::Cancelled), "{e:?}");
    // Outside a budget nothing is cancelled.
    assert!(ix.search(&req).unwrap().total > 0);
    ix.close();
}

#[test]
fn a_page_capped_by_bytes_stops_short_and_its_cursor_reaches_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let ix = open(dir.path());
    // 30 events of ~10 KB; ties in time across page edges too (three per millisecond).
    let events: Vec<Event> = (0..30)
        .map(|i| {
            let mut e = event(i / 3, "big", &format!("event {i} {}", "x".repeat(10_000)));
            e.id = EventId(i as u128 + 1);
            e
        })
        .collect();
    rt().block_on(ix.ingest(events)).unwrap();
    ix.flush().unwrap();
    let mut req = SearchRequest {
        query: shiplog_core::query::Query::All,
        since: None,
        until: None,
        limit: 100,
        cursor: None,
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = ix.search_capped(&req, 35_000).unwrap();
        pages += 1;
        assert_eq!(
            page.total, 30,
            "the total counts the whole window on every page"
        );
        let bytes: usize = page
            .hits
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap().len())
            .sum();
        assert!(
            page.hits.len() == 1 || bytes <= 35_000 + 1_000,
            "{bytes} bytes"
        );
        assert!(!page.hits.is_empty());
        seen.extend(page.hits.iter().map(|e| e.id.0));
        match page.next_cursor {
            Some(c) => {
                assert!(page.truncated, "a short page with a cursor says why");
                req.cursor = Some(c);
            }
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    assert!(pages >= 10, "pages of ~3 events: {pages}");
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 30, "every event once: {seen:?}");
    assert_eq!(seen.len(), 30, "no event twice: {seen:?}");
    // Newest first across pages.
    let ts: Vec<u128> = seen.iter().map(|id| (id - 1) / 3).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "{ts:?}");
    // One event bigger than the cap still comes back, one per page.
    req.cursor = None;
    let page = ix.search_capped(&req, 100).unwrap();
    assert_eq!(page.hits.len(), 1);
    assert!(page.truncated && page.next_cursor.is_some());
    // Uncapped, the page is whole.
    let page = ix.search(&req).unwrap();
    assert_eq!(page.hits.len(), 30);
    assert!(!page.truncated && page.next_cursor.is_none());
    ix.close();
}

#[test]
fn a_second_indexer_on_a_directory_in_use_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = Indexer::open(IndexerConfig {
        data_dir: dir.path().to_path_buf(),
        ..IndexerConfig::default()
    })
    .err()
    .expect("a second indexer opened a directory in use");
    let text = err.to_string();
    assert!(matches!(err, IndexerError::InUse { .. }), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("--data-dir"), "{text}");
    drop(first);
    // Once the first is gone the directory is free again.
    drop(open(dir.path()));
}
