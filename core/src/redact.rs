//! Redaction: masks, hashes or drops sensitive values (e-mail addresses, tokens, card
//! numbers, whole input fields) before an event is stored or leaves the node.
//!
//! A rule either matches a regex inside every string of the message, `fields`, and a
//! prediction's `input` and `output`, or names one JSON path (`input.customer.email`). What
//! it matched becomes `****`, a keyed hash `sha256:<16 hex>` (HMAC-SHA256 under a configured
//! key, so equal values stay correlatable without being readable), or nothing at all. Each
//! event a rule changed lists the rule's name in `fields._redacted`: names only, never the
//! values. Field names are never redacted, only values (nested ones included).

use std::borrow::Cow;

use regex::Regex;
use serde_json::{Map, Value};

use crate::digest::{hex, hmac_sha256};
use crate::event::Event;

/// Field listing the rules that changed an event.
pub const REDACTED_FIELD: &str = "_redacted";
/// What a masked value becomes.
pub const MASK: &str = "****";
/// Hex digits of the keyed hash kept (64 bits: enough to correlate, short to read).
pub const HASH_HEX_DIGITS: usize = 16;

/// The e-mail pattern of the built-in `email` rule.
pub const EMAIL_PATTERN: &str =
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}";
/// The payment card pattern of the built-in `card` rule: 13 to 19 digits, optionally
/// grouped by spaces or dashes; only runs that pass the Luhn check are redacted.
pub const CARD_PATTERN: &str = r"\b\d(?:[ -]?\d){12,18}\b";

/// Names of the rules that ship built in (off until a config enables them).
pub const BUILTIN_RULES: [&str; 2] = ["email", "card"];

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
    /// Removed: the matched text is cut out; a matched path loses its key.
    Drop,
}

/// Where a path rule starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRoot {
    /// `fields.<path>`
    Fields,
    /// `input.<path>`
    Input,
    /// `output.<path>`
    Output,
}

#[derive(Debug, Clone)]
enum Target {
    Pattern { regex: Regex, luhn: bool },
    Path { root: PathRoot, keys: Vec<String> },
}

/// A compiled redaction rule.
#[derive(Debug, Clone)]
pub struct Redact {
    name: String,
    target: Target,
    replacement: Replacement,
}

/// Why a path rule could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad redaction path '{path}': {reason}")]
pub struct PathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Redact {
    /// A rule called `name` replacing matches of `pattern` with `replacement`.
    pub fn new(name: impl Into<String>, pattern: Regex, replacement: Replacement) -> Self {
        Redact {
            name: name.into(),
            target: Target::Pattern {
                regex: pattern,
                luhn: false,
            },
            replacement,
        }
    }

