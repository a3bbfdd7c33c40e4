//! Elasticsearch aggregations, as a `_search` body names them in `aggs` (or `aggregations`):
//! reading them into [`EsAgg`] trees (the `date_histogram` options in
//! [`super::es_aggs_histogram`]). [`super::es_aggs_run`] runs them on the native aggregation
//! engine (`shiplog_indexer::aggregate`) and writes Elasticsearch's answer.
//!
//! | type | options |
//! |---|---|
//! | `date_histogram` | `field` (`@timestamp`, `timestamp` or `ts`); one of `fixed_interval` (`500ms`, `30s`, `5m`, `2h`, `1d`), `calendar_interval` (`minute`, `hour`, `day` or `1m`, `1h`, `1d`) or the older `interval` (either form, or milliseconds); `min_doc_count` (default 0); `extended_bounds` `{min, max}`; `keyed`; `format` (`strict_date_optional_time` or `epoch_millis`); `time_zone` (UTC only) |
//! | `terms` | `field` (a keyword field such as `service`, `level`, `host.name`, or any other name, read as a path inside `fields`, `_index` included; keys are strings, a number under a path reads as its text); `size` (default 10); `min_doc_count` (default 1); `order` by `_count` (descending) or `_key`; `shard_size` (accepted, changes nothing) |
//!
//! Each may hold one level of sub-aggregations (a `terms` per histogram bucket, a histogram
//! per term). Buckets are in UTC and aligned to the interval since the Unix epoch, so
//! calendar minutes, hours and days are fixed lengths; weeks, months, quarters and years,
//! other time zones and offsets are refused. Anything unknown (a type, an option) is a 400
//! naming it, never silently ignored.

use serde_json::{Map, Value};
use shiplog_core::Timestamp;
use shiplog_core::query::JsonRoot;
use shiplog_indexer::aggregate::{MAX_TERMS_SIZE, TermsField};

use super::es_aggs_histogram;
use super::es_query::{Target, target};
use crate::error::ApiError;

/// Most aggregations at one level of a request.
pub const MAX_AGGS: usize = crate::routes::aggregate::MAX_AGGS;

/// Levels of aggregations: the top one and one level of sub-aggregations.
pub const MAX_DEPTH: usize = 2;

/// The aggregation types this surface runs.
pub const SUPPORTED: &str = "date_histogram, terms";

/// One named aggregation and its sub-aggregations.
#[derive(Debug, Clone, PartialEq)]
pub struct EsAgg {
    /// The name the answer is keyed by.
    pub name: String,
    /// What it computes.
    pub kind: EsAggKind,
    /// Sub-aggregations, run inside each bucket.
    pub subs: Vec<EsAgg>,
    /// `meta`, echoed back as given.
    pub meta: Option<Value>,
}

/// The aggregation types.
#[derive(Debug, Clone, PartialEq)]
pub enum EsAggKind {
    /// Events per time bucket.
    DateHistogram(DateHistogram),
    /// The most frequent values of a field.
    Terms(Terms),
}

impl EsAggKind {
    /// The type as Elasticsearch names it in `typed_keys` answers.
    pub fn typed_name(&self) -> &'static str {
        match self {
            EsAggKind::DateHistogram(_) => "date_histogram",
            EsAggKind::Terms(_) => "sterms",
        }
    }
}

/// A `date_histogram`.
#[derive(Debug, Clone, PartialEq)]
pub struct DateHistogram {
    /// Bucket width in nanoseconds (at least a millisecond).
    pub interval_ns: i64,
    /// Buckets with fewer events are left out (0 lists every bucket between the first and
    /// last event).
    pub min_doc_count: u64,
    /// Bounds the buckets reach even without events there.
    pub extended_bounds: Option<(Timestamp, Timestamp)>,
    /// Buckets as an object keyed by `key_as_string` instead of a list.
    pub keyed: bool,
    /// `key_as_string` as epoch milliseconds instead of an ISO 8601 time.
    pub epoch_millis: bool,
}

/// How terms buckets are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermsOrder {
    /// Most events first (ties by key), Elasticsearch's default.
    CountDesc,
    /// By key, ascending.
    KeyAsc,
    /// By key, descending.
    KeyDesc,
}

/// A `terms` aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    /// The field counted.
    pub field: TermsField,
    /// Buckets to return.
    pub size: usize,
    /// Values with fewer events are left out.
    pub min_doc_count: u64,
    /// Bucket order.
    pub order: TermsOrder,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad_aggregation", message)
}

