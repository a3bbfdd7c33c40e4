//! Silences: label matchers with an end time; a matching alert still shows in the API (as
//! `silenced`) but sends no notification until the silence ends.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use shiplog_core::Timestamp;

/// Most matchers in one silence.
pub const MAX_MATCHERS: usize = 32;
/// Most silences kept (active and recently expired).
pub const MAX_SILENCES: usize = 1000;
/// Longest comment or author.
pub const MAX_TEXT: usize = 4096;

/// One label test, as Alertmanager writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matcher {
    /// Label name (`alertname`, `severity`, a `group_by` key or a rule label).
    pub name: String,
    /// Value, or an anchored regex when `is_regex`.
    pub value: String,
    /// Whether `value` is a regex.
    #[serde(default)]
    pub is_regex: bool,
    /// `false` inverts the test (Alertmanager's `!=` and `!~`); default `true`.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/silences` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// Every matcher must hold.
    pub matchers: Vec<Matcher>,
    /// RFC 3339; default now.
    #[serde(default)]
    pub starts_at: Option<String>,
    /// RFC 3339, after `starts_at`.
    pub ends_at: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Who.
    #[serde(default)]
    pub created_by: String,
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id.
    pub id: String,
    /// Every matcher must hold.
    pub matchers: Vec<Matcher>,
    /// Start (ns).
    pub starts_at: i64,
    /// End (ns); expiring sets it to now.
    pub ends_at: i64,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// When it was made (ns).
    pub created_at: i64,
}

/// A silence as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SilenceView {
    /// Id.
    pub id: String,
    /// Matchers.
    pub matchers: Vec<Matcher>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339.
    pub ends_at: String,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// `pending`, `active` or `expired`.
    pub state: &'static str,
}

/// A matcher compiled once.
struct Compiled {
    name: String,
    test: Test,
    is_equal: bool,
}

enum Test {
    Equal(String),
    Regex(Regex),
}

fn compile(m: &Matcher) -> Result<Compiled, String> {
    if !super::rule::valid_label(&m.name) {
        return Err(format!(
            "matcher name '{}' is not a label name: use letters, digits and _",
            m.name
        ));
    }
    let test = if m.is_regex {
        let re = regex::RegexBuilder::new(&format!("^(?:{})$", m.value))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("matcher '{}': bad regex '{}': {e}", m.name, m.value))?;
        Test::Regex(re)
    } else {
        Test::Equal(m.value.clone())
    };
    Ok(Compiled {
        name: m.name.clone(),
        test,
        is_equal: m.is_equal,
    })
}

impl Silence {
    /// Checks a request body and makes a silence of it.
    pub fn from_request(req: NewSilence, now: i64, id: String) -> Result<Silence, String> {
        if req.matchers.is_empty() {
            return Err("matchers: give at least one, e.g. {\"name\":\"service\",\"value\":\"api\",\"is_regex\":false}".into());
        }
        if req.matchers.len() > MAX_MATCHERS {
            return Err(format!(
                "matchers: {} given, at most {MAX_MATCHERS}",
                req.matchers.len()
            ));
        }
        for m in &req.matchers {
            compile(m)?;
        }
        if req
            .matchers
            .iter()
            .all(|m| m.is_equal && m.is_regex && compile(m).is_ok_and(|c| c.matches("")))
        {
            return Err("matchers: every matcher also matches an empty value, so the silence would match every alert; name at least one label value".into());
        }
        let starts_at = match &req.starts_at {
            None => now,
            Some(s) => Timestamp::parse_rfc3339(s)
                .map_err(|e| format!("starts_at: {e}"))?
                .as_nanos(),
        };
        let ends_at = Timestamp::parse_rfc3339(&req.ends_at)
            .map_err(|e| format!("ends_at: {e}"))?
            .as_nanos();
        if ends_at <= now {
            return Err(format!("ends_at: {} is not in the future", req.ends_at));
        }
        if ends_at <= starts_at {
            return Err("ends_at: must come after starts_at".into());
        }
        if req.comment.len() > MAX_TEXT || req.created_by.len() > MAX_TEXT {
            return Err(format!(
                "comment and created_by: at most {MAX_TEXT} bytes each"
            ));
        }
        Ok(Silence {
            id,
            matchers: req.matchers,
            starts_at,
            ends_at,
            comment: req.comment,
            created_by: req.created_by,
            created_at: now,
        })
    }

