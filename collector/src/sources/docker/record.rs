//! Turning one container's log frames into [`Event`]s: per-stream line assembly, sequence
//! numbers, the resume cut-off, multiline joining, deterministic ids, JSON lift, level
//! detection and, in a prediction container, reading JSON lines as predictions.
//!
//! Every line gets its sequence number (its order among lines of the stream with the same
//! Docker time) before anything is dropped or joined, so a re-read from a whole second
//! numbers lines exactly as the first read did: ids and checkpoints stay comparable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shiplog_core::{Event, EventId, GAP_FIELD, Kind, Level, Stream, Timestamp};

use super::line::{Line, LineAssembler, MAX_LINE_BYTES};
use super::metadata::ContainerMeta;
use super::rotation::LostLines;
use crate::checkpoint::{Position, SourcePosition, StreamPositions};
use crate::sources::SourceEvent;
use crate::transforms::json_lift::{self, SOURCE_TIME_FIELD};
use crate::transforms::multiline::{JoinLine, Joined, Joiner, MultilineRules};
use crate::transforms::predictions::PredictionCapture;

/// Re-reads start this long before the latest shipped line: lines of stdout and stderr can
/// reach Docker's log slightly out of time order, and a resume must not miss one of them.
const RESUME_MARGIN_NANOS: i64 = 1_000_000_000;

/// Longest working list kept between frames: a TTY chunk of many lines does not leave a
/// hundred containers each holding room for that many.
const SCRATCH_KEPT: usize = 64;

/// Where a container's log is read from, and which of the lines read were shipped already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resume {
    /// Lines Docker dates at or before this are dropped (containers running when the
    /// collector started are read from shortly before the start, not from their beginning).
    pub floor: Option<Timestamp>,
    /// Per stream, the last line shipped: it and the lines before it are dropped.
    pub shipped: StreamPositions,
}

impl Resume {
    /// Read the whole log.
    pub fn from_beginning() -> Self {
        Resume::default()
    }

    /// Read from `floor` on, exclusive.
    pub fn after(floor: Timestamp) -> Self {
        Resume {
            floor: Some(floor),
            shipped: StreamPositions::default(),
        }
    }

    /// Read on after checkpointed positions.
    pub fn after_checkpoint(shipped: StreamPositions) -> Self {
        Resume {
            floor: None,
            shipped,
        }
    }

    /// Docker's `since` (whole seconds, inclusive; 0 reads everything) that reads every line
    /// not dropped yet.
    pub fn since_secs(&self) -> i32 {
        match self.floor.max(self.shipped.latest_ts()) {
            Some(latest) => super::docker_since(latest.offset(-RESUME_MARGIN_NANOS)),
            None => 0,
        }
    }

    /// The same starting point as checkpoint positions: per stream, the later of the last
    /// line shipped and the floor (every line Docker dates at the floor itself included).
    pub fn as_checkpoint(&self) -> StreamPositions {
        let mut positions = self.shipped;
        if let Some(floor) = self.floor {
            let at_floor = Position {
                ts: floor,
                seq: u32::MAX,
            };
            for stream in [Stream::Stdout, Stream::Stderr] {
                let later = positions.get(stream).map_or(at_floor, |p| p.max(at_floor));
                positions.set(stream, later);
            }
        }
        positions
    }

    /// Whether the whole log is read: no floor, nothing shipped.
    pub fn is_from_beginning(&self) -> bool {
        self.floor.is_none() && self.shipped.is_empty()
    }

    /// Docker's time of the last line shipped (of either stream), when it was a line read
    /// (not where a run began reading, which no line need be at).
    pub fn last_shipped_line(&self) -> Option<Timestamp> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter_map(|stream| self.shipped.get(stream))
            .filter(|p| p.seq != u32::MAX)
            .map(|p| p.ts)
            .max()
            .filter(|&ts| self.floor.is_none_or(|floor| ts > floor))
    }

    /// Whether the line at `position` of `stream` was shipped before (or is before the floor).
    pub fn skips(&self, stream: Stream, position: Position) -> bool {
        self.floor.is_some_and(|floor| position.ts <= floor)
            || self
                .shipped
                .get(stream)
                .is_some_and(|shipped| position <= shipped)
    }
}

