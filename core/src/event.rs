//! The one record type that flows through shiplog: [`Event`], with its [`Kind`].
//!
//! Its JSON form is the contract in DESIGN.md: field names here are part of the public API.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::id::EventId;
use crate::timestamp::Timestamp;

/// What sort of record an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A line a program wrote.
    #[default]
    Log,
    /// A model server's answer to one request.
    Prediction,
    /// One sample of a container metric.
    Metric,
    /// A change in a container's lifecycle (started, died, ...).
    Registration,
}

impl Kind {
    /// The lowercase name used in JSON and queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Log => "log",
            Kind::Prediction => "prediction",
            Kind::Metric => "metric",
            Kind::Registration => "registration",
        }
    }
}

/// A log severity, normalised from the many spellings programs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// trace
    Trace,
    /// debug
    Debug,
    /// info, notice
    Info,
    /// warn, warning
    Warn,
    /// error, err
    Error,
    /// fatal, critical, crit, alert, emerg, panic
    Fatal,
}

impl Level {
    /// The lowercase canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// Reads any common spelling of a level, in any case.
    pub fn parse(s: &str) -> Option<Level> {
        if s.len() > 8 {
            return None;
        }
        let lower = s.to_ascii_lowercase();
        Some(match lower.as_str() {
            "trace" | "trc" => Level::Trace,
            "debug" | "dbg" => Level::Debug,
            "info" | "inf" | "notice" | "information" => Level::Info,
            "warn" | "warning" | "wrn" => Level::Warn,
            "error" | "err" | "eror" => Level::Error,
            "fatal" | "critical" | "crit" | "alert" | "emerg" | "panic" | "severe" => Level::Fatal,
            _ => return None,
        })
    }

    /// Finds the level a plain-text log line announces near its start: an upper-case level
    /// word among the first tokens (`INFO`, `WARN`), or a bracketed or `level=` one in any
    /// case (`[error]`, `level=warn`). Lines with none give `None`.
    ///
    /// Crashes announce no level word, yet are errors: a Python traceback (`Traceback (most
    /// recent call last):`, joined or as its first line), a Java uncaught exception
    /// (`Exception in thread ...`), and a line that starts with an exception's name
    /// (`ValueError: ...`, `java.lang.IllegalStateException: ...`). Python logging's default
    /// format (`ERROR:root:...`) is read too.
    pub fn sniff(line: &str) -> Option<Level> {
        let start = line.trim_start();
        if start.starts_with("Traceback (most recent call last):")
            || start.starts_with("Exception in thread ")
        {
            return Some(Level::Error);
        }
        // The first 200 bytes (cut at a character boundary): a level word is near the start.
        let head = &line[..line.floor_char_boundary(200)];
        if let Some(first) = head.split_ascii_whitespace().next() {
            if let Some((word, _)) = first.split_once(':')
                && word.bytes().all(|c| c.is_ascii_uppercase())
                && let Some(level) = Level::parse(word)
            {
                return Some(level);
            }
            if first.ends_with(':') && names_an_exception(&first[..first.len() - 1]) {
                return Some(Level::Error);
            }
        }
        for raw in head.split_ascii_whitespace().take(8) {
            if let Some(v) = raw
                .strip_prefix("level=")
                .or_else(|| raw.strip_prefix("lvl="))
            {
                return Level::parse(v.trim_matches(|c: char| c == '"' || c == ','));
            }
            let bracketed = (raw.starts_with('[') && raw.ends_with(']'))
                || (raw.starts_with('<') && raw.ends_with('>'));
            let word = raw.trim_matches(|c: char| !c.is_ascii_alphabetic());
            if word.is_empty() {
                continue;
            }
            let upper = word.bytes().all(|c| c.is_ascii_uppercase());
            if (upper || bracketed || raw.ends_with(':'))
                && let Some(level) = Level::parse(word)
            {
                return Some(level);
            }
        }
        None
    }
}

