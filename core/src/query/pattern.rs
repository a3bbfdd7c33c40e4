//! Wildcard and regular-expression patterns, matched against one whole term or value.
//!
//! The same [`Pattern`] decides a match in live tail and in the index (the indexer walks a
//! field's term dictionary and asks [`Pattern::is_match`] for each term), so both always
//! agree, whatever the pattern.

use std::fmt;

/// Largest compiled program a regex may have, in bytes; larger ones are refused.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Largest lazy DFA cache a regex may use while matching, in bytes.
pub const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;
/// Deepest nesting of groups and repetitions a regex may have.
pub const REGEX_NEST_LIMIT: u32 = 64;

/// One element of a wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobToken {
    /// This exact character.
    Literal(char),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, including none.
    Many,
}

/// A wildcard (`web-*`, `api-?`) or an anchored regular expression (`/web-[0-9]+/`).
#[derive(Clone)]
pub struct Pattern {
    source: String,
    prefix: String,
    case_insensitive: bool,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Glob(Vec<GlobToken>),
    Regex(regex::Regex),
}

/// Why a regex was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexError {
    /// Character offset inside the pattern, when the regex parser names one.
    pub offset: Option<usize>,
    /// What was wrong, lowercase, without a trailing period.
    pub message: String,
}

impl Pattern {
    /// A wildcard pattern. With `case_insensitive`, literals are lower-cased here and the
    /// pattern must only be matched against lower-case values (message terms, levels).
    pub fn glob(tokens: Vec<GlobToken>, case_insensitive: bool) -> Self {
        let tokens: Vec<GlobToken> = if case_insensitive {
            tokens
                .into_iter()
                .flat_map(|t| match t {
                    GlobToken::Literal(c) => c.to_lowercase().map(GlobToken::Literal).collect(),
                    other => vec![other],
                })
                .collect()
        } else {
            tokens
        };
        let mut source = String::new();
        let mut prefix = String::new();
        let mut in_prefix = true;
        for t in &tokens {
            match t {
                GlobToken::Literal(c) => {
                    if matches!(c, '*' | '?' | '\\') {
                        source.push('\\');
                    }
                    source.push(*c);
                    if in_prefix {
                        prefix.push(*c);
                    }
                }
                GlobToken::One => {
                    source.push('?');
                    in_prefix = false;
                }
                GlobToken::Many => {
                    source.push('*');
                    in_prefix = false;
                }
            }
        }
        Pattern {
            source,
            prefix,
            case_insensitive,
            kind: Kind::Glob(tokens),
        }
    }

    /// A regular expression that must match a whole value (it is anchored at both ends).
    /// Oversized or over-nested patterns are refused, so matching stays linear and bounded.
    pub fn regex(pattern: &str, case_insensitive: bool) -> Result<Self, RegexError> {
        if pattern.is_empty() {
            return Err(RegexError {
                offset: None,
                message: "empty regex: write a pattern between the slashes".into(),
            });
        }
        // Compiled alone first, so a pattern such as `a)|(b` cannot escape the anchoring group.
        build(pattern, case_insensitive)?;
        let anchored = build(&format!("^(?:{pattern})$"), case_insensitive)?;
        Ok(Pattern {
            source: pattern.to_string(),
            prefix: String::new(),
            case_insensitive,
            kind: Kind::Regex(anchored),
        })
    }

    /// Whether the whole value matches.
    pub fn is_match(&self, value: &str) -> bool {
        match &self.kind {
            Kind::Glob(tokens) => glob_match(tokens, value),
            Kind::Regex(re) => re.is_match(value),
        }
    }

    /// Text every matching value starts with (may be empty); lets the index skip to it.
    pub fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    /// The pattern as it would be typed, without slashes for a regex.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether this is a regex rather than a wildcard pattern.
    pub fn is_regex(&self) -> bool {
        matches!(self.kind, Kind::Regex(_))
    }

    /// Whether case is ignored.
    pub fn is_case_insensitive(&self) -> bool {
        self.case_insensitive
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.case_insensitive == other.case_insensitive
            && self.is_regex() == other.is_regex()
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_regex() {
            write!(f, "/{}/", self.source)?;
        } else {
            f.write_str(&self.source)?;
        }
        if self.case_insensitive {
            f.write_str(" (ignoring case)")?;
        }
        Ok(())
    }
}

fn build(pattern: &str, case_insensitive: bool) -> Result<regex::Regex, RegexError> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(describe)
}

