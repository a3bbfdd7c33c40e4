//! What an exact `total` costs a search, measured on one large day index.
//!
//! A search page is the newest `limit` hits by `ts`. With no index sort, tantivy has to visit
//! every match to find them, so counting those matches in the same pass only adds an
//! increment per document. This example builds an index of `EVENTS` synthetic events
//! (default 5,000,000; set the `EVENTS` environment variable to change it) and times, per
//! query, the newest 100 hits alone, the same pass with an exact count, a separate count
//! pass, and the whole `search` function, so the cost of counting exactly can be read off
//! against what an Elasticsearch-style cap at 10,000 could save.
//!
//! ```sh
//! cargo run --release -p shiplog-indexer --example total_count_cost
//! ```

use std::time::{Duration, Instant};

use shiplog_core::query::{KeywordField, Query};
use shiplog_core::{Event, EventId, Level, Timestamp};
use shiplog_indexer::compile::{compile, within};
use shiplog_indexer::schema::{Fields, index_settings};
use shiplog_indexer::search::{SearchRequest, search};
use shiplog_indexer::store::Store;
use tantivy::collector::{Count, TopDocs};
use tantivy::{DateTime, Index, Order};

const DAY: &str = "2026-11-22";
const RUNS: usize = 7;

fn build(dir: &std::path::Path, events: usize) -> tantivy::Result<()> {
    let fields = Fields::new();
    let path = dir.join("logs").join(DAY);
    std::fs::create_dir_all(&path)?;
    let index = Index::builder()
        .schema(fields.schema.clone())
        .settings(index_settings())
        .create_in_dir(&path)?;
    fields.register_analyzers(&index);
    let mut writer = index.writer_with_num_threads::<tantivy::TantivyDocument>(1, 256 << 20)?;
    let start = Timestamp::parse_rfc3339("2026-11-22T00:00:00Z")
        .expect("valid time")
        .as_nanos();
    let step = 86_000_000_000_000 / events as i64;
    for i in 0..events {
        let rare = if i % 100 == 0 { " checkout" } else { "" };
        let mut e = Event::log(
            Timestamp(start + i as i64 * step),
            format!("request {i} served in {} ms{rare}", i % 500),
        );
        e.id = EventId(i as u128 + 1);
        e.service = format!("svc-{}", i % 10);
        e.level = Some(match i % 20 {
            0 => Level::Error,
            1..=3 => Level::Warn,
            _ => Level::Info,
        });
        let source = serde_json::to_vec(&e).expect("events serialise");
        writer.add_document(fields.document(&e, &source))?;
        if (i + 1) % 500_000 == 0 {
            writer.commit()?;
        }
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    Ok(())
}

/// Median of `RUNS` timings of `f`.
fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    build(dir.path(), events)?;
    println!("indexed {events} events in {:.1?}", t.elapsed());
    let store = Store::open(dir.path(), Fields::new())?;
    let fields = store.fields().clone();
    let day = store.all_days().pop().expect("one day");
    day.reader.reload()?;
    let searcher = day.reader.searcher();
    println!("segments: {}", searcher.segment_readers().len());
    let since = Timestamp::parse_rfc3339("2026-11-22T00:00:00Z")?;
    let until = Timestamp::parse_rfc3339("2026-11-23T00:00:00Z")?;
    let queries = [
        ("everything", Query::All),
        (
            "level:info",
            Query::Keyword {
                field: KeywordField::Level,
                value: "info".into(),
            },
        ),
        (
            "checkout",
            Query::Text {
                terms: vec!["checkout".into()],
            },
        ),
        (
            "\"served in\"",
            Query::Text {
                terms: vec!["served".into(), "in".into()],
            },
        ),
        (
            "NOT error",
            Query::Not(Box::new(Query::Keyword {
                field: KeywordField::Level,
                value: "error".into(),
            })),
        ),
    ];
    println!(
        "{:<12} {:>9} {:>10} {:>12} {:>11} {:>10}",
        "query", "matches", "top100", "top100+count", "count alone", "search()"
    );
    for (name, q) in queries {
        let tq = within(&fields, compile(&fields, &q), Some(since), Some(until));
        let top = || TopDocs::with_limit(100).order_by_fast_field::<DateTime>("ts", Order::Desc);
        let matches = searcher.search(&*tq, &Count)?;
        let top_only = median(|| {
            searcher.search(&*tq, &top()).expect("search");
        });
        let top_count = median(|| {
            searcher.search(&*tq, &(Count, top())).expect("search");
        });
        let count_only = median(|| {
            searcher.search(&*tq, &Count).expect("search");
        });
        let req = SearchRequest {
            query: q.clone(),
            since: Some(since),
            until: Some(until),
            limit: 100,
            cursor: None,
        };
        let whole = median(|| {
            search(&store, &req).expect("search");
        });
        println!(
            "{name:<12} {matches:>9} {top_only:>10.1?} {top_count:>12.1?} {count_only:>11.1?} {whole:>10.1?}"
        );
    }
    Ok(())
}
