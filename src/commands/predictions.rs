//! `shiplog predictions`: auditor queries over prediction history, and exports checked
//! against the server's manifest.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use shiplog_core::Event;

use crate::cli::RemoteArgs;
use crate::client;

/// Flags of `predictions`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  shiplog predictions --model churn --since 24h\n  shiplog predictions --request-id req-42 --json\n  shiplog predictions 'input.customer_id:123 AND latency_ms:>250'\n  shiplog predictions export --model churn --since 7d --format csv --out churn.csv\n\nNeeds a token with the audit role (SHIPLOG_TOKEN); every query is recorded in the node's access record."
)]
pub struct PredictionsArgs {
    /// `export` streams every match to a file; without it, one page is printed.
    #[command(subcommand)]
    pub export: Option<PredictionsCommand>,
    #[command(flatten)]
    pub filter: PredictionFilter,
    /// Print each prediction as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Predictions to print.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// Subcommands of `predictions`.
#[derive(Debug, Subcommand)]
pub enum PredictionsCommand {
    /// Stream every matching prediction to a file (NDJSON or CSV) and write its manifest
    /// (query, window, count, SHA-256) beside it as FILE.manifest.json, after checking the
    /// checksum against the server's.
    Export(ExportArgs),
}

/// Flags of `predictions export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: PredictionFilter,
    /// `ndjson` or `csv`.
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv"])]
    pub format: String,
    /// File to write; its manifest goes to FILE.manifest.json.
    #[arg(long, short)]
    pub out: PathBuf,
}

/// What to look for.
#[derive(Debug, Args, Clone)]
pub struct PredictionFilter {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Model name, exactly.
    #[arg(long)]
    pub model: Option<String>,
    /// Model version, exactly.
    #[arg(long)]
    pub model_version: Option<String>,
    /// Request id, exactly.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Status, exactly (ok, error, ...).
    #[arg(long)]
    pub status: Option<String>,
    /// Lowest latency in milliseconds.
    #[arg(long)]
    pub min_latency_ms: Option<f64>,
    /// Highest latency in milliseconds.
    #[arg(long)]
    pub max_latency_ms: Option<f64>,
    /// Window start: 15m, now-1h or RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// Window end.
    #[arg(long)]
    pub until: Option<String>,
    /// Further query in the language, e.g. 'input.customer_id:123'.
    #[arg(default_value = "")]
    pub query: String,
}

impl PredictionFilter {
    fn url(&self) -> anyhow::Result<reqwest::Url> {
        let mut url = client::url(&self.remote, "/api/v1/predictions")?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in [
                ("model", &self.model),
                ("version", &self.model_version),
                ("request_id", &self.request_id),
                ("status", &self.status),
                ("since", &self.since),
                ("until", &self.until),
            ] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
            if let Some(v) = self.min_latency_ms {
                q.append_pair("min_latency_ms", &v.to_string());
            }
            if let Some(v) = self.max_latency_ms {
                q.append_pair("max_latency_ms", &v.to_string());
            }
            if !self.query.is_empty() {
                q.append_pair("q", &self.query);
            }
        }
        Ok(url)
    }

    fn check_query(&self) -> bool {
        if let Err(e) = shiplog_core::query::parse(&self.query) {
            eprintln!("error: bad query: {e}");
            eprintln!("  {}", self.query);
            eprintln!("  {}^", " ".repeat(e.position));
            return false;
        }
        true
    }
}

#[derive(serde::Deserialize)]
struct Page {
    hits: Vec<Event>,
    total: u64,
    next_cursor: Option<String>,
    took_ms: u64,
}

