//! Splits query text into tokens, each with its character position.
//!
//! Regexes (`/…/`), ranges (`[a TO b]`, `{a TO b}`) and comparisons (`>a`, `<=b`) are only
//! recognised where a field's value is expected: right after `field:` or inside the
//! parentheses of `field:( … )`. Elsewhere `/dev/sda1` and `[error]` stay plain text.

use super::parser::ParseError;
use super::parser::is_known_field;
use super::pattern::GlobToken;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    /// `name:` directly followed by its value.
    Field(String),
    Word(String),
    /// A word with an unescaped `*` or `?`.
    Wildcard(Vec<GlobToken>),
    Quoted(String),
    /// The pattern between the slashes, with `\/` turned into `/`.
    Regex(String),
    Range(RawRange),
}

/// One end of a range as typed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawBound {
    /// `*`, or the missing side of a comparison.
    Open,
    /// A value, where it starts, and whether the bound includes it.
    Value {
        text: String,
        pos: usize,
        inclusive: bool,
    },
}

/// A range or comparison as typed, before we know which field it applies to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawRange {
    pub lower: RawBound,
    pub upper: RawBound,
}

pub(crate) struct Lexed {
    pub tok: Tok,
    pub pos: usize,
}

pub(crate) fn err(position: usize, message: impl Into<String>) -> ParseError {
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

struct Lexer {
    chars: Vec<char>,
    i: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    /// Reads up to whitespace or one of `stops`, returning the text and where it started.
    fn bare(&mut self, stops: &[char]) -> (String, usize) {
        let start = self.i;
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || stops.contains(&c) {
                break;
            }
            s.push(c);
            self.i += 1;
        }
        (s, start)
    }

    /// A value token must end at whitespace, `)` or the end of the query.
    fn expect_boundary(&self, what: &str) -> Result<(), ParseError> {
        match self.peek() {
            None | Some(')') => Ok(()),
            Some(c) if c.is_whitespace() => Ok(()),
            Some(_) => Err(err(
                self.i,
                format!("expected a space or ')' after the {what}"),
            )),
        }
    }

    fn regex(&mut self) -> Result<Tok, ParseError> {
        let start = self.i;
        self.i += 1;
        let mut pattern = String::new();
        loop {
            match self.peek() {
                None => return Err(err(start, "unterminated regex: add a closing '/'")),
                Some('/') => {
                    self.i += 1;
                    break;
                }
                Some('\\') => {
                    let Some(next) = self.chars.get(self.i + 1).copied() else {
                        return Err(err(self.i, "a backslash must be followed by a character"));
                    };
                    if next != '/' {
                        pattern.push('\\');
                    }
                    pattern.push(next);
                    self.i += 2;
                }
                Some(c) => {
                    pattern.push(c);
                    self.i += 1;
                }
            }
        }
        self.expect_boundary("regex")?;
        Ok(Tok::Regex(pattern))
    }

    fn bracket_range(&mut self) -> Result<Tok, ParseError> {
        let start = self.i;
        let lower_inclusive = self.chars[start] == '[';
        self.i += 1;
        self.skip_spaces();
        let closers = [']', '}'];
        let (lower, lower_pos) = self.bare(&closers);
        if lower.is_empty() {
            return Err(err(
                self.i,
                "expected a lower bound or '*' in a range, as in [1 TO 5]",
            ));
        }
        self.skip_spaces();
        let (to, to_pos) = self.bare(&closers);
        if to != "TO" {
            return Err(err(to_pos, "expected TO in a range, as in [1 TO 5]"));
        }
        self.skip_spaces();
        let (upper, upper_pos) = self.bare(&closers);
        if upper.is_empty() {
            return Err(err(
                self.i,
                "expected an upper bound or '*' after TO in a range",
            ));
        }
        self.skip_spaces();
        let upper_inclusive = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => {
                return Err(err(
                    self.i,
                    format!("expected ']' or '}}' to close the range opened at character {start}"),
                ));
            }
        };
        self.i += 1;
        self.expect_boundary("range")?;
        let bound = |text: String, pos: usize, inclusive: bool| {
            if text == "*" {
                RawBound::Open
            } else {
                RawBound::Value {
                    text,
                    pos,
                    inclusive,
                }
            }
        };
        Ok(Tok::Range(RawRange {
            lower: bound(lower, lower_pos, lower_inclusive),
            upper: bound(upper, upper_pos, upper_inclusive),
        }))
    }

    fn comparison(&mut self) -> Result<Tok, ParseError> {
        let start = self.i;
        let greater = self.chars[start] == '>';
        self.i += 1;
        let inclusive = self.peek() == Some('=');
        if inclusive {
            self.i += 1;
        }
        let (text, pos) = self.bare(&['(', ')']);
        if text.is_empty() {
            let op = &self.chars[start..self.i].iter().collect::<String>();
            return Err(err(self.i, format!("expected a value after '{op}'")));
        }
        self.expect_boundary("comparison")?;
        let value = RawBound::Value {
            text,
            pos,
            inclusive,
        };
        Ok(Tok::Range(if greater {
            RawRange {
                lower: value,
                upper: RawBound::Open,
            }
        } else {
            RawRange {
                lower: RawBound::Open,
                upper: value,
            }
        }))
    }

    fn quoted(&mut self) -> Result<Tok, ParseError> {
        let start = self.i;
        self.i += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(err(start, "unterminated quote: add a closing '\"'")),
                Some('"') => {
                    self.i += 1;
                    return Ok(Tok::Quoted(s));
                }
                Some('\\') => {
                    let Some(next) = self.chars.get(self.i + 1).copied() else {
                        return Err(err(self.i, "a backslash must be followed by a character"));
                    };
                    s.push(next);
                    self.i += 2;
                }
                Some(c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// A word, a `field:` prefix, or a wildcard pattern.
    fn word(&mut self) -> Result<Tok, ParseError> {
        let mut s = String::new();
        let mut glob = Vec::new();
        let mut wild = false;
        while let Some(ch) = self.peek() {
            if ch.is_whitespace() || ch == '(' || ch == ')' || ch == '"' {
                break;
            }
            if ch == '\\' {
                let Some(next) = self.chars.get(self.i + 1).copied() else {
                    return Err(err(self.i, "a backslash must be followed by a character"));
                };
                s.push(next);
                glob.push(GlobToken::Literal(next));
                self.i += 2;
                continue;
            }
            if ch == ':' && is_field_name(&s) {
                self.i += 1;
                return Ok(Tok::Field(s));
            }
            match ch {
                '*' => {
                    wild = true;
                    glob.push(GlobToken::Many);
                }
                '?' => {
                    wild = true;
                    glob.push(GlobToken::One);
                }
                c => glob.push(GlobToken::Literal(c)),
            }
            s.push(ch);
            self.i += 1;
        }
        Ok(match s.as_str() {
            _ if wild => Tok::Wildcard(glob),
            "AND" => Tok::And,
            "OR" => Tok::Or,
            "NOT" => Tok::Not,
            _ => Tok::Word(s),
        })
    }
}

pub(crate) fn lex(input: &str) -> Result<Vec<Lexed>, ParseError> {
    let mut lx = Lexer {
        chars: input.chars().collect(),
        i: 0,
    };
    let mut out: Vec<Lexed> = Vec::new();
    // For each open parenthesis, whether it holds a field's values (`service:( … )`).
    let mut groups: Vec<bool> = Vec::new();
    while let Some(c) = lx.peek() {
        if c.is_whitespace() {
            lx.i += 1;
            continue;
        }
        let start = lx.i;
        // Only known fields take ranges and regexes, so `http://x` still reads as an unknown
        // field rather than as a broken regex.
        let after_field =
            matches!(out.last(), Some(Lexed { tok: Tok::Field(name), .. }) if is_known_field(name));
        let value_context = after_field || groups.last() == Some(&true);
        let next = lx.chars.get(start + 1).copied();
        let tok = match c {
            '(' => {
                groups.push(value_context);
                lx.i += 1;
                Tok::LParen
            }
            ')' => {
                groups.pop();
                lx.i += 1;
                Tok::RParen
            }
            '"' => lx.quoted()?,
            '/' if value_context => lx.regex()?,
            '[' | '{' if value_context => lx.bracket_range()?,
            '>' | '<' if value_context => lx.comparison()?,
            '-' | '!' if next.is_some_and(|n| !n.is_whitespace()) => {
                lx.i += 1;
                Tok::Not
            }
            '&' if next == Some('&') => {
                lx.i += 2;
                Tok::And
            }
            '|' if next == Some('|') => {
                lx.i += 2;
                Tok::Or
            }
            _ => lx.word()?,
        };
        out.push(Lexed { tok, pos: start });
    }
    Ok(out)
}
