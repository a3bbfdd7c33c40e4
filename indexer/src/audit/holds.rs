//! Legal holds: days that retention must keep whatever their age.
//!
//! `<data_dir>/audit/holds.json` lists every hold ever placed, with who placed it, when
//! and why; a released hold stays in the file with who released it and when, so the file
//! is its own history. A day is held while it has a hold that is not released.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{AuditError, Result};
use super::format::is_day;
use super::root::{JSON_VERSION, MAX_JSON_BYTES, probe, read_capped, write_atomic};

/// `magic` of the holds file.
pub const HOLDS_MAGIC: &str = "shiplog-audit-holds";
/// Name of the holds file inside the audit directory.
pub const FILE_NAME: &str = "holds.json";

/// One hold on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    /// The held day, `yyyy-mm-dd`.
    pub day: String,
    /// Who placed it.
    pub by: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why (a case or ticket reference).
    pub reason: String,
    /// Who released it, once released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_by: Option<String>,
    /// When it was released (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
}

impl Hold {
    /// Not released.
    pub fn active(&self) -> bool {
        self.released_at.is_none()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldsJson {
    magic: String,
    version: u32,
    holds: Vec<Hold>,
}

/// The holds of a data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holds {
    holds: Vec<Hold>,
}

/// Path of the holds file in the audit directory `dir`.
pub fn holds_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

impl Holds {
    /// Reads the holds file of the audit directory `dir`; none there means no holds.
    pub fn load(dir: &Path) -> Result<Holds> {
        let path = holds_path(dir);
        if !path.exists() {
            return Ok(Holds::default());
        }
        let bytes = read_capped(&path, MAX_JSON_BYTES)?;
        probe(&path, &bytes, HOLDS_MAGIC, "shiplog holds file")?;
        let j: HoldsJson = serde_json::from_slice(&bytes)
            .map_err(|e| AuditError::format(&path, format!("unreadable holds file: {e}")))?;
        if let Some(h) = j.holds.iter().find(|h| !is_day(&h.day)) {
            return Err(AuditError::format(
                &path,
                format!("hold on '{}', which is not a day written yyyy-mm-dd", h.day),
            ));
        }
        Ok(Holds { holds: j.holds })
    }

    /// Writes the holds file, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io("cannot create", dir, e))?;
        let j = HoldsJson {
            magic: HOLDS_MAGIC.into(),
            version: JSON_VERSION,
            holds: self.holds.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&j).unwrap_or_default();
        bytes.push(b'\n');
        write_atomic(&holds_path(dir), &bytes)
    }

    /// Whether `day` is under an active hold.
    pub fn contains(&self, day: &str) -> bool {
        self.holds.iter().any(|h| h.day == day && h.active())
    }

    /// The active hold on `day`.
    pub fn get(&self, day: &str) -> Option<&Hold> {
        self.holds.iter().find(|h| h.day == day && h.active())
    }

    /// Every hold, active and released, in the order placed.
    pub fn all(&self) -> &[Hold] {
        &self.holds
    }

    /// Places a hold on `day`; refused when the day is already held.
    pub fn add(
        &mut self,
        day: &str,
        by: &str,
        reason: &str,
        at: shiplog_core::Timestamp,
    ) -> Result<()> {
        if !is_day(day) {
            return Err(AuditError::BadDay(day.to_string()));
        }
        if let Some(h) = self.get(day) {
            return Err(AuditError::Hold(format!(
                "day {day} is already held (by {} since {}: {})",
                h.by, h.at, h.reason
            )));
        }
        self.holds.push(Hold {
            day: day.to_string(),
            by: by.to_string(),
            at: at.to_rfc3339(),
            reason: reason.to_string(),
            released_by: None,
            released_at: None,
        });
        Ok(())
    }

    /// Releases the hold on `day`, returning it; refused when the day is not held.
    pub fn release(&mut self, day: &str, by: &str, at: shiplog_core::Timestamp) -> Result<Hold> {
        if !is_day(day) {
            return Err(AuditError::BadDay(day.to_string()));
        }
        let Some(h) = self.holds.iter_mut().find(|h| h.day == day && h.active()) else {
            return Err(AuditError::Hold(format!(
                "day {day} is not held: `shiplog audit holds` lists the holds"
            )));
        };
        h.released_by = Some(by.to_string());
        h.released_at = Some(at.to_rfc3339());
        Ok(h.clone())
    }
}

#[cfg(test)]
mod tests {
    use shiplog_core::Timestamp;

    use super::*;

    #[test]
    fn holds_persist_and_keep_their_history() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::parse_rfc3339("2026-11-22T08:00:00Z").unwrap();
        let mut h = Holds::load(dir.path()).unwrap();
        assert!(!h.contains("2026-11-20"));
        h.add("2026-11-20", "ana", "case 42", now).unwrap();
        assert!(
            h.add("2026-11-20", "bo", "again", now)
                .unwrap_err()
                .to_string()
                .contains("already held")
        );
        assert!(matches!(
            h.add("2026-11-31", "ana", "x", now),
            Err(AuditError::BadDay(_))
        ));
        h.save(dir.path()).unwrap();
        let mut back = Holds::load(dir.path()).unwrap();
        assert!(back.contains("2026-11-20"));
        assert_eq!(back.get("2026-11-20").unwrap().by, "ana");
        let released = back.release("2026-11-20", "bo", now).unwrap();
        assert_eq!(released.released_by.as_deref(), Some("bo"));
        assert!(!back.contains("2026-11-20"));
        assert!(
            back.release("2026-11-20", "bo", now)
                .unwrap_err()
                .to_string()
                .contains("not held")
        );
        back.save(dir.path()).unwrap();
        let again = Holds::load(dir.path()).unwrap();
        assert_eq!(again.all().len(), 1, "a released hold stays on file");
        assert!(!again.contains("2026-11-20"));
    }

    #[test]
    fn hostile_holds_files_get_precise_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = holds_path(dir.path());
        let err = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Holds::load(dir.path()).unwrap_err().to_string()
        };
        assert!(err("\u{0}\u{1}binary").contains("not a JSON"));
        assert!(err(r#"{"magic":"shiplog-audit-roots","version":1}"#).contains("magic is"));
        assert!(
            err(r#"{"magic":"shiplog-audit-holds","version":2,"holds":[]}"#).contains("version 2")
        );
        let bad_day = r#"{"magic":"shiplog-audit-holds","version":1,"holds":[{"day":"../x","by":"a","at":"t","reason":"r"}]}"#;
        assert!(err(bad_day).contains("not a day"), "{}", err(bad_day));
        assert!(err(r#"{"magic":"shiplog-audit-holds","version":1}"#).contains("unreadable"));
    }
}
