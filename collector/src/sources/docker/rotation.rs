//! Docker's log rotation, and the files a followed log skips when it falls behind one.
//!
//! # Why a followed log loses whole files
//!
//! The engine's file-backed log drivers (`json-file` with `max-size`, `local`) write the
//! current file until it reaches `max-size`, then rename it to `<log>.1` (older ones move
//! up, the one past `max-file` is deleted, and with `compress=true` each rotated file is
//! gzipped and its plain copy removed) and start a new one. A follow request reads the
//! current file through an open handle; when it reaches that file's end after a rotation,
//! the engine (20.10 and later alike) opens the log by its name again: the file that is
//! current *now*. If the reader was more than one rotation behind, every file rotated in
//! between is never sent, and the stream goes on as if nothing happened (seen on this
//! engine: a reader held to 300 kB/s on a container writing 50,000 lines/s jumped from line
//! 19,694 to line 195,679). Reading slower than a container writes, for as long as one file
//! takes to fill, is enough: a busy indexer, a full pipeline, a CPU shared with the engine.
//!
//! A request that does not follow reads every file the engine still holds, rotated and
//! compressed ones included, from the oldest on, and holds them open until it is done; so
//! what a followed log skipped can be read back, as long as the engine still has the file
//! when it is asked.
//!
//! # Noticing a skip
//!
//! [`SkipWatch`] looks at Docker's time of every entry of a followed log. A skip shows as a
//! jump between two entries, A and B, that a file's worth of writing could fill:
//!
//! - the log rotates at all (`max-size` is set, or the driver rotates by default);
//! - B was written before A was received (the reader was behind: a reader that keeps up
//!   receives A before B exists), give or take [`BEHIND_SLACK_NANOS`];
//! - at the rate the container wrote just before A, the jump holds a quarter of a file or
//!   more, or the jump is long enough for even a slow writer ([`SLOW_WRITER_BYTES_PER_SEC`])
//!   to fill a file.
//!
//! A writer that pauses while the reader is behind passes these too: the check then reads
//! back nothing, at the price of one request. A reader that keeps up never pays it.
//!
//! The follow task then asks for exactly the entries between A and B and ships them before
//! B. If A itself does not come back, the file holding it is gone too: the lines between A
//! and the first entry that came back were deleted before they could be read, and a gap
//! event says so (see [`LostLines`]). The same check runs when a log is resumed from a
//! checkpoint: if the last line shipped is no longer stored, what came after it is gone.

use bollard::models::ContainerInspectResponse;
use shiplog_core::Timestamp;

/// How much later than A's arrival B may have been written and still count as "the reader
/// was behind": the engine sends A before it reads on to B, and A's arrival is stamped per
/// read, not per entry.
pub const BEHIND_SLACK_NANOS: i64 = 100_000_000;
/// A writer at this rate is assumed possible for any container: a jump long enough for it to
/// fill a file is checked whatever the rate seen before it.
pub const SLOW_WRITER_BYTES_PER_SEC: u64 = 1024 * 1024;
/// Bytes an entry takes in the engine's file beyond what the stream carries (the stream
/// carries the time stamp and the text; the file adds the JSON keys and the stream name).
const FILE_OVERHEAD_BYTES: u64 = 40;
/// The rate is measured over this much of Docker's time.
const RATE_WINDOW_NANOS: i64 = 1_000_000_000;
/// A window filling now says what the rate is once it spans this much and holds
/// [`RATE_MIN_ENTRIES`] (a burst of lines a microsecond apart is no rate to multiply a
/// pause by; a skip in a log's first tenth of a second must still be seen).
const RATE_MIN_SPAN_NANOS: i64 = 10_000_000;
/// See [`RATE_MIN_SPAN_NANOS`].
const RATE_MIN_ENTRIES: u64 = 32;
/// The `local` driver's default file size, used when it is not configured.
const LOCAL_DEFAULT_MAX_SIZE: u64 = 20 * 1024 * 1024;

/// How a container's log files rotate, from `docker inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated once it holds this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included.
    pub max_file: u32,
    /// Rotated files are gzipped.
    pub compress: bool,
}

