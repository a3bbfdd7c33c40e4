//! OTLP and Loki push through the real router and a real indexer on disk.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Value, json};

use super::tests_es::{call, call_raw, gzip, state};
use crate::AppState;

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v,
        key_strindex: 0,
    }
}

fn otlp_request() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s("checkout")),
                    kv("host.name", s("node-7")),
                    kv("k8s.pod.name", s("checkout-5d9")),
                    kv("service.version", s("1.2.3")),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "app.logger".into(),
                    ..Default::default()
                }),
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 1_795_316_400_000_000_123,
                        severity_number: 17,
                        body: s("card declined"),
                        attributes: vec![
                            kv(
                                "http.status_code",
                                Some(AnyValue {
                                    value: Some(any_value::Value::IntValue(402)),
                                }),
                            ),
                            kv("log.iostream", s("stderr")),
                        ],
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        ..Default::default()
                    },
                    LogRecord {
                        observed_time_unix_nano: 1_795_316_401_000_000_000,
                        severity_text: "Warning".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![kv("event", s("retry"))],
                            })),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn otlp_post(body: Vec<u8>, content_type: &str, encoding: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/v1/logs").header(header::CONTENT_TYPE, content_type);
    if let Some(e) = encoding {
        b = b.header(header::CONTENT_ENCODING, e);
    }
    b.body(Body::from(body)).unwrap()
}

async fn search(st: &AppState, q: &str) -> Value {
    st.indexer.flush().unwrap();
    let uri = format!("/api/v1/search?q={}", q.replace(' ', "%20"));
    let (status, _, v) = call(st, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn otlp_protobuf_records_map_to_events() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let body = otlp_request().encode_to_vec();
    let (status, headers, bytes) =
        call_raw(&st, otlp_post(body.clone(), "application/x-protobuf", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    let resp = ExportLogsServiceResponse::decode(bytes.as_slice()).unwrap();
    assert_eq!(resp.partial_success, None);

    let v = search(&st, "fields.k8s.pod.name:checkout-5d9").await;
    assert_eq!(v["total"], 2, "{v}");
    let retry = &v["hits"][0];
    assert_eq!(
        retry["ts"], "2026-11-22T03:00:01.000000000Z",
        "observed time"
    );
    assert_eq!(retry["level"], "warn");
    assert_eq!(retry["message"], r#"{"event":"retry"}"#);
    let declined = &v["hits"][1];
    assert_eq!(declined["ts"], "2026-11-22T03:00:00.000000123Z");
    assert_eq!(declined["message"], "card declined");
    assert_eq!(declined["level"], "error");
    assert_eq!(declined["service"], "checkout");
    assert_eq!(declined["node"], "node-7");
    assert_eq!(declined["stream"], "stderr");
    assert_eq!(
        declined["fields"],
        json!({"k8s": {"pod": {"name": "checkout-5d9"}}, "service": {"version": "1.2.3"},
            "otel": {"scope": {"name": "app.logger"}}, "http": {"status_code": 402},
            "trace_id": "abababababababababababababababab", "span_id": "0101010101010101"})
    );
    let v = search(&st, "service:checkout AND fields.http.status_code:402").await;
    assert_eq!(v["total"], 1);

    // An exporter's retry of the same request is not stored twice.
    let (status, _, _) = call_raw(&st, otlp_post(body, "application/x-protobuf", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(search(&st, "service:checkout").await["total"], 2);
}

#[tokio::test]
async fn otlp_json_gzip_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let body = json!({"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "jsonsvc"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": "1795316400000000000",
            "severityNumber": 9, "body": {"stringValue": "from json"},
            "traceId": "5b8efff798038103d269b633813fc60c",
            "attributes": [{"key": "attempt", "value": {"intValue": "3"}}]}]}]}]});
    let (status, headers, v) = call(
        &st,
        otlp_post(
            gzip(body.to_string().as_bytes()),
            "application/json",
            Some("gzip"),
        ),
    )
    .await;
    assert_eq!((status, v), (StatusCode::OK, json!({})));
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let v = search(&st, "service:jsonsvc").await;
    assert_eq!(v["hits"][0]["message"], "from json");
    assert_eq!(v["hits"][0]["level"], "info");
    assert_eq!(v["hits"][0]["fields"]["attempt"], 3);
    assert_eq!(
        v["hits"][0]["fields"]["trace_id"],
        "5b8efff798038103d269b633813fc60c"
    );
}

