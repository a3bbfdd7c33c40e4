//! The batch wire format: NDJSON, optionally zstd-compressed, with a versioned header line.
//!
//! ```text
//! {"shiplog_batch":1,"batch_id":"...","count":2}
//! {"id":"...","ts":"...","kind":"log",...}
//! {"id":"...","ts":"...","kind":"log",...}
//! ```
//!
//! The header is optional so that plain NDJSON from `curl` is accepted too; when present its
//! version must be one this build reads. Decoding is all-or-nothing: the first bad line fails
//! the whole batch with its line number, so nothing from a bad batch is half-indexed.
//! Every size is capped before memory is spent on it.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::accept::AcceptWindow;
use crate::event::Event;
use crate::timestamp::Timestamp;

/// The batch format version this build writes and reads.
pub const BATCH_VERSION: u32 = 1;

/// Size caps applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest decompressed body, in bytes.
    pub max_decompressed_bytes: usize,
    /// Longest single line, in bytes.
    pub max_line_bytes: usize,
    /// Most events in one batch.
    pub max_events: usize,
    /// Which event times a batch may carry.
    pub window: AcceptWindow,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_decompressed_bytes: 64 * 1024 * 1024,
            max_line_bytes: 4 * 1024 * 1024,
            max_events: 100_000,
            window: AcceptWindow::default(),
        }
    }
}

/// Why a batch was refused.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The zstd frame is damaged or not zstd at all.
    #[error("body is not valid zstd: {0}")]
    Zstd(String),
    /// Decompressing would exceed the cap.
    #[error("decompressed body exceeds the limit of {limit} bytes: send smaller batches")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A line is over the per-line cap.
    #[error("line {line}: {len} bytes exceeds the line limit of {limit} bytes")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
        /// Its length.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// More events than allowed in one batch.
    #[error("batch has more than {limit} events: send smaller batches")]
    TooManyEvents {
        /// The cap.
        limit: usize,
    },
    /// A line is not a valid event.
    #[error("line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// The header names a version this build does not read.
    #[error("batch format version {0} is not supported: this build reads version {BATCH_VERSION}")]
    Version(u32),
}

impl CodecError {
    /// The 1-based line the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            CodecError::LineTooLong { line, .. } | CodecError::BadLine { line, .. } => Some(*line),
            CodecError::Version(_) => Some(1),
            _ => None,
        }
    }
}

/// The optional first line of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchHeader {
    /// Format version.
    pub shiplog_batch: u32,
    /// Idempotency key chosen by the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Number of events that follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

/// A decoded batch.
#[derive(Debug, Default)]
pub struct Batch {
    /// The header's batch id, if one was sent.
    pub batch_id: Option<String>,
    /// The events, each with an id and a timestamp assigned.
    pub events: Vec<Event>,
    /// Each event's JSON as it should be stored: the line as sent when decoding changed
    /// nothing, else the event serialised again (so storing never re-encodes what it
    /// need not).
    pub sources: Vec<Vec<u8>>,
    /// Lines left out, with why (only with [`DecodeOptions::partial`]).
    pub rejected: Vec<Rejected>,
}

/// Encodes events as NDJSON with a header line (uncompressed).
pub fn encode_ndjson(events: &[Event], batch_id: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 256 + 64);
    write_ndjson(&mut out, events, batch_id);
    out
}

/// Appends the NDJSON of `events`, header line first, to `out`.
fn write_ndjson(out: &mut Vec<u8>, events: &[Event], batch_id: Option<&str>) {
    let header = BatchHeader {
        shiplog_batch: BATCH_VERSION,
        batch_id: batch_id.map(str::to_string),
        count: Some(events.len()),
    };
    // Serialising our own plain structs cannot fail.
    serde_json::to_writer(&mut *out, &header).expect("header serialises");
    out.push(b'\n');
    for e in events {
        serde_json::to_writer(&mut *out, e).expect("event serialises");
        out.push(b'\n');
    }
}

