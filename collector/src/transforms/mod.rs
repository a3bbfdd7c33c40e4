//! Transforms: what happens to events between the source and the batcher.
//!
//! Per container stream, in this order:
//!
//! 1. [`multiline`] joins continuation lines into one event (inside the Docker source,
//!    because it works on lines and needs the stream's timing);
//! 2. [`json_lift`] reads JSON lines into `fields`, message and level (when the event is
//!    built);
//!    In a prediction container, [`predictions`] then reads each JSON line as a prediction
//!    (or a malformed one, kept as a log);
//! 3. [`parse`] rules add named regex captures to `fields`;
//! 4. [`redact`] rules mask or hash sensitive matches, so nothing a parse rule copied out
//!    escapes them; in a prediction container the `[predictions]` redactions run last.
//!
//! [`Transforms`] is compiled once from the config; [`Transforms::for_container`] picks the
//! rules that apply to one container when its log task starts, so matching a container
//! costs nothing per line. Transforms run on each container's own log task: they are
//! linear-time regexes over capped input, cheap enough for the async side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use shiplog_core::Event;

use crate::config::{CollectorConfig, ContainerMatch, compile_pattern};
use crate::error::Result;

pub mod json_lift;
pub mod multiline;
pub mod parse;
pub mod predictions;
pub mod redact;

use multiline::{DEFAULT_FLUSH_TIMEOUT, MultilineRules};
use parse::Parse;
use predictions::{PredictionCapture, Predictions};
use redact::{Redact, Replacement};

/// Compiled container patterns of a rule.
#[derive(Debug, Clone, Default)]
struct ContainerPatterns {
    name: Option<Regex>,
    image: Option<Regex>,
}

impl ContainerPatterns {
    fn compile(setting: &'static str, containers: &ContainerMatch) -> Result<Self> {
        let compile = |p: &Option<String>| {
            p.as_deref()
                .map(|p| compile_pattern(setting, p))
                .transpose()
        };
        Ok(ContainerPatterns {
            name: compile(&containers.name)?,
            image: compile(&containers.image)?,
        })
    }

    fn matches(&self, name: &str, image: &str) -> bool {
        self.name.as_ref().is_none_or(|r| r.is_match(name))
            && self.image.as_ref().is_none_or(|r| r.is_match(image))
    }
}

/// Every configured transform, compiled.
#[derive(Debug, Clone)]
pub struct Transforms {
    parse: Vec<(ContainerPatterns, Parse)>,
    redact: Vec<(ContainerPatterns, Redact)>,
    multiline: Arc<MultilineRules>,
    multiline_timeout: Duration,
    max_line: usize,
    predictions: Predictions,
}

impl Default for Transforms {
    /// No parse or redact rules; multiline on with the known forms; labelled prediction
    /// containers read with the default mapping, without redaction.
    fn default() -> Self {
        Transforms {
            parse: Vec::new(),
            redact: Vec::new(),
            multiline: Arc::new(MultilineRules::Known),
            multiline_timeout: DEFAULT_FLUSH_TIMEOUT,
            max_line: crate::sources::docker::line::MAX_LINE_BYTES,
            predictions: Predictions::default(),
        }
    }
}

impl Transforms {
    /// Compiles the transforms `config` describes.
    pub fn from_config(config: &CollectorConfig) -> Result<Self> {
        let mut parse = Vec::new();
        for rule in &config.parse_rules {
            parse.push((
                ContainerPatterns::compile("parse_rules", &rule.containers)?,
                Parse::new(&rule.name, compile_pattern("parse_rules", &rule.pattern)?),
            ));
        }
        let mut redact = Vec::new();
        for rule in &config.redact_rules {
            let replacement = match &rule.hash_key {
                Some(key) => Replacement::Hash {
                    key: key.as_bytes().to_vec(),
                },
                None => Replacement::Mask,
            };
            redact.push((
                ContainerPatterns::compile("redact_rules", &rule.containers)?,
                Redact::new(
                    &rule.name,
                    compile_pattern("redact_rules", &rule.pattern)?,
                    replacement,
                ),
            ));
        }
        let multiline = match (&config.multiline, &config.multiline_start_pattern) {
            (false, _) => MultilineRules::Off,
            (true, None) => MultilineRules::Known,
            (true, Some(pattern)) => {
                MultilineRules::StartPattern(compile_pattern("multiline_start_pattern", pattern)?)
            }
        };
        Ok(Transforms {
            parse,
            redact,
            multiline: Arc::new(multiline),
            multiline_timeout: config.multiline_flush_timeout,
            max_line: config.max_line_bytes,
            predictions: Predictions::from_config(&config.predictions)?,
        })
    }

