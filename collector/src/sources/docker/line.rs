//! Turning Docker log frames into lines: carry-over of partial lines, the timestamp prefix,
//! invalid UTF-8 and over-long lines.
//!
//! With `timestamps=true` Docker starts every log entry with an RFC 3339 time and a space.
//! A multiplexed (non-TTY) frame is one entry; a TTY stream arrives in chunks that may hold
//! several lines or part of one. An entry without a newline is a partial line (Docker splits
//! lines longer than 16 KiB, and TTY programs write prompts): its continuation arrives in
//! the next frame, again behind a timestamp, which is dropped so the line reads as written.

use shiplog_core::{Flag, Timestamp};

/// Longest message kept from one line by default, in bytes (`max_line_bytes`); the rest is
/// cut and the event flagged.
pub const MAX_LINE_BYTES: usize = 256 * 1024;
/// Smallest line cap accepted: a cap below a terminal line would cut ordinary lines.
pub const MIN_LINE_CAP: usize = 1024;
/// Largest line cap accepted. An event's JSON must stay under the indexer's 4 MiB line limit
/// (`DecodeLimits::max_line_bytes`) even when every byte of the message needs a six-byte
/// escape (control characters), or the whole batch would be refused.
pub const MAX_LINE_CAP: usize = 512 * 1024;
/// Longest timestamp prefix looked at (`2026-11-22T03:09:44.123456789+02:00` is 35 bytes).
const MAX_PREFIX_BYTES: usize = 40;

/// One complete line from a container stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Docker's time for the line, when the prefix could be read.
    pub ts: Option<Timestamp>,
    /// The text, without the prefix and the line ending.
    pub message: String,
    /// What happened to it on the way (invalid UTF-8 replaced, cut).
    pub flags: Vec<Flag>,
}

/// Reassembles lines from the frames of one stream (stdout or stderr) of one container.
#[derive(Debug)]
pub struct LineAssembler {
    carry: Vec<u8>,
    overflowed: bool,
    max_line: usize,
}

impl Default for LineAssembler {
    fn default() -> Self {
        LineAssembler::new(MAX_LINE_BYTES)
    }
}

impl LineAssembler {
    /// An assembler that keeps at most `max_line` bytes of each message.
    pub fn new(max_line: usize) -> Self {
        LineAssembler {
            carry: Vec::new(),
            overflowed: false,
            max_line,
        }
    }

    /// Drops a partial line held, keeping the cap: the stream is read again from elsewhere.
    pub fn reset(&mut self) {
        // Its room too: a cut line's carry can be as large as the cap.
        self.carry = Vec::new();
        self.overflowed = false;
    }

    /// Feeds one frame; complete lines are appended to `out`, a trailing partial line is kept.
    pub fn push(&mut self, frame: &[u8], out: &mut Vec<Line>) {
        let mut rest = frame;
        if self.in_line() {
            // The continuation of a partial entry carries its own time stamp: drop it.
            if let (Some(_), body) = split_timestamp(rest) {
                rest = body;
            }
        }
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            if self.in_line() {
                self.append(&rest[..pos]);
                out.push(self.take_line());
            } else {
                // A whole line in this frame (the usual case): straight from the frame,
                // without a copy through the carry-over buffer.
                out.push(make_line(&rest[..pos], false, self.max_line));
            }
            rest = &rest[pos + 1..];
        }
        self.append(rest);
    }

    /// Emits the partial line held, if any: the stream ended without a final newline.
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if self.in_line() {
            out.push(self.take_line());
        }
    }

    fn in_line(&self) -> bool {
        !self.carry.is_empty() || self.overflowed
    }

    fn append(&mut self, bytes: &[u8]) {
        // Room for the message cap plus the prefix and a possible `\r`.
        let room = (self.max_line + MAX_PREFIX_BYTES + 1).saturating_sub(self.carry.len());
        if bytes.len() > room {
            self.carry.extend_from_slice(&bytes[..room]);
            self.overflowed = true;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }

    fn take_line(&mut self) -> Line {
        let line = make_line(&self.carry, self.overflowed, self.max_line);
        self.overflowed = false;
        if self.carry.capacity() > 64 * 1024 {
            // Do not keep a quarter MiB per stream after one long line.
            self.carry = Vec::new();
        } else {
            self.carry.clear();
        }
        line
    }
}

