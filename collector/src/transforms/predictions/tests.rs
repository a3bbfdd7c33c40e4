use std::time::Instant;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shiplog_core::prediction::PREDICTION_ERROR_FIELD;
use shiplog_core::redact::REDACTED_FIELD;
use shiplog_core::{Stream, Timestamp};

use super::*;
use crate::config::CollectorConfig;
use crate::sources::SourceEvent;
use crate::sources::docker::metadata::ContainerMeta;
use crate::sources::docker::record::{ContainerLog, Resume};
use crate::transforms::Transforms;
use crate::transforms::multiline::{DEFAULT_FLUSH_TIMEOUT, MultilineRules};

const T1: &str = "2026-11-22T03:09:44.000000001Z";

fn section(v: Value) -> PredictionsConfig {
    serde_json::from_value(v).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn meta(name: &str) -> ContainerMeta {
    ContainerMeta {
        id: format!("{name}-id"),
        name: name.into(),
        image: "models/churn:3".into(),
        service: name.into(),
        tty: false,
        opted_out: None,
        labels: BTreeMap::new(),
        fields: Map::new(),
    }
}

/// Runs raw frame bytes through a prediction container's log reader and its transforms,
/// the way the Docker source does.
fn read(config: &PredictionsConfig, frame: &[u8]) -> Vec<Event> {
    let collector = CollectorConfig {
        predictions: config.clone(),
        ..CollectorConfig::default()
    };
    let transforms = Transforms::from_config(&collector).unwrap();
    let meta = meta("model-churn-1");
    let per_container = transforms.for_container(
        &meta.name,
        &meta.image,
        &labels(&[("shiplog.predictions", "true")]),
    );
    assert!(per_container.predictions().is_some());
    let mut log = ContainerLog::new(
        meta,
        "node-a".into(),
        Resume::from_beginning(),
        Arc::new(MultilineRules::Off),
        DEFAULT_FLUSH_TIMEOUT,
    )
    .with_predictions(per_container.predictions().cloned());
    let mut out: Vec<SourceEvent> = Vec::new();
    log.push(
        Stream::Stdout,
        frame,
        Timestamp(42),
        Instant::now(),
        &mut out,
    );
    log.finish(Timestamp(43), &mut out);
    out.into_iter()
        .map(|mut e| {
            per_container.apply(&mut e.event);
            e.event
        })
        .collect()
}

fn lines(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .map(|l| format!("{T1} {l}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn labelled_or_matched_containers_are_prediction_containers() {
    let p = Predictions::from_config(&section(json!({
        "containers": ["^model-"], "images": ["^ml/"]
    })))
    .unwrap();
    let none = BTreeMap::new();
    assert!(p.for_container("model-a", "x", &none).is_some());
    assert!(p.for_container("web", "ml/scorer:1", &none).is_some());
    assert!(p.for_container("web", "nginx", &none).is_none());
    let yes = labels(&[("shiplog.predictions", "true")]);
    assert!(p.for_container("web", "nginx", &yes).is_some());
    let no = labels(&[("shiplog.predictions", "false")]);
    assert!(
        p.for_container("model-a", "x", &no).is_none(),
        "the label opts a matched container out"
    );
    let odd = labels(&[("shiplog.predictions", "maybe")]);
    assert!(p.for_container("model-a", "x", &odd).is_some());
    assert!(p.for_container("web", "nginx", &odd).is_none());
}

#[test]
fn json_lines_become_predictions_and_malformed_ones_stay_logs_with_the_reason() {
    let (read_before, malformed_before) = crate::telemetry::predictions();
    let config = section(json!({"builtin_redactions": ["email"]}));
    let events = read(
        &config,
        &lines(&[
            r#"{"model":"churn","version":"3","request_id":"r-1","latency_ms":12.5,"input":{"customer_id":123,"email":"ada@example.com"},"output":{"score":0.9},"status":"ok"}"#.into(),
            r#"{"model":"churn","msg":"scored","id":"r-2","features":{"customer_id":7}}"#.into(),
            r#"{"model":"churn","input":{"email":"bob@example.org"}}"#.into(),
            "plain text from bob@example.org".into(),
            "[1,2,3]".into(),
            r#""just a string""#.into(),
            r#"{"model": "churn", broken"#.into(),
        ]),
    );
    assert_eq!(events.len(), 7, "nothing is lost");
    let p = &events[0];
    assert_eq!(p.kind, Kind::Prediction);
    assert_eq!(p.model.as_deref(), Some("churn"));
    assert_eq!(p.model_version.as_deref(), Some("3"));
    assert_eq!(p.request_id.as_deref(), Some("r-1"));
    assert_eq!(p.latency_ms, Some(12.5));
    assert_eq!(p.input, Some(json!({"customer_id": 123, "email": "****"})));
    assert_eq!(p.output, Some(json!({"score": 0.9})));
    assert_eq!(
        p.message, "prediction model=churn request_id=r-1 version=3 status=ok latency_ms=12.5",
        "no msg key: a summary, not the raw line"
    );
    assert_eq!(p.fields[REDACTED_FIELD], json!(["email"]));
    assert_eq!(p.container_name, "model-churn-1");

    assert_eq!(events[1].kind, Kind::Prediction);
    assert_eq!(
        events[1].message, "scored",
        "a msg key is kept as the message"
    );
    assert_eq!(events[1].request_id.as_deref(), Some("r-2"));

    let bad = &events[2];
    assert_eq!(bad.kind, Kind::Log);
    assert_eq!(bad.fields[PREDICTION_ERROR_FIELD], "missing request_id");
    assert_eq!(bad.message, "malformed prediction: missing request_id");
    assert_eq!(bad.fields["model"], "churn", "every key is kept");
    assert_eq!(bad.fields["input"], json!({"email": "****"}));

    for plain in &events[3..] {
        assert_eq!(plain.kind, Kind::Log, "{}", plain.message);
        assert!(
            !plain.fields.contains_key(PREDICTION_ERROR_FIELD),
            "not json objects: plain logs, not malformed: {}",
            plain.message
        );
    }
    assert_eq!(events[3].message, "plain text from ****");
    assert_eq!(events[4].message, "[1,2,3]");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("@example."), "{text}");

    let (read_after, malformed_after) = crate::telemetry::predictions();
    assert!(read_after >= read_before + 2);
    assert!(malformed_after > malformed_before);
    let metrics = crate::telemetry::render_prometheus();
    assert!(
        metrics.contains("# TYPE shiplog_collector_predictions_malformed_total counter"),
        "{metrics}"
    );
}

#[test]
fn path_rules_hide_values_of_predictions_and_of_malformed_records() {
    let config = section(json!({
        "hash_key": "k",
        "redact": [
            {"name": "cid", "path": "input.customer_id", "action": "hash"},
            {"name": "score", "path": "output.score", "action": "drop"}
        ]
    }));
    let events = read(
        &config,
        &lines(&[
            r#"{"model":"m","request_id":"r","input":{"customer_id":"c-991"},"output":{"score":1}}"#.into(),
            r#"{"model":"m","features":{"customer_id":"c-992"},"prediction":{"score":2}}"#.into(),
        ]),
    );
    let hashed = events[0].input.as_ref().unwrap()["customer_id"].clone();
    assert!(hashed.as_str().unwrap().starts_with("sha256:"), "{hashed}");
    assert_eq!(events[0].output, Some(json!({})));
    assert_eq!(events[1].kind, Kind::Log);
    assert!(
        events[1].fields["features"]["customer_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(events[1].fields["prediction"], json!({}));
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("c-99"), "{text}");
}

#[test]
fn hostile_lines_never_panic_and_are_kept() {
    let config = section(json!({"builtin_redactions": ["email", "card"]}));
    let deep = format!("{}1{}", "{\"a\":".repeat(5000), "}".repeat(5000));
    let nested_ok = format!(
        "{{\"model\":\"m\",\"request_id\":\"deep\",\"input\":{}\"x@example.com\"{}}}",
        "{\"a\":".repeat(100),
        "}".repeat(100)
    );
    let huge = format!(
        "{{\"model\":\"m\",\"request_id\":\"huge\",\"input\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let mut frame = lines(&[
        deep,
        nested_ok,
        huge,
        "{}".into(),
        "{\"model\":null}".into(),
    ]);
    frame.extend_from_slice(format!("{T1} {{\"model\":\"m\",\"request_id\":\"").as_bytes());
    frame.extend_from_slice(b"\xff\xfe bad utf-8 \xc3\"}\n");
    let events = read(&config, &frame);
    assert_eq!(events.len(), 6, "every line is an event");
    assert_eq!(events[0].kind, Kind::Log, "too deep to parse: a plain log");
    assert_eq!(events[1].kind, Kind::Prediction);
    assert!(
        !serde_json::to_string(&events[1])
            .unwrap()
            .contains("x@example.com")
    );
    assert_eq!(events[2].kind, Kind::Log, "too long to lift: a plain log");
    assert_eq!(
        events[3].fields[PREDICTION_ERROR_FIELD],
        "missing model; missing request_id"
    );
    assert_eq!(events[4].kind, Kind::Log);
    assert!(
        events[5].kind == Kind::Prediction || events[5].kind == Kind::Log,
        "invalid UTF-8 is replaced, never a panic"
    );
    assert!(
        events[5].message.contains('\u{fffd}')
            || events[5]
                .request_id
                .as_deref()
                .is_some_and(|r| r.contains('\u{fffd}'))
    );
}

proptest! {
    /// Whatever a prediction container writes, every line comes out as one event.
    #[test]
    fn arbitrary_lines_are_each_kept(
        lines in proptest::collection::vec(any::<String>(), 1..8),
    ) {
        let clean: Vec<String> = lines
            .into_iter()
            .map(|l| l.replace(['\n', '\r'], " "))
            .map(|l| format!("x{l}"))
            .collect();
        let events = read(&section(json!({"builtin_redactions": ["email"]})), &self::lines(&clean));
        prop_assert_eq!(events.len(), clean.len());
    }

    /// JSON objects with arbitrary values map or stay logs, never panic, never vanish.
    #[test]
    fn arbitrary_json_objects_map_or_stay_logs(
        pairs in proptest::collection::btree_map(
            prop_oneof![Just("model".to_string()), Just("request_id".to_string()),
                        Just("latency_ms".to_string()), Just("input".to_string()),
                        "[a-z]{1,4}"],
            prop_oneof![any::<i64>().prop_map(Value::from), any::<String>().prop_map(Value::from),
                        Just(Value::Null), Just(json!({"k": [1, "a@b.io"]}))],
            0..6),
    ) {
        let line = Value::Object(pairs.into_iter().collect()).to_string();
        let events = read(&PredictionsConfig::default(), &self::lines(&[line]));
        prop_assert_eq!(events.len(), 1);
        let e = &events[0];
        prop_assert!(e.kind == Kind::Prediction || e.fields.contains_key(PREDICTION_ERROR_FIELD));
    }
}
