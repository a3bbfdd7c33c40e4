//! Turns query text into a [`Query`], with a position and an expectation on every error.

use std::ops::Bound;

use super::lexer::{Lexed, RawBound, RawRange, Tok, err, lex};
use super::pattern::{GlobToken, Pattern};
use super::range::{self, NumberRange, Side, TimeRange};
use super::{JsonRoot, KeywordField, PatternField, Query, analysis};
use crate::event::{Kind, Level};
use crate::timestamp::Timestamp;

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Deepest nesting of parentheses and NOTs accepted.
pub const MAX_DEPTH: usize = 32;
/// Most leaf clauses in one query.
pub const MAX_CLAUSES: usize = 1024;

/// Why a query could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct ParseError {
    /// Character offset (0-based) where the problem was found.
    pub position: usize,
    /// What was wrong and what was expected there.
    pub message: String,
}

/// Where a value applies: the message, a keyword field, a JSON path, or the event time.
#[derive(Clone)]
enum Target {
    Message,
    Keyword(KeywordField),
    Json(JsonRoot, String),
    Time,
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Message => "the message".to_string(),
            Target::Keyword(f) => f.name().to_string(),
            Target::Json(root, path) => root.describe(path),
            Target::Time => "ts".to_string(),
        }
    }
}

/// A value token, as the parser hands it to [`Parser::leaf`].
enum Value {
    Word(String),
    Quoted(String),
    Wildcard(Vec<GlobToken>),
    Regex(String),
    Range(RawRange),
}

