//! `shiplog tail`: new events as they are stored, until interrupted.
//!
//! The events come from `GET /api/v1/tail` as Server-Sent Events. When the stream drops or
//! the node cannot be reached (a restart, a crash, a network cut), the command says so once
//! on stderr and reconnects with the TUI's backoff: 0.5 s doubling to 10 s, back to 0.5 s
//! after every successful connect. Once back it prints a gap marker on stdout (a line in
//! plain mode, a `{"gap":{...}}` object with `--json`): the window whose events were not
//! tailed and the `shiplog search` that lists them. Answers that retrying cannot change end
//! the command with the node's message: 401 and 403 (the token), 400 (the query), any other
//! 4xx.
//!
//! Ctrl-C keeps its default action and ends the process at once: every line is written
//! whole and flushed before the next read, so nothing is left half-printed.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use shiplog_core::Timestamp;
use shiplog_tui::client::{BACKOFF_MAX, BACKOFF_MIN, IDLE_TIMEOUT};
use shiplog_tui::sse::{SseDecoder, SseMessage};

use crate::cli::TailArgs;
use crate::client::{self, ApiFailure};

/// Largest error body read from the node.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Why a connection attempt or an open stream ended.
enum Ended {
    /// The node could not be reached or the stream dropped: retry after the backoff.
    Lost(String),
    /// An answer that retrying cannot change.
    Refused(ApiFailure),
    /// The URL answers, but not with an event stream.
    NotAStream(String),
}

/// Follows the tail stream and prints each event, reconnecting when the node goes away.
pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    // A connection that is quiet for longer than this (the node sends keep-alives every
    // 15 s) is presumed dead and reopened.
    let http = client::client(&args.remote, Some(IDLE_TIMEOUT))?;
    let mut url = client::url(&args.remote, "/api/v1/tail")?;
    if !args.query.is_empty() {
        url.query_pairs_mut().append_pair("q", &args.query);
    }
    let mut backoff = BACKOFF_MIN;
    let mut ever_connected = false;
    // Set while disconnected after a stream: where the untailed window starts.
    let mut gap_from: Option<Timestamp> = None;
    // When the current outage started; set when its notice is printed, so once per outage.
    let mut outage: Option<Instant> = None;
    loop {
        let reason = match open(&http, &url) {
            Ok(resp) => {
                backoff = BACKOFF_MIN;
                let now = Timestamp::now();
                if let Some(since) = outage.take()
                    && ever_connected
                {
                    eprintln!(
                        "reconnected to {} after {}s",
                        args.remote.url,
                        since.elapsed().as_secs()
                    );
                }
                if let Some(from) = gap_from.take() {
                    print_reconnect_gap(&args, from, now)?;
                }
                if !ever_connected {
                    eprintln!("following {} (Ctrl-C to stop)", args.remote.url);
                    ever_connected = true;
                }
                let mut last_event = None;
                let reason = follow(resp, args.json, &mut last_event)?;
                gap_from = Some(last_event.unwrap_or_else(Timestamp::now));
                reason
            }
            Err(Ended::Lost(reason)) => {
                // The node judges the query; with no node to ask yet, the same parser here
                // does, so that a typo is not kept waiting for a node that is down.
                if !ever_connected && let Err(e) = shiplog_core::query::parse(&args.query) {
                    eprintln!("error: bad query: {e}");
                    eprintln!("  {}", args.query);
                    eprintln!("  {}^", " ".repeat(e.position));
                    return Ok(ExitCode::from(2));
                }
                reason
            }
            Err(Ended::Refused(failure)) => return Ok(refused(&failure, &args.query)),
            Err(Ended::NotAStream(content_type)) => {
                anyhow::bail!(
                    "{} answered with '{content_type}', not an event stream: is it a shiplog node? (set --url or SHIPLOG_URL)",
                    args.remote.url
                );
            }
        };
        tracing::debug!(error = %reason, retry_in = ?backoff, "tail stream down");
        if outage.is_none() {
            outage = Some(Instant::now());
            let advice = if ever_connected {
                ""
            } else {
                " (is `shiplog up` running? set --url or SHIPLOG_URL)"
            };
            eprintln!(
                "node at {} unreachable ({reason}); retrying in {}, backing off to {}{advice}",
                args.remote.url,
                seconds(backoff),
                seconds(BACKOFF_MAX)
            );
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Opens the stream; a non-2xx answer is read for the node's error message.
fn open(
    http: &reqwest::blocking::Client,
    url: &reqwest::Url,
) -> Result<reqwest::blocking::Response, Ended> {
    let resp = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .map_err(|e| Ended::Lost(request_failure(&e)))?;
    let status = resp.status();
    if status.is_success() {
        if let Some(content_type) = shiplog_tui::api::not_an_event_stream(resp.headers()) {
            return Err(Ended::NotAStream(content_type));
        }
        return Ok(resp);
    }
    let mut body = Vec::new();
    let _ = resp.take(MAX_ERROR_BODY).read_to_end(&mut body);
    let failure = api_failure(status.as_u16(), &body);
    // 5xx (a node starting or stopping, too many tail subscribers) can pass; 4xx cannot.
    if status.is_client_error() {
        return Err(Ended::Refused(failure));
    }
    Err(Ended::Lost(failure.to_string()))
}

/// The API's JSON error, or the status alone when the body is something else (a proxy).
fn api_failure(status: u16, body: &[u8]) -> ApiFailure {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    ApiFailure::from_body(status, &body)
}

/// Reports an answer that retrying cannot change; the exit code to end with.
fn refused(failure: &ApiFailure, query: &str) -> ExitCode {
    match failure.status {
        401 | 403 => eprintln!("error: {failure}; check --token or SHIPLOG_TOKEN"),
        _ => eprintln!("error: {failure}"),
    }
    if let Some(pos) = failure.position {
        eprintln!("  {query}");
        eprintln!("  {}^", " ".repeat(pos));
    }
    ExitCode::from(2)
}

/// Prints the stream's events until it ends; returns why it ended. `last_event` is set to
/// the time of each event received. Only failures to write stdout are errors.
fn follow(
    mut resp: reqwest::blocking::Response,
    json: bool,
    last_event: &mut Option<Timestamp>,
) -> anyhow::Result<String> {
    let mut decoder = SseDecoder::default();
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let stdout = std::io::stdout();
    loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => return Ok("the node closed the stream".into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Ok(format!(
                    "no data or keep-alive for {}",
                    seconds(IDLE_TIMEOUT)
                ));
            }
            Err(e) => return Ok(format!("stream broke: {}", innermost(&e))),
        };
        if let Err(e) = decoder.push(&buf[..n], &mut messages) {
            return Ok(e.to_string());
        }
        let mut out = stdout.lock();
        for m in messages.drain(..) {
            if m.event == "log" {
                *last_event = Some(event_time(&m.data));
            }
            print_message(&mut out, &m, json)?;
        }
        out.flush()?;
    }
}

