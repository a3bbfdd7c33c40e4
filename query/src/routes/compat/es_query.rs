//! The Elasticsearch query DSL, translated to shiplog's [`Query`] tree.
//!
//! | DSL | tree |
//! |---|---|
//! | `match_all`, `match_none` | [`Query::All`], its negation |
//! | `query_string`, `simple_query_string`, URL `q=` | shiplog's own language ([`shiplog_core::query::parse`]): words next to each other are ANDed |
//! | `match` (operator `or` by default), `match_phrase` | message terms, or an exact keyword / `fields` value |
//! | `term`, `terms` | an exact keyword / `fields` value (a message term on `message`) |
//! | `range` | [`Query::Time`] on `@timestamp`/`timestamp`/`ts` (RFC 3339, epoch ms, `now-15m`); [`Query::Number`] on any other field |
//! | `prefix`, `wildcard`, `regexp` | [`Query::Pattern`] on the message or a keyword field |
//! | `bool` | `must` and `filter` ANDed, `must_not` negated, `should` by `minimum_should_match` (default 1 when there is no `must`/`filter`, else 0) |
//!
//! Field names: `message`/`msg`/`log` are the message; `level`/`log.level`/`severity`,
//! `service`/`service.name`, `host`/`host.name`/`node`, `container.name`, `container.id`,
//! `container.image.name`/`image`, `stream` and `kind` are keyword fields; `fields.x` and
//! any other name `x` look inside `fields` (a trailing `.keyword` is ignored). Anything
//! else (an unknown query type, an option we cannot honour) is refused with 400 naming it,
//! never silently widened. Aggregations can reuse [`translate`] for their filter part.

use std::ops::Bound;

use serde_json::{Map, Value};
use shiplog_core::query::{
    JsonRoot, KeywordField, MAX_CLAUSES, NumberRange, Pattern, PatternField, Query, TimeRange,
    analysis,
};
use shiplog_core::timestamp::parse_duration_nanos;
use shiplog_core::{Level, Timestamp};

use super::es_doc::parse_time;
use crate::error::ApiError;

/// Deepest nesting of compound queries accepted.
pub const MAX_NESTING: usize = 20;

/// What a field name in a query refers to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The message text.
    Message,
    /// The event time.
    Time,
    /// A keyword field.
    Keyword(KeywordField),
    /// A path inside `fields`.
    Json(String),
}

