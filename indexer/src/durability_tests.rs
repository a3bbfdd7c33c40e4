//! Recovery from the write-ahead log: damaged tails, flipped bytes, repeated replays.

use std::path::Path;
use std::time::Duration;

use shiplog_core::query::parse;
use shiplog_core::{Event, EventId, Timestamp};

use super::*;
use crate::wal::{payload, record, segment_name};

fn config(dir: &Path) -> IndexerConfig {
    IndexerConfig {
        data_dir: dir.to_path_buf(),
        writer_memory_bytes: 64 * 1024 * 1024,
        writer_threads: 1,
        commit_interval: Duration::from_millis(200),
        min_commit_interval: Duration::from_millis(10),
        ..IndexerConfig::default()
    }
}

fn batch(k: u64, n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = Event::log(Timestamp::now(), format!("batch{k} item{i}"));
            e.id = EventId(u128::from(k) << 32 | u128::from(i));
            e.service = "wal".into();
            e
        })
        .collect()
}

/// Writes segment 1 holding one record per batch, as a crashed node would have left it.
fn crashed_wal(data_dir: &Path, batches: &[Vec<Event>]) -> Vec<u8> {
    let dir = data_dir.join("wal");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = record::header().to_vec();
    for (i, b) in batches.iter().enumerate() {
        let sources: Vec<Vec<u8>> = b.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
        record::encode(i as u64 + 1, &payload(&sources), &mut bytes);
    }
    std::fs::write(dir.join(segment_name(1)), &bytes).unwrap();
    bytes
}

fn count(ix: &Indexer, q: &str) -> u64 {
    ix.search(&SearchRequest {
        query: parse(q).unwrap(),
        since: None,
        until: None,
        limit: 1,
        cursor: None,
    })
    .unwrap()
    .total
}

#[test]
fn replay_indexes_what_the_crash_left_uncommitted_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    crashed_wal(dir.path(), &[batch(1, 10), batch(2, 10), batch(3, 10)]);
    let (ix, rec) = Indexer::open_with_recovery(config(dir.path())).unwrap();
    assert_eq!(
        (rec.batches, rec.events, rec.damage.len()),
        (3, 30, 0),
        "{rec:?}"
    );
    assert_eq!(count(&ix, "service:wal"), 30);
    ix.close();
    // The checkpoint now covers the replay: a second start replays nothing and stores no copy.
    let (ix, rec) = Indexer::open_with_recovery(config(dir.path())).unwrap();
    assert_eq!(rec.events, 0, "{rec:?}");
    assert_eq!(count(&ix, "service:wal"), 30);
}

#[test]
fn a_truncated_last_record_keeps_every_record_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = crashed_wal(dir.path(), &[batch(1, 5), batch(2, 5), batch(3, 5)]);
    let seg = dir.path().join("wal").join(segment_name(1));
    std::fs::write(&seg, &bytes[..bytes.len() - 7]).unwrap();
    let (ix, rec) = Indexer::open_with_recovery(config(dir.path())).unwrap();
    assert_eq!(rec.events, 10, "{rec:?}");
    assert_eq!(rec.damage.len(), 1);
    assert!(
        rec.damage[0].contains("torn") && rec.damage[0].contains("discarded"),
        "{:?}",
        rec.damage
    );
    assert_eq!(count(&ix, "batch1"), 5);
    assert_eq!(count(&ix, "batch2"), 5);
    assert_eq!(count(&ix, "batch3"), 0);
    // New ingest works after the cut.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(ix.ingest(batch(4, 3))).unwrap().accepted, 3);
    ix.flush().unwrap();
    assert_eq!(count(&ix, "service:wal"), 13);
}

#[test]
fn a_flipped_byte_mid_file_keeps_the_records_before_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<u8> = {
        let sources: Vec<Vec<u8>> = batch(1, 4)
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap())
            .collect();
        payload(&sources)
    };
    let mut bytes = crashed_wal(
        dir.path(),
        &[batch(1, 4), batch(2, 4), batch(3, 4), batch(4, 4)],
    );
    // A byte inside the second record's payload.
    let at = (record::HEADER_LEN + record::FRAME_LEN) as usize
        + first.len()
        + record::FRAME_LEN as usize
        + 3;
    bytes[at] ^= 0x10;
    std::fs::write(dir.path().join("wal").join(segment_name(1)), &bytes).unwrap();
    let (ix, rec) = Indexer::open_with_recovery(config(dir.path())).unwrap();
    assert_eq!(rec.events, 4, "{rec:?}");
    assert!(rec.damage[0].contains("checksum"), "{:?}", rec.damage);
    assert_eq!(count(&ix, "service:wal"), 4);
    assert_eq!(count(&ix, "batch1"), 4);
}