impl Rotation {
    /// The rotation of a container's log driver; `None` when its files never rotate
    /// (`json-file` without `max-size`, the engine's default) or it keeps no files at all.
    pub fn from_inspect(inspect: &ContainerInspectResponse) -> Option<Rotation> {
        let log_config = inspect.host_config.as_ref()?.log_config.as_ref()?;
        let driver = log_config.typ.as_deref().unwrap_or("json-file");
        let option = |key: &str| log_config.config.as_ref().and_then(|c| c.get(key));
        let max_size = match (driver, option("max-size")) {
            (_, Some(size)) => parse_size(size)?,
            ("local", None) => LOCAL_DEFAULT_MAX_SIZE,
            _ => return None,
        };
        if !matches!(driver, "json-file" | "local") || max_size == 0 {
            return None;
        }
        let default_files = if driver == "local" { 5 } else { 1 };
        let max_file = option("max-file")
            .and_then(|n| n.parse().ok())
            .unwrap_or(default_files);
        let compress = option("compress").map_or(driver == "local", |c| c == "true");
        Some(Rotation {
            max_size,
            max_file,
            compress,
        })
    }
}

/// A size as the engine reads `max-size`: a number with an optional binary unit
/// (`1024`, `100k`, `10m`, `1.5g`, `2MiB`), case-insensitive.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// An entry seen, and when the read that brought it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    ts: Timestamp,
    received: Timestamp,
}

/// Entries between two times that the followed log may have skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// Docker's time of the last entry before the jump (A).
    pub after: Timestamp,
    /// Docker's time of the first entry after it (B).
    pub before: Timestamp,
    /// `after` is when the container started, not a line: a log read from its beginning
    /// whose oldest files may be gone.
    pub from_start: bool,
}

/// Lines deleted by rotation before they could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostLines {
    /// Docker's time of the last line read before them.
    pub after: Timestamp,
    /// Docker's time of the first line still stored after them.
    pub before: Timestamp,
    /// How many, estimated from the rate the container wrote at around them (0: unknown).
    pub estimate: u64,
}

/// Watches the times of a followed log's entries for files it may have skipped (see the
/// module doc).
#[derive(Debug)]
pub struct SkipWatch {
    rotation_bytes: u64,
    last: Option<Seen>,
    /// `last` is the last line shipped by an earlier read, not an entry read here: any
    /// later first entry means that line is gone.
    resumed: bool,
    /// `last` is when the container started (see [`Skip::from_start`]).
    from_start: bool,
    /// Only jumps at [`mark`](Self::mark)ed places are checked (a reader that does not skip
    /// by itself, but may have missed a file at a known place).
    marked_only: bool,
    marked: bool,
    /// The rate window: where it starts, and the entries and bytes since.
    window_start: Option<Timestamp>,
    window_entries: u64,
    window_bytes: u64,
    /// Bytes and entries per second of the last whole window.
    bytes_per_sec: f64,
    entries_per_sec: f64,
    /// Lines lost before any rate was known (a resumed log's first read): reported once
    /// the lines after them show the rate.
    unestimated: Option<LostLines>,
    /// `unestimated` runs from the container's start, not from a line: it counts only if
    /// the rate after it shows that a quarter of a file or more fits in it (a container
    /// that was quiet at first loses nothing).
    doubtful: bool,
}

impl SkipWatch {
    /// A watch for a log rotating as `rotation` says.
    pub fn new(rotation: Rotation) -> Self {
        SkipWatch {
            rotation_bytes: rotation.max_size,
            last: None,
            resumed: false,
            from_start: false,
            marked_only: false,
            marked: false,
            window_start: None,
            window_entries: 0,
            window_bytes: 0,
            bytes_per_sec: 0.0,
            entries_per_sec: 0.0,
            unestimated: None,
            doubtful: false,
        }
    }

    /// Checks only the jump before the entry after each [`mark`](Self::mark) (and a resumed
    /// log's first entry): for a reader of the engine's files, which skips nothing itself
    /// (a writer's pauses would only cost checks) but can tell where a file may be missing.
    pub fn marked_only(mut self) -> Self {
        self.marked_only = true;
        self
    }