    /// Whether it is in force at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether every matcher holds for these labels (a missing label reads as `""`).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| match compile(m) {
            Ok(c) => c.matches(labels.get(&c.name).map_or("", String::as_str)),
            Err(_) => false,
        })
    }

    /// The API view.
    pub fn view(&self, now: i64) -> SilenceView {
        SilenceView {
            id: self.id.clone(),
            matchers: self.matchers.clone(),
            starts_at: Timestamp(self.starts_at).to_rfc3339(),
            ends_at: Timestamp(self.ends_at).to_rfc3339(),
            comment: self.comment.clone(),
            created_by: self.created_by.clone(),
            state: if now < self.starts_at {
                "pending"
            } else if now < self.ends_at {
                "active"
            } else {
                "expired"
            },
        }
    }
}

impl Compiled {
    fn matches(&self, v: &str) -> bool {
        let hit = match &self.test {
            Test::Equal(want) => v == want,
            Test::Regex(re) => re.is_match(v),
        };
        hit == self.is_equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000_000_000;

    fn req(json: &str) -> Result<Silence, String> {
        let r: NewSilence = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Silence::from_request(r, NOW, "s1".into())
    }

    #[test]
    fn silences_match_labels_by_value_and_regex() {
        let s = req(r#"{"matchers":[{"name":"service","value":"api","is_regex":false},{"name":"severity","value":"crit.*","is_regex":true}],"ends_at":"2030-01-01T00:00:00Z","comment":"deploy","created_by":"ops"}"#).unwrap();
        let labels = |svc: &str, sev: &str| {
            BTreeMap::from([
                ("service".to_string(), svc.to_string()),
                ("severity".to_string(), sev.to_string()),
            ])
        };
        assert!(s.matches(&labels("api", "critical")));
        assert!(!s.matches(&labels("api", "warning")));
        assert!(!s.matches(&labels("api2", "critical")));
        assert!(s.active(NOW));
        assert!(!s.active(s.ends_at));
    }

    #[test]
    fn bad_silences_are_refused_with_the_reason() {
        let cases = [
            (
                r#"{"matchers":[],"ends_at":"2030-01-01T00:00:00Z"}"#,
                "at least one",
            ),
            (
                r#"{"matchers":[{"name":"9x","value":"a"}],"ends_at":"2030-01-01T00:00:00Z"}"#,
                "not a label name",
            ),
            (
                r#"{"matchers":[{"name":"a","value":"(","is_regex":true}],"ends_at":"2030-01-01T00:00:00Z"}"#,
                "bad regex",
            ),
            (
                r#"{"matchers":[{"name":"a","value":".*","is_regex":true}],"ends_at":"2030-01-01T00:00:00Z"}"#,
                "every alert",
            ),
            (
                r#"{"matchers":[{"name":"a","value":"b"}],"ends_at":"2001-01-01T00:00:00Z"}"#,
                "not in the future",
            ),
            (
                r#"{"matchers":[{"name":"a","value":"b"}],"ends_at":"tomorrow"}"#,
                "ends_at",
            ),
            (r#"{"matchers":[{"name":"a","value":"b"}]}"#, "ends_at"),
            (
                r#"{"matchers":[{"name":"a","value":"b"}],"ends_at":"2030-01-01T00:00:00Z","who":"x"}"#,
                "unknown field",
            ),
        ];
        for (body, want) in cases {
            let e = req(body).unwrap_err();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
