//! The WAL's on-disk framing.
//!
//! A segment file starts with a 16-byte header, `SHPLGWAL`, the format version (u32 LE)
//! and four reserved bytes. Then records, each:
//!
//! ```text
//! len: u32 LE | seq: u64 LE | checksum: u64 LE | payload: len bytes
//! ```
//!
//! `checksum` is xxh3-64 over `seq`, `len` and the payload, so a torn write, a flipped bit or
//! a record spliced from elsewhere is caught. Reading stops at the first record that fails.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

/// Magic bytes at the start of every segment.
pub const MAGIC: &[u8; 8] = b"SHPLGWAL";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Size of the segment header.
pub const HEADER_LEN: u64 = 16;
/// Size of a record's frame before its payload.
pub const FRAME_LEN: u64 = 20;
/// Largest payload accepted when reading; anything larger is treated as damage.
pub const MAX_PAYLOAD: u32 = 512 * 1024 * 1024;

/// The segment header bytes.
pub fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

fn checksum(seq: u64, len: u32, payload: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(&seq.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.digest()
}

/// Appends one framed record to `out`.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("payload below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&checksum(seq, len, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number, increasing across segments.
    pub seq: u64,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Where and why reading stopped before the end of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first byte that is not part of a good record.
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub discarded_bytes: u64,
    /// What was wrong.
    pub reason: String,
}

/// What a segment holds.
#[derive(Debug, Default)]
pub struct SegmentContents {
    /// Good records, in order.
    pub records: Vec<Record>,
    /// Set when reading stopped before the end of the file.
    pub damage: Option<Damage>,
}

/// Reads every good record of a segment; stops at the first bad one and says why.
pub fn read_segment(path: &Path) -> std::io::Result<SegmentContents> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut out = SegmentContents::default();
    let damage = |offset: u64, reason: String| Damage {
        offset,
        discarded_bytes: file_len - offset,
        reason,
    };

    let mut head = [0u8; HEADER_LEN as usize];
    if file_len < HEADER_LEN || r.read_exact(&mut head).is_err() {
        out.damage = Some(damage(0, "segment header is incomplete".into()));
        return Ok(out);
    }
    if &head[..8] != MAGIC {
        out.damage = Some(damage(0, "not a shiplog WAL segment (bad magic)".into()));
        return Ok(out);
    }
    let version = u32::from_le_bytes(head[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        out.damage = Some(damage(
            0,
            format!("WAL format version {version} is not supported (this build reads {VERSION})"),
        ));
        return Ok(out);
    }
    let mut offset = HEADER_LEN;
    let mut last_seq = None;
    while offset < file_len {
        if file_len - offset < FRAME_LEN {
            out.damage = Some(damage(
                offset,
                "record frame is incomplete (torn write)".into(),
            ));
            break;
        }
        let mut frame = [0u8; FRAME_LEN as usize];
        r.read_exact(&mut frame)?;
        let len = u32::from_le_bytes(frame[0..4].try_into().unwrap_or_default());
        let seq = u64::from_le_bytes(frame[4..12].try_into().unwrap_or_default());
        let sum = u64::from_le_bytes(frame[12..20].try_into().unwrap_or_default());
        if len > MAX_PAYLOAD || u64::from(len) > file_len - offset - FRAME_LEN {
            out.damage = Some(damage(
                offset,
                format!("record length {len} runs past the end of the file (torn write)"),
            ));
            break;
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload)?;
        if checksum(seq, len, &payload) != sum {
            out.damage = Some(damage(
                offset,
                format!("record at offset {offset} fails its checksum"),
            ));
            break;
        }
        if last_seq.is_some_and(|l| seq <= l) {
            out.damage = Some(damage(
                offset,
                format!(
                    "record sequence goes backwards ({seq} after {})",
                    last_seq.unwrap_or(0)
                ),
            ));
            break;
        }
        last_seq = Some(seq);
        out.records.push(Record { seq, payload });
        offset += FRAME_LEN + u64::from(len);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(path: &Path, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut bytes = header().to_vec();
        for (seq, p) in records {
            encode(*seq, p, &mut bytes);
        }
        std::fs::File::create(path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        bytes
    }

    #[test]
    fn reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wal");
        write(&p, &[(1, b"one"), (2, b""), (5, b"five")]);
        let c = read_segment(&p).unwrap();
        assert!(c.damage.is_none());
        assert_eq!(
            c.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 5]
        );
        assert_eq!(c.records[2].payload, b"five");
    }

    #[test]
    fn a_torn_tail_keeps_every_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wal");
        let bytes = write(&p, &[(1, b"one"), (2, b"two"), (3, b"three")]);
        for cut in 1..(FRAME_LEN as usize + 5) {
            std::fs::write(&p, &bytes[..bytes.len() - cut]).unwrap();
            let c = read_segment(&p).unwrap();
            assert_eq!(c.records.len(), 2, "cut {cut}");
            let d = c.damage.unwrap();
            assert_eq!(d.offset + d.discarded_bytes, (bytes.len() - cut) as u64);
        }
    }

    #[test]
    fn a_flipped_byte_stops_reading_at_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wal");
        let bytes = write(&p, &[(1, b"one"), (2, b"two"), (3, b"three")]);
        let second = (HEADER_LEN + FRAME_LEN + 3) as usize;
        for at in second..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            if at >= second + FRAME_LEN as usize + 3 {
                // Damage in the third record keeps two.
                std::fs::write(&p, &b).unwrap();
                assert_eq!(read_segment(&p).unwrap().records.len(), 2, "flip at {at}");
                continue;
            }
            std::fs::write(&p, &b).unwrap();
            let c = read_segment(&p).unwrap();
            assert_eq!(c.records.len(), 1, "flip at {at}");
            assert_eq!(c.damage.unwrap().offset, second as u64);
        }
    }

    #[test]
    fn refuses_foreign_files_and_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wal");
        std::fs::write(&p, b"hello world, not a wal at all").unwrap();
        assert!(
            read_segment(&p)
                .unwrap()
                .damage
                .unwrap()
                .reason
                .contains("magic")
        );
        let mut h = header();
        h[8] = 9;
        std::fs::write(&p, h).unwrap();
        assert!(
            read_segment(&p)
                .unwrap()
                .damage
                .unwrap()
                .reason
                .contains("version 9")
        );
        std::fs::write(&p, b"SHP").unwrap();
        assert!(read_segment(&p).unwrap().damage.is_some());
    }

    /// A v1 segment committed under testdata/ keeps opening in every later build.
    #[test]
    fn the_v1_fixture_still_reads() {
        let p =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/wal-v1/00000000000000000001.wal");
        let c = read_segment(&p).unwrap();
        assert!(c.damage.is_none(), "{:?}", c.damage);
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[0].seq, 1);
    }
}