/// Whether `word` reads as an exception class name: an identifier, maybe dotted, ending in
/// `Error` or `Exception` (`KeyError`, `java.io.IOException`).
fn names_an_exception(word: &str) -> bool {
    (word.ends_with("Error") || word.ends_with("Exception"))
        && word.len() > "Error".len()
        && word
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'$'))
        && word.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Level::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown level '{}': use trace, debug, info, warn, error or fatal",
                s.chars().take(32).collect::<String>()
            ))
        })
    }
}

/// Which output stream of a process a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Something noteworthy that happened to an event on its way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The source bytes were not valid UTF-8; invalid sequences were replaced with U+FFFD.
    InvalidUtf8,
    /// The line was longer than the configured cap and was cut.
    Truncated,
    /// The sender's `ts` was the Unix epoch (1970-01-01T00:00:00Z, what an unset clock
    /// reports), so the receive time stands in for it.
    EpochTime,
}

/// Where a container is in its lifecycle, as a registration reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationState {
    /// The container started (or was running when the collector listed it).
    Started,
    /// Its health check passes.
    Healthy,
    /// Its health check fails.
    Unhealthy,
    /// It was stopped (`docker stop`, after it died).
    Stopped,
    /// Its main process exited; `exit_code` says how.
    Died,
    /// The container was removed.
    Removed,
    /// It was paused.
    Paused,
    /// It was unpaused.
    Unpaused,
    /// The kernel killed a process of it for lack of memory.
    Oom,
    /// It was restarted (`docker restart`).
    Restarted,
    /// It was sent a signal (`docker kill`); it may keep running.
    Killed,
    /// Not a container: the list of containers running on `node` when the collector
    /// (re)connected, in `fields.containers`, so a catalog can drop ones that are gone.
    Snapshot,
}

impl RegistrationState {
    /// Every state, for parsing and documentation.
    pub const ALL: [RegistrationState; 12] = [
        RegistrationState::Started,
        RegistrationState::Healthy,
        RegistrationState::Unhealthy,
        RegistrationState::Stopped,
        RegistrationState::Died,
        RegistrationState::Removed,
        RegistrationState::Paused,
        RegistrationState::Unpaused,
        RegistrationState::Oom,
        RegistrationState::Restarted,
        RegistrationState::Killed,
        RegistrationState::Snapshot,
    ];

    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationState::Started => "started",
            RegistrationState::Healthy => "healthy",
            RegistrationState::Unhealthy => "unhealthy",
            RegistrationState::Stopped => "stopped",
            RegistrationState::Died => "died",
            RegistrationState::Removed => "removed",
            RegistrationState::Paused => "paused",
            RegistrationState::Unpaused => "unpaused",
            RegistrationState::Oom => "oom",
            RegistrationState::Restarted => "restarted",
            RegistrationState::Killed => "killed",
            RegistrationState::Snapshot => "snapshot",
        }
    }
}

impl fmt::Display for RegistrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container port, exposed and perhaps published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Port inside the container.
    pub private: u16,
    /// Host port it is published on; `null` when only exposed.
    #[serde(default)]
    pub public: Option<u16>,
    /// `tcp`, `udp` or `sctp`.
    #[serde(default = "default_proto")]
    pub proto: String,
    /// Host address it is published on (`0.0.0.0`, `::`, `127.0.0.1`); `null` when only
    /// exposed.
    #[serde(default)]
    pub host_ip: Option<String>,
}

fn default_proto() -> String {
    "tcp".to_string()
}

/// The key in `fields` of an event that marks lines lost at their source before they could
/// be read (Docker rotated them away): `{"lines_estimate", "after", "before", "reason"}`,
/// the times being those of the lines around the gap.
pub const GAP_FIELD: &str = "_gap";