/// Where one stream stands: the partial line, the pending multi-line event, and the
/// sequence of equal times.
#[derive(Debug)]
struct StreamState {
    assembler: LineAssembler,
    joiner: Joiner,
    last_ts: Option<Timestamp>,
    seq: u32,
    /// The last whole line read with Docker's time (emitted, held or dropped as shipped).
    seen: Option<Position>,
}

impl StreamState {
    /// The sequence number of the next line with time `ts` (0 unless the previous line had
    /// the very same time).
    fn next_seq(&mut self, ts: Timestamp) -> u32 {
        if self.last_ts == Some(ts) {
            self.seq = self.seq.saturating_add(1);
        } else {
            self.last_ts = Some(ts);
            self.seq = 0;
        }
        self.seq
    }
}

/// Builds the events of one container from its log frames.
#[derive(Debug)]
pub struct ContainerLog {
    meta: ContainerMeta,
    container_id: Arc<str>,
    node: Arc<str>,
    stdout: StreamState,
    stderr: StreamState,
    resume: Resume,
    /// Per stream, the end of the last event emitted.
    emitted: StreamPositions,
    /// Set when the container writes predictions.
    predictions: Option<PredictionCapture>,
    /// Working lists kept from one frame to the next (empty between calls), so a frame
    /// does not cost two allocations on top of its lines.
    scratch_lines: Vec<Line>,
    scratch_joined: Vec<Joined>,
}

impl ContainerLog {
    /// A reader for `meta`'s logs on `node`, dropping what `resume` says was shipped and
    /// joining lines by `multiline`, waiting at most `timeout` for a continuation.
    pub fn new(
        meta: ContainerMeta,
        node: Arc<str>,
        resume: Resume,
        multiline: Arc<MultilineRules>,
        timeout: Duration,
    ) -> Self {
        let stream = || StreamState {
            assembler: LineAssembler::default(),
            joiner: Joiner::new(Arc::clone(&multiline), timeout, MAX_LINE_BYTES),
            last_ts: None,
            seq: 0,
            seen: None,
        };
        ContainerLog {
            container_id: meta.id.as_str().into(),
            meta,
            node,
            stdout: stream(),
            stderr: stream(),
            resume,
            emitted: StreamPositions::default(),
            predictions: None,
            scratch_lines: Vec::new(),
            scratch_joined: Vec::new(),
        }
    }

