//! The query API's answers as the TUI reads them.
//!
//! Decoding is tolerant on purpose: unknown keys are ignored and most keys may be missing or
//! `null`, so a newer server (or one of the APIs still being built) does not break the UI.
//! Events are kept as JSON values next to the few keys the tables show, so the detail pane
//! can print every field the server sent, including ones this build does not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use shiplog_core::{Event, Level, Timestamp};

/// A value that may be `null` or missing: read as its default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A timestamp that may be missing, `null` or not parseable: `None` then.
fn lenient_ts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref()
        .and_then(Value::as_str)
        .and_then(|s| Timestamp::parse_rfc3339(s).ok()))
}

/// The `Content-Type` of an answer that should be a live tail's event stream, when it is
/// something else (a proxy's page, a URL that is not a shiplog node).
pub fn not_an_event_stream(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let content_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (!content_type.starts_with("text/event-stream")).then(|| content_type.to_string())
}

/// Reads an [`Event`] from JSON, dropping keys this build does not know (the core type
/// refuses unknown keys, which is right for ingest but not for a viewer of newer servers).
pub fn lenient_event(value: Value) -> Result<Event, serde_json::Error> {
    let mut value = value;
    // Each round removes the one key serde named; a handful of new keys at most.
    for _ in 0..32 {
        match serde_json::from_value::<Event>(value.clone()) {
            Ok(event) => return Ok(event),
            Err(e) => {
                let text = e.to_string();
                let unknown = text
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_string);
                match (unknown, value.as_object_mut()) {
                    (Some(key), Some(map)) if map.contains_key(&key) => {
                        map.remove(&key);
                    }
                    _ => return Err(e),
                }
            }
        }
    }
    serde_json::from_value::<Event>(value)
}

/// One hit of a search or a prediction listing: the keys the tables show, plus the whole
/// record for the detail pane.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Source time, when the hit has a readable one.
    pub ts: Option<Timestamp>,
    /// `log`, `prediction`, `metric`, `registration`.
    pub kind: String,
    /// Service.
    pub service: String,
    /// Container name.
    pub container_name: String,
    /// Node.
    pub node: String,
    /// Severity.
    pub level: Option<Level>,
    /// The text.
    pub message: String,
    /// Predictions: model name.
    pub model: String,
    /// Predictions: model version.
    pub model_version: String,
    /// Predictions: request id.
    pub request_id: String,
    /// Predictions: latency in milliseconds.
    pub latency_ms: Option<f64>,
    /// Predictions: `ok`, `error`, ...
    pub status: String,
    /// Everything the server sent.
    pub raw: Value,
}

fn str_at(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

impl Hit {
    /// Picks the shown keys out of a JSON record; missing ones are empty.
    pub fn from_value(raw: Value) -> Hit {
        let ts = raw
            .get("ts")
            .and_then(Value::as_str)
            .and_then(|s| Timestamp::parse_rfc3339(s).ok());
        let level = raw
            .get("level")
            .and_then(Value::as_str)
            .and_then(Level::parse);
        Hit {
            ts,
            kind: str_at(&raw, "kind"),
            service: str_at(&raw, "service"),
            container_name: str_at(&raw, "container_name"),
            node: str_at(&raw, "node"),
            level,
            message: str_at(&raw, "message"),
            model: str_at(&raw, "model"),
            model_version: str_at(&raw, "model_version"),
            request_id: str_at(&raw, "request_id"),
            latency_ms: raw.get("latency_ms").and_then(Value::as_f64),
            status: str_at(&raw, "status"),
            raw,
        }
    }
}

/// `GET /api/v1/search` and `GET /api/v1/predictions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SearchPage {
    /// Hits, newest first, as the server sent them.
    #[serde(deserialize_with = "nullable")]
    pub hits: Vec<Value>,
    /// Matches in the window.
    #[serde(deserialize_with = "nullable")]
    pub total: u64,
    /// Whether `total` is exact.
    #[serde(deserialize_with = "nullable")]
    pub total_exact: bool,
    /// Cursor of the next page.
    pub next_cursor: Option<String>,
    /// Server time spent.
    #[serde(deserialize_with = "nullable")]
    pub took_ms: u64,
}

/// One bucket of a date histogram.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Bucket {
    /// Bucket start.
    #[serde(deserialize_with = "lenient_ts")]
    pub ts: Option<Timestamp>,
    /// Events in it.
    #[serde(deserialize_with = "nullable")]
    pub count: u64,
}