#[test]
fn acked_batches_survive_an_unclean_stop_and_retries_after_restart_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = config(dir.path());
    // No commit happens while the first indexer runs: everything must come from the WAL.
    cfg.commit_interval = Duration::from_secs(3600);
    cfg.min_commit_interval = Duration::from_secs(3600);
    let older = |k| {
        let mut b = batch(k, 20);
        for e in &mut b {
            e.ts = Timestamp::now().offset(-60 * 1_000_000_000);
        }
        b
    };
    {
        let ix = Indexer::open(cfg.clone()).unwrap();
        for k in 0..5 {
            assert_eq!(rt.block_on(ix.ingest(older(k))).unwrap().accepted, 20);
        }
        // Simulate the process dying: the WAL thread stops, the writer never commits.
        ix.wal.shutdown();
        std::mem::forget(ix);
    }
    // The dead writer still holds tantivy's lock on today's index in this process, so the
    // restart uses a copy of the directory, as a new process would see it.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let _ = std::fs::remove_file(
        copy.path()
            .join("logs")
            .join(Timestamp::now().day_string())
            .join(".tantivy-writer.lock"),
    );
    let (ix, rec) = Indexer::open_with_recovery(config(copy.path())).unwrap();
    assert_eq!(rec.events, 100, "{rec:?}");
    assert_eq!(count(&ix, "service:wal"), 100);
    // A sender that never saw its acks retries everything: nothing is stored twice.
    for k in 0..5 {
        assert_eq!(rt.block_on(ix.ingest(older(k))).unwrap().duplicates, 20);
    }
    ix.flush().unwrap();
    assert_eq!(count(&ix, "service:wal"), 100);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if let Err(e) = std::fs::copy(entry.path(), &target) {
            // tantivy's threads in the "dead" process may still delete temporary files.
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        }
    }
}

#[test]
fn retention_drops_old_days_whole_and_searches_see_whole_days_only() {
    use crate::retention::{RetentionPolicy, RetentionStep};
    use shiplog_core::Kind;
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(config(dir.path())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const DAY: i64 = 86_400 * 1_000_000_000;
    let mut n = 0u128;
    // Days 20, 10, 3 and 0 days ago, 500 logs and 100 metrics each.
    for age in [20i64, 10, 3, 0] {
        let mut events = Vec::new();
        for i in 0..600 {
            n += 1;
            let mut e = Event::log(
                Timestamp::now().offset(-age * DAY - i),
                format!("age{age} item{i}"),
            );
            e.id = EventId(n);
            e.kind = if i < 500 { Kind::Log } else { Kind::Metric };
            events.push(e);
        }
        rt.block_on(ix.ingest(events)).unwrap();
    }
    ix.flush().unwrap();
    assert_eq!(count(&ix, ""), 2400);
    let policy = RetentionPolicy {
        logs: Duration::from_secs(7 * 86_400),
        metrics: Duration::from_secs(15 * 86_400),
        ..RetentionPolicy::default()
    };
    let dry = ix.retention(policy, true).unwrap();
    // These metric events have no name or value: the roll-ups of days -10 and -3 keep them.
    assert_eq!(dry.steps.len(), 4, "{dry:?}");
    assert!(
        matches!(
            &dry.steps[0],
            RetentionStep::DropDay {
                events: 600,
                reason: "age",
                ..
            }
        ),
        "{dry:?}"
    );
    assert!(
        matches!(
            &dry.steps[1],
            RetentionStep::DeleteKind {
                kind: Kind::Log,
                events: 500,
                ..
            }
        ),
        "{dry:?}"
    );
    assert_eq!(count(&ix, ""), 2400, "a dry run changes nothing");

    // Searches running while retention applies see each day whole or not at all.
    let ix = std::sync::Arc::new(ix);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (ix, stop) = (ix.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.insert(count(&ix, ""));
            }
            seen
        })
    };
    let applied = ix.retention(policy, false).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    // Before: 2400; after dropping the oldest day: 1800; after deleting day -10's logs: 1300.
    assert!(
        seen.iter().all(|c| [2400, 1800, 1300].contains(c)),
        "a search saw part of a day: {seen:?}"
    );
    assert_eq!(applied, dry);
    assert_eq!(count(&ix, ""), 1300);
    assert_eq!(count(&ix, "age20"), 0);
    assert_eq!(
        count(&ix, "age10"),
        100,
        "metrics of day -10 are kept for 15 days"
    );
    assert_eq!(count(&ix, "age3"), 600);
    assert!(
        !dir.path()
            .join("logs")
            .join(Timestamp::now().offset(-20 * DAY).day_string())
            .exists()
    );
}

