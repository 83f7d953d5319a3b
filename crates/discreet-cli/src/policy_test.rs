//! `discreet policy test`: runs golden cases against a policy and reports like a test
//! runner.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use discreet_policy::{Diagnostic, GoldenCase, GoldenFile, Severity, run_case};
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
    // Every file is read and checked before any case runs: a case file that is wrong is
    // reported as such, not as a failing policy.
    let (mut suites, mut problems) = (Vec::new(), Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        match GoldenFile::parse(file, &text) {
            Ok(suite) => {
                problems.extend(suite.unknown_paths(schema, PERSONA_MESSAGE)?);
                suites.push(suite);
            }
            Err(d) => problems.push(d),
        }
    }
    if !problems.is_empty() {
        return Ok(stop(&problems));
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for suite in &suites {
        let file = &suite.file;
        let stem = file.file_stem().map_or_else(
            || file.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        for case in &suite.cases {
            let Some(record) = personas::encoded(&case.record.persona) else {
                return Ok(stop(&[at(
                    file,
                    case,
                    format!(
                        "unknown persona {:?} (known: {})",
                        case.record.persona,
                        personas::PERSONAS.join(", ")
                    ),
                )]));
            };
            let result = match run_case(&policy, schema, PERSONA_MESSAGE, case, &record) {
                Ok(result) => result,
                Err(e) => return Ok(stop(&[at(file, case, e)])),
            };
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

/// An error about one case, at the line it starts on.
fn at(file: &Path, case: &GoldenCase, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_owned(),
        line: case.line,
        column: case.column,
        message: format!("case {}: {message}", case.name),
    }
}

/// Prints each problem as `file:line:col: error: ...`, as `policy check` does; exit status
/// 2, as for any input that does not load.
fn stop(problems: &[Diagnostic]) -> ExitCode {
    for d in problems {
        eprintln!("{d}");
    }
    ExitCode::from(2)
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
