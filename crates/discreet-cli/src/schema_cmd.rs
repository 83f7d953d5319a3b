//! `discreet schema lint`: labelling checks for a store's own CI.
use std::process::ExitCode;

use clap::Subcommand;
use discreet_policy::{Vocabulary, lint_schema};

use crate::schema_args::SchemaArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum SchemaCommand {
    /// Fail (exit 1) when a field reachable from a service response has no category, an
    /// unknown category, a role that does not fit its type, or is marked special with a
    /// category that is not.
    Lint {
        #[command(flatten)]
        schema: SchemaArgs,
    },
}

pub(crate) fn run(cmd: SchemaCommand) -> Result<ExitCode, String> {
    match cmd {
        SchemaCommand::Lint { schema } => {
            // A role that does not fit its field's type stops the schema from loading; it
            // is a lint failure like the others, not a usage error.
            let schema = match schema.load() {
                Ok(s) => s,
                Err(e) => {
                    println!("{e}");
                    println!("schema lint: 1 problem");
                    return Ok(ExitCode::from(1));
                }
            };
            let vocabulary = Vocabulary::fideslang()?;
            let findings = lint_schema(&schema, &vocabulary);
            for f in &findings {
                println!("{f}");
            }
            if findings.is_empty() {
                let types = schema.response_types().len();
                println!("schema lint: ok ({types} response types)");
                Ok(ExitCode::SUCCESS)
            } else {
                let n = findings.len();
                println!("schema lint: {n} problem{}", if n == 1 { "" } else { "s" });
                Ok(ExitCode::from(1))
            }
        }
    }
}