/// Reads the `aggs` object of a search body.
pub fn parse(aggs: &Value, now: Timestamp) -> Result<Vec<EsAgg>, ApiError> {
    level(aggs, "", 1, now)
}

fn level(aggs: &Value, parent: &str, depth: usize, now: Timestamp) -> Result<Vec<EsAgg>, ApiError> {
    let Value::Object(map) = aggs else {
        return Err(bad(format!(
            "aggregations{} must be an object of named aggregations, got {aggs}",
            at_parent(parent)
        )));
    };
    if map.len() > MAX_AGGS {
        return Err(bad(format!(
            "{} aggregations{}, more than {MAX_AGGS}: split the request",
            map.len(),
            at_parent(parent)
        )));
    }
    map.iter()
        .map(|(name, body)| one(name, body, parent, depth, now))
        .collect()
}

fn at_parent(parent: &str) -> String {
    if parent.is_empty() {
        String::new()
    } else {
        format!(" under [{parent}]")
    }
}

fn one(
    name: &str,
    body: &Value,
    parent: &str,
    depth: usize,
    now: Timestamp,
) -> Result<EsAgg, ApiError> {
    if name.is_empty() || name.contains(['[', ']', '>']) {
        return Err(bad(format!(
            "invalid aggregation name [{name}]: it must be non-empty and hold no '[', ']' or '>'"
        )));
    }
    let path = if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}>{name}")
    };
    let Value::Object(obj) = body else {
        return Err(bad(format!(
            "aggregation [{path}] must be an object such as {{\"terms\": {{\"field\": \"service\"}}}}, got {body}"
        )));
    };
    let mut kind = None;
    let mut subs = None;
    let mut meta = None;
    for (key, value) in obj {
        match key.as_str() {
            "aggs" | "aggregations" => {
                if subs.is_some() {
                    return Err(bad(format!(
                        "aggregation [{path}] has both aggs and aggregations: use one"
                    )));
                }
                if depth >= MAX_DEPTH {
                    return Err(bad(format!(
                        "aggregation [{path}] has sub-aggregations nested {} levels deep: shiplog runs one level of sub-aggregations",
                        depth + 1
                    )));
                }
                subs = Some(level(value, &path, depth + 1, now)?);
            }
            "meta" => {
                if !value.is_object() {
                    return Err(bad(format!(
                        "[meta] of aggregation [{path}] must be an object"
                    )));
                }
                meta = Some(value.clone());
            }
            typ => {
                if let Some((first, _)) = &kind {
                    return Err(bad(format!(
                        "found two aggregation type definitions in [{path}]: [{first}] and [{typ}]"
                    )));
                }
                kind = Some((typ, value));
            }
        }
    }
    let (typ, value) = kind.ok_or_else(|| {
        bad(format!(
            "missing definition for aggregation [{path}]: give one type ({SUPPORTED})"
        ))
    })?;
    let kind = kind_of(typ, value, &path, now)?;
    Ok(EsAgg {
        name: name.to_string(),
        kind,
        subs: subs.unwrap_or_default(),
        meta,
    })
}

fn kind_of(typ: &str, body: &Value, path: &str, now: Timestamp) -> Result<EsAggKind, ApiError> {
    let opts = match body {
        Value::Object(o) => o,
        _ if matches!(typ, "date_histogram" | "terms") => {
            return Err(bad(format!(
                "[{typ}] of aggregation [{path}] must be an object"
            )));
        }
        _ => &Map::new(),
    };
    match typ {
        "date_histogram" => es_aggs_histogram::parse(opts, path, now).map(EsAggKind::DateHistogram),
        "terms" => terms(opts, path).map(EsAggKind::Terms),
        other => Err(ApiError::bad_request(
            "unknown_aggregation",
            format!(
                "unknown aggregation type [{other}] in aggregation [{path}]: shiplog supports {SUPPORTED}"
            ),
        )),
    }
}

/// One aggregation's options, named in error messages: `[terms] option [size] of
/// aggregation [by_service]`.
pub(super) struct Ctx<'a> {
    /// The aggregation type.
    pub typ: &'static str,
    /// The aggregation's path (`per_hour>services`).
    pub path: &'a str,
}

