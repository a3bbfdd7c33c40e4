//! `shiplog alerts`: firing and pending alerts, their history, rule checks and reloads.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::cli::{AlertsArgs, AlertsCommand};
use crate::{client, config};

/// Runs an alerts subcommand.
pub fn run(args: AlertsArgs) -> anyhow::Result<ExitCode> {
    match args.command.unwrap_or(AlertsCommand::List) {
        AlertsCommand::Check { file } => check(&file),
        AlertsCommand::List => list(&args.remote, args.json),
        AlertsCommand::History { limit } => history(&args.remote, args.json, limit),
        AlertsCommand::Reload => {
            let http = client::client(&args.remote, Some(Duration::from_secs(300)))?;
            let url = client::url(&args.remote, "/api/v1/alerts/reload")?;
            let v: Value = client::send(http.post(url), &args.remote)?.json()?;
            println!("reloaded: {} rules", v["rules"]);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", file.display());
            return Ok(ExitCode::from(1));
        }
    };
    match config::parse(file, &text) {
        Ok(c) => {
            let rules = c.compiled_alerts()?;
            println!(
                "{}: ok: {} rules, {} notifiers",
                file.display(),
                rules.len(),
                c.alerting.names().len()
            );
            for r in &rules {
                println!("  {r}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
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
