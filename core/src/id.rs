//! Deterministic 128-bit event ids.
//!
//! An id is a hash of where a record came from, so a collector that replays a stretch of a
//! container's log after a crash produces the same ids and the indexer drops the copies.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::Xxh3;

use crate::timestamp::Timestamp;

/// A 128-bit event id, written as 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub u128);

/// Why text is not an event id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event id '{0}': expected 32 hex digits")]
pub struct IdError(pub String);

impl EventId {
    /// The id of a line from a container's stream: node, container, stream, source time and
    /// the line's sequence number among lines with that same source time.
    pub fn for_source(
        node: &str,
        container_id: &str,
        stream: &str,
        ts: Timestamp,
        seq: u32,
    ) -> Self {
        let mut h = Xxh3::new();
        for part in [node, container_id, stream] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(&ts.as_nanos().to_le_bytes());
        h.update(&seq.to_le_bytes());
        EventId(h.digest128())
    }

    /// An id derived from arbitrary bytes, for records that arrive without one.
    pub fn for_content(parts: &[&[u8]]) -> Self {
        let mut h = Xxh3::new();
        for part in parts {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        EventId(h.digest128())
    }

    /// Whether this is the all-zero id that means "not assigned yet".
    pub fn is_unset(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).unwrap_or_default())
    }
}

impl FromStr for EventId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        // One pass over the 32 digits: ids are parsed once per ingested event.
        let bad = || IdError(s.chars().take(40).collect());
        if s.len() != 32 {
            return Err(bad());
        }
        let mut v = 0u128;
        for c in s.bytes() {
            let digit = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(bad()),
            };
            v = v << 4 | u128::from(digit);
        }
        Ok(EventId(v))
    }
}

impl EventId {
    /// The 32 lowercase hex digits, on the stack: ids are written once per event sent or
    /// stored, and formatting through `Display` padding is several times slower.
    fn hex(self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, byte) in self.0.to_be_bytes().iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(byte >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex();
        // Only hex digits are ever written into it.
        s.serialize_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_source_gives_same_id_and_any_change_differs() {
        let a = EventId::for_source("n1", "c1", "stdout", Timestamp(5), 0);
        assert_eq!(
            a,
            EventId::for_source("n1", "c1", "stdout", Timestamp(5), 0)
        );
        assert_ne!(
            a,
            EventId::for_source("n1", "c1", "stderr", Timestamp(5), 0)
        );
        assert_ne!(
            a,
            EventId::for_source("n1", "c1", "stdout", Timestamp(5), 1)
        );
        assert_ne!(
            a,
            EventId::for_source("n1c", "1", "stdout", Timestamp(5), 0)
        );
    }

    #[test]
    fn hex_round_trip_and_rejects_bad_text() {
        let id = EventId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let s = id.to_string();
        assert_eq!(s, "0123456789abcdef0011223344556677");
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"0123456789abcdef0011223344556677\""
        );
        assert_eq!(
            serde_json::to_string(&EventId(1)).unwrap(),
            "\"00000000000000000000000000000001\""
        );
        assert_eq!(s.parse::<EventId>().unwrap(), id);
        assert!("xyz".parse::<EventId>().is_err());
        assert!(
            "+123456789abcdef0011223344556677"
                .parse::<EventId>()
                .is_err()
        );
        assert_eq!(
            "0123456789ABCDEF0011223344556677"
                .parse::<EventId>()
                .unwrap(),
            id
        );
        for bad in [
            "0123456789abcdeg0011223344556677",
            "0123456789abcdef001122334455667",
            "0123456789abcdef00112233445566770",
            "0123456789abcdef 011223344556677",
            "0123456789abcdéf011223344556677",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad}");
        }
        assert_eq!(
            "ffffffffffffffffffffffffffffffff"
                .parse::<EventId>()
                .unwrap(),
            EventId(u128::MAX)
        );
    }
}
