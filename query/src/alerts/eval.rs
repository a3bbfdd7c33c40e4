//! The evaluator: per rule and group, a sliding [`Window`] fed event by event, and the
//! state machine of each alert (inactive → pending → firing → resolved).
//!
//! It holds no thread and reads no clock: callers pass `now`, which keeps it testable and
//! lets a restart replay stored events through the same code as live ones.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use shiplog_core::Event;
use shiplog_core::query::KeywordField;

use super::groups::Groups;
use super::rule::{MetricAgg, Rule, RuleKind};
use super::window::Window;

/// Transitions kept for `GET /api/v1/alerts/history`.
pub const HISTORY: usize = 1000;

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, for less than `for`.
    Pending,
    /// The condition has held for `for`.
    Firing,
    /// It was firing and the condition stopped holding.
    Resolved,
}

impl AlertState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert: a rule and one group of its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Rule name.
    pub rule: String,
    /// Group key values, in `group_by` order.
    pub key: Vec<String>,
    /// `group_by` label → value.
    pub group: BTreeMap<String, String>,
    /// Pending or firing.
    pub state: AlertState,
    /// When the condition started to hold (ns).
    pub active_at: i64,
    /// When it started firing (ns).
    pub fired_at: Option<i64>,
    /// Latest measured value.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Stable id of rule + group.
    pub fingerprint: String,
    /// Severity label.
    pub severity: String,
    /// Every label: `alertname`, `severity`, the group's and the rule's.
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The rule's query.
    pub query: String,
    /// The rule's comparison.
    pub op: String,
    /// The rule's kind.
    pub kind: String,
    /// The rule's window (ns).
    pub window_ns: i64,
}

/// One recorded state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// When (ns).
    pub at: i64,
    /// Rule name.
    pub rule: String,
    /// Group labels.
    pub group: BTreeMap<String, String>,
    /// Stable id of rule + group.
    pub fingerprint: String,
    /// Old state.
    pub from: AlertState,
    /// New state.
    pub to: AlertState,
    /// Value at the change.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The alert as it was when it resolved, for the resolution message.
    #[serde(skip)]
    pub instance: Option<Box<Instance>>,
}

struct RuleState {
    rule: Rule,
    groups: Groups,
    /// mem_percent rules: newest memory limit per container id.
    mem_limits: HashMap<String, f64>,
    /// Groups refused because the rule hit `max_groups`.
    refused: u64,
}

/// Every rule's windows and every alert's state.
pub struct Evaluator {
    rules: Vec<RuleState>,
    instances: BTreeMap<(String, Vec<String>), Instance>,
    history: VecDeque<Transition>,
    /// When rules were (re)loaded: ungrouped absence rules count from here.
    loaded_at: i64,
    max_groups: usize,
    /// Which rules an event can match, looked up by its keyword values.
    candidates: Candidates,
}

/// Rule indexes by the keyword value they require.
type RulesByValue = HashMap<String, Vec<usize>, foldhash::fast::RandomState>;

/// The rules each event is matched against, found without evaluating every rule: most
/// rules name one service (or kind, or model), so an event is only evaluated by the rules
/// whose required keyword value it holds, plus the rules that name none.
#[derive(Default)]
struct Candidates {
    /// Rules without a required keyword: evaluated for every event.
    always: Vec<usize>,
    /// Metric rules: evaluated for metric samples (events with a name and a value) only.
    samples: Vec<usize>,
    /// Per keyword field, the rules that need each of its values.
    by_field: Vec<(KeywordField, RulesByValue)>,
}

impl Candidates {
    fn build(rules: &[RuleState]) -> Self {
        let mut c = Candidates::default();
        for (i, rs) in rules.iter().enumerate() {
            let rule = &rs.rule;
            // What an event must match to be counted at all: a ratio counts only events of
            // its `over` query; others only hits.
            let gate = if rule.kind == RuleKind::Ratio {
                &rule.over.query
            } else {
                &rule.query.query
            };
            // Metric rules only ever count samples; mem_percent rules also track every
            // container's memory limit from them, so they see all samples.
            if rule.kind == RuleKind::Metric {
                c.samples.push(i);
                continue;
            }
            let Some((field, values)) = gate.required_keyword() else {
                c.always.push(i);
                continue;
            };
            let slot = match c.by_field.iter().position(|(f, _)| *f == field) {
                Some(slot) => slot,
                None => {
                    c.by_field.push((field, HashMap::default()));
                    c.by_field.len() - 1
                }
            };
            let map = &mut c.by_field[slot].1;
            let mut values = values;
            values.sort_unstable();
            values.dedup();
            for v in values {
                map.entry(v.to_string()).or_default().push(i);
            }
        }
        c
    }
}

