//! The audit chain on real files: appends across days and restarts, crash tails, and every
//! kind of tampering against `verify` with and without exported roots.

use std::path::{Path, PathBuf};

use shiplog_core::{EventId, Timestamp};

use super::format::{self, Digest, HEADER_LEN, PREFIX_LEN, SUFFIX_LEN, genesis, link};
use super::root::{chain_path, root_path, write_root};
use super::*;

const DAY: &str = "2026-11-20";
const N: usize = 5_000;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

/// A prediction event as the indexer stores it, about 300 bytes.
pub(crate) fn prediction(i: usize) -> Vec<u8> {
    format!(
        concat!(
            r#"{{"id":"{:032x}","ts":"2026-11-20T10:00:{:02}.{:09}Z","kind":"prediction","#,
            r#""node":"node-1","container_name":"fraud-model-2","service":"fraud-model","#,
            r#""model":"fraud","model_version":"3.1.{}","request_id":"req-{:08}","latency_ms":{},"#,
            r#""input":{{"customer_id":{},"amount":{}.{:02}}},"output":{{"score":0.{:04}}},"status":"ok"}}"#
        ),
        i as u128 + 1,
        i % 60,
        i * 7919 % 1_000_000_000,
        i % 4,
        i,
        i % 97,
        i * 31 % 100_000,
        i % 5000,
        i % 100,
        i * 17 % 10_000
    )
    .into_bytes()
}

fn id(i: usize) -> EventId {
    EventId(i as u128 + 1)
}

fn append_range(log: &mut AuditLog, now: Timestamp, range: std::ops::Range<usize>) -> Appended {
    let bodies: Vec<Vec<u8>> = range.clone().map(prediction).collect();
    let records: Vec<(EventId, &[u8])> = range
        .clone()
        .zip(&bodies)
        .map(|(i, b)| (id(i), b.as_slice()))
        .collect();
    let a = log.append(now, &records).unwrap();
    log.sync().unwrap();
    a
}

/// A closed day of `N` records and its exported roots.
fn closed_day() -> (tempfile::TempDir, RootsFile) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = AuditLog::open(dir, at("2026-11-20T10:00:00Z")).unwrap();
    for start in (0..N).step_by(700) {
        append_range(
            &mut log,
            at("2026-11-20T10:00:00Z"),
            start..(start + 700).min(N),
        );
    }
    assert_eq!(log.close_days_before("2026-11-21").unwrap(), vec![DAY]);
    let roots = export(dir, false).unwrap();
    assert_eq!(roots.days.len(), 1);
    assert_eq!(roots.days[0].count, N as u64);
    (tmp, roots)
}

/// A record as it sits in a chain file.
#[derive(Clone)]
struct Raw {
    id: u128,
    bytes: Vec<u8>,
    hash: Digest,
}

fn read_raw(path: &Path) -> Vec<Raw> {
    let b = std::fs::read(path).unwrap();
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    while at < b.len() {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let id = u128::from_le_bytes(b[at + 4..at + 20].try_into().unwrap());
        let bytes = b[at + PREFIX_LEN..at + PREFIX_LEN + len].to_vec();
        let h = at + PREFIX_LEN + len;
        out.push(Raw {
            id,
            bytes,
            hash: Digest(b[h..h + 32].try_into().unwrap()),
        });
        at += PREFIX_LEN + len + SUFFIX_LEN;
    }
    out
}

/// Writes records with their stored hashes as they are (valid frame checksums).
fn write_raw(path: &Path, day: &str, records: &[Raw]) {
    let mut out = format::header(day).to_vec();
    for r in records {
        format::encode(r.id, &r.bytes, &r.hash, &mut out);
    }
    std::fs::write(path, out).unwrap();
}

