//! The alert state file, `<data_dir>/alerts/state`: alerts, history, silences and
//! deliveries, so a restart neither forgets a firing alert (and re-sends it) nor loses a
//! resolution still waiting for delivery.
//!
//! Layout: the magic `SLALERT\0`, a little-endian `u32` version (1), a `u32` length, the
//! JSON of [`Saved`], and the first 8 bytes of its SHA-256. Written to a temporary file,
//! fsynced and renamed over the old one, so a crash leaves the old or the new file whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::eval::{Instance, Transition};
use super::outbox::Outbox;
use super::silence::Silence;

/// File magic.
pub const MAGIC: &[u8; 8] = b"SLALERT\0";
/// Current version.
pub const VERSION: u32 = 1;
/// Largest state file read back.
pub const MAX_BYTES: usize = 256 << 20;

/// What survives a restart.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// Pending and firing alerts.
    pub instances: Vec<Instance>,
    /// Recent transitions.
    pub history: Vec<Transition>,
    /// Silences.
    pub silences: Vec<Silence>,
    /// Queued messages and delivery records.
    pub outbox: Outbox,
}

/// Why the state file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("alert state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not a state file this version understands.
    #[error("alert state {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The state file under a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("alerts").join("state")
}

/// Encodes the state.
pub fn encode(saved: &Saved) -> Vec<u8> {
    let json = serde_json::to_vec(saved).expect("alert state serialises");
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&Sha256::digest(&json)[..8]);
    out
}

/// Decodes a state file's bytes.
pub fn decode(bytes: &[u8]) -> Result<Saved, String> {
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err("not an alert state file (bad magic)".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!(
            "version {version} is not supported (this build reads {VERSION})"
        ));
    }
    let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    if bytes.len() != 16 + len + 8 {
        return Err(format!(
            "truncated: {} bytes for a {len}-byte body",
            bytes.len()
        ));
    }
    let json = &bytes[16..16 + len];
    if Sha256::digest(json)[..8] != bytes[16 + len..] {
        return Err("checksum mismatch".into());
    }
    serde_json::from_slice(json).map_err(|e| format!("bad body: {e}"))
}

/// Reads the state; a missing file is an empty state.
pub fn load(path: &Path) -> Result<Saved, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if bytes.len() > MAX_BYTES {
        return Err(StoreError::Format {
            path: path.to_path_buf(),
            reason: format!("{} bytes, larger than {MAX_BYTES}", bytes.len()),
        });
    }
    decode(&bytes).map_err(|reason| StoreError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes the state atomically (temporary file, fsync, rename, fsync of the directory).
pub fn save(path: &Path, saved: &Saved) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&encode(saved)).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        assert!(load(&p).unwrap().instances.is_empty());
        let saved: Saved = decode(include_bytes!("../../testdata/alert-state-v1.bin")).unwrap();
        save(&p, &saved).unwrap();
        let back = load(&p).unwrap();
        assert_eq!(back.instances, saved.instances);
        assert_eq!(back.silences, saved.silences);
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 12] ^= 1;
        assert!(decode(&bytes).unwrap_err().contains("checksum"));
        assert!(decode(&bytes[..n - 1]).unwrap_err().contains("truncated"));
        assert!(
            decode(b"not a state file at all")
                .unwrap_err()
                .contains("magic")
        );
        let mut v2 = encode(&saved);
        v2[8] = 2;
        assert!(decode(&v2).unwrap_err().contains("version 2"));
    }

    /// The v1 fixture keeps opening: a firing alert, a silence, a queued resolution.
    #[test]
    fn the_v1_fixture_still_reads() {
        let saved = decode(include_bytes!("../../testdata/alert-state-v1.bin")).unwrap();
        assert_eq!(saved.instances.len(), 1);
        assert_eq!(saved.instances[0].rule, "api-errors");
        assert_eq!(saved.silences.len(), 1);
        assert_eq!(saved.outbox.items.len(), 1);
        assert_eq!(saved.history.len(), 2);
    }
}
