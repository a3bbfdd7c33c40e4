//! `shiplog audit`: day roots, chain verification and legal holds, offline on a data
//! directory (see `shiplog_indexer::audit`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use shiplog_core::Timestamp;
use shiplog_indexer::audit::{self, Holds, RootsFile};

use crate::cli::{
    AuditCommand, AuditHoldArgs, AuditHoldsArgs, AuditReleaseArgs, AuditRootsArgs, AuditVerifyArgs,
    DataDirArgs,
};
use crate::config::{self, Config};

/// Runs an audit subcommand.
pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Roots(args) => roots(args),
        AuditCommand::Verify(args) => verify(args),
        AuditCommand::Hold(args) => hold(args),
        AuditCommand::Release(args) => release(args),
        AuditCommand::Holds(args) => holds(args),
    }
}

/// `<data_dir>/audit`, with data_dir from the flag, else the config file, else the default.
fn audit_dir(args: &DataDirArgs) -> anyhow::Result<PathBuf> {
    let data_dir = match (&args.data_dir, &args.config) {
        (Some(d), _) => d.clone(),
        (None, Some(path)) => config::load(path)?.data_dir,
        (None, None) => Config::default().data_dir,
    };
    Ok(audit::audit_dir(&data_dir))
}

fn roots(args: AuditRootsArgs) -> anyhow::Result<ExitCode> {
    let dir = audit_dir(&args.data)?;
    let export = |include_open| {
        audit::export(&dir, include_open)
            .with_context(|| format!("cannot export the roots under {}", dir.display()))
    };
    let roots = export(args.include_open)?;
    if roots.days.is_empty() {
        // An empty roots file proves nothing; writing one silently looked like success.
        // Only now are the open days' roots worth computing: to say what is there.
        let open_days: Vec<String> = if args.include_open {
            Vec::new()
        } else {
            export(true)?
                .days
                .iter()
                .map(|d| format!("{} ({} records)", d.day, d.count))
                .collect()
        };
        let why = if open_days.is_empty() {
            format!("no predictions are recorded under {}", dir.display())
        } else {
            format!(
                "no day has closed yet (a day closes at midnight UTC); open: {}; pass --include-open to export its root so far",
                open_days.join(", ")
            )
        };
        eprintln!("error: nothing to export: {why}");
        return Ok(ExitCode::FAILURE);
    }
    let open = roots.days.iter().filter(|d| d.open).count();
    let summary = format!(
        "{} closed day(s){}",
        roots.days.len() - open,
        if args.include_open {
            format!(" and {open} open day(s)")
        } else {
            String::new()
        }
    );
    match &args.out {
        Some(out) => {
            let mut tmp = out.as_os_str().to_owned();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, roots.to_json())
                .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
                .and_then(|()| std::fs::rename(&tmp, out))
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("exported the roots of {summary} to {}", out.display());
        }
        None => {
            std::io::stdout().write_all(roots.to_json().as_bytes())?;
            eprintln!("exported the roots of {summary}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(args: AuditVerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = audit_dir(&args.data)?;
    let roots = match &args.roots {
        Some(p) => Some(RootsFile::load(p)?),
        None => None,
    };
    if !dir.is_dir() && roots.is_none() {
        println!("no audit chains under {}: nothing to verify", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut progress = |p: audit::Progress<'_>| {
        if last_line.elapsed() < Duration::from_secs(2) {
            return;
        }
        last_line = Instant::now();
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "  {}: {} records checked, {:.2} M records/s overall",
            p.day,
            p.records,
            p.total_records as f64 / secs / 1e6
        );
    };
    let reports =
        audit::verify_with_progress(&dir, args.day.as_deref(), roots.as_ref(), &mut progress)?;
    let secs = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    let mut first = None;
    for r in &reports {
        writeln!(
            out,
            "{}  {:<6}  {:>12} records  {}",
            r.day,
            if r.closed { "closed" } else { "open" },
            r.records,
            if r.ok() { "ok" } else { "MISMATCH" }
        )?;
        for n in &r.notes {
            writeln!(out, "            note: {n}")?;
        }
        if first.is_none() {
            first = r.mismatch.as_ref();
        }
    }
    let records: u64 = reports.iter().map(|r| r.records).sum();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if let Some(m) = first {
        writeln!(out, "first mismatch: {m}")?;
    }
    writeln!(
        out,
        "{} day(s), {records} records ({:.1} MB) in {secs:.2} s: {:.0} records/s, {:.0} MB/s{}; {}",
        reports.len(),
        bytes as f64 / 1e6,
        records as f64 / secs.max(1e-9),
        bytes as f64 / 1e6 / secs.max(1e-9),
        if roots.is_some() {
            " against exported roots"
        } else {
            " against the stored hashes only (pass --roots to catch a recomputed chain)"
        },
        if failed == 0 {
            "all ok".to_string()
        } else {
            format!("{failed} day(s) FAILED")
        }
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn hold(args: AuditHoldArgs) -> anyhow::Result<ExitCode> {
    let dir = audit_dir(&args.data)?;
    let mut holds = Holds::load(&dir)?;
    holds.add(&args.day, &args.by, &args.reason, Timestamp::now())?;
    holds.save(&dir)?;
    println!(
        "day {} is on legal hold (by {}: {}); retention keeps it until `shiplog audit release --day {}`",
        args.day, args.by, args.reason, args.day
    );
    Ok(ExitCode::SUCCESS)
}

fn release(args: AuditReleaseArgs) -> anyhow::Result<ExitCode> {
    let dir = audit_dir(&args.data)?;
    let mut holds = Holds::load(&dir)?;
    let h = holds.release(&args.day, &args.by, Timestamp::now())?;
    holds.save(&dir)?;
    println!(
        "released the hold on {} (placed by {} at {}: {}); retention applies to it again",
        h.day, h.by, h.at, h.reason
    );
    Ok(ExitCode::SUCCESS)
}

fn holds(args: AuditHoldsArgs) -> anyhow::Result<ExitCode> {
    let dir = audit_dir(&args.data)?;
    let holds = Holds::load(&dir)?;
    let shown: Vec<_> = holds
        .all()
        .iter()
        .filter(|h| args.all || h.active())
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        for h in shown {
            writeln!(out, "{}", serde_json::to_string(h)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if shown.is_empty() {
        writeln!(out, "no days on legal hold")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<10}  {:<12}  {:<30}  REASON", "DAY", "BY", "SINCE")?;
    for h in shown {
        let released = match (&h.released_by, &h.released_at) {
            (Some(by), Some(at)) => format!(" (released by {by} at {at})"),
            _ => String::new(),
        };
        writeln!(
            out,
            "{:<10}  {:<12}  {:<30}  {}{released}",
            h.day, h.by, h.at, h.reason
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