    /// A rule replacing the value at a dotted path such as `input.customer.email` (roots:
    /// `input`, `output`, `fields`). Arrays on the way are searched element by element.
    pub fn path(
        name: impl Into<String>,
        path: &str,
        replacement: Replacement,
    ) -> Result<Self, PathError> {
        let bad = |reason: &str| PathError {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let (root, rest) = path
            .split_once('.')
            .ok_or_else(|| bad("use input.<key>, output.<key> or fields.<key>"))?;
        let root = match root {
            "input" => PathRoot::Input,
            "output" => PathRoot::Output,
            "fields" => PathRoot::Fields,
            _ => return Err(bad("it must start with input., output. or fields.")),
        };
        let keys: Vec<String> = rest.split('.').map(str::to_string).collect();
        if keys.iter().any(String::is_empty) {
            return Err(bad("empty key between dots"));
        }
        if root == PathRoot::Fields && keys[0] == REDACTED_FIELD {
            return Err(bad(
                "fields._redacted lists the rules that fired; it cannot be redacted",
            ));
        }
        Ok(Redact {
            name: name.into(),
            target: Target::Path { root, keys },
            replacement,
        })
    }

    /// A built-in rule by name (`email`, or `card` with its Luhn check), or `None`.
    pub fn builtin(name: &str, replacement: Replacement) -> Option<Self> {
        let (pattern, luhn) = match name {
            "email" => (EMAIL_PATTERN, false),
            "card" => (CARD_PATTERN, true),
            _ => return None,
        };
        let regex = Regex::new(pattern).expect("built-in patterns compile");
        Some(Redact {
            name: name.to_string(),
            target: Target::Pattern { regex, luhn },
            replacement,
        })
    }

    /// The rule's name, as listed in `fields._redacted`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Redacts what the rule matches; returns whether anything changed. Does not record
    /// the rule name (see [`redact_all`]).
    pub fn apply(&self, event: &mut Event) -> bool {
        match &self.target {
            Target::Pattern { .. } => {
                let mut changed = self.redact_string(&mut event.message).is_some();
                for (key, value) in event.fields.iter_mut() {
                    if key != REDACTED_FIELD {
                        changed |= self.redact_value(value);
                    }
                }
                for value in [&mut event.input, &mut event.output].into_iter().flatten() {
                    changed |= self.redact_value(value);
                }
                changed
            }
            Target::Path { root, keys } => match root {
                PathRoot::Fields => self.redact_path(&mut event.fields, keys),
                PathRoot::Input => event
                    .input
                    .as_mut()
                    .and_then(Value::as_object_mut)
                    .is_some_and(|m| self.redact_path(m, keys)),
                PathRoot::Output => event
                    .output
                    .as_mut()
                    .and_then(Value::as_object_mut)
                    .is_some_and(|m| self.redact_path(m, keys)),
            },
        }
    }

    fn redact_value(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => self.redact_string(s).is_some(),
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, item| self.redact_value(item) | changed),
            Value::Object(map) => map
                .values_mut()
                .fold(false, |changed, item| self.redact_value(item) | changed),
            _ => false,
        }
    }

    fn redact_string(&self, text: &mut String) -> Option<()> {
        let Target::Pattern { regex, luhn } = &self.target else {
            return None;
        };
        let mut hit = false;
        let replaced = regex.replace_all(text, |captures: &regex::Captures<'_>| {
            let matched = &captures[0];
            if *luhn && !luhn_valid(matched) {
                return matched.to_string();
            }
            hit = true;
            self.replacement_for(matched)
        });
        match replaced {
            Cow::Owned(new) if hit => {
                *text = new;
                Some(())
            }
            _ => None,
        }
    }

    fn redact_path(&self, map: &mut Map<String, Value>, keys: &[String]) -> bool {
        let Some((key, rest)) = keys.split_first() else {
            return false;
        };
        if rest.is_empty() {
            return match &self.replacement {
                Replacement::Drop => map.remove(key).is_some(),
                _ => match map.get_mut(key) {
                    Some(value) => {
                        let text = match &*value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        *value = Value::String(self.replacement_for(&text));
                        true
                    }
                    None => false,
                },
            };
        }
        match map.get_mut(key) {
            Some(Value::Object(inner)) => self.redact_path(inner, rest),
            Some(Value::Array(items)) => items.iter_mut().fold(false, |changed, item| {
                let hit = item
                    .as_object_mut()
                    .is_some_and(|inner| self.redact_path(inner, rest));
                hit | changed
            }),
            _ => false,
        }
    }

    fn replacement_for(&self, matched: &str) -> String {
        match &self.replacement {
            Replacement::Mask => MASK.to_string(),
            Replacement::Hash { key } => {
                let digest = hex(&hmac_sha256(key, matched.as_bytes()));
                format!("sha256:{}", &digest[..HASH_HEX_DIGITS])
            }
            Replacement::Drop => String::new(),
        }
    }
}

