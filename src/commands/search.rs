//! `shiplog search`: one page of hits as a table or JSON lines.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use shiplog_core::Event;

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

/// Runs a search and prints it.
pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    // Check the query locally first: same parser as the server, and no round trip.
    if let Err(e) = shiplog_core::query::parse(&args.query) {
        eprintln!("error: bad query: {e}");
        eprintln!("  {}", args.query);
        eprintln!("  {}^", " ".repeat(e.position));
        return Ok(ExitCode::from(2));
    }
    let http = client::client(&args.remote, Some(Duration::from_secs(60)))?;
    let mut url = client::url(&args.remote, "/api/v1/search")?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("q", &args.query)
            .append_pair("limit", &args.limit.to_string());
        if let Some(s) = &args.since {
            q.append_pair("since", s);
        }
        if let Some(u) = &args.until {
            q.append_pair("until", u);
        }
    }
    let resp = match client::send(http.get(url), &args.remote) {
        Ok(r) => r,
        Err(e) => {
            client::explain_query_error(&e, &args.query);
            return Err(e);
        }
    };
    let body: SearchBody = resp.json()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        for hit in &body.hits {
            serde_json::to_writer(&mut out, hit)?;
            out.write_all(b"\n")?;
        }
    } else {
        write_table(&mut out, &body.hits)?;
    }
    out.flush()?;
    let approx = if body.total_exact { "" } else { "about " };
    let more = if body.next_cursor.is_some() {
        "; raise --limit for more"
    } else {
        ""
    };
    eprintln!(
        "{} of {approx}{} hits in {} ms{more}",
        body.hits.len(),
        body.total,
        body.took_ms
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes hits as aligned columns: time (UTC), service, stream, level, message.
pub fn write_table(out: &mut impl Write, hits: &[Event]) -> std::io::Result<()> {
    let service_w = hits
        .iter()
        .map(|h| h.service.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, 24);
    writeln!(
        out,
        "{:<23}  {:<service_w$}  {:<6}  {:<5}  MESSAGE",
        "TIME (UTC)", "SERVICE", "STREAM", "LEVEL"
    )?;
    for h in hits {
        writeln!(out, "{}", table_row(h, service_w))?;
    }
    Ok(())
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
    use shiplog_core::{Level, Stream, Timestamp};

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
        write_table(&mut out, &[e]).unwrap();
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
