//! Tests of the disk buffer's files: order, caps, crashes, damage, old versions.

use std::sync::Arc;

use bytes::Bytes;
use shiplog_core::{Stream, Timestamp};

use super::*;
use crate::checkpoint::{Position, SourcePosition};
use crate::sink::EncodedBatch;

/// A batch whose body and positions tell which one it is.
fn batch(n: u32, body_len: usize) -> BufferedBatch {
    BufferedBatch {
        batch: EncodedBatch {
            batch_id: format!("batch-{n}"),
            events: n as usize,
            body: Bytes::from(vec![(n % 251) as u8; body_len]),
        },
        positions: vec![SourcePosition {
            container_id: Arc::from("c1"),
            stream: Stream::Stdout,
            position: Position {
                ts: Timestamp(i64::from(n)),
                seq: n,
            },
        }],
    }
}

fn open(dir: &Path, max: u64, segment: u64) -> DiskBuffer {
    DiskBuffer::open(dir, max, segment).unwrap()
}

/// Pops everything, returning the batch numbers in the order they came out.
fn drain(buffer: &mut DiskBuffer) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(front) = buffer.front().unwrap() {
        out.push(front.unwrap().positions[0].position.seq);
        buffer.pop_front().unwrap();
    }
    out
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn round_trips_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut buffer = open(dir.path(), 1 << 20, SEGMENT_BYTES);
    assert!(buffer.front().unwrap().is_none());
    let sent = batch(7, 100);
    buffer.append(&sent, false).unwrap();
    assert_eq!(buffer.batches(), 1);
    assert_eq!(buffer.front().unwrap().unwrap().unwrap(), sent);
    // Still there after a reopen.
    drop(buffer);
    let mut buffer = open(dir.path(), 1 << 20, SEGMENT_BYTES);
    assert_eq!(buffer.front().unwrap().unwrap().unwrap(), sent);
    buffer.pop_front().unwrap();
    assert!(buffer.is_empty());
}

#[test]
fn keeps_order_across_segments_and_reopens_and_drains_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: about three records each.
    let mut buffer = open(dir.path(), 1 << 20, 400);
    for n in 0..10 {
        buffer.append(&batch(n, 100), false).unwrap();
    }
    assert!(files(dir.path()).len() >= 3, "{:?}", files(dir.path()));
    // Take two, reopen, append more: the rest come out in order.
    assert_eq!(buffer.front().unwrap().unwrap().unwrap(), batch(0, 100));
    buffer.pop_front().unwrap();
    buffer.pop_front().unwrap();
    drop(buffer);
    let mut buffer = open(dir.path(), 1 << 20, 400);
    for n in 10..15 {
        buffer.append(&batch(n, 100), false).unwrap();
    }
    let order = drain(&mut buffer);
    // The first segment's popped records are replayed again after a reopen (at-least-once).
    let expected_tail: Vec<u32> = (2..15).collect();
    assert!(order.ends_with(&expected_tail), "{order:?}");
    assert!(order.len() <= 15, "{order:?}");
    assert_eq!(buffer.bytes(), 0);
    assert_eq!(buffer.batches(), 0);
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
}

#[test]
fn enforces_the_cap_but_always_takes_one_batch_and_forced_ones() {
    let dir = tempfile::tempdir().unwrap();
    let one = segment::FRAME_BYTES + batch(0, 100).encode().len() as u64;
    let mut buffer = open(dir.path(), one * 3, SEGMENT_BYTES);
    for n in 0..3 {
        buffer.append(&batch(n, 100), false).unwrap();
    }
    let err = buffer.append(&batch(3, 100), false).unwrap_err();
    assert!(matches!(err, AppendError::Full { .. }), "{err}");
    assert!(err.to_string().contains("cap"), "{err}");
    assert_eq!(buffer.batches(), 3);
    // Room again after a pop.
    buffer.pop_front().unwrap();
    buffer.append(&batch(3, 100), false).unwrap();
    // Forced (shutdown) past the cap.
    buffer.append(&batch(4, 100), true).unwrap();
    assert_eq!(drain(&mut buffer), [1, 2, 3, 4]);

    // A lone batch bigger than the cap still goes in.
    let mut tiny = open(&dir.path().join("tiny"), 10, SEGMENT_BYTES);
    tiny.append(&batch(9, 100), false).unwrap();
    assert!(matches!(
        tiny.append(&batch(10, 1), false),
        Err(AppendError::Full { .. })
    ));
}