/// Whether the digits of `text` (spaces and dashes ignored) pass the Luhn check that every
/// payment card number passes.
pub fn luhn_valid(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Applies every rule in order and lists the names of those that changed something in
/// `fields._redacted`; returns whether any did.
pub fn redact_all(rules: &[Redact], event: &mut Event) -> bool {
    let mut fired = Vec::new();
    for rule in rules {
        if rule.apply(event) && !fired.iter().any(|n: &Value| n == rule.name()) {
            fired.push(Value::String(rule.name.clone()));
        }
    }
    if fired.is_empty() {
        return false;
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
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::timestamp::Timestamp;

    fn email_rule(replacement: Replacement) -> Redact {
        Redact::builtin("email", replacement).unwrap()
    }

    #[test]
    fn an_email_rule_masks_message_fields_input_and_output_and_names_itself() {
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
        event.input = Some(json!({"contact": "Eve <eve@mail.example.co.uk>", "n": 1}));
        event.output = Some(json!(["reply to carol@example.net"]));
        assert!(redact_all(&rules, &mut event));
        assert_eq!(event.message, "login by **** from 10.0.0.1");
        assert_eq!(event.fields["user"], "****");
        assert_eq!(event.fields["nested"], json!({"cc": ["****", 3]}));
        assert_eq!(event.fields["count"], 2);
        assert_eq!(event.input, Some(json!({"contact": "Eve <****>", "n": 1})));
        assert_eq!(event.output, Some(json!(["reply to ****"])));
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
    fn the_card_rule_redacts_only_numbers_that_pass_luhn() {
        let rule = Redact::builtin("card", Replacement::Mask).unwrap();
        let mut e = Event::log(
            Timestamp(0),
            "paid with 4111 1111 1111 1111, ref 4111111111111112, order 1234567890123, \
             amex 3782-822463-10005",
        );
        assert!(redact_all(std::slice::from_ref(&rule), &mut e));
        assert_eq!(
            e.message,
            "paid with ****, ref 4111111111111112, order 1234567890123, amex ****"
        );
        assert!(luhn_valid("5555 5555 5555 4444"));
        assert!(!luhn_valid("5555 5555 5555 4445"));
        assert!(!luhn_valid("0"), "too short to be a card");
        let mut plain = Event::log(Timestamp(0), "order 4111111111111112 shipped");
        assert!(!redact_all(&[rule], &mut plain));
        assert!(plain.fields.is_empty());
    }

    #[test]
    fn path_rules_mask_hash_or_drop_one_value() {
        let mut e = Event {
            input: Some(json!({
                "customer": {"email": "x@y.io", "id": 7},
                "items": [{"sku": "a", "price": 3}, {"sku": "b", "price": 4}],
            })),
            output: Some(json!({"score": 0.4})),
            ..Event::default()
        };
        let rules = [
            Redact::path("mail", "input.customer.email", Replacement::Mask).unwrap(),
            Redact::path("prices", "input.items.price", Replacement::Drop).unwrap(),
            Redact::path(
                "score",
                "output.score",
                Replacement::Hash { key: b"k".to_vec() },
            )
            .unwrap(),
            Redact::path("absent", "input.nothing.here", Replacement::Drop).unwrap(),
        ];
        assert!(redact_all(&rules, &mut e));
        assert_eq!(
            e.input,
            Some(json!({
                "customer": {"email": "****", "id": 7},
                "items": [{"sku": "a"}, {"sku": "b"}],
            }))
        );
        let score = e.output.as_ref().unwrap()["score"].as_str().unwrap();
        assert!(score.starts_with("sha256:"), "{score}");
        assert_eq!(
            e.fields[REDACTED_FIELD],
            json!(["mail", "prices", "score"]),
            "only rules that fired are listed"
        );
        for (bad, why) in [
            ("email", "use input.<key>"),
            ("body.x", "must start with input."),
            ("input..x", "empty key"),
            ("input.", "empty key"),
            ("fields._redacted", "cannot be redacted"),
        ] {
            let err = Redact::path("r", bad, Replacement::Mask).unwrap_err();
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn untouched_events_get_no_redacted_field() {
        let mut event = Event::log(Timestamp(0), "nothing to hide");
        assert!(!redact_all(&[email_rule(Replacement::Mask)], &mut event));
        assert!(event.fields.is_empty());
    }
}
