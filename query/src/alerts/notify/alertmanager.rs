//! Alertmanager's v2 API: `POST <url>/api/v2/alerts` with a list of one alert.
//!
//! A firing alert is sent with `startsAt` and an `endsAt` four resend intervals ahead (as
//! Prometheus does), so Alertmanager keeps it while we re-send it and resolves it by
//! itself if we stop; a resolved alert is sent with `endsAt` set to when it resolved.

use std::collections::BTreeMap;

use serde::Serialize;
use shiplog_core::Timestamp;

use super::webhook::error_chain;
use super::{AlertmanagerConfig, Notification, check_url};

/// A checked Alertmanager target with its HTTP client.
#[derive(Debug, Clone)]
pub struct Alertmanager {
    /// As configured.
    pub config: AlertmanagerConfig,
    url: reqwest::Url,
    client: reqwest::Client,
}

/// One element of the v2 `postableAlerts` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Identity of the alert.
    pub labels: BTreeMap<String, String>,
    /// Texts.
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339.
    pub ends_at: String,
    /// Link back to the events.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

impl Alertmanager {
    /// Checks the URL.
    pub fn new(config: AlertmanagerConfig) -> Result<Self, String> {
        let mut url = check_url("[[alerting.alertmanager]]", &config.name, &config.url)?;
        // Alertmanager may sit under a path prefix (`--web.route-prefix`).
        let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let client = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Alertmanager {
            config,
            url,
            client,
        })
    }

    /// The body for one notification.
    pub fn alert(&self, n: &Notification) -> PostableAlert {
        let ends_at = match &n.ends_at {
            Some(end) => end.clone(),
            None => {
                let ahead = i64::try_from(self.config.resend_interval.0.as_nanos())
                    .unwrap_or(i64::MAX / 8)
                    .saturating_mul(4);
                Timestamp::now().offset(ahead).to_rfc3339()
            }
        };
        PostableAlert {
            labels: n.labels.clone(),
            annotations: n.annotations.clone(),
            starts_at: n.since.clone(),
            ends_at,
            generator_url: n.link.clone(),
        }
    }

    /// One attempt.
    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        let body = vec![self.alert(n)];
        let resp = self
            .client
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("alertmanager {}: {}", self.config.name, error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "alertmanager {}: {} answered {status}: {}",
            self.config.name,
            self.url,
            text.chars().take(200).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shiplog_core::units::HumanDuration;

    use super::*;

    fn am(url: &str) -> Result<Alertmanager, String> {
        Alertmanager::new(AlertmanagerConfig {
            name: "am".into(),
            url: url.into(),
            resend_interval: HumanDuration(Duration::from_secs(60)),
            timeout: HumanDuration(Duration::from_secs(1)),
        })
    }

    #[test]
    fn the_v2_path_follows_any_prefix_and_bad_urls_are_refused() {
        assert_eq!(
            am("http://127.0.0.1:9093").unwrap().url.as_str(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        assert_eq!(
            am("http://h:9093/am/").unwrap().url.as_str(),
            "http://h:9093/am/api/v2/alerts"
        );
        assert!(am("localhost:9093").unwrap_err().contains("http"));
        assert!(am("not a url").unwrap_err().contains("not a URL"));
    }
}
