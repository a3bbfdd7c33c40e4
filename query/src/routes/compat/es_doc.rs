//! Elasticsearch documents to events and back.
//!
//! Into an event ([`to_event`]), from the `_source` of a bulk item:
//!
//! | source key (first found wins) | event |
//! |---|---|
//! | `@timestamp`, `timestamp`, `ts` (RFC 3339, or epoch milliseconds as a number or digits) | `ts`; absent: the time it arrived |
//! | `message`, `msg`, `log` (a string) | `message` |
//! | `level`, `log.level`, `severity` (a level word) | `level` |
//! | `service.name`, `service` | `service` |
//! | `host.name`, `host` | `node` |
//! | `container.name`, `container.id`, `container.image.name` | `container_name`, `container_id`, `image` |
//! | every other key | `fields` (dotted keys expanded), plus `fields._index` = the index |
//!
//! Keys are matched as dotted names or as nested objects. A value of an unexpected type
//! (a numeric `severity`, an object `host`) stays in `fields`.
//!
//! Ids: a 32-hex `_id` is the event id; any other `_id` is hashed into one
//! ([`EventId::for_content`]) and kept as `fields._id` so searches answer it back; without
//! an `_id` the id is a hash of the index, the source bytes and how many identical sources
//! came before it in the same request, so a resent request is not stored twice.
//!
//! Out of an event ([`to_source`]): the fields (less `_index`, `_id`) with `@timestamp`,
//! `message`, and, when set, `log.level`, `service.name`, `host.name`, `container.*`,
//! `stream` and `kind`, as nested ECS objects.

use serde_json::{Map, Value};
use shiplog_core::{Event, EventId, Level, Timestamp};

use super::fields::{insert_path, merge_expanded, peek_path, take_path, take_string};

/// The index name answered for events that were not shipped through `_bulk`.
pub const DEFAULT_INDEX: &str = "shiplog";

/// Where a bulk item's id comes from.
#[derive(Debug, Clone, Copy)]
pub enum DocId<'a> {
    /// The `_id` the client gave.
    Given(&'a str),
    /// No `_id`: derive one from the source; the count says how many identical sources
    /// came earlier in the same request.
    Auto(usize),
}

/// Maps one bulk item to an event; the error is the reason the item is refused. Returns
/// the event and the `_id` to answer with.
pub fn to_event(
    index: &str,
    id: DocId<'_>,
    source: &[u8],
    received: Timestamp,
) -> Result<(Event, String), String> {
    let value: Value = serde_json::from_slice(source)
        .map_err(|e| format!("failed to parse the document source as JSON: {e}"))?;
    let Value::Object(mut doc) = value else {
        return Err(format!(
            "the document source must be a JSON object, got {}",
            kind_of(&value)
        ));
    };
    let mut event = Event::log(received, "");
    event.received = Some(received);
    if let Some((path, v)) = ["@timestamp", "timestamp", "ts"]
        .iter()
        .find_map(|p| peek_path(&doc, p).map(|v| (*p, v)))
    {
        event.ts = parse_time(v).map_err(|e| format!("failed to parse field [{path}]: {e}"))?;
        take_path(&mut doc, path);
    }
    if let Some(m) = take_string(&mut doc, &["message", "msg", "log"]) {
        event.message = m;
    }
    for path in ["level", "log.level", "severity"] {
        if let Some(Value::String(s)) = peek_path(&doc, path)
            && let Some(level) = Level::parse(s)
        {
            event.level = Some(level);
            take_path(&mut doc, path);
            break;
        }
    }
    event.service = take_string(&mut doc, &["service.name", "service"]).unwrap_or_default();
    event.node = take_string(&mut doc, &["host.name", "host"]).unwrap_or_default();
    event.container_name = take_string(&mut doc, &["container.name"]).unwrap_or_default();
    event.container_id = take_string(&mut doc, &["container.id"]).unwrap_or_default();
    event.image = take_string(&mut doc, &["container.image.name"]).unwrap_or_default();
    doc.remove("_index");
    doc.remove("_id");
    let mut fields = Map::new();
    merge_expanded(&mut fields, doc);
    fields.insert("_index".into(), Value::String(index.to_string()));
    let answer_id = match id {
        DocId::Given(given) => match given.parse::<EventId>() {
            Ok(parsed) => {
                event.id = parsed;
                given.to_string()
            }
            Err(_) => {
                event.id = EventId::for_content(&[b"es", index.as_bytes(), given.as_bytes()]);
                fields.insert("_id".into(), Value::String(given.to_string()));
                given.to_string()
            }
        },
        DocId::Auto(repeat) => {
            event.id = EventId::for_content(&[
                b"es-auto",
                index.as_bytes(),
                source,
                &(repeat as u64).to_le_bytes(),
            ]);
            event.id.to_string()
        }
    };
    event.fields = fields;
    Ok((event, answer_id))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a date as Elasticsearch's default format does: RFC 3339 (or a date alone), or
/// epoch milliseconds as a number or a string of digits.
pub fn parse_time(v: &Value) -> Result<Timestamp, String> {
    match v {
        Value::Number(n) => {
            if let Some(ms) = n.as_i64() {
                return millis(ms);
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 9.2e15 => Ok(Timestamp((f * 1e6) as i64)),
                _ => Err(format!("epoch milliseconds {n} out of range")),
            }
        }
        Value::String(s) => {
            let t = s.trim();
            let digits = t.strip_prefix('-').unwrap_or(t);
            if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
                let ms: i64 = t
                    .parse()
                    .map_err(|_| format!("epoch milliseconds '{t}' out of range"))?;
                return millis(ms);
            }
            Timestamp::parse_rfc3339(t).map_err(|e| e.to_string())
        }
        other => Err(format!(
            "expected an RFC 3339 string or epoch milliseconds, got {}",
            kind_of(other)
        )),
    }
}

