//! Mistakes in what a policy author types, run as the binary: each is refused once, at its
//! file and line, with what is expected; and a command with nothing to report says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn discreet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_discreet"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A copy of a shipped case file with `from` replaced by `to`, in a fresh directory.
fn edited_case_file(name: &str, shipped: &str, from: &str, to: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("discreet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let original =
        std::fs::read_to_string(repo().join("config/policy-tests").join(shipped)).unwrap();
    assert!(original.contains(from), "{from:?} not in {shipped}");
    let path = dir.join(shipped);
    std::fs::write(&path, original.replacen(from, to, 1)).unwrap();
    path
}

#[test]
fn a_misspelt_key_in_a_case_file_is_one_error_at_its_line_and_column() {
    let file = edited_case_file("case-key", "support.yaml", "  expect:", "  expct:");
    let o = discreet(&["policy", "test", file.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .position(|l| l.contains("expct:"))
        .unwrap()
        + 1;
    assert!(
        err.starts_with(&format!(
            "{}:{line}:3: error: unknown field `expct`",
            file.display()
        )),
        "{err}"
    );
    assert_eq!(err.matches("error").count(), 1, "{err}");
    assert!(!err.contains("column"), "{err}");
}

#[test]
fn an_expected_path_the_message_does_not_have_is_an_error_not_a_diff() {
    let file = edited_case_file(
        "case-path",
        "fraud_detection.yaml",
        "      contact.email:",
        "      contact.emial:",
    );
    let o = discreet(&["policy", "test", file.to_str().unwrap()]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    let line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .position(|l| l.contains("contact.emial"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("{}:{line}:", file.display()))
            && err.contains(
                "expected path contact.emial: no such field in profile.v1.Profile; did you mean contact.email?"
            ),
        "{err}"
    );
    assert!(!out.contains("(not released)"), "{out}");
}

#[test]
fn explain_refuses_a_misspelt_grant_and_an_invalid_jurisdiction() {
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "explain",
            "config/policy.yaml",
            "--purpose",
            "analytics.reporting",
        ];
        args.extend_from_slice(extra);
        discreet(&args)
    };
    let o = explain(&["--grant", "user.demographic.race_ethnicty"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown category user.demographic.race_ethnicty")
            && err.contains("did you mean user.demographic.race_ethnicity?"),
        "{err}"
    );

    let o = explain(&["--jurisdiction", "France"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"France\" is not a jurisdiction code")
            && err.contains("an ISO 3166-1 alpha-2 code like FR, a subdivision like US-CA"),
        "{err}"
    );

    // Lower case is accepted, as the code it spells.
    let o = explain(&["--jurisdiction", "fr"]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        out.lines().next().unwrap().ends_with("jurisdiction FR"),
        "{out}"
    );
}

#[test]
fn diff_of_identical_policies_says_so_and_json_stays_an_empty_array() {
    let same = ["policy", "diff", "config/policy.yaml", "config/policy.yaml"];
    let o = discreet(&same);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        out,
        "no changes: config/policy.yaml and config/policy.yaml make the same decisions for every field of profile.v1.Profile\n"
    );
    let o = discreet(&[same.as_slice(), &["--json"]].concat());
    assert!(o.status.success(), "{}", text(&o.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(parsed, serde_json::json!([]));
}