/// Rewrites a day with its whole chain and `.root` recomputed, as a forger would.
fn recompute(dir: &Path, day: &str, mut records: Vec<Raw>) {
    let mut h = genesis(day);
    let mut checkpoints = Vec::new();
    for (i, r) in records.iter_mut().enumerate() {
        h = link(&h, i as u64, &r.bytes);
        r.hash = h;
        if (i + 1) % 1024 == 0 {
            checkpoints.push(h);
        }
    }
    write_raw(&chain_path(dir, day), day, &records);
    write_root(
        dir,
        &DayRoot {
            day: day.into(),
            open: false,
            count: records.len() as u64,
            root: h,
            checkpoint_every: 1024,
            checkpoints,
        },
    )
    .unwrap();
}

fn only(reports: Vec<DayReport>) -> DayReport {
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.into_iter().next().unwrap()
}

fn mismatch(dir: &Path, roots: Option<&RootsFile>) -> Mismatch {
    let r = only(verify(dir, Some(DAY), roots).unwrap());
    let text = format!("{r:?}");
    r.mismatch
        .unwrap_or_else(|| panic!("verify passed: {text}"))
}

#[test]
fn an_untouched_day_verifies_with_and_without_roots() {
    let (tmp, roots) = closed_day();
    for r in [None, Some(&roots)] {
        let rep = only(verify(tmp.path(), None, r).unwrap());
        assert!(rep.ok(), "{rep:?}");
        assert!(rep.closed);
        assert_eq!(rep.records, N as u64);
        assert_eq!(rep.day, DAY);
    }
    let back = RootsFile::parse(Path::new("x"), roots.to_json().as_bytes()).unwrap();
    assert!(only(verify(tmp.path(), Some(DAY), Some(&back)).unwrap()).ok());
}

#[test]
fn a_changed_byte_is_caught_at_its_position() {
    let (tmp, roots) = closed_day();
    let path = chain_path(tmp.path(), DAY);
    let mut records = read_raw(&path);
    let pristine = std::fs::read(&path).unwrap();

    // Flipped in place: the frame checksum no longer holds.
    let offset = HEADER_LEN
        + records[..2500]
            .iter()
            .map(|r| PREFIX_LEN + r.bytes.len() + SUFFIX_LEN)
            .sum::<usize>()
        + PREFIX_LEN
        + 40;
    let mut bytes = pristine.clone();
    bytes[offset] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    for r in [None, Some(&roots)] {
        let m = mismatch(tmp.path(), r);
        assert_eq!((m.day.as_str(), m.position), (DAY, Some(2500)), "{m}");
        assert!(matches!(m.reason, Reason::Damaged(_)), "{m}");
    }

    // With the frame checksum fixed up too: the chain hash gives it away.
    records[2500].bytes[40] ^= 0x01;
    write_raw(&path, DAY, &records);
    for r in [None, Some(&roots)] {
        let m = mismatch(tmp.path(), r);
        assert_eq!(
            (m.position, &m.reason),
            (Some(2500), &Reason::RecordHash),
            "{m}"
        );
        assert!(
            m.to_string().contains("day 2026-11-20, position 2500"),
            "{m}"
        );
    }
}

#[test]
fn a_deleted_record_is_caught_at_its_position() {
    let (tmp, roots) = closed_day();
    let path = chain_path(tmp.path(), DAY);
    let mut records = read_raw(&path);
    records.remove(1234);
    write_raw(&path, DAY, &records);
    for r in [None, Some(&roots)] {
        let m = mismatch(tmp.path(), r);
        assert_eq!(
            (m.position, &m.reason),
            (Some(1234), &Reason::RecordHash),
            "{m}"
        );
    }
}

#[test]
fn an_inserted_record_is_caught_at_its_position() {
    let (tmp, roots) = closed_day();
    let path = chain_path(tmp.path(), DAY);
    let mut records = read_raw(&path);
    let forged = Raw {
        id: 999_999,
        bytes: prediction(999_999),
        hash: records[3000].hash,
    };
    records.insert(3001, forged);
    write_raw(&path, DAY, &records);
    for r in [None, Some(&roots)] {
        let m = mismatch(tmp.path(), r);
        assert_eq!(
            (m.position, &m.reason),
            (Some(3001), &Reason::RecordHash),
            "{m}"
        );
    }
}

