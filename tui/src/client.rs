//! The background thread that follows the server's live tail over SSE.
//!
//! It owns one blocking HTTP connection to `GET {url}/api/v1/tail?q=...`, decodes the stream
//! with [`SseDecoder`] and sends [`ClientMsg`]s to the UI over a bounded channel. When the
//! channel is full the thread blocks (backpressure): the server then notices this subscriber
//! is slow and reports a `gap`, which the UI shows, so nothing is dropped silently.
//!
//! A new filter arrives over a second channel; the thread drops the connection and opens a
//! new one with the new `q`. Reads time out every [`READ_TIMEOUT`] so a quiet stream still
//! notices filter changes and shutdown. Failed connections are retried with a backoff that
//! doubles from 0.5 s up to 10 s. Dropping the [`ClientHandle`] stops the thread.

use std::io::{self, Read};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use serde::Deserialize;
use shiplog_core::Event;

use crate::error::{Result, TuiError};
use crate::sse::{SseDecoder, SseMessage};

/// How many messages may wait for the UI before the client thread blocks.
pub const CHANNEL_CAPACITY: usize = 10_000;
/// Longest a single read (and the wait for response headers) blocks.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// A stream with no bytes at all (not even keep-alive comments) for this long is presumed dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// First retry delay after a failed connection.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// Largest error body read from the server.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// What the client thread tells the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// One event from the tail.
    Event(Box<Event>),
    /// The server dropped this many events because we fell behind.
    Gap(u64),
    /// The stream is open (sent again after every reconnect).
    Connected,
    /// The stream is closed, with why and when the next attempt is.
    Disconnected(String),
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of the query API, e.g. `http://127.0.0.1:7070`.
    pub url: String,
    /// Bearer token, if the server wants one.
    pub token: Option<String>,
    /// The filter to start with.
    pub filter: String,
}

/// The UI's side of the client thread; dropping it stops the thread.
#[derive(Debug)]
pub struct ClientHandle {
    /// Messages from the server, in order.
    pub rx: Receiver<ClientMsg>,
    filter_tx: Sender<String>,
}

impl ClientHandle {
    /// Asks the thread to reconnect with a new filter.
    pub fn set_filter(&self, filter: String) {
        // The thread only stops when this handle is dropped, so the send cannot fail while
        // we hold it; if it has died anyway the UI shows it as disconnected.
        let _ = self.filter_tx.send(filter);
    }
}

/// Checks the base URL and builds the tail URL for a filter.
pub fn tail_url(base: &str, filter: &str) -> Result<reqwest::Url> {
    let invalid = |reason: String| TuiError::InvalidUrl {
        url: base.to_string(),
        reason,
    };
    let mut url = reqwest::Url::parse(&format!("{}/api/v1/tail", base.trim_end_matches('/')))
        .map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme '{}' is not http or https",
            url.scheme()
        )));
    }
    if !filter.trim().is_empty() {
        url.query_pairs_mut().append_pair("q", filter);
    }
    Ok(url)
}

/// Starts the client thread.
pub fn spawn(config: ClientConfig) -> Result<ClientHandle> {
    tail_url(&config.url, &config.filter)?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("text/event-stream"),
    );
    if let Some(token) = &config.token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| TuiError::InvalidToken)?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let http = reqwest::blocking::Client::builder()
        .default_headers(headers)
        .timeout(READ_TIMEOUT)
        .connect_timeout(READ_TIMEOUT)
        .build()?;
    let (msg_tx, rx) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
    let (filter_tx, filter_rx) = crossbeam_channel::unbounded();
    let worker = Worker {
        http,
        base: config.url,
        filter: config.filter,
        filter_rx,
        msg_tx,
    };
    thread::Builder::new()
        .name("shiplog-tui-client".into())
        .spawn(move || worker.run())
        .map_err(TuiError::Thread)?;
    Ok(ClientHandle { rx, filter_tx })
}

/// Why one connection ended.
enum Ended {
    /// The UI went away: stop the thread.
    Shutdown,
    /// A new filter was set: reconnect at once.
    NewFilter,
    /// The connection failed or closed: retry after the backoff.
    Failed(String),
}

struct Worker {
    http: reqwest::blocking::Client,
    base: String,
    filter: String,
    filter_rx: Receiver<String>,
    msg_tx: Sender<ClientMsg>,
}