/// Both full-buffer policies, through the shared async buffer and the batcher's spill.
#[tokio::test]
async fn full_policies_block_or_drop_newest() {
    let dir = tempfile::tempdir().unwrap();
    let one = segment::FRAME_BYTES + batch(0, 100).encode().len() as u64;
    for policy in [WhenFull::Block, WhenFull::DropNewest] {
        let path = dir.path().join(format!("{policy:?}"));
        let buffer = Arc::new(Buffer::open(&path, one * 2, policy).unwrap());
        assert_eq!(buffer.when_full, policy);
        buffer.append(batch(0, 100), false).await.unwrap();
        buffer.append(batch(1, 100), false).await.unwrap();
        let (back, err) = buffer.append(batch(2, 100), false).await.unwrap_err();
        assert!(matches!(err, AppendError::Full { .. }));
        assert_eq!(back, batch(2, 100), "the batch is handed back whole");
        assert_eq!(buffer.batches(), 2);
        assert_eq!(buffer.bytes(), one * 2);
    }
}

/// A filling buffer warns once per level passed, and again only after it drained.
#[tokio::test]
async fn filling_is_warned_once_per_level_until_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let one = segment::FRAME_BYTES + batch(0, 100).encode().len() as u64;
    let buffer = Arc::new(Buffer::open(dir.path(), one * 10, WhenFull::Block).unwrap());
    let level = |b: &Buffer| b.warned.load(std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for n in 0..10 {
        buffer.append(batch(n, 100), false).await.unwrap();
        seen.push(level(&buffer));
    }
    assert_eq!(seen, [0, 0, 0, 0, 50, 50, 50, 80, 80, 95]);
    for _ in 0..9 {
        buffer.pop_front().await.unwrap();
    }
    assert_eq!(level(&buffer), 95, "not drained yet");
    buffer.pop_front().await.unwrap();
    assert_eq!(level(&buffer), 0);
}

#[test]
fn a_torn_tail_is_cut_at_every_truncation_point() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let mut buffer = open(&source, 1 << 20, SEGMENT_BYTES);
    for n in 0..3 {
        buffer.append(&batch(n, 20), false).unwrap();
    }
    drop(buffer);
    let name = files(&source).pop().unwrap();
    let whole = std::fs::read(source.join(&name)).unwrap();
    let scan = segment::scan(&whole[segment::HEADER_BYTES as usize..]).unwrap();
    let ends: Vec<u64> = scan.records.iter().map(|r| r.offset + r.len).collect();

    for cut in 0..whole.len() {
        let case = dir.path().join(format!("cut-{cut}"));
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(case.join(&name), &whole[..cut]).unwrap();
        let mut buffer = open(&case, 1 << 20, SEGMENT_BYTES);
        let whole_records = ends.iter().filter(|&&end| end <= cut as u64).count();
        assert_eq!(buffer.batches(), whole_records as u64, "cut at {cut}");
        // The file is cut back to its last whole record (or removed when none is left).
        let left = std::fs::metadata(case.join(&name)).map_or(0, |m| m.len());
        let expected = if whole_records == 0 {
            0
        } else {
            ends[whole_records - 1]
        };
        assert_eq!(left, expected, "cut at {cut}");
        // And appending after the cut works and keeps order.
        buffer.append(&batch(99, 20), false).unwrap();
        let mut expected_order: Vec<u32> = (0..whole_records as u32).collect();
        expected_order.push(99);
        assert_eq!(drain(&mut buffer), expected_order, "cut at {cut}");
    }
}

