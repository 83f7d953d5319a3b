//! `discreet`: the gateway's command line.
#![forbid(unsafe_code)]

mod policy_cmd;
mod schema_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Discreet: a gRPC privacy sidecar. Every read purpose-bound, consent-checked,
/// minimised and audited.
#[derive(Debug, Parser)]
#[command(name = "discreet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check and explain policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(cmd) => policy_cmd::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
