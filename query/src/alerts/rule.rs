//! Alert rules: the `[[alert]]` tables of the config file as written ([`RuleSpec`]) and
//! checked, compiled rules ([`Rule`]) the engine evaluates.
//!
//! Values that can be checked alone (a query, a duration, a group key, an operator) are
//! checked while deserialising, so a TOML parser reports them at the line of the value;
//! checks that need several keys run in [`RuleSpec::compile`] and name the key at fault.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use shiplog_core::Event;
use shiplog_core::query::{KeywordField, Query};
use shiplog_core::units::HumanDuration;

/// Longest window a rule may use; windows are kept in memory and rebuilt from the index.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Most `group_by` keys of one rule.
pub const MAX_GROUP_KEYS: usize = 8;

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Matching events / events matching `over` (all events by default) in the window.
    Ratio,
    /// Matching events in the window.
    Count,
    /// No matching event for `window`.
    Absence,
    /// A percentile of a numeric field over the matching events of the window.
    Percentile,
    /// A container metric (`cpu_percent`, `mem_percent`, any sample name) aggregated over
    /// the window.
    Metric,
}

impl RuleKind {
    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Ratio => "ratio",
            RuleKind::Count => "count",
            RuleKind::Absence => "absence",
            RuleKind::Percentile => "percentile",
            RuleKind::Metric => "metric",
        }
    }
}

/// How the measured value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Op {
    /// `>` (the default)
    #[default]
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Op {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    /// Whether `value op threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown operator '{other}': use >, >=, < or <="
                )));
            }
        })
    }
}

/// How a metric rule folds the samples of its window into one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricAgg {
    /// Mean of the samples (the default).
    #[default]
    Avg,
    /// Largest sample.
    Max,
    /// Smallest sample.
    Min,
    /// Newest sample.
    Last,
}

/// Query text, parsed when read so a bad query is reported at its line.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryText {
    /// As written.
    pub text: String,
    /// Parsed.
    pub query: Query,
}

impl QueryText {
    /// Parses rule query text; time ranges are refused because the window sets the time.
    pub fn parse(text: &str) -> Result<Self, String> {
        let query = shiplog_core::query::parse(text).map_err(|e| {
            format!(
                "bad query '{text}' at character {}: {}",
                e.position, e.message
            )
        })?;
        if has_time(&query) {
            return Err(format!(
                "bad query '{text}': ts: ranges cannot be used in alert rules, the rule's window sets the time"
            ));
        }
        Ok(QueryText {
            text: text.to_string(),
            query,
        })
    }
}

fn has_time(q: &Query) -> bool {
    match q {
        Query::Time(_) => true,
        Query::And(qs) | Query::Or(qs) => qs.iter().any(has_time),
        Query::Not(q) => has_time(q),
        _ => false,
    }
}

impl Serialize for QueryText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for QueryText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        QueryText::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What a group key or a percentile field reads from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef {
    /// A keyword field: service, node, container, container_id, image, stream, level, kind.
    Keyword(KeywordField),
    /// A metric sample's `name`.
    MetricName,
    /// A prediction's `latency_ms` (or `fields.latency_ms` on events that carry it there).
    LatencyMs,
    /// `fields.<path>`, dot-separated.
    Json(String),
}

