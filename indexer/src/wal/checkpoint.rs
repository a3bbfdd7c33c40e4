//! The commit checkpoint: the highest WAL sequence number that tantivy commits cover.
//!
//! File `wal/checkpoint`: `SHPLGCKP`, version (u32 LE), covered seq (u64 LE), xxh3-64 of the
//! previous 20 bytes. Written to a temporary file, fsynced, renamed over the old one and the
//! directory fsynced, so a crash leaves either the old or the new checkpoint.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

const MAGIC: &[u8; 8] = b"SHPLGCKP";
const VERSION: u32 = 1;
const LEN: usize = 28;

/// Name of the checkpoint file inside the WAL directory.
pub const FILE_NAME: &str = "checkpoint";

/// Reads the covered sequence number; `Ok(0)` when there is no checkpoint yet. A damaged
/// checkpoint is an error: replaying from 0 instead is safe (ids make replays idempotent)
/// but the caller should say so.
pub fn read(dir: &Path) -> Result<u64, String> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if bytes.len() != LEN || &bytes[..8] != MAGIC {
        return Err(format!("{} is not a shiplog checkpoint", path.display()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(format!(
            "{}: checkpoint version {version} is not supported",
            path.display()
        ));
    }
    let sum = u64::from_le_bytes(bytes[20..28].try_into().unwrap_or_default());
    if xxh3_64(&bytes[..20]) != sum {
        return Err(format!("{}: checkpoint fails its checksum", path.display()));
    }
    Ok(u64::from_le_bytes(
        bytes[12..20].try_into().unwrap_or_default(),
    ))
}

/// Durably records `covered`.
pub fn write(dir: &Path, covered: u64) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(LEN);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&covered.to_le_bytes());
    let sum = xxh3_64(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    let tmp = dir.join("checkpoint.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(FILE_NAME))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), 0);
        write(dir.path(), 42).unwrap();
        assert_eq!(read(dir.path()).unwrap(), 42);
        write(dir.path(), 43).unwrap();
        assert_eq!(read(dir.path()).unwrap(), 43);
        let p = dir.path().join(FILE_NAME);
        let mut b = std::fs::read(&p).unwrap();
        b[14] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(read(dir.path()).unwrap_err().contains("checksum"));
        std::fs::write(&p, b"junk").unwrap();
        assert!(read(dir.path()).is_err());
    }

    #[test]
    fn the_v1_fixture_still_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/wal-v1");
        assert_eq!(read(&dir).unwrap(), 1);
    }
}
