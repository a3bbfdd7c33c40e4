//! Predictions: the JSON lines of model containers read as prediction records, and
//! redacted before they leave the node.
//!
//! A container writes predictions when it is labelled `shiplog.predictions=true`, or when
//! its name or image matches `[predictions] containers` / `images` (a
//! `shiplog.predictions=false` label keeps it out even then). For such a container:
//!
//! - each line that is one JSON object is mapped by the configured
//!   [`PredictionMapping`](shiplog_core::prediction::PredictionMapping) right after the JSON
//!   lift ([`PredictionCapture::capture`]): it becomes a `prediction`, or, lacking a
//!   required key, stays a `log` with `fields._prediction_error` and is counted as
//!   malformed. Never dropped;
//! - a line that is not a JSON object (or too long to lift) stays a plain log, not a
//!   malformed prediction;
//! - every event of the container, plain lines too, goes through the `[predictions]`
//!   redactions last ([`PredictionCapture::redact`]), after the parse and redact rules.
//!
//! A JSON line without a `msg`/`message` key would otherwise keep the whole line as its
//! message, and with it every input value a path rule is meant to hide; such a record's
//! message becomes a summary (`prediction model=... request_id=...`) or the malformed
//! reason instead. Nothing is lost: every key is in the event.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use shiplog_core::prediction::summary;
use shiplog_core::prediction_config::{PREDICTIONS_LABEL, PredictionRules, PredictionsConfig};
use shiplog_core::{Event, Kind};

use crate::config::compile_pattern;
use crate::error::{Error, Result};
use crate::telemetry::{InternalEvent, PredictionRead};

/// Which containers write predictions, and the rules their records get.
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    rules: Arc<PredictionRules>,
    names: Vec<Regex>,
    images: Vec<Regex>,
}

impl Predictions {
    /// Compiles the `[predictions]` section; reads the hash key's environment variable.
    pub fn from_config(config: &PredictionsConfig) -> Result<Self> {
        let rules = config.build().map_err(Error::Predictions)?;
        let compile = |setting: &'static str, patterns: &[String]| {
            patterns
                .iter()
                .map(|p| compile_pattern(setting, p))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Predictions {
            rules: Arc::new(rules),
            names: compile("predictions.containers", &config.containers)?,
            images: compile("predictions.images", &config.images)?,
        })
    }

    /// The capture for the container `name` running `image` with `labels`, if its lines
    /// are predictions.
    pub fn for_container(
        &self,
        name: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<PredictionCapture> {
        let selected = match labels.get(PREDICTIONS_LABEL).map(|v| label_flag(v)) {
            Some(Some(flag)) => flag,
            // No label, or a value that is neither yes nor no: the config rules decide.
            _ => {
                self.names.iter().any(|r| r.is_match(name))
                    || self.images.iter().any(|r| r.is_match(image))
            }
        };
        selected.then(|| PredictionCapture {
            rules: Arc::clone(&self.rules),
        })
    }
}

/// `true`/`1`/`yes` or `false`/`0`/`no`, as the exclude label reads them.
fn label_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Prediction capture for one container.
#[derive(Debug, Clone)]
pub struct PredictionCapture {
    rules: Arc<PredictionRules>,
}

impl PredictionCapture {
    /// A capture with `rules` (for tests and other sources).
    pub fn new(rules: Arc<PredictionRules>) -> Self {
        PredictionCapture { rules }
    }

    /// Maps a lifted JSON line's event into a prediction, or leaves it a log with the
    /// reason, counting either. `has_message_key`: the line gave its own message (`msg` or
    /// `message`), so `event.message` is not the raw line.
    pub fn capture(&self, event: &mut Event, has_message_key: bool) {
        let outcome = self.rules.capture(event);
        if !has_message_key {
            event.message = match &outcome {
                Ok(()) => summary(event),
                Err(why) => format!("malformed prediction: {}", why.0),
            };
        }
        PredictionRead {
            malformed: outcome.as_ref().err().map(|why| why.0.as_str()),
            container: &event.container_name,
        }
        .emit();
    }

    /// Runs the `[predictions]` redactions on any event of the container.
    pub fn redact(&self, event: &mut Event) {
        if self.rules.redacts() && self.rules.redact(event) {
            crate::telemetry::PredictionRedacted {
                prediction: event.kind == Kind::Prediction,
            }
            .emit();
        }
    }
}

#[cfg(test)]
mod tests;
