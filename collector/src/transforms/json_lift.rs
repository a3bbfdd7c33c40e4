//! JSON lift: a line that is one JSON object (structured loggers) has its keys lifted into
//! the event's `fields`, its message, level and time read from the usual keys.
//!
//! - message: the string under `msg` or `message` (Vector, zap, logrus, bunyan, pino), else
//!   the line as written. Nothing is lost either way: every key is in `fields`.
//! - level: the string under `level`, `severity` or `lvl`.
//! - time: `ts`, `time` or `@timestamp` (RFC 3339, or epoch seconds, milliseconds,
//!   microseconds or nanoseconds told apart by size) is written normalised to
//!   `fields._ts`. The event's own time stays Docker's, so the lines of one container keep
//!   the order the container wrote them in even when the program's clock disagrees.

use serde_json::{Map, Value};
use shiplog_core::{Level, Timestamp};

/// Longest line still tried as a JSON object.
pub const MAX_JSON_LINE: usize = 64 * 1024;
/// Keys read as the message, in order of preference.
const MESSAGE_KEYS: [&str; 2] = ["msg", "message"];
/// Keys read as the level, in order of preference.
const LEVEL_KEYS: [&str; 3] = ["level", "severity", "lvl"];
/// Keys read as the program's own time, in order of preference.
const TIME_KEYS: [&str; 3] = ["ts", "time", "@timestamp"];
/// Field holding the program's time, normalised to RFC 3339.
pub const SOURCE_TIME_FIELD: &str = "_ts";

/// What a JSON line gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifted {
    /// Every key of the object.
    pub fields: Map<String, Value>,
    /// The `msg` / `message` text, when there is one.
    pub message: Option<String>,
    /// The stated level, when it is one we know.
    pub level: Option<Level>,
    /// The program's own time, when it could be read.
    pub time: Option<Timestamp>,
}

/// Reads `line` as a JSON object; `None` when it is not one (or too long to try).
pub fn lift(line: &str) -> Option<Lifted> {
    let trimmed = line.trim();
    if trimmed.len() > MAX_JSON_LINE || !trimmed.starts_with('{') || !trimmed.ends_with('}') {
        return None;
    }
    let fields: Map<String, Value> = serde_json::from_str(trimmed).ok()?;
    let string_at = |keys: &[&str]| keys.iter().find_map(|k| fields.get(*k)?.as_str());
    let message = string_at(&MESSAGE_KEYS).map(str::to_string);
    let level = string_at(&LEVEL_KEYS).and_then(Level::parse);
    let time = TIME_KEYS
        .iter()
        .find_map(|k| fields.get(*k))
        .and_then(Timestamp::from_json);
    Some(Lifted {
        fields,
        message,
        level,
        time,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_message_level_and_time() {
        let got = lift(r#"{"level":"warning","msg":"slow","ts":1700000000.5,"n":1}"#).unwrap();
        assert_eq!(got.message.as_deref(), Some("slow"));
        assert_eq!(got.level, Some(Level::Warn));
        assert_eq!(got.time, Some(Timestamp(1_700_000_000_500_000_000)));
        assert_eq!(got.fields["n"], 1);
        assert_eq!(got.fields["msg"], "slow", "every key is kept");

        let got = lift(r#"{"message":"m","severity":"ERROR","@timestamp":"2026-11-22T03:09:44Z"}"#)
            .unwrap();
        assert_eq!(got.message.as_deref(), Some("m"));
        assert_eq!(got.level, Some(Level::Error));
        assert_eq!(
            got.time,
            Some(Timestamp::parse_rfc3339("2026-11-22T03:09:44Z").unwrap())
        );
        let millis = lift(r#"{"time":1700000000123}"#).unwrap();
        assert_eq!(millis.time, Some(Timestamp(1_700_000_000_123_000_000)));
        let nanos = lift(r#"{"time":1700000000123456789}"#).unwrap();
        assert_eq!(nanos.time, Some(Timestamp(1_700_000_000_123_456_789)));
        let micros = lift(r#"{"time":1700000000123456}"#).unwrap();
        assert_eq!(micros.time, Some(Timestamp(1_700_000_000_123_456_000)));
    }

    #[test]
    fn odd_values_are_left_alone() {
        let got = lift(r#"{"msg":42,"level":"loud","ts":"yesterday"}"#).unwrap();
        assert_eq!(got.message, None, "a non-string msg is not the message");
        assert_eq!(got.level, None);
        assert_eq!(got.time, None);
        assert_eq!(lift("not json"), None);
        assert_eq!(lift("[1,2]"), None);
        assert_eq!(lift("{broken}"), None);
        assert_eq!(lift(r#"{"ts":-1}"#).unwrap().time, None);
    }

    proptest! {
        /// No input panics, and whatever comes back lifted kept every key of the object.
        #[test]
        fn lifting_arbitrary_text_never_panics(line in any::<String>()) {
            let _ = lift(&line);
            let _ = lift(&format!("{{{line}}}"));
        }

        #[test]
        fn lifting_keeps_every_key(
            pairs in proptest::collection::btree_map("[a-z@_]{1,6}", any::<i64>(), 0..8),
            msg in any::<String>(),
        ) {
            let mut object: Map<String, Value> =
                pairs.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect();
            object.insert("msg".into(), Value::String(msg.clone()));
            let line = Value::Object(object.clone()).to_string();
            let got = lift(&line).unwrap();
            prop_assert_eq!(got.fields, object);
            prop_assert_eq!(got.message, Some(msg));
        }
    }
}
