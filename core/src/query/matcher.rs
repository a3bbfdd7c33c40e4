//! Evaluates a [`Query`] against one event in memory, for live tail.

use serde_json::{Map, Value};

use super::analysis::Analyzed;
use super::{JsonRoot, KeywordField, PatternField, Query};
use crate::event::Event;

impl Query {
    /// Whether the event matches, with the same meaning the indexed search gives.
    pub fn matches(&self, event: &Event) -> bool {
        let mut terms = None;
        self.eval(event, &mut terms)
    }

    /// Like [`Query::matches`], reusing the event's analysed message terms across several
    /// queries over the same event (pass `None` first; it is filled on first need), so many
    /// alert rules analyse each message once.
    pub fn matches_reusing(&self, event: &Event, terms: &mut Option<Analyzed>) -> bool {
        self.eval(event, terms)
    }

    /// A keyword field and the values it must equal for the query to match any event, when
    /// the query implies one: `service:api AND timeout` needs service `api`,
    /// `service:a OR service:b` needs `a` or `b`. Lets a holder of many queries (the alert
    /// engine) look up the few that can match an event instead of evaluating them all.
    /// `None` when no single field constrains every match; service is preferred among
    /// several, as the field most rules name.
    pub fn required_keyword(&self) -> Option<(KeywordField, Vec<&str>)> {
        match self {
            Query::Keyword { field, value } => Some((*field, vec![value.as_str()])),
            Query::And(qs) => {
                let mut best: Option<(KeywordField, Vec<&str>)> = None;
                for q in qs {
                    if let Some(r) = q.required_keyword() {
                        let better = match &best {
                            None => true,
                            Some((f, vals)) => {
                                (r.0 == KeywordField::Service && *f != KeywordField::Service)
                                    || (r.0 == *f && r.1.len() < vals.len())
                            }
                        };
                        if better {
                            best = Some(r);
                        }
                    }
                }
                best
            }
            Query::Or(qs) => {
                let mut field = None;
                let mut values = Vec::new();
                for q in qs {
                    let (f, vals) = q.required_keyword()?;
                    if field.is_some_and(|have| have != f) {
                        return None;
                    }
                    field = Some(f);
                    values.extend(vals);
                }
                Some((field?, values))
            }
            _ => None,
        }
    }

    fn eval(&self, event: &Event, terms: &mut Option<Analyzed>) -> bool {
        match self {
            Query::All => true,
            // Empty values are not indexed, so they never match, not even `service:""`.
            Query::Keyword { field, value } => {
                !value.is_empty() && event.keyword(*field) == Some(value.as_str())
            }
            Query::Text { terms: wanted } => {
                let have = terms.get_or_insert_with(|| Analyzed::new(&event.message));
                match wanted.as_slice() {
                    [one] => have.contains_term(one),
                    _ => contains_phrase(have, wanted),
                }
            }
            Query::Json { root, path, value } => {
                json_leaves(event, *root, path).any(|v| json_equals(v, value))
            }
            Query::Pattern {
                field: PatternField::Message,
                pattern,
            } => {
                let have = terms.get_or_insert_with(|| Analyzed::new(&event.message));
                have.iter().any(|(t, _)| pattern.is_match(t))
            }
            Query::Pattern {
                field: PatternField::Keyword(field),
                pattern,
            } => event
                .keyword(*field)
                .is_some_and(|v| !v.is_empty() && pattern.is_match(v)),
            Query::Time(range) => range.contains(event.ts),
            Query::Number {
                root: JsonRoot::Latency,
                range,
                ..
            } => event.latency_ms.is_some_and(|f| range.contains(f)),
            Query::Number { root, path, range } => json_leaves(event, *root, path).any(
                |v| matches!(v, Value::Number(n) if n.as_f64().is_some_and(|f| range.contains(f))),
            ),
            Query::And(qs) => qs.iter().all(|q| q.eval(event, terms)),
            Query::Or(qs) => qs.iter().any(|q| q.eval(event, terms)),
            Query::Not(q) => !q.eval(event, terms),
        }
    }
}

