//! `shiplog search`: one page of hits as a table or JSON lines.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shiplog_core::{Event, Timestamp};

use crate::cli::SearchArgs;
use crate::client;

#[derive(serde::Deserialize)]
struct SearchBody {
    hits: Vec<Event>,
    total: u64,
    total_exact: bool,
    next_cursor: Option<String>,
    took_ms: u64,
}

/// The API's largest page; longer listings are fetched page by page through the cursor.
const MAX_PAGE: usize = shiplog_indexer::search::MAX_LIMIT;

/// Runs a search and prints it, page by page when more hits are asked for than one page
/// holds.
pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    // Check the query locally first: same parser as the server, and no round trip.
    if let Err(e) = shiplog_core::query::parse(&args.query) {
        eprintln!("error: bad query: {e}");
        eprintln!("  {}", args.query);
        eprintln!("  {}^", " ".repeat(e.position));
        return Ok(ExitCode::from(2));
    }
    // Relative bounds are pinned once, so every page reads the same window.
    let now = Timestamp::now();
    let since = pin_bound("--since", args.since.as_deref(), now)?;
    let until = pin_bound("--until", args.until.as_deref(), now)?;
    let wanted = if args.all {
        None
    } else {
        Some(usize::try_from(args.limit).unwrap_or(usize::MAX))
    };
    let http = client::client(&args.remote, Some(Duration::from_secs(60)))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut cursor = args.cursor.clone();
    let mut printed = 0usize;
    let mut took_ms = 0u64;
    let mut service_w = None;
    let last = loop {
        let page = wanted.map_or(MAX_PAGE, |w| (w - printed).min(MAX_PAGE));
        let mut url = client::url(&args.remote, "/api/v1/search")?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("q", &args.query)
                .append_pair("limit", &page.to_string());
            if let Some(s) = &since {
                q.append_pair("since", s);
            }
            if let Some(u) = &until {
                q.append_pair("until", u);
            }
            if let Some(c) = &cursor {
                q.append_pair("cursor", c);
            }
        }
        let resp = match client::send(http.get(url), &args.remote) {
            Ok(r) => r,
            Err(e) => {
                client::explain_query_error(&e, &args.query);
                out.flush()?;
                return Err(e);
            }
        };
        let body: SearchBody = resp.json()?;
        took_ms += body.took_ms;
        if args.json {
            for hit in &body.hits {
                serde_json::to_writer(&mut out, hit)?;
                out.write_all(b"\n")?;
            }
        } else {
            // The first page sets the column width: later pages stream under the same header.
            let width = *service_w.get_or_insert_with(|| service_width(&body.hits));
            if printed == 0 {
                write_header(&mut out, width)?;
            }
            for h in &body.hits {
                writeln!(out, "{}", table_row(h, width))?;
            }
        }
        printed += body.hits.len();
        cursor.clone_from(&body.next_cursor);
        let done = body.next_cursor.is_none()
            || body.hits.is_empty()
            || wanted.is_some_and(|w| printed >= w);
        if done {
            break body;
        }
    };
    out.flush()?;
    let body = last;
    let approx = if body.total_exact { "" } else { "about " };
    eprintln!("{printed} of {approx}{} hits in {took_ms} ms", body.total);
    if let Some(c) = &body.next_cursor {
        eprintln!(
            "more: raise -n, pass --all, or continue with --cursor {c} (and the same query, --since and --until)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A time bound resolved to RFC 3339 against one `now`, so that paging does not drift.
fn pin_bound(flag: &str, text: Option<&str>, now: Timestamp) -> anyhow::Result<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let t = Timestamp::parse_bound(text, now)
        .map_err(|e| anyhow::anyhow!("{flag} {text}: {e}; use 15m, 2h, 7d, now-5m or RFC 3339"))?;
    Ok(Some(t.to_rfc3339()))
}

/// The SERVICE column's width: the longest service on the page, within 7 to 24.
fn service_width(hits: &[Event]) -> usize {
    hits.iter()
        .map(|h| h.service.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 24)
}

/// The table header: time (UTC), service, stream, level, message.
fn write_header(out: &mut impl Write, service_w: usize) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<23}  {:<service_w$}  {:<6}  {:<5}  MESSAGE",
        "TIME (UTC)", "SERVICE", "STREAM", "LEVEL"
    )
}

fn table_row(h: &Event, service_w: usize) -> String {
    let ts = h.ts.to_rfc3339();
    // 2026-11-22T03:09:44.123456789Z -> 2026-11-22 03:09:44.123
    let time = format!("{} {}", &ts[..10], &ts[11..23]);
    let service: String = h.service.chars().take(service_w).collect();
    let stream = h.stream.map_or("", |s| s.as_str());
    let level = h.level.map_or("", |l| l.as_str());
    let message = h.message.replace('\n', "\\n").replace('\r', "\\r");
    format!("{time:<23}  {service:<service_w$}  {stream:<6}  {level:<5}  {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use shiplog_core::{Level, Stream};

    #[test]
    fn table_rows_are_aligned_and_single_line() {
        let mut e = Event::log(
            Timestamp::parse_rfc3339("2026-11-22T03:09:44.123456789Z").unwrap(),
            "two\nlines",
        );
        e.service = "web".into();
        e.stream = Some(Stream::Stderr);
        e.level = Some(Level::Error);
        let mut out = Vec::new();
        let width = service_width(std::slice::from_ref(&e));
        write_header(&mut out, width).unwrap();
        writeln!(out, "{}", table_row(&e, width)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(
            lines[0],
            "TIME (UTC)               SERVICE  STREAM  LEVEL  MESSAGE"
        );
        assert_eq!(
            lines[1],
            "2026-11-22 03:09:44.123  web      stderr  error  two\\nlines"
        );
    }
}
