//! One module per subcommand.

mod bench;
mod bench_index;
mod bench_latency;
mod collect;
mod config;
mod retention;
mod search;
mod tail;

use std::process::ExitCode;

use crate::cli::{BenchCommand, Cli, Command};
use crate::node;

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(args) => {
            let config = node::resolve_config(&args)?;
            node::run(config, true)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let config = node::resolve_config(&args)?;
            node::run(config, false)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Collect(args) => collect::run(args),
        Command::Search(args) => search::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Retention(args) => retention::run(args),
        Command::Tui(remote) => {
            shiplog_tui::run(shiplog_tui::TuiOptions {
                url: remote.url,
                token: remote.token,
                ..Default::default()
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Ingest(args)) => bench::ingest(args),
        Command::Bench(BenchCommand::Index(args)) => bench_index::run(args),
        Command::Bench(BenchCommand::Latency(args)) => bench_latency::run(args),
        Command::Config(cmd) => config::run(cmd),
    }
}