/// Turns the regex crate's multi-line report into one lowercase line and an offset.
fn describe(e: regex::Error) -> RegexError {
    match e {
        regex::Error::CompiledTooBig(limit) => RegexError {
            offset: None,
            message: format!(
                "regex is too large once compiled (over {limit} bytes): use fewer or smaller \
                 repetitions"
            ),
        },
        regex::Error::Syntax(text) => {
            let reason = text
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or("invalid syntax")
                .trim_end_matches('.')
                .to_string();
            // The report shows the pattern indented by four spaces, then a line of carets.
            let offset = text.lines().find_map(|l| {
                let t = l.trim_start();
                (t.starts_with('^') && l.len() >= 4).then(|| l.len() - t.len() - 4)
            });
            RegexError {
                offset,
                message: reason,
            }
        }
        other => RegexError {
            offset: None,
            message: other.to_string().to_lowercase(),
        },
    }
}

/// Matches a wildcard pattern against a whole value, in O(pattern × value) at worst.
fn glob_match(tokens: &[GlobToken], value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    let (mut p, mut v) = (0, 0);
    // Where to resume after the last `*`: the token after it, and the value position it
    // has absorbed up to.
    let mut star: Option<(usize, usize)> = None;
    while v < chars.len() {
        match tokens.get(p) {
            Some(GlobToken::Many) => {
                star = Some((p + 1, v));
                p += 1;
            }
            Some(GlobToken::One) => {
                p += 1;
                v += 1;
            }
            Some(GlobToken::Literal(c)) if *c == chars[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == GlobToken::Many)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(s: &str) -> Pattern {
        let tokens = s
            .chars()
            .map(|c| match c {
                '*' => GlobToken::Many,
                '?' => GlobToken::One,
                c => GlobToken::Literal(c),
            })
            .collect();
        Pattern::glob(tokens, false)
    }

    #[test]
    fn wildcards_match_whole_values() {
        let cases = [
            ("web*", "web", true),
            ("web*", "web-1", true),
            ("web*", "aweb", false),
            ("*web", "my-web", true),
            ("api-?", "api-1", true),
            ("api-?", "api-12", false),
            ("api-?", "api-", false),
            ("*", "", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("?é?", "xéy", true),
            ("**a", "ba", true),
        ];
        for (p, v, want) in cases {
            assert_eq!(glob(p).is_match(v), want, "{p} on {v}");
        }
        assert_eq!(glob("web-*").literal_prefix(), "web-");
        assert_eq!(glob("*web").literal_prefix(), "");
        assert_eq!(
            Pattern::glob(vec![GlobToken::Literal('T'), GlobToken::Many], true).as_str(),
            "t*"
        );
    }

    #[test]
    fn regexes_are_anchored_and_cannot_escape_the_anchors() {
        let re = Pattern::regex("web-[0-9]+", false).unwrap();
        assert!(re.is_match("web-12"));
        assert!(!re.is_match("web-12x"));
        assert!(!re.is_match("xweb-12"));
        assert!(Pattern::regex("a|ab", false).unwrap().is_match("ab"));
        assert!(Pattern::regex("a)|(b", false).is_err());
        assert!(Pattern::regex("WEB", true).unwrap().is_match("web"));
        assert!(!Pattern::regex("WEB", false).unwrap().is_match("web"));
    }

    #[test]
    fn pathological_regexes_are_refused_or_stay_linear() {
        // No backtracking: these compile small and answer at once even on long input.
        let long = "a".repeat(100_000);
        assert!(!Pattern::regex("(a*)*b", false).unwrap().is_match(&long));
        let xs = "x".repeat(100_000);
        assert!(!Pattern::regex("(x+x+)+y", false).unwrap().is_match(&xs));
        // Exponential blow-ups in the compiled program are refused outright.
        let e = Pattern::regex("a{1000}{1000}", false).unwrap_err();
        assert!(e.message.contains("too large"), "{e:?}");
        let e = Pattern::regex("(((a{100}){100}){100})", false).unwrap_err();
        assert!(e.message.contains("too large"), "{e:?}");
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        let e = Pattern::regex(&deep, false).unwrap_err();
        assert!(e.message.contains("nest"), "{e:?}");
    }

    #[test]
    fn syntax_errors_are_one_lowercase_line_with_an_offset() {
        let e = Pattern::regex("ab[", false).unwrap_err();
        assert_eq!(e.offset, Some(2), "{e:?}");
        assert!(e.message.contains("unclosed character class"), "{e:?}");
        assert!(!e.message.contains('\n'));
        let e = Pattern::regex("a(?<x", false).unwrap_err();
        assert!(e.offset.is_some(), "{e:?}");
    }
}