struct Parser {
    toks: Vec<Lexed>,
    at: usize,
    end: usize,
    clauses: usize,
    now: Timestamp,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|l| &l.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |l| l.pos)
    }

    fn or(&mut self, depth: usize, target: &Target) -> Result<Query, ParseError> {
        let mut parts = vec![self.and(depth, target)?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            parts.push(self.and(depth, target)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::Or(parts)
        })
    }

    fn and(&mut self, depth: usize, target: &Target) -> Result<Query, ParseError> {
        let mut parts = vec![self.unary(depth, target)?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.at += 1;
                    parts.push(self.unary(depth, target)?);
                }
                Some(Tok::Or | Tok::RParen) | None => break,
                Some(_) => parts.push(self.unary(depth, target)?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::And(parts)
        })
    }

    fn unary(&mut self, depth: usize, target: &Target) -> Result<Query, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(err(
                self.pos(),
                format!("query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        if self.peek() == Some(&Tok::Not) {
            self.at += 1;
            return Ok(Query::Not(Box::new(self.unary(depth + 1, target)?)));
        }
        self.primary(depth, target)
    }

    fn primary(&mut self, depth: usize, target: &Target) -> Result<Query, ParseError> {
        let pos = self.pos();
        let Some(lexed) = self.toks.get(self.at) else {
            return Err(err(
                pos,
                "expected a word, a phrase, field:value or '(' here",
            ));
        };
        let tok = lexed.tok.clone();
        self.at += 1;
        match tok {
            Tok::LParen => {
                let inner = self.or(depth + 1, target)?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(err(
                        self.pos(),
                        format!("expected ')' to close the '(' at character {pos}"),
                    ));
                }
                self.at += 1;
                Ok(inner)
            }
            Tok::RParen => Err(err(pos, "unexpected ')': there is no '(' to close")),
            Tok::And | Tok::Or => Err(err(
                pos,
                "expected a word, a phrase, field:value or '(' before AND/OR",
            )),
            Tok::Not => Err(err(pos, "expected something to negate after NOT")),
            Tok::Field(name) => {
                let inner = resolve_field(&name, pos)?;
                match self.peek() {
                    Some(
                        Tok::Word(_)
                        | Tok::Quoted(_)
                        | Tok::LParen
                        | Tok::Wildcard(_)
                        | Tok::Regex(_)
                        | Tok::Range(_),
                    ) => self.primary(depth + 1, &inner),
                    _ => Err(err(self.pos(), format!("expected a value after '{name}:'"))),
                }
            }
            Tok::Word(w) => self.leaf(target, Value::Word(w), pos),
            Tok::Quoted(q) => self.leaf(target, Value::Quoted(q), pos),
            Tok::Wildcard(g) => self.leaf(target, Value::Wildcard(g), pos),
            Tok::Regex(r) => self.leaf(target, Value::Regex(r), pos),
            Tok::Range(r) => self.leaf(target, Value::Range(r), pos),
        }
    }

    fn leaf(&mut self, target: &Target, value: Value, pos: usize) -> Result<Query, ParseError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(err(
                pos,
                format!("query has more than {MAX_CLAUSES} clauses"),
            ));
        }
        match (target, value) {
            (Target::Message, Value::Word(v)) => text(&v, "word", pos),
            (Target::Message, Value::Quoted(v)) => text(&v, "phrase", pos),
            (Target::Message, Value::Wildcard(glob)) => message_wildcard(glob, pos),
            (Target::Message, Value::Regex(re)) => Ok(Query::Pattern {
                field: PatternField::Message,
                pattern: regex(&re, true, pos)?,
            }),
            (Target::Keyword(field), Value::Word(v) | Value::Quoted(v)) => Ok(Query::Keyword {
                field: *field,
                value: normalize(*field, &v, pos)?,
            }),
            (Target::Keyword(field), Value::Wildcard(glob)) => Ok(Query::Pattern {
                field: PatternField::Keyword(*field),
                pattern: Pattern::glob(glob, lower_case_values(*field)),
            }),
            (Target::Keyword(field), Value::Regex(re)) => Ok(Query::Pattern {
                field: PatternField::Keyword(*field),
                pattern: regex(&re, lower_case_values(*field), pos)?,
            }),
            // latency_ms is a number, never a string: equality is a one-point range.
            (Target::Json(JsonRoot::Latency, _), Value::Word(v) | Value::Quoted(v)) => {
                let at = |side| {
                    range::number_bound(&v, side).map_err(|reason| {
                        err(pos, format!("bad number '{v}' for latency_ms: {reason}"))
                    })
                };
                Ok(Query::Number {
                    root: JsonRoot::Latency,
                    path: String::new(),
                    range: NumberRange {
                        lower: at(Side::LowerIncluded)?,
                        upper: at(Side::UpperIncluded)?,
                    },
                })
            }
            (Target::Json(root, path), Value::Word(v) | Value::Quoted(v)) => Ok(Query::Json {
                root: *root,
                path: path.clone(),
                value: v,
            }),
            (Target::Json(root, path), Value::Range(r)) => Ok(Query::Number {
                root: *root,
                path: path.clone(),
                range: NumberRange {
                    lower: bound(&r.lower, true, range::number_bound, &target.describe())?,
                    upper: bound(&r.upper, false, range::number_bound, &target.describe())?,
                },
            }),
            (Target::Time, Value::Word(v) | Value::Quoted(v)) => {
                let time = |side| {
                    range::time_bound(&v, side, self.now)
                        .map_err(|reason| err(pos, format!("bad time '{v}': {reason}")))
                };
                Ok(Query::Time(TimeRange {
                    from: time(Side::LowerIncluded)?,
                    to: time(Side::UpperIncluded)?,
                }))
            }
            (Target::Time, Value::Range(r)) => {
                let now = self.now;
                let time = |t: &str, s| range::time_bound(t, s, now);
                Ok(Query::Time(TimeRange {
                    from: bound(&r.lower, true, time, &target.describe())?,
                    to: bound(&r.upper, false, time, &target.describe())?,
                }))
            }
            (target @ (Target::Message | Target::Keyword(_)), Value::Range(_)) => Err(err(
                pos,
                format!(
                    "ranges apply to ts, latency_ms and fields./input./output.<path>, not to {}: \
                     quote the value to search for it literally",
                    target.describe()
                ),
            )),
            (target @ (Target::Json(..) | Target::Time), Value::Wildcard(_)) => Err(err(
                pos,
                format!(
                    "wildcards apply to the message and keyword fields, not to {}: quote the \
                     value to match '*' or '?' literally, or use a range",
                    target.describe()
                ),
            )),
            (target @ (Target::Json(..) | Target::Time), Value::Regex(_)) => Err(err(
                pos,
                format!(
                    "regexes apply to the message and keyword fields, not to {}",
                    target.describe()
                ),
            )),
        }
    }
}