    /// Keeps at most `max_line` bytes of each line and of each joined multi-line event
    /// (default [`MAX_LINE_BYTES`]); the rest is cut and the event flagged.
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let state = self.state(stream);
            state.assembler = LineAssembler::new(max_line);
            state.joiner.set_max_bytes(max_line);
        }
        self
    }

    /// Reads the container's JSON lines as predictions with `capture` (none: plain logs).
    pub fn with_predictions(mut self, capture: Option<PredictionCapture>) -> Self {
        self.predictions = capture;
        self
    }

    /// The container facts events are stamped with.
    pub fn meta(&self) -> &ContainerMeta {
        &self.meta
    }

    /// Where to resume if the container starts again: after the events emitted so far.
    pub fn cursor(&self) -> Resume {
        let mut shipped = self.resume.shipped;
        for stream in [Stream::Stdout, Stream::Stderr] {
            if let Some(position) = self.emitted.get(stream) {
                shipped.set(stream, position);
            }
        }
        Resume {
            floor: self.resume.floor,
            shipped,
        }
    }

    /// Docker's time of the last whole line read, of either stream.
    pub fn read_through(&self) -> Option<Timestamp> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .filter_map(|stream| self.state_ref(stream).seen)
            .map(|p| p.ts)
            .max()
    }

    /// Gets ready to read the same log again from the engine's files, once its stream has
    /// ended, and returns Docker's `since` for that read. Lines up to the last one read
    /// (of either stream: the engine sends them in the order it stored them) are dropped
    /// when they come again, and numbered as they were; what was held of a partial line is
    /// let go, since it comes again whole. Pending multi-line events stay: lines that were
    /// missing from the stream may still join them.
    pub fn reread_after_seen(&mut self) -> i32 {
        if let Some(latest) = self.read_through() {
            // Every line dated before the last one read was read (file order); one of the
            // other stream with the very same time may not have been.
            let floor = latest.offset(-1);
            self.resume.floor = Some(self.resume.floor.map_or(floor, |f| f.max(floor)));
        }
        for stream in [Stream::Stdout, Stream::Stderr] {
            let state = self.state(stream);
            let seen = state.seen;
            state.assembler.reset();
            state.last_ts = None;
            state.seq = 0;
            if let Some(seen) = seen
                && self.resume.shipped.get(stream).is_none_or(|p| p < seen)
            {
                self.resume.shipped.set(stream, seen);
            }
        }
        self.resume.since_secs()
    }

    /// Feeds one frame from `stream` received at `now`, appending complete events to `out`.
    pub fn push(
        &mut self,
        stream: Stream,
        frame: &[u8],
        received: Timestamp,
        now: Instant,
        out: &mut Vec<SourceEvent>,
    ) {
        let mut lines = std::mem::take(&mut self.scratch_lines);
        self.state(stream).assembler.push(frame, &mut lines);
        self.take_lines(stream, &mut lines, received, now, out);
        if lines.capacity() <= SCRATCH_KEPT {
            self.scratch_lines = lines;
        }
    }

    /// Numbers `lines`, drops those shipped before, and joins the rest.
    fn take_lines(
        &mut self,
        stream: Stream,
        lines: &mut Vec<Line>,
        received: Timestamp,
        now: Instant,
        out: &mut Vec<SourceEvent>,
    ) {
        let resume = self.resume;
        let mut joined = std::mem::take(&mut self.scratch_joined);
        let state = self.state(stream);
        for line in lines.drain(..) {
            let ts = line.ts.unwrap_or(received);
            let seq = state.next_seq(ts);
            let docker_ts = line.ts.is_some();
            if docker_ts {
                state.seen = Some(Position { ts, seq });
                if resume.skips(stream, Position { ts, seq }) {
                    continue;
                }
            }
            let line = JoinLine {
                ts,
                seq,
                docker_ts,
                message: line.message,
                flags: line.flags,
            };
            state.joiner.push(line, now, &mut joined);
        }
        self.emit(stream, &mut joined, received, out);
        if joined.capacity() <= SCRATCH_KEPT {
            self.scratch_joined = joined;
        }
    }

    /// When a pending multi-line event is due, if one is.
    pub fn next_deadline(&self) -> Option<Instant> {
        let stdout = self.stdout.joiner.deadline();
        let stderr = self.stderr.joiner.deadline();
        match (stdout, stderr) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// An event in the container's log that marks lines lost to rotation: a warning at the
    /// time of the last line read before them, with `fields._gap` saying how many (an
    /// estimate; 0 when unknown) and between which times. It ends at no source position:
    /// the checkpoint does not move for it.
    pub fn gap_event(&self, lost: &LostLines, received: Timestamp) -> SourceEvent {
        let meta = &self.meta;
        let ts = lost.after.offset(1);
        let (after, before) = (lost.after.to_rfc3339(), lost.before.to_rfc3339());
        let count = match lost.estimate {
            0 => "an unknown number of".to_string(),
            n => format!("about {n}"),
        };
        let mut fields = meta.fields.clone();
        fields.insert(
            GAP_FIELD.into(),
            serde_json::json!({
                "lines_estimate": lost.estimate,
                "after": after,
                "before": before,
                "reason": "rotated",
            }),
        );
        let event = Event {
            id: EventId::for_source(&self.node, &meta.id, GAP_FIELD, ts, 0),
            ts,
            received: Some(received),
            kind: Kind::Log,
            node: self.node.to_string(),
            container_id: meta.id.clone(),
            container_name: meta.name.clone(),
            image: meta.image.clone(),
            service: meta.service.clone(),
            level: Some(Level::Warn),
            message: format!(
                "shiplog: {count} lines written between {after} and {before} were deleted by Docker's log rotation before they could be read"
            ),
            fields,
            ..Event::default()
        };
        SourceEvent { event, end: None }
    }

    /// Emits the pending multi-line events whose wait is over.
    pub fn flush_due(&mut self, now: Instant, received: Timestamp, out: &mut Vec<SourceEvent>) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut joined = Vec::new();
            self.state(stream).joiner.flush_due(now, &mut joined);
            self.emit(stream, &mut joined, received, out);
        }
    }

    /// The streams ended: emits the partial lines and pending events still held.
    pub fn finish(&mut self, received: Timestamp, out: &mut Vec<SourceEvent>) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut lines = Vec::new();
            self.state(stream).assembler.finish(&mut lines);
            self.take_lines(stream, &mut lines, received, Instant::now(), out);
            let mut joined = Vec::new();
            self.state(stream).joiner.finish(&mut joined);
            self.emit(stream, &mut joined, received, out);
        }
    }

    fn state_ref(&self, stream: Stream) -> &StreamState {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    fn state(&mut self, stream: Stream) -> &mut StreamState {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    fn emit(
        &mut self,
        stream: Stream,
        joined: &mut Vec<Joined>,
        received: Timestamp,
        out: &mut Vec<SourceEvent>,
    ) {
        for group in joined.drain(..) {
            let end = group.end.map(|position| {
                self.emitted.set(stream, position);
                SourcePosition {
                    container_id: Arc::clone(&self.container_id),
                    stream,
                    position,
                }
            });
            out.push(SourceEvent {
                event: self.event(stream, group, received),
                end,
            });
        }
    }

    fn event(&self, stream: Stream, group: Joined, received: Timestamp) -> Event {
        let meta = &self.meta;
        let mut fields = meta.fields.clone();
        let mut level = None;
        let mut message = group.message;
        // `Some(has a msg/message key)` when the line was a JSON object.
        let mut lifted_json = None;
        if let Some(lifted) = json_lift::lift(&message) {
            lifted_json = Some(lifted.message.is_some());
            level = lifted.level;
            if let Some(time) = lifted.time {
                fields.insert(SOURCE_TIME_FIELD.into(), Value::String(time.to_rfc3339()));
            }
            for (key, value) in lifted.fields {
                fields.entry(key).or_insert(value);
            }
            if let Some(text) = lifted.message {
                message = text;
            }
        }
        let mut event = Event {
            id: EventId::for_source(&self.node, &meta.id, stream.as_str(), group.ts, group.seq),
            ts: group.ts,
            received: Some(received),
            seq: group.seq,
            kind: Kind::Log,
            node: self.node.to_string(),
            container_id: meta.id.clone(),
            container_name: meta.name.clone(),
            image: meta.image.clone(),
            service: meta.service.clone(),
            stream: Some(stream),
            level: level.or_else(|| Level::sniff(&message)),
            message,
            fields,
            flags: group.flags,
            ..Event::default()
        };
        if let (Some(capture), Some(has_message_key)) = (&self.predictions, lifted_json) {
            capture.capture(&mut event, has_message_key);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Map;

    use super::*;
    use crate::transforms::multiline::DEFAULT_FLUSH_TIMEOUT;

    const T1: &str = "2026-11-22T03:09:44.000000001Z";
    const T2: &str = "2026-11-22T03:09:44.000000002Z";
    const T3: &str = "2026-11-22T03:09:45.5Z";

    fn meta() -> ContainerMeta {
        let mut fields = Map::new();
        fields.insert("compose_project".into(), "shop".into());
        ContainerMeta {
            id: "c0ffee".into(),
            name: "shop-web-1".into(),
            image: "shop/web:1".into(),
            service: "web".into(),
            tty: false,
            opted_out: None,
            labels: BTreeMap::new(),
            fields,
        }
    }

    fn log_with(resume: Resume, rules: MultilineRules) -> ContainerLog {
        ContainerLog::new(
            meta(),
            "node-a".into(),
            resume,
            Arc::new(rules),
            DEFAULT_FLUSH_TIMEOUT,
        )
    }

    fn log() -> ContainerLog {
        log_with(Resume::from_beginning(), MultilineRules::Off)
    }

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn push(log: &mut ContainerLog, stream: Stream, frame: &str) -> Vec<SourceEvent> {
        let mut out = Vec::new();
        log.push(
            stream,
            frame.as_bytes(),
            Timestamp(42),
            Instant::now(),
            &mut out,
        );
        out
    }

    fn messages(out: &[SourceEvent]) -> Vec<&str> {
        out.iter().map(|e| e.event.message.as_str()).collect()
    }

    #[test]
    fn builds_events_with_ids_seq_and_metadata() {
        let mut log = log();
        let mut out = push(
            &mut log,
            Stream::Stdout,
            &format!("{T1} first\n{T1} same time\n{T2} ERROR: later\n"),
        );
        out.extend(push(&mut log, Stream::Stderr, &format!("{T1} on stderr\n")));
        let seqs: Vec<u32> = out.iter().map(|e| e.event.seq).collect();
        assert_eq!(seqs, [0, 1, 0, 0]);
        let e = &out[0].event;
        assert_eq!(
            e.id,
            EventId::for_source("node-a", "c0ffee", "stdout", t(T1), 0)
        );
        assert_eq!(
            (
                e.node.as_str(),
                e.container_name.as_str(),
                e.service.as_str()
            ),
            ("node-a", "shop-web-1", "web")
        );
        assert_eq!(e.received, Some(Timestamp(42)));
        assert_eq!(e.fields["compose_project"], "shop");
        assert_eq!(out[2].event.level, Some(Level::Error));
        assert_eq!(out[3].event.stream, Some(Stream::Stderr));
        assert_ne!(out[3].event.id, e.id, "streams are told apart");
        assert_eq!(
            out[1].end.as_ref().unwrap().position,
            Position { ts: t(T1), seq: 1 }
        );
        let cursor = log.cursor();
        assert_eq!(cursor.shipped.stdout, Some(Position { ts: t(T2), seq: 0 }));
        assert_eq!(cursor.shipped.stderr, Some(Position { ts: t(T1), seq: 0 }));
    }

    #[test]
    fn lines_without_a_time_stamp_fall_back_to_received() {
        let mut log = log();
        let out = push(&mut log, Stream::Stdout, "no prefix\n");
        assert_eq!(out[0].event.ts, Timestamp(42));
        assert_eq!(out[0].event.message, "no prefix");
        assert_eq!(out[0].end, None, "no docker position to resume from");
        assert_eq!(log.cursor(), Resume::from_beginning());
    }

    #[test]
    fn a_resume_drops_shipped_lines_but_numbers_them() {
        // Shipped: stdout through (T1, 0). The re-read starts at the whole second, so it
        // sees (T1, 0) again; (T1, 1) must keep its sequence number 1.
        let mut shipped = StreamPositions::default();
        shipped.set(Stream::Stdout, Position { ts: t(T1), seq: 0 });
        let resume = Resume::after_checkpoint(shipped);
        assert_eq!(i64::from(resume.since_secs()), t(T1).as_secs() - 1);
        let mut log = log_with(resume, MultilineRules::Off);
        let out = push(
            &mut log,
            Stream::Stdout,
            &format!("{T1} shipped\n{T1} new same time\n{T2} new\n"),
        );
        assert_eq!(messages(&out), ["new same time", "new"]);
        assert_eq!(out[0].event.seq, 1);
        let stderr = push(
            &mut log,
            Stream::Stderr,
            &format!("{T1} stderr was never shipped\n"),
        );
        assert_eq!(messages(&stderr), ["stderr was never shipped"]);

        let mut floored = log_with(Resume::after(t(T1)), MultilineRules::Off);
        let out = push(
            &mut floored,
            Stream::Stderr,
            &format!("{T1} old\n{T2} new\n"),
        );
        assert_eq!(messages(&out), ["new"]);
        assert_eq!(Resume::from_beginning().since_secs(), 0);
    }

    #[test]
    fn lines_and_joined_events_are_cut_at_the_configured_cap_and_flagged() {
        let mut log = log_with(Resume::from_beginning(), MultilineRules::Known).with_max_line(1024);
        let long = "x".repeat(3_000);
        let trace = format!(
            "{T1} Exception in main\n{}",
            format!("{T1} \tat a.b.C.d(C.java:1)\n").repeat(100)
        );
        let mut out = push(
            &mut log,
            Stream::Stdout,
            &format!("{T1} {long}\n{trace}{T2} next\n"),
        );
        log.finish(Timestamp(43), &mut out);
        let cut: Vec<&Event> = out.iter().map(|e| &e.event).collect();
        assert_eq!(cut[0].message.len(), 1024, "a long line is cut at the cap");
        assert!(cut[0].flags.contains(&shiplog_core::Flag::Truncated));
        assert!(cut[1].message.starts_with("Exception in main"));
        assert!(
            cut[1].message.len() <= 1024,
            "a joined event stays under the cap too"
        );
        assert!(
            out.iter().any(|e| e.event.message == "next"),
            "nothing after is lost"
        );
        // Reading the end again keeps the cap.
        log.reread_after_seen();
        let mut again = push(&mut log, Stream::Stderr, &format!("{T3} {long}\n"));
        log.finish(Timestamp(44), &mut again);
        assert_eq!(again[0].event.message.len(), 1024);
        assert!(
            again[0]
                .event
                .flags
                .contains(&shiplog_core::Flag::Truncated)
        );
    }

    #[test]
    fn a_log_read_again_after_its_end_brings_only_what_was_not_read() {
        let mut log = log();
        let first = [
            push(&mut log, Stream::Stdout, &format!("{T1} a\n{T1} b\n")),
            push(&mut log, Stream::Stderr, &format!("{T2} e\n")),
            // Half of a long line, held until its end comes.
            push(&mut log, Stream::Stdout, &format!("{T3} half")),
        ]
        .concat();
        assert_eq!(messages(&first), ["a", "b", "e"]);
        assert_eq!(log.read_through(), Some(t(T2)));

        let since = log.reread_after_seen();
        assert_eq!(i64::from(since), t(T2).as_secs() - 1);
        let again = [
            push(&mut log, Stream::Stdout, &format!("{T1} a\n{T1} b\n")),
            push(&mut log, Stream::Stderr, &format!("{T2} e\n")),
            // The other stream at the very time of the last line read was not read.
            push(&mut log, Stream::Stdout, &format!("{T2} same time\n")),
            push(&mut log, Stream::Stdout, &format!("{T3} half")),
            push(&mut log, Stream::Stdout, &format!("{T3} and the rest\n")),
            push(&mut log, Stream::Stderr, &format!("{T3} new\n")),
        ]
        .concat();
        assert_eq!(
            messages(&again),
            ["same time", "halfand the rest", "new"],
            "what was read comes once; the held half is not doubled"
        );
        assert_eq!(again[0].event.seq, 0);
        assert_eq!(
            again[0].event.id,
            EventId::for_source("node-a", "c0ffee", "stdout", t(T2), 0)
        );
        let cursor = log.cursor();
        assert_eq!(cursor.shipped.stderr.map(|p| p.ts), Some(t(T3)));
        assert!(cursor.skips(Stream::Stdout, Position { ts: t(T2), seq: 0 }));
    }

    #[test]
    fn a_resume_as_a_checkpoint_drops_the_same_lines() {
        let mut shipped = StreamPositions::default();
        shipped.set(Stream::Stdout, Position { ts: t(T2), seq: 0 });
        let resume = Resume {
            floor: Some(t(T1)),
            shipped,
        };
        let checkpoint = resume.as_checkpoint();
        assert_eq!(
            checkpoint.stdout, shipped.stdout,
            "a line shipped after the floor stays the mark"
        );
        let again = Resume::after_checkpoint(checkpoint);
        for (stream, ts, seq) in [
            (Stream::Stdout, T1, 0),
            (Stream::Stdout, T2, 0),
            (Stream::Stderr, T1, 0),
            (Stream::Stderr, T1, 7),
            (Stream::Stderr, T2, 0),
            (Stream::Stdout, T2, 1),
        ] {
            let position = Position { ts: t(ts), seq };
            assert_eq!(
                again.skips(stream, position),
                resume.skips(stream, position),
                "{stream:?} {ts} #{seq}"
            );
        }
        assert!(again.since_secs() <= resume.since_secs());
        assert_eq!(
            Resume::from_beginning().as_checkpoint(),
            StreamPositions::default()
        );
    }

    #[test]
    fn joins_stack_traces_and_checkpoints_their_last_line() {
        let mut log = log_with(Resume::from_beginning(), MultilineRules::Known);
        let frame =
            format!("{T1} java.lang.RuntimeException: x\n{T2} \tat A.b(A.java:1)\n{T3} next\n");
        let out = push(&mut log, Stream::Stdout, &frame);
        assert_eq!(
            messages(&out),
            ["java.lang.RuntimeException: x\n\tat A.b(A.java:1)"]
        );
        assert_eq!(out[0].event.ts, t(T1));
        assert_eq!(out[0].end.as_ref().unwrap().position.ts, t(T2));
        assert!(
            log.next_deadline().is_some(),
            "the last line waits for a continuation"
        );
        let mut later = Vec::new();
        log.flush_due(
            Instant::now() + DEFAULT_FLUSH_TIMEOUT,
            Timestamp(0),
            &mut later,
        );
        assert_eq!(messages(&later), ["next"]);
        assert_eq!(log.next_deadline(), None);

        // Resumed after the first event, the re-read continuation is not a new event.
        let mut shipped = StreamPositions::default();
        shipped.set(Stream::Stdout, Position { ts: t(T2), seq: 0 });
        let mut resumed = log_with(Resume::after_checkpoint(shipped), MultilineRules::Known);
        let mut out = push(&mut resumed, Stream::Stdout, &frame);
        resumed.finish(Timestamp(0), &mut out);
        assert_eq!(messages(&out), ["next"]);
    }

    #[test]
    fn a_python_traceback_on_stderr_is_one_event_at_level_error() {
        let mut joined = log_with(Resume::from_beginning(), MultilineRules::Known);
        let frame = format!(
            "{T1} Traceback (most recent call last):\n{T1}   File \"serve.py\", line 9, in <module>\n{T2}     predict()\n{T2} ValueError: bad input\n{T3} serving again\n"
        );
        let mut out = push(&mut joined, Stream::Stderr, &frame);
        joined.finish(Timestamp(0), &mut out);
        assert_eq!(out.len(), 2, "{:?}", messages(&out));
        assert!(out[0].event.message.ends_with("ValueError: bad input"));
        assert_eq!(out[0].event.level, Some(Level::Error));
        assert_eq!(out[1].event.level, None);
        // Without joining, the first and the last line of the trace still say error.
        let mut plain = log();
        let mut out = push(&mut plain, Stream::Stderr, &frame);
        plain.finish(Timestamp(0), &mut out);
        let levels: Vec<_> = out.iter().map(|e| e.event.level).collect();
        assert_eq!(
            levels,
            [Some(Level::Error), None, None, Some(Level::Error), None]
        );
    }

    #[test]
    fn json_lines_give_their_message_level_time_and_fields() {
        let mut log = log();
        let line = format!(
            "{T1} {{\"severity\":\"warning\",\"msg\":\"slow\",\"latency_ms\":812,\"ts\":\"2026-11-22T03:09:40Z\",\"compose_project\":\"x\"}}\n"
        );
        let out = push(&mut log, Stream::Stdout, &line);
        let e = &out[0].event;
        assert_eq!(e.level, Some(Level::Warn));
        assert_eq!(e.message, "slow", "the msg key is the message");
        assert_eq!(e.fields["msg"], "slow");
        assert_eq!(e.fields["latency_ms"], 812);
        assert_eq!(e.fields["_ts"], "2026-11-22T03:09:40.000000000Z");
        assert_eq!(e.ts, t(T1), "the event keeps Docker's time");
        assert_eq!(
            e.fields["compose_project"], "shop",
            "labels win over line keys"
        );
    }

    #[test]
    fn finish_emits_partial_lines_of_both_streams() {
        let mut log = log_with(Resume::from_beginning(), MultilineRules::Known);
        let mut out = push(&mut log, Stream::Stdout, &format!("{T1} out"));
        out.extend(push(&mut log, Stream::Stderr, &format!("{T2} err")));
        assert!(out.is_empty());
        log.finish(Timestamp(0), &mut out);
        let got: Vec<(&str, Option<Stream>)> = out
            .iter()
            .map(|e| (e.event.message.as_str(), e.event.stream))
            .collect();
        assert_eq!(
            got,
            [("out", Some(Stream::Stdout)), ("err", Some(Stream::Stderr))]
        );
    }
}
