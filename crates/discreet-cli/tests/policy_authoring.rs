//! `discreet policy test`, `policy diff` and `schema lint`, run as the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("discreet-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_shipped_golden_suite_passes() {
    let o = discreet(&["policy", "test", "config/policy-tests"]);
    let out = stdout(&o);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains(" 0 failed"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    // Every purpose of the shipped policy has at least one case.
    for purpose in [
        "personalize",
        "marketing.communications.email",
        "essential.fraud_detection",
        "essential.service.operations.support",
        "analytics.reporting",
    ] {
        let covered = std::fs::read_dir(repo().join("config/policy-tests"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains(&format!("purpose: {purpose}\n"))
            });
        assert!(covered, "no golden case for {purpose}");
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_diff_naming_the_field() {
    let dir = scratch("golden-wrong");
    let case = "- name: phone_is_not_kept_for_fraud
  record: { persona: adult_de }
  caller: risk/scorer
  purpose: essential.fraud_detection
  now: 2026-11-18T11:06:40Z
  expect:
    released:
      card_last4: kept
      contact.address.country: kept
      contact.address.postal_code: truncated
      contact.email: masked
      contact.phone: kept
      inferences.updated_at.seconds: kept
      ip_address: kept
      jurisdiction: kept
      last_location.latitude: generalised
      last_location.longitude: generalised
      lifetime_value_cents: generalised
      orders.currency: kept
      orders.order_id: kept
      orders.total_cents: kept
      subject_id: kept
      updated_at.seconds: kept
";
    std::fs::write(dir.join("wrong.yaml"), case).unwrap();
    let o = discreet(&["policy", "test", dir.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("test wrong::phone_is_not_kept_for_fraud ... FAILED"),
        "{out}"
    );
    assert!(out.contains("- contact.phone: kept"), "{out}");
    assert!(out.contains("+ contact.phone: masked"), "{out}");
    // Only the wrong field is named.
    assert_eq!(out.matches("\n    - ").count(), 1, "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn a_wrong_refusal_reason_and_an_unknown_persona_are_reported() {
    let dir = scratch("golden-refusal");
    let case = "- name: minor_for_marketing
  record: { persona: minor_de }
  caller: marketing/mailer
  purpose: marketing.communications.email
  grant: { purposes: [marketing.communications.email] }
  now: 1795000000
  expect:
    refused: caller
";
    std::fs::write(dir.join("refusal.yaml"), case).unwrap();
    let out = stdout(&discreet(&["policy", "test", dir.to_str().unwrap()]));
    assert!(out.contains("- refused: caller"), "{out}");
    assert!(out.contains("+ refused: the subject is younger"), "{out}");

    std::fs::write(dir.join("refusal.yaml"), case.replace("minor_de", "nobody")).unwrap();
    let o = discreet(&["policy", "test", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("refusal.yaml:1:") && err.contains("unknown persona"),
        "{err}"
    );
}

#[test]
fn policy_diff_prints_exactly_the_one_changed_rule() {
    let dir = scratch("diff");
    let original = std::fs::read_to_string(repo().join("config/policy.yaml")).unwrap();
    let rule = "- { category: user.contact.phone_number, action: { mask: { show_last: 4 } } }";
    assert!(original.contains(rule));
    let changed = original.replace(
        rule,
        "- { category: user.contact.phone_number, action: drop }",
    );
    std::fs::write(dir.join("policy.yaml"), changed).unwrap();
    let new = dir.join("policy.yaml");
    let o = discreet(&[
        "policy",
        "diff",
        "config/policy.yaml",
        new.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "essential.fraud_detection: contact.phone  mask(last 4) -> drop\n"
    );
    let o = discreet(&[
        "policy",
        "diff",
        "config/policy.yaml",
        new.to_str().unwrap(),
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{
            "purpose": "essential.fraud_detection",
            "jurisdiction": null,
            "path": "contact.phone",
            "before": "mask(last 4)",
            "after": "drop",
        }])
    );
    // No change: one line saying so (not silence, which reads as "nothing ran"), success.
    let o = discreet(&["policy", "diff", "config/policy.yaml", "config/policy.yaml"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("no changes: "), "{}", stdout(&o));
    // A policy that does not load is exit status 2.
    let o = discreet(&[
        "policy",
        "diff",
        "config/policy.yaml",
        "no/such/policy.yaml",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn policy_diff_marks_jurisdiction_variants_and_purposes() {
    let dir = scratch("diff-jurisdiction");
    let original = std::fs::read_to_string(repo().join("config/policy.yaml")).unwrap();
    let changed = original
        .replace(
            "          - { category: user.demographic.date_of_birth, action: drop }",
            "          - { category: user.demographic.date_of_birth, action: { generalize: age_band } }",
        )
        .replace("  analytics.reporting:\n", "  analytics.reporting.system:\n");
    std::fs::write(dir.join("policy.yaml"), changed).unwrap();
    let new = dir.join("policy.yaml");
    let o = discreet(&[
        "policy",
        "diff",
        "config/policy.yaml",
        new.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("- purpose analytics.reporting\n"), "{out}");
    assert!(
        out.contains("+ purpose analytics.reporting.system\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "marketing.communications.email: demographics.birth_date  drop -> generalize(age band) [EU]\n"
        ),
        "{out}"
    );
}

fn reference_proto_copy(name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let dir = scratch(name);
    let text = std::fs::read_to_string(repo().join("proto/profile/v1/profile.proto")).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(dir.join("profile.proto"), edited).unwrap();
    dir.join("profile.proto")
}

#[test]
fn schema_lint_passes_on_the_reference_schema() {
    let o = discreet(&["schema", "lint"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("schema lint: ok"));
    let proto = repo().join("proto/profile/v1/profile.proto");
    let o = discreet(&["schema", "lint", "--proto", proto.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn schema_lint_names_an_unlabelled_field() {
    let proto = reference_proto_copy("lint-unlabelled", |t| {
        t.replace(
            "string username = 2 [(discreet.privacy.v1.field) = {category: \"user.account.username\"}];",
            "string username = 2;",
        )
    });
    let o = discreet(&["schema", "lint", "--proto", proto.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("profile.v1.Profile.username: no category"),
        "{out}"
    );
    assert!(out.contains("schema lint: 1 problem\n"), "{out}");
}

#[test]
fn schema_lint_names_unknown_special_and_misplaced_role_labels() {
    let proto = reference_proto_copy("lint-labels", |t| {
        t.replace(
            "{category: \"user.account.username\"}",
            "{category: \"user.acount.username\"}",
        )
        .replace(
            "{category: \"user.contact.email\"}",
            "{category: \"user.contact.email\", sensitivity: SENSITIVITY_SPECIAL}",
        )
    });
    let out = stdout(&discreet(&[
        "schema",
        "lint",
        "--proto",
        proto.to_str().unwrap(),
    ]));
    assert!(
        out.contains("profile.v1.Profile.username: unknown category user.acount.username"),
        "{out}"
    );
    assert!(
        out.contains("profile.v1.Contact.email: marked SENSITIVITY_SPECIAL"),
        "{out}"
    );
    let proto = reference_proto_copy("lint-role", |t| {
        t.replace(
            "uint32 loyalty_points = 17 [(discreet.privacy.v1.field) = {category: \"user.account\"",
            "uint32 loyalty_points = 17 [(discreet.privacy.v1.field) = {role: ROLE_SUBJECT_ID, category: \"user.account\"",
        )
    });
    let o = discreet(&["schema", "lint", "--proto", proto.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("profile.v1.Profile.loyalty_points"), "{out}");
}

/// A golden case's grant opens special categories only for the purposes it names, as a
/// consent token does at the gateway: the shipped case releasing ethnicity to analytics
/// with a grant that does not name analytics.reporting fails.
#[test]
fn a_grant_that_does_not_name_the_purpose_opens_no_special_category() {
    let dir = scratch("golden-grant");
    let shipped =
        std::fs::read_to_string(repo().join("config/policy-tests/analytics.yaml")).unwrap();
    let named = "grant: { purposes: [analytics.reporting], special_categories:";
    assert!(shipped.contains(named));
    let unnamed = shipped.replace(named, "grant: { special_categories:");
    std::fs::write(dir.join("analytics.yaml"), unnamed).unwrap();
    let o = discreet(&["policy", "test", dir.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("declared_ethnicity_released_with_special_consent ... FAILED"),
        "{out}"
    );
    assert!(out.contains("- demographics.ethnicity: kept"), "{out}");
}