/// Message text: one term, or a phrase of several.
fn text(value: &str, what: &str, pos: usize) -> Result<Query, ParseError> {
    let terms = analysis::terms(value);
    if terms.is_empty() {
        return Err(err(
            pos,
            format!("{what} '{value}' has no letters or digits to search for"),
        ));
    }
    Ok(Query::Text { terms })
}

/// A wildcard on the message matches single terms, which hold only letters and digits.
fn message_wildcard(glob: Vec<GlobToken>, pos: usize) -> Result<Query, ParseError> {
    let typed: String = glob
        .iter()
        .map(|t| match t {
            GlobToken::Literal(c) => *c,
            GlobToken::One => '?',
            GlobToken::Many => '*',
        })
        .collect();
    let match_all = match glob.as_slice() {
        // Lucene's `*:*` (any field, any value): one token to the lexer.
        [GlobToken::Many, GlobToken::Literal(':'), GlobToken::Many] => true,
        _ => glob.iter().all(|t| matches!(t, GlobToken::Many)),
    };
    if match_all {
        // Lucene's `*`, `*:*` (and `message:*`): every event, as Kibana and ES clients send.
        return Ok(Query::All);
    }
    let mut has_letters = false;
    for (i, t) in glob.iter().enumerate() {
        if let GlobToken::Literal(c) = t {
            if !c.is_alphanumeric() {
                return Err(err(
                    pos + i,
                    format!(
                        "wildcard '{typed}' cannot match: a message term holds only letters and \
                         digits, never '{c}'; use a pattern on one term, such as 'timeout*'"
                    ),
                ));
            }
            has_letters = true;
        }
    }
    if !has_letters {
        return Err(err(
            pos,
            format!("word '{typed}' has no letters or digits to search for"),
        ));
    }
    Ok(Query::Pattern {
        field: PatternField::Message,
        pattern: Pattern::glob(glob, true),
    })
}

fn regex(pattern: &str, case_insensitive: bool, pos: usize) -> Result<Pattern, ParseError> {
    Pattern::regex(pattern, case_insensitive).map_err(|e| {
        // The pattern starts after the opening slash; escaped slashes shift this a little.
        let at = e
            .offset
            .map_or(pos, |o| pos + 1 + o.min(pattern.chars().count()));
        err(at, format!("bad regex: {}", e.message))
    })
}

/// Levels, kinds and streams are stored in lower case, so patterns on them ignore case.
fn lower_case_values(field: KeywordField) -> bool {
    matches!(
        field,
        KeywordField::Level | KeywordField::Kind | KeywordField::Stream
    )
}

/// Reads one end of a range with `read`, naming the field (as [`Target::describe`] puts it)
/// and the position when it fails.
fn bound<T>(
    raw: &RawBound,
    lower: bool,
    read: impl Fn(&str, Side) -> Result<Bound<T>, String>,
    field: &str,
) -> Result<Bound<T>, ParseError> {
    let RawBound::Value {
        text,
        pos,
        inclusive,
    } = raw
    else {
        return Ok(Bound::Unbounded);
    };
    let side = match (lower, inclusive) {
        (true, true) => Side::LowerIncluded,
        (true, false) => Side::LowerExcluded,
        (false, true) => Side::UpperIncluded,
        (false, false) => Side::UpperExcluded,
    };
    read(text, side).map_err(|reason| {
        err(
            *pos,
            format!("bad bound '{text}' in a range on {field}: {reason}"),
        )
    })
}

/// Whether a name before `:` is a field the language knows.
pub(crate) fn is_known_field(name: &str) -> bool {
    resolve_field(name, 0).is_ok()
}