/// Stable id of a rule and group: hex of a SHA-256 prefix.
pub fn fingerprint(rule: &str, key: &[String]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    for k in key {
        h.update([0u8]);
        h.update(k.as_bytes());
    }
    let d = h.finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Evaluator {
    /// An evaluator over `rules`, each keeping at most `max_groups` groups.
    pub fn new(rules: Vec<Rule>, now: i64, max_groups: usize) -> Self {
        let rules: Vec<RuleState> = rules.into_iter().map(RuleState::new).collect();
        Evaluator {
            candidates: Candidates::build(&rules),
            rules,
            instances: BTreeMap::new(),
            history: VecDeque::new(),
            loaded_at: now,
            max_groups: max_groups.max(1),
        }
    }

    /// The rules.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// Longest time back a restart must replay to refill every window.
    pub fn lookback_ns(&self) -> i64 {
        self.rules
            .iter()
            .map(|r| r.rule.window_ns.saturating_add(r.rule.for_ns))
            .max()
            .unwrap_or(0)
    }

    /// Replaces the rules, keeping alerts of rules whose name stays (their windows start
    /// empty and are refilled by the caller); alerts of removed rules resolve at the next
    /// [`Evaluator::evaluate`].
    pub fn set_rules(&mut self, rules: Vec<Rule>, now: i64) {
        self.rules = rules.into_iter().map(RuleState::new).collect();
        self.candidates = Candidates::build(&self.rules);
        self.loaded_at = now;
    }

    /// Empties every window (before a rebuild from the index); alerts stay.
    pub fn clear_windows(&mut self) {
        for rs in &mut self.rules {
            rs.groups.clear();
            rs.mem_limits.clear();
        }
    }

    /// Restores alerts and history saved before a restart.
    pub fn restore(&mut self, instances: Vec<Instance>, history: Vec<Transition>) {
        for i in instances {
            self.instances.insert((i.rule.clone(), i.key.clone()), i);
        }
        self.history = history.into_iter().collect();
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    /// Counts one event into every rule it matches.
    pub fn observe(&mut self, e: &Event, now: i64) {
        let max_groups = self.max_groups;
        // The message is analysed at most once for all rules.
        let mut terms = None;
        let Evaluator {
            rules, candidates, ..
        } = self;
        for &i in &candidates.always {
            rules[i].observe(e, now, max_groups, &mut terms);
        }
        if e.name.is_some() && e.value.is_some() {
            for &i in &candidates.samples {
                rules[i].observe(e, now, max_groups, &mut terms);
            }
        }
        for (field, by_value) in &candidates.by_field {
            let Some(list) = e.keyword(*field).and_then(|v| by_value.get(v)) else {
                continue;
            };
            for &i in list {
                rules[i].observe(e, now, max_groups, &mut terms);
            }
        }
    }

    /// Groups refused because a rule already had `max_groups`.
    pub fn refused_groups(&self) -> u64 {
        self.rules.iter().map(|r| r.refused).sum()
    }

    /// Measures every group and moves alerts between states; returns the transitions.
    pub fn evaluate(&mut self, now: i64) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut live: Vec<(String, Vec<String>)> = Vec::new();
        for rs in &mut self.rules {
            let rule = &rs.rule;
            // Groups that have an alert are measured even when their window emptied.
            let mut keys: Vec<Vec<String>> = rs.groups.keys().cloned().collect();
            for (name, key) in self.instances.keys() {
                if name == &rule.name && rs.groups.get(key).is_none() {
                    keys.push(key.clone());
                }
            }
            if rule.group_by.is_empty() && keys.is_empty() && low_side(rule) {
                keys.push(Vec::new());
            }
            for key in keys {
                let window = rs
                    .groups
                    .get_or_insert_with(key.clone(), || Window::new(rule.window_ns));
                window.expire(now);
                let (holds, value) = measure(rule, window, now, self.loaded_at);
                let id = (rule.name.clone(), key.clone());
                live.push(id.clone());
                let current = self.instances.get(&id).map(|i| i.state);
                let next = match (current, holds) {
                    (None, false) => continue,
                    (None, true) => {
                        let inst = Instance {
                            rule: rule.name.clone(),
                            group: rule
                                .group_by
                                .iter()
                                .map(|f| f.label())
                                .zip(key.iter().cloned())
                                .collect(),
                            key: key.clone(),
                            state: AlertState::Pending,
                            active_at: now,
                            fired_at: None,
                            value,
                            threshold: rule.threshold,
                            fingerprint: fingerprint(&rule.name, &key),
                            severity: String::new(),
                            labels: BTreeMap::new(),
                            annotations: BTreeMap::new(),
                            query: String::new(),
                            op: String::new(),
                            kind: String::new(),
                            window_ns: 0,
                        };
                        out.push(transition(
                            &inst,
                            AlertState::Inactive,
                            AlertState::Pending,
                            now,
                        ));
                        self.instances.insert(id.clone(), inst);
                        AlertState::Pending
                    }
                    (Some(s), true) => s,
                    (Some(s), false) => {
                        let inst = self.instances.remove(&id).expect("present");
                        let to = if s == AlertState::Firing {
                            AlertState::Resolved
                        } else {
                            AlertState::Inactive
                        };
                        let mut t = transition(&inst, s, to, now);
                        t.value = value;
                        t.instance = Some(Box::new(inst));
                        out.push(t);
                        continue;
                    }
                };
                let inst = self.instances.get_mut(&id).expect("present");
                inst.value = value;
                describe(inst, rule);
                if next == AlertState::Pending && now - inst.active_at >= rule.for_ns {
                    inst.state = AlertState::Firing;
                    inst.fired_at = Some(now);
                    out.push(transition(
                        inst,
                        AlertState::Pending,
                        AlertState::Firing,
                        now,
                    ));
                }
            }
            // Forget groups with nothing left in their window and no alert, except where an
            // empty window is itself the condition (absence, count below).
            if !low_side(rule) {
                rs.groups
                    .retain(|k, w| !w.is_empty() || live_has(&self.instances, &rule.name, k));
            }
        }
        // Alerts of rules that no longer exist resolve.
        let gone: Vec<(String, Vec<String>)> = self
            .instances
            .keys()
            .filter(|id| !self.rules.iter().any(|r| r.rule.name == id.0))
            .cloned()
            .collect();
        for id in gone {
            let inst = self.instances.remove(&id).expect("present");
            let to = if inst.state == AlertState::Firing {
                AlertState::Resolved
            } else {
                AlertState::Inactive
            };
            let mut t = transition(&inst, inst.state, to, now);
            t.instance = Some(Box::new(inst));
            out.push(t);
        }
        for t in &out {
            self.history.push_back(t.clone());
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
        }
        out
    }

    /// Alerts now pending or firing.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }

    /// Recorded transitions, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Transition> {
        self.history.iter()
    }

    /// The rule of that name.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().map(|r| &r.rule).find(|r| r.name == name)
    }
}

