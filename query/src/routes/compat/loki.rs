//! `POST /loki/api/v1/push`: Grafana Loki's push API in its JSON form, as Promtail, Grafana
//! Alloy, Fluent Bit's `loki` output and logging libraries send it.
//!
//! ```json
//! {"streams": [{"stream": {"job": "web", "level": "error"},
//!               "values": [["1700000000000000000", "line"],
//!                          ["1700000000000000001", "line", {"trace_id": "abc"}]]}]}
//! ```
//!
//! Each value becomes one log event: the nanosecond timestamp string is `ts`, the line is
//! the message, every stream label and the entry's structured metadata go to `fields`
//! (labels stay there, as Loki's queries select by them), and some are also read into the
//! event's own fields:
//!
//! | label (first found wins) | event |
//! |---|---|
//! | `service_name`, `service`, `job` | `service` |
//! | `host`, `hostname`, `instance` | `node` |
//! | `level`, `detected_level`, `severity` (a level word) | `level` |
//! | `container`, `container_name`; `container_id` | `container_name`; `container_id` |
//! | `stream` (`stdout`/`stderr`) | `stream` |
//!
//! The body may be gzip-compressed. The push is all-or-nothing: any malformed stream or
//! entry refuses the whole request with 400 naming it, and nothing is stored; success is
//! 204 No Content once everything is durable. The protobuf (snappy) form is refused with
//! 415. The id of each event is a hash of its labels, time, line and its order among
//! entries of the stream with the same time, so a resent push is not stored twice.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use shiplog_core::{Event, EventId, Level, Stream, Timestamp};

use super::fields::insert_path;
use super::{body, check_count, store};
use crate::error::ApiError;
use crate::state::AppState;

/// Accepts one push; 204 once it is durable.
pub async fn push(State(state): State<AppState>, headers: HeaderMap, raw: Body) -> Response {
    match run(&state, &headers, raw).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run(state: &AppState, headers: &HeaderMap, raw: Body) -> Result<(), ApiError> {
    match body::media_type(headers).as_str() {
        "application/json" => {}
        "application/x-protobuf" | "application/protobuf" => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the protobuf (snappy) form of the Loki push API is not supported: send \
                 application/json (for Promtail or Alloy, use the JSON push or the OTLP endpoint /v1/logs)",
            ));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content-type '{other}' is not supported for Loki push: send application/json"
                ),
            ));
        }
    }
    let bytes = body::read(state, headers, raw).await?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    let events = to_events(&value, Timestamp::now())?;
    check_count(state, events.len())?;
    store(state, events).await?;
    Ok(())
}

fn bad(message: String) -> ApiError {
    ApiError::bad_request("bad_push", message)
}

/// Maps a whole push body to events, or names the first thing wrong in it.
pub fn to_events(body: &Value, received: Timestamp) -> Result<Vec<Event>, ApiError> {
    let streams = body
        .get("streams")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("body must be an object with a \"streams\" array".into()))?;
    let mut events = Vec::new();
    for (si, stream) in streams.iter().enumerate() {
        let at = format!("streams[{si}]");
        let labels = match stream.get("stream") {
            Some(Value::Object(m)) => m,
            None => &Map::new(),
            Some(other) => {
                return Err(bad(format!(
                    "{at}.stream must be an object of labels, got {other}"
                )));
            }
        };
        for (k, v) in labels {
            if !v.is_string() {
                return Err(bad(format!(
                    "{at}.stream label '{k}' must be a string, got {v}"
                )));
            }
        }
        let mut sorted: Vec<(&String, &Value)> = labels.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let label_key = serde_json::to_vec(&sorted).unwrap_or_default();
        let values = stream
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                bad(format!(
                    "{at}.values must be an array of [\"<ns>\", \"line\"]"
                ))
            })?;
        let mut last_ts: Option<Timestamp> = None;
        let mut seq = 0u32;
        for (vi, entry) in values.iter().enumerate() {
            let at = format!("{at}.values[{vi}]");
            let parts = entry
                .as_array()
                .filter(|a| a.len() == 2 || a.len() == 3)
                .ok_or_else(|| {
                    bad(format!(
                        "{at} must be [\"<unix ns>\", \"line\"] or [\"<unix ns>\", \"line\", {{metadata}}]"
                    ))
                })?;
            let ts = parse_ns(&parts[0]).map_err(|e| bad(format!("{at}: {e}")))?;
            let line = parts[1]
                .as_str()
                .ok_or_else(|| bad(format!("{at}: the line must be a string, got {}", parts[1])))?;
            let metadata = match parts.get(2) {
                None => None,
                Some(Value::Object(m)) => Some(m),
                Some(other) => {
                    return Err(bad(format!(
                        "{at}: structured metadata must be an object, got {other}"
                    )));
                }
            };
            seq = if last_ts == Some(ts) { seq + 1 } else { 0 };
            last_ts = Some(ts);
            let mut e = to_event(labels, metadata, ts, line, received);
            e.id = EventId::for_content(&[
                b"loki",
                &label_key,
                &ts.as_nanos().to_le_bytes(),
                &seq.to_le_bytes(),
                line.as_bytes(),
            ]);
            events.push(e);
        }
    }
    Ok(events)
}

fn parse_ns(v: &Value) -> Result<Timestamp, String> {
    let n = match v {
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    n.map(Timestamp).ok_or_else(|| {
        format!("timestamp {v} is not a string of nanoseconds since 1970 (before the year 2262)")
    })
}

fn label<'a>(labels: &'a Map<String, Value>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| {
        labels
            .get(*n)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    })
}

fn to_event(
    labels: &Map<String, Value>,
    metadata: Option<&Map<String, Value>>,
    ts: Timestamp,
    line: &str,
    received: Timestamp,
) -> Event {
    let mut e = Event::log(ts, line);
    e.received = Some(received);
    let mut all = labels.clone();
    if let Some(m) = metadata {
        all.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    e.service = label(&all, &["service_name", "service", "job"])
        .unwrap_or("")
        .to_string();
    e.node = label(&all, &["host", "hostname", "instance"])
        .unwrap_or("")
        .to_string();
    e.level = ["level", "detected_level", "severity"]
        .iter()
        .find_map(|n| all.get(*n).and_then(Value::as_str).and_then(Level::parse));
    e.container_name = label(&all, &["container", "container_name"])
        .unwrap_or("")
        .to_string();
    e.container_id = label(&all, &["container_id"]).unwrap_or("").to_string();
    e.stream = match label(&all, &["stream"]) {
        Some("stdout") => Some(Stream::Stdout),
        Some("stderr") => Some(Stream::Stderr),
        _ => None,
    };
    let mut fields = Map::new();
    for (k, v) in all {
        insert_path(&mut fields, &k, v);
    }
    e.fields = fields;
    e
}
