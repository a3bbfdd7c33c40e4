//! Hostile input never panics the compatibility parsers: arbitrary JSON for the
//! Elasticsearch query translation and Loki pushes, arbitrary bytes for gzip and OTLP
//! protobuf, arbitrary values for Elasticsearch timestamps.

use proptest::prelude::*;
use prost::Message;
use serde_json::Value;
use shiplog_core::Timestamp;

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_@.]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("match"),
            Just("term"),
            Just("terms"),
            Just("range"),
            Just("bool"),
            Just("must"),
            Just("should"),
            Just("query_string"),
            Just("query"),
            Just("gte"),
            Just("streams"),
            Just("values"),
            Just("stream"),
            Just("@timestamp"),
            Just("wildcard"),
            Just("regexp"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("match".to_string()),
                        Just("term".to_string()),
                        Just("bool".to_string()),
                        Just("must".to_string()),
                        Just("range".to_string()),
                        Just("query_string".to_string()),
                        Just("query".to_string()),
                        Just("streams".to_string()),
                        Just("values".to_string()),
                        Just("stream".to_string()),
                        Just("gte".to_string()),
                        Just("lt".to_string()),
                        "[a-z_.@]{1,10}",
                    ],
                    inner,
                ),
                0..5,
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn es_query_translation_never_panics(q in json()) {
        let _ = super::es_query::translate(&q, Timestamp(1_795_000_000_000_000_000));
    }

    #[test]
    fn loki_pushes_never_panic(body in json()) {
        let _ = super::loki::to_events(&body, Timestamp(1));
    }

    #[test]
    fn es_timestamps_never_panic(v in json()) {
        let _ = super::es_doc::parse_time(&v);
    }

    #[test]
    fn gzip_of_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = super::body::gunzip_capped(&bytes, 1 << 20);
    }

    #[test]
    fn otlp_protobuf_of_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        if let Ok(req) = ExportLogsServiceRequest::decode(bytes.as_slice()) {
            let _ = super::otlp::to_events(&req, Timestamp(1));
        }
    }
}
