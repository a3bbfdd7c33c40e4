//! `shiplog retention`: the node's retention plan, or applying it.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::cli::RetentionArgs;
use crate::client;

/// Asks the node for its plan (applied with `--apply`) and prints it.
pub fn run(args: RetentionArgs) -> anyhow::Result<ExitCode> {
    let http = client::client(&args.remote, Some(Duration::from_secs(600)))?;
    let mut url = client::url(&args.remote, "/api/v1/retention")?;
    url.query_pairs_mut()
        .append_pair("dry_run", if args.apply { "false" } else { "true" });
    let plan: Value = client::send(http.post(url), &args.remote)?.json()?;
    if args.json {
        println!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    let steps = plan["steps"].as_array().cloned().unwrap_or_default();
    let verb = if args.apply {
        "removed"
    } else {
        "would remove"
    };
    if steps.is_empty() {
        println!("nothing to remove: every day is within its retention");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10}  {:<13}  {:>10}  {:>12}  WHY",
        "DAY", "ACTION", "EVENTS", "BYTES"
    );
    for s in &steps {
        let day = s["day"].as_str().unwrap_or("?");
        match s["action"].as_str() {
            Some("drop_day") => println!(
                "{day:<10}  {:<13}  {:>10}  {:>12}  {}",
                "drop day",
                s["events"],
                s["bytes"],
                if s["reason"] == "size" {
                    "over the size cap"
                } else {
                    "every kind expired"
                }
            ),
            Some("held") => println!(
                "{day:<10}  {:<13}  {:>10}  {:>12}  under legal hold: kept (`shiplog audit holds`)",
                "held", s["events"], s["bytes"]
            ),
            Some("roll_up_metrics") => println!(
                "{day:<10}  {:<13}  {:>10}  {:>12}  metric samples older than a day, one per minute",
                "roll up", s["samples"], "-"
            ),
            _ => println!(
                "{day:<10}  {:<13}  {:>10}  {:>12}  {} expired",
                "delete kind",
                s["events"],
                "-",
                s["kind"].as_str().unwrap_or("?")
            ),
        }
    }
    let held = steps.iter().filter(|s| s["action"] == "held").count();
    if held > 0 {
        println!(
            "{} step(s) {verb}; {held} day(s) under legal hold kept",
            steps.len() - held
        );
    } else {
        println!("{} step(s) {verb}", steps.len());
    }
    Ok(ExitCode::SUCCESS)
}
