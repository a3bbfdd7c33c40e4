//! `shiplog alerts`: firing and pending alerts, their history, rule checks and reloads.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::cli::{AlertsArgs, AlertsCommand};
use crate::{client, config};

/// Runs an alerts subcommand.
pub fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    match args.command.unwrap_or(AlertsCommand::List) {
        AlertsCommand::Check { file } => check(&file, args.json),
        AlertsCommand::List => list(&args.remote, args.json),
        AlertsCommand::History { limit } => history(&args.remote, args.json, limit),
        AlertsCommand::Reload => {
            let http = client::client(&args.remote, Some(Duration::from_secs(300)))?;
            let url = client::url(&args.remote, "/api/v1/alerts/reload")?;
            let v: Value = client::send(http.post(url), &args.remote)?.json()?;
            if args.json {
                println!("{v}");
            } else {
                println!("reloaded: {} rules", v["rules"]);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks a config file's rules; exit 1 on the first problem. With `json`, one object on
/// stdout either way: `{"file", "ok": true, "rules": [...], "notifiers": [...]}` or
/// `{"file", "ok": false, "error": {"message", "line"?, "column"?}}`.
fn check(file: &std::path::Path, json: bool) -> anyhow::Result<ExitCode> {
    let refuse = |message: String, line: Option<usize>, column: Option<usize>| {
        if json {
            let v = serde_json::json!({
                "file": file.display().to_string(),
                "ok": false,
                "error": {"message": message, "line": line, "column": column},
            });
            println!("{v}");
        } else {
            eprintln!("{message}");
        }
        Ok(ExitCode::from(1))
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return refuse(format!("{}: cannot read: {e}", file.display()), None, None),
    };
    let c = match config::parse(file, &text) {
        Ok(c) => c,
        Err(e) if json => return refuse(e.message.clone(), e.line, e.column),
        Err(e) => return refuse(e.to_string(), e.line, e.column),
    };
    let rules = match c.compiled_alerts() {
        Ok(r) => r,
        Err(e) => return refuse(format!("{}: {e}", file.display()), None, None),
    };
    let notifiers = c.alerting.names();
    if json {
        let rules: Vec<Value> = rules
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "kind": r.kind,
                    "severity": r.severity,
                    "window_seconds": r.window_ns as f64 / 1e9,
                    "for_seconds": r.for_ns as f64 / 1e9,
                    "notify": r.notify,
                })
            })
            .collect();
        let v = serde_json::json!({
            "file": file.display().to_string(),
            "ok": true,
            "rules": rules,
            "notifiers": notifiers,
        });
        println!("{v}");
    } else {
        println!(
            "{}: ok: {} rules, {} notifiers",
            file.display(),
            rules.len(),
            notifiers.len()
        );
        for r in &rules {
            println!("  {r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn get(remote: &crate::cli::RemoteArgs, path: &str) -> anyhow::Result<Value> {
    let http = client::client(remote, Some(Duration::from_secs(30)))?;
    let url = client::url(remote, path)?;
    Ok(client::send(http.get(url), remote)?.json()?)
}

fn group_text(v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return String::new();
    };
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

fn list(remote: &crate::cli::RemoteArgs, json: bool) -> anyhow::Result<ExitCode> {
    let v = get(remote, "/api/v1/alerts")?;
    if json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        println!("no alerts firing or pending");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8}  {:<9}  {:<24}  {:<28}  {:>12}  {:>10}  {:<20}  NOTE",
        "STATE", "SEVERITY", "RULE", "GROUP", "VALUE", "THRESHOLD", "SINCE"
    );
    for a in &alerts {
        let mut note = Vec::new();
        if a["silenced"] == true {
            note.push("silenced".to_string());
        }
        if a["delivery"] == "pending" {
            note.push(match a["delivery_error"].as_str() {
                Some(e) => format!("delivery pending: {e}"),
                None => "delivery pending".into(),
            });
        }
        println!(
            "{:<8}  {:<9}  {:<24}  {:<28}  {:>12.4}  {:>10}  {:<20}  {}",
            a["state"].as_str().unwrap_or("?"),
            a["severity"].as_str().unwrap_or(""),
            a["rule"].as_str().unwrap_or(""),
            group_text(&a["group"]),
            a["value"].as_f64().unwrap_or(f64::NAN),
            a["threshold"],
            a["since"].as_str().unwrap_or("").get(..19).unwrap_or(""),
            note.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn history(remote: &crate::cli::RemoteArgs, json: bool, limit: usize) -> anyhow::Result<ExitCode> {
    let v = get(remote, &format!("/api/v1/alerts/history?limit={limit}"))?;
    if json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    for t in v["transitions"].as_array().cloned().unwrap_or_default() {
        println!(
            "{}  {:<24}  {:<28}  {:>8} -> {:<8}  value {}",
            t["at"].as_str().unwrap_or(""),
            t["rule"].as_str().unwrap_or(""),
            group_text(&t["group"]),
            t["from"].as_str().unwrap_or(""),
            t["to"].as_str().unwrap_or(""),
            t["value"]
        );
    }
    Ok(ExitCode::SUCCESS)
}
