//! Recomputing the chains and comparing them with what was stored and what was exported.

use std::fmt;
use std::path::Path;

use super::chain::{ChainReader, Frame};
use super::error::{AuditError, Result};
use super::format::{Digest, genesis, is_day, link};
use super::root::{DayRoot, RootsFile, chain_path, list, read_root, root_path};

/// What verifying one day found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayReport {
    /// `yyyy-mm-dd`
    pub day: String,
    /// The day has a `.root` file.
    pub closed: bool,
    /// Records whose hash was recomputed and found right, from the start of the day.
    pub records: u64,
    /// Bytes of those records.
    pub bytes: u64,
    /// Things worth knowing that are not a mismatch (an unfinished last record in the open
    /// day, a day newer than the exported roots, bytes cut off after a crash).
    pub notes: Vec<String>,
    /// The first mismatch, if any; checking the day stopped there.
    pub mismatch: Option<Mismatch>,
}

impl DayReport {
    /// No mismatch.
    pub fn ok(&self) -> bool {
        self.mismatch.is_none()
    }
}

/// The first place where a day's data does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `yyyy-mm-dd`
    pub day: String,
    /// Position (0-based record number in the day) where it shows, if it is one record.
    pub position: Option<u64>,
    /// With a checkpoint mismatch, the first record that differs lies between
    /// `position` and this (inclusive).
    pub until: Option<u64>,
    /// What does not match.
    pub reason: Reason,
}

/// Why a day fails verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The chain file's header is wrong (magic, version, or another day's).
    Header(String),
    /// A record's frame is broken: checksum, length, or cut short in a closed day.
    Damaged(String),
    /// The recomputed chain hash differs from the one stored after the record.
    RecordHash,
    /// The day's `.root` file disagrees with its chain or cannot be read.
    StoredRoot(String),
    /// The record count differs from the exported roots.
    CountDiffers {
        /// What the exported roots say.
        expected: u64,
        /// What the chain holds.
        found: u64,
    },
    /// The recomputed root differs from the exported one.
    RootDiffers {
        /// Exported.
        expected: Digest,
        /// Recomputed.
        found: Digest,
    },
    /// Checkpoint `k` of the exported roots differs from the recomputed chain.
    CheckpointDiffers {
        /// Which checkpoint (1-based).
        k: u64,
    },
    /// The day is in the exported roots (or has a `.root`) but its chain file is gone.
    MissingDay(String),
    /// The day is not in the exported roots although they list later days.
    ExtraDay,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.position, self.until) {
            (Some(a), Some(b)) => write!(f, "day {}, positions {a} to {b}: ", self.day)?,
            (Some(p), None) => write!(f, "day {}, position {p}: ", self.day)?,
            _ => write!(f, "day {}: ", self.day)?,
        }
        match &self.reason {
            Reason::Header(r) => write!(f, "bad chain file header: {r}"),
            Reason::Damaged(r) => write!(f, "damaged record: {r}"),
            Reason::RecordHash => f.write_str(
                "record hash mismatch: the stored hash is not the hash of the previous one and this record, so a record was edited, inserted, deleted or moved here (or the stored hash changed)",
            ),
            Reason::StoredRoot(r) => write!(f, "stored .root disagrees with the chain: {r}"),
            Reason::CountDiffers { expected, found } => write!(
                f,
                "the chain holds {found} records, the exported roots say {expected}: records were deleted or inserted"
            ),
            Reason::RootDiffers { expected, found } => write!(
                f,
                "root {found} differs from the exported root {expected}: the day's records were changed and its chain recomputed"
            ),
            Reason::CheckpointDiffers { k } => write!(
                f,
                "checkpoint {k} differs from the exported roots: the chain diverged in this range (a record in it was edited, inserted, deleted or moved, and the stored chain recomputed)"
            ),
            Reason::MissingDay(r) => write!(f, "day is missing: {r}"),
            Reason::ExtraDay => f.write_str(
                "day is not in the exported roots although they list later days: it was added",
            ),
        }
    }
}

