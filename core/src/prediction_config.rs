//! The `[predictions]` config section, and the rules it builds.
//!
//! One section says which containers write predictions, how their JSON keys map onto a
//! prediction ([`PredictionMapping`]) and which redactions run on them. Both places that
//! take predictions in build their rules from it with [`PredictionsConfig::build`], so a
//! record is mapped and redacted the same way whether a collector read it from a
//! container or a model server posted it to the API:
//!
//! ```text
//! PredictionsConfig ──build()──▶ PredictionRules ──capture()──▶ prediction (or malformed log)
//!   (TOML, checked as parsed)     mapping + redactions ──redact()──▶ nothing sensitive left
//! ```
//!
//! Bad rules (a regex that does not compile, a path that is not `input.`/`output.`/
//! `fields.`, a hash without a key) fail while the file is parsed, so `shiplog config
//! check` names their line. The hash key is read from the file (`hash_key`) or from an
//! environment variable (`hash_key_env`, resolved by `build`), and never printed.

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Event, Kind};
use crate::prediction::{MalformedPrediction, PredictionMapping};
use crate::redact::{Redact, Replacement, redact_all};
use crate::timestamp::Timestamp;

/// Container label that makes a container's JSON lines predictions (`true`), or keeps a
/// container matched by a name or image rule from being read as one (`false`).
pub const PREDICTIONS_LABEL: &str = "shiplog.predictions";
/// Longest pattern accepted, in bytes (beyond that it is a config mistake, not a pattern).
const MAX_PATTERN_BYTES: usize = 4096;
/// Compiled size cap of one pattern, so a pattern cannot take the node's memory.
const PATTERN_SIZE_LIMIT: usize = 1024 * 1024;

/// A built-in redaction rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// E-mail addresses.
    Email,
    /// Payment card numbers that pass the Luhn check.
    Card,
}

impl Builtin {
    /// The rule's name, as listed in `fields._redacted`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::Card => "card",
        }
    }
}

/// What a redaction does with what it matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactAction {
    /// Replace with `****`.
    #[default]
    Mask,
    /// Replace with a keyed hash (`sha256:<16 hex>`), so equal values stay correlatable.
    Hash,
    /// Remove: a matched text is cut out, a matched path loses its key.
    Drop,
}

/// `[[predictions.redact]]`: one redaction rule, on a regex or on a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedRule")]
pub struct PredictionRedactRule {
    /// Name listed in `fields._redacted` of each record it changed.
    pub name: String,
    /// Regex matched inside every string of the message, fields, input and output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Dotted path of one value: `input.customer.email`, `output.score`, `fields.x`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What happens to what it matched.
    pub action: RedactAction,
}

/// A rule as written, checked by `TryFrom` so a bad one fails at its own line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UncheckedRule {
    name: String,
    pattern: Option<String>,
    path: Option<String>,
    #[serde(default)]
    action: RedactAction,
}

impl TryFrom<UncheckedRule> for PredictionRedactRule {
    type Error = PredictionConfigError;

    fn try_from(rule: UncheckedRule) -> Result<Self, Self::Error> {
        let rule = PredictionRedactRule {
            name: rule.name,
            pattern: rule.pattern,
            path: rule.path,
            action: rule.action,
        };
        rule.compile(Replacement::Mask)?;
        Ok(rule)
    }
}

impl PredictionRedactRule {
    /// The compiled rule, with `replacement` for what it matched.
    fn compile(&self, replacement: Replacement) -> Result<Redact, PredictionConfigError> {
        let bad = |reason: String| PredictionConfigError::Rule {
            rule: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(bad(
                "give the rule a name (it is listed in fields._redacted)".into(),
            ));
        }
        match (&self.pattern, &self.path) {
            (Some(pattern), None) => {
                let regex = compile_pattern(pattern).map_err(|why| {
                    bad(format!(
                        "pattern '{}' is not a valid regex: {why}",
                        shorten(pattern)
                    ))
                })?;
                Ok(Redact::new(&self.name, regex, replacement))
            }
            (None, Some(path)) => {
                Redact::path(&self.name, path, replacement).map_err(|e| bad(e.to_string()))
            }
            (Some(_), Some(_)) => Err(bad("set either pattern or path, not both".into())),
            (None, None) => Err(bad(
                "set pattern (a regex) or path (such as input.customer.email)".into(),
            )),
        }
    }
}