fn resolve_field(name: &str, pos: usize) -> Result<Target, ParseError> {
    if name == "message" || name == "msg" {
        return Ok(Target::Message);
    }
    if name == "ts" || name == "timestamp" {
        return Ok(Target::Time);
    }
    if name == "latency_ms" {
        return Ok(Target::Json(JsonRoot::Latency, String::new()));
    }
    for root in [JsonRoot::Fields, JsonRoot::Input, JsonRoot::Output] {
        let Some(path) = name
            .strip_prefix(root.name())
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            continue;
        };
        if path.is_empty() || path.split('.').any(str::is_empty) {
            let root = root.name();
            return Err(err(
                pos,
                format!("'{name}' is not a valid path: use {root}.key or {root}.a.b"),
            ));
        }
        return Ok(Target::Json(root, path.to_string()));
    }
    KeywordField::from_name(name)
        .map(Target::Keyword)
        .ok_or_else(|| {
            let known: Vec<_> = KeywordField::ALL.iter().map(|f| f.name()).collect();
            err(
                pos,
                format!(
                    "unknown field '{name}': use message, ts, latency_ms, {}, or \
                     fields./input./output.<path>",
                    known.join(", ")
                ),
            )
        })
}

fn normalize(field: KeywordField, value: &str, pos: usize) -> Result<String, ParseError> {
    match field {
        KeywordField::Level => Level::parse(value)
            .map(|l| l.as_str().to_string())
            .ok_or_else(|| {
                err(
                    pos,
                    format!(
                        "unknown level '{value}': use trace, debug, info, warn, error or fatal"
                    ),
                )
            }),
        KeywordField::Kind => {
            serde_json::from_value::<Kind>(serde_json::Value::String(value.to_ascii_lowercase()))
                .map(|k| k.as_str().to_string())
                .map_err(|_| {
                    err(
                        pos,
                        format!(
                            "unknown kind '{value}': use log, prediction, metric or registration"
                        ),
                    )
                })
        }
        KeywordField::Stream => match value.to_ascii_lowercase().as_str() {
            s @ ("stdout" | "stderr") => Ok(s.to_string()),
            _ => Err(err(
                pos,
                format!("unknown stream '{value}': use stdout or stderr"),
            )),
        },
        _ => Ok(value.to_string()),
    }
}

/// Parses query text. Empty or blank text, `*` and Lucene's `*:*` are [`Query::All`]; `now`
/// in a time bound is the current time.
pub fn parse(input: &str) -> Result<Query, ParseError> {
    parse_at(input, Timestamp::now())
}