fn contains_phrase(have: &Analyzed, wanted: &[String]) -> bool {
    let Some(first) = wanted.first() else {
        return true;
    };
    have.iter().enumerate().any(|(i, (text, position))| {
        text == first
            && wanted[1..].iter().enumerate().all(|(k, w)| {
                have.get(i + 1 + k)
                    .is_some_and(|(next, at)| next == w && at == position + 1 + k)
            })
    })
}

/// The scalar values at a path in `fields`, `input` or `output`, as the index sees them:
/// arrays are flattened at every level, so `a.b` reaches `{"a": [{"b": 1}, {"b": [2, 3]}]}`'s
/// 1, 2 and 3.
fn json_leaves<'a>(
    event: &'a Event,
    root: JsonRoot,
    path: &str,
) -> impl Iterator<Item = &'a Value> {
    let top: Option<&Map<String, Value>> = match root {
        JsonRoot::Fields => Some(&event.fields),
        JsonRoot::Input => event.input.as_ref().and_then(Value::as_object),
        JsonRoot::Output => event.output.as_ref().and_then(Value::as_object),
        JsonRoot::Latency => None,
    };
    let mut nodes: Vec<&Value> = Vec::new();
    for (i, key) in path.split('.').enumerate() {
        let mut next = Vec::new();
        if i == 0 {
            next.extend(top.and_then(|m| m.get(key)));
        } else {
            for node in nodes {
                collect_key(node, key, &mut next);
            }
        }
        nodes = next;
    }
    let mut leaves = Vec::new();
    for node in nodes {
        flatten(node, &mut leaves);
    }
    leaves.into_iter()
}

fn collect_key<'a>(node: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match node {
        Value::Object(map) => out.extend(map.get(key)),
        Value::Array(items) => items.iter().for_each(|i| collect_key(i, key, out)),
        _ => {}
    }
}