    /// How lines are joined.
    pub fn multiline(&self) -> Arc<MultilineRules> {
        Arc::clone(&self.multiline)
    }

    /// How long a pending multi-line event waits for a continuation.
    pub fn multiline_timeout(&self) -> Duration {
        self.multiline_timeout
    }

    /// Longest line (and joined multi-line event) kept, in bytes (`max_line_bytes`).
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The rules that apply to the container `name` running `image` with `labels`.
    pub fn for_container(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> ContainerTransforms {
        ContainerTransforms {
            predictions: self.predictions.for_container(name, image, labels),
            parse: self
                .parse
                .iter()
                .filter(|(m, _)| m.matches(name, image))
                .map(|(_, rule)| rule.clone())
                .collect(),
            redact: self
                .redact
                .iter()
                .filter(|(m, _)| m.matches(name, image))
                .map(|(_, rule)| rule.clone())
                .collect(),
        }
    }
}

/// The parse, redact and prediction rules of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerTransforms {
    parse: Vec<Parse>,
    redact: Vec<Redact>,
    predictions: Option<PredictionCapture>,
}

impl ContainerTransforms {
    /// Runs the parse rules, then the redact rules, then (in a prediction container) the
    /// `[predictions]` redactions on `event`. The prediction mapping itself runs earlier,
    /// where the JSON lift is known (see [`ContainerTransforms::predictions`]).
    pub fn apply(&self, event: &mut Event) {
        for rule in &self.parse {
            rule.apply(event);
        }
        if !self.redact.is_empty() {
            redact::redact_all(&self.redact, event);
        }
        if let Some(capture) = &self.predictions {
            capture.redact(event);
        }
    }

    /// The prediction capture, when the container writes predictions.
    pub fn predictions(&self) -> Option<&PredictionCapture> {
        self.predictions.as_ref()
    }

    /// Whether no rule applies.
    pub fn is_empty(&self) -> bool {
        self.parse.is_empty() && self.redact.is_empty() && self.predictions.is_none()
    }
}

#[cfg(test)]
mod tests {
    use shiplog_core::Timestamp;

    use super::*;
    use crate::config::{ParseRule, RedactRule};

    #[test]
    fn rules_apply_to_matching_containers_and_redaction_runs_last() {
        let config = CollectorConfig {
            parse_rules: vec![ParseRule {
                name: "user".into(),
                pattern: r"user=(?P<user>\S+)".into(),
                containers: ContainerMatch {
                    name: Some("^web".into()),
                    image: None,
                },
            }],
            redact_rules: vec![RedactRule {
                name: "email".into(),
                pattern: r"[\w.+-]+@[\w-]+\.[\w.]+".into(),
                hash_key: None,
                containers: ContainerMatch::default(),
            }],
            ..CollectorConfig::default()
        };
        let transforms = Transforms::from_config(&config).unwrap();
        let none = BTreeMap::new();
        let web = transforms.for_container("web-1", "shop/web:1", &none);
        let db = transforms.for_container("db-1", "postgres:16", &none);
        assert!(!web.is_empty() && !db.is_empty());

        let mut event = Event::log(Timestamp(0), "login user=ada@example.com");
        web.apply(&mut event);
        assert_eq!(event.message, "login user=****");
        assert_eq!(event.fields["user"], "****", "captures are redacted too");
        assert_eq!(event.fields["_redacted"], serde_json::json!(["email"]));

        let mut event = Event::log(Timestamp(0), "login user=bob");
        db.apply(&mut event);
        assert!(event.fields.is_empty(), "parse rule is for web only");
    }
}
