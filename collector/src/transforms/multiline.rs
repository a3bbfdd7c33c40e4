//! Multiline: joins continuation lines (stack traces, tracebacks, indented detail) to the
//! line they belong to, so one exception is one event.
//!
//! A [`Joiner`] runs per container stream, after line assembly and before events are built.
//! A line either starts a new event or continues the pending one, decided by
//! [`MultilineRules`]:
//!
//! - the known forms (default): a line starting with a space or tab (Java's `\tat ...`,
//!   Python's indented frames, wrapped detail), Java's `Caused by:`, `Suppressed:` and
//!   `... N more`, and inside a Python `Traceback (most recent call last):` block the
//!   final `XxxError: message` line, which also closes the block;
//! - a configured start pattern: a line matching it starts an event, any other continues.
//!
//! Latency: when a line starts a new event, the pending one is emitted at once; only the
//! very last line of a burst waits, up to the flush timeout (default 50 ms), for a
//! continuation that may still come. A program writes the lines of one trace within
//! microseconds of each other, so 50 ms keeps them together while live tail stays live;
//! a writer slow enough to pause longer inside one trace needs a longer timeout.
//!
//! A joined event never grows past the line cap: a continuation that would push it over
//! starts a new event instead, so no byte is cut (each line alone is already capped).

use std::time::{Duration, Instant};

use regex::Regex;
use shiplog_core::{Flag, Timestamp};

use crate::checkpoint::Position;

/// Default time a pending event waits for a continuation line.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_millis(50);
/// The first line of a Python traceback.
const PYTHON_TRACEBACK: &str = "Traceback (most recent call last):";

/// How lines are grouped.
#[derive(Debug, Clone)]
pub enum MultilineRules {
    /// Every line is its own event.
    Off,
    /// The known continuation forms (see the module docs).
    Known,
    /// A line matching the pattern starts an event; any other line continues it.
    StartPattern(Regex),
}

/// What a line does to the pending event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Start,
    Continue,
    /// Continues the pending event and completes it (a traceback's last line).
    ContinueAndClose,
}

impl MultilineRules {
    /// How `line` relates to a pending event whose first line is `first`.
    fn classify(&self, first: &str, line: &str) -> Class {
        match self {
            MultilineRules::Off => Class::Start,
            MultilineRules::StartPattern(start) if start.is_match(line) => Class::Start,
            MultilineRules::StartPattern(_) => Class::Continue,
            MultilineRules::Known => known_class(first, line),
        }
    }
}

fn known_class(first: &str, line: &str) -> Class {
    if line.starts_with([' ', '\t']) {
        return Class::Continue;
    }
    if line.starts_with("Caused by:") || line.starts_with("Suppressed:") || is_more_frames(line) {
        return Class::Continue;
    }
    if first.starts_with(PYTHON_TRACEBACK) && line != PYTHON_TRACEBACK && is_python_error(line) {
        return Class::ContinueAndClose;
    }
    Class::Start
}

/// Java's `... 12 more` (and logback's `... 12 common frames omitted`).
fn is_more_frames(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("... ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(&rest[digits..], " more" | " common frames omitted")
}

/// The line that ends a Python traceback: `ValueError: message`, `KeyError`,
/// `mypkg.errors.Failure: message`: a dotted identifier, then a colon or the end.
fn is_python_error(line: &str) -> bool {
    let name_end = line
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && (name_end == line.len() || line[name_end..].starts_with(':'))
}

/// One line entering the joiner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinLine {
    /// The line's time (Docker's, or when it was received).
    pub ts: Timestamp,
    /// Order among lines of the stream with the same `ts`.
    pub seq: u32,
    /// Whether `ts` is Docker's (only those positions can be resumed from).
    pub docker_ts: bool,
    /// The text.
    pub message: String,
    /// What happened to the line on its way in.
    pub flags: Vec<Flag>,
}

/// One event's worth of lines, joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Time of the first line.
    pub ts: Timestamp,
    /// Sequence of the first line.
    pub seq: u32,
    /// The lines, joined with `\n`.
    pub message: String,
    /// Every flag of every line, once each.
    pub flags: Vec<Flag>,
    /// Position of the last line with a Docker time: where a resume continues after.
    pub end: Option<Position>,
    /// How many lines were joined.
    pub lines: usize,
}

impl Joined {
    fn from_line(line: JoinLine) -> Self {
        Joined {
            ts: line.ts,
            seq: line.seq,
            end: line.docker_ts.then_some(Position {
                ts: line.ts,
                seq: line.seq,
            }),
            message: line.message,
            flags: line.flags,
            lines: 1,
        }
    }