/// `[predictions]`: which containers write predictions, how they are read and redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedConfig")]
pub struct PredictionsConfig {
    /// Regexes on container names: matching containers' JSON lines are predictions (as are
    /// those of containers labelled `shiplog.predictions=true`).
    pub containers: Vec<String>,
    /// Regexes on image references, like `containers`.
    pub images: Vec<String>,
    /// Which JSON keys feed which prediction key, and which are required.
    pub mapping: PredictionMapping,
    /// Built-in rules to run (`email`, `card`); none unless listed.
    pub builtin_redactions: Vec<Builtin>,
    /// What the built-in rules do with a match.
    pub builtin_action: RedactAction,
    /// HMAC key of the `hash` action. Prefer `hash_key_env`, which keeps it out of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    /// Name of the environment variable holding the HMAC key of the `hash` action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key_env: Option<String>,
    /// `[[predictions.redact]]` rules, run in order before the built-in ones.
    pub redact: Vec<PredictionRedactRule>,
}

impl Default for PredictionsConfig {
    fn default() -> Self {
        PredictionsConfig {
            containers: Vec::new(),
            images: Vec::new(),
            mapping: PredictionMapping::default(),
            builtin_redactions: Vec::new(),
            builtin_action: RedactAction::Mask,
            hash_key: None,
            hash_key_env: None,
            redact: Vec::new(),
        }
    }
}

impl fmt::Debug for PredictionsConfig {
    /// Everything but the hash key, which shows as set or not.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PredictionsConfig")
            .field("containers", &self.containers)
            .field("images", &self.images)
            .field("mapping", &self.mapping)
            .field("builtin_redactions", &self.builtin_redactions)
            .field("builtin_action", &self.builtin_action)
            .field("hash_key", &self.hash_key.as_ref().map(|_| "<set>"))
            .field("hash_key_env", &self.hash_key_env)
            .field("redact", &self.redact)
            .finish()
    }
}

/// The section as written, checked by `TryFrom` once it is whole (the hash key check needs
/// the rules and the key settings together).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct UncheckedConfig {
    containers: Vec<String>,
    images: Vec<String>,
    mapping: PredictionMapping,
    builtin_redactions: Vec<Builtin>,
    builtin_action: RedactAction,
    hash_key: Option<String>,
    hash_key_env: Option<String>,
    redact: Vec<PredictionRedactRule>,
}

impl Default for UncheckedConfig {
    fn default() -> Self {
        let d = PredictionsConfig::default();
        UncheckedConfig {
            containers: d.containers,
            images: d.images,
            mapping: d.mapping,
            builtin_redactions: d.builtin_redactions,
            builtin_action: d.builtin_action,
            hash_key: d.hash_key,
            hash_key_env: d.hash_key_env,
            redact: d.redact,
        }
    }
}

impl TryFrom<UncheckedConfig> for PredictionsConfig {
    type Error = PredictionConfigError;

