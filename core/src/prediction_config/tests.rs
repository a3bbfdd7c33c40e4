use serde_json::json;

use super::*;
use crate::prediction::PREDICTION_ERROR_FIELD;
use crate::redact::REDACTED_FIELD;

fn parse(v: Value) -> Result<PredictionsConfig, String> {
    serde_json::from_value::<PredictionsConfig>(v).map_err(|e| e.to_string())
}

fn record(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn the_default_section_builds_the_default_mapping_and_no_redaction() {
    let config = parse(json!({})).unwrap();
    assert_eq!(config, PredictionsConfig::default());
    let rules = config.build_with_env(|_| None).unwrap();
    assert_eq!(rules.mapping, PredictionMapping::default());
    assert!(!rules.redacts());
}

#[test]
fn rules_and_builtins_redact_records_and_name_themselves() {
    let config = parse(json!({
        "containers": ["^model-"],
        "builtin_redactions": ["email", "card"],
        "hash_key_env": "TEST_PRED_KEY",
        "redact": [
            {"name": "customer", "path": "input.customer.id", "action": "hash"},
            {"name": "notes", "path": "input.notes", "action": "drop"},
            {"name": "token", "pattern": "tok_[a-z0-9]+"}
        ]
    }))
    .unwrap();
    let rules = config
        .build_with_env(|var| (var == "TEST_PRED_KEY").then(|| "s3cret".to_string()))
        .unwrap();
    let (event, outcome) = rules.event_from_record(
        record(json!({
            "model": "churn", "request_id": "r-1",
            "input": {"customer": {"id": 42, "mail": "ada@example.com"}, "notes": "x",
                      "card": "4111 1111 1111 1111", "auth": "tok_abc123"},
            "output": {"reply": "write to bob@example.org"}
        })),
        Timestamp(1),
    );
    outcome.unwrap();
    assert_eq!(event.kind, Kind::Prediction);
    let input = event.input.as_ref().unwrap();
    let hashed = input["customer"]["id"].as_str().unwrap();
    assert!(hashed.starts_with("sha256:"), "{hashed}");
    assert_eq!(input["customer"]["mail"], "****");
    assert!(input.get("notes").is_none(), "dropped");
    assert_eq!(input["card"], "****");
    assert_eq!(input["auth"], "****");
    assert_eq!(event.output, Some(json!({"reply": "write to ****"})));
    assert_eq!(
        event.fields[REDACTED_FIELD],
        json!(["customer", "notes", "token", "email", "card"])
    );
    let text = serde_json::to_string(&event).unwrap();
    assert!(
        !text.contains("example") && !text.contains("s3cret"),
        "{text}"
    );
}

#[test]
fn a_malformed_record_is_redacted_in_the_fields_it_stayed_in() {
    let config = parse(json!({
        "builtin_redactions": ["email"],
        "redact": [{"name": "cid", "path": "input.customer_id", "action": "mask"}]
    }))
    .unwrap();
    let rules = config.build_with_env(|_| None).unwrap();
    let (event, outcome) = rules.event_from_record(
        record(json!({
            "model": "churn",
            "features": {"customer_id": 7, "mail": "eve@example.net"}
        })),
        Timestamp(1),
    );
    assert!(outcome.is_err());
    assert_eq!(event.kind, Kind::Log);
    assert!(event.fields.contains_key(PREDICTION_ERROR_FIELD));
    assert_eq!(
        event.fields["features"],
        json!({"customer_id": "****", "mail": "****"}),
        "the input alias is reached too"
    );
    assert_eq!(event.fields[REDACTED_FIELD], json!(["cid", "email"]));
}

#[test]
fn bad_sections_are_refused_with_what_is_wrong() {
    let cases = [
        (
            json!({"containers": ["(unclosed"]}),
            "predictions.containers: '(unclosed'",
        ),
        (json!({"images": ["["]}), "predictions.images"),
        (
            json!({"redact": [{"name": "r", "pattern": "(x"}]}),
            "rule 'r': pattern '(x' is not a valid regex",
        ),
        (
            json!({"redact": [{"name": "p", "path": "body.x"}]}),
            "bad redaction path 'body.x'",
        ),
        (
            json!({"redact": [{"name": "p", "path": "input..x"}]}),
            "empty key between dots",
        ),
        (
            json!({"redact": [{"name": "both", "pattern": "x", "path": "input.x"}]}),
            "either pattern or path",
        ),
        (json!({"redact": [{"name": "none"}]}), "set pattern"),
        (
            json!({"redact": [{"name": " ", "pattern": "x"}]}),
            "give the rule a name",
        ),
        (
            json!({"redact": [{"name": "h", "path": "input.x", "action": "hash"}]}),
            "rule 'h' uses action = \"hash\" but [predictions] sets neither",
        ),
        (
            json!({"builtin_redactions": ["email"], "builtin_action": "hash"}),
            "builtin_action uses action = \"hash\"",
        ),
        (
            json!({"builtin_redactions": ["phone"]}),
            "unknown variant `phone`",
        ),
        (
            json!({"redact": [{"name": "a", "pattern": "x", "action": "shred"}]}),
            "unknown variant `shred`",
        ),
        (json!({"hash_key": ""}), "hash_key is empty"),
        (
            json!({"hash_key": "a", "hash_key_env": "B"}),
            "both hash_key",
        ),
        (json!({"mapping": {"model": []}}), "model is required"),
        (json!({"colour": 1}), "unknown field `colour`"),
        (
            json!({"redact": [{"name": "a", "pattern": "x", "extra": 1}]}),
            "unknown field `extra`",
        ),
    ];
    for (section, want) in cases {
        let err = parse(section.clone()).unwrap_err();
        assert!(err.contains(want), "{section}: {err}");
    }
    let huge = "a".repeat(5000);
    let err = parse(json!({"containers": [huge]})).unwrap_err();
    assert!(err.contains("longer than 4096 bytes"), "{err}");
}

#[test]
fn a_missing_key_variable_is_named_at_build_and_the_key_never_printed() {
    let config = parse(json!({
        "hash_key_env": "NO_SUCH_VAR_FOR_TESTS",
        "redact": [{"name": "h", "path": "input.x", "action": "hash"}]
    }))
    .unwrap();
    let err = config.build_with_env(|_| None).unwrap_err().to_string();
    assert!(err.contains("NO_SUCH_VAR_FOR_TESTS"), "{err}");
    let with_key = PredictionsConfig {
        hash_key: Some("very-secret-key".into()),
        hash_key_env: None,
        ..config
    };
    let rules = with_key.build_with_env(|_| None).unwrap();
    for text in [format!("{with_key:?}"), format!("{rules:?}")] {
        assert!(!text.contains("very-secret-key"), "{text}");
    }
}

#[test]
fn a_config_round_trips_through_serde() {
    let config = parse(json!({
        "containers": ["^model-"],
        "builtin_redactions": ["card"],
        "redact": [{"name": "n", "path": "output.x", "action": "drop"}]
    }))
    .unwrap();
    let text = serde_json::to_value(&config).unwrap();
    assert_eq!(parse(text).unwrap(), config);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a rule holds, parsing never panics, and a section that parses builds.
        #[test]
        fn a_section_that_parses_builds(
            name in ".{0,8}",
            pattern in proptest::option::of(".{0,12}"),
            path in proptest::option::of("[a-z._]{0,12}"),
            action in prop_oneof![Just("mask"), Just("hash"), Just("drop"), Just("x")],
            container in ".{0,8}",
            key in proptest::option::of("[a-z]{0,4}"),
        ) {
            let mut rule = json!({"name": name, "action": action});
            if let Some(p) = pattern {
                rule["pattern"] = json!(p);
            }
            if let Some(p) = path {
                rule["path"] = json!(p);
            }
            let mut section = json!({"containers": [container], "redact": [rule]});
            if let Some(k) = key {
                section["hash_key"] = json!(k);
            }
            if let Ok(config) = parse(section) {
                let rules = config.build_with_env(|_| None);
                prop_assert!(rules.is_ok(), "{:?}", rules.err());
                let mut e = Event::log(Timestamp(0), "ada@example.com 4111 1111 1111 1111");
                e.input = Some(json!({"a": {"b": ["c", 1]}}));
                rules.unwrap().redact(&mut e);
            }
        }
    }
}
