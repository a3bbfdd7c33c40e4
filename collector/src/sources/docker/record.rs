//! Turning one container's log frames into [`Event`]s: per-stream line assembly, sequence
//! numbers, deterministic ids, level detection and the resume cut-off.

use std::sync::Arc;

use serde_json::{Map, Value};
use shiplog_core::{Event, EventId, Kind, Level, Stream, Timestamp};

use super::line::{Line, LineAssembler};
use super::metadata::ContainerMeta;

/// Longest line still tried as a JSON object.
const MAX_JSON_LINE: usize = 64 * 1024;
/// JSON keys read as the line's level, in order of preference.
const LEVEL_KEYS: [&str; 3] = ["level", "severity", "lvl"];

/// Where one stream stands: the partial line it holds and the sequence of equal times.
#[derive(Debug, Default)]
struct StreamState {
    assembler: LineAssembler,
    last_ts: Option<Timestamp>,
    seq: u32,
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
    node: Arc<str>,
    stdout: StreamState,
    stderr: StreamState,
    skip_through: Option<Timestamp>,
    cursor: Option<Timestamp>,
}

impl ContainerLog {
    /// A reader for `meta`'s logs on `node`. Lines Docker dates at or before `skip_through`
    /// were shipped before (a restarted container read again from that time) and are dropped.
    pub fn new(meta: ContainerMeta, node: Arc<str>, skip_through: Option<Timestamp>) -> Self {
        ContainerLog {
            meta,
            node,
            stdout: StreamState::default(),
            stderr: StreamState::default(),
            skip_through,
            cursor: skip_through,
        }
    }

    /// The container facts events are stamped with.
    pub fn meta(&self) -> &ContainerMeta {
        &self.meta
    }

    /// The latest Docker time seen: where to resume if the container starts again.
    pub fn cursor(&self) -> Option<Timestamp> {
        self.cursor
    }

    /// Feeds one frame from `stream`, appending the events of its complete lines to `out`.
    pub fn push(
        &mut self,
        stream: Stream,
        frame: &[u8],
        received: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let mut lines = Vec::new();
        self.state(stream).assembler.push(frame, &mut lines);
        self.emit(stream, lines, received, out);
    }

    /// The streams ended: emits the partial lines still held.
    pub fn finish(&mut self, received: Timestamp, out: &mut Vec<Event>) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut lines = Vec::new();
            self.state(stream).assembler.finish(&mut lines);
            self.emit(stream, lines, received, out);
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
        lines: Vec<Line>,
        received: Timestamp,
        out: &mut Vec<Event>,
    ) {
        for line in lines {
            if let (Some(ts), Some(skip)) = (line.ts, self.skip_through)
                && ts <= skip
            {
                continue;
            }
            if let Some(ts) = line.ts {
                self.cursor = self.cursor.max(Some(ts));
            }
            let ts = line.ts.unwrap_or(received);
            let seq = self.state(stream).next_seq(ts);
            out.push(self.event(stream, line, ts, seq, received));
        }
    }

    fn event(
        &self,
        stream: Stream,
        line: Line,
        ts: Timestamp,
        seq: u32,
        received: Timestamp,
    ) -> Event {
        let meta = &self.meta;
        let mut fields = meta.fields.clone();
        let mut level = None;
        if let Some(object) = json_object(&line.message) {
            level = json_level(&object);
            for (key, value) in object {
                fields.entry(key).or_insert(value);
            }
        }
        Event {
            id: EventId::for_source(&self.node, &meta.id, stream.as_str(), ts, seq),
            ts,
            received: Some(received),
            seq,
            kind: Kind::Log,
            node: self.node.to_string(),
            container_id: meta.id.clone(),
            container_name: meta.name.clone(),
            image: meta.image.clone(),
            service: meta.service.clone(),
            stream: Some(stream),
            level: level.or_else(|| Level::sniff(&line.message)),
            message: line.message,
            fields,
            flags: line.flags,
        }
    }
}

/// The line as a JSON object, when it is one (structured loggers). The message itself is
/// kept as written; the object's keys are copied into `fields` for search.
fn json_object(message: &str) -> Option<Map<String, Value>> {
    let trimmed = message.trim();
    if trimmed.len() > MAX_JSON_LINE || !trimmed.starts_with('{') || !trimmed.ends_with('}') {
        return None;
    }
    serde_json::from_str(trimmed).ok()
}