/// The `date_histogram` the Search view asks `POST /api/v1/aggregate` for.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Histogram {
    /// Bucket width.
    #[serde(deserialize_with = "nullable")]
    pub interval_ms: i64,
    /// Every bucket of the window, oldest first.
    #[serde(deserialize_with = "nullable")]
    pub buckets: Vec<Bucket>,
}

/// A published or exposed port.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Port {
    /// Container port.
    #[serde(deserialize_with = "nullable")]
    pub private: u16,
    /// Host port, when published.
    pub public: Option<u16>,
    /// `tcp` or `udp`.
    #[serde(deserialize_with = "nullable")]
    pub proto: String,
}

/// One container of a service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Instance {
    /// Full container id.
    #[serde(deserialize_with = "nullable")]
    pub container_id: String,
    /// Container name.
    #[serde(deserialize_with = "nullable")]
    pub container_name: String,
    /// Node it runs on.
    #[serde(deserialize_with = "nullable")]
    pub node: String,
    /// Image reference.
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// Lifecycle state.
    #[serde(deserialize_with = "nullable")]
    pub state: String,
    /// Health check status, when it has one.
    pub health: Option<String>,
    /// Ports.
    #[serde(deserialize_with = "nullable")]
    pub ports: Vec<Port>,
    /// When it entered its state.
    #[serde(deserialize_with = "lenient_ts")]
    pub since: Option<Timestamp>,
}

/// A service and its instances.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Service {
    /// Service name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Its containers.
    #[serde(deserialize_with = "nullable")]
    pub instances: Vec<Instance>,
}

/// `GET /api/v1/services`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServiceList {
    /// Services by name.
    #[serde(deserialize_with = "nullable")]
    pub services: Vec<Service>,
}

/// One lifecycle change.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Transition {
    /// When.
    #[serde(deserialize_with = "lenient_ts")]
    pub ts: Option<Timestamp>,
    /// Container name.
    #[serde(deserialize_with = "nullable")]
    pub container_name: String,
    /// Node.
    #[serde(deserialize_with = "nullable")]
    pub node: String,
    /// The new state.
    #[serde(deserialize_with = "nullable")]
    pub state: String,
    /// Exit code of a container that died.
    pub exit_code: Option<i64>,
}

/// `GET /api/v1/services/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServiceDetail {
    /// Service name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Its containers.
    #[serde(deserialize_with = "nullable")]
    pub instances: Vec<Instance>,
    /// Lifecycle changes, newest first.
    #[serde(deserialize_with = "nullable")]
    pub history: Vec<Transition>,
}

/// One metric series of one container.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Series {
    /// Container name.
    #[serde(deserialize_with = "nullable")]
    pub container_name: String,
    /// Full container id.
    #[serde(deserialize_with = "nullable")]
    pub container_id: String,
    /// Service.
    #[serde(deserialize_with = "nullable")]
    pub service: String,
    /// Metric name.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// `[bucket start, average]`, oldest first.
    #[serde(deserialize_with = "nullable")]
    pub points: Vec<(Timestamp, f64)>,
}

/// `GET /api/v1/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MetricsBody {
    /// One series per container and metric.
    #[serde(deserialize_with = "nullable")]
    pub series: Vec<Series>,
    /// Bucket width used.
    #[serde(deserialize_with = "nullable")]
    pub step_ms: i64,
}

/// One alert instance.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Alert {
    /// Rule name.
    #[serde(deserialize_with = "nullable")]
    pub rule: String,
    /// `critical`, `warning`, ...
    #[serde(deserialize_with = "nullable")]
    pub severity: String,
    /// `pending` or `firing`.
    #[serde(deserialize_with = "nullable")]
    pub state: String,
    /// The group this instance is for (`{"service": "api"}`).
    #[serde(deserialize_with = "nullable")]
    pub group: BTreeMap<String, Value>,
    /// The value that crossed the threshold.
    pub value: Option<f64>,
    /// The threshold.
    pub threshold: Option<f64>,
    /// When it entered its state.
    #[serde(deserialize_with = "lenient_ts")]
    pub since: Option<Timestamp>,
    /// Labels.
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, Value>,
    /// Annotations (summary, description, ...).
    #[serde(deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, Value>,
    /// Whether a silence covers it.
    #[serde(deserialize_with = "nullable")]
    pub silenced: bool,
    /// Notification delivery: `ok` or `pending`.
    #[serde(deserialize_with = "nullable")]
    pub delivery: String,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct AlertList {
    /// Firing and pending alerts.
    #[serde(deserialize_with = "nullable")]
    pub alerts: Vec<Alert>,
}

