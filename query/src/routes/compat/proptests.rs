//! Hostile input never panics the compatibility parsers: arbitrary JSON for the
//! Elasticsearch query translation, Elasticsearch aggregations and Loki pushes, arbitrary bytes for gzip and OTLP
//! protobuf, arbitrary values for Elasticsearch timestamps.

use proptest::prelude::*;
use prost::Message;
use serde_json::Value;
use shiplog_core::Timestamp;

/// Words of the query DSL and of push bodies, so generated objects reach deep branches.
const QUERY_WORDS: &[&str] = &[
    "match",
    "term",
    "terms",
    "range",
    "bool",
    "must",
    "should",
    "query_string",
    "query",
    "gte",
    "lt",
    "streams",
    "values",
    "stream",
    "@timestamp",
    "wildcard",
    "regexp",
];

/// Words of Elasticsearch aggregations.
const AGG_WORDS: &[&str] = &[
    "date_histogram",
    "terms",
    "aggs",
    "aggregations",
    "field",
    "@timestamp",
    "service",
    "fields.x",
    "fixed_interval",
    "calendar_interval",
    "interval",
    "1m",
    "1h",
    "day",
    "month",
    "min_doc_count",
    "extended_bounds",
    "min",
    "max",
    "now-1h",
    "size",
    "order",
    "_key",
    "_count",
    "asc",
    "desc",
    "keyed",
    "format",
    "epoch_millis",
    "time_zone",
    "offset",
    "meta",
];

fn json() -> impl Strategy<Value = Value> {
    json_over(QUERY_WORDS)
}

/// Arbitrary JSON whose strings and keys are often one of `words`.
fn json_over(words: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let word = prop::sample::select(words).prop_map(str::to_string);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_@.]{0,12}".prop_map(Value::String),
        word.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop_oneof![word.clone(), "[a-z_.@]{1,10}"], inner), 0..5,)
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
    fn es_aggregations_never_panic(aggs in json_over(AGG_WORDS)) {
        let _ = super::es_aggs::parse(&aggs, Timestamp(1_795_000_000_000_000_000));
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