impl FieldRef {
    /// Reads a name as written in a rule.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(path) = name.strip_prefix("fields.") {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(format!("bad field '{name}': write fields.a.b"));
            }
            return Ok(FieldRef::Json(path.to_string()));
        }
        if name == "name" || name == "metric" {
            return Ok(FieldRef::MetricName);
        }
        if name == "latency_ms" {
            return Ok(FieldRef::LatencyMs);
        }
        if let Some(k) = KeywordField::from_name(name) {
            return Ok(FieldRef::Keyword(k));
        }
        Err(format!(
            "unknown field '{name}': use service, node, container, container_id, image, stream, level, kind, name, model, model_version, request_id, status, latency_ms or fields.<path>"
        ))
    }

    /// The name shown in alert labels.
    pub fn label(&self) -> String {
        match self {
            FieldRef::Keyword(KeywordField::ContainerName) => "container".into(),
            FieldRef::Keyword(k) => k.name().into(),
            FieldRef::MetricName => "name".into(),
            FieldRef::LatencyMs => "latency_ms".into(),
            FieldRef::Json(p) => format!("fields.{p}"),
        }
    }

    /// The value as text, for grouping; `""` when the event has none.
    pub fn text(&self, e: &Event) -> String {
        self.text_ref(e).into_owned()
    }

    /// Like [`FieldRef::text`], borrowing from the event where it can (keyword fields and
    /// metric names, the usual group keys), so looking up a group allocates nothing.
    pub fn text_ref<'e>(&self, e: &'e Event) -> Cow<'e, str> {
        match self {
            FieldRef::Keyword(k) => Cow::Borrowed(e.keyword(*k).unwrap_or("")),
            FieldRef::MetricName => Cow::Borrowed(e.name.as_deref().unwrap_or("")),
            FieldRef::LatencyMs => {
                Cow::Owned(e.latency_ms.map(|v| v.to_string()).unwrap_or_default())
            }
            FieldRef::Json(p) => match json_path(&e.fields, p) {
                Some(Value::String(s)) => Cow::Borrowed(s),
                other => Cow::Owned(json_text(other)),
            },
        }
    }

    /// The value as a number, for percentiles; `None` when absent or not a number.
    pub fn number(&self, e: &Event) -> Option<f64> {
        let v = match self {
            FieldRef::LatencyMs => match e.latency_ms {
                Some(v) => return Some(v),
                None => e.fields.get("latency_ms"),
            },
            FieldRef::Json(p) => json_path(&e.fields, p),
            FieldRef::MetricName | FieldRef::Keyword(_) => return None,
        }?;
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

fn json_path<'a>(fields: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = fields.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

fn json_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl Serialize for FieldRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

impl<'de> Deserialize<'de> for FieldRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FieldRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One `[[alert]]` table as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique name; becomes the `alertname` label.
    pub name: String,
    /// What is measured.
    pub kind: RuleKind,
    /// Which events count (the numerator of a ratio); default: every event.
    #[serde(default)]
    pub query: Option<QueryText>,
    /// Ratio only: the denominator; default: every event of the group.
    #[serde(default)]
    pub over: Option<QueryText>,
    /// Sliding window the value is computed over; for `absence`, how long without a
    /// matching event counts as absent.
    pub window: HumanDuration,
    /// Comparison with the threshold (default `>`; `absence` ignores it).
    #[serde(default)]
    pub op: Op,
    /// Threshold (ratio: 0..=1; count: events; percentile and metric: the field's unit).
    /// `absence` needs none.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// How long the condition must hold before the alert fires (default `0s`).
    #[serde(default, rename = "for")]
    pub for_: Option<HumanDuration>,
    /// Keys whose values split the rule into independent alerts.
    #[serde(default)]
    pub group_by: Vec<FieldRef>,
    /// `critical`, `warning` (default), `info` or any word.
    #[serde(default)]
    pub severity: Option<String>,
    /// Extra labels sent with every notification.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Texts sent with every notification (`summary`, `description`, `runbook_url`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Ratio only: fewer events than this in the window never fire (default 1).
    #[serde(default)]
    pub min_events: Option<u64>,
    /// Percentile only: the numeric field (`latency_ms`, `fields.duration`).
    #[serde(default)]
    pub field: Option<FieldRef>,
    /// Percentile only: which one, in 0..=100 (`99` for p99).
    #[serde(default)]
    pub percentile: Option<f64>,
    /// Metric only: the sample name (`cpu_percent`, `mem_bytes`, ...), or `mem_percent`
    /// for memory as a percentage of the container's limit.
    #[serde(default)]
    pub metric: Option<String>,
    /// Metric only: how the window's samples fold into one value (default `avg`).
    #[serde(default)]
    pub aggregate: Option<MetricAgg>,
    /// Names of the notifiers to tell; default: all of them.
    #[serde(default)]
    pub notify: Option<Vec<String>>,
}

