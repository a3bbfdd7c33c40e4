//! Evaluator and rule tests with explicit clocks.

use serde_json::json;
use shiplog_core::{Event, Kind, Level, Timestamp};

use super::eval::{AlertState, Evaluator};
use super::rule::{Rule, RuleSpec};

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_795_000_000 * SEC;

fn rule(v: serde_json::Value) -> Rule {
    let spec: RuleSpec = serde_json::from_value(v).unwrap();
    spec.compile().unwrap()
}

fn spec_err(v: serde_json::Value) -> String {
    match serde_json::from_value::<RuleSpec>(v) {
        Err(e) => e.to_string(),
        Ok(s) => s.compile().unwrap_err().to_string(),
    }
}

fn log(ts: i64, service: &str, level: Option<Level>) -> Event {
    let mut e = Event::log(Timestamp(ts), "line");
    e.service = service.into();
    e.level = level;
    e
}

fn states(ev: &Evaluator) -> Vec<(String, AlertState)> {
    ev.instances()
        .map(|i| {
            (
                i.group.values().cloned().collect::<Vec<_>>().join(","),
                i.state,
            )
        })
        .collect()
}

#[test]
fn a_ratio_rule_goes_pending_then_firing_after_for_then_resolves() {
    let r = rule(json!({
        "name": "errors", "kind": "ratio", "query": "level:error", "window": "10s",
        "threshold": 0.2, "for": "5s", "group_by": ["service"], "severity": "critical",
        "labels": {"team": "ml"}
    }));
    let mut ev = Evaluator::new(vec![r], T0, 100);
    let mut now;
    // api: 1 error in 2; web: no errors.
    for s in 0..20 {
        now = T0 + s * SEC;
        ev.observe(&log(now, "api", Some(Level::Error)), now);
        ev.observe(&log(now, "api", Some(Level::Info)), now);
        ev.observe(&log(now, "web", Some(Level::Info)), now);
        let t = ev.evaluate(now);
        if s == 0 {
            assert_eq!(t.len(), 1);
            assert_eq!(t[0].to, AlertState::Pending);
        }
        if s == 5 {
            assert_eq!(t.len(), 1, "fires once `for` has elapsed");
            assert_eq!(t[0].to, AlertState::Firing);
        }
        if s != 0 && s != 5 {
            assert!(t.is_empty(), "second {s}: {t:?}");
        }
    }
    assert_eq!(states(&ev), [("api".to_string(), AlertState::Firing)]);
    let i = ev.instances().next().unwrap();
    assert_eq!(i.value, 0.5);
    assert_eq!(i.labels["team"], "ml");
    assert_eq!(i.labels["alertname"], "errors");
    assert_eq!(i.labels["service"], "api");
    // Errors stop; after the window only info lines remain.
    let mut resolved = None;
    for s in 20..40 {
        now = T0 + s * SEC;
        ev.observe(&log(now, "api", Some(Level::Info)), now);
        for t in ev.evaluate(now) {
            assert_eq!(t.to, AlertState::Resolved);
            assert!(resolved.replace(s).is_none(), "resolves once");
        }
    }
    // 10 errors in 20 events at the first second: below 0.2 once 8 of the 10 seconds are
    // error-free.
    assert!(
        resolved.is_some_and(|s| (25..=31).contains(&s)),
        "{resolved:?}"
    );
    assert!(ev.instances().next().is_none());
    let kinds: Vec<_> = ev.history().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        kinds,
        [
            (AlertState::Inactive, AlertState::Pending),
            (AlertState::Pending, AlertState::Firing),
            (AlertState::Firing, AlertState::Resolved),
        ]
    );
}

#[test]
fn a_condition_shorter_than_for_never_fires() {
    let r = rule(json!({
        "name": "burst", "kind": "count", "query": "level:error", "window": "2s",
        "threshold": 0, "for": "10s"
    }));
    let mut ev = Evaluator::new(vec![r], T0, 100);
    ev.observe(&log(T0, "api", Some(Level::Error)), T0);
    let t = ev.evaluate(T0);
    assert_eq!(t[0].to, AlertState::Pending);
    let t = ev.evaluate(T0 + 5 * SEC);
    assert_eq!(t[0].to, AlertState::Inactive);
    assert!(ev.evaluate(T0 + 20 * SEC).is_empty());
}

