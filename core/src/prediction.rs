//! Reading a model server's JSON record as a prediction.
//!
//! Model servers name things differently, so a [`PredictionMapping`] lists, for each
//! prediction key, the JSON keys it may come under, first match wins. The defaults cover
//! the usual spellings: `model`; `model_version` or `version`; `request_id` or `id`;
//! `latency_ms`; `input` or `features`; `output` or `prediction`; `status`.
//!
//! A record with every required key (by default `model` and `request_id`) becomes a
//! `prediction` event, its mapped keys moved out of `fields` into the event's own keys. A
//! record that lacks one, or holds one of the wrong type, is kept as a `log` event with
//! every key still in `fields` and the reason in `fields._prediction_error`: it is counted
//! and reported as a malformed prediction, and never dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Event, Kind, Level};
use crate::timestamp::Timestamp;

/// Field naming why a record could not be read as a prediction.
pub const PREDICTION_ERROR_FIELD: &str = "_prediction_error";

/// A prediction key an event can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionKey {
    /// `model`
    Model,
    /// `model_version`
    ModelVersion,
    /// `request_id`
    RequestId,
    /// `latency_ms`
    LatencyMs,
    /// `input`
    Input,
    /// `output`
    Output,
    /// `status`
    Status,
}

impl PredictionKey {
    /// Every key.
    pub const ALL: [PredictionKey; 7] = [
        PredictionKey::Model,
        PredictionKey::ModelVersion,
        PredictionKey::RequestId,
        PredictionKey::LatencyMs,
        PredictionKey::Input,
        PredictionKey::Output,
        PredictionKey::Status,
    ];

    /// The key's name on the event.
    pub fn name(self) -> &'static str {
        match self {
            PredictionKey::Model => "model",
            PredictionKey::ModelVersion => "model_version",
            PredictionKey::RequestId => "request_id",
            PredictionKey::LatencyMs => "latency_ms",
            PredictionKey::Input => "input",
            PredictionKey::Output => "output",
            PredictionKey::Status => "status",
        }
    }
}

/// Which JSON keys feed which prediction key, and which keys a record must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictionMapping {
    /// Keys read as the model name.
    pub model: Vec<String>,
    /// Keys read as the model version.
    pub model_version: Vec<String>,
    /// Keys read as the request id.
    pub request_id: Vec<String>,
    /// Keys read as the latency in milliseconds (a number, or a string holding one).
    pub latency_ms: Vec<String>,
    /// Keys read as the model's input (any JSON).
    pub input: Vec<String>,
    /// Keys read as the model's output (any JSON).
    pub output: Vec<String>,
    /// Keys read as the outcome (`ok`, `error`, ...).
    pub status: Vec<String>,
    /// Keys without which a record is a malformed prediction.
    pub required: Vec<PredictionKey>,
}

impl Default for PredictionMapping {
    fn default() -> Self {
        let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect();
        PredictionMapping {
            model: keys(&["model"]),
            model_version: keys(&["model_version", "version"]),
            request_id: keys(&["request_id", "id"]),
            latency_ms: keys(&["latency_ms"]),
            input: keys(&["input", "features"]),
            output: keys(&["output", "prediction"]),
            status: keys(&["status"]),
            required: vec![PredictionKey::Model, PredictionKey::RequestId],
        }
    }
}

/// Why a record is not a well-formed prediction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedPrediction(pub String);

/// Longest string accepted for model, version, request id and status (they are keyword
/// terms; a longer one is a mapping mistake, not an id).
pub const MAX_KEYWORD_BYTES: usize = 1024;

impl PredictionMapping {
    fn aliases(&self, key: PredictionKey) -> &[String] {
        match key {
            PredictionKey::Model => &self.model,
            PredictionKey::ModelVersion => &self.model_version,
            PredictionKey::RequestId => &self.request_id,
            PredictionKey::LatencyMs => &self.latency_ms,
            PredictionKey::Input => &self.input,
            PredictionKey::Output => &self.output,
            PredictionKey::Status => &self.status,
        }
    }

    /// Checks the mapping itself: every key needs at least one alias, and a required key
    /// must have aliases to be found under.
    pub fn validate(&self) -> Result<(), String> {
        for key in PredictionKey::ALL {
            let aliases = self.aliases(key);
            if aliases.iter().any(|a| a.is_empty()) {
                return Err(format!("{}: an empty key name", key.name()));
            }
            if aliases.is_empty() && self.required.contains(&key) {
                return Err(format!(
                    "{} is required but lists no keys to read it from",
                    key.name()
                ));
            }
        }
        Ok(())
    }