#[test]
fn swapped_records_are_caught_at_the_first_of_them() {
    let (tmp, roots) = closed_day();
    let path = chain_path(tmp.path(), DAY);
    let mut records = read_raw(&path);
    records.swap(10, 11);
    write_raw(&path, DAY, &records);
    for r in [None, Some(&roots)] {
        let m = mismatch(tmp.path(), r);
        assert_eq!(
            (m.position, &m.reason),
            (Some(10), &Reason::RecordHash),
            "{m}"
        );
    }
}

#[test]
fn a_recomputed_chain_passes_alone_but_not_against_exported_roots() {
    let (tmp, roots) = closed_day();
    let path = chain_path(tmp.path(), DAY);
    let pristine = read_raw(&path);

    let mut edited = pristine.clone();
    edited[2500].bytes[60] ^= 0x01;
    recompute(tmp.path(), DAY, edited);
    assert!(
        only(verify(tmp.path(), None, None).unwrap()).ok(),
        "a consistent forgery is only caught by exported roots"
    );
    let m = mismatch(tmp.path(), Some(&roots));
    assert_eq!(m.reason, Reason::CheckpointDiffers { k: 3 }, "{m}");
    assert_eq!((m.position, m.until), (Some(2048), Some(3071)), "{m}");
    assert!(m.to_string().contains("positions 2048 to 3071"), "{m}");

    // After the last checkpoint only the root can tell.
    let mut edited = pristine.clone();
    edited[4500].bytes[60] ^= 0x01;
    recompute(tmp.path(), DAY, edited);
    let m = mismatch(tmp.path(), Some(&roots));
    assert!(matches!(m.reason, Reason::RootDiffers { .. }), "{m}");
    assert_eq!(m.position, Some(N as u64 - 1));

    let mut deleted = pristine.clone();
    deleted.remove(100);
    recompute(tmp.path(), DAY, deleted);
    let m = mismatch(tmp.path(), Some(&roots));
    assert_eq!(
        (m.reason, m.position, m.until),
        (Reason::CheckpointDiffers { k: 1 }, Some(0), Some(1023))
    );

    let mut inserted = pristine.clone();
    inserted.insert(4999, inserted[0].clone());
    recompute(tmp.path(), DAY, inserted);
    let m = mismatch(tmp.path(), Some(&roots));
    assert_eq!(
        m.reason,
        Reason::CountDiffers {
            expected: N as u64,
            found: N as u64 + 1
        },
        "{m}"
    );

    let mut swapped = pristine.clone();
    swapped.swap(4095, 4096);
    recompute(tmp.path(), DAY, swapped);
    let m = mismatch(tmp.path(), Some(&roots));
    assert_eq!(
        (m.reason, m.position, m.until),
        (Reason::CheckpointDiffers { k: 4 }, Some(3072), Some(4095))
    );

    let mut last_gone = pristine.clone();
    last_gone.pop();
    recompute(tmp.path(), DAY, last_gone);
    let m = mismatch(tmp.path(), Some(&roots));
    assert!(
        matches!(
            m.reason,
            Reason::CountDiffers {
                expected: 5000,
                found: 4999
            }
        ),
        "{m}"
    );
    assert_eq!(m.position, Some(4999));

    recompute(tmp.path(), DAY, pristine);
    assert!(only(verify(tmp.path(), None, Some(&roots)).unwrap()).ok());
}

#[test]
fn a_chain_recomputed_without_its_root_is_caught_without_exported_roots() {
    let (tmp, _) = closed_day();
    let root_file = std::fs::read(root_path(tmp.path(), DAY)).unwrap();
    let mut records = read_raw(&chain_path(tmp.path(), DAY));
    records[4000].bytes[50] ^= 0x01;
    recompute(tmp.path(), DAY, records);
    std::fs::write(root_path(tmp.path(), DAY), root_file).unwrap();
    let m = mismatch(tmp.path(), None);
    assert!(matches!(m.reason, Reason::StoredRoot(_)), "{m}");
    assert_eq!(
        m.position,
        Some(4095),
        "checkpoint 4 of the .root no longer matches"
    );
}

