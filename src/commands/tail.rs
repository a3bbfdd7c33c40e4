//! `shiplog tail`: new events as they are stored, until interrupted.

use std::io::{Read, Write};
use std::process::ExitCode;

use shiplog_core::Event;
use shiplog_tui::sse::{SseDecoder, SseMessage};

use crate::cli::TailArgs;
use crate::client;

/// Follows the tail stream and prints each event.
pub fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = shiplog_core::query::parse(&args.query) {
        eprintln!("error: bad query: {e}");
        eprintln!("  {}", args.query);
        eprintln!("  {}^", " ".repeat(e.position));
        return Ok(ExitCode::from(2));
    }
    let http = client::client(&args.remote, None)?;
    let mut url = client::url(&args.remote, "/api/v1/tail")?;
    if !args.query.is_empty() {
        url.query_pairs_mut().append_pair("q", &args.query);
    }
    let mut resp = client::send(
        http.get(url).header("accept", "text/event-stream"),
        &args.remote,
    )?;
    eprintln!("following {} (Ctrl-C to stop)", args.remote.url);
    let mut decoder = SseDecoder::default();
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let stdout = std::io::stdout();
    loop {
        let n = resp.read(&mut buf)?;
        if n == 0 {
            eprintln!("the server closed the stream");
            return Ok(ExitCode::from(1));
        }
        decoder.push(&buf[..n], &mut messages)?;
        let mut out = stdout.lock();
        for m in messages.drain(..) {
            print_message(&mut out, &m, args.json)?;
        }
        out.flush()?;
    }
}

fn print_message(out: &mut impl Write, m: &SseMessage, json: bool) -> std::io::Result<()> {
    match m.event.as_str() {
        "log" if json => writeln!(out, "{}", m.data),
        "log" => match serde_json::from_str::<Event>(&m.data) {
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
        "gap" => writeln!(
            out,
            "... {} events missed: this terminal fell behind ...",
            missed(&m.data)
        ),
        _ => Ok(()),
    }
}

fn missed(data: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["missed"].as_u64())
        .unwrap_or(0)
}
