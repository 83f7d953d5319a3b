use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use discreet_policy::{ConsentGrant, Policy, Severity};

use crate::schema_args::SchemaArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Validate a policy against the vocabulary and the schema.
    Check {
        /// The policy file.
        policy: PathBuf,
        #[command(flatten)]
        schema: SchemaArgs,
    },
    /// Show, for every field, what a purpose receives and which rule decided it.
    Explain {
        /// The policy file.
        policy: PathBuf,
        /// The declared purpose.
        #[arg(long)]
        purpose: String,
        /// A special category the subject's consent names (repeatable).
        #[arg(long = "grant", value_name = "CATEGORY")]
        grants: Vec<String>,
        /// The record's jurisdiction (ISO 3166, e.g. DE or US-CA).
        #[arg(long)]
        jurisdiction: Option<String>,
        /// The message type to explain.
        #[arg(long, default_value = "profile.v1.Profile")]
        message: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        schema: SchemaArgs,
    },
    /// Run golden test cases (YAML files of cases) against a policy. Exit status 1 if a
    /// case fails.
    Test {
        /// A directory of case files (every .yaml in it), or one case file.
        #[arg(default_value = "config/policy-tests")]
        dir: PathBuf,
        /// The policy under test.
        #[arg(long, default_value = "config/policy.yaml")]
        policy: PathBuf,
        #[command(flatten)]
        schema: SchemaArgs,
    },
    /// Show what changes between two versions of a policy, field by field. Exit status 0
    /// whether or not anything changed; 2 if either policy does not load.
    Diff {
        /// The policy before the change.
        old: PathBuf,
        /// The policy after the change.
        new: PathBuf,
        /// The message type whose fields are compared.
        #[arg(long, default_value = "profile.v1.Profile")]
        message: String,
        /// Print a JSON array of {purpose, jurisdiction, path, before, after}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        schema: SchemaArgs,
    },
    /// Print the JSON Schema of the policy file (for editors; checked in as
    /// schemas/policy.schema.json).
    Schema {
        /// The schema of golden test case files instead (schemas/policy-tests.schema.json).
        #[arg(long)]
        tests: bool,
    },
}

pub(crate) fn run(cmd: PolicyCommand) -> Result<ExitCode, String> {
    match cmd {
        PolicyCommand::Schema { tests } => {
            print!(
                "{}",
                if tests {
                    discreet_policy::policy_tests_json_schema()
                } else {
                    discreet_policy::policy_json_schema()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test {
            dir,
            policy,
            schema,
        } => crate::policy_test::run(&policy, &dir, &schema.load()?),
        PolicyCommand::Diff {
            old,
            new,
            message,
            json,
            schema,
        } => crate::policy_diff::run(&old, &new, &message, json, &schema.load()?),
        PolicyCommand::Check { policy, schema } => {
            let schema = schema.load()?;
            match crate::policy_file::read(&policy, &schema)? {
                Ok(p) => {
                    for w in &p.warnings {
                        eprintln!("{w}");
                    }
                    println!(
                        "{}: ok: version {}, {} purposes, {} warnings",
                        policy.display(),
                        p.version,
                        p.purposes.len(),
                        p.warnings.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(diags) => Ok(report_failure(&policy, &diags)),
            }
        }
        PolicyCommand::Explain {
            policy,
            purpose,
            grants,
            jurisdiction,
            message,
            json,
            schema,
        } => {
            let schema = schema.load()?;
            let p = match crate::policy_file::read(&policy, &schema)? {
                Ok(p) => p,
                Err(diags) => return Ok(report_failure(&policy, &diags)),
            };
            // A misspelt grant or jurisdiction would otherwise explain a call that cannot
            // happen: nothing matches it, and every field looks decided without it.
            for category in &grants {
                if let Some(unknown) = p.vocabulary.unknown_category(category) {
                    return Err(format!("--grant: {unknown}"));
                }
            }
            let jurisdiction = jurisdiction
                .as_deref()
                .map(discreet_policy::parse_jurisdiction)
                .transpose()
                .map_err(|e| format!("--jurisdiction {e}"))?;
            let grant = ConsentGrant {
                purposes: std::iter::once(purpose.clone()).collect(),
                special_categories: grants.into_iter().collect(),
            };
            let rows = p.explain(&schema, &message, &purpose, &grant, jurisdiction.as_deref())?;
            if json {
                let items: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "path": r.path,
                            "category": r.category,
                            "action": r.decision.action.to_string(),
                            "because": r.decision.because.to_string(),
                            "max_age_secs": r.max_age_secs,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&items).map_err(|e| e.to_string())?
                );
            } else {
                print_table(&p, &purpose, jurisdiction.as_deref(), &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_table(
    p: &Policy,
    purpose: &str,
    jurisdiction: Option<&str>,
    rows: &[discreet_policy::Explanation],
) {
    let basis = p.purpose(purpose).map_or("?", |x| x.legal_basis.as_str());
    println!(
        "purpose {purpose} ({basis}), policy {}, jurisdiction {}",
        p.version,
        jurisdiction.unwrap_or("(none)")
    );
    let w_path = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(4);
    let w_cat = rows
        .iter()
        .map(|r| r.category.as_deref().map_or(1, str::len))
        .max()
        .unwrap_or(8)
        .max(8);
    let w_act = rows
        .iter()
        .map(|r| r.decision.action.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:w_path$}  {:w_cat$}  {:w_act$}  WHY",
        "PATH", "CATEGORY", "ACTION"
    );
    for r in rows {
        let mut why = r.decision.because.to_string();
        if let Some(secs) = r.max_age_secs {
            why.push_str(&format!("; withheld when older than {}d", secs / 86_400));
        }
        println!(
            "{:w_path$}  {:w_cat$}  {:w_act$}  {why}",
            r.path,
            r.category.as_deref().unwrap_or("-"),
            r.decision.action.to_string()
        );
    }
    let released = rows.iter().filter(|r| r.decision.action.releases()).count();
    println!("{released} of {} fields released", rows.len());
}

/// Prints every diagnostic and the error count; exit status 1.
fn report_failure(policy: &std::path::Path, diags: &[discreet_policy::Diagnostic]) -> ExitCode {
    for d in diags {
        eprintln!("{d}");
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    eprintln!("{}: {errors} errors", policy.display());
    ExitCode::from(1)
}