impl Ctx<'_> {
    /// A 400 naming the option.
    pub fn bad(&self, option: &str, message: impl std::fmt::Display) -> ApiError {
        bad(format!(
            "[{}] option [{option}] of aggregation [{}]: {message}",
            self.typ, self.path
        ))
    }

    /// A whole number ≥ 0, as a number or digits.
    pub fn whole(&self, option: &str, v: &Value) -> Result<u64, ApiError> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| self.bad(option, format!("must be a whole number ≥ 0, got {v}")))
    }

    /// `true` or `false`, as a boolean or a string.
    pub fn flag(&self, option: &str, v: &Value) -> Result<bool, ApiError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
            _ => Err(self.bad(option, format!("must be true or false, got {v}"))),
        }
    }

    /// A string.
    pub fn text<'v>(&self, option: &str, v: &'v Value) -> Result<&'v str, ApiError> {
        v.as_str()
            .ok_or_else(|| self.bad(option, format!("must be a string, got {v}")))
    }
}

fn terms(opts: &Map<String, Value>, path: &str) -> Result<Terms, ApiError> {
    let ctx = Ctx { typ: "terms", path };
    let mut field = None;
    let mut out = Terms {
        field: TermsField::Json {
            root: JsonRoot::Fields,
            path: String::new(),
        },
        size: 10,
        min_doc_count: 1,
        order: TermsOrder::CountDesc,
    };
    for (k, v) in opts {
        match k.as_str() {
            "field" => field = Some(ctx.text(k, v)?),
            "size" => {
                let n = ctx.whole(k, v)?;
                out.size = usize::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_TERMS_SIZE).contains(n))
                    .ok_or_else(|| {
                        ctx.bad(k, format!("must be from 1 to {MAX_TERMS_SIZE}, got {n}"))
                    })?;
            }
            "shard_size" => {
                ctx.whole(k, v)?;
            }
            "min_doc_count" => {
                out.min_doc_count = ctx.whole(k, v)?;
                if out.min_doc_count == 0 {
                    return Err(ctx.bad(
                        k,
                        "0 is not supported: only values that occur in matching events are listed",
                    ));
                }
            }
            "order" => out.order = terms_order(&ctx, v)?,
            other => {
                return Err(ctx.bad(
                    other,
                    "not supported: use field, size, min_doc_count, order or shard_size",
                ));
            }
        }
    }
    let field = field.ok_or_else(|| {
        ctx.bad(
            "field",
            "missing: name a field such as service or host.name",
        )
    })?;
    out.field = match target(field) {
        Target::Keyword(k) => TermsField::Keyword(k),
        Target::Json(p) if !p.is_empty() && !p.split('.').any(str::is_empty) => TermsField::Json {
            root: JsonRoot::Fields,
            path: p,
        },
        Target::Json(_) => {
            return Err(ctx.bad("field", format!("[{field}] is not a field path")));
        }
        Target::Message => {
            return Err(ctx.bad(
                "field",
                format!(
                    "[{field}] is full text: count a keyword field such as service or log.level"
                ),
            ));
        }
        Target::Time => {
            return Err(ctx.bad(
                "field",
                format!("[{field}] is the event time: use a date_histogram"),
            ));
        }
    };
    Ok(out)
}