#[test]
fn deleted_and_added_days_are_caught_against_exported_roots() {
    let (tmp, roots) = closed_day();
    let dir = tmp.path();
    // A later day, exported too.
    let (mut log, report) = AuditLog::open(dir, at("2026-11-22T01:00:00Z")).unwrap();
    assert_eq!(report.open_day, None);
    append_range(&mut log, at("2026-11-22T01:00:00Z"), N..N + 10);
    log.close_days_before("2026-11-23").unwrap();
    let roots2 = export(dir, false).unwrap();
    assert_eq!(roots2.days.len(), 2);

    // A day slipped in between the exported ones.
    let forged = "2026-11-21";
    write_raw(&chain_path(dir, forged), forged, &[]);
    recompute(dir, forged, Vec::new());
    let reports = verify(dir, None, Some(&roots2)).unwrap();
    let extra = reports.iter().find(|r| r.day == forged).unwrap();
    assert_eq!(extra.mismatch.as_ref().unwrap().reason, Reason::ExtraDay);
    assert!(
        reports
            .iter()
            .filter(|r| r.day != forged)
            .all(DayReport::ok)
    );

    // The same day is fine next to the older export: it is newer than that export.
    std::fs::remove_file(chain_path(dir, forged)).unwrap();
    std::fs::remove_file(root_path(dir, forged)).unwrap();
    let reports = verify(dir, None, Some(&roots)).unwrap();
    assert!(reports.iter().all(DayReport::ok), "{reports:?}");
    assert!(reports[1].notes[0].contains("newer than the exported roots"));

    // A whole exported day deleted.
    std::fs::remove_file(chain_path(dir, DAY)).unwrap();
    std::fs::remove_file(root_path(dir, DAY)).unwrap();
    let m = mismatch(dir, Some(&roots2));
    assert!(matches!(m.reason, Reason::MissingDay(_)), "{m}");
    assert!(m.to_string().contains("5000 records"), "{m}");
    assert!(
        verify(dir, Some(DAY), None)
            .unwrap_err()
            .to_string()
            .contains("no audit chain")
    );
}

#[test]
fn a_torn_tail_is_cut_on_open_keeping_every_whole_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let now = at("2026-11-20T12:00:00Z");
    let (mut log, _) = AuditLog::open(dir, now).unwrap();
    append_range(&mut log, now, 0..20);
    drop(log);
    let path = chain_path(dir, DAY);
    let whole = std::fs::read(&path).unwrap();
    let last = PREFIX_LEN + prediction(19).len() + SUFFIX_LEN;
    for cut in [1, 8, 39, 41, last / 2, last - 1] {
        std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
        let (mut log, report) = AuditLog::open(dir, now).unwrap();
        assert_eq!(report.open_day.as_deref(), Some(DAY));
        assert_eq!(report.records, 19, "cut {cut}");
        assert_eq!(report.cut.len(), 1);
        assert_eq!(report.cut[0].bytes as usize, last - cut);
        assert_eq!(
            std::fs::read(&report.cut[0].kept_in).unwrap(),
            whole[whole.len() - last..whole.len() - cut]
        );
        std::fs::remove_file(&report.cut[0].kept_in).unwrap();
        // The WAL replay re-appends the lost record, and only that one.
        let a = append_range(&mut log, now, 0..20);
        assert_eq!(
            a,
            Appended {
                appended: 1,
                duplicates: 19
            }
        );
        assert_eq!(std::fs::read(&path).unwrap(), whole, "cut {cut}");
    }
    // A last record of zeros (a crash on a file system that extended the file first).
    let mut zeroed = whole.clone();
    let n = zeroed.len();
    zeroed[n - last + 4..].fill(0);
    std::fs::write(&path, &zeroed).unwrap();
    let (_, report) = AuditLog::open(dir, now).unwrap();
    assert_eq!(report.records, 19);
    assert!(
        report.cut[0].reason.contains("checksum"),
        "{:?}",
        report.cut
    );
    assert!(only(verify(dir, None, None).unwrap()).notes[0].contains("cut off after a crash"));
}

