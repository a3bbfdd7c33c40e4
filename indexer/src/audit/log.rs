//! [`AuditLog`]: appends prediction records to the chain of their arrival day and closes
//! days.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use shiplog_core::{EventId, Timestamp};

use super::chain::{ChainReader, Frame};
use super::error::{AuditError, Result};
use super::format::{self, DEFAULT_CHECKPOINT_EVERY, Digest, MAX_RECORD, genesis, is_day, link};
use super::root::{self, DayRoot, chain_path, list, root_path, sync_dir, write_root};

/// The audit chain of a data directory, open for appending. Not thread-safe by design:
/// one owner (the thread that indexes predictions) appends, syncs and closes days.
pub struct AuditLog {
    dir: PathBuf,
    every: u64,
    open: Option<OpenDay>,
    /// Ids of the newest closed day, so a WAL replay across midnight is not appended twice.
    previous: Option<(String, HashSet<u128>)>,
    latest_closed: Option<String>,
    buf: Vec<u8>,
    unsynced: bool,
}

/// The day being appended to.
struct OpenDay {
    day: String,
    file: File,
    len: u64,
    count: u64,
    last: Digest,
    checkpoints: Vec<Digest>,
    ids: HashSet<u128>,
}

/// What [`AuditLog::open`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The day still open for appending, if its chain file exists.
    pub open_day: Option<String>,
    /// Records already in it.
    pub records: u64,
    /// Days whose chain was left open (shutdown or crash before midnight) and were closed
    /// now, oldest first.
    pub closed: Vec<String>,
    /// Bytes cut from the end of chain files because they were not whole records.
    pub cut: Vec<Cut>,
    /// Event ids held in memory to skip records appended again after a crash.
    pub remembered_ids: usize,
}

/// Bytes cut from the end of a chain file on open. They were never a whole, synced record,
/// so never acknowledged into the chain; they are kept aside, not deleted, in case they
/// are wanted as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The chain's day.
    pub day: String,
    /// Where the cut was made (the file's new length).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// Why they were not a whole record.
    pub reason: String,
    /// Where they were put.
    pub kept_in: PathBuf,
}

/// What one [`AuditLog::append`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Records added to the chain.
    pub appended: usize,
    /// Records skipped because their id is already in the open or the previous day's chain.
    pub duplicates: usize,
}

/// The day after `day`.
fn next_day(day: &str) -> String {
    let start = Timestamp::parse_rfc3339(day).unwrap_or(Timestamp(0));
    start.offset(86_400 * 1_000_000_000).day_string()
}

/// What a chain file holds, from its stored hashes, and where its whole records end.
struct Scan {
    count: u64,
    last: Digest,
    checkpoints: Vec<Digest>,
    ids: HashSet<u128>,
    /// Offset after the last whole record, and why reading stopped there if the file
    /// goes on.
    good_len: u64,
    problem: Option<String>,
    file_len: u64,
}

fn scan(path: &Path, day: &str, every: u64, want_ids: bool) -> Result<Scan> {
    let mut r = ChainReader::open(path, day)?;
    let mut s = Scan {
        count: 0,
        last: genesis(day),
        checkpoints: Vec::new(),
        ids: HashSet::new(),
        good_len: 0,
        problem: None,
        file_len: r.file_len(),
    };
    loop {
        match r.next_frame()? {
            Frame::Record { id, hash, .. } => {
                s.count += 1;
                s.last = hash;
                if s.count.is_multiple_of(every) {
                    s.checkpoints.push(hash);
                }
                if want_ids {
                    s.ids.insert(id);
                }
            }
            Frame::End => break,
            Frame::Torn { reason, .. } => {
                s.problem = Some(reason);
                break;
            }
            Frame::BadHeader { reason } => {
                s.problem = Some(reason);
                break;
            }
            Frame::Damaged { reason, .. } => {
                s.problem = Some(format!("{reason} (not at the end of the file)"));
                break;
            }
        }
    }
    s.good_len = r.offset();
    Ok(s)
}

