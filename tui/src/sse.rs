//! A push parser for Server-Sent Events (`text/event-stream`), with a size cap.
//!
//! Bytes go in as they come off the socket, in chunks of any size; whole messages come out.
//! Lines end with LF, CRLF or a lone CR, as the SSE spec allows. Lines starting with `:` are
//! comments (keep-alives) and are skipped. A line, or the data of one message, longer than
//! the cap is refused with an error instead of being buffered forever: the caller drops the
//! connection and reconnects.

/// Largest line, and largest `data` of one message, accepted by default: 8 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// One complete server-sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    /// The `event:` type; `message` when the server gave none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Why the stream cannot be read any further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line or a message grew past the cap.
    #[error("server sent an event larger than {max} bytes; dropping the connection")]
    TooLong {
        /// The cap that was passed.
        max: usize,
    },
}

/// Incremental SSE decoder; feed it with [`SseDecoder::push`].
#[derive(Debug)]
pub struct SseDecoder {
    max: usize,
    line: Vec<u8>,
    /// The previous chunk ended in CR, so a LF starting the next one belongs to it.
    skip_lf: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE_BYTES)
    }
}

impl SseDecoder {
    /// A decoder refusing lines and messages longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        SseDecoder {
            max,
            line: Vec::new(),
            skip_lf: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
        }
    }

    /// Feeds bytes; complete messages are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseMessage>) -> Result<(), SseError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.extend_line(rest)?;
                return Ok(());
            };
            self.extend_line(&rest[..end])?;
            if rest[end] == b'\r' {
                self.skip_lf = true;
            }
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.line);
            self.on_line(&line, out)?;
            // Keep the allocation unless a huge line inflated it.
            self.line = line;
            self.line.clear();
            if self.line.capacity() > 64 * 1024 {
                self.line.shrink_to(64 * 1024);
            }
        }
        Ok(())
    }

    fn extend_line(&mut self, part: &[u8]) -> Result<(), SseError> {
        if self.line.len() + part.len() > self.max {
            self.line.clear();
            return Err(SseError::TooLong { max: self.max });
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    fn on_line(&mut self, line: &[u8], out: &mut Vec<SseMessage>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                let extra = usize::from(self.has_data) + value.len();
                if self.data.len() + extra > self.max {
                    self.reset();
                    return Err(SseError::TooLong { max: self.max });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // `id`, `retry` and unknown fields are ignored, as the spec says.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseMessage>) {
        if !self.has_data {
            // A blank line after only `event:` or nothing dispatches nothing.
            self.event.clear();
            return;
        }
        let event = if self.event.is_empty() {
            "message".to_string()
        } else {
            std::mem::take(&mut self.event)
        };
        out.push(SseMessage {
            event,
            data: std::mem::take(&mut self.data),
        });
        self.reset();
    }

    fn reset(&mut self) {
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<SseMessage> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out).unwrap();
        }
        out
    }

    fn msg(event: &str, data: &str) -> SseMessage {
        SseMessage {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn reads_typed_events_and_skips_comments() {
        let out = decode(&[
            b": keep-alive\n\nevent: log\ndata: {\"a\":1}\n\nevent: gap\ndata: {\"missed\": 3}\n\n",
        ]);
        assert_eq!(
            out,
            vec![msg("log", "{\"a\":1}"), msg("gap", "{\"missed\": 3}")]
        );
    }

    #[test]
    fn joins_multi_line_data_and_defaults_the_type() {
        let out = decode(&[b"data: one\ndata:two\ndata\n\n"]);
        assert_eq!(out, vec![msg("message", "one\ntwo\n")]);
    }

    #[test]
    fn accepts_crlf_and_lone_cr_even_split_across_chunks() {
        let out = decode(&[b"event: log\r", b"\ndata: a\r\n\r", b"\n", b"data: b\r\r"]);
        assert_eq!(out, vec![msg("log", "a"), msg("message", "b")]);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_result() {
        let text = b"event: log\r\ndata: x\r\n\r\n: c\nevent: gap\ndata: {}\n\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(decode(&chunks), decode(&[text]));
    }

    #[test]
    fn garbage_does_not_panic_and_dispatches_nothing_without_data() {
        let out = decode(&[
            b"\xff\xfe garbage line\nevent\n:\n\n\n\nretry: 10\nid: 7\nevent: log\n\n",
            b"\x00\x01\x02\n\n",
        ]);
        assert!(out.is_empty(), "{out:?}");
        // A later well-formed message still gets through.
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        d.push(b"\xc3\x28: x\nevent: log\ndata: ok\n\n", &mut out)
            .unwrap();
        assert_eq!(out, vec![msg("log", "ok")]);
    }

    #[test]
    fn refuses_an_oversized_line_instead_of_buffering_it() {
        let mut d = SseDecoder::new(16);
        let mut out = Vec::new();
        d.push(b"data: 0123456789", &mut out).unwrap();
        let err = d.push(b"abcdef", &mut out).unwrap_err();
        assert_eq!(err, SseError::TooLong { max: 16 });
        assert!(d.line.capacity() <= 64 * 1024);
    }

    #[test]
    fn refuses_oversized_multi_line_data() {
        let mut d = SseDecoder::new(16);
        let mut out = Vec::new();
        let err = d
            .push(b"data: 0123456789\ndata: 0123456789\n", &mut out)
            .unwrap_err();
        assert_eq!(err, SseError::TooLong { max: 16 });
        assert!(out.is_empty());
    }
}