/// One record: a log line, a prediction, a metric sample or a registration.
///
/// Unknown keys are refused when decoding so that a typo in a shipper's mapping shows up as
/// an error instead of as silently missing data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Event {
    /// Deterministic id; all zeros on the wire means "assign one".
    pub id: EventId,
    /// Source time.
    pub ts: Timestamp,
    /// When the collector (or the ingest endpoint) received it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<Timestamp>,
    /// Order among events of one source that share `ts`.
    #[serde(skip_serializing_if = "is_zero")]
    pub seq: u32,
    /// What sort of record this is.
    pub kind: Kind,
    /// Host name of the node it came from.
    pub node: String,
    /// Full container id.
    pub container_id: String,
    /// Container name without Docker's leading slash.
    pub container_name: String,
    /// Image reference the container runs.
    pub image: String,
    /// Logical service (compose service, swarm service, `SERVICE_NAME`, or container name).
    pub service: String,
    /// stdout or stderr, for container output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<Stream>,
    /// Severity, when known.
    pub level: Option<Level>,
    /// The text.
    pub message: String,
    /// Structured data: parsed JSON, regex captures, selected labels.
    pub fields: Map<String, Value>,
    /// What happened to the record on its way in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<Flag>,
    /// Registrations: the container's new state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<RegistrationState>,
    /// Registrations: exposed and published ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Registrations: service tags (`SERVICE_TAGS`, Registrator style).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Registrations: selected container labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Registrations: the exit code of a container that died.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Metrics: what was measured (`cpu_percent`, `mem_bytes`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Metrics: the sample's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Metrics: the value's unit (`percent`, `bytes`, `count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Predictions: the model that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Predictions: the model's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Predictions: the request the model answered, as the caller knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Predictions: how long the model took, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Predictions: what the model was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Predictions: what the model answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Predictions: how the request ended (`ok`, `error`, or whatever the server says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Event {
    /// A log line with the given message and everything else empty.
    pub fn log(ts: Timestamp, message: impl Into<String>) -> Self {
        Event {
            ts,
            message: message.into(),
            ..Event::default()
        }
    }

    /// The value of a keyword field by its query name, for filtering in memory.
    pub fn keyword(&self, field: crate::query::KeywordField) -> Option<&str> {
        use crate::query::KeywordField as K;
        Some(match field {
            K::Service => &self.service,
            K::Node => &self.node,
            K::ContainerName => &self.container_name,
            K::ContainerId => &self.container_id,
            K::Image => &self.image,
            K::Stream => self.stream?.as_str(),
            K::Level => self.level?.as_str(),
            K::Kind => self.kind.as_str(),
            K::Model => self.model.as_deref()?,
            K::ModelVersion => self.model_version.as_deref()?,
            K::RequestId => self.request_id.as_deref()?,
            K::Status => self.status.as_deref()?,
        })
    }

    /// Assigns an id derived from the record's content when it arrived without one.
    pub fn ensure_id(&mut self) {
        if !self.id.is_unset() {
            return;
        }
        self.id = EventId::for_content(&[
            &self.ts.as_nanos().to_le_bytes(),
            &self.seq.to_le_bytes(),
            self.node.as_bytes(),
            self.container_id.as_bytes(),
            self.service.as_bytes(),
            self.stream.map_or("", Stream::as_str).as_bytes(),
            self.message.as_bytes(),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_the_contract() {
        let mut e = Event::log(Timestamp(1_700_000_000_123_456_789), "hello");
        e.id = EventId(1);
        e.service = "web".into();
        e.stream = Some(Stream::Stderr);
        e.level = Some(Level::Error);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["id"], "00000000000000000000000000000001");
        assert_eq!(v["ts"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(v["kind"], "log");
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["level"], "error");
        assert_eq!(v["fields"], serde_json::json!({}));
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn registration_and_metric_keys_are_optional_and_round_trip() {
        let plain = serde_json::to_value(Event::log(Timestamp(1), "x")).unwrap();
        for key in [
            "state",
            "ports",
            "tags",
            "labels",
            "exit_code",
            "name",
            "value",
            "unit",
            "model",
            "model_version",
            "request_id",
            "latency_ms",
            "input",
            "output",
            "status",
        ] {
            assert!(plain.get(key).is_none(), "{key} is skipped when unset");
        }
        let mut e = Event {
            kind: Kind::Registration,
            state: Some(RegistrationState::Died),
            exit_code: Some(137),
            tags: vec!["a".into(), "b".into()],
            ports: vec![Port {
                private: 8080,
                public: None,
                proto: "tcp".into(),
                host_ip: None,
            }],
            ..Event::default()
        };
        e.labels.insert("team".into(), "ml".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "registration");
        assert_eq!(v["state"], "died");
        assert_eq!(v["exit_code"], 137);
        assert_eq!(
            v["ports"],
            serde_json::json!([{"private": 8080, "public": null, "proto": "tcp", "host_ip": null}])
        );
        assert_eq!(v["labels"], serde_json::json!({"team": "ml"}));
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);

        let m = Event {
            kind: Kind::Metric,
            name: Some("cpu_percent".into()),
            value: Some(12.5),
            unit: Some("percent".into()),
            ..Event::default()
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["name"], "cpu_percent");
        assert_eq!(v["value"], 12.5);
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), m);
        let p = Event {
            kind: Kind::Prediction,
            model: Some("churn".into()),
            model_version: Some("v3".into()),
            request_id: Some("req-1".into()),
            latency_ms: Some(12.5),
            input: Some(serde_json::json!({"customer_id": 123})),
            output: Some(serde_json::json!({"score": 0.9})),
            status: Some("ok".into()),
            ..Event::default()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["kind"], "prediction");
        assert_eq!(v["model"], "churn");
        assert_eq!(v["model_version"], "v3");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["latency_ms"], 12.5);
        assert_eq!(v["input"]["customer_id"], 123);
        assert_eq!(v["output"]["score"], 0.9);
        assert_eq!(v["status"], "ok");
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), p);
        for state in RegistrationState::ALL {
            let text = serde_json::to_value(state).unwrap();
            assert_eq!(text, state.as_str());
        }
    }

    #[test]
    fn decoding_refuses_unknown_keys_and_levels() {
        let err = serde_json::from_str::<Event>(r#"{"mesage":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mesage"), "{err}");
        let err = serde_json::from_str::<Event>(r#"{"level":"loud"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown level 'loud'"), "{err}");
    }

    #[test]
    fn sniffs_levels_from_real_log_formats() {
        let cases = [
            (
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: done",
                Some(Level::Info),
            ),
            (
                "[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6",
                Some(Level::Error),
            ),
            (
                "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok",
                Some(Level::Info),
            ),
            (
                "2015-07-29 17:41:44,747 - WARN  [QuorumPeer] - Cannot open channel",
                Some(Level::Warn),
            ),
            (
                "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered",
                Some(Level::Info),
            ),
            ("ts=1 level=debug msg=hi", Some(Level::Debug)),
            (
                "20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
                None,
            ),
            ("some info about the error later in the line", None),
            ("error: could not open file", Some(Level::Error)),
            (
                "Traceback (most recent call last):\n  File \"serve.py\", line 9, in <module>\n    predict()\nValueError: bad input",
                Some(Level::Error),
            ),
            ("Traceback (most recent call last):", Some(Level::Error)),
            ("ValueError: bad input shape (3, 4)", Some(Level::Error)),
            (
                "java.lang.IllegalStateException: pool closed",
                Some(Level::Error),
            ),
            (
                "Exception in thread \"main\" java.lang.NullPointerException",
                Some(Level::Error),
            ),
            ("ERROR:root:model failed to load", Some(Level::Error)),
            ("WARNING:urllib3:retrying", Some(Level::Warn)),
            ("  File \"serve.py\", line 9, in <module>", None),
            ("Error: yes", Some(Level::Error)),
            ("ErrorRate: 0.1", None),
            ("http://x: not a level", None),
        ];
        for (line, want) in cases {
            assert_eq!(Level::sniff(line), want, "{line}");
        }
    }
}