/// Runs `shiplog predictions`.
pub fn run(args: PredictionsArgs) -> anyhow::Result<ExitCode> {
    if let Some(PredictionsCommand::Export(export_args)) = args.export {
        return export(export_args);
    }
    if !args.filter.check_query() {
        return Ok(ExitCode::from(2));
    }
    let http = client::client(&args.filter.remote, Some(Duration::from_secs(60)))?;
    let mut url = args.filter.url()?;
    url.query_pairs_mut()
        .append_pair("limit", &args.limit.to_string());
    let resp = client::send(http.get(url), &args.filter.remote)?;
    let page: Page = resp.json()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        for hit in &page.hits {
            serde_json::to_writer(&mut out, hit)?;
            out.write_all(b"\n")?;
        }
    } else {
        write_table(&mut out, &page.hits)?;
    }
    out.flush()?;
    let more = if page.next_cursor.is_some() {
        "; raise --limit or use `predictions export` for all"
    } else {
        ""
    };
    eprintln!(
        "{} of {} predictions in {} ms{more}",
        page.hits.len(),
        page.total,
        page.took_ms
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes predictions as aligned columns.
pub fn write_table(out: &mut impl Write, hits: &[Event]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<23}  {:<16}  {:<8}  {:<24}  {:<7}  {:>10}  OUTPUT",
        "TIME (UTC)", "MODEL", "VERSION", "REQUEST ID", "STATUS", "LATENCY MS"
    )?;
    for h in hits {
        let ts = h.ts.to_rfc3339();
        let time = format!("{} {}", &ts[..10], &ts[11..23]);
        let cut = |s: &Option<String>, n: usize| -> String {
            s.as_deref().unwrap_or("-").chars().take(n).collect()
        };
        let latency = h
            .latency_ms
            .map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        let output: String = h
            .output
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect();
        writeln!(
            out,
            "{time:<23}  {:<16}  {:<8}  {:<24}  {:<7}  {latency:>10}  {output}",
            cut(&h.model, 16),
            cut(&h.model_version, 8),
            cut(&h.request_id, 24),
            cut(&h.status, 7),
        )?;
    }
    Ok(())
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Manifest {
    id: String,
    format: String,
    query: String,
    since: Option<String>,
    until: Option<String>,
    records: u64,
    bytes: u64,
    sha256: String,
    complete: bool,
    #[serde(default)]
    file: Option<String>,
}

fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    if !args.filter.check_query() {
        return Ok(ExitCode::from(2));
    }
    // Before asking the node for anything: a path that cannot be written fails now, in the
    // user's own words, not after the download under a temporary name.
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !parent.is_dir() {
        anyhow::bail!(
            "cannot write {}: the directory {} does not exist; create it first or choose another --out",
            args.out.display(),
            parent.display()
        );
    }
    // No overall timeout: an export runs as long as there is data.
    let http = client::client(&args.filter.remote, None)?;
    let mut url = args.filter.url()?;
    url.query_pairs_mut().append_pair("format", &args.format);
    let mut resp = client::send(http.get(url), &args.filter.remote)?;
    let id = resp
        .headers()
        .get("x-shiplog-export-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow::anyhow!("the server sent no X-Shiplog-Export-Id: is it a shiplog node?")
        })?;
    // The download lands beside the file as FILE.partial and is renamed once checked.
    let mut partial = args.out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(|e| {
        anyhow::anyhow!(
            "cannot write {} (downloading to {} first): {e}",
            args.out.display(),
            partial.display()
        )
    })?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut bytes, mut lines) = (0u64, 0u64);
    let started = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let n = resp.read(&mut buf).map_err(|e| {
            anyhow::anyhow!("the export stopped after {bytes} bytes: {e}; nothing was kept")
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        bytes += n as u64;
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        if last_report.elapsed() > Duration::from_secs(1) {
            eprint!(
                "\rexported {lines} lines, {:.1} MB ({:.1} MB/s)   ",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    file.flush()?;
    file.get_ref().sync_all()?;
    drop(file);
    eprintln!();
    let sha = shiplog_core::digest::hex(&hasher.finalize());
    // The server writes the manifest when its side of the stream ends; ask until it has.
    let manifest_url = client::url(
        &args.filter.remote,
        &format!("/api/v1/predictions/exports/{id}"),
    )?;
    let mut manifest: Option<Manifest> = None;
    for _ in 0..50 {
        match client::send(http.get(manifest_url.clone()), &args.filter.remote) {
            Ok(r) => {
                manifest = Some(r.json()?);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let Some(mut manifest) = manifest else {
        anyhow::bail!(
            "the server has no manifest for export {id}; the file is in {} but unverified",
            partial.display()
        );
    };
    if !manifest.complete || manifest.sha256 != sha || manifest.bytes != bytes {
        anyhow::bail!(
            "export {id} does not match the server's manifest (server: {} bytes, sha256 {}, complete {}; received: {bytes} bytes, sha256 {sha}); the file is left in {}",
            manifest.bytes,
            manifest.sha256,
            manifest.complete,
            partial.display()
        );
    }
    std::fs::rename(&partial, &args.out)?;
    manifest.file = Some(args.out.display().to_string());
    let manifest_path = PathBuf::from(format!("{}.manifest.json", args.out.display()));
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    eprintln!(
        "{} predictions, {} bytes, sha256 {sha} → {} (manifest {})",
        manifest.records,
        bytes,
        args.out.display(),
        manifest_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
