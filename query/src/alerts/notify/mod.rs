//! Where notifications go: webhooks ([`webhook`]), Alertmanager ([`alertmanager`]) and
//! local programs ([`command`]), and the payload they all carry ([`Notification`]).
//!
//! Delivery (queueing, retries with backoff, idempotency keys) lives in
//! [`super::outbox`]; a notifier only makes one attempt and says whether it worked.

pub mod alertmanager;
pub mod command;
pub mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shiplog_core::units::HumanDuration;

/// One message about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Payload version, so receivers can tell shapes apart.
    pub version: String,
    /// Same on every retry of this message, new for the next one (a repeat or the
    /// resolution), so a receiver can drop repeats.
    pub idempotency_key: String,
    /// Stable id of rule + group.
    pub fingerprint: String,
    /// Rule name.
    pub rule: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// Severity label.
    pub severity: String,
    /// `group_by` key → value.
    pub group: BTreeMap<String, String>,
    /// Every label: `alertname`, `severity`, the group and the rule's labels.
    pub labels: BTreeMap<String, String>,
    /// The rule's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The measured value.
    pub value: f64,
    /// The threshold.
    pub threshold: f64,
    /// `>`, `>=`, `<` or `<=`.
    pub op: String,
    /// When the condition started to hold (RFC 3339).
    pub since: String,
    /// When it resolved (RFC 3339); `null` while firing.
    pub ends_at: Option<String>,
    /// The rule's query, to paste into a search.
    pub query: String,
    /// A search URL over the alert's events, built from `external_url`.
    pub link: String,
    /// Repeat number of a still-firing alert (0 for the first message).
    pub repeat: u32,
}

fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

/// `[[alerting.webhook]]`: JSON `POST`s signed with HMAC-SHA256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Name rules use in `notify`.
    pub name: String,
    /// Receiver URL (http or https).
    pub url: String,
    /// Shared secret of the `X-Shiplog-Signature: sha256=<hex>` header; unset: unsigned.
    #[serde(default)]
    pub secret: Option<String>,
    /// Longest wait for one attempt (default 10s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `[[alerting.alertmanager]]`: Alertmanager's v2 API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Name rules use in `notify`.
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub url: String,
    /// How often firing alerts are sent again (default 1m); Alertmanager resolves an
    /// alert it has not heard of for `endsAt`, which is set to four intervals ahead.
    #[serde(default = "default_resend")]
    pub resend_interval: HumanDuration,
    /// Longest wait for one attempt (default 10s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_resend() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// `[[alerting.command]]`: runs a program with the notification as JSON on stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// Name rules use in `notify`.
    pub name: String,
    /// Program path (not run through a shell).
    pub program: String,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Longest run; the program is killed past it and the attempt fails (default 10s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

/// A configured destination.
#[derive(Debug, Clone)]
pub enum Notifier {
    /// See [`webhook`].
    Webhook(webhook::Webhook),
    /// See [`alertmanager`].
    Alertmanager(alertmanager::Alertmanager),
    /// See [`command`].
    Command(CommandConfig),
}

impl Notifier {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Notifier::Webhook(w) => &w.config.name,
            Notifier::Alertmanager(a) => &a.config.name,
            Notifier::Command(c) => &c.name,
        }
    }

    /// How often a still-firing alert is sent again: the repeat interval, or for
    /// Alertmanager its resend interval when shorter.
    pub fn repeat_every(&self, repeat: Duration) -> Duration {
        match self {
            Notifier::Alertmanager(a) => a.config.resend_interval.0.min(repeat),
            _ => repeat,
        }
    }

    /// Makes one delivery attempt.
    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        match self {
            Notifier::Webhook(w) => w.send(n).await,
            Notifier::Alertmanager(a) => a.send(n).await,
            Notifier::Command(c) => command::run(c, n).await,
        }
    }
}

