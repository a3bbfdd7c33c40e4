//! Day roots: the `.root` file that closes a day, and the roots file auditors export.
//!
//! Both are JSON with a `magic` and a `version`. A [`DayRoot`] holds the day's record
//! count, its root (the last chain hash, or `h_{-1}` for an empty day) and a checkpoint —
//! the chain hash after every `checkpoint_every` records — so a chain recomputed after an
//! edit can be narrowed to the stretch of records where it left the exported one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chain::{ChainReader, Frame};
use super::error::{AuditError, Result};
use super::format::{Digest, genesis, is_day};

/// `magic` of a `.root` file.
pub const ROOT_MAGIC: &str = "shiplog-audit-root";
/// `magic` of an exported roots file.
pub const ROOTS_MAGIC: &str = "shiplog-audit-roots";
/// Version of both JSON formats.
pub const JSON_VERSION: u32 = 1;
/// Largest roots, root or holds file read: more is refused rather than loaded. A year of
/// days with ten million records each takes about 250 MiB of checkpoints, so this is
/// generous for a roots file and keeps hostile input bounded.
pub const MAX_JSON_BYTES: u64 = 512 * 1024 * 1024;

/// The commitment to one day's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayRoot {
    /// `yyyy-mm-dd`, the UTC day the records arrived at the indexer.
    pub day: String,
    /// The day was still open when exported: `count` and `root` then commit to the first
    /// `count` records only, and later records may follow.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
    /// Records in the chain.
    pub count: u64,
    /// The chain hash of the last record (`h_{-1}` when `count` is 0).
    pub root: Digest,
    /// Records between checkpoints.
    pub checkpoint_every: u64,
    /// `checkpoints[k - 1]` is the chain hash of record `k * checkpoint_every - 1`.
    pub checkpoints: Vec<Digest>,
}

impl DayRoot {
    /// Says what is inconsistent in a root read from a file.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !is_day(&self.day) {
            return Err(format!(
                "day '{}' is not a date written yyyy-mm-dd",
                self.day
            ));
        }
        if self.checkpoint_every == 0 {
            return Err(format!(
                "day {}: checkpoint_every must be at least 1",
                self.day
            ));
        }
        let expected = self.count / self.checkpoint_every;
        if self.checkpoints.len() as u64 != expected {
            return Err(format!(
                "day {}: {} checkpoints for {} records at one per {}, expected {expected}",
                self.day,
                self.checkpoints.len(),
                self.count,
                self.checkpoint_every
            ));
        }
        if self.count == 0 && self.root != genesis(&self.day) {
            return Err(format!(
                "day {}: an empty day's root must be the day's starting hash",
                self.day
            ));
        }
        Ok(())
    }
}

/// A `.root` file: a [`DayRoot`] with the format's magic and version (no `open` key).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootFileJson {
    magic: String,
    version: u32,
    day: String,
    count: u64,
    root: Digest,
    checkpoint_every: u64,
    checkpoints: Vec<Digest>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootsJson {
    magic: String,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exported_at: Option<String>,
    days: Vec<DayRoot>,
}

/// Only what every version has, read first so a wrong file or version gets a precise error.
#[derive(Deserialize)]
struct Probe {
    magic: Option<String>,
    version: Option<u32>,
}

/// An exported set of day roots, oldest day first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootsFile {
    /// When it was exported (RFC 3339), if known.
    pub exported_at: Option<String>,
    /// One root per day, sorted by day, no day twice.
    pub days: Vec<DayRoot>,
}

/// Reads a whole file, refusing one over `max` bytes.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| AuditError::io("cannot open", path, e))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| AuditError::io("cannot read", path, e))?;
    if bytes.len() as u64 > max {
        return Err(AuditError::format(
            path,
            format!("file is over {max} bytes, more than any valid one; refusing to load it"),
        ));
    }
    Ok(bytes)
}

/// Checks `magic` and `version` before the rest is parsed.
pub(crate) fn probe(path: &Path, bytes: &[u8], magic: &str, what: &str) -> Result<()> {
    let p: Probe = serde_json::from_slice(bytes)
        .map_err(|e| AuditError::format(path, format!("not a JSON {what}: {e}")))?;
    match p.magic.as_deref() {
        Some(m) if m == magic => {}
        Some(m) => {
            return Err(AuditError::format(
                path,
                format!("not a {what}: magic is '{m}', expected '{magic}'"),
            ));
        }
        None => {
            return Err(AuditError::format(
                path,
                format!("not a {what}: no \"magic\": \"{magic}\" key"),
            ));
        }
    }
    match p.version {
        Some(JSON_VERSION) => Ok(()),
        Some(v) => Err(AuditError::format(
            path,
            format!("{what} version {v} is not supported (this build reads {JSON_VERSION})"),
        )),
        None => Err(AuditError::format(path, format!("{what} has no version"))),
    }
}

