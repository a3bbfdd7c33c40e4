//! [`HttpSink`]: ships batches to an indexer's `POST /api/v1/ingest`.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use shiplog_core::{Event, EventId};
use tracing::debug;

use super::{Ack, EncodedBatch, Sink, SinkError};
use crate::error::{Error, Result, chain};

/// How long one request may take, connect to answer, before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes of an error answer kept for the log.
const MAX_ERROR_BODY: usize = 4 * 1024;
/// The idempotency header the indexer reads.
const BATCH_ID_HEADER: &str = "x-shiplog-batch-id";

/// Sends batches as zstd NDJSON over HTTP(S) to an indexer.
#[derive(Debug, Clone)]
pub struct HttpSink {
    client: reqwest::Client,
    ingest_url: Url,
    authorization: Option<HeaderValue>,
}

impl HttpSink {
    /// A sink for the indexer at `base_url` (`http://host:7070`), sending `token` as a
    /// bearer token when given.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self> {
        let bad_url = |reason: String| Error::SinkUrl {
            url: base_url.to_string(),
            reason,
        };
        let trimmed = base_url.trim().trim_end_matches('/');
        let ingest_url = Url::parse(&format!("{trimmed}/api/v1/ingest"))
            .map_err(|e| bad_url(format!("{e}: use a url like http://127.0.0.1:7070")))?;
        if !matches!(ingest_url.scheme(), "http" | "https") {
            return Err(bad_url(format!(
                "scheme '{}' is not supported: use http or https",
                ingest_url.scheme()
            )));
        }
        let authorization = match token {
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        bad_url("the token contains characters not allowed in a header".into())
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(Error::HttpClient)?;
        Ok(HttpSink {
            client,
            ingest_url,
            authorization,
        })
    }

    /// The full URL batches are posted to.
    pub fn ingest_url(&self) -> &Url {
        &self.ingest_url
    }

    async fn deliver(&self, events: Vec<Event>) -> std::result::Result<Ack, SinkError> {
        self.post(EncodedBatch::encode_off_runtime(events).await)
            .await
    }

    async fn post(&self, batch: EncodedBatch) -> std::result::Result<Ack, SinkError> {
        let EncodedBatch {
            batch_id,
            events: count,
            body,
        } = batch;
        debug!(batch_id = %batch_id, events = count, bytes = body.len(), "posting batch");
        let posted = std::time::Instant::now();

        let mut request = self
            .client
            .post(self.ingest_url.clone())
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header(CONTENT_ENCODING, "zstd")
            .header(BATCH_ID_HEADER, batch_id.as_str())
            .body(body);
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value.clone());
        }
        let mut response = request.send().await.map_err(|e| {
            SinkError::Retryable(format!("post to {} failed: {}", self.ingest_url, chain(&e)))
        })?;

        let status = response.status();
        if status.is_success() {
            let ack = response.json::<Ack>().await.map_err(|e| {
                SinkError::Retryable(format!(
                    "answer from {} is not an ack: {}",
                    self.ingest_url,
                    chain(&e)
                ))
            });
            debug!(batch_id = %batch_id, ms = posted.elapsed().as_secs_f64() * 1e3, "batch answered");
            return ack;
        }
        let mut body = Vec::new();
        while body.len() < MAX_ERROR_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(MAX_ERROR_BODY);
        let message = format!(
            "{} answered {status}: {}",
            self.ingest_url,
            error_message(&body)
        );
        Err(classify(status, message))
    }
}

impl Sink for HttpSink {
    fn send(&self, events: Vec<Event>) -> BoxFuture<'_, std::result::Result<Ack, SinkError>> {
        self.deliver(events).boxed()
    }

    fn posts_encoded(&self) -> bool {
        true
    }

    fn send_encoded(
        &self,
        batch: EncodedBatch,
    ) -> BoxFuture<'_, std::result::Result<Ack, SinkError>> {
        self.post(batch).boxed()
    }
}

/// Sorts a failed answer: the batch itself is bad (dropped), or it may succeed later.
///
/// 400, 413 and 422 say the batch can never be accepted as it is, so retrying would stall
/// the pipeline forever. Everything else, including 401/403/404 (a wrong token or URL that
/// an operator will fix), is retried: holding data back beats throwing it away.
fn classify(status: StatusCode, message: String) -> SinkError {
    match status {
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNPROCESSABLE_ENTITY => SinkError::Rejected(message),
        _ => SinkError::Retryable(message),
    }
}

/// The human part of an error answer: `error.message` from our JSON error shape, or the
/// text itself.
fn error_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let error = &value["error"];
        if let Some(message) = error["message"].as_str().or_else(|| error.as_str()) {
            return message.to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no explanation given".to_string()
    } else {
        text.to_string()
    }
}

