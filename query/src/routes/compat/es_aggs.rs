//! Elasticsearch aggregations, as a `_search` body names them in `aggs` (or `aggregations`):
//! reading them into [`EsAgg`] trees. [`super::es_aggs_run`] runs them on the native
//! aggregation engine (`shiplog_indexer::aggregate`) and writes Elasticsearch's answer.
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

use super::es_query::{Target, date_bound, target};
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
        "date_histogram" => date_histogram(opts, path, now).map(EsAggKind::DateHistogram),
        "terms" => terms(opts, path).map(EsAggKind::Terms),
        other => Err(ApiError::bad_request(
            "unknown_aggregation",
            format!(
                "unknown aggregation type [{other}] in aggregation [{path}]: shiplog supports {SUPPORTED}"
            ),
        )),
    }
}

/// An option of one aggregation, for error messages: `[terms] of [by_service]`.
struct Ctx<'a> {
    typ: &'static str,
    path: &'a str,
}

impl Ctx<'_> {
    fn bad(&self, option: &str, message: impl std::fmt::Display) -> ApiError {
        bad(format!(
            "[{}] option [{option}] of aggregation [{}]: {message}",
            self.typ, self.path
        ))
    }

    fn whole(&self, option: &str, v: &Value) -> Result<u64, ApiError> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| self.bad(option, format!("must be a whole number ≥ 0, got {v}")))
    }

    fn flag(&self, option: &str, v: &Value) -> Result<bool, ApiError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
            _ => Err(self.bad(option, format!("must be true or false, got {v}"))),
        }
    }

    fn text<'v>(&self, option: &str, v: &'v Value) -> Result<&'v str, ApiError> {
        v.as_str()
            .ok_or_else(|| self.bad(option, format!("must be a string, got {v}")))
    }
}

const NS_PER_MS: i64 = 1_000_000;
const MINUTE_NS: i64 = 60 * 1_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;
const DAY_NS: i64 = 24 * HOUR_NS;

/// Calendar units of a fixed length in UTC; `None` for the known ones that are not.
fn calendar(s: &str) -> Option<Option<i64>> {
    match s {
        "minute" | "1m" => Some(Some(MINUTE_NS)),
        "hour" | "1h" => Some(Some(HOUR_NS)),
        "day" | "1d" => Some(Some(DAY_NS)),
        "week" | "1w" | "month" | "1M" | "quarter" | "1q" | "year" | "1y" => Some(None),
        _ => None,
    }
}

fn calendar_interval(ctx: &Ctx<'_>, option: &str, s: &str) -> Result<i64, ApiError> {
    match calendar(s) {
        Some(Some(ns)) => Ok(ns),
        Some(None) => Err(ctx.bad(
            option,
            format!(
                "calendar interval [{s}] is not supported: buckets are minute, hour or day (1m, 1h, 1d), or a fixed_interval"
            ),
        )),
        None => Err(ctx.bad(
            option,
            format!(
                "[{s}] is not a calendar interval: use minute, hour or day (1m, 1h, 1d), or fixed_interval for multiples such as 5m"
            ),
        )),
    }
}

/// `<whole number><unit>`, units `ms`, `s`, `m`, `h`, `d`.
fn fixed_interval(ctx: &Ctx<'_>, option: &str, s: &str) -> Result<i64, ApiError> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let unit_ns = match unit {
        "ms" => Some(NS_PER_MS),
        "s" => Some(1_000 * NS_PER_MS),
        "m" => Some(MINUTE_NS),
        "h" => Some(HOUR_NS),
        "d" => Some(DAY_NS),
        _ => None,
    };
    let n: Option<i64> = digits.parse().ok().filter(|n| *n >= 1);
    match (n, unit_ns) {
        (Some(n), Some(u)) => n.checked_mul(u).ok_or_else(|| {
            ctx.bad(option, format!("interval [{s}] is too long"))
        }),
        _ => Err(ctx.bad(
            option,
            format!(
                "[{s}] is not a fixed interval: use a whole number ≥ 1 and a unit of ms, s, m, h or d, such as 30s or 5m"
            ),
        )),
    }
}

