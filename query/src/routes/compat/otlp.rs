//! `POST /v1/logs`: OTLP/HTTP logs, as OpenTelemetry SDKs and collectors export them.
//!
//! The body is an `ExportLogsServiceRequest`, `application/x-protobuf` (binary) or
//! `application/json` (OTLP/JSON), plain or `Content-Encoding: gzip`. Each log record
//! becomes one log event:
//!
//! | OTLP | event |
//! |---|---|
//! | `timeUnixNano`, else `observedTimeUnixNano`, else the arrival time | `ts` |
//! | `severityText` when it names a level, else `severityNumber` (1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–20 error, 21–24 fatal) | `level` |
//! | `body`: a string as is; any other value as its JSON text | `message` |
//! | resource, scope and record attributes (the record's win), dotted keys expanded | `fields` |
//! | `service.name`, `host.name`, `container.name`, `container.id`, `container.image.name`, `log.iostream` | `service`, `node`, `container_name`, `container_id`, `image`, `stream` (taken out of `fields`) |
//! | `traceId`, `spanId` (hex), `eventName`, the scope's name and version | `fields.trace_id`, `fields.span_id`, `fields.event_name`, `fields.otel.scope.name`, `fields.otel.scope.version` |
//!
//! The id of each event is a hash of its content and its position in the request, so an
//! exporter's retry of the same request is not stored twice. A request is all-or-nothing:
//! a malformed body stores nothing (400), and the answer (an empty
//! `ExportLogsServiceResponse`, protobuf or `{}` for JSON) comes once all of it is durable.
//! Other content types get 415.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::{Map, Value};
use shiplog_core::{Event, EventId, Level, Stream, Timestamp};

use super::fields::{insert_path, take_string};
use super::{body, check_count, store};
use crate::error::ApiError;
use crate::state::AppState;

/// How the request was encoded, which is also how the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

fn format(headers: &HeaderMap) -> Result<Format, ApiError> {
    match body::media_type(headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content-type '{other}' is not supported for OTLP logs: send \
                 application/x-protobuf or application/json"
            ),
        )),
    }
}