/// Where the untailed window of an event starts: its time, or when it arrived here if
/// that is earlier (a clock ahead of ours must not push the window past what was missed).
fn event_time(data: &str) -> Timestamp {
    #[derive(Deserialize)]
    struct Stamp {
        ts: Timestamp,
    }
    let now = Timestamp::now();
    match serde_json::from_str::<Stamp>(data) {
        Ok(s) => s.ts.min(now),
        Err(_) => now,
    }
}

/// The gap marker after a reconnect: a line in plain mode, a `{"gap":{...}}` object with
/// `--json`, so that a consumer tells it from events.
fn print_reconnect_gap(args: &TailArgs, from: Timestamp, to: Timestamp) -> std::io::Result<()> {
    let hint = search_hint(args, from, to);
    let mut out = std::io::stdout().lock();
    if args.json {
        let line = serde_json::json!({"gap": {"from": from, "to": to, "hint": hint}});
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "--- reconnected: events between {from} and {to} were not tailed; see them with: {hint} ---"
        )?;
    }
    out.flush()
}

/// The `shiplog search` that lists what a gap missed, runnable as printed.
fn search_hint(args: &TailArgs, from: Timestamp, to: Timestamp) -> String {
    let mut hint = format!("shiplog search --since {from} --until {to}");
    // `--url` is named only when another node than the default is in use.
    if args.remote.url != crate::cli::DEFAULT_URL {
        hint.push_str(" --url ");
        hint.push_str(&shell_quote(&args.remote.url));
    }
    if args.json {
        hint.push_str(" --json");
    }
    if !args.query.is_empty() {
        hint.push(' ');
        hint.push_str(&shell_quote(&args.query));
    }
    hint
}