/// Resolves a field name as Elasticsearch users write it.
pub fn target(field: &str) -> Target {
    let field = field.strip_suffix(".keyword").unwrap_or(field);
    match field {
        "message" | "msg" | "log" => Target::Message,
        "@timestamp" | "timestamp" | "ts" => Target::Time,
        "level" | "log.level" | "severity" => Target::Keyword(KeywordField::Level),
        "service" | "service.name" => Target::Keyword(KeywordField::Service),
        "host" | "host.name" | "node" => Target::Keyword(KeywordField::Node),
        "container.name" | "container_name" | "container" => {
            Target::Keyword(KeywordField::ContainerName)
        }
        "container.id" | "container_id" => Target::Keyword(KeywordField::ContainerId),
        "container.image.name" | "image" => Target::Keyword(KeywordField::Image),
        "stream" => Target::Keyword(KeywordField::Stream),
        "kind" => Target::Keyword(KeywordField::Kind),
        "model" => Target::Keyword(KeywordField::Model),
        "model_version" => Target::Keyword(KeywordField::ModelVersion),
        "request_id" => Target::Keyword(KeywordField::RequestId),
        other => Target::Json(other.strip_prefix("fields.").unwrap_or(other).to_string()),
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad_query", message)
}

/// Translates one query object (`{"match": {...}}`) into a tree; `now` anchors date math.
pub fn translate(query: &Value, now: Timestamp) -> Result<Query, ApiError> {
    let mut budget = MAX_CLAUSES;
    translate_at(query, now, 0, &mut budget)
}

fn translate_at(
    query: &Value,
    now: Timestamp,
    depth: usize,
    budget: &mut usize,
) -> Result<Query, ApiError> {
    if depth > MAX_NESTING {
        return Err(bad(format!(
            "query nests deeper than {MAX_NESTING} levels: flatten it"
        )));
    }
    if *budget == 0 {
        return Err(bad(format!(
            "query has more than {MAX_CLAUSES} clauses: split it"
        )));
    }
    *budget -= 1;
    let obj = query.as_object().ok_or_else(|| {
        bad(format!(
            "a query must be an object like {{\"match_all\": {{}}}}, got {query}"
        ))
    })?;
    let mut entries = obj.iter();
    let (kind, body) = match (entries.next(), entries.next()) {
        (Some(e), None) => e,
        (None, _) => {
            return Err(bad(
                "empty query object: name a query type such as match_all",
            ));
        }
        (Some((a, _)), Some((b, _))) => {
            return Err(bad(format!(
                "a query object holds one query type, got [{a}] and [{b}]: combine them with bool"
            )));
        }
    };
    match kind.as_str() {
        "match_all" => Ok(Query::All),
        "match_none" => Ok(none()),
        "query_string" | "simple_query_string" => query_string(kind, body),
        "match" => field_query(kind, body, "query", |t, v, opts| {
            match_query(t, v, opts, false)
        }),
        "match_phrase" => field_query(kind, body, "query", |t, v, opts| {
            match_query(t, v, opts, true)
        }),
        "term" => field_query(kind, body, "value", |t, v, _| exact(t, v)),
        "terms" => terms_query(body),
        "range" => range_query(body, now),
        "prefix" => field_query(kind, body, "value", |t, v, _| {
            pattern(t, v, PatternKind::Prefix)
        }),
        "wildcard" => field_query(kind, body, "value", |t, v, _| {
            pattern(t, v, PatternKind::Wildcard)
        }),
        "regexp" => field_query(kind, body, "value", |t, v, _| {
            pattern(t, v, PatternKind::Regex)
        }),
        "bool" => bool_query(body, now, depth, budget),
        other => Err(bad(format!(
            "query type [{other}] is not supported: use match_all, query_string, match, \
             match_phrase, term, terms, range, prefix, wildcard, regexp or bool"
        ))),
    }
}

fn none() -> Query {
    Query::Not(Box::new(Query::All))
}

fn query_string(kind: &str, body: &Value) -> Result<Query, ApiError> {
    let text = body
        .get("query")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("[{kind}] needs a string \"query\"")))?;
    if let Some(op) = body.get("default_operator").and_then(Value::as_str)
        && !op.eq_ignore_ascii_case("and")
    {
        return Err(bad(format!(
            "[{kind}] default_operator '{op}' is not supported: words are always ANDed, \
             write OR between them"
        )));
    }
    lucene_text(text)
}

/// Query text as ES takes it (`query_string` or URL `q=`): shiplog's own language, which
/// also reads Lucene's match-everything forms `*` and `*:*` (Kibana's default).
pub(super) fn lucene_text(text: &str) -> Result<Query, ApiError> {
    shiplog_core::query::parse(text).map_err(|e| ApiError::query(&e))
}

/// Options of a field query besides its value (`operator`, ...).
type Options<'a> = Option<&'a Map<String, Value>>;

/// `{"match": {"field": value}}` or `{"match": {"field": {"query": value, ...}}}`.
fn field_query(
    kind: &str,
    body: &Value,
    value_key: &str,
    build: impl Fn(&Target, &Value, Options<'_>) -> Result<Query, ApiError>,
) -> Result<Query, ApiError> {
    let obj = body.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        bad(format!(
            "[{kind}] needs exactly one field, like {{\"{kind}\": {{\"message\": \"...\"}}}}"
        ))
    })?;
    let (field, spec) = obj.iter().next().expect("checked len 1");
    let (value, opts) = match spec {
        Value::Object(o) => (
            o.get(value_key)
                .ok_or_else(|| bad(format!("[{kind}] on [{field}] needs \"{value_key}\"")))?,
            Some(o),
        ),
        v => (v, None),
    };
    build(&target(field), value, opts).map_err(|e| ApiError {
        message: format!("[{kind}] on [{field}]: {}", e.message),
        ..e
    })
}