/// A batch id derived from the events it carries, so a retried batch keeps its id and the
/// indexer can recognise it.
pub(crate) fn batch_id(events: &[Event]) -> String {
    let mut bytes = Vec::with_capacity(events.len() * 28 + 8);
    bytes.extend_from_slice(&(events.len() as u64).to_le_bytes());
    for event in events {
        bytes.extend_from_slice(&event.id.0.to_le_bytes());
        bytes.extend_from_slice(&event.ts.as_nanos().to_le_bytes());
        bytes.extend_from_slice(&event.seq.to_le_bytes());
        if event.id.is_unset() {
            bytes.extend_from_slice(event.message.as_bytes());
        }
    }
    EventId::for_content(&[&bytes]).to_string()
}

#[cfg(test)]
mod tests {
    use shiplog_core::Timestamp;

    use super::*;

    #[test]
    fn builds_the_ingest_url_and_refuses_bad_ones() {
        let sink = HttpSink::new("http://127.0.0.1:7070/", Some("t".into())).unwrap();
        assert_eq!(
            sink.ingest_url().as_str(),
            "http://127.0.0.1:7070/api/v1/ingest"
        );
        let err = HttpSink::new("ftp://x", None).unwrap_err().to_string();
        assert!(err.contains("scheme 'ftp'"), "{err}");
        assert!(HttpSink::new("not a url", None).is_err());
    }

    #[test]
    fn sorts_statuses_into_retry_or_drop() {
        let kind = |s: u16| classify(StatusCode::from_u16(s).unwrap(), String::new());
        assert!(!kind(400).is_retryable());
        for s in [429, 500, 502, 503, 507, 401] {
            assert!(kind(s).is_retryable(), "{s}");
        }
    }

    #[test]
    fn reads_the_servers_explanation() {
        let body = br#"{"error":{"code":"bad_batch","message":"line 3: missing ts"}}"#;
        assert_eq!(error_message(body), "line 3: missing ts");
        assert_eq!(error_message(b"  overloaded \n"), "overloaded");
        assert_eq!(error_message(b""), "no explanation given");
    }

    #[test]
    fn batch_id_is_stable_and_content_dependent() {
        let mut a = Event::log(Timestamp(1), "a");
        a.id = EventId(7);
        let b = Event::log(Timestamp(2), "b");
        let first = batch_id(&[a.clone(), b.clone()]);
        assert_eq!(first, batch_id(&[a.clone(), b.clone()]));
        assert_eq!(first.len(), 32);
        assert_ne!(first, batch_id(&[a]));
    }

    /// A one-shot HTTP server on loopback that answers with `status` and `body`, and hands
    /// back the request head it saw.
    async fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 8192];
            // Read the head, then as many body bytes as Content-Length says.
            loop {
                let n = socket.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if seen.len() >= head_end + 4 + length || n == 0 {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            let text = String::from_utf8_lossy(&seen).to_string();
            text[..text.find("\r\n\r\n").unwrap_or(text.len())].to_string()
        });
        (format!("http://{addr}"), handle)
    }

    #[tokio::test]
    async fn posts_a_compressed_batch_and_reads_the_ack() {
        let (url, server) = serve_once("200 OK", r#"{"accepted":1,"duplicates":0}"#).await;
        let sink = HttpSink::new(&url, Some("secret".into())).unwrap();
        let ack = sink
            .send(vec![Event::log(Timestamp(1), "hello")])
            .await
            .unwrap();
        assert_eq!(
            ack,
            Ack {
                accepted: 1,
                duplicates: 0
            }
        );
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("post /api/v1/ingest "), "{head}");
        assert!(
            head.contains("content-type: application/x-ndjson"),
            "{head}"
        );
        assert!(head.contains("content-encoding: zstd"), "{head}");
        assert!(head.contains("authorization: bearer secret"), "{head}");
        assert!(head.contains("x-shiplog-batch-id: "), "{head}");
    }

    #[tokio::test]
    async fn a_400_is_rejected_with_the_servers_message_and_a_503_is_retryable() {
        let (url, _server) = serve_once(
            "400 Bad Request",
            r#"{"error":{"code":"bad_batch","message":"line 2: bad ts"}}"#,
        )
        .await;
        let sink = HttpSink::new(&url, None).unwrap();
        let err = sink
            .send(vec![Event::log(Timestamp(1), "x")])
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("line 2: bad ts"), "{err}");

        let (url, _server) = serve_once("503 Service Unavailable", "{}").await;
        let sink = HttpSink::new(&url, None).unwrap();
        let err = sink
            .send(vec![Event::log(Timestamp(1), "x")])
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_indexer_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let sink = HttpSink::new(&format!("http://{addr}"), None).unwrap();
        let err = sink
            .send(vec![Event::log(Timestamp(1), "x")])
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
