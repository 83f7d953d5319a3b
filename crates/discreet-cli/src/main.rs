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
    /// Policy authoring: check, explain, test (golden cases) and diff policies; `schema`
    /// prints the policy file's JSON Schema.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Check a store's schema labels.
    #[command(subcommand)]
    Schema(schema_cmd::SchemaCommand),
    /// Development keys: a consent signing key pair (`generate`), or a whole keyring
    /// (`dev`): consent and caller signing keys, a revocation list, the pseudonym secret and
    /// the audit key.
    #[command(subcommand)]
    Keys(dev_tokens::KeysCommand),
    /// Mint development tokens: consent tokens (`mint` with a key of your own, `dev-consent`
    /// with the development keyring) and callers' service-account tokens (`dev-caller`).
    #[command(subcommand)]
    Token(dev_tokens::TokenCommand),
    /// Query exported access spans: accesses, denials, one person's accesses, subject
    /// access reports, shadow policy summaries.
    Audit(audit_cmd::AuditArgs),
}

/// The exit status of a command whose reader went away (`discreet … | head -1`): 128 +
/// SIGPIPE, what a shell reports for a program that SIGPIPE ended, which is how a
/// command-line tool normally ends there. Rust ignores SIGPIPE, and restoring it needs
/// unsafe code, so the write error it gives instead is caught here.
const BROKEN_PIPE_EXIT: u8 = 141;

/// Whether an error message or panic message is a write to a closed pipe, as
/// `std::io::Error` shows EPIPE (the message is all a panic or a `String` error keeps).
fn is_broken_pipe(message: &str) -> bool {
    message.contains("Broken pipe (os error")
}

/// Ends the process quietly when `println!` panics because stdout's reader has gone, and
/// leaves every other panic to the default hook.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to std") && is_broken_pipe(message) {
            std::process::exit(i32::from(BROKEN_PIPE_EXIT));
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    // The commands whose answer is on stdout: a write error there is the reader leaving.
    // Elsewhere (the gateway's sockets) a broken pipe is a real error and is reported.
    let answers_on_stdout = !matches!(cli.command, Command::Serve(_) | Command::Demo(_));
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
        Err(e) if answers_on_stdout && is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_EXIT),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_how_a_closed_pipe_is_shown() {
        // The text `is_broken_pipe` looks for is the one std gives EPIPE here.
        let epipe = std::io::Error::from_raw_os_error(32).to_string();
        assert!(is_broken_pipe(&format!(
            "failed printing to stdout: {epipe}"
        )));
        assert!(!is_broken_pipe(
            "failed printing to stdout: No space left on device"
        ));
    }

    #[test]
    fn each_command_group_names_all_it_does() {
        use clap::CommandFactory;
        let cli = Cli::command();
        for group in ["policy", "keys", "token"] {
            let cmd = cli.find_subcommand(group);
            assert!(cmd.is_some(), "no {group} command");
            let Some(cmd) = cmd else { continue };
            let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
            for sub in cmd.get_subcommands() {
                let name = sub.get_name();
                if name != "help" {
                    assert!(about.contains(name), "`{group}` says {about:?}: no {name}");
                }
            }
        }
    }
}