/// Accepts one export request; answers once every record in it is durable.
pub async fn logs(State(state): State<AppState>, headers: HeaderMap, raw: Body) -> Response {
    match export(&state, &headers, raw).await {
        Ok(Format::Protobuf) => {
            let bytes = ExportLogsServiceResponse {
                partial_success: None,
            }
            .encode_to_vec();
            let mut resp = (StatusCode::OK, bytes).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            resp
        }
        Ok(Format::Json) => (StatusCode::OK, axum::Json(serde_json::json!({}))).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn export(state: &AppState, headers: &HeaderMap, raw: Body) -> Result<Format, ApiError> {
    let fmt = format(headers)?;
    let bytes = body::read(state, headers, raw).await?;
    let request = match fmt {
        Format::Protobuf => ExportLogsServiceRequest::decode(bytes.as_ref()).map_err(|e| {
            ApiError::bad_request(
                "bad_otlp",
                format!("body is not a protobuf ExportLogsServiceRequest: {e}"),
            )
        })?,
        Format::Json => {
            serde_json::from_slice::<ExportLogsServiceRequest>(&bytes).map_err(|e| {
                ApiError::bad_request(
                    "bad_otlp",
                    format!("body is not an OTLP/JSON ExportLogsServiceRequest: {e}"),
                )
            })?
        }
    };
    let mut events = to_events(&request, Timestamp::now())?;
    lift_predictions(&state.predictions, &mut events);
    check_count(state, events.len())?;
    store(state, events).await?;
    Ok(fmt)
}

/// Records that carry a model attribute (under any key of the prediction mapping) are
/// read as predictions, then redacted like those sent to `/api/v1/predictions`; one that
/// lacks another required attribute stays a log and is counted as malformed.
pub fn lift_predictions(svc: &crate::predictions::PredictionService, events: &mut [Event]) {
    let (mut ok, mut malformed, mut redacted) = (0, 0, 0);
    for e in events.iter_mut() {
        let carries_model = svc.rules.mapping.model.iter().any(|k| {
            e.fields
                .get(k)
                .is_some_and(|v| v.is_string() || v.is_number())
        });
        if !carries_model {
            continue;
        }
        match svc.rules.capture(e) {
            Ok(()) => ok += 1,
            Err(_) => malformed += 1,
        }
        if svc.rules.redact(e) {
            redacted += 1;
        }
    }
    svc.count(ok, malformed, redacted);
}

/// Maps every log record of a request to an event.
pub fn to_events(
    req: &ExportLogsServiceRequest,
    received: Timestamp,
) -> Result<Vec<Event>, ApiError> {
    let mut events = Vec::new();
    for resource_logs in &req.resource_logs {
        let mut resource = Map::new();
        if let Some(r) = &resource_logs.resource {
            put_attributes(&mut resource, &r.attributes);
        }
        for scope_logs in &resource_logs.scope_logs {
            let mut scoped = resource.clone();
            if let Some(scope) = &scope_logs.scope {
                put_attributes(&mut scoped, &scope.attributes);
                if !scope.name.is_empty() {
                    insert_path(
                        &mut scoped,
                        "otel.scope.name",
                        Value::String(scope.name.clone()),
                    );
                }
                if !scope.version.is_empty() {
                    insert_path(
                        &mut scoped,
                        "otel.scope.version",
                        Value::String(scope.version.clone()),
                    );
                }
            }
            for record in &scope_logs.log_records {
                let position = events.len();
                events.push(to_event(record, scoped.clone(), position, received)?);
            }
        }
    }
    Ok(events)
}

fn nanos(v: u64, name: &str) -> Result<Option<Timestamp>, ApiError> {
    if v == 0 {
        return Ok(None);
    }
    i64::try_from(v).map(|n| Some(Timestamp(n))).map_err(|_| {
        ApiError::bad_request(
            "bad_otlp",
            format!("{name} {v} is after the year 2262: send nanoseconds since 1970"),
        )
    })
}

fn to_event(
    record: &opentelemetry_proto::tonic::logs::v1::LogRecord,
    mut fields: Map<String, Value>,
    position: usize,
    received: Timestamp,
) -> Result<Event, ApiError> {
    put_attributes(&mut fields, &record.attributes);
    let ts = match nanos(record.time_unix_nano, "timeUnixNano")? {
        Some(t) => t,
        None => nanos(record.observed_time_unix_nano, "observedTimeUnixNano")?.unwrap_or(received),
    };
    let message = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => serde_json::to_string(&any_to_json(other)).unwrap_or_default(),
        None => String::new(),
    };
    let mut e = Event::log(ts, message);
    e.received = Some(received);
    e.level = Level::parse(&record.severity_text).or_else(|| severity(record.severity_number));
    e.service = take_string(&mut fields, &["service.name"]).unwrap_or_default();
    e.node = take_string(&mut fields, &["host.name"]).unwrap_or_default();
    e.container_name = take_string(&mut fields, &["container.name"]).unwrap_or_default();
    e.container_id = take_string(&mut fields, &["container.id"]).unwrap_or_default();
    e.image = take_string(&mut fields, &["container.image.name"]).unwrap_or_default();
    if let Some(Value::String(s)) = super::fields::peek_path(&fields, "log.iostream") {
        let stream = match s.as_str() {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        };
        if stream.is_some() {
            e.stream = stream;
            super::fields::take_path(&mut fields, "log.iostream");
        }
    }
    if e.level.is_none() && !record.severity_text.is_empty() {
        fields.insert(
            "severity_text".into(),
            Value::String(record.severity_text.clone()),
        );
    }
    if !record.trace_id.is_empty() {
        fields.insert("trace_id".into(), Value::String(hex(&record.trace_id)));
    }
    if !record.span_id.is_empty() {
        fields.insert("span_id".into(), Value::String(hex(&record.span_id)));
    }
    if !record.event_name.is_empty() {
        fields.insert(
            "event_name".into(),
            Value::String(record.event_name.clone()),
        );
    }
    e.fields = fields;
    e.id = EventId::for_content(&[
        b"otlp",
        &record.time_unix_nano.to_le_bytes(),
        &record.observed_time_unix_nano.to_le_bytes(),
        e.service.as_bytes(),
        e.node.as_bytes(),
        e.message.as_bytes(),
        &record.trace_id,
        &record.span_id,
        &(position as u64).to_le_bytes(),
    ]);
    Ok(e)
}

/// OTLP severity numbers: four per level, trace (1) to fatal (24).
fn severity(n: i32) -> Option<Level> {
    Some(match n {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn put_attributes(into: &mut Map<String, Value>, attrs: &[KeyValue]) {
    for kv in attrs {
        if kv.key.is_empty() {
            continue;
        }
        let v = kv.value.as_ref().map_or(Value::Null, any_value_json);
        insert_path(into, &kv.key, v);
    }
}

fn any_value_json(v: &AnyValue) -> Value {
    v.value.as_ref().map_or(Value::Null, any_to_json)
}

/// An attribute value as JSON: scalars as themselves, arrays and key-value lists nested,
/// bytes as hex.
fn any_to_json(v: &any_value::Value) -> Value {
    match v {
        any_value::Value::StringValue(s) => Value::String(s.clone()),
        any_value::Value::BoolValue(b) => Value::Bool(*b),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        any_value::Value::ArrayValue(a) => {
            Value::Array(a.values.iter().map(any_value_json).collect())
        }
        any_value::Value::KvlistValue(kv) => {
            let mut m = Map::new();
            put_attributes(&mut m, &kv.values);
            Value::Object(m)
        }
        any_value::Value::BytesValue(b) => Value::String(hex(b)),
        any_value::Value::StringValueStrindex(i) => Value::from(*i),
    }
}
