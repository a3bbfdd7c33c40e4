//! Request/answer calls to the query API, made on background threads.
//!
//! The UI sends a [`Request`] and carries on; a worker makes the blocking HTTP call and sends
//! back a [`Reply`] holding the same request, so the view that asked can tell a stale answer
//! from a fresh one. Two workers share the queue, so a slow search does not hold up the
//! service list. A route the server does not have (404 without an API error body, or 405)
//! is reported as [`FetchError::Unavailable`] so a view can say "not available on this
//! server" instead of failing.

use std::io::Read;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{
    AlertList, Histogram, MetricsBody, PredictionSummary, SearchPage, ServiceDetail, ServiceList,
    SilenceCreated, SilenceRequest,
};
use crate::error::{Result, TuiError};

/// Longest any one call may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read, so a confused server cannot fill our memory.
const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Worker threads.
const WORKERS: usize = 2;
/// Requests that may wait; views ask at most once per refresh, so this is never reached
/// in practice, and a full queue drops the request (the view asks again on its next tick).
const QUEUE: usize = 256;

/// A search window and query, shared by searches and histograms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Query text.
    pub q: String,
    /// Start: `15m` or RFC 3339.
    pub since: String,
    /// End: `now` or RFC 3339.
    pub until: String,
}

/// What a view asks the server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A page of search hits; `generation` tells answers to old queries apart.
    Search {
        /// Which run of the query this belongs to.
        generation: u64,
        /// Query and time window.
        window: Window,
        /// Page cursor.
        cursor: Option<String>,
        /// Page size.
        limit: usize,
    },
    /// Hits over time for the same query.
    Histogram {
        /// Which run of the query this belongs to.
        generation: u64,
        /// Query and time window.
        window: Window,
    },
    /// The service catalog.
    Services,
    /// One service with its history.
    ServiceDetail {
        /// Service name.
        name: String,
    },
    /// CPU and memory series of every container.
    Metrics {
        /// Window start, e.g. `1h`.
        since: String,
    },
    /// Firing and pending alerts.
    Alerts,
    /// Creates a silence.
    Silence(Box<SilenceRequest>),
    /// Per-model numbers.
    PredictionSummary {
        /// Window start, e.g. `1h`.
        since: String,
        /// Buckets of each model's series.
        buckets: usize,
    },
    /// Recent predictions of one model version.
    Predictions {
        /// Model name.
        model: String,
        /// Version.
        version: String,
        /// Most hits.
        limit: usize,
    },
    /// The full record of one request id.
    PredictionRecord {
        /// Request id.
        request_id: String,
    },
}

/// What came back.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Search hits.
    Search(SearchPage),
    /// Hits over time.
    Histogram(Histogram),
    /// The catalog.
    Services(ServiceList),
    /// One service.
    ServiceDetail(ServiceDetail),
    /// CPU series, then memory series, then memory limits.
    Metrics {
        /// `cpu_percent`.
        cpu: MetricsBody,
        /// `mem_bytes`.
        mem: MetricsBody,
        /// `mem_limit_bytes`.
        limit: MetricsBody,
    },
    /// Alerts.
    Alerts(AlertList),
    /// The created silence.
    Silenced(SilenceCreated),
    /// Per-model numbers.
    PredictionSummary(PredictionSummary),
    /// Prediction hits.
    Predictions(SearchPage),
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The server does not serve this route.
    #[error("{path} is not available on this server")]
    Unavailable {
        /// The route.
        path: String,
    },
    /// The server could not be reached (the UI keeps its data and retries with backoff).
    #[error("{0}")]
    Connection(String),
    /// The server answered with an error.
    #[error("{0}")]
    Api(String),
    /// The answer was not what we expected.
    #[error("cannot read the answer of {path}: {reason}")]
    Decode {
        /// The route.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

impl FetchError {
    /// Whether the server was unreachable (as opposed to answering with an error).
    pub fn is_connection(&self) -> bool {
        matches!(self, FetchError::Connection(_))
    }
}

/// An answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The request, as sent.
    pub request: Request,
    /// The answer.
    pub result: Result<Payload, FetchError>,
}

/// The UI's side of the workers; dropping it stops them.
#[derive(Debug)]
pub struct FetchHandle {
    /// Requests to the workers.
    pub tx: Sender<Request>,
    /// Answers, in the order they complete.
    pub rx: Receiver<Reply>,
}

