//! Generic webhook: the [`Notification`] as a JSON `POST`, signed with HMAC-SHA256 over the
//! exact body bytes.
//!
//! Headers: `X-Shiplog-Signature: sha256=<hex>` (when a secret is set),
//! `Idempotency-Key` and `X-Shiplog-Idempotency-Key` (the same value on every retry).
//! Any 2xx answer is a delivery; anything else, a timeout or a refused connection is a
//! failed attempt that the outbox retries.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Notification, WebhookConfig, check_url};

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Shiplog-Signature";

/// A checked webhook with its HTTP client.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// As configured.
    pub config: WebhookConfig,
    url: reqwest::Url,
    client: reqwest::Client,
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    let out = mac.finalize().into_bytes();
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Webhook {
    /// Checks the URL and headers.
    pub fn new(config: WebhookConfig) -> Result<Self, String> {
        let url = check_url("[[alerting.webhook]]", &config.name, &config.url)?;
        for (k, v) in &config.headers {
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                format!(
                    "[[alerting.webhook]] '{}': '{k}' is not a header name",
                    config.name
                )
            })?;
            reqwest::header::HeaderValue::from_str(v).map_err(|_| {
                format!(
                    "[[alerting.webhook]] '{}': header '{k}' has a bad value",
                    config.name
                )
            })?;
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Webhook {
            config,
            url,
            client,
        })
    }

    /// One attempt.
    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &n.idempotency_key)
            .header("X-Shiplog-Idempotency-Key", &n.idempotency_key);
        if let Some(secret) = &self.config.secret {
            req = req.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        for (k, v) in &self.config.headers {
            req = req.header(k, v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| format!("webhook {}: {}", self.config.name, error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "webhook {}: {} answered {status}: {}",
            self.config.name,
            self.url,
            text.chars().take(200).collect::<String>()
        ))
    }
}

/// An error with its sources, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_rfc_4231() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