fn scalar(v: &Value) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(bad(format!(
            "expected a string, number or boolean, got {other}"
        ))),
    }
}

fn keyword_value(field: KeywordField, value: &str) -> Result<String, ApiError> {
    match field {
        KeywordField::Level => Level::parse(value)
            .map(|l| l.as_str().to_string())
            .ok_or_else(|| {
                bad(format!(
                    "unknown level '{value}': use trace, debug, info, warn, error or fatal"
                ))
            }),
        KeywordField::Kind | KeywordField::Stream => Ok(value.to_ascii_lowercase()),
        _ => Ok(value.to_string()),
    }
}

fn text(terms: Vec<String>) -> Query {
    if terms.is_empty() {
        none()
    } else {
        Query::Text { terms }
    }
}

/// An exact value: a keyword, a `fields` value, a message term, or an instant.
fn exact(target: &Target, value: &Value) -> Result<Query, ApiError> {
    let v = scalar(value)?;
    Ok(match target {
        Target::Message => text(analysis::terms(&v)),
        Target::Time => {
            let t = parse_time(value).map_err(bad)?;
            Query::Time(TimeRange {
                from: Bound::Included(t),
                to: Bound::Included(t),
            })
        }
        Target::Keyword(field) => Query::Keyword {
            field: *field,
            value: keyword_value(*field, &v)?,
        },
        Target::Json(path) => Query::Json {
            root: JsonRoot::Fields,
            path: path.clone(),
            value: v,
        },
    })
}

fn match_query(
    target: &Target,
    value: &Value,
    opts: Options<'_>,
    phrase: bool,
) -> Result<Query, ApiError> {
    if *target != Target::Message {
        return exact(target, value);
    }
    let terms = analysis::terms(&scalar(value)?);
    if phrase || terms.len() <= 1 {
        return Ok(text(terms));
    }
    let op = opts
        .and_then(|o| o.get("operator"))
        .and_then(Value::as_str)
        .unwrap_or("or");
    let each: Vec<Query> = terms.into_iter().map(|t| text(vec![t])).collect();
    match op.to_ascii_lowercase().as_str() {
        "or" => Ok(Query::Or(each)),
        "and" => Ok(Query::And(each)),
        other => Err(bad(format!("operator '{other}' is not one of and, or"))),
    }
}

fn terms_query(body: &Value) -> Result<Query, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("[terms] needs an object"))?;
    let mut fields = obj.iter().filter(|(k, _)| *k != "boost");
    let (field, values) = match (fields.next(), fields.next()) {
        (Some(f), None) => f,
        _ => {
            return Err(bad(
                "[terms] needs exactly one field with an array of values",
            ));
        }
    };
    let values = values
        .as_array()
        .ok_or_else(|| bad(format!("[terms] on [{field}] needs an array of values")))?;
    if values.len() > MAX_CLAUSES {
        return Err(bad(format!(
            "[terms] on [{field}] has more than {MAX_CLAUSES} values"
        )));
    }
    let t = target(field);
    let alternatives = values
        .iter()
        .map(|v| exact(&t, v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError {
            message: format!("[terms] on [{field}]: {}", e.message),
            ..e
        })?;
    Ok(Query::Or(alternatives))
}