/// Starts the workers.
pub fn spawn(url: &str, token: Option<&str>) -> Result<FetchHandle> {
    let base = crate::client::tail_url(url, "")?
        .as_str()
        .trim_end_matches("/api/v1/tail")
        .to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| TuiError::InvalidToken)?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let http = reqwest::blocking::Client::builder()
        .default_headers(headers)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .build()?;
    let (tx, req_rx) = crossbeam_channel::bounded::<Request>(QUEUE);
    let (reply_tx, rx) = crossbeam_channel::bounded::<Reply>(QUEUE);
    for n in 0..WORKERS {
        let worker = Worker {
            http: http.clone(),
            base: base.clone(),
        };
        let req_rx = req_rx.clone();
        let reply_tx = reply_tx.clone();
        thread::Builder::new()
            .name(format!("shiplog-tui-fetch-{n}"))
            .spawn(move || {
                for request in req_rx {
                    let result = worker.call(&request);
                    if reply_tx.send(Reply { request, result }).is_err() {
                        return;
                    }
                }
            })
            .map_err(TuiError::Thread)?;
    }
    Ok(FetchHandle { tx, rx })
}

struct Worker {
    http: reqwest::blocking::Client,
    base: String,
}

impl Worker {
    fn call(&self, request: &Request) -> Result<Payload, FetchError> {
        match request {
            Request::Search {
                window,
                cursor,
                limit,
                ..
            } => {
                let mut params = window_params(window);
                params.push(("limit", limit.to_string()));
                if let Some(c) = cursor {
                    params.push(("cursor", c.clone()));
                }
                self.get("/api/v1/search", &params).map(Payload::Search)
            }
            Request::Histogram { window, .. } => {
                let body = serde_json::json!({
                    "q": window.q, "since": window.since, "until": window.until,
                    "aggs": {"volume": {"date_histogram": {}}},
                });
                let v: Value = self.post("/api/v1/aggregate", &body)?;
                let hist = v
                    .pointer("/aggs/volume")
                    .cloned()
                    .ok_or_else(|| decode_error("/api/v1/aggregate", "no aggs.volume"))?;
                serde_json::from_value(hist)
                    .map(Payload::Histogram)
                    .map_err(|e| decode_error("/api/v1/aggregate", e))
            }
            Request::Services => self.get("/api/v1/services", &[]).map(Payload::Services),
            Request::ServiceDetail { name } => {
                let path = format!("/api/v1/services/{}", path_segment(name));
                self.get(&path, &[]).map(Payload::ServiceDetail)
            }
            Request::Metrics { since } => {
                let series = |name: &str, since: &str| {
                    self.get::<MetricsBody>(
                        "/api/v1/metrics",
                        &[("name", name.to_string()), ("since", since.to_string())],
                    )
                };
                Ok(Payload::Metrics {
                    cpu: series("cpu_percent", since)?,
                    mem: series("mem_bytes", since)?,
                    limit: series("mem_limit_bytes", "10m")?,
                })
            }
            Request::Alerts => self.get("/api/v1/alerts", &[]).map(Payload::Alerts),
            Request::Silence(body) => self
                .post("/api/v1/silences", body.as_ref())
                .map(Payload::Silenced),
            Request::PredictionSummary { since, buckets } => self
                .get(
                    "/api/v1/predictions/summary",
                    &[
                        ("since", since.to_string()),
                        ("buckets", buckets.to_string()),
                    ],
                )
                .map(Payload::PredictionSummary),
            Request::Predictions {
                model,
                version,
                limit,
            } => {
                let mut params = vec![("limit", limit.to_string())];
                if !model.is_empty() {
                    params.push(("model", model.clone()));
                }
                if !version.is_empty() {
                    params.push(("version", version.clone()));
                }
                self.get("/api/v1/predictions", &params)
                    .map(Payload::Predictions)
            }
            Request::PredictionRecord { request_id } => self
                .get(
                    "/api/v1/predictions",
                    &[
                        ("request_id", request_id.clone()),
                        ("since", "30d".to_string()),
                        ("limit", "1".to_string()),
                    ],
                )
                .map(Payload::Predictions),
        }
    }

    fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<T, FetchError> {
        let request = self.http.get(format!("{}{path}", self.base)).query(params);
        self.send(path, request)
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, FetchError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(path, request)
    }