#[test]
fn absence_fires_for_a_silent_group_and_resolves_when_it_logs_again() {
    let r = rule(json!({
        "name": "quiet", "kind": "absence", "query": "kind:log", "window": "10s",
        "group_by": ["container"]
    }));
    let mut ev = Evaluator::new(vec![r], T0, 100);
    for s in 0..5 {
        let now = T0 + s * SEC;
        let mut a = log(now, "svc", None);
        a.container_name = "a".into();
        let mut b = a.clone();
        b.container_name = "b".into();
        ev.observe(&a, now);
        ev.observe(&b, now);
        assert!(ev.evaluate(now).is_empty());
    }
    // Only b keeps logging.
    let mut fired_at = None;
    for s in 5..20 {
        let now = T0 + s * SEC;
        let mut b = log(now, "svc", None);
        b.container_name = "b".into();
        ev.observe(&b, now);
        for t in ev.evaluate(now) {
            if t.to == AlertState::Firing {
                assert_eq!(t.group["container"], "a");
                fired_at = Some(s);
            }
        }
    }
    assert_eq!(fired_at, Some(14), "10 s after a's last line at second 4");
    let now = T0 + 20 * SEC;
    let mut a = log(now, "svc", None);
    a.container_name = "a".into();
    ev.observe(&a, now);
    let t = ev.evaluate(now);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].to, AlertState::Resolved);
}

#[test]
fn an_ungrouped_absence_rule_fires_when_nothing_ever_came() {
    let r = rule(json!({"name": "none", "kind": "absence", "query": "service:x", "window": "5s"}));
    let mut ev = Evaluator::new(vec![r], T0, 100);
    assert!(ev.evaluate(T0 + 4 * SEC).is_empty());
    let t = ev.evaluate(T0 + 5 * SEC);
    assert_eq!(t.last().unwrap().to, AlertState::Firing);
}

#[test]
fn percentile_rules_read_latency_per_model() {
    let r = rule(json!({
        "name": "slow", "kind": "percentile", "query": "kind:prediction", "field": "latency_ms",
        "percentile": 99, "window": "1m", "threshold": 500, "group_by": ["model"]
    }));
    let mut ev = Evaluator::new(vec![r], T0, 100);
    for i in 0..200 {
        for (model, slow) in [("fast", 10.0), ("slow", 900.0)] {
            let mut e = log(T0, "m", None);
            e.kind = Kind::Prediction;
            e.model = Some(model.into());
            e.latency_ms = Some(if i < 190 { 5.0 } else { slow });
            ev.observe(&e, T0);
        }
    }
    let t = ev.evaluate(T0);
    let fired: Vec<_> = t.iter().filter(|t| t.to == AlertState::Firing).collect();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].group["model"], "slow");
    assert!((fired[0].value - 900.0).abs() < 18.0, "{}", fired[0].value);
}

#[test]
fn memory_rules_compare_usage_with_the_container_limit() {
    let r = rule(json!({
        "name": "mem", "kind": "metric", "metric": "mem_percent", "aggregate": "max",
        "window": "1m", "threshold": 90, "group_by": ["container"]
    }));
    let mut ev = Evaluator::new(vec![r], T0, 100);
    let sample = |name: &str, v: f64| {
        let mut e = log(T0, "svc", None);
        e.kind = Kind::Metric;
        e.container_id = "c1".into();
        e.container_name = "api-1".into();
        e.name = Some(name.into());
        e.value = Some(v);
        e
    };
    ev.observe(&sample("mem_bytes", 950.0), T0); // no limit known yet
    assert!(ev.evaluate(T0).is_empty());
    ev.observe(&sample("mem_limit_bytes", 1000.0), T0);
    ev.observe(&sample("mem_bytes", 800.0), T0);
    assert!(ev.evaluate(T0).is_empty());
    ev.observe(&sample("mem_bytes", 950.0), T0);
    let t = ev.evaluate(T0);
    assert_eq!(t.last().unwrap().to, AlertState::Firing);
    assert!((t.last().unwrap().value - 95.0).abs() < 1e-9);
}

#[test]
fn groups_past_the_cap_are_refused_and_counted() {
    let r = rule(
        json!({"name": "c", "kind": "count", "window": "1m", "threshold": 5, "group_by": ["service"]}),
    );
    let mut ev = Evaluator::new(vec![r], T0, 3);
    for s in ["a", "b", "c", "d", "e"] {
        ev.observe(&log(T0, s, None), T0);
    }
    assert_eq!(ev.refused_groups(), 2);
}