/// Builds a [`Line`] from the raw bytes of one line (prefix included, newline excluded).
fn make_line(raw: &[u8], overflowed: bool, max_line: usize) -> Line {
    // Every trailing `\r`, not one: under a TTY a program's own CRLF arrives as `\r\r\n`
    // (the terminal turns its `\n` into `\r\n`).
    let end = raw.len() - raw.iter().rev().take_while(|&&b| b == b'\r').count();
    let raw = &raw[..end];
    let (ts, body) = split_timestamp(raw);
    let mut flags = Vec::new();
    let mut truncated = overflowed;
    let body = if body.len() > max_line {
        truncated = true;
        &body[..byte_char_boundary(body, max_line)]
    } else {
        body
    };
    let mut message = match std::str::from_utf8(body) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            flags.push(Flag::InvalidUtf8);
            String::from_utf8_lossy(body).into_owned()
        }
    };
    if message.len() > max_line {
        // Replacement characters are wider than the bytes they replace.
        truncated = true;
        message.truncate(message.floor_char_boundary(max_line));
    }
    if truncated {
        flags.push(Flag::Truncated);
    }
    Line { ts, message, flags }
}

/// The largest cut at or below `at` that does not split a UTF-8 sequence (looking back at
/// most three continuation bytes, so invalid input cannot make it walk far).
fn byte_char_boundary(bytes: &[u8], at: usize) -> usize {
    let mut end = at.min(bytes.len());
    let floor = end.saturating_sub(3);
    while end > floor && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    end
}

