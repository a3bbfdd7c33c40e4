//! The options of an Elasticsearch `date_histogram` aggregation: the field, the interval in
//! each of its three spellings, and how buckets are listed (see [`super::es_aggs`]).
//!
//! Buckets are in UTC and aligned to the interval since the Unix epoch, so calendar
//! minutes, hours and days are the same as fixed ones; calendar weeks and longer vary in
//! length (or start on a Monday) and are refused, as are other time zones and offsets.

use serde_json::{Map, Value};
use shiplog_core::Timestamp;

use super::es_aggs::{Ctx, DateHistogram};
use super::es_query::{Target, date_bound, target};
use crate::error::ApiError;

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

/// Reads the options of a `date_histogram`.
pub(super) fn parse(
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

#[cfg(test)]
mod tests {
    use super::super::es_aggs::{EsAggKind, parse as parse_aggs};
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-22T12:00:00Z").unwrap()
    }

    fn interval(spec: Value) -> Result<i64, String> {
        let aggs = json!({"h": {"date_histogram": spec}});
        match parse_aggs(&aggs, now()) {
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
    fn histogram_options_are_read() {
        let aggs = parse_aggs(
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