    fn try_from(c: UncheckedConfig) -> Result<Self, Self::Error> {
        let config = PredictionsConfig {
            containers: c.containers,
            images: c.images,
            mapping: c.mapping,
            builtin_redactions: c.builtin_redactions,
            builtin_action: c.builtin_action,
            hash_key: c.hash_key,
            hash_key_env: c.hash_key_env,
            redact: c.redact,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Why a `[predictions]` section cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredictionConfigError {
    /// A container or image regex does not compile.
    #[error("invalid pattern in predictions.{setting}: '{pattern}': {reason}")]
    Pattern {
        /// `containers` or `images`.
        setting: &'static str,
        /// The pattern (shortened).
        pattern: String,
        /// Why it does not compile.
        reason: String,
    },
    /// A `[[predictions.redact]]` rule is unusable.
    #[error("invalid [[predictions.redact]] rule '{rule}': {reason}")]
    Rule {
        /// The rule's name.
        rule: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The mapping names no key for a required prediction key, or an empty one.
    #[error("invalid [predictions.mapping]: {0}")]
    Mapping(String),
    /// A rule hashes but there is no key to hash with.
    #[error(
        "{what} uses action = \"hash\" but [predictions] sets neither hash_key nor hash_key_env: set one (hash_key_env keeps the key out of the file) or use mask or drop"
    )]
    NoHashKey {
        /// Which rule (or the built-in rules) wanted the key.
        what: String,
    },
    /// Both key settings are given.
    #[error("[predictions] sets both hash_key and hash_key_env: keep one")]
    TwoHashKeys,
    /// A key setting is empty.
    #[error("[predictions] {0} is empty: give a secret key, or leave it out")]
    EmptyHashKey(&'static str),
    /// The environment variable named by `hash_key_env` is not set (or empty).
    #[error(
        "environment variable {var} (named by predictions.hash_key_env) is not set or empty: export it before starting shiplog"
    )]
    HashKeyEnv {
        /// The variable's name.
        var: String,
    },
}

impl PredictionsConfig {
    /// Checks every setting that can be checked without the environment.
    pub fn validate(&self) -> Result<(), PredictionConfigError> {
        for (setting, patterns) in [("containers", &self.containers), ("images", &self.images)] {
            for pattern in patterns {
                compile_pattern(pattern).map_err(|reason| PredictionConfigError::Pattern {
                    setting,
                    pattern: shorten(pattern),
                    reason,
                })?;
            }
        }
        self.mapping
            .validate()
            .map_err(PredictionConfigError::Mapping)?;
        for rule in &self.redact {
            rule.compile(Replacement::Mask)?;
        }
        match (&self.hash_key, &self.hash_key_env) {
            (Some(_), Some(_)) => return Err(PredictionConfigError::TwoHashKeys),
            (Some(key), None) if key.is_empty() => {
                return Err(PredictionConfigError::EmptyHashKey("hash_key"));
            }
            (None, Some(var)) if var.trim().is_empty() => {
                return Err(PredictionConfigError::EmptyHashKey("hash_key_env"));
            }
            (Some(_), None) | (None, Some(_)) => {}
            (None, None) => {
                if let Some(rule) = self.redact.iter().find(|r| r.action == RedactAction::Hash) {
                    return Err(PredictionConfigError::NoHashKey {
                        what: format!("[[predictions.redact]] rule '{}'", rule.name),
                    });
                }
                if self.builtin_action == RedactAction::Hash && !self.builtin_redactions.is_empty()
                {
                    return Err(PredictionConfigError::NoHashKey {
                        what: "builtin_action".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The rules, reading `hash_key_env` from the process environment.
    pub fn build(&self) -> Result<PredictionRules, PredictionConfigError> {
        self.build_with_env(|var| std::env::var(var).ok())
    }

    /// The rules, reading `hash_key_env` through `lookup` (tests pass their own).
    pub fn build_with_env(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<PredictionRules, PredictionConfigError> {
        self.validate()?;
        let key = match (&self.hash_key, &self.hash_key_env) {
            (Some(key), _) => Some(key.as_bytes().to_vec()),
            (None, Some(var)) => match lookup(var).filter(|k| !k.is_empty()) {
                Some(key) => Some(key.into_bytes()),
                None => return Err(PredictionConfigError::HashKeyEnv { var: var.clone() }),
            },
            (None, None) => None,
        };
        let replacement = |action: RedactAction| match action {
            RedactAction::Mask => Replacement::Mask,
            RedactAction::Drop => Replacement::Drop,
            // validate() made sure a key exists when a rule hashes.
            RedactAction::Hash => Replacement::Hash {
                key: key.clone().unwrap_or_default(),
            },
        };
        let mut redact = Vec::new();
        let mut unmapped = Vec::new();
        for rule in &self.redact {
            redact.push(rule.compile(replacement(rule.action))?);
            if let Some(path) = &rule.path {
                unmapped.extend(self.rerooted(rule, path, replacement(rule.action)));
            }
        }
        for builtin in &self.builtin_redactions {
            let rule = Redact::builtin(builtin.name(), replacement(self.builtin_action))
                .expect("every Builtin is a built-in rule");
            redact.push(rule);
        }
        Ok(PredictionRules {
            mapping: self.mapping.clone(),
            redact,
            unmapped,
        })
    }

    /// A path rule on `input.`/`output.` re-rooted at each `fields` key the input or output
    /// is read from, for records that stayed logs and so still hold them in `fields`.
    fn rerooted(
        &self,
        rule: &PredictionRedactRule,
        path: &str,
        replacement: Replacement,
    ) -> Vec<Redact> {
        let (aliases, rest) = if let Some(rest) = path.strip_prefix("input.") {
            (&self.mapping.input, rest)
        } else if let Some(rest) = path.strip_prefix("output.") {
            (&self.mapping.output, rest)
        } else {
            return Vec::new();
        };
        aliases
            .iter()
            .filter_map(|alias| {
                let path = format!("fields.{alias}.{rest}");
                Redact::path(&rule.name, &path, replacement.clone()).ok()
            })
            .collect()
    }
}

/// The rules a [`PredictionsConfig`] builds: the mapping and the redactions, compiled.
#[derive(Clone, Default)]
pub struct PredictionRules {
    /// How JSON keys become prediction keys.
    pub mapping: PredictionMapping,
    /// Redactions, in the order they run.
    pub redact: Vec<Redact>,
    /// Path rules re-rooted in `fields`, for records that stayed logs.
    unmapped: Vec<Redact>,
}

impl fmt::Debug for PredictionRules {
    /// The mapping and the rule names (a rule's hash key is not printed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.redact.iter().map(Redact::name).collect();
        f.debug_struct("PredictionRules")
            .field("mapping", &self.mapping)
            .field("redact", &names)
            .finish()
    }
}

impl PredictionRules {
    /// Reads `event` (whose `fields` hold a parsed JSON record) as a prediction, see
    /// [`PredictionMapping::apply`]; a malformed one stays a log with the reason.
    pub fn capture(&self, event: &mut Event) -> Result<(), MalformedPrediction> {
        self.mapping.apply(event)
    }

    /// Runs every redaction on `event` and lists the rules that fired in
    /// `fields._redacted`; returns whether any did. On a record that stayed a log, path
    /// rules on `input.`/`output.` also reach into the `fields` keys those come from.
    pub fn redact(&self, event: &mut Event) -> bool {
        if event.kind == Kind::Prediction || self.unmapped.is_empty() {
            return redact_all(&self.redact, event);
        }
        let mut rules = self.unmapped.clone();
        rules.extend(self.redact.iter().cloned());
        redact_all(&rules, event)
    }

    /// One JSON record sent straight to the API: mapped as in
    /// [`PredictionMapping::event_from_record`], then redacted. A malformed record comes back
    /// as the (redacted) log event that keeps it, with the reason.
    pub fn event_from_record(
        &self,
        record: Map<String, Value>,
        received: Timestamp,
    ) -> (Event, Result<(), MalformedPrediction>) {
        let (mut event, outcome) = self.mapping.event_from_record(record, received);
        self.redact(&mut event);
        (event, outcome)
    }

    /// Whether any redaction is configured.
    pub fn redacts(&self) -> bool {
        !self.redact.is_empty()
    }
}

/// Compiles a configured regex with the size caps.
fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!("longer than {MAX_PATTERN_BYTES} bytes"));
    }
    RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        // regex explains on several lines; one line reads better in a config error.
        .map_err(|e| {
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
}

/// The first 200 characters of a value, for messages.
fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests;