fn range_query(body: &Value, now: Timestamp) -> Result<Query, ApiError> {
    let obj = body
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| bad("[range] needs exactly one field"))?;
    let (field, spec) = obj.iter().next().expect("checked len 1");
    let spec = spec
        .as_object()
        .ok_or_else(|| bad(format!("[range] on [{field}] needs an object of bounds")))?;
    let mut bounds: Vec<(&str, &Value)> = Vec::new();
    for (k, v) in spec {
        match k.as_str() {
            "gt" | "gte" | "lt" | "lte" => bounds.push((k.as_str(), v)),
            "format" | "boost" | "relation" => {}
            "time_zone" => {
                let tz = v.as_str().unwrap_or("");
                if !matches!(tz, "UTC" | "Z" | "+00:00" | "Etc/UTC") {
                    return Err(bad(format!(
                        "[range] on [{field}]: time_zone '{tz}' is not supported: give UTC \
                         or offsets inside the dates"
                    )));
                }
            }
            other => {
                return Err(bad(format!(
                    "[range] on [{field}]: option [{other}] is not supported: use gt, gte, lt, lte"
                )));
            }
        }
    }
    let err = |e: String| bad(format!("[range] on [{field}]: {e}"));
    match target(field) {
        Target::Time => {
            let mut range = TimeRange {
                from: Bound::Unbounded,
                to: Bound::Unbounded,
            };
            for (op, v) in bounds {
                let t = date_bound(v, op, now).map_err(err)?;
                match op {
                    "gt" => range.from = Bound::Excluded(t),
                    "gte" => range.from = Bound::Included(t),
                    "lt" => range.to = Bound::Excluded(t),
                    _ => range.to = Bound::Included(t),
                }
            }
            Ok(Query::Time(range))
        }
        Target::Json(path) => {
            let mut range = NumberRange {
                lower: Bound::Unbounded,
                upper: Bound::Unbounded,
            };
            for (op, v) in bounds {
                let n = number(v).map_err(err)?;
                match op {
                    "gt" => range.lower = Bound::Excluded(n),
                    "gte" => range.lower = Bound::Included(n),
                    "lt" => range.upper = Bound::Excluded(n),
                    _ => range.upper = Bound::Included(n),
                }
            }
            Ok(Query::Number {
                root: JsonRoot::Fields,
                path,
                range,
            })
        }
        _ => Err(bad(format!(
            "[range] on [{field}] is not supported: ranges apply to @timestamp and numeric fields"
        ))),
    }
}

fn number(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|f| f.is_finite())
        .ok_or_else(|| format!("bound {v} is not a number"))
}

/// A date bound: epoch milliseconds, RFC 3339, a date alone (for `gt` and `lte`, the end of
/// that day, as Elasticsearch rounds), or `now` with an optional `+`/`-` duration.
pub(super) fn date_bound(v: &Value, op: &str, now: Timestamp) -> Result<Timestamp, String> {
    let Value::String(s) = v else {
        return parse_time(v);
    };
    let s = s.trim();
    if s.contains("||") || (s.starts_with("now") && s.contains('/')) {
        return Err(format!(
            "date math '{s}' is not supported: use now, now-15m, now+1h or an RFC 3339 time"
        ));
    }
    if let Some(rest) = s.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, dur) = match rest.split_at(1) {
            ("-", d) => (-1, d),
            ("+", d) => (1, d),
            _ => return Err(format!("expected '-' or '+' after 'now' in '{s}'")),
        };
        let nanos = parse_duration_nanos(dur).map_err(|e| e.to_string())?;
        return Ok(now.offset(sign * nanos));
    }
    let t = parse_time(v)?;
    let date_only = s.len() == 10 && s.as_bytes().get(4) == Some(&b'-');
    if date_only && matches!(op, "gt" | "lte") {
        return Ok(t.offset(86_400 * 1_000_000_000 - 1));
    }
    Ok(t)
}

#[derive(Clone, Copy)]
enum PatternKind {
    Prefix,
    Wildcard,
    Regex,
}

fn pattern(target: &Target, value: &Value, kind: PatternKind) -> Result<Query, ApiError> {
    let text = scalar(value)?;
    let (field, lower) = match target {
        Target::Message => (PatternField::Message, true),
        Target::Keyword(k) => (
            PatternField::Keyword(*k),
            matches!(
                k,
                KeywordField::Level | KeywordField::Kind | KeywordField::Stream
            ),
        ),
        _ => {
            return Err(bad(
                "patterns apply to the message and keyword fields (service, host, container, \
                 level ...), not to values inside fields",
            ));
        }
    };
    let pattern = match kind {
        PatternKind::Regex => {
            Pattern::regex(&text, lower).map_err(|e| bad(format!("bad regex: {}", e.message)))?
        }
        PatternKind::Prefix | PatternKind::Wildcard => {
            use shiplog_core::query::pattern::GlobToken;
            let mut tokens: Vec<GlobToken> = Vec::new();
            let mut chars = text.chars();
            while let Some(c) = chars.next() {
                tokens.push(match (kind, c) {
                    (PatternKind::Wildcard, '*') => GlobToken::Many,
                    (PatternKind::Wildcard, '?') => GlobToken::One,
                    (PatternKind::Wildcard, '\\') => {
                        GlobToken::Literal(chars.next().unwrap_or('\\'))
                    }
                    (_, c) => GlobToken::Literal(c),
                });
            }
            if matches!(kind, PatternKind::Prefix) {
                tokens.push(GlobToken::Many);
            }
            if field == PatternField::Message
                && let Some(c) = tokens.iter().find_map(|t| match t {
                    GlobToken::Literal(c) if !c.is_alphanumeric() => Some(*c),
                    _ => None,
                })
            {
                return Err(bad(format!(
                    "'{text}' cannot match a message term: terms hold only letters and digits, \
                     never '{c}'"
                )));
            }
            Pattern::glob(tokens, lower)
        }
    };
    Ok(Query::Pattern { field, pattern })
}