/// How far a long verification has got, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The day being checked.
    pub day: &'a str,
    /// Records checked in it so far.
    pub records: u64,
    /// Records checked in all days so far.
    pub total_records: u64,
    /// Bytes checked in all days so far.
    pub total_bytes: u64,
}

/// Recomputes the chain of every day (or only `day`) in the audit directory `dir` and
/// compares it with the stored hashes, the `.root` files and, when given, exported `roots`.
/// Reads each file once, front to back, in bounded memory. Damage and tampering are
/// reported per day; only I/O failures and a `day` of which nothing is known are errors.
///
/// Without `roots` this catches any change whose stored chain was not recomputed. With
/// `roots` it also catches an edited, inserted, deleted or moved record whose chain and
/// `.root` were recomputed (at the checkpoint range where the chains part, or by count and
/// root), a deleted day, and an added day older than the newest exported one; days newer
/// than the export are checked on their own and noted.
pub fn verify(dir: &Path, day: Option<&str>, roots: Option<&RootsFile>) -> Result<Vec<DayReport>> {
    verify_with_progress(dir, day, roots, &mut |_| {})
}

/// Like [`verify`], calling `progress` every 65,536 records.
pub fn verify_with_progress(
    dir: &Path,
    day: Option<&str>,
    roots: Option<&RootsFile>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<DayReport>> {
    if let Some(d) = day
        && !is_day(d)
    {
        return Err(AuditError::BadDay(d.to_string()));
    }
    let listing = list(dir)?;
    let mut days: std::collections::BTreeSet<String> =
        listing.chains.union(&listing.roots).cloned().collect();
    if let Some(r) = roots {
        days.extend(r.days.iter().map(|d| d.day.clone()));
    }
    if let Some(d) = day {
        if !days.contains(d) {
            return Err(AuditError::NoSuchDay(d.to_string()));
        }
        days.retain(|x| x == d);
    }
    let mut totals = (0u64, 0u64);
    let mut reports = Vec::new();
    for d in &days {
        let mut report = DayReport {
            day: d.clone(),
            closed: listing.roots.contains(d),
            records: 0,
            bytes: 0,
            notes: Vec::new(),
            mismatch: None,
        };
        for cut in listing.cuts.get(d).into_iter().flatten() {
            report.notes.push(format!(
                "{cut} holds bytes cut off after a crash; they were never part of the chain"
            ));
        }
        let exported = roots.and_then(|r| r.get(d));
        check_day(
            dir,
            d,
            &listing,
            roots,
            exported,
            &mut report,
            &mut totals,
            progress,
        )?;
        reports.push(report);
    }
    Ok(reports)
}

#[allow(clippy::too_many_arguments)]
fn check_day(
    dir: &Path,
    day: &str,
    listing: &super::root::Listing,
    roots: Option<&RootsFile>,
    exported: Option<&DayRoot>,
    report: &mut DayReport,
    totals: &mut (u64, u64),
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<()> {
    let fail = |position: Option<u64>, until: Option<u64>, reason: Reason| Mismatch {
        day: day.to_string(),
        position,
        until,
        reason,
    };
    if let Some(r) = roots
        && exported.is_none()
    {
        if r.last_day().is_some_and(|last| day < last) {
            report.mismatch = Some(fail(None, None, Reason::ExtraDay));
            return Ok(());
        }
        report.notes.push(
            "newer than the exported roots: checked against its own stored hashes only".into(),
        );
    }
    if !listing.chains.contains(day) {
        let why = match exported {
            Some(e) => format!(
                "the exported roots list it with {} records but its chain file is gone",
                e.count
            ),
            None => "its .root file exists but its chain file is gone".into(),
        };
        report.mismatch = Some(fail(None, None, Reason::MissingDay(why)));
        return Ok(());
    }
    let stored = if report.closed {
        match read_root(&root_path(dir, day)) {
            Ok(r) if r.day == day => Some(r),
            Ok(r) => {
                let why = format!("it names day {}", r.day);
                report.mismatch = Some(fail(None, None, Reason::StoredRoot(why)));
                return Ok(());
            }
            Err(e) => {
                report.mismatch = Some(fail(None, None, Reason::StoredRoot(e.to_string())));
                return Ok(());
            }
        }
    } else {
        None
    };
    let mut reader = ChainReader::open(&chain_path(dir, day), day)?;
    let mut h = genesis(day);
    let mut pos = 0u64;
    let mismatch = loop {
        match reader.next_frame()? {
            Frame::Record { bytes, hash, .. } => {
                let computed = link(&h, pos, bytes);
                if computed != hash {
                    break Some(fail(Some(pos), None, Reason::RecordHash));
                }
                h = computed;
                let n = pos + 1;
                if let Some(e) = exported {
                    if n.is_multiple_of(e.checkpoint_every) {
                        let k = n / e.checkpoint_every;
                        if e.checkpoints.get(k as usize - 1).is_some_and(|c| *c != h) {
                            let from = n - e.checkpoint_every;
                            break Some(fail(
                                Some(from),
                                Some(pos),
                                Reason::CheckpointDiffers { k },
                            ));
                        }
                    }
                    if e.open && n == e.count && e.root != h {
                        let reason = Reason::RootDiffers {
                            expected: e.root,
                            found: h,
                        };
                        break Some(fail(Some(pos), None, reason));
                    }
                }
                if let Some(s) = &stored
                    && n.is_multiple_of(s.checkpoint_every)
                {
                    let k = n / s.checkpoint_every;
                    if s.checkpoints.get(k as usize - 1).is_some_and(|c| *c != h) {
                        let why = format!("its checkpoint {k} differs from the chain");
                        break Some(fail(Some(pos), None, Reason::StoredRoot(why)));
                    }
                }
                report.bytes += bytes.len() as u64;
                totals.1 += bytes.len() as u64;
                totals.0 += 1;
                pos = n;
                report.records = pos;
                if pos.is_multiple_of(65_536) {
                    progress(Progress {
                        day,
                        records: pos,
                        total_records: totals.0,
                        total_bytes: totals.1,
                    });
                }
            }
            Frame::End => break None,
            Frame::BadHeader { reason } => break Some(fail(None, None, Reason::Header(reason))),
            Frame::Torn { offset, reason } => {
                if report.closed {
                    let why = format!(
                        "{reason} at byte {offset}, but a closed day ends on a whole record"
                    );
                    break Some(fail(Some(pos), None, Reason::Damaged(why)));
                }
                report.notes.push(format!(
                    "{} bytes at the end are not a whole record yet ({reason}): a record being appended, or a crash the indexer repairs on its next start",
                    reader.file_len() - offset
                ));
                break None;
            }
            Frame::Damaged { reason, .. } => {
                break Some(fail(Some(pos), None, Reason::Damaged(reason)));
            }
        }
    };
    if mismatch.is_some() {
        report.mismatch = mismatch;
        return Ok(());
    }
    if let Some(e) = exported {
        if pos < e.count || (!e.open && pos != e.count) {
            let reason = Reason::CountDiffers {
                expected: e.count,
                found: pos,
            };
            report.mismatch = Some(fail(Some(pos.min(e.count)), None, reason));
            return Ok(());
        }
        if !e.open && e.root != h {
            let reason = Reason::RootDiffers {
                expected: e.root,
                found: h,
            };
            report.mismatch = Some(fail(pos.checked_sub(1), None, reason));
            return Ok(());
        }
    }
    if let Some(s) = &stored {
        if s.count != pos {
            let why = format!("it says {} records, the chain holds {pos}", s.count);
            report.mismatch = Some(fail(Some(pos.min(s.count)), None, Reason::StoredRoot(why)));
        } else if s.root != h {
            let why = format!("its root {} is not the chain's last hash {h}", s.root);
            report.mismatch = Some(fail(pos.checked_sub(1), None, Reason::StoredRoot(why)));
        }
    }
    Ok(())
}
