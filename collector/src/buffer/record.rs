//! [`BufferedBatch`]: the payload of one buffer record, and its byte layout.
//!
//! ```text
//! batch id      u16 LE length | UTF-8 bytes
//! events        u32 LE
//! positions     u32 LE count | per position:
//!                   container id u16 LE length | UTF-8 bytes
//!                   stream u8 (0 stdout, 1 stderr) | ts i64 LE (ns) | seq u32 LE
//! body          u32 LE length | the zstd NDJSON batch exactly as posted
//! ```
//!
//! Little-endian integers, no padding. The layout is part of segment version 1: change it
//! only together with [`segment::VERSION`](super::segment::VERSION).

use std::sync::Arc;

use bytes::Bytes;
use shiplog_core::{Stream, Timestamp};

use crate::checkpoint::{Position, SourcePosition};
use crate::sink::EncodedBatch;

/// One batch waiting in the buffer: what is posted, and the checkpoint positions it covers
/// (they advance only once the receiver acknowledges it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferedBatch {
    /// The batch as posted.
    pub batch: EncodedBatch,
    /// Where its events end in their sources.
    pub positions: Vec<SourcePosition>,
}

/// Why a payload cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed buffer record: {0}")]
pub struct RecordError(pub &'static str);

impl BufferedBatch {
    /// The payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.batch.body.len() + 64 * self.positions.len() + 64);
        put_str16(&mut out, &self.batch.batch_id);
        out.extend_from_slice(&(self.batch.events as u32).to_le_bytes());
        out.extend_from_slice(&(self.positions.len() as u32).to_le_bytes());
        for p in &self.positions {
            put_str16(&mut out, &p.container_id);
            out.push(match p.stream {
                Stream::Stdout => 0,
                Stream::Stderr => 1,
            });
            out.extend_from_slice(&p.position.ts.as_nanos().to_le_bytes());
            out.extend_from_slice(&p.position.seq.to_le_bytes());
        }
        out.extend_from_slice(&(self.batch.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.batch.body);
        out
    }

    /// Reads a payload written by [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader(bytes);
        let batch_id = r.str16()?.to_string();
        let events = r.u32()? as usize;
        let count = r.u32()? as usize;
        // Each position takes at least 15 bytes: a count beyond that is a lie.
        if count > r.0.len() / 15 {
            return Err(RecordError("position count exceeds the record"));
        }
        let mut positions = Vec::with_capacity(count);
        for _ in 0..count {
            let container_id: Arc<str> = r.str16()?.into();
            let stream = match r.take(1)?[0] {
                0 => Stream::Stdout,
                1 => Stream::Stderr,
                _ => return Err(RecordError("unknown stream")),
            };
            let ts = Timestamp(i64::from_le_bytes(r.array()?));
            let seq = r.u32()?;
            positions.push(SourcePosition {
                container_id,
                stream,
                position: Position { ts, seq },
            });
        }
        let body_len = r.u32()? as usize;
        let body = r.take(body_len)?;
        if !r.0.is_empty() {
            return Err(RecordError("trailing bytes after the body"));
        }
        Ok(BufferedBatch {
            batch: EncodedBatch {
                batch_id,
                events,
                body: Bytes::copy_from_slice(body),
            },
            positions,
        })
    }
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Ids and container ids are short; cut anything absurd rather than corrupt the layout.
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError("record ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn str16(&mut self) -> Result<&'a str, RecordError> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| RecordError("text is not utf-8"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(n: usize) -> BufferedBatch {
        BufferedBatch {
            batch: EncodedBatch {
                batch_id: format!("batch-{n}"),
                events: n,
                body: Bytes::from(vec![n as u8; n * 3]),
            },
            positions: (0..n)
                .map(|i| SourcePosition {
                    container_id: format!("c{i}").into(),
                    stream: if i % 2 == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    },
                    position: Position {
                        ts: Timestamp(i as i64 * 1_000 - 5),
                        seq: i as u32,
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips() {
        for n in [0, 1, 7] {
            let batch = sample(n);
            assert_eq!(BufferedBatch::decode(&batch.encode()).unwrap(), batch);
        }
    }

    proptest! {
        /// Any bytes decode to a batch or an error, never a panic or a huge allocation.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = BufferedBatch::decode(&bytes);
        }

        /// Every strict prefix of a valid payload is refused.
        #[test]
        fn prefixes_are_refused(n in 0usize..6, cut in 0usize..1000) {
            let bytes = sample(n).encode();
            let cut = cut % bytes.len();
            prop_assert!(BufferedBatch::decode(&bytes[..cut]).is_err());
        }
    }
}