    fn append(&mut self, line: JoinLine) {
        self.message.push('\n');
        self.message.push_str(&line.message);
        for flag in line.flags {
            if !self.flags.contains(&flag) {
                self.flags.push(flag);
            }
        }
        if line.docker_ts {
            self.end = Some(Position {
                ts: line.ts,
                seq: line.seq,
            });
        }
        self.lines += 1;
    }
}

/// Groups the lines of one stream into events.
#[derive(Debug)]
pub struct Joiner {
    rules: std::sync::Arc<MultilineRules>,
    timeout: Duration,
    max_bytes: usize,
    pending: Option<Joined>,
    /// When the pending event last grew.
    last_line_at: Option<Instant>,
}

impl Joiner {
    /// A joiner grouping by `rules`, emitting a pending event `timeout` after its last line,
    /// keeping every event at most `max_bytes` long.
    pub fn new(rules: std::sync::Arc<MultilineRules>, timeout: Duration, max_bytes: usize) -> Self {
        Joiner {
            rules,
            timeout,
            max_bytes,
            pending: None,
            last_line_at: None,
        }
    }

    /// Keeps every event from now on at most `max_bytes` long.
    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
    }

    /// Feeds one line received at `now`; complete events are appended to `out`.
    pub fn push(&mut self, line: JoinLine, now: Instant, out: &mut Vec<Joined>) {
        if matches!(*self.rules, MultilineRules::Off) {
            out.push(Joined::from_line(line));
            return;
        }
        let Some(pending) = self.pending.as_mut() else {
            self.pending = Some(Joined::from_line(line));
            self.last_line_at = Some(now);
            return;
        };
        let class = self
            .rules
            .classify(first_line(&pending.message), &line.message);
        let fits = pending.message.len() + 1 + line.message.len() <= self.max_bytes;
        match class {
            Class::Continue | Class::ContinueAndClose if fits => {
                pending.append(line);
                self.last_line_at = Some(now);
                if class == Class::ContinueAndClose {
                    self.finish(out);
                }
            }
            _ => {
                self.finish(out);
                self.pending = Some(Joined::from_line(line));
                self.last_line_at = Some(now);
            }
        }
    }

    /// When the pending event is due, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref()?;
        self.last_line_at.map(|t| t + self.timeout)
    }

    /// Emits the pending event if no continuation came within the timeout.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<Joined>) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.finish(out);
        }
    }

    /// Emits the pending event, if any (the stream ended).
    pub fn finish(&mut self, out: &mut Vec<Joined>) {
        if let Some(pending) = self.pending.take() {
            out.push(pending);
        }
        self.last_line_at = None;
    }
}

