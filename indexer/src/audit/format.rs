//! The chain file's bytes and the hash that links records.
//!
//! ```text
//! header:  magic "SHPLGAUD" | version: u32 LE | day: 10 ASCII bytes "yyyy-mm-dd" | 2 zero bytes
//! record:  len: u32 LE | id: u128 LE | bytes: len bytes | hash: 32 bytes | check: u64 LE
//! ```
//!
//! `hash` is the chain hash `h_i = SHA-256(h_{i-1} || position: u64 LE || len: u32 LE ||
//! bytes)`, with `h_{-1} = SHA-256("shiplog audit chain v1\0" || day)`, so a day's chain
//! cannot be passed off as another day's. `id` is outside the hash: it only lets a restarted
//! indexer skip records it already appended; the id that counts as evidence is the one
//! inside the JSON bytes. `check` is xxh3-64 over `len`, `id`, `bytes` and `hash`: it is no
//! defence against a forger (anyone can recompute it) but tells a record torn by a crash
//! from a whole one without hashing, and makes an edited frame fail fast with a precise
//! reason. It leaves out the position on purpose, so a record moved elsewhere reads as a
//! whole record and fails as a chain hash mismatch.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use xxhash_rust::xxh3::Xxh3;

/// Magic bytes at the start of every chain file.
pub const MAGIC: &[u8; 8] = b"SHPLGAUD";
/// The chain format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Size of the file header.
pub const HEADER_LEN: usize = 24;
/// Bytes of a record before its JSON: `len` and `id`.
pub const PREFIX_LEN: usize = 4 + 16;
/// Bytes of a record after its JSON: `hash` and `check`.
pub const SUFFIX_LEN: usize = 32 + 8;
/// Largest record accepted, on append and when reading: a length prefix above it is damage,
/// so a hostile file cannot make a reader allocate more than this.
pub const MAX_RECORD: u32 = 64 * 1024 * 1024;
/// Records between two checkpoints in a `.root` file, unless opened otherwise.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1024;

const DOMAIN: &[u8] = b"shiplog audit chain v1\0";

/// A SHA-256 value, written as 64 lowercase hex digits in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Digest {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Digest> {
        let b = s.as_bytes();
        if b.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("'{s}' is not a SHA-256 value (64 hex digits)"))
        })
    }
}

/// The hash before a day's first record, `h_{-1}`.
pub fn genesis(day: &str) -> Digest {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(day.as_bytes());
    Digest(h.finalize().into())
}

/// The chain hash of the record at `position` after `prev`.
pub fn link(prev: &Digest, position: u64, bytes: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(prev.0);
    h.update(position.to_le_bytes());
    h.update((bytes.len() as u32).to_le_bytes());
    h.update(bytes);
    Digest(h.finalize().into())
}

/// The frame checksum of a record.
pub fn check(id: u128, bytes: &[u8], hash: &Digest) -> u64 {
    let mut h = Xxh3::new();
    h.update(&(bytes.len() as u32).to_le_bytes());
    h.update(&id.to_le_bytes());
    h.update(bytes);
    h.update(&hash.0);
    h.digest()
}

/// The header of `day`'s chain file.
pub fn header(day: &str) -> [u8; HEADER_LEN] {
    debug_assert!(is_day(day));
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..22].copy_from_slice(day.as_bytes());
    h
}

/// Checks a header read from `day`'s file; says what is wrong.
pub fn check_header(h: &[u8; HEADER_LEN], day: &str) -> std::result::Result<(), String> {
    if &h[..8] != MAGIC {
        return Err("not a shiplog audit chain (bad magic)".into());
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != VERSION {
        return Err(format!(
            "audit chain format version {version} is not supported (this build reads {VERSION})"
        ));
    }
    if &h[12..22] != day.as_bytes() || h[22..] != [0, 0] {
        return Err(format!(
            "header names day '{}', not {day}: the file was renamed or copied from another day",
            String::from_utf8_lossy(&h[12..22])
        ));
    }
    Ok(())
}

/// Appends one framed record to `out`.
pub fn encode(id: u128, bytes: &[u8], hash: &Digest, out: &mut Vec<u8>) {
    debug_assert!(bytes.len() <= MAX_RECORD as usize);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(&hash.0);
    out.extend_from_slice(&check(id, bytes, hash).to_le_bytes());
}

/// Whether `s` is a real calendar day written `yyyy-mm-dd`.
pub fn is_day(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && digits(5..7) && digits(8..10)) {
        return false;
    }
    // The round trip rejects 2026-02-30 and friends.
    shiplog_core::Timestamp::parse_rfc3339(s).is_ok_and(|t| t.day_string() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_as_hex_and_refuse_anything_else() {
        let d = genesis("2026-11-22");
        assert_eq!(Digest::from_hex(&d.to_string()), Some(d));
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        for bad in ["", "zz", &"0".repeat(63), &"g".repeat(64), &"é".repeat(32)] {
            assert_eq!(Digest::from_hex(bad), None, "{bad}");
        }
        let err = serde_json::from_str::<Digest>("\"abc\"").unwrap_err();
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }

    #[test]
    fn the_first_hash_depends_on_the_day_and_every_input_moves_a_link() {
        assert_ne!(genesis("2026-11-22"), genesis("2026-11-23"));
        let g = genesis("2026-11-22");
        let base = link(&g, 0, b"abc");
        assert_ne!(base, link(&g, 1, b"abc"));
        assert_ne!(base, link(&g, 0, b"abd"));
        assert_ne!(base, link(&genesis("2026-11-23"), 0, b"abc"));
        assert_eq!(base, link(&g, 0, b"abc"));
    }

    #[test]
    fn headers_name_their_day_and_version() {
        let h = header("2026-11-22");
        assert!(check_header(&h, "2026-11-22").is_ok());
        assert!(
            check_header(&h, "2026-11-23")
                .unwrap_err()
                .contains("another day")
        );
        let mut v = h;
        v[8] = 2;
        assert!(
            check_header(&v, "2026-11-22")
                .unwrap_err()
                .contains("version 2")
        );
        let mut m = h;
        m[0] = b'X';
        assert!(
            check_header(&m, "2026-11-22")
                .unwrap_err()
                .contains("magic")
        );
    }

    #[test]
    fn only_real_dates_are_days() {
        assert!(is_day("2026-11-22"));
        assert!(is_day("2024-02-29"));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "20261122",
            "../../etc",
            "",
            "2026-11-22x",
        ] {
            assert!(!is_day(bad), "{bad}");
        }
    }
}
