//! `discreet policy diff`: the field-level effect of a policy change.
use std::{path::Path, process::ExitCode};

use discreet_policy::{PolicyChange, diff_policies};
use discreet_schema::Schema;

pub(crate) fn run(
    old: &Path,
    new: &Path,
    message: &str,
    json: bool,
    schema: &Schema,
) -> Result<ExitCode, String> {
    let old_policy = crate::policy_file::load(old, schema)?;
    let new_policy = crate::policy_file::load(new, schema)?;
    let changes = diff_policies(&old_policy, &new_policy, schema, message)?;
    if json {
        let items: Vec<_> = changes.iter().map(to_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&items).map_err(|e| e.to_string())?
        );
    } else if changes.is_empty() {
        // Silence would read as "nothing ran"; say what was compared. (JSON prints `[]`.)
        println!(
            "no changes: {} and {} make the same decisions for every field of {message}",
            old.display(),
            new.display()
        );
    } else {
        for change in &changes {
            println!("{}", line(change));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn line(change: &PolicyChange) -> String {
    match change {
        PolicyChange::PurposeAdded(p) => format!("+ purpose {p}"),
        PolicyChange::PurposeRemoved(p) => format!("- purpose {p}"),
        PolicyChange::Decision {
            purpose,
            jurisdiction,
            path,
            before,
            after,
        } => {
            let scope = jurisdiction
                .as_ref()
                .map_or_else(String::new, |j| format!(" [{j}]"));
            format!("{purpose}: {path}  {before} -> {after}{scope}")
        }
    }
}

fn to_json(change: &PolicyChange) -> serde_json::Value {
    match change {
        PolicyChange::PurposeAdded(p) => serde_json::json!({
            "purpose": p, "jurisdiction": null, "path": null, "before": null, "after": "added",
        }),
        PolicyChange::PurposeRemoved(p) => serde_json::json!({
            "purpose": p, "jurisdiction": null, "path": null, "before": "present", "after": null,
        }),
        PolicyChange::Decision {
            purpose,
            jurisdiction,
            path,
            before,
            after,
        } => serde_json::json!({
            "purpose": purpose,
            "jurisdiction": jurisdiction,
            "path": path,
            "before": before,
            "after": after,
        }),
    }
}