/// Writes `bytes` to `path` through a temporary file, fsynced and renamed, then fsyncs the
/// directory: a crash leaves the old file or the new one, never half of one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| AuditError::io("cannot create", &tmp, e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| AuditError::io("cannot write", &tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| AuditError::io("cannot rename", &tmp, e))?;
    sync_dir(dir)
}

/// fsyncs a directory so a file created or renamed in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io("cannot sync", dir, e))
}

/// Path of `day`'s `.root` file.
pub fn root_path(dir: &Path, day: &str) -> PathBuf {
    dir.join(format!("{day}.root"))
}

/// Path of `day`'s chain file.
pub fn chain_path(dir: &Path, day: &str) -> PathBuf {
    dir.join(format!("{day}.chain"))
}

/// Reads and checks a `.root` file.
pub fn read_root(path: &Path) -> Result<DayRoot> {
    let bytes = read_capped(path, MAX_JSON_BYTES)?;
    probe(path, &bytes, ROOT_MAGIC, "shiplog audit .root file")?;
    let f: RootFileJson = serde_json::from_slice(&bytes)
        .map_err(|e| AuditError::format(path, format!("unreadable .root file: {e}")))?;
    let root = DayRoot {
        day: f.day,
        open: false,
        count: f.count,
        root: f.root,
        checkpoint_every: f.checkpoint_every,
        checkpoints: f.checkpoints,
    };
    root.check().map_err(|e| AuditError::format(path, e))?;
    Ok(root)
}

/// Writes `root` as its day's `.root` file, atomically.
pub fn write_root(dir: &Path, root: &DayRoot) -> Result<()> {
    debug_assert!(root.check().is_ok() && !root.open);
    let f = RootFileJson {
        magic: ROOT_MAGIC.into(),
        version: JSON_VERSION,
        day: root.day.clone(),
        count: root.count,
        root: root.root,
        checkpoint_every: root.checkpoint_every,
        checkpoints: root.checkpoints.clone(),
    };
    let mut bytes = serde_json::to_vec_pretty(&f).unwrap_or_default();
    bytes.push(b'\n');
    write_atomic(&root_path(dir, &root.day), &bytes)
}

impl RootsFile {
    /// Reads and checks an exported roots file.
    pub fn load(path: &Path) -> Result<RootsFile> {
        let bytes = read_capped(path, MAX_JSON_BYTES)?;
        Self::parse(path, &bytes)
    }

    /// Parses and checks a roots file's bytes; `path` is only used in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<RootsFile> {
        probe(path, bytes, ROOTS_MAGIC, "shiplog audit roots file")?;
        let j: RootsJson = serde_json::from_slice(bytes)
            .map_err(|e| AuditError::format(path, format!("unreadable roots file: {e}")))?;
        let mut days = j.days;
        for d in &days {
            d.check().map_err(|e| AuditError::format(path, e))?;
        }
        days.sort_by(|a, b| a.day.cmp(&b.day));
        if let Some(w) = days.windows(2).find(|w| w[0].day == w[1].day) {
            return Err(AuditError::format(
                path,
                format!("day {} is listed twice", w[0].day),
            ));
        }
        Ok(RootsFile {
            exported_at: j.exported_at,
            days,
        })
    }

    /// The file's JSON text.
    pub fn to_json(&self) -> String {
        let j = RootsJson {
            magic: ROOTS_MAGIC.into(),
            version: JSON_VERSION,
            exported_at: self.exported_at.clone(),
            days: self.days.clone(),
        };
        serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"
    }

    /// The root of `day`, if exported.
    pub fn get(&self, day: &str) -> Option<&DayRoot> {
        self.days
            .binary_search_by(|d| d.day.as_str().cmp(day))
            .ok()
            .map(|i| &self.days[i])
    }

    /// The newest day listed.
    pub fn last_day(&self) -> Option<&str> {
        self.days.last().map(|d| d.day.as_str())
    }
}

/// Days that have a chain file and days that have a `.root` file in the audit directory.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub chains: std::collections::BTreeSet<String>,
    pub roots: std::collections::BTreeSet<String>,
    /// `<day>.chain.cut-<offset>` files: crash tails set aside by [`super::AuditLog::open`].
    pub cuts: std::collections::BTreeMap<String, Vec<String>>,
}

