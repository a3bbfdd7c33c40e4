//! One module per subcommand.

mod alerts;
mod audit;
mod bench;
mod bench_alerts;
pub mod bench_collect;
mod bench_index;
mod bench_latency;
pub mod bench_predictions;
pub mod bench_query;
mod bench_verify;
mod collect;
mod config;
pub mod predictions;
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
            let mut config = node::resolve_config(&args.node)?;
            if args.no_docker {
                config.docker.enabled = false;
            }
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
        Command::Predictions(args) => predictions::run(*args),
        Command::Tui(args) => {
            shiplog_tui::run(shiplog_tui::TuiOptions {
                url: args.remote.url,
                token: args.remote.token,
                buffer_lines: usize::try_from(args.buffer_lines).unwrap_or(usize::MAX),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Ingest(args)) => bench::ingest(args),
        Command::Bench(BenchCommand::Index(args)) => bench_index::run(args),
        Command::Bench(BenchCommand::Latency(args)) => bench_latency::run(args),
        Command::Bench(BenchCommand::Alerts(args)) => bench_alerts::run(args),
        Command::Bench(BenchCommand::Predictions(args)) => bench_predictions::run(args),
        Command::Bench(BenchCommand::Verify(args)) => bench_verify::run(args),
        Command::Bench(BenchCommand::Collect(args)) => bench_collect::run(args),
        Command::Bench(BenchCommand::Query(args)) => bench_query::run(args),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Config(cmd) => config::run(cmd),
        Command::Alerts(args) => alerts::run(args),
    }
}