/// One word for a POSIX shell: single quotes, with `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn print_message(out: &mut impl Write, m: &SseMessage, json: bool) -> std::io::Result<()> {
    match m.event.as_str() {
        "log" if json => writeln!(out, "{}", m.data),
        "log" => match serde_json::from_str(&m.data).and_then(shiplog_tui::api::lenient_event) {
            Ok(e) => {
                let ts = e.ts.to_rfc3339();
                let level = e.level.map_or("-", |l| l.as_str());
                writeln!(
                    out,
                    "{} {} {} {} {}",
                    &ts[11..23],
                    e.service,
                    e.stream.map_or("-", |s| s.as_str()),
                    level,
                    e.message
                )
            }
            Err(err) => writeln!(out, "(unreadable event: {err})"),
        },
        "gap" if json => {
            let line = serde_json::json!({"gap": {"missed": missed(&m.data)}});
            writeln!(out, "{line}")
        }
        "gap" => writeln!(
            out,
            "... {} events missed: this terminal fell behind ...",
            missed(&m.data)
        ),
        _ => Ok(()),
    }
}

fn missed(data: &str) -> u64 {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v["missed"].as_u64())
        .unwrap_or(0)
}

/// A short reason for a failed request, without the URL (the notice names the node).
fn request_failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", seconds(IDLE_TIMEOUT));
    }
    innermost(e)
}

/// The last error of a chain: "connection refused (os error 111)" rather than "error
/// sending request".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    lowercase_first(&cur.to_string())
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        return true;
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_timeout)
}

/// `0.5s`, `2s`, `10s`.
fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::RemoteArgs;

    fn args(url: &str, json: bool, query: &str) -> TailArgs {
        TailArgs {
            remote: RemoteArgs {
                url: url.into(),
                token: None,
            },
            json,
            query: query.into(),
        }
    }

    #[test]
    fn the_search_hint_is_one_runnable_command() {
        let from = Timestamp::parse_rfc3339("2026-11-22T03:09:44.123456789Z").unwrap();
        let to = Timestamp::parse_rfc3339("2026-11-22T03:10:02Z").unwrap();
        assert_eq!(
            search_hint(&args(crate::cli::DEFAULT_URL, false, ""), from, to),
            "shiplog search --since 2026-11-22T03:09:44.123456789Z \
             --until 2026-11-22T03:10:02.000000000Z"
        );
        assert_eq!(
            search_hint(&args("http://h:1", true, "it's service:web"), from, to),
            "shiplog search --since 2026-11-22T03:09:44.123456789Z \
             --until 2026-11-22T03:10:02.000000000Z --url http://h:1 --json 'it'\\''s service:web'"
        );
        // What the hint prints, `shiplog search` reads back as the same instants.
        let now = Timestamp::now();
        assert_eq!(Timestamp::parse_bound(&from.to_rfc3339(), now), Ok(from));
        assert_eq!(Timestamp::parse_bound(&to.to_rfc3339(), now), Ok(to));
    }

    #[test]
    fn error_bodies_keep_the_nodes_message_and_a_proxy_page_its_status() {
        let body = br#"{"error":{"code":"bad_query","message":"expected ')'","position":9}}"#;
        let f = api_failure(400, body);
        assert_eq!(
            (f.status, f.code.as_str(), f.message.as_str(), f.position),
            (400, "bad_query", "expected ')'", Some(9))
        );
        let f = api_failure(502, b"<html>bad gateway</html>");
        assert_eq!(
            (f.status, f.code.as_str(), f.position),
            (502, "unknown", None)
        );
    }

    #[test]
    fn a_lagging_subscriber_gap_is_json_with_json() {
        let m = SseMessage {
            event: "gap".into(),
            data: r#"{"missed":7}"#.into(),
        };
        let mut out = Vec::new();
        print_message(&mut out, &m, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"gap\":{\"missed\":7}}\n"
        );
    }

    #[test]
    fn an_event_from_a_clock_ahead_does_not_start_the_window_in_the_future() {
        let before = Timestamp::now();
        let t = event_time(r#"{"ts":"2999-01-01T00:00:00Z","message":"x"}"#);
        assert!(t >= before && t <= Timestamp::now());
        let past = event_time(r#"{"ts":"2020-01-01T00:00:00Z"}"#);
        assert_eq!(
            past,
            Timestamp::parse_rfc3339("2020-01-01T00:00:00Z").unwrap()
        );
    }
}
