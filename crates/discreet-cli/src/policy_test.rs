//! `discreet policy test`: runs golden cases against a policy and reports like a test
//! runner.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use discreet_policy::{GoldenFile, run_case};
use discreet_schema::Schema;

use crate::personas;

/// The message type the personas are.
const PERSONA_MESSAGE: &str = "profile.v1.Profile";

pub(crate) fn run(policy_path: &Path, dir: &Path, schema: &Schema) -> Result<ExitCode, String> {
    let policy = crate::policy_file::load(policy_path, schema)?;
    let files = case_files(dir)?;
    if files.is_empty() {
        return Err(format!("{}: no .yaml case files", dir.display()));
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let suite = GoldenFile::parse(file, &text)?;
        let stem = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        for case in &suite.cases {
            let record = personas::encoded(&case.record.persona).ok_or_else(|| {
                format!(
                    "{}:{}: case {}: unknown persona {:?} (known: {})",
                    file.display(),
                    case.line,
                    case.name,
                    case.record.persona,
                    personas::PERSONAS.join(", ")
                )
            })?;
            let result =
                run_case(&policy, schema, PERSONA_MESSAGE, case, &record).map_err(|e| {
                    format!("{}:{}: case {}: {e}", file.display(), case.line, case.name)
                })?;
            if result.passed() {
                passed += 1;
                println!("test {stem}::{} ... ok", result.name);
            } else {
                failed += 1;
                println!("test {stem}::{} ... FAILED", result.name);
                println!("    at {}:{}", file.display(), result.line);
                for line in &result.differences {
                    println!("    {line}");
                }
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The `.yaml`/`.yml` files in `dir`, sorted, or `dir` itself if it is a file.
fn case_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if dir.is_file() {
        return Ok(vec![dir.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}