/// Parses query text, reading `now` in time bounds as the given instant.
pub fn parse_at(input: &str, now: Timestamp) -> Result<Query, ParseError> {
    if input.len() > MAX_QUERY_BYTES {
        return Err(err(
            0,
            format!(
                "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                input.len()
            ),
        ));
    }
    let toks = lex(input)?;
    if toks.is_empty() {
        return Ok(Query::All);
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: input.chars().count(),
        clauses: 0,
        now,
    };
    let q = p.or(0, &Target::Message)?;
    if p.at < p.toks.len() {
        let what = match p.peek() {
            Some(Tok::RParen) => "unexpected ')': there is no '(' to close",
            _ => "unexpected text after the end of the query",
        };
        return Err(err(p.pos(), what));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(t: &[&str]) -> Query {
        Query::Text {
            terms: t.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn kw(field: KeywordField, v: &str) -> Query {
        Query::Keyword {
            field,
            value: v.into(),
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse("").unwrap(), Query::All);
        assert_eq!(parse("   ").unwrap(), Query::All);
        // Lucene's match-everything forms, as Kibana and ES clients send them.
        for all in ["*", " *:* ", "message:*", "**"] {
            assert_eq!(parse(all).unwrap(), Query::All, "{all}");
        }
        assert_eq!(
            parse("* AND service:web").unwrap(),
            Query::And(vec![Query::All, kw(KeywordField::Service, "web")])
        );
        assert_eq!(
            parse("service:web AND error").unwrap(),
            Query::And(vec![kw(KeywordField::Service, "web"), text(&["error"])])
        );
        assert_eq!(
            parse("service:web error").unwrap(),
            Query::And(vec![kw(KeywordField::Service, "web"), text(&["error"])])
        );
        assert_eq!(
            parse("a OR b c").unwrap(),
            Query::Or(vec![
                text(&["a"]),
                Query::And(vec![text(&["b"]), text(&["c"])])
            ])
        );
        assert_eq!(parse("\"Disk Full\"").unwrap(), text(&["disk", "full"]));
        assert_eq!(
            parse("NOT level:WARNING").unwrap(),
            Query::Not(Box::new(kw(KeywordField::Level, "warn")))
        );
        assert_eq!(
            parse("-stream:stderr").unwrap(),
            Query::Not(Box::new(kw(KeywordField::Stream, "stderr")))
        );
        assert_eq!(
            parse("service:(web OR api)").unwrap(),
            Query::Or(vec![
                kw(KeywordField::Service, "web"),
                kw(KeywordField::Service, "api")
            ])
        );
        assert_eq!(
            parse("fields.user.id:42").unwrap(),
            Query::Json {
                root: JsonRoot::Fields,
                path: "user.id".into(),
                value: "42".into()
            }
        );
        assert_eq!(parse("message:\"a b\"").unwrap(), text(&["a", "b"]));
        assert_eq!(parse("blk_-16089").unwrap(), text(&["blk", "16089"]));
        assert_eq!(
            parse(r"container:my\:name").unwrap(),
            kw(KeywordField::ContainerName, "my:name")
        );
        assert_eq!(
            parse("http://x").unwrap_err().message,
            "unknown field 'http': use message, ts, latency_ms, service, node, container_name, container_id, image, stream, level, kind, model, model_version, request_id, status, or fields./input./output.<path>"
        );
    }

    #[test]
    fn errors_name_the_position_and_what_was_expected() {
        let cases = [
            ("service:", 8, "expected a value after 'service:'"),
            ("(a OR b", 7, "expected ')' to close the '(' at character 0"),
            ("a )", 2, "unexpected ')'"),
            ("a AND", 5, "expected a word"),
            ("\"open", 0, "unterminated quote"),
            ("level:loud", 6, "unknown level 'loud'"),
            ("colour:red", 0, "unknown field 'colour'"),
            (
                "x OR OR y",
                5,
                "expected a word, a phrase, field:value or '(' before AND/OR",
            ),
            ("?", 0, "has no letters or digits"),
            ("fields..a:1", 0, "not a valid path"),
        ];
        for (q, pos, msg) in cases {
            let e = parse(q).unwrap_err();
            assert_eq!(e.position, pos, "{q}: {e}");
            assert!(e.message.contains(msg), "{q}: {e}");
        }
    }

    #[test]
    fn refuses_oversized_and_too_deep_queries() {
        assert!(
            parse(&"a ".repeat(MAX_QUERY_BYTES))
                .unwrap_err()
                .message
                .contains("limit")
        );
        let deep = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("deeper"));
        let nots = "NOT ".repeat(100) + "a";
        assert!(parse(&nots).unwrap_err().message.contains("deeper"));
        let many = "a ".repeat(MAX_CLAUSES + 1);
        assert!(parse(&many).unwrap_err().message.contains("clauses"));
    }

    const NOW: Timestamp = Timestamp(1_795_000_000_000_000_000);
    const MIN: i64 = 60_000_000_000;

    fn at(q: &str) -> Query {
        parse_at(q, NOW).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn time(from: Bound<Timestamp>, to: Bound<Timestamp>) -> Query {
        Query::Time(TimeRange { from, to })
    }

    fn pattern(q: &str) -> (PatternField, Pattern) {
        match at(q) {
            Query::Pattern { field, pattern } => (field, pattern),
            other => panic!("{q}: not a pattern: {other:?}"),
        }
    }

    #[test]
    fn parses_wildcards_and_regexes() {
        let (field, p) = pattern("service:web*");
        assert_eq!(field, PatternField::Keyword(KeywordField::Service));
        assert!(!p.is_regex() && p.is_match("web-1") && !p.is_match("Web-1"));
        let (field, p) = pattern("container:api-?");
        assert_eq!(field, PatternField::Keyword(KeywordField::ContainerName));
        assert!(p.is_match("api-1") && !p.is_match("api-12"));
        let (field, p) = pattern("TimeOut*");
        assert_eq!(field, PatternField::Message);
        assert_eq!(p.as_str(), "timeout*");
        let (_, p) = pattern("level:WARN*");
        assert!(p.is_match("warn"));
        let (field, p) = pattern("service:/web-[0-9]+/");
        assert_eq!(field, PatternField::Keyword(KeywordField::Service));
        assert!(p.is_regex() && p.is_match("web-12") && !p.is_match("web-12a"));
        let (_, p) = pattern(r"container:/a\/b/");
        assert!(p.is_match("a/b"), "{p:?}");
        let (field, p) = pattern("message:/Time(out|d)/");
        assert_eq!(field, PatternField::Message);
        assert!(p.is_match("timeout") && p.is_case_insensitive());
        assert_eq!(
            at("service:(/web.*/ OR api)"),
            Query::Or(vec![
                Query::Pattern {
                    field: PatternField::Keyword(KeywordField::Service),
                    pattern: Pattern::regex("web.*", false).unwrap()
                },
                kw(KeywordField::Service, "api")
            ])
        );
        // Escaped or quoted, stars are literal; outside a field value, slashes are text.
        assert_eq!(at(r"service:web\*"), kw(KeywordField::Service, "web*"));
        assert_eq!(at("service:\"web*\""), kw(KeywordField::Service, "web*"));
        assert_eq!(at("/dev/sda1"), text(&["dev", "sda1"]));
        assert_eq!(at("[error]"), text(&["error"]));
        assert_eq!(at("\"a*\""), text(&["a"]));
    }

    #[test]
    fn parses_time_and_number_ranges() {
        let d1 = Timestamp::parse_rfc3339("2026-11-01").unwrap();
        let d3 = Timestamp::parse_rfc3339("2026-11-03").unwrap();
        assert_eq!(
            at("ts:[2026-11-01 TO 2026-11-02]"),
            time(Bound::Included(d1), Bound::Excluded(d3))
        );
        assert_eq!(
            at("ts:>now-15m"),
            time(Bound::Excluded(NOW.offset(-15 * MIN)), Bound::Unbounded)
        );
        let t = Timestamp::parse_rfc3339("2026-11-22T03:00:00Z").unwrap();
        assert_eq!(
            at("ts:>=2026-11-22T03:00:00Z"),
            time(Bound::Included(t), Bound::Unbounded)
        );
        assert_eq!(
            at("ts:{now-1h TO *]"),
            time(Bound::Excluded(NOW.offset(-60 * MIN)), Bound::Unbounded)
        );
        assert_eq!(at("ts:<=now"), time(Bound::Unbounded, Bound::Included(NOW)));
        assert_eq!(
            at("ts:2026-11-01"),
            time(
                Bound::Included(d1),
                Bound::Excluded(d1.offset(86_400 * 1_000_000_000))
            )
        );
        assert_eq!(
            at("fields.latency_ms:>250"),
            Query::Number {
                root: JsonRoot::Fields,
                path: "latency_ms".into(),
                range: NumberRange {
                    lower: Bound::Excluded(250.0),
                    upper: Bound::Unbounded
                }
            }
        );
        assert_eq!(
            at("fields.status:[200 TO 299} AND error"),
            Query::And(vec![
                Query::Number {
                    root: JsonRoot::Fields,
                    path: "status".into(),
                    range: NumberRange {
                        lower: Bound::Included(200.0),
                        upper: Bound::Excluded(299.0)
                    }
                },
                text(&["error"])
            ])
        );
        assert_eq!(
            at("ts:(<now-1d OR >now)"),
            Query::Or(vec![
                time(Bound::Unbounded, Bound::Excluded(NOW.offset(-1440 * MIN))),
                time(Bound::Excluded(NOW), Bound::Unbounded)
            ])
        );
    }

    #[test]
    fn new_forms_name_the_position_and_what_was_expected() {
        let cases = [
            ("ts:[2026-11-01 2026-11-02]", 15, "expected TO in a range"),
            ("ts:[now-1h TO", 13, "expected an upper bound"),
            (
                "ts:[now-1h TO now",
                17,
                "expected ']' or '}' to close the range opened at character 3",
            ),
            ("ts:[", 4, "expected a lower bound"),
            ("ts:>now-15q", 4, "unknown unit"),
            ("ts:>yesterday", 4, "bad bound 'yesterday' in a range on ts"),
            ("ts:>", 4, "expected a value after '>'"),
            ("ts:>=)", 5, "expected a value after '>='"),
            (
                "ts:[a TO b]x",
                11,
                "expected a space or ')' after the range",
            ),
            (
                "fields.status:[200 TO abc]",
                22,
                "expected a number, found 'abc'",
            ),
            ("fields.status:>nan", 15, "expected a number"),
            (
                "service:>3",
                8,
                "ranges apply to ts, latency_ms and fields./input./output.<path>, not to service",
            ),
            (
                "error OR message:[a TO b]",
                17,
                "ranges apply to ts, latency_ms and fields./input./output.<path>, not to the message",
            ),
            ("service:/web(", 8, "unterminated regex"),
            (
                "service:/web(/x",
                14,
                "expected a space or ')' after the regex",
            ),
            ("service:/web(/ x", 12, "bad regex: unclosed group"),
            ("http://x", 0, "unknown field 'http'"),
            (
                "service:/a{1000}{1000}/",
                8,
                "bad regex: regex is too large",
            ),
            ("service://", 8, "bad regex: empty regex"),
            (
                "service:/a/b",
                11,
                "expected a space or ')' after the regex",
            ),
            (
                "fields.a:/x/",
                9,
                "regexes apply to the message and keyword fields, not to fields.a",
            ),
            (
                "fields.a:x*",
                9,
                "wildcards apply to the message and keyword fields",
            ),
            (
                "ts:2026*",
                3,
                "wildcards apply to the message and keyword fields, not to ts",
            ),
            ("ts:/x/", 3, "regexes apply"),
            (
                "blk_*",
                3,
                "a message term holds only letters and digits, never '_'",
            ),
            ("x 10.251.*", 4, "never '.'"),
            ("*?", 0, "has no letters or digits"),
        ];
        for (q, pos, msg) in cases {
            let e = parse_at(q, NOW).unwrap_err();
            assert!(e.message.contains(msg), "{q}: {e}");
            assert_eq!(e.position, pos, "{q}: {e}");
            assert!(
                !e.message.ends_with('.') && !e.message.contains('\n'),
                "{q}: {e}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_new_syntax_shaped_text(
            s in "((ts|service|fields\\.[a-z]{1,3}|message|level):|\\[|\\]|\\{|\\}|>=?|<=?| TO |\\*|\\?|/|\\\\|now-[0-9]{1,3}[a-z]|2026-11-0[1-9]|[0-9]{1,4}|[a-z(|)+.]{1,4}| ){0,30}"
        ) {
            match parse_at(&s, NOW) {
                Ok(_) => {}
                Err(e) => {
                    prop_assert!(e.position <= s.chars().count(), "{s}: {e}");
                    prop_assert!(!e.message.is_empty());
                }
            }
        }

        #[test]
        fn regex_shaped_values_are_compiled_within_limits_or_refused(
            r in "([a-z]|\\.|\\*|\\+|\\?|\\{[0-9]{1,4}(,[0-9]{0,4})?\\}|\\(|\\)|\\||\\[a-z-]{1,4}\\]|\\\\[dwsb]){1,24}"
        ) {
            let q = format!("service:/{r}/ OR message:/{r}/");
            if let Ok(query) = parse_at(&q, NOW) {
                // Whatever compiled answers at once, even on a long value.
                let mut e = crate::event::Event::log(NOW, "a".repeat(2_000));
                e.service = "ab".repeat(1_000);
                let _ = query.matches(&e);
            }
        }

        #[test]
        fn never_panics_on_any_text(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_query_shaped_text(s in "([a-z_.]{1,8}:|\\(|\\)|\"|AND |OR |NOT |-|[a-z]{1,5} |\\\\){0,40}") {
            if let Err(e) = parse(&s) {
                prop_assert!(e.position <= s.chars().count());
            }
        }
    }
}