/// Encodes events as zstd-compressed NDJSON with a header line.
pub fn encode_batch(events: &[Event], batch_id: Option<&str>, level: i32) -> Vec<u8> {
    let raw = encode_ndjson(events, batch_id);
    zstd::bulk::compress(&raw, level).expect("in-memory zstd compression does not fail")
}

/// Encodes batches like [`encode_batch`], keeping its zstd context and its two working
/// buffers from one batch to the next. A sender that encodes batch after batch saves
/// making a compression context and faulting in fresh buffers for each (large buffers come
/// straight from the kernel and go back to it when freed).
pub struct BatchEncoder {
    level: i32,
    compressor: zstd::bulk::Compressor<'static>,
    ndjson: Vec<u8>,
    compressed: Vec<u8>,
}

impl std::fmt::Debug for BatchEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchEncoder")
            .field("level", &self.level)
            .field("ndjson_capacity", &self.ndjson.capacity())
            .field("compressed_capacity", &self.compressed.capacity())
            .finish_non_exhaustive()
    }
}

impl BatchEncoder {
    /// Working buffers larger than this after a batch are freed rather than kept: one
    /// unusually large batch must not pin its size in memory for good.
    pub const MAX_KEPT_BYTES: usize = 4 * 1024 * 1024;

    /// An encoder compressing at zstd `level`.
    pub fn new(level: i32) -> Self {
        BatchEncoder {
            level,
            compressor: zstd::bulk::Compressor::new(level)
                .expect("a zstd context for a valid level"),
            ndjson: Vec::new(),
            compressed: Vec::new(),
        }
    }

    /// Encodes `events` as zstd-compressed NDJSON with a header line, the same bytes
    /// [`encode_batch`] makes at this level.
    pub fn encode(&mut self, events: &[Event], batch_id: Option<&str>) -> Vec<u8> {
        self.ndjson.clear();
        write_ndjson(&mut self.ndjson, events, batch_id);
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.ndjson.len()));
        self.compressor
            .compress_to_buffer(&self.ndjson, &mut self.compressed)
            .expect("in-memory zstd compression into a buffer of the bound does not fail");
        let body = self.compressed.clone();
        for buffer in [&mut self.ndjson, &mut self.compressed] {
            if buffer.capacity() > Self::MAX_KEPT_BYTES {
                *buffer = Vec::new();
            }
        }
        body
    }
}

/// Decompresses a zstd body, failing once the output passes `limit` bytes.
pub fn decompress_capped(body: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    // When the body is one frame that says how big it is (ours are), decompress in one pass into a
    // buffer of that size: no growing and moving the output, no copy out of a stream
    // buffer. A claimed size is trusted only within the limit and a plausible ratio, so a
    // tiny body cannot make us reserve the whole limit; anything else takes the stream.
    const MAX_TRUSTED_RATIO: usize = 256;
    if zstd::zstd_safe::find_frame_compressed_size(body) == Ok(body.len())
        && let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(body)
        && let Ok(size) = usize::try_from(size)
        && size <= limit
        && size <= body.len().saturating_mul(MAX_TRUSTED_RATIO)
        // The size was checked against the limit just above.
        && let Ok(out) = {
            #[allow(clippy::disallowed_methods)]
            zstd::bulk::decompress(body, size)
        }
    {
        return Ok(out);
    }
    let decoder =
        zstd::stream::read::Decoder::new(body).map_err(|e| CodecError::Zstd(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    let read = decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Zstd(e.to_string()))?;
    if read > limit {
        return Err(CodecError::TooLarge { limit });
    }
    Ok(out)
}

/// How a body is decoded, beyond its caps.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions<'a> {
    /// The sender's idempotency key (an `Idempotency-Key` header); the header line's
    /// `batch_id` stands in when there is none. Lines without a time get ids from the key,
    /// their place in the body and their bytes, so a resend of the same body is recognised
    /// as duplicates even though its receive time differs.
    pub key: Option<&'a str>,
    /// Keep the good lines and list the bad ones in [`Batch::rejected`] instead of
    /// refusing the whole batch. Caps on the whole body still refuse it.
    pub partial: bool,
}