#[test]
fn restarts_and_replays_never_append_a_record_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let evening = at("2026-11-20T23:59:00Z");
    let (mut log, _) = AuditLog::open(dir, evening).unwrap();
    assert_eq!(append_range(&mut log, evening, 0..100).appended, 100);
    assert_eq!(
        append_range(&mut log, evening, 50..150),
        Appended {
            appended: 50,
            duplicates: 50
        }
    );
    drop(log);
    // Restart after midnight: the old day is closed, its ids remembered for the replay.
    let morning = at("2026-11-21T00:01:00Z");
    let (mut log, report) = AuditLog::open(dir, morning).unwrap();
    assert_eq!(report.closed, vec![DAY.to_string()]);
    assert_eq!(report.open_day, None);
    assert_eq!(report.remembered_ids, 150);
    assert_eq!(
        append_range(&mut log, morning, 0..200),
        Appended {
            appended: 50,
            duplicates: 150
        }
    );
    assert_eq!(log.open_day(), Some("2026-11-21"));
    let open = log.open_root().unwrap();
    assert!(open.open && open.count == 50);
    // Repeats within one batch count once.
    let body = prediction(7);
    let a = log
        .append(morning, &[(id(500), &body), (id(500), &body)])
        .unwrap();
    assert_eq!(
        a,
        Appended {
            appended: 1,
            duplicates: 1
        }
    );
    log.sync().unwrap();
    drop(log);
    let reports = verify(dir, None, None).unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(DayReport::ok), "{reports:?}");
    assert_eq!((reports[0].records, reports[1].records), (150, 51));
    assert!(reports[0].closed && !reports[1].closed);
}

#[test]
fn days_close_at_midnight_and_never_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut log, _) = AuditLog::open(dir, at("2026-11-20T23:00:00Z")).unwrap();
    append_range(&mut log, at("2026-11-20T23:00:00Z"), 0..3);
    append_range(&mut log, at("2026-11-21T00:00:01Z"), 3..5);
    assert!(
        root_path(dir, DAY).exists(),
        "the first append of a day closes the one before"
    );
    assert_eq!(log.roots().unwrap()[0].count, 3);
    // The clock steps back over midnight: records stay in the open day.
    append_range(&mut log, at("2026-11-20T23:59:59Z"), 5..6);
    assert_eq!(log.open_root().unwrap().count, 3);
    assert_eq!(
        log.close_days_before("2026-11-22").unwrap(),
        vec!["2026-11-21"]
    );
    // Still behind a closed day: the next day after it, never a closed one.
    append_range(&mut log, at("2026-11-21T10:00:00Z"), 6..7);
    assert_eq!(log.open_day(), Some("2026-11-22"));
    assert!(matches!(
        log.close_days_before("yesterday"),
        Err(AuditError::BadDay(_))
    ));
    drop(log);
    let reports = verify(dir, None, None).unwrap();
    assert!(reports.iter().all(DayReport::ok), "{reports:?}");
    assert_eq!(
        reports.iter().map(|r| r.records).collect::<Vec<_>>(),
        [3, 3, 1]
    );
}

#[test]
fn an_open_day_exported_early_is_checked_as_a_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let now = at("2026-11-20T12:00:00Z");
    let (mut log, _) = AuditLog::open_with(dir, now, 8).unwrap();
    append_range(&mut log, now, 0..20);
    let early = export(dir, true).unwrap();
    assert!(early.days[0].open && early.days[0].count == 20);
    append_range(&mut log, now, 20..30);
    log.close_days_before("2026-11-21").unwrap();
    assert!(only(verify(dir, None, Some(&early)).unwrap()).ok());
    let mut records = read_raw(&chain_path(dir, DAY));
    records.truncate(15);
    recompute(dir, DAY, records);
    let m = mismatch(dir, Some(&early));
    assert!(
        matches!(
            m.reason,
            Reason::CountDiffers {
                expected: 20,
                found: 15
            }
        ),
        "{m}"
    );
}

