//! A small blocking HTTP client for the CLI commands, with the API's error shape decoded.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

use crate::cli::RemoteArgs;

/// An error body from the API.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// The `code` field.
    pub code: String,
    /// The `message` field.
    pub message: String,
    /// Query position, when the server gave one.
    pub position: Option<usize>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "server answered {} ({}): {}",
            self.status, self.code, self.message
        )
    }
}

impl std::error::Error for ApiFailure {}

impl ApiFailure {
    /// Reads the API's `{"error": {...}}` body; a body of another shape (a proxy's page)
    /// keeps the status alone.
    pub fn from_body(status: u16, body: &Value) -> Self {
        let err = &body["error"];
        ApiFailure {
            status,
            code: err["code"].as_str().unwrap_or("unknown").to_string(),
            message: err["message"]
                .as_str()
                .unwrap_or("no error message in the response")
                .to_string(),
            position: err["position"]
                .as_u64()
                .and_then(|p| usize::try_from(p).ok()),
        }
    }
}

/// Builds a client; `timeout` of None means no overall timeout (for streams).
pub fn client(remote: &RemoteArgs, timeout: Option<Duration>) -> anyhow::Result<Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &remote.token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("SHIPLOG_TOKEN contains characters that cannot be sent in a header")?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut b = Client::builder()
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(5));
    b = match timeout {
        Some(t) => b.timeout(t),
        None => b.timeout(None),
    };
    Ok(b.build()?)
}

/// The URL of an API path under the node's base URL.
pub fn url(remote: &RemoteArgs, path: &str) -> anyhow::Result<reqwest::Url> {
    let base = remote.url.trim_end_matches('/');
    let u = reqwest::Url::parse(&format!("{base}{path}"))
        .with_context(|| format!("invalid --url / SHIPLOG_URL '{}'", remote.url))?;
    if !matches!(u.scheme(), "http" | "https") {
        bail!(
            "invalid --url / SHIPLOG_URL '{}': use http:// or https://",
            remote.url
        );
    }
    Ok(u)
}

/// Sends a request, turning connection failures into advice and error bodies into [`ApiFailure`].
pub fn send(
    req: reqwest::blocking::RequestBuilder,
    remote: &RemoteArgs,
) -> anyhow::Result<Response> {
    let resp = req.send().map_err(|e| {
        if e.is_connect() {
            anyhow::anyhow!(
                "cannot reach shiplog at {}: is `shiplog up` running? (set --url or SHIPLOG_URL)",
                remote.url
            )
        } else {
            anyhow::Error::new(e).context(format!("request to {} failed", remote.url))
        }
    })?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let body: Value = resp.json().unwrap_or(Value::Null);
    Err(ApiFailure::from_body(status, &body).into())
}

/// Prints a query error with a caret under the position, when there is one.
pub fn explain_query_error(err: &anyhow::Error, query: &str) {
    if let Some(f) = err.downcast_ref::<ApiFailure>()
        && let Some(pos) = f.position
    {
        eprintln!("  {query}");
        eprintln!("  {}^", " ".repeat(pos));
    }
}