    /// The next entry follows a place where a file may be missing: check the jump to it.
    pub fn mark(&mut self) {
        self.marked = true;
    }

    /// Starts from the last line shipped by an earlier read: if the first entry read is
    /// later, that line is no longer stored, which is checked like a skip.
    pub fn resume_after(&mut self, shipped: Timestamp, now: Timestamp) {
        self.last = Some(Seen {
            ts: shipped,
            received: now,
        });
        self.resumed = true;
    }

    /// Starts a log read from its beginning whose oldest files may have been deleted (all
    /// of `max-file` are there): if the first entry is later than the container's start
    /// `started`, it is checked like a skip.
    pub fn resume_after_start(&mut self, started: Timestamp, now: Timestamp) {
        self.resume_after(started, now);
        self.from_start = true;
    }

    /// Looks at the next entry (Docker's time `ts`, `len` bytes in the stream, in a read
    /// received at `received`) before it is used: `Some` when the log may have skipped
    /// entries before it. The entry is taken as seen unless a skip is returned; after the
    /// skip is dealt with, [`filled`](Self::filled) lets it through.
    pub fn check(&mut self, ts: Timestamp, len: usize, received: Timestamp) -> Option<Skip> {
        if let Some(last) = self.last
            && self.may_have_skipped(last, ts)
        {
            return Some(Skip {
                after: last.ts,
                before: ts,
                from_start: self.from_start,
            });
        }
        self.seen(ts, len as u64 + FILE_OVERHEAD_BYTES, received);
        None
    }

    /// The skip before the entry last checked was read back: that entry is let through.
    pub fn filled(&mut self) {
        // The window would span the jump without the lines read back into it: start
        // another, keeping the rate so far meanwhile.
        (self.bytes_per_sec, self.entries_per_sec) = self.rate();
        self.last = None;
        self.resumed = false;
        self.from_start = false;
        self.marked = false;
        self.window_start = None;
        self.window_entries = 0;
        self.window_bytes = 0;
    }

    /// Lines found lost (with no estimate yet): returned with their estimate when the rate
    /// is known, else kept until it is (see [`take_estimated_gap`](Self::take_estimated_gap)).
    pub fn lost(&mut self, lost: LostLines) -> Option<LostLines> {
        if self.unestimated.is_none() {
            self.doubtful = false;
        }
        let lost = match self.unestimated.take() {
            // Two gaps before any rate: one report spanning both.
            Some(earlier) => LostLines {
                before: lost.before,
                ..earlier
            },
            None => lost,
        };
        let estimate = self.estimate_lines(lost.after, lost.before);
        if estimate > 0 {
            return Some(LostLines { estimate, ..lost });
        }
        self.unestimated = Some(lost);
        None
    }

    /// Like [`lost`](Self::lost), for lines missing between the container's start and the
    /// first entry stored: kept until the rate after them says whether a file's worth
    /// could fit there, and dropped if not.
    pub fn lost_from_start(&mut self, lost: LostLines) {
        if self.unestimated.is_none() {
            self.unestimated = Some(lost);
            self.doubtful = true;
        }
    }

    /// Lost lines kept for their estimate, once the rate after them gives one.
    pub fn take_estimated_gap(&mut self) -> Option<LostLines> {
        let lost = self.unestimated?;
        let estimate = self.estimate_lines(lost.after, lost.before);
        if estimate == 0 {
            return None;
        }
        self.unestimated = None;
        if self.doubtful {
            self.doubtful = false;
            let span = (lost.before.0 - lost.after.0).max(0) as f64 / 1e9;
            if self.rate().0 * span < self.rotation_bytes as f64 / 4.0 {
                return None;
            }
        }
        Some(LostLines { estimate, ..lost })
    }

    /// Lost lines kept for their estimate, with or without one (the log ended).
    pub fn take_gap(&mut self) -> Option<LostLines> {
        let estimated = self.take_estimated_gap();
        let unestimated = self.unestimated.take();
        // A start's gap with no rate to tell it by is not reported.
        estimated.or(unestimated.filter(|_| !std::mem::take(&mut self.doubtful)))
    }

