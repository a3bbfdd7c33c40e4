//! Reading the WAL at start: every record past the last commit, with damage cut off.

use std::path::{Path, PathBuf};

use shiplog_core::Event;
use shiplog_core::codec::decompress_capped;

use super::{checkpoint, record};
use crate::error::{IndexerError, Result};

/// Largest decompressed WAL record accepted on replay.
const MAX_RECORD_BYTES: usize = 1024 * 1024 * 1024;

/// What the WAL directory holds after the last commit.
#[derive(Debug, Default)]
pub struct Scan {
    /// Sequence number the last commit covers.
    pub covered: u64,
    /// Records past it, in order.
    pub records: Vec<record::Record>,
    /// Highest sequence number seen (or `covered` if higher).
    pub last_seq: u64,
    /// Segments that still exist after the scan: (first seq, path), oldest first.
    pub segments: Vec<(u64, PathBuf)>,
    /// One line per damaged or discarded file, for the log.
    pub damage: Vec<String>,
}

fn segment_first(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".wal")?.parse().ok()
}

/// Reads the checkpoint and every segment; cuts each damaged file back to its last good
/// record and removes the segments after it (their framing can no longer be trusted).
pub fn scan(dir: &Path) -> Result<Scan> {
    std::fs::create_dir_all(dir).map_err(|e| IndexerError::from_io("create", dir, e))?;
    let mut out = Scan::default();
    out.covered = match checkpoint::read(dir) {
        Ok(c) => c,
        Err(e) => {
            out.damage.push(format!(
                "{e}; replaying the whole WAL (stored events are skipped by id)"
            ));
            0
        }
    };
    out.last_seq = out.covered;
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| IndexerError::from_io("list", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| segment_first(&p).map(|f| (f, p)))
        .collect();
    segments.sort();
    let mut damaged = false;
    for (first, path) in segments {
        if damaged {
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            out.damage.push(format!(
                "{}: removed ({size} bytes) because an earlier segment is damaged",
                path.display()
            ));
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let contents =
            record::read_segment(&path).map_err(|e| IndexerError::from_io("read", &path, e))?;
        for r in contents.records {
            out.last_seq = out.last_seq.max(r.seq);
            if r.seq > out.covered {
                out.records.push(r);
            }
        }
        if let Some(d) = contents.damage {
            damaged = true;
            out.damage.push(format!(
                "{}: {} at offset {}; kept the records before it, discarded {} bytes",
                path.display(),
                d.reason,
                d.offset,
                d.discarded_bytes
            ));
            let cut = if d.offset < record::HEADER_LEN {
                std::fs::remove_file(&path)
            } else {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| {
                        f.set_len(d.offset)?;
                        f.sync_all()
                    })
            };
            if let Err(e) = cut {
                return Err(IndexerError::from_io(
                    "truncate damaged WAL segment",
                    &path,
                    e,
                ));
            }
            if d.offset < record::HEADER_LEN {
                continue;
            }
        }
        out.segments.push((first, path));
    }
    Ok(out)
}

/// Decodes a record's payload into events and their JSON.
pub fn decode(r: &record::Record) -> Result<(Vec<Event>, Vec<Vec<u8>>)> {
    let raw = decompress_capped(&r.payload, MAX_RECORD_BYTES)
        .map_err(|e| IndexerError::Corrupt(format!("WAL record {}: {e}", r.seq)))?;
    let mut events = Vec::new();
    let mut sources = Vec::new();
    for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let e: Event = serde_json::from_slice(line)
            .map_err(|e| IndexerError::Corrupt(format!("WAL record {}: {e}", r.seq)))?;
        events.push(e);
        sources.push(line.to_vec());
    }
    Ok((events, sources))
}

/// Records past `covered` in every segment, without changing any file (the WAL thread may
/// be appending; a torn tail simply ends the read).
pub fn scan_readonly(dir: &Path, covered: u64) -> Result<Vec<record::Record>> {
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| IndexerError::from_io("list", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| segment_first(&p).map(|f| (f, p)))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for (_, path) in segments {
        let contents = match record::read_segment(&path) {
            Ok(c) => c,
            // Released by the WAL thread between the listing and the read: all covered.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(IndexerError::from_io("read", &path, e)),
        };
        out.extend(contents.records.into_iter().filter(|r| r.seq > covered));
        if contents.damage.is_some() {
            break;
        }
    }
    Ok(out)
}