fn millis(ms: i64) -> Result<Timestamp, String> {
    ms.checked_mul(1_000_000)
        .map(Timestamp)
        .ok_or_else(|| format!("epoch milliseconds {ms} out of range"))
}

/// The `_index` an event was shipped to.
pub fn index_of(event: &Event) -> &str {
    match event.fields.get("_index") {
        Some(Value::String(s)) => s,
        _ => DEFAULT_INDEX,
    }
}

/// The `_id` to answer for an event: the one the client gave, else the event id.
pub fn id_of(event: &Event) -> String {
    match event.fields.get("_id") {
        Some(Value::String(s)) => s.clone(),
        _ => event.id.to_string(),
    }
}

/// The event as an Elasticsearch `_source` document (ECS names).
pub fn to_source(event: &Event) -> Value {
    let mut doc = event.fields.clone();
    doc.remove("_index");
    doc.remove("_id");
    doc.insert("@timestamp".into(), Value::String(event.ts.to_rfc3339()));
    doc.insert("message".into(), Value::String(event.message.clone()));
    let mut put = |path: &str, value: &str| {
        if !value.is_empty() {
            insert_path(&mut doc, path, Value::String(value.to_string()));
        }
    };
    put("log.level", event.level.map_or("", Level::as_str));
    put("service.name", &event.service);
    put("host.name", &event.node);
    put("container.name", &event.container_name);
    put("container.id", &event.container_id);
    put("container.image.name", &event.image);
    put("stream", event.stream.map_or("", |s| s.as_str()));
    if event.kind != shiplog_core::Kind::Log {
        put("kind", event.kind.as_str());
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn maps_ecs_and_flat_documents() {
        let src = json!({"@timestamp": "2026-11-22T03:00:00.5Z", "message": "boom",
            "log": {"level": "ERROR", "logger": "x"}, "service": {"name": "web"},
            "host.name": "n1", "container": {"name": "c1", "id": "abc"}, "user": {"id": 7},
            "http.status": 500});
        let bytes = serde_json::to_vec(&src).unwrap();
        let (e, id) = to_event("app", DocId::Given("doc-1"), &bytes, Timestamp(1)).unwrap();
        assert_eq!(
            e.ts,
            Timestamp::parse_rfc3339("2026-11-22T03:00:00.5Z").unwrap()
        );
        assert_eq!(e.message, "boom");
        assert_eq!(e.level, Some(Level::Error));
        assert_eq!((e.service.as_str(), e.node.as_str()), ("web", "n1"));
        assert_eq!(
            (e.container_name.as_str(), e.container_id.as_str()),
            ("c1", "abc")
        );
        assert_eq!(
            Value::Object(e.fields.clone()),
            json!({"log": {"logger": "x"}, "user": {"id": 7}, "http": {"status": 500},
                "_index": "app", "_id": "doc-1"})
        );
        assert_eq!(id, "doc-1");
        assert_eq!(id_of(&e), "doc-1");
        let back = to_source(&e);
        assert_eq!(back["log"], json!({"logger": "x", "level": "error"}));
        assert_eq!(back["service"]["name"], "web");
        assert!(back.get("_index").is_none());

        let flat = br#"{"ts": 1700000000123, "msg": "hi", "level": "loud", "host": "h"}"#;
        let (e, _) = to_event("i", DocId::Auto(0), flat, Timestamp(1)).unwrap();
        assert_eq!(e.ts, Timestamp(1_700_000_000_123_000_000));
        assert_eq!(e.level, None);
        assert_eq!(
            e.fields["level"], "loud",
            "an unknown level stays in fields"
        );
        assert_eq!(e.node, "h");
    }

    #[test]
    fn ids_are_given_hex_hashed_or_derived_from_content() {
        let hex = "0123456789abcdef0123456789abcdef";
        let (e, id) = to_event("i", DocId::Given(hex), b"{}", Timestamp(1)).unwrap();
        assert_eq!(e.id.to_string(), hex);
        assert_eq!(id, hex);
        assert!(e.fields.get("_id").is_none());
        let a = to_event("i", DocId::Auto(0), b"{}", Timestamp(1))
            .unwrap()
            .0;
        let b = to_event("i", DocId::Auto(0), b"{}", Timestamp(2))
            .unwrap()
            .0;
        let c = to_event("i", DocId::Auto(1), b"{}", Timestamp(1))
            .unwrap()
            .0;
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn bad_sources_say_why() {
        let err = to_event("i", DocId::Auto(0), b"[1]", Timestamp(1)).unwrap_err();
        assert!(err.contains("must be a JSON object, got an array"), "{err}");
        let err = to_event("i", DocId::Auto(0), b"{\"a\":", Timestamp(1)).unwrap_err();
        assert!(
            err.starts_with("failed to parse the document source"),
            "{err}"
        );
        let err = to_event(
            "i",
            DocId::Auto(0),
            br#"{"@timestamp":"yesterday"}"#,
            Timestamp(1),
        )
        .unwrap_err();
        assert!(err.contains("[@timestamp]"), "{err}");
    }
}