/// Moves the bytes of `path` from `offset` on into `<path>.cut-<offset>` and truncates the
/// file there; with `offset` 0 a fresh header is written.
fn cut_tail(path: &Path, day: &str, offset: u64, file_len: u64, reason: String) -> Result<Cut> {
    let mut kept = PathBuf::from(format!("{}.cut-{offset}", path.display()));
    let mut n = 1;
    while kept.exists() {
        n += 1;
        kept = PathBuf::from(format!("{}.cut-{offset}-{n}", path.display()));
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| AuditError::io("cannot open", path, e))?;
    {
        let mut aside =
            File::create(&kept).map_err(|e| AuditError::io("cannot create", &kept, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| AuditError::io("cannot seek", path, e))?;
        std::io::copy(&mut (&mut f).take(file_len - offset), &mut aside)
            .and_then(|_| aside.sync_all())
            .map_err(|e| AuditError::io("cannot copy the tail of", path, e))?;
    }
    let new_len = if offset == 0 {
        f.set_len(0)
            .and_then(|()| f.seek(SeekFrom::Start(0)))
            .and_then(|_| f.write_all(&format::header(day)))
            .map_err(|e| AuditError::io("cannot rewrite the header of", path, e))?;
        format::HEADER_LEN as u64
    } else {
        f.set_len(offset)
            .map_err(|e| AuditError::io("cannot truncate", path, e))?;
        offset
    };
    f.sync_all()
        .map_err(|e| AuditError::io("cannot sync", path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(Cut {
        day: day.to_string(),
        offset: new_len,
        bytes: file_len - offset,
        reason,
        kept_in: kept,
    })
}

impl AuditLog {
    /// Opens (or creates) the audit directory `dir` (`<data_dir>/audit`) at time `now`.
    ///
    /// Never refuses a damaged chain: bytes after the last whole record of an unclosed day
    /// (a crash mid-append) are cut off into a `.cut-<offset>` file and logged; they were
    /// never acknowledged, and the caller re-appends those records from its WAL. Every
    /// unclosed day before the open one is closed (its `.root` written). Closed days are
    /// only read. Then the ids of the open day and of the newest closed day are loaded into
    /// memory (about 40 bytes per record: 80 MB for two days of a million predictions).
    pub fn open(dir: &Path, now: Timestamp) -> Result<(AuditLog, OpenReport)> {
        Self::open_with(dir, now, DEFAULT_CHECKPOINT_EVERY)
    }

    /// Like [`AuditLog::open`], with a checkpoint every `checkpoint_every` records in the
    /// `.root` files this log writes.
    pub fn open_with(
        dir: &Path,
        now: Timestamp,
        checkpoint_every: u64,
    ) -> Result<(AuditLog, OpenReport)> {
        let every = checkpoint_every.max(1);
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io("cannot create", dir, e))?;
        let listing = list(dir)?;
        let today = now.day_string();
        let mut log = AuditLog {
            dir: dir.to_path_buf(),
            every,
            open: None,
            previous: None,
            latest_closed: listing.roots.last().cloned(),
            buf: Vec::new(),
            unsynced: false,
        };
        let mut report = OpenReport::default();
        let unclosed: Vec<String> = listing.chains.difference(&listing.roots).cloned().collect();
        for (i, day) in unclosed.iter().enumerate() {
            let path = chain_path(dir, day);
            let mut s = scan(&path, day, every, true)?;
            if s.good_len < s.file_len || s.problem.is_some() {
                let reason = s
                    .problem
                    .take()
                    .unwrap_or_else(|| "not a whole record".into());
                let cut = cut_tail(&path, day, s.good_len, s.file_len, reason)?;
                tracing::warn!(
                    day = %day,
                    bytes = cut.bytes,
                    offset = cut.offset,
                    reason = %cut.reason,
                    kept_in = %cut.kept_in.display(),
                    "audit chain ended in an incomplete record; cut it off (never acknowledged: it is appended again from the write-ahead log)"
                );
                s.good_len = cut.offset;
                report.cut.push(cut);
            }
            let newest = i + 1 == unclosed.len();
            let after_closed = log
                .latest_closed
                .as_deref()
                .is_none_or(|c| day.as_str() > c);
            if newest && after_closed && day.as_str() >= today.as_str() {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| AuditError::io("cannot open", &path, e))?;
                report.open_day = Some(day.clone());
                report.records = s.count;
                log.open = Some(OpenDay {
                    day: day.clone(),
                    file,
                    len: s.good_len,
                    count: s.count,
                    last: s.last,
                    checkpoints: s.checkpoints,
                    ids: s.ids,
                });
                continue;
            }
            write_root(
                dir,
                &DayRoot {
                    day: day.clone(),
                    open: false,
                    count: s.count,
                    root: s.last,
                    checkpoint_every: every,
                    checkpoints: s.checkpoints,
                },
            )?;
            tracing::info!(day = %day, records = s.count, "closed an audit day left open");
            report.closed.push(day.clone());
            if log
                .latest_closed
                .as_deref()
                .is_none_or(|c| day.as_str() > c)
            {
                log.latest_closed = Some(day.clone());
            }
        }
        // The newest closed day before the open one: where a WAL replay's records went.
        let open_day = log.open.as_ref().map(|o| o.day.clone());
        let previous = listing
            .roots
            .iter()
            .chain(report.closed.iter())
            .filter(|d| open_day.as_ref().is_none_or(|o| d.as_str() < o.as_str()))
            .max()
            .cloned();
        if let Some(day) = previous {
            let s = scan(&chain_path(dir, &day), &day, every, true);
            match s {
                Ok(s) => log.previous = Some((day, s.ids)),
                // A closed day whose chain is gone is for verify to report, not for open.
                Err(AuditError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        report.remembered_ids = log.open.as_ref().map_or(0, |o| o.ids.len())
            + log.previous.as_ref().map_or(0, |p| p.1.len());
        Ok((log, report))
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The day records are appended to now, if one is open.
    pub fn open_day(&self) -> Option<&str> {
        self.open.as_ref().map(|o| o.day.as_str())
    }

    /// The day a record arriving at `now` goes to: its UTC day, but never a day already
    /// closed (days only move forward, even when the clock steps back) and never before
    /// the open day.
    fn append_day(&self, now: Timestamp) -> String {
        let mut day = now.day_string();
        if let Some(o) = &self.open
            && o.day > day
        {
            day = o.day.clone();
        }
        if let Some(c) = &self.latest_closed
            && day.as_str() <= c.as_str()
        {
            tracing::warn!(clock_day = %day, closed = %c, "the clock is behind the newest closed audit day; appending to the day after it");
            day = next_day(c);
        }
        day
    }

    /// Appends records that arrived at `now` to the chain of that day, in order, skipping
    /// ids already in the open or the previous day's chain (and repeats within `records`),
    /// so re-appending after a crash never adds a record twice. A new day closes the
    /// previous one first. Written, not yet fsynced: call [`AuditLog::sync`] before the
    /// records' WAL checkpoint moves past them. On error nothing of `records` is in the
    /// chain.
    pub fn append<B: AsRef<[u8]>>(
        &mut self,
        now: Timestamp,
        records: &[(EventId, B)],
    ) -> Result<Appended> {
        if records.is_empty() {
            return Ok(Appended::default());
        }
        if let Some((id, bytes)) = records
            .iter()
            .find(|(_, b)| b.as_ref().len() > MAX_RECORD as usize)
        {
            return Err(AuditError::TooLarge {
                id: id.to_string(),
                len: bytes.as_ref().len(),
                max: MAX_RECORD,
            });
        }
        let day = self.append_day(now);
        if self.open.as_ref().is_some_and(|o| o.day != day) {
            self.close_open()?;
        }
        if self.open.is_none() {
            self.open = Some(self.start_day(&day)?);
        }
        let AuditLog {
            open: Some(open),
            previous,
            buf,
            every,
            unsynced,
            ..
        } = self
        else {
            return Ok(Appended::default());
        };
        buf.clear();
        let mut out = Appended::default();
        let mut h = open.last;
        let mut count = open.count;
        let mut new_ids = Vec::new();
        let mut new_checkpoints = Vec::new();
        for (id, bytes) in records {
            let bytes = bytes.as_ref();
            let seen_before = previous
                .as_ref()
                .is_some_and(|(_, ids)| ids.contains(&id.0));
            if seen_before || !open.ids.insert(id.0) {
                out.duplicates += 1;
                continue;
            }
            new_ids.push(id.0);
            h = link(&h, count, bytes);
            format::encode(id.0, bytes, &h, buf);
            count += 1;
            if count.is_multiple_of(*every) {
                new_checkpoints.push(h);
            }
        }
        if buf.is_empty() {
            return Ok(out);
        }
        if let Err(e) = open.file.write_all(buf) {
            // Leave file and memory as they were, so the caller can retry the batch.
            for id in &new_ids {
                open.ids.remove(id);
            }
            let _ = open.file.set_len(open.len);
            return Err(AuditError::io(
                "cannot append to",
                &chain_path(&self.dir, &open.day),
                e,
            ));
        }
        open.len += buf.len() as u64;
        open.count = count;
        open.last = h;
        open.checkpoints.extend(new_checkpoints);
        *unsynced = true;
        out.appended = new_ids.len();
        Ok(out)
    }

    /// Makes every appended record durable (fsync). Call it before the WAL checkpoint moves
    /// past the appended records.
    pub fn sync(&mut self) -> Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        if let Some(o) = &self.open {
            o.file
                .sync_data()
                .map_err(|e| AuditError::io("cannot sync", &chain_path(&self.dir, &o.day), e))?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Closes the open day if it is before `day` (writes its `.root`), so an idle day ends
    /// at midnight too. Returns the days closed. Later appends never go to a closed day.
    pub fn close_days_before(&mut self, day: &str) -> Result<Vec<String>> {
        if !is_day(day) {
            return Err(AuditError::BadDay(day.to_string()));
        }
        if self.open.as_ref().is_some_and(|o| o.day.as_str() < day) {
            let closed = self.close_open()?;
            return Ok(vec![closed]);
        }
        Ok(Vec::new())
    }

    /// The roots of every closed day, oldest first, read from their `.root` files.
    pub fn roots(&self) -> Result<Vec<DayRoot>> {
        Ok(root::export(&self.dir, false)?.days)
    }

    /// The root so far of the open day, marked open.
    pub fn open_root(&self) -> Option<DayRoot> {
        self.open.as_ref().map(|o| DayRoot {
            day: o.day.clone(),
            open: true,
            count: o.count,
            root: o.last,
            checkpoint_every: self.every,
            checkpoints: o.checkpoints.clone(),
        })
    }

    fn start_day(&self, day: &str) -> Result<OpenDay> {
        let path = chain_path(&self.dir, day);
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| AuditError::io("cannot create", &path, e))?;
        file.write_all(&format::header(day))
            .and_then(|()| file.sync_data())
            .map_err(|e| AuditError::io("cannot write", &path, e))?;
        sync_dir(&self.dir)?;
        Ok(OpenDay {
            day: day.to_string(),
            file,
            len: format::HEADER_LEN as u64,
            count: 0,
            last: genesis(day),
            checkpoints: Vec::new(),
            ids: HashSet::new(),
        })
    }

    /// Syncs the open day, writes its `.root`, and keeps its ids as the previous day's.
    fn close_open(&mut self) -> Result<String> {
        let Some(o) = &self.open else {
            return Ok(String::new());
        };
        let path = chain_path(&self.dir, &o.day);
        o.file
            .sync_data()
            .map_err(|e| AuditError::io("cannot sync", &path, e))?;
        write_root(
            &self.dir,
            &DayRoot {
                day: o.day.clone(),
                open: false,
                count: o.count,
                root: o.last,
                checkpoint_every: self.every,
                checkpoints: o.checkpoints.clone(),
            },
        )?;
        debug_assert!(root_path(&self.dir, &o.day).exists());
        let Some(o) = self.open.take() else {
            return Ok(String::new());
        };
        tracing::info!(day = %o.day, records = o.count, root = %o.last, "audit day closed");
        self.unsynced = false;
        self.latest_closed = Some(o.day.clone());
        self.previous = Some((o.day.clone(), o.ids));
        Ok(o.day)
    }
}