impl Worker {
    fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = Instant::now();
            let reason = match self.connect_once() {
                Ended::Shutdown => return,
                Ended::NewFilter => {
                    backoff = BACKOFF_MIN;
                    continue;
                }
                Ended::Failed(reason) => reason,
            };
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = BACKOFF_MIN;
            }
            tracing::debug!(error = %reason, retry_in = ?backoff, "tail stream ended");
            let text = format!("{reason}; retrying in {:.1}s", backoff.as_secs_f64());
            if self.msg_tx.send(ClientMsg::Disconnected(text)).is_err() {
                return;
            }
            // Wait out the backoff, but wake up at once for a new filter or shutdown.
            match self.filter_rx.recv_timeout(backoff) {
                Ok(filter) => {
                    self.filter = self.latest_filter(filter);
                    backoff = BACKOFF_MIN;
                }
                Err(RecvTimeoutError::Timeout) => backoff = (backoff * 2).min(BACKOFF_MAX),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// The newest of the filters waiting in the channel, starting from `first`.
    fn latest_filter(&self, first: String) -> String {
        let mut filter = first;
        while let Ok(newer) = self.filter_rx.try_recv() {
            filter = newer;
        }
        filter
    }

    /// Checks for a new filter or shutdown without blocking.
    fn poll_filter(&mut self) -> Option<Ended> {
        match self.filter_rx.try_recv() {
            Ok(filter) => {
                self.filter = self.latest_filter(filter);
                Some(Ended::NewFilter)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Ended::Shutdown),
        }
    }

    fn connect_once(&mut self) -> Ended {
        if let Some(ended) = self.poll_filter() {
            return ended;
        }
        let url = match tail_url(&self.base, &self.filter) {
            Ok(url) => url,
            Err(e) => return Ended::Failed(e.to_string()),
        };
        let response = match self.http.get(url).send() {
            Ok(r) => r,
            Err(e) => return Ended::Failed(describe_request_error(&e)),
        };
        let status = response.status();
        if !status.is_success() {
            return Ended::Failed(describe_error_response(response));
        }
        if let Some(content_type) = crate::api::not_an_event_stream(response.headers()) {
            return Ended::Failed(format!(
                "server answered with '{content_type}', not text/event-stream; is the url a shiplog query api"
            ));
        }
        if self.msg_tx.send(ClientMsg::Connected).is_err() {
            return Ended::Shutdown;
        }
        self.read_stream(response)
    }

    fn read_stream(&mut self, mut response: reqwest::blocking::Response) -> Ended {
        let mut decoder = SseDecoder::default();
        let mut buf = vec![0u8; 64 * 1024];
        let mut messages = Vec::new();
        let mut last_bytes = Instant::now();
        loop {
            if let Some(ended) = self.poll_filter() {
                return ended;
            }
            let n = match response.read(&mut buf) {
                Ok(0) => return Ended::Failed("server closed the stream".into()),
                Ok(n) => n,
                Err(e) if is_timeout(&e) => {
                    if last_bytes.elapsed() >= IDLE_TIMEOUT {
                        return Ended::Failed(format!(
                            "no data or keep-alive for {}s",
                            IDLE_TIMEOUT.as_secs()
                        ));
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Ended::Failed(format!("stream read failed: {e}")),
            };
            last_bytes = Instant::now();
            if let Err(e) = decoder.push(&buf[..n], &mut messages) {
                return Ended::Failed(e.to_string());
            }
            for message in messages.drain(..) {
                let Some(msg) = to_client_msg(&message) else {
                    continue;
                };
                if self.msg_tx.send(msg).is_err() {
                    return Ended::Shutdown;
                }
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
        return true;
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_timeout)
}

#[derive(Deserialize)]
struct GapData {
    missed: u64,
}

/// Turns one SSE message into what the UI needs; unknown types and bad JSON are skipped.
pub fn to_client_msg(message: &SseMessage) -> Option<ClientMsg> {
    match message.event.as_str() {
        "log" => match serde_json::from_str(&message.data).and_then(crate::api::lenient_event) {
            Ok(event) => Some(ClientMsg::Event(Box::new(event))),
            Err(e) => {
                tracing::debug!(error = %e, "skipping an undecodable tail event");
                None
            }
        },
        "gap" => match serde_json::from_str::<GapData>(&message.data) {
            Ok(gap) => Some(ClientMsg::Gap(gap.missed)),
            Err(e) => {
                tracing::debug!(error = %e, "skipping an undecodable gap notice");
                None
            }
        },
        _ => None,
    }
}

/// A short reason for a failed request, without the url.
pub(crate) fn describe_request_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {}s", READ_TIMEOUT.as_secs());
    }
    if e.is_connect() {
        return "cannot connect to the server".into();
    }
    // Drop the URL: it is in the header already and may be long.
    let e = e.to_string();
    e.split(" for url").next().unwrap_or(&e).to_string()
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: ApiError,
}

#[derive(Deserialize)]
struct ApiError {
    code: String,
    message: String,
    position: Option<usize>,
}

/// A readable line for a non-2xx answer, from the API's JSON error when there is one.
fn describe_error_response(response: reqwest::blocking::Response) -> String {
    let status = response.status();
    let mut body = Vec::new();
    let _ = response.take(MAX_ERROR_BODY).read_to_end(&mut body);
    describe_error_body(status, &body)
}

/// A readable line for a non-2xx answer body.
pub(crate) fn describe_error_body(status: reqwest::StatusCode, body: &[u8]) -> String {
    let mut text = format!("server answered {}", status.as_u16());
    match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(ApiErrorBody { error }) => {
            text.push_str(&format!(" {}: {}", error.code, error.message));
            if let Some(position) = error.position {
                text.push_str(&format!(" (at character {position})"));
            }
        }
        Err(_) => {
            if let Some(reason) = status.canonical_reason() {
                text.push_str(&format!(" {}", reason.to_lowercase()));
            }
        }
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        text.push_str("; check the token (SHIPLOG_TOKEN)");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn builds_tail_urls_and_refuses_bad_ones() {
        let url = tail_url("http://127.0.0.1:7070/", "service:web AND error").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:7070/api/v1/tail?q=service%3Aweb+AND+error"
        );
        assert_eq!(
            tail_url("http://h:1", " ").unwrap().as_str(),
            "http://h:1/api/v1/tail"
        );
        assert!(matches!(
            tail_url("127.0.0.1:7070", ""),
            Err(TuiError::InvalidUrl { .. })
        ));
        assert!(matches!(
            tail_url("not a url", ""),
            Err(TuiError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn maps_sse_messages_to_client_messages() {
        let log = SseMessage {
            event: "log".into(),
            data: r#"{"id":"00000000000000000000000000000001","ts":"2026-01-02T03:04:05.000000006Z","kind":"log","node":"n","container_id":"c","container_name":"web-1","image":"i","service":"web","stream":"stdout","level":null,"message":"hi","fields":{}}"#.into(),
        };
        let Some(ClientMsg::Event(event)) = to_client_msg(&log) else {
            panic!("not an event");
        };
        assert_eq!(event.message, "hi");
        assert_eq!(event.service, "web");
        let gap = SseMessage {
            event: "gap".into(),
            data: r#"{"missed": 17}"#.into(),
        };
        assert_eq!(to_client_msg(&gap), Some(ClientMsg::Gap(17)));
        for (event, data) in [("log", "{not json"), ("gap", "{}"), ("other", "{}")] {
            let m = SseMessage {
                event: event.into(),
                data: data.into(),
            };
            assert_eq!(to_client_msg(&m), None, "{event} {data}");
        }
    }

    #[test]
    fn describes_api_errors() {
        let body = br#"{"error":{"code":"bad_query","message":"unknown field 'x'","position":3}}"#;
        assert_eq!(
            describe_error_body(reqwest::StatusCode::BAD_REQUEST, body),
            "server answered 400 bad_query: unknown field 'x' (at character 3)"
        );
        assert_eq!(
            describe_error_body(reqwest::StatusCode::UNAUTHORIZED, b"nope"),
            "server answered 401 unauthorized; check the token (SHIPLOG_TOKEN)"
        );
    }

    /// Serves one SSE response per connection and reports each request line and headers.
    fn serve(listener: TcpListener, requests: Sender<String>, bodies: Vec<&'static str>) {
        thread::spawn(move || {
            for (stream, body) in listener.incoming().zip(bodies) {
                let requests = requests.clone();
                thread::spawn(move || {
                    let mut stream = stream.unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    requests.send(head).unwrap();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n{body}"
                    );
                    let _ = stream.flush();
                    // Keep the connection open: the client has to notice the filter change.
                    thread::sleep(Duration::from_secs(5));
                });
            }
        });
    }

    #[test]
    fn follows_the_stream_and_reconnects_with_a_new_filter() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (req_tx, req_rx) = crossbeam_channel::unbounded();
        serve(
            listener,
            req_tx,
            vec![
                ": hi\n\nevent: log\ndata: {\"message\":\"one\",\"service\":\"web\"}\n\nevent: gap\ndata: {\"missed\":4}\n\n",
                "event: log\ndata: {\"message\":\"two\"}\n\n",
            ],
        );
        let client = spawn(ClientConfig {
            url,
            token: Some("s3cret".into()),
            filter: "service:web".into(),
        })
        .unwrap();
        let wait = Duration::from_secs(10);
        let head = req_rx.recv_timeout(wait).unwrap();
        assert!(
            head.starts_with("GET /api/v1/tail?q=service%3Aweb HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.to_lowercase().contains("authorization: bearer s3cret"),
            "{head}"
        );
        assert_eq!(client.rx.recv_timeout(wait).unwrap(), ClientMsg::Connected);
        let Ok(ClientMsg::Event(e)) = client.rx.recv_timeout(wait) else {
            panic!("expected an event");
        };
        assert_eq!(e.message, "one");
        assert_eq!(client.rx.recv_timeout(wait).unwrap(), ClientMsg::Gap(4));

        client.set_filter("level:error".into());
        let head = req_rx.recv_timeout(wait).unwrap();
        assert!(
            head.starts_with("GET /api/v1/tail?q=level%3Aerror HTTP/1.1"),
            "{head}"
        );
        assert_eq!(client.rx.recv_timeout(wait).unwrap(), ClientMsg::Connected);
        let Ok(ClientMsg::Event(e)) = client.rx.recv_timeout(wait) else {
            panic!("expected an event");
        };
        assert_eq!(e.message, "two");
    }

    #[test]
    fn reports_a_refused_connection_and_keeps_trying() {
        // Bind then drop to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = spawn(ClientConfig {
            url: format!("http://127.0.0.1:{port}"),
            token: None,
            filter: String::new(),
        })
        .unwrap();
        let msg = client.rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let ClientMsg::Disconnected(text) = msg else {
            panic!("expected a disconnect, got {msg:?}");
        };
        assert!(text.contains("retrying in 0.5s"), "{text}");
    }
}