    /// Estimates how many lines were written between `after` and `before`.
    pub fn estimate_lines(&self, after: Timestamp, before: Timestamp) -> u64 {
        let span = (before.0 - after.0).max(0) as f64 / 1e9;
        (self.rate().1 * span).round() as u64
    }

    fn may_have_skipped(&self, last: Seen, ts: Timestamp) -> bool {
        let jump = ts.0.saturating_sub(last.ts.0);
        if jump <= 0 || ts.0 > last.received.0.saturating_add(BEHIND_SLACK_NANOS) {
            return false;
        }
        if self.resumed {
            return true;
        }
        if self.marked_only && !self.marked {
            return false;
        }
        let seconds = jump as f64 / 1e9;
        let at_rate = self.rate().0 * seconds;
        let slow_writer = SLOW_WRITER_BYTES_PER_SEC as f64 * seconds;
        at_rate >= self.rotation_bytes as f64 / 4.0 || slow_writer >= self.rotation_bytes as f64
    }

    fn seen(&mut self, ts: Timestamp, bytes: u64, received: Timestamp) {
        self.last = Some(Seen { ts, received });
        self.resumed = false;
        self.from_start = false;
        self.marked = false;
        let start = *self.window_start.get_or_insert(ts);
        self.window_entries += 1;
        self.window_bytes += bytes;
        let span = ts.0 - start.0;
        if !(0..RATE_WINDOW_NANOS).contains(&span) {
            if span > 0 {
                let seconds = span as f64 / 1e9;
                self.bytes_per_sec = self.window_bytes as f64 / seconds;
                self.entries_per_sec = self.window_entries as f64 / seconds;
            }
            self.window_start = Some(ts);
            self.window_entries = 0;
            self.window_bytes = 0;
        }
    }

