//! Turns query text into a [`Query`], with a position and an expectation on every error.

use super::analysis;
use super::{KeywordField, Query};
use crate::event::{Kind, Level};

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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// `name:` directly followed by its value.
    Field(String),
    Word(String),
    Quoted(String),
}

struct Lexed {
    tok: Tok,
    pos: usize,
}

fn err(position: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        position,
        message: message.into(),
    }
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
        && s.as_bytes()[0].is_ascii_alphabetic()
}

fn lex(input: &str) -> Result<Vec<Lexed>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            '(' => {
                out.push(Lexed {
                    tok: Tok::LParen,
                    pos: i,
                });
                i += 1;
            }
            ')' => {
                out.push(Lexed {
                    tok: Tok::RParen,
                    pos: i,
                });
                i += 1;
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "unterminated quote: add a closing '\"'")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let Some(&next) = chars.get(i + 1) else {
                                return Err(err(i, "a backslash must be followed by a character"));
                            };
                            s.push(next);
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Lexed {
                    tok: Tok::Quoted(s),
                    pos: start,
                });
            }
            '-' | '!' if chars.get(i + 1).is_some_and(|n| !n.is_whitespace()) => {
                out.push(Lexed {
                    tok: Tok::Not,
                    pos: i,
                });
                i += 1;
            }
            '&' if chars.get(i + 1) == Some(&'&') => {
                out.push(Lexed {
                    tok: Tok::And,
                    pos: i,
                });
                i += 2;
            }
            '|' if chars.get(i + 1) == Some(&'|') => {
                out.push(Lexed {
                    tok: Tok::Or,
                    pos: i,
                });
                i += 2;
            }
            _ => {
                let mut s = String::new();
                let mut field_end = None;
                while let Some(&ch) = chars.get(i) {
                    if ch.is_whitespace() || ch == '(' || ch == ')' || ch == '"' {
                        break;
                    }
                    if ch == '\\' {
                        let Some(&next) = chars.get(i + 1) else {
                            return Err(err(i, "a backslash must be followed by a character"));
                        };
                        s.push(next);
                        i += 2;
                        continue;
                    }
                    if ch == ':' && field_end.is_none() && is_field_name(&s) {
                        field_end = Some(i);
                        i += 1;
                        break;
                    }
                    s.push(ch);
                    i += 1;
                }
                let tok = match (field_end, s.as_str()) {
                    (Some(_), _) => Tok::Field(s),
                    (None, "AND") => Tok::And,
                    (None, "OR") => Tok::Or,
                    (None, "NOT") => Tok::Not,
                    _ => Tok::Word(s),
                };
                out.push(Lexed { tok, pos: start });
            }
        }
    }
    Ok(out)
}

/// Where a value applies: the message, a keyword field, or a JSON path.
#[derive(Clone)]
enum Target {
    Message,
    Keyword(KeywordField),
    Json(String),
}

struct Parser {
    toks: Vec<Lexed>,
    at: usize,
    end: usize,
    clauses: usize,
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
                    Some(Tok::Word(_) | Tok::Quoted(_) | Tok::LParen) => {
                        self.primary(depth + 1, &inner)
                    }
                    _ => Err(err(self.pos(), format!("expected a value after '{name}:'"))),
                }
            }
            Tok::Word(w) => self.leaf(target, &w, false, pos),
            Tok::Quoted(q) => self.leaf(target, &q, true, pos),
        }
    }

    fn leaf(
        &mut self,
        target: &Target,
        value: &str,
        quoted: bool,
        pos: usize,
    ) -> Result<Query, ParseError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(err(
                pos,
                format!("query has more than {MAX_CLAUSES} clauses"),
            ));
        }
        match target {
            Target::Message => {
                let terms = analysis::terms(value);
                if terms.is_empty() {
                    let what = if quoted { "phrase" } else { "word" };
                    return Err(err(
                        pos,
                        format!("{what} '{value}' has no letters or digits to search for"),
                    ));
                }
                Ok(Query::Text { terms })
            }
            Target::Keyword(field) => Ok(Query::Keyword {
                field: *field,
                value: normalize(*field, value, pos)?,
            }),
            Target::Json(path) => Ok(Query::Json {
                path: path.clone(),
                value: value.to_string(),
            }),
        }
    }
}

fn resolve_field(name: &str, pos: usize) -> Result<Target, ParseError> {
    if name == "message" || name == "msg" {
        return Ok(Target::Message);
    }
    if let Some(path) = name.strip_prefix("fields.") {
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(err(
                pos,
                format!("'{name}' is not a valid path: use fields.key or fields.a.b"),
            ));
        }
        return Ok(Target::Json(path.to_string()));
    }
    KeywordField::from_name(name)
        .map(Target::Keyword)
        .ok_or_else(|| {
            let known: Vec<_> = KeywordField::ALL.iter().map(|f| f.name()).collect();
            err(
                pos,
                format!(
                    "unknown field '{name}': use message, {}, or fields.<path>",
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

/// Parses query text. Empty or blank text is [`Query::All`].
pub fn parse(input: &str) -> Result<Query, ParseError> {
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
            "unknown field 'http': use message, service, node, container_name, container_id, image, stream, level, kind, or fields.<path>"
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
            ("***", 0, "has no letters or digits"),
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

    proptest! {
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