fn clauses(v: Option<&Value>, name: &str) -> Result<Vec<Value>, ApiError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a.clone()),
        Some(o @ Value::Object(_)) => Ok(vec![o.clone()]),
        Some(other) => Err(bad(format!(
            "[bool] {name} must be a query or an array of queries, got {other}"
        ))),
    }
}

fn bool_query(
    body: &Value,
    now: Timestamp,
    depth: usize,
    budget: &mut usize,
) -> Result<Query, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("[bool] needs an object"))?;
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "must" | "filter" | "should" | "must_not" | "minimum_should_match" | "boost" | "_name"
        ) {
            return Err(bad(format!(
                "[bool] option [{k}] is not supported: use must, filter, should, must_not, \
                 minimum_should_match"
            )));
        }
    }
    let mut sub = |name: &str| -> Result<Vec<Query>, ApiError> {
        clauses(obj.get(name), name)?
            .iter()
            .map(|q| translate_at(q, now, depth + 1, budget))
            .collect()
    };
    let mut required = sub("must")?;
    required.extend(sub("filter")?);
    let should = sub("should")?;
    let must_not = sub("must_not")?;
    let default_min = usize::from(required.is_empty() && !should.is_empty());
    let min = match obj.get("minimum_should_match") {
        None => default_min,
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize).ok_or_else(|| {
            bad(format!(
                "minimum_should_match {n} must be a whole number ≥ 0"
            ))
        })?,
        Some(Value::String(s)) => s.trim().parse::<usize>().map_err(|_| {
            bad(format!(
                "minimum_should_match '{s}' is not supported: give a whole number"
            ))
        })?,
        Some(other) => {
            return Err(bad(format!(
                "minimum_should_match {other} must be a number"
            )));
        }
    };
    let mut all = required;
    match min {
        0 => {}
        1 => all.push(Query::Or(should)),
        m if m == should.len() => all.extend(should),
        m if m > should.len() => all.push(none()),
        m => all.push(at_least(&should, m)?),
    }
    all.extend(must_not.into_iter().map(|q| Query::Not(Box::new(q))));
    Ok(match all.len() {
        0 => Query::All,
        1 => all.pop().expect("one clause"),
        _ => Query::And(all),
    })
}

/// At least `m` of `qs`: an OR over every combination of `m` clauses, when there are few.
fn at_least(qs: &[Query], m: usize) -> Result<Query, ApiError> {
    const MAX_COMBINATIONS: usize = 64;
    let mut combos: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    fn walk(n: usize, m: usize, start: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if out.len() > MAX_COMBINATIONS {
            return;
        }
        if cur.len() == m {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            walk(n, m, i + 1, cur, out);
            cur.pop();
        }
    }
    walk(qs.len(), m, 0, &mut current, &mut combos);
    if combos.len() > MAX_COMBINATIONS {
        return Err(bad(format!(
            "minimum_should_match {m} of {} should clauses is too many combinations: use 1 or all",
            qs.len()
        )));
    }
    Ok(Query::Or(
        combos
            .into_iter()
            .map(|c| Query::And(c.into_iter().map(|i| qs[i].clone()).collect()))
            .collect(),
    ))
}