/// Copies what notifications need from the rule, so an alert outlives a removed rule.
fn describe(inst: &mut Instance, rule: &Rule) {
    inst.threshold = rule.threshold;
    inst.severity.clone_from(&rule.severity);
    inst.annotations.clone_from(&rule.annotations);
    inst.query.clone_from(&rule.query.text);
    inst.op = rule.op.as_str().to_string();
    inst.kind = rule.kind.as_str().to_string();
    inst.window_ns = rule.window_ns;
    let mut labels = rule.labels.clone();
    for (k, v) in &inst.group {
        labels.insert(label_name(k), v.clone());
    }
    labels.insert("alertname".into(), rule.name.clone());
    labels.insert("severity".into(), rule.severity.clone());
    inst.labels = labels;
}

/// A group key as a Prometheus label name (`fields.a.b` → `fields_a_b`).
pub fn label_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn live_has(
    instances: &BTreeMap<(String, Vec<String>), Instance>,
    rule: &str,
    key: &[String],
) -> bool {
    instances.contains_key(&(rule.to_string(), key.to_vec()))
}

/// Rules whose condition can hold with no events at all.
fn low_side(rule: &Rule) -> bool {
    match rule.kind {
        RuleKind::Absence => true,
        RuleKind::Count => rule.op.holds(0.0, rule.threshold),
        _ => false,
    }
}