fn flatten<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    match node {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Object(_) => {}
        scalar => out.push(scalar),
    }
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
        Value::Null | Value::Array(_) | Value::Object(_) => false,
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

    #[test]
    fn required_keyword_names_what_every_match_must_hold() {
        use super::super::KeywordField as K;
        type Required<'a> = Option<(K, Vec<&'a str>)>;
        let cases: [(&str, Required); 9] = [
            ("service:web", Some((K::Service, vec!["web"]))),
            ("disk AND service:web", Some((K::Service, vec!["web"]))),
            ("level:error service:web", Some((K::Service, vec!["web"]))),
            ("level:error OR timeout", None),
            (
                "service:web OR service:api",
                Some((K::Service, vec!["web", "api"])),
            ),
            ("service:web OR level:error", None),
            ("NOT service:web", None),
            ("service:web*", None),
            ("kind:log AND (disk OR full)", Some((K::Kind, vec!["log"]))),
        ];
        for (q, want) in &cases {
            let parsed = parse(q).unwrap();
            assert_eq!(&parsed.required_keyword(), want, "{q}");
        }
        // Whenever a query matches, the event holds one of the required values.
        let mut other = event();
        other.service = "api".into();
        let events = [event(), other, Event::log(Timestamp(0), "disk full")];
        for (q, _) in cases {
            let parsed = parse(q).unwrap();
            let Some((field, values)) = parsed.required_keyword() else {
                continue;
            };
            for e in &events {
                if parsed.matches(e) {
                    let have = e.keyword(field).unwrap_or_default();
                    assert!(values.contains(&have), "{q} matched {have:?}");
                }
            }
        }
    }

    #[test]
    fn matches_prediction_keys_input_output_and_latency() {
        let e = Event {
            kind: crate::event::Kind::Prediction,
            model: Some("churn".into()),
            model_version: Some("v3".into()),
            request_id: Some("req-17".into()),
            status: Some("ok".into()),
            latency_ms: Some(250.5),
            input: Some(serde_json::json!({"customer_id": 123, "email": "a@b.c"})),
            output: Some(serde_json::json!({"score": 0.91, "labels": ["x", "y"]})),
            ..Event::default()
        };
        let yes = [
            "kind:prediction",
            "model:churn",
            "model:ch*",
            "version:v3 AND model_version:v3",
            "request_id:req-17",
            "request_id:/req-[0-9]+/",
            "status:ok",
            "latency_ms:>250",
            "latency_ms:250.5",
            "latency_ms:[200 TO 300]",
            "input.customer_id:123",
            "input.customer_id:[100 TO 200]",
            "output.score:>0.9",
            "output.labels:y",
        ];
        for q in yes {
            assert!(parse(q).unwrap().matches(&e), "should match: {q}");
        }
        let no = [
            "model:fraud",
            "status:error",
            "latency_ms:<250",
            "latency_ms:250",
            "input.customer_id:124",
            "output.customer_id:123",
            "fields.customer_id:123",
            "request_id:req-1",
        ];
        for q in no {
            assert!(!parse(q).unwrap().matches(&e), "should not match: {q}");
        }
        let log = Event::log(Timestamp(0), "x");
        for q in ["latency_ms:>0", "model:*", "input.a:1"] {
            assert!(!parse(q).unwrap().matches(&log), "a log has none: {q}");
        }
        for (q, want) in [
            ("latency_ms:fast", "bad number 'fast' for latency_ms"),
            (
                "latency_ms:/1/",
                "regexes apply to the message and keyword fields, not to latency_ms",
            ),
            ("input.:1", "'input.' is not a valid path"),
            (
                "output.a:x*",
                "wildcards apply to the message and keyword fields, not to output.a",
            ),
        ] {
            let err = parse(q).unwrap_err().message;
            assert!(err.contains(want), "{q}: {err}");
        }
    }

    #[test]
    fn matches_patterns_and_ranges_like_search_would() {
        let mut e = event();
        e.ts = Timestamp::parse_rfc3339("2026-11-22T03:09:44Z").unwrap();
        e.container_name = "api-7".into();
        e.fields = serde_json::from_str(
            r#"{"latency_ms":250.5,"status":503,"code":"300","spans":[{"ms":4},{"ms":[9,12]}]}"#,
        )
        .unwrap();
        let now = Timestamp::parse_rfc3339("2026-11-22T03:15:00Z").unwrap();
        let check = |q: &str, want: bool| {
            let parsed = super::super::parse_at(q, now).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(parsed.matches(&e), want, "{q}");
        };
        for q in [
            "service:w*",
            "service:*b",
            "container:api-?",
            "container:/api-[0-9]+/",
            "level:E*",
            "dis*",
            "DIS?",
            "sda*",
            "message:/S[a-z]+1/",
            "ts:>now-15m",
            "ts:2026-11-22",
            "ts:[2026-11-21 TO 2026-11-22]",
            "ts:{2026-11-21 TO *}",
            "fields.latency_ms:>250",
            "fields.latency_ms:[250.5 TO 250.5]",
            "fields.status:[500 TO 599]",
            "fields.spans.ms:[10 TO 12]",
            "fields.spans.ms:4",
        ] {
            check(q, true);
        }
        for q in [
            "service:W*",
            "service:w",
            "container:api-??",
            "container:/api/",
            "service:/we/",
            "dis",
            "message:/disk full/",
            r"dis\*",
            "ts:>now-5m",
            "ts:<2026-11-22",
            "ts:>2026-11-22",
            "fields.latency_ms:{250.5 TO *]",
            "fields.code:[200 TO 400]",
            "fields.ok:[0 TO 1]",
            "fields.spans:[0 TO 100]",
            "container_id:*",
        ] {
            check(q, false);
        }
    }
}
