//! The `discreet policy` commands as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn discreet(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_discreet"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn the_shipped_policy_checks_clean() {
    let (ok, stdout, stderr) = discreet(&["policy", "check", "config/policy.yaml"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok: version"), "{stdout}");
    assert!(
        !stderr.contains("warning"),
        "the shipped policy should have no warnings: {stderr}"
    );
}

#[test]
fn a_broken_copy_fails_naming_the_line() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/policy.yaml"
    ))
    .unwrap();
    let broken = text.replacen(
        "user.contact.email, action: keep",
        "user.contact.emial, action: keep",
        1,
    );
    let line = broken.lines().position(|l| l.contains("emial")).unwrap() + 1;
    let path = std::env::temp_dir().join(format!("discreet-broken-{}.yaml", std::process::id()));
    std::fs::write(&path, broken).unwrap();
    let (ok, _, stderr) = discreet(&["policy", "check", path.to_str().unwrap()]);
    assert!(!ok);
    let expected = format!("{}:{line}:", path.display());
    assert!(
        stderr.contains(&expected) && stderr.contains("unknown category user.contact.emial"),
        "{stderr}"
    );
}

#[test]
fn explain_prints_each_field_with_its_reason() {
    let (ok, stdout, stderr) = discreet(&[
        "policy",
        "explain",
        "config/policy.yaml",
        "--purpose",
        "marketing.communications.email",
        "--jurisdiction",
        "DE",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("contact.email") && l.contains("keep")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("demographics.birth_date") && l.contains("for EU")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("inferences.pregnancy_likelihood") && l.contains("drop")),
        "{stdout}"
    );
}