fn date_histogram(
    opts: &Map<String, Value>,
    path: &str,
    now: Timestamp,
) -> Result<DateHistogram, ApiError> {
    let ctx = Ctx {
        typ: "date_histogram",
        path,
    };
    let mut field = None;
    let mut interval = None;
    let mut out = DateHistogram {
        interval_ns: 0,
        min_doc_count: 0,
        extended_bounds: None,
        keyed: false,
        epoch_millis: false,
    };
    for (k, v) in opts {
        let set_interval = |interval: &mut Option<(String, i64)>, ns: i64| {
            if let Some((first, _)) = interval {
                return Err(ctx.bad(
                    k,
                    format!("give one interval, not both [{first}] and [{k}]"),
                ));
            }
            *interval = Some((k.clone(), ns));
            Ok(())
        };
        match k.as_str() {
            "field" => field = Some(ctx.text(k, v)?),
            "fixed_interval" => {
                set_interval(&mut interval, fixed_interval(&ctx, k, ctx.text(k, v)?)?)?
            }
            "calendar_interval" => {
                set_interval(&mut interval, calendar_interval(&ctx, k, ctx.text(k, v)?)?)?
            }
            "interval" => {
                let ns = match v {
                    Value::Number(_) => {
                        let ms = ctx.whole(k, v)?;
                        i64::try_from(ms)
                            .ok()
                            .and_then(|ms| ms.checked_mul(NS_PER_MS))
                            .filter(|ns| *ns > 0)
                            .ok_or_else(|| {
                                ctx.bad(k, format!("{ms} milliseconds is not a usable interval"))
                            })?
                    }
                    _ => {
                        let s = ctx.text(k, v)?;
                        match calendar(s) {
                            Some(_) => calendar_interval(&ctx, k, s)?,
                            None => fixed_interval(&ctx, k, s)?,
                        }
                    }
                };
                set_interval(&mut interval, ns)?;
            }
            "min_doc_count" => out.min_doc_count = ctx.whole(k, v)?,
            "keyed" => out.keyed = ctx.flag(k, v)?,
            "format" => {
                out.epoch_millis = match ctx.text(k, v)? {
                    "epoch_millis" => true,
                    "strict_date_optional_time"
                    | "date_optional_time"
                    | "strict_date_time"
                    | "date_time" => false,
                    other => {
                        return Err(ctx.bad(
                            k,
                            format!("format [{other}] is not supported: use strict_date_optional_time or epoch_millis"),
                        ));
                    }
                }
            }
            "time_zone" => {
                let tz = ctx.text(k, v)?;
                if !matches!(
                    tz,
                    "UTC" | "utc" | "Z" | "+00:00" | "-00:00" | "Etc/UTC" | "GMT"
                ) {
                    return Err(ctx.bad(
                        k,
                        format!("time zone [{tz}] is not supported: buckets are in UTC"),
                    ));
                }
            }
            "offset" => {
                let zero = matches!(v, Value::Number(n) if n.as_i64() == Some(0))
                    || matches!(
                        v.as_str(),
                        Some("0" | "0ms" | "+0ms" | "0s" | "+0s" | "0m" | "0h" | "0d" | "+0d")
                    );
                if !zero {
                    return Err(ctx.bad(k, format!("offset {v} is not supported: buckets start at the interval since the Unix epoch")));
                }
            }
            "extended_bounds" => {
                let Value::Object(b) = v else {
                    return Err(ctx.bad(k, "must be an object {\"min\": ..., \"max\": ...}"));
                };
                let bound = |name: &str, op: &str| -> Result<Timestamp, ApiError> {
                    let v = b
                        .get(name)
                        .ok_or_else(|| ctx.bad(k, format!("missing [{name}]")))?;
                    date_bound(v, op, now).map_err(|e| ctx.bad(&format!("{k}.{name}"), e))
                };
                if let Some(other) = b.keys().find(|n| !matches!(n.as_str(), "min" | "max")) {
                    return Err(ctx.bad(k, format!("unknown bound [{other}]: use min and max")));
                }
                let (min, max) = (bound("min", "gte")?, bound("max", "lte")?);
                if min > max {
                    return Err(ctx.bad(k, format!("min ({min}) is after max ({max})")));
                }
                out.extended_bounds = Some((min, max));
            }
            other => {
                return Err(ctx.bad(
                    other,
                    "not supported: use field, fixed_interval, calendar_interval, interval, min_doc_count, extended_bounds, keyed, format or time_zone",
                ));
            }
        }
    }
    let field =
        field.ok_or_else(|| ctx.bad("field", "missing: name the timestamp field, @timestamp"))?;
    if target(field) != Target::Time {
        return Err(ctx.bad(
            "field",
            format!("[{field}] is not a time field: bucket by @timestamp"),
        ));
    }
    let (_, interval_ns) = interval.ok_or_else(|| {
        ctx.bad(
            "fixed_interval",
            "required one of fields [interval, calendar_interval, fixed_interval], but none were specified",
        )
    })?;
    if interval_ns < NS_PER_MS {
        return Err(ctx.bad("interval", "must be at least 1ms"));
    }
    out.interval_ns = interval_ns;
    Ok(out)
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

    fn interval(spec: Value) -> Result<i64, String> {
        let aggs = json!({"h": {"date_histogram": spec}});
        match parse(&aggs, now()) {
            Ok(a) => match &a[0].kind {
                EsAggKind::DateHistogram(h) => Ok(h.interval_ns),
                other => panic!("{other:?}"),
            },
            Err(e) => Err(e.message),
        }
    }

    #[test]
    fn intervals_read_in_every_form() {
        let f = |k: &str, v: Value| interval(json!({"field": "@timestamp", k: v}));
        assert_eq!(f("fixed_interval", json!("30s")), Ok(30_000_000_000));
        assert_eq!(f("fixed_interval", json!("5m")), Ok(5 * MINUTE_NS));
        assert_eq!(f("fixed_interval", json!("250ms")), Ok(250 * NS_PER_MS));
        assert_eq!(f("fixed_interval", json!("2d")), Ok(2 * DAY_NS));
        assert_eq!(f("calendar_interval", json!("minute")), Ok(MINUTE_NS));
        assert_eq!(f("calendar_interval", json!("1h")), Ok(HOUR_NS));
        assert_eq!(f("calendar_interval", json!("day")), Ok(DAY_NS));
        assert_eq!(f("interval", json!("hour")), Ok(HOUR_NS));
        assert_eq!(f("interval", json!("10m")), Ok(10 * MINUTE_NS));
        assert_eq!(f("interval", json!(60_000)), Ok(MINUTE_NS));
        for (k, v, needle) in [
            ("calendar_interval", json!("2d"), "not a calendar interval"),
            ("calendar_interval", json!("1M"), "[1M] is not supported"),
            ("interval", json!("week"), "[week] is not supported"),
            ("fixed_interval", json!("1w"), "not a fixed interval"),
            ("fixed_interval", json!("0s"), "not a fixed interval"),
            ("fixed_interval", json!("m"), "not a fixed interval"),
            ("fixed_interval", json!(5), "must be a string"),
            ("fixed_interval", json!("99999999999d"), "too long"),
        ] {
            let err = f(k, v.clone()).unwrap_err();
            assert!(err.contains(needle), "{k}={v}: {err}");
        }
        let err = interval(json!({"field": "@timestamp"})).unwrap_err();
        assert!(err.contains("required one of fields"), "{err}");
        let err = interval(
            json!({"field": "@timestamp", "fixed_interval": "1m", "calendar_interval": "1m"}),
        )
        .unwrap_err();
        assert!(err.contains("give one interval"), "{err}");
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

    #[test]
    fn histogram_options_are_read() {
        let aggs = parse(
            &json!({"h": {"date_histogram": {
                "field": "timestamp", "fixed_interval": "1h", "min_doc_count": 1, "keyed": true,
                "format": "epoch_millis", "time_zone": "UTC",
                "extended_bounds": {"min": "now-1d", "max": 1795348800000i64}
            }}}),
            now(),
        )
        .unwrap();
        let EsAggKind::DateHistogram(h) = &aggs[0].kind else {
            panic!("{aggs:?}")
        };
        assert_eq!(h.min_doc_count, 1);
        assert!(h.keyed && h.epoch_millis);
        let (min, max) = h.extended_bounds.unwrap();
        assert_eq!(min, now().offset(-DAY_NS));
        assert_eq!(max.as_nanos(), 1_795_348_800_000 * NS_PER_MS);
    }
}