/// A line left out of a batch decoded with [`DecodeOptions::partial`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// 1-based line number in the (decompressed) body.
    pub line: usize,
    /// What was wrong, in words.
    pub reason: String,
}

/// Decodes a batch body. `compressed` says whether it is zstd.
///
/// Events without an id get one derived from their content, and events without a time get
/// `received`; so a retry of the same body yields the same ids for lines that carry their
/// time (see [`decode_batch_with`] for lines that do not).
pub fn decode_batch(
    body: &[u8],
    compressed: bool,
    limits: DecodeLimits,
    received: Timestamp,
) -> Result<Batch, CodecError> {
    decode_batch_with(body, compressed, limits, received, DecodeOptions::default())
}

/// [`decode_batch`] with an idempotency key and, optionally, partial acceptance.
pub fn decode_batch_with(
    body: &[u8],
    compressed: bool,
    limits: DecodeLimits,
    received: Timestamp,
    options: DecodeOptions<'_>,
) -> Result<Batch, CodecError> {
    let owned;
    let raw: &[u8] = if compressed {
        owned = decompress_capped(body, limits.max_decompressed_bytes)?;
        &owned
    } else {
        if body.len() > limits.max_decompressed_bytes {
            return Err(CodecError::TooLarge {
                limit: limits.max_decompressed_bytes,
            });
        }
        body
    };
    let mut batch = Batch::default();
    // Events are large (several hundred bytes): size the vectors once instead of letting
    // them double and move every event again. Capped, so a body of blank lines cannot make
    // it reserve much: no event line is shorter than `{"message":""}`.
    let lines = memchr::memchr_iter(b'\n', raw).count() + 1;
    let expected = lines.min(limits.max_events).min(raw.len() / 14 + 1);
    batch.events.reserve(expected);
    batch.sources.reserve(expected);
    let mut window = limits.window.start(received);
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', raw).chain(std::iter::once(raw.len()));
    for (idx, end) in ends.enumerate() {
        let line = &raw[start..end];
        start = end + 1;
        let line_no = idx + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if idx == 0 && line.starts_with(b"{\"shiplog_batch\"") {
            let header: BatchHeader =
                serde_json::from_slice(line).map_err(|e| CodecError::BadLine {
                    line: line_no,
                    reason: format!("bad header: {e}"),
                })?;
            if header.shiplog_batch != BATCH_VERSION {
                return Err(CodecError::Version(header.shiplog_batch));
            }
            batch.batch_id = header.batch_id;
            continue;
        }
        if batch.events.len() >= limits.max_events {
            return Err(CodecError::TooManyEvents {
                limit: limits.max_events,
            });
        }
        let key = options.key.or(batch.batch_id.as_deref());
        let position = batch.events.len();
        let decoded = decode_line(line, line_no, limits, received, key, position).and_then(
            |(event, source)| match window.check(event.ts) {
                Ok(()) => Ok((event, source)),
                Err(reason) => Err(CodecError::BadLine {
                    line: line_no,
                    reason,
                }),
            },
        );
        match decoded {
            Ok((event, source)) => {
                batch.events.push(event);
                batch.sources.push(source);
            }
            Err(e) if options.partial => batch.rejected.push(Rejected {
                line: line_no,
                reason: match e {
                    CodecError::BadLine { reason, .. } => reason,
                    other => other.to_string(),
                },
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(batch)
}

/// One event line: the event with its id and time filled in, and the bytes to store.
fn decode_line(
    line: &[u8],
    line_no: usize,
    limits: DecodeLimits,
    received: Timestamp,
    key: Option<&str>,
    position: usize,
) -> Result<(Event, Vec<u8>), CodecError> {
    if line.len() > limits.max_line_bytes {
        return Err(CodecError::LineTooLong {
            line: line_no,
            len: line.len(),
            limit: limits.max_line_bytes,
        });
    }
    let mut event: Event = match line.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice(line).map_err(|e| CodecError::BadLine {
            line: line_no,
            reason: describe_bad_line(line, &e),
        })?,
        _ => {
            return Err(CodecError::BadLine {
                line: line_no,
                reason: NOT_AN_OBJECT.into(),
            });
        }
    };
    let complete = event.ts.as_nanos() != 0 && event.received.is_some() && !event.id.is_unset();
    if event.ts.as_nanos() == 0 {
        // An explicit epoch is a clock that was never set, not a time in 1970 (a day
        // retention would drop at once): it gets the arrival time like a line without one,
        // and says so in its flags.
        if names_a_time(line) && !event.flags.contains(&crate::event::Flag::EpochTime) {
            event.flags.push(crate::event::Flag::EpochTime);
        }
        // Lines without a time share the batch's arrival time; their position in the
        // batch keeps them in the order they were sent.
        event.ts = received;
        if event.seq == 0 {
            event.seq = u32::try_from(position).unwrap_or(u32::MAX);
        }
        // The arrival time differs on every resend: with a key, the id comes from what the
        // sender sent instead, so a resend is a duplicate.
        if let (Some(key), true) = (key, event.id.is_unset()) {
            event.id = crate::EventId::for_content(&[
                b"keyed-line",
                key.as_bytes(),
                &(position as u64).to_le_bytes(),
                line,
            ]);
        }
    }
    event.received.get_or_insert(received);
    event.ensure_id();
    let source = if complete {
        line.to_vec()
    } else {
        serde_json::to_vec(&event).expect("events serialise")
    };
    Ok((event, source))
}

const NOT_AN_OBJECT: &str = "the line is not a JSON object: send one event object per line";

/// Whether a line that decoded with no time wrote a `ts` key (the epoch) rather than
/// leaving it out. Only asked of lines whose time is zero.
fn names_a_time(line: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        ts: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Probe>(line).is_ok_and(|p| p.ts.is_some())
}

/// Why a line is not an event, in words a sender can act on: where the JSON breaks, or
/// which field is wrong and how. Only runs on the error path.
pub fn describe_bad_line(line: &[u8], err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            let what = syntax_words(err);
            format!("not valid JSON at column {}: {what}", err.column())
        }
        Category::Data => {
            let mut de = serde_json::Deserializer::from_slice(line);
            let path_err = match serde_path_to_error::deserialize::<_, Event>(&mut de) {
                Ok(_) => return strip_position(&err.to_string()),
                Err(e) => e,
            };
            let path = path_err.path().to_string();
            let inner = strip_position(&path_err.inner().to_string());
            if let Some(rest) = inner.strip_prefix("unknown field `") {
                let name = rest.split('`').next().unwrap_or(rest);
                return format!(
                    "unknown field `{name}`: an event has the fields of the API contract; put \
                     other data under `fields` (for example {{\"fields\":{{\"{name}\":...}}}})"
                );
            }
            if path == "." || path.is_empty() {
                if inner.contains("expected struct Event") {
                    return NOT_AN_OBJECT.into();
                }
                return inner;
            }
            format!("field `{path}`: {inner}")
        }
    }
}

/// serde_json's syntax errors, said plainly.
fn syntax_words(err: &serde_json::Error) -> String {
    let text = strip_position(&err.to_string());
    let plain = match text.as_str() {
        "expected ident" => {
            "a bare word where a value belongs (strings need double quotes; \
                             the literals are true, false and null)"
        }
        "key must be a string" => "an object key without double quotes",
        "expected value" => "no JSON value here (a stray character, or not JSON at all)",
        "trailing characters" => "more text after the event's closing brace (one event per line)",
        "trailing comma" => "a comma before a closing bracket",
        "control character (\\u0000-\\u001F) found while parsing a string" => {
            "a raw control character (a tab or newline) inside a string: escape it"
        }
        t if t.starts_with("EOF while parsing") => {
            "the line ends before its JSON does (cut short, or a newline inside a value)"
        }
        t => return t.to_string(),
    };
    plain.to_string()
}

/// serde_json's message without its " at line L column C" tail (the line is ours to name).
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Level, Stream};
    use crate::id::EventId;
    use proptest::prelude::*;

    fn sample(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                let mut e = Event::log(
                    Timestamp(1_700_000_000_000_000_000 + i as i64),
                    format!("line {i} ✓"),
                );
                e.id = EventId(i as u128 + 1);
                e.service = "web".into();
                e.stream = Some(Stream::Stdout);
                e.level = Some(Level::Info);
                e
            })
            .collect()
    }

    #[test]
    fn round_trips_compressed_and_plain() {
        let events = sample(50);
        let body = encode_batch(&events, Some("b1"), 3);
        let got = decode_batch(&body, true, DecodeLimits::default(), Timestamp(9)).unwrap();
        assert_eq!(got.batch_id.as_deref(), Some("b1"));
        let mut want = events.clone();
        for e in &mut want {
            e.received = Some(Timestamp(9));
        }
        assert_eq!(got.events, want);
        let plain = encode_ndjson(&events, None);
        assert_eq!(
            decode_batch(&plain, false, DecodeLimits::default(), Timestamp(9))
                .unwrap()
                .events,
            want
        );
    }

    #[test]
    fn a_reused_encoder_makes_the_same_bytes_as_encode_batch_batch_after_batch() {
        let mut encoder = BatchEncoder::new(1);
        // Large, then small, then large again: leftovers of an earlier batch must not leak
        // into a later one.
        for (n, id) in [(400, "b1"), (3, "b2"), (250, "b3")] {
            let events = sample(n);
            let body = encoder.encode(&events, Some(id));
            assert_eq!(body, encode_batch(&events, Some(id), 1), "batch {id}");
            let got = decode_batch(&body, true, DecodeLimits::default(), Timestamp(9)).unwrap();
            assert_eq!(got.batch_id.as_deref(), Some(id));
            assert_eq!(got.events.len(), n);
        }
        // A batch beyond the cap is encoded, and its buffers are not kept.
        let big: Vec<Event> = (0..3)
            .map(|i| Event::log(Timestamp(i), "x".repeat(BatchEncoder::MAX_KEPT_BYTES / 2)))
            .collect();
        let body = encoder.encode(&big, None);
        let got = decode_batch(&body, true, DecodeLimits::default(), Timestamp(9)).unwrap();
        assert_eq!(got.events.len(), 3);
        assert!(encoder.ndjson.capacity() <= BatchEncoder::MAX_KEPT_BYTES);
        assert!(encoder.compressed.capacity() <= BatchEncoder::MAX_KEPT_BYTES);
    }

    #[test]
    fn sources_are_the_lines_when_complete_and_reserialised_otherwise() {
        let events = sample(3);
        let mut with_received = events.clone();
        for e in &mut with_received {
            e.received = Some(Timestamp(9));
        }
        let body = encode_ndjson(&with_received, None);
        let got = decode_batch(&body, false, DecodeLimits::default(), Timestamp(1)).unwrap();
        let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').skip(1).take(3).collect();
        for (i, src) in got.sources.iter().enumerate() {
            assert_eq!(
                src.as_slice(),
                lines[i],
                "complete events are stored as sent"
            );
            assert_eq!(serde_json::from_slice::<Event>(src).unwrap(), got.events[i]);
        }
        let partial = decode_batch(
            b"{\"message\":\"x\"}",
            false,
            DecodeLimits::default(),
            Timestamp(5),
        )
        .unwrap();
        let stored: Event = serde_json::from_slice(&partial.sources[0]).unwrap();
        assert_eq!(
            stored, partial.events[0],
            "filled-in fields are part of what is stored"
        );
        assert_eq!(stored.ts, Timestamp(5));
    }

    #[test]
    fn minimal_lines_get_ids_and_times_deterministically() {
        let body = b"{\"message\":\"hi\"}\r\n\n{\"message\":\"hi\",\"service\":\"x\"}";
        let a = decode_batch(body, false, DecodeLimits::default(), Timestamp(7)).unwrap();
        let b = decode_batch(body, false, DecodeLimits::default(), Timestamp(7)).unwrap();
        assert_eq!(a.events.len(), 2);
        assert_eq!(a.events[0].ts, Timestamp(7));
        assert!(!a.events[0].id.is_unset());
        assert_ne!(a.events[0].id, a.events[1].id);
        assert_eq!(a.events[0].id, b.events[0].id);
    }

    #[test]
    fn bad_input_names_the_line_and_reason() {
        let limits = DecodeLimits::default();
        let e = decode_batch(
            b"{\"message\":\"ok\"}\n{\"message\": 5}\n",
            false,
            limits,
            Timestamp(0),
        )
        .unwrap_err();
        assert_eq!(e.line(), Some(2));
        assert!(
            e.to_string()
                .starts_with("line 2: field `message`: invalid type: integer `5`"),
            "{e}"
        );
        let e = decode_batch(b"not json", false, limits, Timestamp(0)).unwrap_err();
        assert_eq!(e.line(), Some(1));
        let e = decode_batch(b"\x28\xb5\x2f\xfd garbage", true, limits, Timestamp(0)).unwrap_err();
        assert!(matches!(e, CodecError::Zstd(_)), "{e}");
        let e = decode_batch(b"{\"shiplog_batch\":2}\n", false, limits, Timestamp(0)).unwrap_err();
        assert!(matches!(e, CodecError::Version(2)));
        let small = DecodeLimits {
            max_line_bytes: 10,
            ..limits
        };
        let e =
            decode_batch(b"{\"message\":\"0123456789\"}", false, small, Timestamp(0)).unwrap_err();
        assert!(matches!(e, CodecError::LineTooLong { line: 1, .. }), "{e}");
        let few = DecodeLimits {
            max_events: 1,
            ..limits
        };
        let e = decode_batch(b"{}\n{}\n", false, few, Timestamp(0)).unwrap_err();
        assert!(matches!(e, CodecError::TooManyEvents { limit: 1 }));
    }

    /// One line per day, on 2,000 different days from 2020-01-01.
    fn lines_on_distinct_days(days: usize) -> Vec<u8> {
        let mut body = Vec::new();
        for d in 0..days {
            let ts = Timestamp((18_262 + d as i64) * 86_400 * 1_000_000_000);
            body.extend_from_slice(
                format!("{{\"ts\":\"{}\",\"message\":\"d{d}\"}}\n", ts.to_rfc3339()).as_bytes(),
            );
        }
        body
    }

    #[test]
    fn a_batch_on_more_days_than_the_window_allows_names_the_first_line_past_it() {
        let body = lines_on_distinct_days(2_000);
        let limits = DecodeLimits::default();
        let max = limits.window.max_days;
        match decode_batch(&body, false, limits, Timestamp::now()) {
            Err(CodecError::BadLine { line, reason }) => {
                assert_eq!(line, max + 1);
                assert!(reason.contains("max_days_per_batch"), "{reason}");
            }
            other => panic!("expected the line past the day bound refused: {other:?}"),
        }
        let options = DecodeOptions {
            key: None,
            partial: true,
        };
        let kept = decode_batch_with(&body, false, limits, Timestamp::now(), options).unwrap();
        assert_eq!(kept.events.len(), max);
        assert_eq!(kept.rejected.len(), 2_000 - max);
        assert_eq!(kept.rejected[0].line, max + 1);
        let days: std::collections::BTreeSet<i64> =
            kept.events.iter().map(|e| e.ts.day_number()).collect();
        assert_eq!(days.len(), max);
        // The node's own buffered batches are read back without the bound.
        let own = DecodeLimits {
            window: AcceptWindow::unbounded(),
            ..limits
        };
        assert_eq!(
            decode_batch(&body, false, own, Timestamp::now())
                .unwrap()
                .events
                .len(),
            2_000
        );
    }

    #[test]
    fn time_bounds_refuse_lines_by_their_own_time_not_the_arrival_time() {
        let now = Timestamp::now();
        let limits = DecodeLimits {
            window: AcceptWindow {
                max_past: Some(std::time::Duration::from_secs(86_400)),
                max_future: Some(std::time::Duration::from_secs(3_600)),
                ..AcceptWindow::default()
            },
            ..DecodeLimits::default()
        };
        let old = now.offset(-2 * 86_400 * 1_000_000_000).to_rfc3339();
        let body = format!(
            "{{\"message\":\"no time: arrival time\"}}\n{{\"ts\":\"{old}\",\"message\":\"old\"}}\n"
        );
        let e = decode_batch(body.as_bytes(), false, limits, now).unwrap_err();
        assert_eq!(e.line(), Some(2), "{e}");
        assert!(e.to_string().contains("accept_past"), "{e}");
    }

    #[test]
    fn bad_lines_are_described_in_words_with_the_field() {
        let reason =
            |line: &[u8]| match decode_batch(line, false, DecodeLimits::default(), Timestamp(1)) {
                Err(CodecError::BadLine { line: 1, reason }) => reason,
                other => panic!("{other:?}"),
            };
        let r = reason(b"{x}");
        assert!(
            r.starts_with("not valid JSON at column 2: an object key without double quotes"),
            "{r}"
        );
        assert_eq!(reason(b"nope"), NOT_AN_OBJECT);
        let r = reason(br#"{"message":nope}"#);
        assert!(r.contains("a bare word where a value belongs"), "{r}");
        assert!(!r.contains("expected ident"), "{r}");
        let r = reason(br#"{"message":"a"} {"message":"b"}"#);
        assert!(
            r.contains("more text after the event's closing brace"),
            "{r}"
        );
        let r = reason(br#"{"message":"cut"#);
        assert!(r.contains("the line ends before its JSON does"), "{r}");
        let r = reason(br#"{"message":"a","ts":"yesterday"}"#);
        assert!(r.starts_with("field `ts`: "), "{r}");
        let r = reason(br#"{"message":"a","user":"bob"}"#);
        assert!(
            r.starts_with("unknown field `user`") && r.contains("under `fields`"),
            "{r}"
        );
        let r = reason(b"[1,2]");
        assert_eq!(
            r,
            "the line is not a JSON object: send one event object per line"
        );
        let r = reason(br#"{"message":"a","fields":{"x":1},"level":"loud"}"#);
        assert!(r.starts_with("field `level`: "), "{r}");
    }

    #[test]
    fn an_epoch_time_is_replaced_and_flagged_and_a_null_one_is_absent() {
        use crate::event::Flag;
        for line in [
            &br#"{"message":"a","ts":"1970-01-01T00:00:00Z"}"#[..],
            br#"{"message":"a","ts":0}"#,
        ] {
            let got = decode_batch(line, false, DecodeLimits::default(), Timestamp(5)).unwrap();
            assert_eq!(got.events[0].ts, Timestamp(5));
            assert_eq!(got.events[0].flags, [Flag::EpochTime]);
            let stored: Event = serde_json::from_slice(&got.sources[0]).unwrap();
            assert_eq!(stored.flags, [Flag::EpochTime], "the flag is stored");
        }
        let got = decode_batch(
            br#"{"message":"a","ts":null}"#,
            false,
            DecodeLimits::default(),
            Timestamp(5),
        )
        .unwrap();
        assert_eq!(got.events[0].ts, Timestamp(5));
        assert!(got.events[0].flags.is_empty(), "null is a time left out");
        let got = decode_batch(
            br#"{"message":"a","ts":1}"#,
            false,
            DecodeLimits::default(),
            Timestamp(5),
        )
        .unwrap();
        assert_eq!(got.events[0].ts, Timestamp(1), "one nanosecond is a time");
    }

    #[test]
    fn a_keyed_resend_of_lines_without_time_gets_the_same_ids() {
        let body = b"{\"message\":\"hi\"}\n{\"message\":\"hi\"}\n";
        let keyed = |received, key| {
            decode_batch_with(
                body,
                false,
                DecodeLimits::default(),
                Timestamp(received),
                DecodeOptions {
                    key,
                    partial: false,
                },
            )
            .unwrap()
            .events
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
        };
        let first = keyed(100, Some("k1"));
        assert_eq!(first, keyed(900, Some("k1")), "a resend is recognised");
        assert_ne!(first[0], first[1], "two lines are two events");
        assert_ne!(
            first,
            keyed(100, Some("k2")),
            "another key is another batch"
        );
        assert_ne!(
            keyed(100, None),
            keyed(900, None),
            "without a key, arrival time tells sends apart"
        );
        let header = b"{\"shiplog_batch\":1,\"batch_id\":\"b7\"}\n{\"message\":\"hi\"}\n";
        let ids = |received| {
            decode_batch(header, false, DecodeLimits::default(), Timestamp(received))
                .unwrap()
                .events[0]
                .id
        };
        assert_eq!(ids(1), ids(2), "the header's batch id is a key too");
    }

    #[test]
    fn partial_keeps_good_lines_and_lists_bad_ones() {
        let body = b"{\"message\":\"a\"}\n{oops}\n{\"message\":\"b\"}\n{\"message\":7}\n";
        let got = decode_batch_with(
            body,
            false,
            DecodeLimits::default(),
            Timestamp(3),
            DecodeOptions {
                key: None,
                partial: true,
            },
        )
        .unwrap();
        let kept: Vec<&str> = got.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(kept, ["a", "b"]);
        assert_eq!(got.sources.len(), 2);
        let lines: Vec<usize> = got.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4]);
        assert!(got.rejected[1].reason.starts_with("field `message`"));
        assert_eq!(got.events[1].seq, 1, "positions count kept events");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap() {
        let zeros = vec![b' '; 50 * 1024 * 1024];
        let bomb = zstd::bulk::compress(&zeros, 19).unwrap();
        assert!(bomb.len() < 64 * 1024);
        let limits = DecodeLimits {
            max_decompressed_bytes: 1024 * 1024,
            ..DecodeLimits::default()
        };
        let e = decode_batch(&bomb, true, limits, Timestamp(0)).unwrap_err();
        assert!(
            matches!(e, CodecError::TooLarge { limit: 1_048_576 }),
            "{e}"
        );
    }

    #[test]
    fn bodies_in_several_frames_or_without_a_size_decode_like_one_frame() {
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("{{\"message\":\"line {i}\"}}\n").into_bytes())
            .collect();
        let (a, b) = text.split_at(text.len() / 2);
        // Two frames back to back.
        let mut two = zstd::bulk::compress(a, 3).unwrap();
        two.extend(zstd::bulk::compress(b, 3).unwrap());
        // One frame written as a stream: no content size in its header.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &text).unwrap();
        let streamed = enc.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).unwrap(),
            None
        );
        for body in [zstd::bulk::compress(&text, 3).unwrap(), two, streamed] {
            assert_eq!(decompress_capped(&body, 1 << 20).unwrap(), text);
            let batch = decode_batch(&body, true, DecodeLimits::default(), Timestamp(1)).unwrap();
            assert_eq!(batch.events.len(), 2000);
            assert_eq!(batch.events[1999].message, "line 1999");
        }
        // A frame that says it is bigger than the limit is refused, not reserved.
        let body = zstd::bulk::compress(&text, 3).unwrap();
        let e = decompress_capped(&body, text.len() - 1).unwrap_err();
        assert!(matches!(e, CodecError::TooLarge { .. }), "{e}");
    }

    proptest! {
        #[test]
        fn round_trips_any_message(msgs in proptest::collection::vec("\\PC{0,64}", 0..20)) {
            let events: Vec<Event> = msgs.iter().enumerate().map(|(i, m)| {
                let mut e = Event::log(Timestamp(i as i64 + 1), m.clone());
                e.id = EventId(i as u128 + 1);
                e.received = Some(Timestamp(3));
                e
            }).collect();
            let body = encode_batch(&events, None, 1);
            let got = decode_batch(&body, true, DecodeLimits::default(), Timestamp(3)).unwrap();
            prop_assert_eq!(got.events, events);
        }

        #[test]
        fn hostile_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), compressed in any::<bool>()) {
            let _ = decode_batch(&body, compressed, DecodeLimits::default(), Timestamp(0));
        }
    }
}