/// Lists the audit directory; a missing directory is empty.
pub(crate) fn list(dir: &Path) -> Result<Listing> {
    let mut out = Listing::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(AuditError::io("cannot list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(day) = name.strip_suffix(".chain")
            && is_day(day)
        {
            out.chains.insert(day.to_string());
        } else if let Some(day) = name.strip_suffix(".root")
            && is_day(day)
        {
            out.roots.insert(day.to_string());
        } else if let Some((day, _)) = name.split_once(".chain.cut-")
            && is_day(day)
        {
            out.cuts
                .entry(day.to_string())
                .or_default()
                .push(name.clone());
        }
    }
    Ok(out)
}

/// The count, last stored hash and checkpoints of a chain file's whole records, read from
/// the stored hashes without recomputing them (that is [`super::verify`]'s job).
pub(crate) fn stored_root(path: &Path, day: &str, every: u64) -> Result<DayRoot> {
    let mut r = ChainReader::open(path, day)?;
    let mut root = DayRoot {
        day: day.to_string(),
        open: false,
        count: 0,
        root: genesis(day),
        checkpoint_every: every,
        checkpoints: Vec::new(),
    };
    while let Frame::Record { hash, .. } = r.next_frame()? {
        root.count += 1;
        root.root = hash;
        if root.count.is_multiple_of(every) {
            root.checkpoints.push(hash);
        }
    }
    Ok(root)
}

/// The roots of every closed day (from their `.root` files), plus, with `include_open`, the
/// root so far of each day not closed yet, marked open.
pub fn export(dir: &Path, include_open: bool) -> Result<RootsFile> {
    let listing = list(dir)?;
    let mut days = Vec::new();
    for day in &listing.roots {
        days.push(read_root(&root_path(dir, day))?);
    }
    if include_open {
        for day in listing.chains.difference(&listing.roots) {
            let mut root = stored_root(
                &chain_path(dir, day),
                day,
                super::format::DEFAULT_CHECKPOINT_EVERY,
            )?;
            root.open = true;
            days.push(root);
        }
    }
    days.sort_by(|a, b| a.day.cmp(&b.day));
    Ok(RootsFile {
        exported_at: Some(shiplog_core::Timestamp::now().to_rfc3339()),
        days,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RootsFile {
        RootsFile {
            exported_at: None,
            days: vec![DayRoot {
                day: "2026-11-22".into(),
                open: false,
                count: 3,
                root: genesis("x"),
                checkpoint_every: 2,
                checkpoints: vec![genesis("y")],
            }],
        }
    }

    #[test]
    fn roots_files_round_trip() {
        let r = sample();
        let back = RootsFile::parse(Path::new("r.json"), r.to_json().as_bytes()).unwrap();
        assert_eq!(back, r);
        assert!(back.get("2026-11-22").is_some());
        assert!(back.get("2026-11-23").is_none());
    }

    #[test]
    fn hostile_roots_files_get_precise_errors() {
        let p = Path::new("r.json");
        let err = |text: &str| {
            RootsFile::parse(p, text.as_bytes())
                .unwrap_err()
                .to_string()
        };
        assert!(err("garbage").contains("not a JSON"), "{}", err("garbage"));
        assert!(err("[1,2]").contains("not a JSON"));
        assert!(err(r#"{"version":1}"#).contains("no \"magic\""));
        assert!(err(r#"{"magic":"shiplog-audit-root","version":1}"#).contains("magic is"));
        assert!(
            err(r#"{"magic":"shiplog-audit-roots","version":7,"days":[]}"#).contains("version 7")
        );
        let good = sample().to_json();
        let bad_hash = good.replacen(&genesis("x").to_string(), "abc", 1);
        assert!(
            err(&bad_hash).contains("64 hex digits"),
            "{}",
            err(&bad_hash)
        );
        let bad_day = good.replace("2026-11-22", "2026-11-99");
        assert!(err(&bad_day).contains("2026-11-99"));
        let few = good.replace("\"count\": 3", "\"count\": 5");
        assert!(err(&few).contains("expected 2"), "{}", err(&few));
        let zero = good.replace("\"checkpoint_every\": 2", "\"checkpoint_every\": 0");
        assert!(err(&zero).contains("at least 1"));
        let mut twice = sample();
        twice.days.push(twice.days[0].clone());
        assert!(err(&twice.to_json()).contains("listed twice"));
        let unknown = good.replace("\"count\"", "\"extra\": 1, \"count\"");
        assert!(err(&unknown).contains("unknown field"), "{}", err(&unknown));
    }

    #[test]
    fn oversized_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.json");
        std::fs::write(&p, vec![b' '; 100]).unwrap();
        let e = read_capped(&p, 10).unwrap_err().to_string();
        assert!(e.contains("over 10 bytes"), "{e}");
    }
}
