//! Regex parse: named captures of a pattern become event fields (`(?P<status>\d{3})` →
//! `fields.status`), for containers whose name or image match the rule.
//!
//! Captures never overwrite a field that is already there (labels, JSON keys): the first
//! writer wins, as in the JSON lift. The pattern runs on at most [`MAX_PARSE_INPUT`] bytes
//! of the message; the `regex` crate matches in linear time, so a hostile line cannot make
//! it slow.

use regex::Regex;
use serde_json::Value;
use shiplog_core::Event;

/// Longest prefix of a message a parse pattern looks at.
pub const MAX_PARSE_INPUT: usize = 64 * 1024;

/// A compiled parse rule.
#[derive(Debug, Clone)]
pub struct Parse {
    name: String,
    pattern: Regex,
}

impl Parse {
    /// A rule called `name` extracting the named groups of `pattern`.
    pub fn new(name: impl Into<String>, pattern: Regex) -> Self {
        Parse {
            name: name.into(),
            pattern,
        }
    }

    /// The rule's name, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds the named captures of the first match to `event.fields`; returns whether the
    /// pattern matched.
    pub fn apply(&self, event: &mut Event) -> bool {
        let input = &event.message[..event.message.floor_char_boundary(MAX_PARSE_INPUT)];
        let Some(captures) = self.pattern.captures(input) else {
            return false;
        };
        for name in self.pattern.capture_names().flatten() {
            if let Some(value) = captures.name(name) {
                event
                    .fields
                    .entry(name)
                    .or_insert_with(|| Value::String(value.as_str().to_string()));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use shiplog_core::Timestamp;

    use super::*;

    #[test]
    fn named_captures_become_fields_without_overwriting() {
        let rule = Parse::new(
            "access",
            Regex::new(r#"^(?P<client>\S+) "(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d{3})"#)
                .unwrap(),
        );
        let mut event = Event::log(Timestamp(0), r#"10.0.0.1 "GET /health" 200 3ms"#);
        event.fields.insert("client".into(), "from-json".into());
        assert!(rule.apply(&mut event));
        assert_eq!(event.fields["method"], "GET");
        assert_eq!(event.fields["path"], "/health");
        assert_eq!(event.fields["status"], "200");
        assert_eq!(event.fields["client"], "from-json");
        let mut other = Event::log(Timestamp(0), "no match");
        assert!(!rule.apply(&mut other));
        assert!(other.fields.is_empty());
    }
}