    /// Bytes and entries per second: the last whole window's, or the one filling now if it
    /// is faster (a burst shows before its window closes).
    fn rate(&self) -> (f64, f64) {
        let (mut bytes, mut entries) = (self.bytes_per_sec, self.entries_per_sec);
        if let (Some(start), Some(last)) = (self.window_start, self.last)
            && last.ts.0 - start.0 >= RATE_MIN_SPAN_NANOS
            && self.window_entries >= RATE_MIN_ENTRIES
        {
            let seconds = (last.ts.0 - start.0) as f64 / 1e9;
            bytes = bytes.max(self.window_bytes as f64 / seconds);
            entries = entries.max(self.window_entries as f64 / seconds);
        }
        (bytes, entries)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{HostConfig, HostConfigLogConfig};

    use super::*;

    fn inspect(driver: &str, options: &[(&str, &str)]) -> ContainerInspectResponse {
        ContainerInspectResponse {
            host_config: Some(HostConfig {
                log_config: Some(HostConfigLogConfig {
                    typ: Some(driver.to_string()),
                    config: Some(
                        options
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect::<HashMap<_, _>>(),
                    ),
                }),
                ..HostConfig::default()
            }),
            ..ContainerInspectResponse::default()
        }
    }

    #[test]
    fn sizes_read_as_the_engine_reads_them() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("100k"), Some(100 * 1024));
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("1mb"), Some(1 << 20));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("5x"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn rotation_comes_from_the_log_driver_options() {
        let json = inspect(
            "json-file",
            &[("max-size", "1m"), ("max-file", "2"), ("compress", "true")],
        );
        assert_eq!(
            Rotation::from_inspect(&json),
            Some(Rotation {
                max_size: 1 << 20,
                max_file: 2,
                compress: true
            })
        );
        // The engine's default json-file log never rotates.
        assert_eq!(Rotation::from_inspect(&inspect("json-file", &[])), None);
        let local = Rotation::from_inspect(&inspect("local", &[])).unwrap();
        assert_eq!((local.max_size, local.max_file), (20 << 20, 5));
        assert_eq!(Rotation::from_inspect(&inspect("journald", &[])), None);
        assert_eq!(
            Rotation::from_inspect(&inspect("json-file", &[("max-size", "junk")])),
            None
        );
        assert_eq!(
            Rotation::from_inspect(&ContainerInspectResponse::default()),
            None
        );
    }

    const MIB: u64 = 1 << 20;
    const MS: i64 = 1_000_000;

    fn watch() -> SkipWatch {
        SkipWatch::new(Rotation {
            max_size: MIB,
            max_file: 2,
            compress: false,
        })
    }

    /// Feeds `n` entries of `len` bytes written `every` ns apart from `start`, all
    /// received at `received`; returns the first skip reported.
    fn feed(
        watch: &mut SkipWatch,
        start: i64,
        every: i64,
        n: i64,
        len: usize,
        received: i64,
    ) -> Option<Skip> {
        (0..n).find_map(|i| watch.check(Timestamp(start + i * every), len, Timestamp(received)))
    }

    #[test]
    fn a_jump_a_file_could_fill_is_a_skip_when_the_reader_was_behind() {
        let mut watch = watch();
        // 10,000 lines/s of 100 bytes (1.4 MB/s) for a second, read 5 s late.
        let read_at = 6_000 * MS;
        assert_eq!(feed(&mut watch, 0, 100_000, 10_000, 100, read_at), None);
        let last = Timestamp(9_999 * 100_000);
        // The next entry 0.7 s later: about a file's worth at that rate.
        let next = Timestamp(last.0 + 700 * MS);
        assert_eq!(
            watch.check(next, 100, Timestamp(read_at)),
            Some(Skip {
                after: last,
                before: next,
                from_start: false,
            })
        );
        // Not taken as seen until the skip is dealt with: asked again, the same answer.
        assert!(watch.check(next, 100, Timestamp(read_at)).is_some());
        watch.filled();
        assert_eq!(watch.check(next, 100, Timestamp(read_at)), None);
        let estimate = watch.estimate_lines(last, next);
        assert!((6_000..=8_000).contains(&estimate), "{estimate}");
    }

    #[test]
    fn a_reader_that_keeps_up_never_checks() {
        let mut watch = watch();
        // Each entry received 5 ms after it was written, then a pause of 3 s.
        for i in 0..1_000 {
            let ts = Timestamp(i * MS);
            assert_eq!(watch.check(ts, 100, ts.offset(5 * MS)), None);
        }
        let after_pause = Timestamp(999 * MS + 3_000 * MS);
        assert_eq!(
            watch.check(after_pause, 100, after_pause.offset(5 * MS)),
            None
        );
    }

    #[test]
    fn a_short_pause_of_a_slow_writer_read_late_is_no_skip() {
        let mut watch = watch();
        // Bursts of 20 lines every 100 ms (20 kB/s), all read 10 s late.
        let read_at = 20_000 * MS;
        for burst in 0..50 {
            let start = burst * 100 * MS;
            assert_eq!(feed(&mut watch, start, 10_000, 20, 100, read_at), None);
        }
    }

    #[test]
    fn a_long_jump_read_late_is_checked_whatever_the_rate() {
        let mut watch = watch();
        let read_at = 60_000 * MS;
        assert_eq!(feed(&mut watch, 0, 100 * MS, 10, 100, read_at), None);
        // A whole file at even 1 MiB/s fits in a jump of 1.1 s.
        let next = Timestamp(900 * MS + 1_100 * MS);
        assert!(watch.check(next, 100, Timestamp(read_at)).is_some());
    }

    #[test]
    fn a_reader_of_files_checks_only_marked_places() {
        let mut watch = watch().marked_only();
        let read_at = 6_000 * MS;
        assert_eq!(feed(&mut watch, 0, 100_000, 10_000, 100, read_at), None);
        // A writer's pause of 0.7 s: no check unless the reader marked the place.
        let last = Timestamp(9_999 * 100_000);
        let paused = Timestamp(last.0 + 700 * MS);
        assert_eq!(watch.check(paused, 100, Timestamp(read_at)), None);
        // A marked file boundary with no jump to speak of: nothing either.
        watch.mark();
        let next = paused.offset(100_000);
        assert_eq!(watch.check(next, 100, Timestamp(read_at)), None);
        // A marked one with a file's worth of time: checked, once.
        watch.mark();
        let after_gap = next.offset(700 * MS);
        assert!(watch.check(after_gap, 100, Timestamp(read_at)).is_some());
        watch.filled();
        assert_eq!(watch.check(after_gap, 100, Timestamp(read_at)), None);
        assert_eq!(
            watch.check(after_gap.offset(700 * MS), 100, Timestamp(read_at)),
            None
        );
    }

    #[test]
    fn lost_lines_are_estimated_from_the_rate_or_once_it_is_known() {
        let mut watch = watch();
        let lost = LostLines {
            after: Timestamp(0),
            before: Timestamp(2_000 * MS),
            estimate: 0,
        };
        // No rate yet (a resumed log's first read): kept.
        assert_eq!(watch.lost(lost), None);
        assert_eq!(watch.take_estimated_gap(), None);
        // 1,000 lines/s after the gap, for half a second.
        assert_eq!(
            feed(&mut watch, 2_000 * MS, MS, 500, 100, 10_000 * MS),
            None
        );
        let estimated = watch.take_estimated_gap().unwrap();
        assert_eq!(
            (estimated.after, estimated.before),
            (lost.after, lost.before)
        );
        assert!(
            (1_900..=2_100).contains(&estimated.estimate),
            "{estimated:?}"
        );
        assert_eq!(watch.take_gap(), None);
        // With the rate known, at once.
        let now = watch.lost(lost).unwrap();
        assert!(now.estimate > 0);
        // A log that ends before any rate: reported as unknown.
        let mut watch = self::watch();
        assert_eq!(watch.lost(lost), None);
        assert_eq!(watch.take_gap(), Some(lost));
    }

    #[test]
    fn a_gap_from_the_start_counts_only_if_a_file_could_fit_in_it() {
        let lost = LostLines {
            after: Timestamp(0),
            before: Timestamp(500 * MS),
            estimate: 0,
        };
        // 10,000 lines/s of 100 bytes after it: 700 kB in half a second.
        let mut watch = watch();
        watch.lost_from_start(lost);
        assert_eq!(
            feed(&mut watch, 500 * MS, 100_000, 2_000, 100, 10_000 * MS),
            None
        );
        let gap = watch.take_estimated_gap().unwrap();
        assert!((4_000..=6_000).contains(&gap.estimate), "{gap:?}");
        // 20 lines/s: a container that was quiet at first.
        let mut watch = self::watch();
        watch.lost_from_start(lost);
        assert_eq!(
            feed(&mut watch, 500 * MS, 50 * MS, 40, 100, 10_000 * MS),
            None
        );
        assert_eq!(watch.take_estimated_gap(), None);
        assert_eq!(watch.take_gap(), None);
        // No rate at all before the log ended: not reported.
        let mut watch = self::watch();
        watch.lost_from_start(lost);
        assert_eq!(watch.take_gap(), None);
    }

    #[test]
    fn a_resumed_log_whose_last_shipped_line_is_gone_is_checked() {
        let mut watch = watch();
        let shipped = Timestamp(1_000 * MS);
        watch.resume_after(shipped, Timestamp(10_000 * MS));
        // The first entry read is later than the last line shipped, and was written before
        // the read began.
        let first = Timestamp(4_000 * MS);
        assert_eq!(
            watch.check(first, 100, Timestamp(10_000 * MS)),
            Some(Skip {
                after: shipped,
                before: first,
                from_start: false,
            })
        );
        // Even a short jump: the line shipped is not stored any more.
        let mut watch = self::watch();
        watch.resume_after(shipped, Timestamp(10_000 * MS));
        assert!(
            watch
                .check(shipped.offset(MS), 100, Timestamp(10_000 * MS))
                .is_some()
        );
        // The line shipped came back first: nothing gone.
        let mut watch = self::watch();
        watch.resume_after(shipped, Timestamp(10_000 * MS));
        assert_eq!(watch.check(shipped, 100, Timestamp(10_000 * MS)), None);
    }
}