#[test]
fn hostile_chain_files_are_reported_not_panicked_on() {
    let (tmp, roots) = closed_day();
    let path = chain_path(tmp.path(), DAY);
    let good = std::fs::read(&path).unwrap();
    let first = PREFIX_LEN + prediction(0).len() + SUFFIX_LEN;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            b"this is not a chain at all, just text that is long enough".to_vec(),
        ),
        ("empty", Vec::new()),
        ("wrong version", {
            let mut b = good.clone();
            b[8] = 9;
            b
        }),
        ("another day", {
            let mut b = good.clone();
            b[12..22].copy_from_slice(b"2026-11-19");
            b
        }),
        ("huge length", {
            let mut b = good.clone();
            b[HEADER_LEN + first..HEADER_LEN + first + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
        ("cut short", good[..good.len() - 7].to_vec()),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let m = mismatch(tmp.path(), Some(&roots));
        let text = m.to_string();
        assert!(text.starts_with("day 2026-11-20"), "{what}: {text}");
        match what {
            "garbage" => assert!(text.contains("magic"), "{text}"),
            "wrong version" => assert!(text.contains("version 9"), "{text}"),
            "another day" => assert!(text.contains("another day"), "{text}"),
            "huge length" => {
                assert_eq!(m.position, Some(1), "{text}");
                assert!(text.contains("4294967295"), "{text}");
            }
            "cut short" => assert_eq!(m.position, Some(N as u64 - 1), "{text}"),
            _ => assert!(matches!(m.reason, Reason::Damaged(_)), "{what}: {text}"),
        }
    }
    std::fs::write(&path, &good).unwrap();
    std::fs::write(root_path(tmp.path(), DAY), b"{\"magic\": 5}").unwrap();
    let m = mismatch(tmp.path(), None);
    assert!(matches!(m.reason, Reason::StoredRoot(_)), "{m}");
    assert!(verify(tmp.path(), Some("not-a-day"), None).is_err());
}

#[test]
fn a_garbage_chain_for_the_open_day_is_set_aside_and_restarted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let now = at("2026-11-20T12:00:00Z");
    std::fs::write(chain_path(dir, DAY), b"definitely not SHPLGAUD data").unwrap();
    let (mut log, report) = AuditLog::open(dir, now).unwrap();
    assert_eq!(report.cut.len(), 1);
    assert!(report.cut[0].reason.contains("magic"));
    assert_eq!(
        std::fs::read(&report.cut[0].kept_in).unwrap(),
        b"definitely not SHPLGAUD data"
    );
    append_range(&mut log, now, 0..5);
    let r = only(verify(dir, None, None).unwrap());
    assert!(r.ok() && r.records == 5, "{r:?}");
}

#[test]
fn an_oversized_record_appends_nothing_of_its_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let now = at("2026-11-20T12:00:00Z");
    let (mut log, _) = AuditLog::open(tmp.path(), now).unwrap();
    let big = vec![b'x'; MAX_RECORD as usize + 1];
    let small = prediction(0);
    let err = log
        .append(now, &[(id(0), &small), (id(1), &big)])
        .unwrap_err();
    assert!(
        err.to_string().contains("limit of an audit record"),
        "{err}"
    );
    assert_eq!(log.open_day(), None);
    assert_eq!(append_range(&mut log, now, 0..1).appended, 1);
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/audit-v1")
}

/// Writes `testdata/audit-v1/`: run with `--ignored` only when a new format version is
/// introduced, never to "fix" the compatibility test.
#[test]
#[ignore]
fn write_v1_fixture() {
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let (mut log, _) = AuditLog::open_with(&dir, at("2026-11-20T10:00:00Z"), 4).unwrap();
    append_range(&mut log, at("2026-11-20T10:00:00Z"), 0..10);
    append_range(&mut log, at("2026-11-21T10:00:00Z"), 10..13);
    drop(log);
    let mut roots = export(&dir, false).unwrap();
    roots.exported_at = None;
    std::fs::write(dir.join("roots.json"), roots.to_json()).unwrap();
    let mut holds = Holds::default();
    holds
        .add(DAY, "fixture", "case 1", at("2026-11-21T11:00:00Z"))
        .unwrap();
    holds.save(&dir).unwrap();
}