    /// Turns `event` (whose `fields` hold a parsed JSON record) into a prediction. On
    /// error the event is left a log with every key in `fields`, plus the reason in
    /// `fields._prediction_error`.
    pub fn apply(&self, event: &mut Event) -> Result<(), MalformedPrediction> {
        let mut found: Vec<(PredictionKey, &str)> = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        for key in PredictionKey::ALL {
            let hit = self
                .aliases(key)
                .iter()
                .find(|a| event.fields.get(a.as_str()).is_some_and(|v| !v.is_null()));
            match hit {
                Some(alias) => {
                    if let Err(why) = check(key, &event.fields[alias.as_str()]) {
                        problems.push(format!("{} ('{alias}') {why}", key.name()));
                    }
                    found.push((key, alias.as_str()));
                }
                None if self.required.contains(&key) => {
                    problems.push(format!("missing {}", key.name()));
                }
                None => {}
            }
        }
        if !problems.is_empty() {
            let reason = problems.join("; ");
            event.fields.insert(
                PREDICTION_ERROR_FIELD.to_string(),
                Value::String(reason.clone()),
            );
            return Err(MalformedPrediction(reason));
        }
        let found: Vec<(PredictionKey, String)> =
            found.into_iter().map(|(k, a)| (k, a.to_string())).collect();
        for (key, alias) in found {
            let value = event.fields.remove(&alias).unwrap_or(Value::Null);
            match key {
                PredictionKey::Model => event.model = text(value),
                PredictionKey::ModelVersion => event.model_version = text(value),
                PredictionKey::RequestId => event.request_id = text(value),
                PredictionKey::Status => event.status = text(value),
                PredictionKey::LatencyMs => event.latency_ms = number(&value),
                PredictionKey::Input => event.input = Some(value),
                PredictionKey::Output => event.output = Some(value),
            }
        }
        event.kind = Kind::Prediction;
        if event.level.is_none()
            && event
                .status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("error"))
        {
            event.level = Some(Level::Error);
        }
        Ok(())
    }

    /// Builds an event from one JSON record sent straight to the prediction endpoint:
    /// the time from `ts`/`time`/`timestamp`/`@timestamp` (else `received`), `service`,
    /// `node`, `message` or `msg` when present, every other key mapped as in
    /// [`PredictionMapping::apply`]. A malformed record comes back as the log event that
    /// keeps it, with the reason.
    pub fn event_from_record(
        &self,
        record: Map<String, Value>,
        received: Timestamp,
    ) -> (Event, Result<(), MalformedPrediction>) {
        let mut fields = record;
        let mut event = Event {
            received: Some(received),
            ..Event::default()
        };
        let time = ["ts", "time", "timestamp", "@timestamp"]
            .iter()
            .find_map(|k| {
                fields
                    .get(*k)
                    .and_then(Timestamp::from_json)
                    .map(|t| (*k, t))
            });
        event.ts = match time {
            Some((key, t)) => {
                fields.remove(key);
                t
            }
            None => received,
        };
        for (key, slot) in [
            ("service", &mut event.service),
            ("node", &mut event.node),
            ("container_name", &mut event.container_name),
            ("image", &mut event.image),
        ] {
            if let Some(Value::String(s)) = fields.get(key) {
                *slot = s.clone();
                fields.remove(key);
            }
        }
        for key in ["message", "msg"] {
            if let Some(Value::String(s)) = fields.get(key) {
                event.message = s.clone();
                fields.remove(key);
                break;
            }
        }
        if let Some(level) = fields
            .get("level")
            .and_then(Value::as_str)
            .and_then(Level::parse)
        {
            event.level = Some(level);
            fields.remove("level");
        }
        event.fields = fields;
        let outcome = self.apply(&mut event);
        if event.message.is_empty() {
            event.message = match &outcome {
                Ok(()) => summary(&event),
                Err(e) => format!("malformed prediction: {}", e.0),
            };
        }
        (event, outcome)
    }
}

/// A one-line message for a prediction that came without one, so it reads well in a tail.
pub fn summary(event: &Event) -> String {
    let mut s = format!(
        "prediction model={} request_id={}",
        event.model.as_deref().unwrap_or("-"),
        event.request_id.as_deref().unwrap_or("-")
    );
    if let Some(v) = &event.model_version {
        s.push_str(&format!(" version={v}"));
    }
    if let Some(st) = &event.status {
        s.push_str(&format!(" status={st}"));
    }
    if let Some(ms) = event.latency_ms {
        s.push_str(&format!(" latency_ms={ms}"));
    }
    s
}

