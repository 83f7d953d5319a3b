//! Reading a policy file: one place for every command that takes one.
use std::path::Path;

use discreet_policy::{Diagnostic, Policy};
use discreet_schema::Schema;

/// The policy, or every diagnostic that stopped it loading. `Err` only when the file
/// cannot be read at all.
pub(crate) fn read(
    path: &Path,
    schema: &Schema,
) -> Result<Result<Policy, Vec<Diagnostic>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Policy::parse(path, &text, schema))
}

/// The policy, with a load failure as one error (every diagnostic on its own line), for
/// commands that exit with status 2 when their input does not load.
pub(crate) fn load(path: &Path, schema: &Schema) -> Result<Policy, String> {
    read(path, schema)?.map_err(|diags| {
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}
