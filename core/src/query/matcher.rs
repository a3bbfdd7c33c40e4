//! Evaluates a [`Query`] against one event in memory, for live tail.

use serde_json::Value;

use super::Query;
use super::analysis::{self, Term};
use crate::event::Event;

impl Query {
    /// Whether the event matches, with the same meaning the indexed search gives.
    pub fn matches(&self, event: &Event) -> bool {
        let mut terms = None;
        self.eval(event, &mut terms)
    }

    fn eval(&self, event: &Event, terms: &mut Option<Vec<Term>>) -> bool {
        match self {
            Query::All => true,
            Query::Keyword { field, value } => event.keyword(*field) == Some(value.as_str()),
            Query::Text { terms: wanted } => {
                let have = terms.get_or_insert_with(|| analysis::analyze(&event.message));
                contains_phrase(have, wanted)
            }
            Query::Json { path, value } => {
                let mut node = None;
                for (i, key) in path.split('.').enumerate() {
                    node = if i == 0 {
                        event.fields.get(key)
                    } else {
                        node.and_then(|n: &Value| n.get(key))
                    };
                }
                node.is_some_and(|v| json_equals(v, value))
            }
            Query::And(qs) => qs.iter().all(|q| q.eval(event, terms)),
            Query::Or(qs) => qs.iter().any(|q| q.eval(event, terms)),
            Query::Not(q) => !q.eval(event, terms),
        }
    }
}

fn contains_phrase(have: &[Term], wanted: &[String]) -> bool {
    let Some(first) = wanted.first() else {
        return true;
    };
    have.iter().enumerate().any(|(i, t)| {
        &t.text == first
            && wanted[1..].iter().enumerate().all(|(k, w)| {
                have.get(i + 1 + k)
                    .is_some_and(|n| &n.text == w && n.position == t.position + 1 + k)
            })
    })
}

fn json_equals(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Number(n) => {
            if let (Some(a), Ok(b)) = (n.as_i64(), want.parse::<i64>()) {
                return a == b;
            }
            if let (Some(a), Ok(b)) = (n.as_f64(), want.parse::<f64>()) {
                return a == b;
            }
            false
        }
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        Value::Array(items) => items.iter().any(|i| json_equals(i, want)),
        Value::Null | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use crate::event::{Event, Level, Stream};
    use crate::timestamp::Timestamp;

    fn event() -> Event {
        let mut e = Event::log(Timestamp(0), "ERROR Disk full on /dev/sda1 (blk_-42)");
        e.service = "web".into();
        e.level = Some(Level::Error);
        e.stream = Some(Stream::Stderr);
        e.fields =
            serde_json::from_str(r#"{"user":{"id":42},"tags":["a","b"],"ok":false}"#).unwrap();
        e
    }

    #[test]
    fn matches_like_search_would() {
        let e = event();
        let yes = [
            "",
            "error",
            "ERROR",
            "disk",
            "\"disk full\"",
            "service:web",
            "service:web AND disk",
            "level:err",
            "stream:stderr",
            "fields.user.id:42",
            "fields.tags:b",
            "fields.ok:false",
            "blk_-42",
            "NOT service:api",
            "service:api OR sda1",
            "dev sda1",
            "message:full",
        ];
        for q in yes {
            assert!(parse(q).unwrap().matches(&e), "should match: {q}");
        }
        let no = [
            "warning",
            "\"full disk\"",
            "service:WEB",
            "service:we",
            "level:info",
            "stream:stdout",
            "fields.user.id:43",
            "fields.user:42",
            "fields.missing:1",
            "NOT disk",
            "service:api AND disk",
            "kind:metric",
            "\"disk on\"",
        ];
        for q in no {
            assert!(!parse(q).unwrap().matches(&e), "should not match: {q}");
        }
    }
}