/// A rule that does not hold together, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert '{rule}': {key}: {message}")]
pub struct RuleError {
    /// The rule's name.
    pub rule: String,
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// A checked rule, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// What is measured.
    pub kind: RuleKind,
    /// Matching events (numerator of a ratio).
    pub query: QueryText,
    /// Ratio denominator.
    pub over: QueryText,
    /// Window length in nanoseconds.
    pub window_ns: i64,
    /// Comparison.
    pub op: Op,
    /// Threshold (0 for absence).
    pub threshold: f64,
    /// Pending time before firing, in nanoseconds.
    pub for_ns: i64,
    /// Group keys.
    pub group_by: Vec<FieldRef>,
    /// Severity label.
    pub severity: String,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Ratio: least events in the window.
    pub min_events: u64,
    /// Percentile: field.
    pub field: Option<FieldRef>,
    /// Percentile: which one (0..=100).
    pub percentile: f64,
    /// Metric: sample name.
    pub metric: String,
    /// Metric: fold.
    pub aggregate: MetricAgg,
    /// Notifier names; empty means all.
    pub notify: Vec<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.kind.as_str())
    }
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl RuleSpec {
    /// Checks the keys against each other and compiles the rule.
    pub fn compile(&self) -> Result<Rule, RuleError> {
        let err = |key: &'static str, message: String| RuleError {
            rule: self.name.clone(),
            key,
            message,
        };
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err(err(
                "name",
                "give every rule a name of 1 to 128 characters".into(),
            ));
        }
        if self.window.0.is_zero() || self.window.0 > MAX_WINDOW {
            return Err(err(
                "window",
                format!("{} is out of range: use 1s to 24h", self.window),
            ));
        }
        if self.window.0 < Duration::from_secs(1) {
            return Err(err("window", format!("{} is shorter than 1s", self.window)));
        }
        if self.group_by.len() > MAX_GROUP_KEYS {
            return Err(err(
                "group_by",
                format!(
                    "{} keys given, at most {MAX_GROUP_KEYS}",
                    self.group_by.len()
                ),
            ));
        }
        let only = |key: &'static str, set: bool, kinds: &str| -> Result<(), RuleError> {
            if set {
                return Err(err(
                    key,
                    format!(
                        "only applies to {kinds} rules, not to kind = \"{}\"",
                        self.kind.as_str()
                    ),
                ));
            }
            Ok(())
        };
        let k = self.kind;
        only("over", self.over.is_some() && k != RuleKind::Ratio, "ratio")?;
        only(
            "min_events",
            self.min_events.is_some() && k != RuleKind::Ratio,
            "ratio",
        )?;
        only(
            "field",
            self.field.is_some() && k != RuleKind::Percentile,
            "percentile",
        )?;
        only(
            "percentile",
            self.percentile.is_some() && k != RuleKind::Percentile,
            "percentile",
        )?;
        only(
            "metric",
            self.metric.is_some() && k != RuleKind::Metric,
            "metric",
        )?;
        only(
            "aggregate",
            self.aggregate.is_some() && k != RuleKind::Metric,
            "metric",
        )?;
        only(
            "threshold",
            self.threshold.is_some() && k == RuleKind::Absence,
            "ratio, count, percentile and metric",
        )?;
        let threshold = match (k, self.threshold) {
            (RuleKind::Absence, _) => 0.0,
            (_, None) => return Err(err("threshold", "missing: say what value fires".into())),
            (_, Some(t)) if !t.is_finite() => {
                return Err(err("threshold", format!("{t} is not a finite number")));
            }
            (RuleKind::Ratio, Some(t)) if !(0.0..=1.0).contains(&t) => {
                return Err(err(
                    "threshold",
                    format!("{t} is not a ratio: use a value from 0 to 1 (0.05 for 5%)"),
                ));
            }
            (RuleKind::Count, Some(t)) if t < 0.0 => {
                return Err(err("threshold", format!("{t}: a count cannot be negative")));
            }
            (_, Some(t)) => t,
        };
        let field = match k {
            RuleKind::Percentile => match &self.field {
                Some(FieldRef::Keyword(_) | FieldRef::MetricName) => {
                    return Err(err(
                        "field",
                        "must be numeric: latency_ms or fields.<path>".into(),
                    ));
                }
                Some(f) => Some(f.clone()),
                None => {
                    return Err(err(
                        "field",
                        "missing: the numeric field, e.g. latency_ms".into(),
                    ));
                }
            },
            _ => None,
        };
        let percentile = match (k, self.percentile) {
            (RuleKind::Percentile, None) => {
                return Err(err("percentile", "missing: e.g. 99 for p99".into()));
            }
            (RuleKind::Percentile, Some(p)) if !(0.0..=100.0).contains(&p) => {
                return Err(err("percentile", format!("{p} is not in 0..=100")));
            }
            (_, p) => p.unwrap_or(0.0),
        };
        let metric = match (k, &self.metric) {
            (RuleKind::Metric, None) => {
                return Err(err(
                    "metric",
                    "missing: a sample name such as cpu_percent or mem_percent".into(),
                ));
            }
            (RuleKind::Metric, Some(m)) if m.is_empty() => {
                return Err(err(
                    "metric",
                    "empty: a sample name such as cpu_percent".into(),
                ));
            }
            (_, m) => m.clone().unwrap_or_default(),
        };
        for key in self.labels.keys() {
            if !valid_label(key) {
                return Err(err(
                    "labels",
                    format!(
                        "'{key}' is not a label name: use letters, digits and _, not starting with a digit"
                    ),
                ));
            }
        }
        let all = QueryText {
            text: String::new(),
            query: Query::All,
        };
        let mut query = self.query.clone().unwrap_or_else(|| all.clone());
        if k == RuleKind::Metric {
            // Only samples of the named metric (and mem_bytes/mem_limit_bytes for mem_percent).
            query.query = Query::And(vec![
                Query::Keyword {
                    field: KeywordField::Kind,
                    value: "metric".into(),
                },
                query.query,
            ]);
        }
        Ok(Rule {
            name: self.name.clone(),
            kind: k,
            query,
            over: self.over.clone().unwrap_or(all),
            window_ns: nanos(self.window.0),
            op: self.op,
            threshold,
            for_ns: self.for_.map_or(0, |d| nanos(d.0)),
            group_by: self.group_by.clone(),
            severity: self.severity.clone().unwrap_or_else(|| "warning".into()),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            min_events: self.min_events.unwrap_or(1).max(1),
            field,
            percentile,
            metric,
            aggregate: self.aggregate.unwrap_or_default(),
            notify: self.notify.clone().unwrap_or_default(),
        })
    }
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compiles a set of rules, refusing duplicate names and notifiers nobody configured.
pub fn compile_all(specs: &[RuleSpec], notifiers: &[String]) -> Result<Vec<Rule>, RuleError> {
    let mut out: Vec<Rule> = Vec::with_capacity(specs.len());
    for s in specs {
        let rule = s.compile()?;
        if out.iter().any(|r| r.name == rule.name) {
            return Err(RuleError {
                rule: rule.name,
                key: "name",
                message: "another rule has the same name: names must be unique".into(),
            });
        }
        for n in &rule.notify {
            if !notifiers.iter().any(|x| x == n) {
                return Err(RuleError {
                    rule: rule.name.clone(),
                    key: "notify",
                    message: format!(
                        "no notifier named '{n}': configured are [{}]",
                        notifiers.join(", ")
                    ),
                });
            }
        }
        out.push(rule);
    }
    Ok(out)
}