    fn send<T: DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::blocking::RequestBuilder,
    ) -> Result<T, FetchError> {
        let response = request
            .send()
            .map_err(|e| FetchError::Connection(crate::client::describe_request_error(&e)))?;
        let status = response.status();
        let mut body = Vec::new();
        response
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .map_err(|e| FetchError::Connection(format!("reading the answer failed: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| decode_error(path, e));
        }
        // The router's fallback answers unknown routes with the code `not_found`; a 404 about
        // a thing (an unknown service) carries a code of its own.
        let code = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            v.pointer("/error/code")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let no_route = matches!(code.as_deref(), None | Some("not_found"));
        if (status == reqwest::StatusCode::NOT_FOUND && no_route)
            || status == reqwest::StatusCode::METHOD_NOT_ALLOWED
        {
            return Err(FetchError::Unavailable {
                path: path.split('?').next().unwrap_or(path).to_string(),
            });
        }
        Err(FetchError::Api(crate::client::describe_error_body(
            status, &body,
        )))
    }
}

fn decode_error(path: &str, reason: impl std::fmt::Display) -> FetchError {
    FetchError::Decode {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn window_params(w: &Window) -> Vec<(&'static str, String)> {
    let mut params = vec![("since", w.since.clone()), ("until", w.until.clone())];
    if !w.q.trim().is_empty() {
        params.push(("q", w.q.clone()));
    }
    params
}

/// Percent-encodes a path segment (service names may hold `/` or spaces).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Answers each connection with the next canned response and reports the request line.
    fn serve(responses: Vec<(u16, &'static str)>) -> (String, Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for (stream, (status, body)) in listener.incoming().zip(responses) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                }
                let mut body_in = vec![0u8; length];
                reader.read_exact(&mut body_in).unwrap();
                tx.send(format!(
                    "{}{}",
                    first.trim_end(),
                    String::from_utf8_lossy(&body_in)
                ))
                .unwrap();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, rx)
    }

    #[test]
    fn missing_routes_are_unavailable_and_api_errors_are_described() {
        let (url, requests) = serve(vec![
            (
                404,
                r#"{"error":{"code":"not_found","message":"no route for /api/v1/alerts"}}"#,
            ),
            (
                404,
                r#"{"error":{"code":"unknown_service","message":"no service named 'x'"}}"#,
            ),
            (200, r#"{"id":"s-1","extra":1}"#),
        ]);
        let fetch = spawn(&url, Some("t")).unwrap();
        let wait = Duration::from_secs(10);
        fetch.tx.send(Request::Alerts).unwrap();
        let reply = fetch.rx.recv_timeout(wait).unwrap();
        assert_eq!(
            reply.result,
            Err(FetchError::Unavailable {
                path: "/api/v1/alerts".into()
            })
        );
        assert_eq!(
            reply.result.unwrap_err().to_string(),
            "/api/v1/alerts is not available on this server"
        );
        assert!(
            requests
                .recv_timeout(wait)
                .unwrap()
                .starts_with("GET /api/v1/alerts ")
        );
        fetch
            .tx
            .send(Request::ServiceDetail {
                name: "a b/c".into(),
            })
            .unwrap();
        let reply = fetch.rx.recv_timeout(wait).unwrap();
        let Err(FetchError::Api(text)) = reply.result else {
            panic!("{reply:?}");
        };
        assert!(text.contains("unknown_service"), "{text}");
        assert!(
            requests
                .recv_timeout(wait)
                .unwrap()
                .starts_with("GET /api/v1/services/a%20b%2Fc ")
        );
        let silence = SilenceRequest {
            matchers: vec![crate::api::Matcher {
                name: "service".into(),
                value: "api".into(),
                is_regex: false,
            }],
            ends_at: "2026-11-22T08:00:00Z".into(),
            comment: "deploy".into(),
            created_by: "tui".into(),
        };
        fetch.tx.send(Request::Silence(Box::new(silence))).unwrap();
        let reply = fetch.rx.recv_timeout(wait).unwrap();
        assert_eq!(
            reply.result,
            Ok(Payload::Silenced(SilenceCreated { id: "s-1".into() }))
        );
        let sent = requests.recv_timeout(wait).unwrap();
        assert!(sent.starts_with("POST /api/v1/silences "), "{sent}");
        assert!(
            sent.contains(r#""matchers":[{"name":"service","value":"api","is_regex":false}]"#),
            "{sent}"
        );
        assert!(sent.contains(r#""created_by":"tui""#), "{sent}");
    }

    #[test]
    fn a_refused_connection_is_a_connection_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fetch = spawn(&format!("http://127.0.0.1:{port}"), None).unwrap();
        fetch.tx.send(Request::Services).unwrap();
        let reply = fetch.rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(reply.result.unwrap_err().is_connection());
    }
}