fn check(key: PredictionKey, value: &Value) -> Result<(), String> {
    match key {
        PredictionKey::Input | PredictionKey::Output => Ok(()),
        PredictionKey::LatencyMs => match number(value) {
            Some(v) if v >= 0.0 => Ok(()),
            Some(_) => Err("is negative".into()),
            None => Err("is not a number".into()),
        },
        _ => match value {
            Value::String(s) if s.is_empty() => Err("is empty".into()),
            Value::String(s) if s.len() > MAX_KEYWORD_BYTES => {
                Err(format!("is longer than {MAX_KEYWORD_BYTES} bytes"))
            }
            Value::String(_) | Value::Number(_) => Ok(()),
            _ => Err("is not a string or a number".into()),
        },
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    let v = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn default_keys_and_their_aliases_make_a_prediction() {
        let m = PredictionMapping::default();
        let (e, outcome) = m.event_from_record(
            record(json!({
                "ts": "2026-11-22T10:00:00Z", "model": "churn", "version": 3,
                "id": "req-1", "latency_ms": "12.5", "features": {"customer_id": 123},
                "prediction": {"score": 0.9}, "status": "ok", "service": "scorer",
                "extra": true
            })),
            Timestamp(0),
        );
        outcome.unwrap();
        assert_eq!(e.kind, Kind::Prediction);
        assert_eq!(e.ts.to_rfc3339(), "2026-11-22T10:00:00.000000000Z");
        assert_eq!(e.model.as_deref(), Some("churn"));
        assert_eq!(e.model_version.as_deref(), Some("3"));
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(e.latency_ms, Some(12.5));
        assert_eq!(e.input, Some(json!({"customer_id": 123})));
        assert_eq!(e.output, Some(json!({"score": 0.9})));
        assert_eq!(e.status.as_deref(), Some("ok"));
        assert_eq!(e.service, "scorer");
        assert_eq!(
            e.fields,
            record(json!({"extra": true})),
            "mapped keys move out"
        );
        assert!(
            e.message.contains("model=churn request_id=req-1"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_record_missing_a_required_key_stays_a_log_with_the_reason() {
        let m = PredictionMapping::default();
        let (e, outcome) = m.event_from_record(
            record(json!({"model": "churn", "latency_ms": "slow", "output": 1})),
            Timestamp(5),
        );
        let why = outcome.unwrap_err();
        assert_eq!(e.kind, Kind::Log);
        assert_eq!(e.ts, Timestamp(5), "no time key: received time");
        assert_eq!(
            why.0,
            "missing request_id; latency_ms ('latency_ms') is not a number"
        );
        assert_eq!(e.fields["model"], "churn", "nothing is lost");
        assert_eq!(e.fields["latency_ms"], "slow");
        assert_eq!(e.fields[PREDICTION_ERROR_FIELD], why.0);
        assert!(e.model.is_none());
    }

    #[test]
    fn a_custom_mapping_reads_other_keys_and_requirements() {
        let m: PredictionMapping = serde_json::from_value(json!({
            "model": ["model_name"], "request_id": ["trace"], "output": ["y"],
            "required": ["model", "request_id", "output"]
        }))
        .unwrap();
        m.validate().unwrap();
        let mut e = Event {
            fields: record(json!({"model_name": "m", "trace": 77, "y": [1, 2], "model": "x"})),
            ..Event::default()
        };
        m.apply(&mut e).unwrap();
        assert_eq!(e.model.as_deref(), Some("m"));
        assert_eq!(e.request_id.as_deref(), Some("77"));
        assert_eq!(e.output, Some(json!([1, 2])));
        assert_eq!(e.fields["model"], "x", "not a key of this mapping");
        let mut e = Event {
            fields: record(json!({"model_name": "m", "trace": 1})),
            ..Event::default()
        };
        assert_eq!(m.apply(&mut e).unwrap_err().0, "missing output");
        let bad: PredictionMapping =
            serde_json::from_value(json!({"request_id": [], "required": ["request_id"]})).unwrap();
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("request_id is required")
        );
        assert!(
            serde_json::from_value::<PredictionMapping>(json!({"modle": ["m"]}))
                .unwrap_err()
                .to_string()
                .contains("modle")
        );
    }

    #[test]
    fn hostile_values_are_refused_not_stored_as_keywords() {
        let m = PredictionMapping::default();
        let long = "x".repeat(MAX_KEYWORD_BYTES + 1);
        for (rec, want) in [
            (
                json!({"model": long, "request_id": "r"}),
                "model ('model') is longer",
            ),
            (
                json!({"model": {"a": 1}, "request_id": "r"}),
                "is not a string or a number",
            ),
            (
                json!({"model": "", "request_id": "r"}),
                "model ('model') is empty",
            ),
            (
                json!({"model": "m", "request_id": "r", "latency_ms": -1}),
                "is negative",
            ),
            (
                json!({"model": "m", "request_id": null}),
                "missing request_id",
            ),
        ] {
            let why = m
                .event_from_record(record(rec), Timestamp(0))
                .1
                .unwrap_err();
            assert!(why.0.contains(want), "{}", why.0);
        }
    }

    #[test]
    fn an_error_status_marks_the_level() {
        let m = PredictionMapping::default();
        let (e, outcome) = m.event_from_record(
            record(json!({"model": "m", "request_id": "r", "status": "ERROR"})),
            Timestamp(0),
        );
        outcome.unwrap();
        assert_eq!(e.level, Some(Level::Error));
    }
}