/// `[alerting]`: notifiers and engine settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertingSettings {
    /// Send a still-firing alert again this often (default 4h).
    pub repeat_interval: HumanDuration,
    /// How often every rule is evaluated (default 1s).
    pub eval_interval: HumanDuration,
    /// Base URL of this node as receivers should reach it, for links in notifications
    /// (default: the API address).
    pub external_url: Option<String>,
    /// Batches of fresh events queued for the engine; when full, ingest is not slowed:
    /// the batch is left out of the windows, counted in
    /// `shiplog_alerts_events_dropped_total`, and the windows are rebuilt from the index.
    pub queue_batches: usize,
    /// Groups one rule keeps; events of further groups are not counted (counted in
    /// `shiplog_alerts_groups_refused_total`).
    pub max_groups: usize,
    /// Longest wait between delivery retries (backoff doubles from 1s up to this).
    pub max_backoff: HumanDuration,
    /// Most stored events read to rebuild the windows after a restart or a reload.
    pub rebuild_max_events: usize,
    /// `[[alerting.webhook]]`
    pub webhook: Vec<WebhookConfig>,
    /// `[[alerting.alertmanager]]`
    pub alertmanager: Vec<AlertmanagerConfig>,
    /// `[[alerting.command]]`
    pub command: Vec<CommandConfig>,
}

impl Default for AlertingSettings {
    fn default() -> Self {
        AlertingSettings {
            repeat_interval: HumanDuration(Duration::from_secs(4 * 3600)),
            eval_interval: HumanDuration(Duration::from_secs(1)),
            external_url: None,
            queue_batches: 1024,
            max_groups: 10_000,
            max_backoff: HumanDuration(Duration::from_secs(30)),
            rebuild_max_events: 2_000_000,
            webhook: Vec::new(),
            alertmanager: Vec::new(),
            command: Vec::new(),
        }
    }
}

impl AlertingSettings {
    /// Every notifier's name.
    pub fn names(&self) -> Vec<String> {
        self.webhook
            .iter()
            .map(|w| w.name.clone())
            .chain(self.alertmanager.iter().map(|a| a.name.clone()))
            .chain(self.command.iter().map(|c| c.name.clone()))
            .collect()
    }

    /// Checks names, URLs and intervals and builds the notifiers.
    pub fn notifiers(&self) -> Result<Vec<Notifier>, String> {
        let mut out = Vec::new();
        for w in &self.webhook {
            out.push(Notifier::Webhook(webhook::Webhook::new(w.clone())?));
        }
        for a in &self.alertmanager {
            out.push(Notifier::Alertmanager(alertmanager::Alertmanager::new(
                a.clone(),
            )?));
        }
        for c in &self.command {
            if c.program.is_empty() {
                return Err(format!(
                    "[[alerting.command]] '{}': program is empty",
                    c.name
                ));
            }
            out.push(Notifier::Command(c.clone()));
        }
        let mut names: Vec<&str> = out.iter().map(Notifier::name).collect();
        for n in &names {
            if n.is_empty() {
                return Err("every notifier needs a name".into());
            }
        }
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "two notifiers are named '{}': names must be unique",
                w[0]
            ));
        }
        if self.eval_interval.0 < Duration::from_millis(100)
            || self.eval_interval.0 > Duration::from_secs(60)
        {
            return Err(format!(
                "[alerting] eval_interval {} is out of range: use 100ms to 60s",
                self.eval_interval
            ));
        }
        if self.queue_batches == 0 || self.max_groups == 0 {
            return Err("[alerting] queue_batches and max_groups must be at least 1".into());
        }
        if self.repeat_interval.0 < Duration::from_secs(1) {
            return Err(format!(
                "[alerting] repeat_interval {} is shorter than 1s",
                self.repeat_interval
            ));
        }
        Ok(out)
    }
}

/// Checks a receiver URL: http or https with a host.
pub(crate) fn check_url(what: &str, name: &str, url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url)
        .map_err(|e| format!("{what} '{name}': url '{url}' is not a URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!(
            "{what} '{name}': url '{url}' must be http:// or https:// with a host"
        ));
    }
    Ok(u)
}