/// A v1 audit directory committed under testdata/ keeps opening and verifying.
#[test]
fn the_v1_fixture_still_opens_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(fixture_dir()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), tmp.path().join(f.file_name())).unwrap();
    }
    let roots = RootsFile::load(&tmp.path().join("roots.json")).unwrap();
    assert_eq!(roots.days.len(), 1);
    assert_eq!(roots.days[0].checkpoints.len(), 2);
    let reports = verify(tmp.path(), None, Some(&roots)).unwrap();
    assert!(reports.iter().all(DayReport::ok), "{reports:?}");
    assert_eq!(
        reports.iter().map(|r| r.records).collect::<Vec<_>>(),
        [10, 3]
    );
    assert!(Holds::load(tmp.path()).unwrap().contains(DAY));
    let (mut log, report) = AuditLog::open(tmp.path(), at("2026-11-21T12:00:00Z")).unwrap();
    assert_eq!(
        (report.open_day.as_deref(), report.records),
        (Some("2026-11-21"), 3)
    );
    assert_eq!(
        append_range(&mut log, at("2026-11-21T12:00:00Z"), 0..14).appended,
        1
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A small day of `n` records; closed when `close`.
    fn small_day(dir: &Path, n: usize, close: bool) -> Vec<u8> {
        let now = at("2026-11-20T12:00:00Z");
        let (mut log, _) = AuditLog::open_with(dir, now, 2).unwrap();
        append_range(&mut log, now, 0..n);
        if close {
            log.close_days_before("2026-11-21").unwrap();
        }
        std::fs::read(chain_path(dir, DAY)).unwrap()
    }

    #[derive(Debug, Clone)]
    enum Change {
        Flip(usize, u8),
        Truncate(usize),
        Insert(usize, Vec<u8>),
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (any::<usize>(), 1..=255u8).prop_map(|(at, x)| Change::Flip(at, x)),
            any::<usize>().prop_map(Change::Truncate),
            (
                any::<usize>(),
                proptest::collection::vec(any::<u8>(), 1..64)
            )
                .prop_map(|(at, b)| Change::Insert(at, b)),
        ]
    }

    fn apply(bytes: &[u8], c: &Change) -> Vec<u8> {
        let mut b = bytes.to_vec();
        match c {
            Change::Flip(at, x) => {
                let i = at % b.len();
                b[i] ^= x;
            }
            Change::Truncate(at) => b.truncate(at % b.len()),
            Change::Insert(at, extra) => {
                let i = at % (b.len() + 1);
                b.splice(i..i, extra.iter().copied());
            }
        }
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any change to a closed day's chain file is reported, never panicked on.
        #[test]
        fn any_change_to_a_closed_day_is_a_mismatch(n in 1usize..6, c in change()) {
            let tmp = tempfile::tempdir().unwrap();
            let good = small_day(tmp.path(), n, true);
            let bad = apply(&good, &c);
            prop_assume!(bad != good);
            std::fs::write(chain_path(tmp.path(), DAY), &bad).unwrap();
            let r = only(verify(tmp.path(), None, None).unwrap());
            prop_assert!(r.mismatch.is_some(), "{:?} passed: {:?}", c, r);
        }

        /// Whatever an unclosed day's file holds, open keeps a whole, verifying prefix.
        #[test]
        fn open_always_leaves_a_verifying_prefix(n in 0usize..6, c in change()) {
            let tmp = tempfile::tempdir().unwrap();
            let good = small_day(tmp.path(), n.max(1), false);
            std::fs::write(chain_path(tmp.path(), DAY), apply(&good, &c)).unwrap();
            let (_, report) = AuditLog::open(tmp.path(), at("2026-11-20T13:00:00Z")).unwrap();
            prop_assert!(report.records <= n.max(1) as u64);
            let r = only(verify(tmp.path(), None, None).unwrap());
            prop_assert!(r.ok(), "{:?}: {:?}", c, r);
            prop_assert_eq!(r.records, report.records);
        }
    }
}