/// One matcher of a silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value (or regex).
    pub value: String,
    /// Whether `value` is a regex.
    pub is_regex: bool,
}

/// `POST /api/v1/silences` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SilenceRequest {
    /// What it silences: every matcher must match.
    pub matchers: Vec<Matcher>,
    /// RFC 3339 end.
    pub ends_at: String,
    /// Why.
    pub comment: String,
    /// Who: always `tui`.
    pub created_by: String,
}

/// `POST /api/v1/silences` answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SilenceCreated {
    /// The new silence's id.
    #[serde(deserialize_with = "nullable")]
    pub id: String,
}

/// One time bucket of a model's summary.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ModelPoint {
    /// Bucket start.
    #[serde(deserialize_with = "lenient_ts")]
    pub ts: Option<Timestamp>,
    /// Predictions in it.
    #[serde(deserialize_with = "nullable")]
    pub count: u64,
    /// Failed predictions in it.
    #[serde(deserialize_with = "nullable")]
    pub errors: u64,
    /// Median latency, ms.
    pub latency_p50: Option<f64>,
    /// 95th percentile latency, ms.
    pub latency_p95: Option<f64>,
}

/// One model version's numbers over the window.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ModelSummary {
    /// Model name.
    #[serde(deserialize_with = "nullable")]
    pub model: String,
    /// Version.
    #[serde(deserialize_with = "nullable")]
    pub model_version: String,
    /// Predictions in the window.
    #[serde(deserialize_with = "nullable")]
    pub count: u64,
    /// Predictions per second over the whole window, as the server counts them (the view
    /// shows [`rate_per_s`](crate::views::predictions::rate_per_s) instead).
    #[serde(deserialize_with = "nullable")]
    pub rate_per_s: f64,
    /// Failed share, 0 to 1.
    #[serde(deserialize_with = "nullable")]
    pub error_ratio: f64,
    /// Median latency, ms.
    pub latency_p50: Option<f64>,
    /// 95th percentile latency, ms.
    pub latency_p95: Option<f64>,
    /// The same per time bucket, oldest first.
    #[serde(deserialize_with = "nullable")]
    pub series: Vec<ModelPoint>,
}

/// `GET /api/v1/predictions/summary`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PredictionSummary {
    /// One entry per model and version.
    #[serde(deserialize_with = "nullable")]
    pub models: Vec<ModelSummary>,
    /// Window end.
    #[serde(deserialize_with = "lenient_ts")]
    pub until: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_nulls_are_tolerated() {
        let list: AlertList = serde_json::from_str(
            r#"{"alerts":[{"rule":"errors","severity":"critical","state":"firing",
            "group":{"service":"api"},"value":0.31,"threshold":0.05,
            "since":"2026-11-22T06:00:00Z","labels":null,"new_key":[1,2],
            "silenced":false,"delivery":"ok"}],"other":true}"#,
        )
        .unwrap();
        let a = &list.alerts[0];
        assert_eq!((a.rule.as_str(), a.value), ("errors", Some(0.31)));
        assert!(a.labels.is_empty());
        assert!(a.since.is_some());
        let page: SearchPage = serde_json::from_str(r#"{"hits":null,"total":3}"#).unwrap();
        assert_eq!((page.hits.len(), page.total), (0, 3));
        let summary: PredictionSummary = serde_json::from_str(
            r#"{"models":[],"since":"2026-11-22T06:00:00Z","until":"2026-11-22T07:00:00Z",
            "bucket_s":30.0,"truncated":false}"#,
        )
        .unwrap();
        assert_eq!(
            summary.until,
            Timestamp::parse_rfc3339("2026-11-22T07:00:00Z").ok()
        );
    }

    #[test]
    fn lenient_event_drops_keys_it_does_not_know() {
        let v = serde_json::json!({"message": "hi", "model": "m", "latency_ms": 3.5,
            "service": "api"});
        let e = lenient_event(v).unwrap();
        assert_eq!((e.message.as_str(), e.service.as_str()), ("hi", "api"));
        assert!(lenient_event(serde_json::json!({"message": 3})).is_err());
    }

    #[test]
    fn hits_pick_prediction_keys() {
        let h = Hit::from_value(serde_json::json!({"ts": "2026-11-22T06:00:00Z",
            "kind": "prediction", "model": "resnet", "model_version": "v3",
            "request_id": "r-1", "latency_ms": 12.5, "status": "ok", "level": "info"}));
        assert_eq!(h.model, "resnet");
        assert_eq!(h.latency_ms, Some(12.5));
        assert_eq!(h.level, Some(Level::Info));
        assert!(h.ts.is_some());
    }
}