/// Splits Docker's `<RFC 3339 time> ` prefix off a line. A line without a readable prefix
/// comes back whole with `None`, so the caller can fall back to the time it received it.
pub fn split_timestamp(line: &[u8]) -> (Option<Timestamp>, &[u8]) {
    let window = &line[..line.len().min(MAX_PREFIX_BYTES + 1)];
    let Some(space) = window.iter().position(|&b| b == b' ') else {
        return (None, line);
    };
    let Ok(text) = std::str::from_utf8(&line[..space]) else {
        return (None, line);
    };
    // A date alone parses too, but Docker always sends a full time: require the `T`.
    if text.len() < 20 {
        return (None, line);
    }
    match Timestamp::parse_rfc3339(text) {
        Ok(ts) => (Some(ts), &line[space + 1..]),
        Err(_) => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: &str = "2026-11-22T03:09:44.123456789Z";

    fn ts() -> Timestamp {
        Timestamp::parse_rfc3339(TS).unwrap()
    }

    fn lines(assembler: &mut LineAssembler, frames: &[&[u8]]) -> Vec<Line> {
        let mut out = Vec::new();
        for frame in frames {
            assembler.push(frame, &mut out);
        }
        out
    }

    fn plain(ts: Option<Timestamp>, message: &str) -> Line {
        Line {
            ts,
            message: message.into(),
            flags: Vec::new(),
        }
    }

    #[test]
    fn one_frame_with_several_lines() {
        let frame = format!("{TS} one\n{TS} two\n");
        let got = lines(&mut LineAssembler::default(), &[frame.as_bytes()]);
        assert_eq!(got, [plain(Some(ts()), "one"), plain(Some(ts()), "two")]);
    }

    #[test]
    fn partial_frames_join_into_one_line() {
        // A TTY chunk boundary inside the time stamp, then inside the text.
        let mut a = LineAssembler::default();
        let got = lines(
            &mut a,
            &[b"2026-11-22T03:09", b":44.123456789Z hel", b"lo\n"],
        );
        assert_eq!(got, [plain(Some(ts()), "hello")]);
    }

    #[test]
    fn docker_partial_entries_drop_the_continuations_time_stamp() {
        let mut a = LineAssembler::default();
        let first = format!("{TS} first half ");
        let second = "2026-11-22T03:09:45.000000001Z second half\n";
        let got = lines(&mut a, &[first.as_bytes(), second.as_bytes()]);
        assert_eq!(got, [plain(Some(ts()), "first half second half")]);
    }

    #[test]
    fn crlf_is_stripped() {
        let frame = format!("{TS} tty line\r\n");
        let got = lines(&mut LineAssembler::default(), &[frame.as_bytes()]);
        assert_eq!(got, [plain(Some(ts()), "tty line")]);
    }

    #[test]
    fn a_programs_crlf_under_a_tty_is_stripped_whole() {
        let frame = format!("{TS} tty line\r\r\n{TS} \r\n");
        let got = lines(&mut LineAssembler::default(), &[frame.as_bytes()]);
        assert_eq!(got, [plain(Some(ts()), "tty line"), plain(Some(ts()), "")]);
    }

    #[test]
    fn a_last_line_without_newline_is_emitted_at_the_end() {
        let mut a = LineAssembler::default();
        let frame = format!("{TS} done\n{TS} no newline");
        let mut got = lines(&mut a, &[frame.as_bytes()]);
        assert_eq!(got.len(), 1);
        a.finish(&mut got);
        assert_eq!(got[1], plain(Some(ts()), "no newline"));
        let mut more = Vec::new();
        a.finish(&mut more);
        assert!(more.is_empty(), "finish emits a partial line once");
    }

    #[test]
    fn invalid_utf8_is_replaced_and_flagged() {
        let mut frame = format!("{TS} bad ").into_bytes();
        frame.extend_from_slice(&[0xff, 0xfe, b'!', b'\n']);
        let got = lines(&mut LineAssembler::default(), &[&frame]);
        assert_eq!(got[0].message, "bad \u{fffd}\u{fffd}!");
        assert_eq!(got[0].flags, [Flag::InvalidUtf8]);
    }

    #[test]
    fn over_long_lines_are_cut_at_a_char_boundary_and_flagged() {
        let mut a = LineAssembler::new(11);
        // 'é' is two bytes: a cut at byte 11 would split the sixth one.
        let frame = format!("{TS} ééééééé tail\n{TS} short\n");
        let got = lines(&mut a, &[frame.as_bytes()]);
        assert_eq!(got[0].message, "ééééé");
        assert_eq!(got[0].flags, [Flag::Truncated]);
        assert_eq!(got[1], plain(Some(ts()), "short"));
    }

    #[test]
    fn a_line_far_over_the_cap_across_frames_keeps_memory_bounded() {
        let mut a = LineAssembler::new(16);
        let mut out = Vec::new();
        a.push(format!("{TS} ").as_bytes(), &mut out);
        for _ in 0..1000 {
            a.push(&[b'x'; 100], &mut out);
            assert!(a.carry.len() <= 16 + MAX_PREFIX_BYTES + 1);
        }
        a.push(b"\n", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].message, "x".repeat(16));
        assert_eq!(out[0].flags, [Flag::Truncated]);
    }

    #[test]
    fn reads_the_time_stamp_prefix() {
        let (t, rest) = split_timestamp(b"2026-11-22T03:09:44.5+01:00 msg");
        assert_eq!(
            t,
            Some(Timestamp::parse_rfc3339("2026-11-22T02:09:44.5Z").unwrap())
        );
        assert_eq!(rest, b"msg");
    }

    #[test]
    fn malformed_prefixes_fall_back_without_panicking() {
        let cases: [&[u8]; 9] = [
            b"",
            b" ",
            b"no time stamp here",
            b"2026-11-22 text",
            b"2026-13-22T03:09:44Z month out of range",
            b"2026-11-22T03:09:44 no zone",
            b"2026-11-22T03:09:44.Z empty fraction",
            b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0\xef\xee\xed\xec x",
            b"2026-11-22T03:09:44.123456789Z",
        ];
        for case in cases {
            let (t, rest) = split_timestamp(case);
            assert_eq!(t, None, "{:?}", String::from_utf8_lossy(case));
            assert_eq!(rest, case);
        }
        let got = lines(&mut LineAssembler::default(), &[b"plain text line\n"]);
        assert_eq!(got, [plain(None, "plain text line")]);
    }

    #[test]
    fn byte_boundaries_never_split_a_char_or_panic() {
        let text = "aé€😀".as_bytes();
        for at in 0..=text.len() + 2 {
            let end = byte_char_boundary(text, at);
            assert!(std::str::from_utf8(&text[..end]).is_ok(), "{at}");
        }
    }
}
