//! `discreet`: the gateway's command line.
#![forbid(unsafe_code)]

mod audit_cmd;
mod demo;
mod demo_audit;
mod demo_table;
mod dev_tokens;
mod personas;
mod policy_cmd;
mod policy_diff;
mod policy_file;
mod policy_test;
mod schema_args;
mod schema_cmd;
mod serve_cmd;

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
    /// Run the gateway.
    Serve(serve_cmd::ServeArgs),
    /// Start the embedded store and the gateway with development keys, show what each
    /// purpose receives for the same people, and keep serving.
    Demo(demo::DemoArgs),
    /// Check and explain policies.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Check a store's schema labels.
    #[command(subcommand)]
    Schema(schema_cmd::SchemaCommand),
    /// Development signing keys for consent tokens.
    #[command(subcommand)]
    Keys(dev_tokens::KeysCommand),
    /// Mint development consent tokens.
    #[command(subcommand)]
    Token(dev_tokens::TokenCommand),
    /// Query exported access spans: accesses, denials, one person's accesses, subject
    /// access reports, shadow policy summaries.
    Audit(audit_cmd::AuditArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve_cmd::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Demo(args) => demo::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Policy(cmd) => policy_cmd::run(cmd),
        Command::Schema(cmd) => schema_cmd::run(cmd),
        Command::Keys(cmd) => dev_tokens::run_keys(cmd)
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
        Command::Token(cmd) => dev_tokens::run_token(cmd)
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
        Command::Audit(args) => audit_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