#[tokio::test]
async fn bad_otlp_bodies_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = state(dir.path());
    st.limits.decode.max_decompressed_bytes = 64 * 1024;
    let (status, _, v) = call(
        &st,
        otlp_post(
            b"\xff\xff\xff\xffnot protobuf".to_vec(),
            "application/x-protobuf",
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_otlp");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("protobuf"),
        "{v}"
    );
    let (status, _, v) = call(
        &st,
        otlp_post(br#"{"resourceLogs": 5}"#.to_vec(), "application/json", None),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("body is not an OTLP/JSON")
    );
    let (status, _, v) = call(&st, otlp_post(b"x".to_vec(), "text/plain", None)).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'text/plain'")
    );
    let (status, _, _) = call(
        &st,
        otlp_post(b"x".to_vec(), "application/x-protobuf", Some("br")),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let bomb = gzip(&vec![0u8; 1024 * 1024]);
    let (status, _, v) = call(&st, otlp_post(bomb, "application/x-protobuf", Some("gzip"))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "body_too_large");
    let (status, _, v) = call(
        &st,
        otlp_post(
            b"\x1f\x8b\x08garbage".to_vec(),
            "application/x-protobuf",
            Some("gzip"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_gzip");
    assert_eq!(search(&st, "").await["total"], 0);
}

fn loki_post(body: Vec<u8>, content_type: &str, encoding: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/loki/api/v1/push").header(header::CONTENT_TYPE, content_type);
    if let Some(e) = encoding {
        b = b.header(header::CONTENT_ENCODING, e);
    }
    b.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn loki_push_maps_labels_and_answers_204() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let body = json!({"streams": [
        {"stream": {"job": "varlog", "host": "node-3", "level": "ERROR", "env": "prod"},
         "values": [["1795316400000000000", "disk full"],
                    ["1795316400000000000", "disk full", {"trace_id": "t1"}]]},
        {"stream": {"service_name": "api", "detected_level": "debug", "container": "api-1",
                    "stream": "stdout"},
         "values": [["1795316402000000000", "gc pause"]]}]});
    let (status, _, bytes) = call_raw(
        &st,
        loki_post(
            gzip(body.to_string().as_bytes()),
            "application/json",
            Some("gzip"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(bytes.is_empty());
    let v = search(&st, "fields.env:prod").await;
    assert_eq!(
        v["total"], 2,
        "two lines with the same time are both kept: {v}"
    );
    let e = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["fields"].get("trace_id").is_none())
        .unwrap();
    assert_eq!(e["message"], "disk full");
    assert_eq!(e["service"], "varlog");
    assert_eq!(e["node"], "node-3");
    assert_eq!(e["level"], "error");
    assert_eq!(e["ts"], "2026-11-22T03:00:00.000000000Z");
    assert_eq!(
        e["fields"],
        json!({"job": "varlog", "host": "node-3", "level": "ERROR", "env": "prod"})
    );
    assert_eq!(search(&st, "fields.trace_id:t1").await["total"], 1);
    let v = search(&st, "service:api").await;
    let e = &v["hits"][0];
    assert_eq!(
        (
            e["level"].as_str(),
            e["container_name"].as_str(),
            e["stream"].as_str()
        ),
        (Some("debug"), Some("api-1"), Some("stdout"))
    );

    // A resent push is not stored twice.
    let (status, _, _) = call_raw(
        &st,
        loki_post(body.to_string().into_bytes(), "application/json", None),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(search(&st, "").await["total"], 3);
}

#[tokio::test]
async fn bad_loki_pushes_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path());
    let cases = [
        (
            json!({"streams": [{"stream": {"job": "a"}, "values": [["1", "ok"]]},
                {"stream": {"job": "b"}, "values": [["1", "ok"], ["soon", "bad"]]}]}),
            "streams[1].values[1]: timestamp \"soon\"",
        ),
        (
            json!({"streams": [{"stream": {"job": 5}, "values": []}]}),
            "label 'job' must be a string",
        ),
        (
            json!({"streams": [{"stream": {}, "values": [["1"]]}]}),
            "streams[0].values[0] must be",
        ),
        (
            json!({"streams": [{"stream": {}, "values": [["1", 5]]}]}),
            "the line must be a string",
        ),
        (json!({"lines": []}), "\"streams\" array"),
    ];
    for (body, needle) in cases {
        let (status, _, v) = call(
            &st,
            loki_post(body.to_string().into_bytes(), "application/json", None),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "bad_push");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
    }
    let (status, _, v) = call(
        &st,
        loki_post(b"{\"streams\": [".to_vec(), "application/json", None),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, _, v) = call(
        &st,
        loki_post(b"\x00snappy".to_vec(), "application/x-protobuf", None),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("protobuf (snappy)"),
        "{v}"
    );
    assert_eq!(
        search(&st, "").await["total"],
        0,
        "nothing of a refused push is stored"
    );
}