#[test]
fn a_flipped_byte_stops_reading_at_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut buffer = open(dir.path(), 1 << 20, SEGMENT_BYTES);
    for n in 0..3 {
        buffer.append(&batch(n, 20), false).unwrap();
    }
    drop(buffer);
    let name = files(dir.path()).pop().unwrap();
    let path = dir.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let scan = segment::scan(&bytes[segment::HEADER_BYTES as usize..]).unwrap();
    // Flip a byte inside the second record's payload.
    let second = scan.records[1];
    bytes[(second.offset + segment::FRAME_BYTES + 3) as usize] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let mut buffer = open(dir.path(), 1 << 20, SEGMENT_BYTES);
    assert_eq!(drain(&mut buffer), [0]);
}

#[test]
fn foreign_files_are_set_aside_and_other_versions_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00000000000000000001.seg"),
        b"not a segment at all",
    )
    .unwrap();
    let mut newer = segment::header().to_vec();
    newer[8] = 9;
    std::fs::write(dir.path().join("00000000000000000002.seg"), &newer).unwrap();
    let mut buffer = open(dir.path(), 1 << 20, SEGMENT_BYTES);
    assert!(buffer.is_empty());
    buffer.append(&batch(1, 5), false).unwrap();
    let names = files(dir.path());
    assert!(
        names.contains(&"00000000000000000001.bad".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"00000000000000000002.seg".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"00000000000000000003.seg".to_string()),
        "{names:?}"
    );
}

/// The version 1 fixture: two batches, written by the first build with a disk buffer.
const FIXTURE_V1: &[u8] = include_bytes!("../../testdata/buffer-segment-v1.seg");

#[test]
fn reads_the_version_1_fixture() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000000.seg"), FIXTURE_V1).unwrap();
    let mut buffer = open(dir.path(), 1 << 20, SEGMENT_BYTES);
    assert_eq!(buffer.batches(), 2);
    let first = buffer.front().unwrap().unwrap().unwrap();
    assert_eq!(first.batch.events, 2);
    assert_eq!(first.positions.len(), 2);
    assert_eq!(&*first.positions[0].container_id, "4f1c2a9e0b7d");
    assert_eq!(first.positions[1].stream, Stream::Stderr);
    let events = first.batch.decode().unwrap();
    assert_eq!(events[0].message, "fixture line 1");
    assert_eq!(events[1].message, "fixture line 2");
    assert_eq!(
        first.batch.batch_id,
        EncodedBatch::encode(&events).batch_id,
        "batch ids are derived the same way"
    );
    buffer.pop_front().unwrap();
    let second = buffer.front().unwrap().unwrap().unwrap();
    assert_eq!(second.batch.decode().unwrap()[0].message, "fixture line 3");
    buffer.pop_front().unwrap();
    assert!(buffer.is_empty());
}

/// Writes the fixture; run by hand with `--ignored` only when adding a new version's.
#[test]
#[ignore = "writes testdata; run by hand when a format version is added"]
fn write_the_version_1_fixture() {
    use shiplog_core::{Event, EventId};
    let event = |n: i64, stream: Stream| {
        let mut e = Event::log(
            Timestamp(1_795_000_000_000_000_000 + n),
            format!("fixture line {n}"),
        );
        e.id = EventId::for_source("node-1", "4f1c2a9e0b7d", stream.as_str(), e.ts, 0);
        e.container_id = "4f1c2a9e0b7d".into();
        e.container_name = "web".into();
        e.stream = Some(stream);
        e
    };
    let position = |e: &Event| SourcePosition {
        container_id: Arc::from(e.container_id.as_str()),
        stream: e.stream.unwrap(),
        position: Position { ts: e.ts, seq: 0 },
    };
    let dir = tempfile::tempdir().unwrap();
    let mut buffer = open(dir.path(), 1 << 20, SEGMENT_BYTES);
    let first = [event(1, Stream::Stdout), event(2, Stream::Stderr)];
    let second = [event(3, Stream::Stdout)];
    for events in [&first[..], &second[..]] {
        buffer
            .append(
                &BufferedBatch {
                    batch: EncodedBatch::encode(events),
                    positions: events.iter().map(position).collect(),
                },
                false,
            )
            .unwrap();
    }
    let name = files(dir.path()).pop().unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/buffer-segment-v1.seg");
    std::fs::copy(dir.path().join(name), out).unwrap();
}
