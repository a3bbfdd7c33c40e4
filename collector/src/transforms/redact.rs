//! Redact: masks what a pattern matches (e-mail addresses, tokens, card numbers) in the
//! message and in every string field, before the event leaves the node.
//!
//! A match is replaced with `****`, or with a keyed hash `sha256:<16 hex>` (HMAC-SHA256
//! under a configured key) so equal values stay correlatable without being readable. Each
//! event a rule changed lists the rule's name in `fields._redacted` (names only, never the
//! values). Field names are not redacted, only their string values (nested ones included).

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;
use shiplog_core::Event;

use crate::sha256::{hex, hmac_sha256};

/// Field listing the rules that changed an event.
pub const REDACTED_FIELD: &str = "_redacted";
/// What a masked match becomes.
pub const MASK: &str = "****";
/// Hex digits of the keyed hash kept (64 bits: enough to correlate, short to read).
const HASH_HEX_DIGITS: usize = 16;

/// What a match is replaced with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// `****`.
    Mask,
    /// `sha256:<hex>` of HMAC-SHA256 under this key.
    Hash {
        /// The HMAC key; keep it secret, or the hashes of guessable values can be guessed.
        key: Vec<u8>,
    },
}

/// A compiled redact rule.
#[derive(Debug, Clone)]
pub struct Redact {
    name: String,
    pattern: Regex,
    replacement: Replacement,
}

impl Redact {
    /// A rule called `name` replacing matches of `pattern` with `replacement`.
    pub fn new(name: impl Into<String>, pattern: Regex, replacement: Replacement) -> Self {
        Redact {
            name: name.into(),
            pattern,
            replacement,
        }
    }

    /// The rule's name, as listed in `fields._redacted`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Redacts the message and every string field (except `_redacted` itself); returns
    /// whether anything changed. Does not record the rule name (see [`redact_all`]).
    pub fn apply(&self, event: &mut Event) -> bool {
        let mut changed = self.redact_string(&mut event.message);
        for (key, value) in event.fields.iter_mut() {
            if key != REDACTED_FIELD {
                changed |= self.redact_value(value);
            }
        }
        changed
    }

    fn redact_value(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => self.redact_string(s),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.redact_value(item) | changed),
            Value::Object(map) => map
                .values_mut()
                .fold(false, |changed, item| self.redact_value(item) | changed),
            _ => false,
        }
    }

    fn redact_string(&self, text: &mut String) -> bool {
        let replaced = self
            .pattern
            .replace_all(text, |captures: &regex::Captures<'_>| {
                self.replacement_for(&captures[0])
            });
        match replaced {
            Cow::Borrowed(_) => false,
            Cow::Owned(new) => {
                *text = new;
                true
            }
        }
    }

    fn replacement_for(&self, matched: &str) -> String {
        match &self.replacement {
            Replacement::Mask => MASK.to_string(),
            Replacement::Hash { key } => {
                let digest = hex(&hmac_sha256(key, matched.as_bytes()));
                format!("sha256:{}", &digest[..HASH_HEX_DIGITS])
            }
        }
    }
}

/// Applies every rule in order and lists the names of those that changed something in
/// `fields._redacted`.
pub fn redact_all(rules: &[Redact], event: &mut Event) {
    let mut fired = Vec::new();
    for rule in rules {
        if rule.apply(event) && !fired.iter().any(|n: &Value| n == rule.name()) {
            fired.push(Value::String(rule.name.clone()));
        }
    }
    if fired.is_empty() {
        return;
    }
    // Keep names a source already listed (a second pass must not lose the first's).
    match event.fields.get_mut(REDACTED_FIELD) {
        Some(Value::Array(existing)) => {
            for name in fired {
                if !existing.contains(&name) {
                    existing.push(name);
                }
            }
        }
        _ => {
            event
                .fields
                .insert(REDACTED_FIELD.into(), Value::Array(fired));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shiplog_core::Timestamp;

    use super::*;

    const EMAIL: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}";

    fn email_rule(replacement: Replacement) -> Redact {
        Redact::new("email", Regex::new(EMAIL).unwrap(), replacement)
    }

    #[test]
    fn an_email_rule_masks_message_and_fields_and_names_itself() {
        let rules = [
            email_rule(Replacement::Mask),
            Redact::new(
                "never",
                Regex::new("zzz-no-match").unwrap(),
                Replacement::Mask,
            ),
        ];
        let mut event = Event::log(Timestamp(0), "login by ada@example.com from 10.0.0.1");
        event.fields.insert("user".into(), json!("ada@example.com"));
        event
            .fields
            .insert("nested".into(), json!({"cc": ["bob@example.org", 3]}));
        event.fields.insert("count".into(), json!(2));
        redact_all(&rules, &mut event);
        assert_eq!(event.message, "login by **** from 10.0.0.1");
        assert_eq!(event.fields["user"], "****");
        assert_eq!(event.fields["nested"], json!({"cc": ["****", 3]}));
        assert_eq!(event.fields["count"], 2);
        assert_eq!(event.fields[REDACTED_FIELD], json!(["email"]));
        let text = serde_json::to_string(&event).unwrap();
        assert!(!text.contains("example"), "{text}");
    }

    #[test]
    fn a_keyed_hash_is_stable_and_keyed() {
        let rule = |key: &[u8]| email_rule(Replacement::Hash { key: key.to_vec() });
        let mut a = Event::log(Timestamp(0), "to ada@example.com");
        let mut b = Event::log(Timestamp(0), "from ada@example.com");
        let mut c = Event::log(Timestamp(0), "to ada@example.com");
        redact_all(&[rule(b"k1")], &mut a);
        redact_all(&[rule(b"k1")], &mut b);
        redact_all(&[rule(b"k2")], &mut c);
        let hash = a.message.strip_prefix("to ").unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + HASH_HEX_DIGITS,
            "{hash}"
        );
        assert_eq!(b.message, format!("from {hash}"), "same value, same hash");
        assert_ne!(c.message, a.message, "another key, another hash");
    }

    #[test]
    fn untouched_events_get_no_redacted_field() {
        let mut event = Event::log(Timestamp(0), "nothing to hide");
        redact_all(&[email_rule(Replacement::Mask)], &mut event);
        assert!(event.fields.is_empty());
    }
}