fn first_line(message: &str) -> &str {
    message.split('\n').next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    fn line(n: usize, message: &str) -> JoinLine {
        JoinLine {
            ts: Timestamp(n as i64),
            seq: 0,
            docker_ts: true,
            message: message.into(),
            flags: Vec::new(),
        }
    }

    fn join(rules: MultilineRules, max_bytes: usize, lines: &[&str]) -> Vec<Joined> {
        let mut joiner = Joiner::new(Arc::new(rules), DEFAULT_FLUSH_TIMEOUT, max_bytes);
        let now = Instant::now();
        let mut out = Vec::new();
        for (n, text) in lines.iter().enumerate() {
            joiner.push(line(n, text), now, &mut out);
        }
        joiner.finish(&mut out);
        out
    }

    fn messages(joined: &[Joined]) -> Vec<&str> {
        joined.iter().map(|j| j.message.as_str()).collect()
    }

    const JAVA: [&str; 7] = [
        "Exception in thread \"main\" java.lang.IllegalStateException: boom",
        "\tat com.example.App.run(App.java:10)",
        "\tat com.example.App.main(App.java:5)",
        "Caused by: java.io.IOException: disk",
        "\tat com.example.Io.read(Io.java:3)",
        "\t... 2 more",
        "... 3 more",
    ];

    const PYTHON: [&str; 5] = [
        "Traceback (most recent call last):",
        "  File \"app.py\", line 3, in <module>",
        "    main()",
        "ValueError: bad input",
        "after",
    ];

    #[test]
    fn joins_a_java_stack_trace() {
        let mut lines = vec!["before"];
        lines.extend(JAVA);
        lines.push("after");
        let out = join(MultilineRules::Known, usize::MAX, &lines);
        assert_eq!(messages(&out), ["before", &JAVA.join("\n"), "after"]);
        assert_eq!(out[1].ts, Timestamp(1), "time of the first line");
        assert_eq!(
            out[1].end.unwrap().ts,
            Timestamp(7),
            "ends at the last line"
        );
        assert_eq!(out[1].lines, 7);
    }

    #[test]
    fn joins_a_python_traceback_and_closes_it_at_the_error_line() {
        let out = join(MultilineRules::Known, usize::MAX, &PYTHON);
        assert_eq!(messages(&out), [&PYTHON[..4].join("\n"), "after"]);
        // The error line closes the block at once: no wait for the timeout.
        let mut joiner = Joiner::new(Arc::new(MultilineRules::Known), DEFAULT_FLUSH_TIMEOUT, 1000);
        let mut out = Vec::new();
        for (n, text) in PYTHON[..4].iter().enumerate() {
            joiner.push(line(n, text), Instant::now(), &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(joiner.deadline(), None);
    }

    #[test]
    fn a_start_pattern_decides_alone() {
        let rules = MultilineRules::StartPattern(Regex::new(r"^\d{4}-").unwrap());
        let out = join(
            rules,
            usize::MAX,
            &["2026-01-01 a", "b", "Caused by: x", "2026-01-02 c"],
        );
        assert_eq!(
            messages(&out),
            ["2026-01-01 a\nb\nCaused by: x", "2026-01-02 c"]
        );
        let off = join(MultilineRules::Off, usize::MAX, &["a", "\tb"]);
        assert_eq!(messages(&off), ["a", "\tb"]);
    }

    #[test]
    fn a_pending_event_waits_for_the_timeout_only() {
        let mut joiner = Joiner::new(
            Arc::new(MultilineRules::Known),
            Duration::from_millis(200),
            1000,
        );
        let t0 = Instant::now();
        let mut out = Vec::new();
        joiner.push(line(0, "one"), t0, &mut out);
        joiner.push(line(1, "two"), t0, &mut out);
        assert_eq!(
            messages(&out),
            ["one"],
            "a new start emits the previous at once"
        );
        assert_eq!(joiner.deadline(), Some(t0 + Duration::from_millis(200)));
        joiner.flush_due(t0 + Duration::from_millis(199), &mut out);
        assert_eq!(out.len(), 1);
        joiner.flush_due(t0 + Duration::from_millis(200), &mut out);
        assert_eq!(messages(&out), ["one", "two"]);
        assert_eq!(joiner.deadline(), None);
    }

    #[test]
    fn an_event_never_grows_past_the_cap() {
        let out = join(MultilineRules::Known, 12, &["start", " 12345", " 6789"]);
        assert_eq!(messages(&out), ["start\n 12345", " 6789"]);
    }

    #[test]
    fn recognises_frame_counts_and_error_lines() {
        assert!(is_more_frames("... 12 more"));
        assert!(is_more_frames("... 3 common frames omitted"));
        assert!(!is_more_frames("... more"));
        assert!(!is_more_frames("...12 more"));
        assert!(is_python_error("ValueError: x"));
        assert!(is_python_error("KeyboardInterrupt"));
        assert!(is_python_error("pkg.errors.Failure: y"));
        assert!(!is_python_error("hello world"));
        assert!(!is_python_error("12: x"));
    }

    proptest! {
        /// Whatever the lines, joining loses and adds nothing: the events, joined with `\n`,
        /// are the lines joined with `\n`; every line that is not a continuation starts an
        /// event; no event passes the cap unless one line alone does.
        #[test]
        fn joining_preserves_every_byte(
            lines in proptest::collection::vec(
                "(\t|  |Caused by: |\\.\\.\\. 1 more|Traceback \\(most recent call last\\):|E: |)[a-z é]{0,12}",
                0..40,
            ),
            max_bytes in 1usize..200,
        ) {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let out = join(MultilineRules::Known, max_bytes, &refs);
            prop_assert_eq!(messages(&out).join("\n"), lines.join("\n"));
            prop_assert_eq!(out.iter().map(|j| j.lines).sum::<usize>(), lines.len());
            let mut next = 0;
            for joined in &out {
                prop_assert_eq!(joined.ts, Timestamp(next as i64));
                next += joined.lines;
                prop_assert!(joined.lines == 1 || joined.message.len() <= max_bytes);
            }
            let tracebacks = lines.iter().any(|l| l.starts_with(PYTHON_TRACEBACK));
            for (n, text) in lines.iter().enumerate() {
                let starts = known_class("", text) == Class::Start
                    && (!tracebacks || !is_python_error(text));
                if n == 0 || starts {
                    prop_assert!(out.iter().any(|j| j.ts == Timestamp(n as i64)), "line {} starts an event", n);
                }
            }
        }

        /// Arbitrary text and a random start pattern never panic.
        #[test]
        fn never_panics(lines in proptest::collection::vec(any::<String>(), 0..20)) {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let out = join(MultilineRules::Known, 64, &refs);
            prop_assert_eq!(messages(&out).join("\n"), lines.join("\n"));
        }
    }
}
