//! `shiplog config check FILE` and `shiplog config default`.

use std::process::ExitCode;

use crate::cli::ConfigCommand;
use crate::config::{self, Config};

/// Runs a config subcommand.
pub fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check { file } => {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{}: cannot read: {e}", file.display());
                    return Ok(ExitCode::from(1));
                }
            };
            match config::parse(&file, &text) {
                Ok(parsed) => {
                    if let Err(e) = crate::node::collector_config(&parsed).validate() {
                        eprintln!("{}: [collector]: {e}", file.display());
                        return Ok(ExitCode::from(1));
                    }
                    println!("{}: ok", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        ConfigCommand::Default => {
            print!("{}", toml::to_string_pretty(&Config::default())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