#[test]
fn metric_samples_older_than_a_day_are_rolled_up_per_minute_in_one_commit() {
    use crate::retention::{RetentionPolicy, RetentionStep};
    use shiplog_core::Kind;
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(config(dir.path())).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const SEC: i64 = 1_000_000_000;
    // Three days ago, 10 minutes of samples every 10 s for two containers.
    let start = Timestamp(
        Timestamp::now().offset(-3 * 86_400 * SEC).as_nanos() / (3600 * SEC) * (3600 * SEC),
    );
    let mut events = Vec::new();
    for c in ["c1", "c2"] {
        for i in 0..60 {
            let mut e = Event::log(start.offset(i * 10 * SEC), "");
            e.kind = Kind::Metric;
            e.container_id = c.into();
            e.container_name = format!("{c}-name");
            e.name = Some("cpu_percent".into());
            e.value = Some(i as f64);
            e.id = EventId::for_content(&[c.as_bytes(), &i.to_le_bytes()]);
            events.push(e);
        }
    }
    rt.block_on(ix.ingest(events)).unwrap();
    ix.flush().unwrap();
    assert_eq!(count(&ix, "kind:metric"), 120);
    let plan = ix.retention(RetentionPolicy::default(), false).unwrap();
    assert!(
        matches!(
            &plan.steps[..],
            [RetentionStep::RollUpMetrics { samples: 120, .. }]
        ),
        "{plan:?}"
    );
    assert_eq!(
        count(&ix, "kind:metric"),
        20,
        "two containers x ten minutes"
    );
    assert_eq!(count(&ix, "kind:metric AND fields.resolution:1m"), 20);
    let first = ix
        .search(&SearchRequest {
            query: parse("container:c1-name").unwrap(),
            since: None,
            until: None,
            limit: 100,
            cursor: None,
        })
        .unwrap()
        .hits
        .into_iter()
        .min_by_key(|e| e.ts)
        .unwrap();
    assert_eq!(first.fields["count"], 6);
    assert_eq!(first.fields["min"], 0.0);
    assert_eq!(first.fields["max"], 5.0);
    assert_eq!(first.value, Some(2.5));
    // Nothing left to roll up; a second run is a no-op.
    assert!(
        ix.retention(RetentionPolicy::default(), true)
            .unwrap()
            .steps
            .is_empty()
    );
}

#[test]
fn a_batch_hopping_between_days_opens_each_day_writer_once() {
    let dir = tempfile::tempdir().unwrap();
    let ix = Indexer::open(config(dir.path())).unwrap();
    const DAY: i64 = 86_400 * 1_000_000_000;
    let base = 1_795_000_000_000_000_000;
    // Three days, interleaved line by line: with two day writers open at most, adding
    // them in the order sent would commit at nearly every line.
    let events: Vec<Event> = (0..300i64)
        .map(|i| {
            let mut e = Event::log(Timestamp(base + (i % 3) * DAY + i), format!("line {i}"));
            e.id = shiplog_core::EventId(i as u128 + 1);
            e
        })
        .collect();
    let before = ix.stats().commits;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(ix.ingest(events))
        .unwrap();
    ix.flush().unwrap();
    let commits = ix.stats().commits - before;
    assert!(
        commits <= 3,
        "{commits} commits for one batch on three days"
    );
    assert_eq!(count(&ix, ""), 300);
    assert_eq!(
        std::fs::read_dir(dir.path().join("logs")).unwrap().count(),
        3
    );
}

/// A clean stop leaves an empty segment named after the next sequence number; the restart
/// opens its active segment under that same name. The WAL must not then delete it as an
/// old, covered segment: every batch acknowledged after the restart would live only in an
/// unlinked file until the next commit, and a crash or a failed commit would lose them.
#[test]
fn batches_acknowledged_after_a_clean_restart_are_in_the_wal_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ix = Indexer::open(config(dir.path())).unwrap();
    rt.block_on(ix.ingest(batch(1, 3))).unwrap();
    ix.flush().unwrap();
    ix.close();
    drop(ix);
    // No commit after the restart: what was acknowledged lives in the WAL only.
    let quiet = IndexerConfig {
        commit_interval: Duration::from_secs(3_600),
        min_commit_interval: Duration::from_secs(3_600),
        ..config(dir.path())
    };
    let ix = Indexer::open(quiet).unwrap();
    rt.block_on(ix.ingest(batch(2, 3))).unwrap();
    // The WAL thread releases covered segments when idle (every 500 ms).
    std::thread::sleep(Duration::from_millis(1_500));
    let on_disk = wal::replay::scan_readonly(&dir.path().join("wal"), 0).unwrap();
    let events: usize = on_disk
        .iter()
        .map(|r| wal::replay::decode(r).unwrap().0.len())
        .sum();
    assert_eq!(events, 3, "the acknowledged batch is in a WAL file on disk");
    ix.close();
    assert_eq!(count(&Indexer::open(config(dir.path())).unwrap(), ""), 6);
}