#[test]
fn removed_rules_resolve_their_alerts() {
    let r = rule(json!({"name": "c", "kind": "count", "window": "1m", "threshold": 0}));
    let mut ev = Evaluator::new(vec![r], T0, 10);
    ev.observe(&log(T0, "a", None), T0);
    assert_eq!(ev.evaluate(T0).last().unwrap().to, AlertState::Firing);
    ev.set_rules(Vec::new(), T0);
    let t = ev.evaluate(T0 + SEC);
    assert_eq!(t[0].to, AlertState::Resolved);
    assert!(t[0].instance.is_some());
}

#[test]
fn bad_rules_name_the_key_and_the_reason() {
    let base = json!({"name": "r", "kind": "ratio", "window": "1m", "threshold": 0.1});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("query", json!("level:(")), "bad query"),
        (with("query", json!("ts:>now-5m")), "ts: ranges"),
        (with("window", json!("soon")), "invalid time"),
        (with("window", json!("0s")), "window"),
        (with("window", json!("2d")), "out of range"),
        (with("threshold", json!(5)), "not a ratio"),
        (with("kind", json!("rate")), "unknown variant"),
        (with("op", json!("=>")), "unknown operator"),
        (
            with("group_by", json!(["colour"])),
            "unknown field 'colour'",
        ),
        (
            with("field", json!("latency_ms")),
            "only applies to percentile",
        ),
        (with("wndow", json!("1m")), "unknown field `wndow`"),
        (
            with("labels", json!({"bad-label": "x"})),
            "not a label name",
        ),
        (
            json!({"name": "p", "kind": "percentile", "window": "1m", "threshold": 1, "percentile": 99}),
            "field: missing",
        ),
        (
            json!({"name": "p", "kind": "percentile", "window": "1m", "threshold": 1, "field": "latency_ms", "percentile": 120}),
            "not in 0..=100",
        ),
        (
            json!({"name": "p", "kind": "percentile", "window": "1m", "threshold": 1, "field": "service", "percentile": 99}),
            "must be numeric",
        ),
        (
            json!({"name": "m", "kind": "metric", "window": "1m", "threshold": 1}),
            "metric: missing",
        ),
        (
            json!({"name": "a", "kind": "absence", "window": "1m", "threshold": 1}),
            "threshold: only applies",
        ),
        (
            json!({"name": "c", "kind": "count", "window": "1m"}),
            "threshold: missing",
        ),
        (
            json!({"name": "", "kind": "count", "window": "1m", "threshold": 1}),
            "name",
        ),
    ];
    for (v, want) in cases {
        let e = spec_err(v.clone());
        assert!(e.contains(want), "{v}: {e}");
    }
    let a: RuleSpec = serde_json::from_value(base.clone()).unwrap();
    let e = super::rule::compile_all(&[a.clone(), a.clone()], &[]).unwrap_err();
    assert!(e.to_string().contains("same name"), "{e}");
    let mut b = a.clone();
    b.notify = Some(vec!["pager".into()]);
    let e = super::rule::compile_all(&[b], &["hook".into()]).unwrap_err();
    assert!(e.to_string().contains("no notifier named 'pager'"), "{e}");
}

#[test]
fn rules_found_by_their_required_keyword_count_exactly_their_events() {
    let rules = vec![
        rule(
            json!({"name": "either", "kind": "count", "window": "1m", "threshold": 2,
            "query": "(service:api OR service:web) AND level:error", "group_by": ["service"]}),
        ),
        rule(
            json!({"name": "ratio", "kind": "ratio", "query": "level:error",
            "over": "service:api", "window": "1m", "threshold": 0.4}),
        ),
        rule(
            json!({"name": "any", "kind": "count", "query": "level:error", "window": "1m",
            "threshold": 5}),
        ),
        rule(
            json!({"name": "db", "kind": "count", "query": "service:db", "window": "1m",
            "threshold": 0}),
        ),
    ];
    let mut ev = Evaluator::new(rules, T0, 100);
    let lines = [
        ("api", Level::Error),
        ("api", Level::Error),
        ("api", Level::Error),
        ("api", Level::Info),
        ("web", Level::Error),
        ("web", Level::Error),
        ("db2", Level::Error),
        ("other", Level::Error),
    ];
    for (svc, level) in lines {
        ev.observe(&log(T0, svc, Some(level)), T0);
    }
    ev.evaluate(T0);
    let mut seen: Vec<(String, String, f64)> = ev
        .instances()
        .map(|i| {
            let group = i.group.values().cloned().collect::<Vec<_>>().join(",");
            (i.rule.clone(), group, i.value)
        })
        .collect();
    seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        seen,
        [
            ("any".to_string(), String::new(), 7.0),
            ("either".to_string(), "api".to_string(), 3.0),
            ("ratio".to_string(), String::new(), 0.75),
        ]
    );
}