fn transition(i: &Instance, from: AlertState, to: AlertState, at: i64) -> Transition {
    Transition {
        at,
        rule: i.rule.clone(),
        group: i.group.clone(),
        fingerprint: i.fingerprint.clone(),
        from,
        to,
        value: i.value,
        threshold: i.threshold,
        instance: None,
    }
}

/// Whether the rule's condition holds for one group, and the measured value.
fn measure(rule: &Rule, w: &Window, now: i64, loaded_at: i64) -> (bool, f64) {
    match rule.kind {
        RuleKind::Ratio => {
            let (hits, total) = w.counts();
            if total < rule.min_events || total == 0 {
                return (false, 0.0);
            }
            let v = hits as f64 / total as f64;
            (rule.op.holds(v, rule.threshold), v)
        }
        RuleKind::Count => {
            let v = w.counts().0 as f64;
            (rule.op.holds(v, rule.threshold), v)
        }
        RuleKind::Absence => {
            let last = w.last_seen.unwrap_or(loaded_at);
            let silent = (now - last).max(0);
            (silent >= rule.window_ns, silent as f64 / 1e9)
        }
        RuleKind::Percentile => match w.percentile(rule.percentile) {
            Some(v) => (rule.op.holds(v, rule.threshold), v),
            None => (false, 0.0),
        },
        RuleKind::Metric => match w.samples() {
            Some((sum, n, lo, hi, last)) => {
                let v = match rule.aggregate {
                    MetricAgg::Avg => sum / n as f64,
                    MetricAgg::Max => hi,
                    MetricAgg::Min => lo,
                    MetricAgg::Last => last,
                };
                (rule.op.holds(v, rule.threshold), v)
            }
            None => (false, 0.0),
        },
    }
}

impl RuleState {
    fn new(rule: Rule) -> Self {
        RuleState {
            rule,
            groups: Groups::default(),
            mem_limits: HashMap::new(),
            refused: 0,
        }
    }

    fn observe(
        &mut self,
        e: &Event,
        now: i64,
        max_groups: usize,
        terms: &mut Option<shiplog_core::query::analysis::Analyzed>,
    ) {
        let rule = &self.rule;
        let ts = e.ts.as_nanos();
        // Metric samples: the value comes from the sample, mem_percent from two of them.
        let metric_value = if rule.kind == RuleKind::Metric {
            let Some(name) = e.name.as_deref() else {
                return;
            };
            let Some(v) = e.value else {
                return;
            };
            if rule.metric == "mem_percent" {
                if name == "mem_limit_bytes" {
                    self.mem_limits.insert(e.container_id.clone(), v);
                    return;
                }
                if name != "mem_bytes" {
                    return;
                }
                match self.mem_limits.get(&e.container_id) {
                    Some(limit) if *limit > 0.0 => Some(v / limit * 100.0),
                    _ => return,
                }
            } else if name == rule.metric {
                Some(v)
            } else {
                return;
            }
        } else {
            None
        };
        // A ratio's numerator is counted among its denominator only.
        let counted = rule.kind == RuleKind::Ratio && rule.over.query.matches_reusing(e, terms);
        if rule.kind == RuleKind::Ratio && !counted {
            return;
        }
        let hit = rule.query.query.matches_reusing(e, terms);
        if !hit && !counted {
            return;
        }
        let w = match self.groups.of_event(&rule.group_by, e) {
            Some(w) => w,
            None => {
                if self.groups.len() >= max_groups {
                    self.refused += 1;
                    return;
                }
                let key: Vec<String> = rule.group_by.iter().map(|f| f.text(e)).collect();
                self.groups
                    .get_or_insert_with(key, || Window::new(rule.window_ns))
            }
        };
        match rule.kind {
            RuleKind::Absence => {
                if hit {
                    w.seen(ts, now);
                }
            }
            RuleKind::Ratio | RuleKind::Count => {
                if let Some(b) = w.bucket(ts, now) {
                    b.hits += u64::from(hit);
                    b.total += u64::from(counted);
                }
            }
            RuleKind::Percentile => {
                let v = rule.field.as_ref().and_then(|f| f.number(e));
                if let (true, Some(v)) = (hit, v)
                    && let Some(b) = w.bucket(ts, now)
                {
                    b.bin(v);
                }
            }
            RuleKind::Metric => {
                if let (true, Some(v)) = (hit, metric_value)
                    && let Some(b) = w.bucket(ts, now)
                {
                    b.sample(ts, v);
                }
            }
        }
    }
}