/// The level a JSON log line states under `level`, `severity` or `lvl`.
fn json_level(object: &Map<String, Value>) -> Option<Level> {
    LEVEL_KEYS
        .iter()
        .find_map(|key| object.get(*key)?.as_str())
        .and_then(Level::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-11-22T03:09:44.000000001Z";
    const T2: &str = "2026-11-22T03:09:44.000000002Z";

    fn meta() -> ContainerMeta {
        let mut fields = Map::new();
        fields.insert("compose_project".into(), "shop".into());
        ContainerMeta {
            id: "c0ffee".into(),
            name: "shop-web-1".into(),
            image: "shop/web:1".into(),
            service: "web".into(),
            tty: false,
            excluded: false,
            fields,
        }
    }

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn builds_events_with_ids_seq_and_metadata() {
        let mut log = ContainerLog::new(meta(), "node-a".into(), None);
        let now = Timestamp(42);
        let mut out = Vec::new();
        let frame = format!("{T1} first\n{T1} same time\n{T2} ERROR: later\n");
        log.push(Stream::Stdout, frame.as_bytes(), now, &mut out);
        log.push(
            Stream::Stderr,
            format!("{T1} on stderr\n").as_bytes(),
            now,
            &mut out,
        );
        let seqs: Vec<u32> = out.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 0, 0]);
        let e = &out[0];
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
        assert_eq!(e.received, Some(now));
        assert_eq!(e.fields["compose_project"], "shop");
        assert_eq!(out[2].level, Some(Level::Error));
        assert_eq!(out[3].stream, Some(Stream::Stderr));
        assert_ne!(out[3].id, e.id, "streams are told apart");
        assert_eq!(log.cursor(), Some(t(T2)));
    }

    #[test]
    fn lines_without_a_time_stamp_fall_back_to_received() {
        let mut log = ContainerLog::new(meta(), "n".into(), None);
        let mut out = Vec::new();
        log.push(Stream::Stdout, b"no prefix\n", Timestamp(7), &mut out);
        assert_eq!(out[0].ts, Timestamp(7));
        assert_eq!(out[0].message, "no prefix");
        assert_eq!(log.cursor(), None);
    }

    #[test]
    fn a_resumed_container_drops_lines_at_or_before_the_cursor() {
        let mut log = ContainerLog::new(meta(), "n".into(), Some(t(T1)));
        let mut out = Vec::new();
        let frame = format!("{T1} shipped before\n{T2} new\n");
        log.push(Stream::Stdout, frame.as_bytes(), Timestamp(0), &mut out);
        let messages: Vec<&str> = out.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["new"]);
    }

    #[test]
    fn json_lines_give_their_level_and_fields() {
        let mut log = ContainerLog::new(meta(), "n".into(), None);
        let mut out = Vec::new();
        let line = format!(
            "{T1} {{\"severity\":\"warning\",\"msg\":\"slow\",\"latency_ms\":812,\"compose_project\":\"x\"}}\n"
        );
        log.push(Stream::Stdout, line.as_bytes(), Timestamp(0), &mut out);
        let e = &out[0];
        assert_eq!(e.level, Some(Level::Warn));
        assert!(
            e.message.starts_with("{\"severity\""),
            "message kept as written"
        );
        assert_eq!(e.fields["latency_ms"], 812);
        assert_eq!(
            e.fields["compose_project"], "shop",
            "labels win over line keys"
        );
    }

    #[test]
    fn finish_emits_partial_lines_of_both_streams() {
        let mut log = ContainerLog::new(meta(), "n".into(), None);
        let mut out = Vec::new();
        log.push(
            Stream::Stdout,
            format!("{T1} out").as_bytes(),
            Timestamp(0),
            &mut out,
        );
        log.push(
            Stream::Stderr,
            format!("{T2} err").as_bytes(),
            Timestamp(0),
            &mut out,
        );
        assert!(out.is_empty());
        log.finish(Timestamp(0), &mut out);
        let got: Vec<(&str, Option<Stream>)> =
            out.iter().map(|e| (e.message.as_str(), e.stream)).collect();
        assert_eq!(
            got,
            [("out", Some(Stream::Stdout)), ("err", Some(Stream::Stderr))]
        );
    }
}