fn terms_order(ctx: &Ctx<'_>, v: &Value) -> Result<TermsOrder, ApiError> {
    let entries: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let [Value::Object(o)] = entries.as_slice() else {
        return Err(ctx.bad(
            "order",
            format!("must be one {{\"_count\" or \"_key\": \"asc\" or \"desc\"}}, got {v}"),
        ));
    };
    let mut it = o.iter();
    let (Some((key, dir)), None) = (it.next(), it.next()) else {
        return Err(ctx.bad("order", format!("must name one key, got {v}")));
    };
    match (key.as_str(), dir.as_str()) {
        ("_count", Some("desc")) => Ok(TermsOrder::CountDesc),
        ("_key" | "_term", Some("asc")) => Ok(TermsOrder::KeyAsc),
        ("_key" | "_term", Some("desc")) => Ok(TermsOrder::KeyDesc),
        ("_count", Some("asc")) => Err(ctx.bad(
            "order",
            "{\"_count\": \"asc\"} is not supported: its counts cannot be bounded; order by _key instead",
        )),
        _ => Err(ctx.bad(
            "order",
            format!("{v} is not supported: order by {{\"_count\": \"desc\"}} or {{\"_key\": \"asc\" or \"desc\"}}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shiplog_core::query::KeywordField;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").unwrap()
    }

    #[test]
    fn terms_fields_map_to_keywords_or_paths_inside_fields() {
        let field = |f: &str| match parse(&json!({"t": {"terms": {"field": f}}}), now()) {
            Ok(a) => match &a[0].kind {
                EsAggKind::Terms(t) => Ok(t.field.clone()),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.message),
        };
        assert_eq!(
            field("service.name"),
            Ok(TermsField::Keyword(KeywordField::Service))
        );
        assert_eq!(
            field("log.level"),
            Ok(TermsField::Keyword(KeywordField::Level))
        );
        assert_eq!(
            field("host.name.keyword"),
            Ok(TermsField::Keyword(KeywordField::Node))
        );
        assert_eq!(
            field("fields.user.id"),
            Ok(TermsField::Json {
                root: JsonRoot::Fields,
                path: "user.id".into()
            })
        );
        assert_eq!(
            field("_index"),
            Ok(TermsField::Json {
                root: JsonRoot::Fields,
                path: "_index".into()
            })
        );
        assert!(field("message").unwrap_err().contains("full text"));
        assert!(field("@timestamp").unwrap_err().contains("date_histogram"));
        assert!(field("a..b").unwrap_err().contains("not a field path"));
    }

    #[test]
    fn sub_aggregations_nest_one_level() {
        let aggs = parse(
            &json!({"per_hour": {
                "date_histogram": {"field": "@timestamp", "calendar_interval": "hour"},
                "meta": {"panel": 3},
                "aggs": {"top": {"terms": {"field": "service", "size": 3, "order": {"_key": "asc"}}}}
            }}),
            now(),
        )
        .unwrap();
        assert_eq!(aggs.len(), 1);
        assert_eq!(aggs[0].meta, Some(json!({"panel": 3})));
        assert_eq!(aggs[0].subs[0].name, "top");
        assert!(matches!(
            &aggs[0].subs[0].kind,
            EsAggKind::Terms(Terms {
                size: 3,
                order: TermsOrder::KeyAsc,
                ..
            })
        ));
        let deep = json!({"a": {"terms": {"field": "service"}, "aggs": {"b": {"terms": {"field": "level"},
            "aggs": {"c": {"terms": {"field": "host"}}}}}}});
        let err = parse(&deep, now()).unwrap_err();
        assert!(err.message.contains("[a>b]"), "{}", err.message);
        assert!(err.message.contains("one level"), "{}", err.message);
    }

    #[test]
    fn unknown_types_and_options_are_named() {
        let err = parse(
            &json!({"avg_latency": {"avg": {"field": "latency_ms"}}}),
            now(),
        )
        .unwrap_err();
        assert_eq!(err.code, "unknown_aggregation");
        assert!(
            err.message.contains("[avg]") && err.message.contains("[avg_latency]"),
            "{}",
            err.message
        );
        for (aggs, needle) in [
            (
                json!({"t": {"terms": {"field": "service", "include": "a.*"}}}),
                "[include]",
            ),
            (
                json!({"t": {"terms": {"field": "service", "size": 0}}}),
                "[size]",
            ),
            (
                json!({"t": {"terms": {"field": "service", "min_doc_count": 0}}}),
                "[min_doc_count]",
            ),
            (
                json!({"t": {"terms": {"field": "service", "order": {"_count": "asc"}}}}),
                "[order]",
            ),
            (json!({"t": {"terms": {}}}), "[field]"),
            (
                json!({"t": {"terms": {"field": "service"}, "date_histogram": {}}}),
                "two aggregation type",
            ),
            (json!({"t": {}}), "missing definition"),
            (json!({"t": 3}), "must be an object"),
            (
                json!({"a[0]": {"terms": {"field": "service"}}}),
                "invalid aggregation name",
            ),
            (json!([1]), "must be an object"),
            (
                json!({"h": {"date_histogram": {"field": "service", "fixed_interval": "1m"}}}),
                "not a time field",
            ),
            (
                json!({"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m", "time_zone": "Europe/Paris"}}}),
                "UTC",
            ),
            (
                json!({"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m", "offset": "+6h"}}}),
                "[offset]",
            ),
            (
                json!({"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m", "extended_bounds": {"min": 10, "max": 5}}}}),
                "after max",
            ),
            (
                json!({"h": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m", "order": {"_key": "desc"}}}}),
                "[order]",
            ),
        ] {
            let err = parse(&aggs, now()).unwrap_err();
            assert_eq!(err.status, 400);
            assert!(err.message.contains(needle), "{aggs}: {}", err.message);
            assert!(!err.message.ends_with('.'), "{}", err.message);
        }
    }
}
