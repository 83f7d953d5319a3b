//! A policy with rules per jurisdiction over a schema with no jurisdiction field: every
//! record would be refused for those purposes (its jurisdiction is unknown, which fails
//! closed), and `policy check` says so before production does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use discreet_policy::{ConsentGrant, Policy, PurposePlan, RecordOutcome, Refusal};
use discreet_redact::RewriteReport;
use discreet_schema::Schema;

const PROTO: &str = r#"syntax = "proto3"; package shop.v1;
import "discreet/privacy/v1/annotations.proto";
service Shop { rpc Get(Customer) returns (Customer); }
message Customer {
  string id = 1 [(discreet.privacy.v1.field) = {category: "user.unique_id", role: ROLE_SUBJECT_ID}];
  string email = 2 [(discreet.privacy.v1.field) = {category: "user.contact.email"}];
}"#;

fn schema() -> Schema {
    let dir =
        std::env::temp_dir().join(format!("discreet-jurisdiction-role-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shop.proto"), PROTO).unwrap();
    Schema::from_protos(&[dir.join("shop.proto")], &[dir]).unwrap()
}

fn policy(schema: &Schema, extra: &str) -> Policy {
    let text = format!(
        "version: t\npurposes:\n  personalize:\n    legal_basis: contract\n    callers: [\"*\"]\n    minimum_age: {{}}\n    rules:\n      - {{ category: user.contact.email, action: keep }}\n{extra}"
    );
    Policy::parse(Path::new("p.yaml"), &text, schema).unwrap()
}

#[test]
fn rules_per_jurisdiction_without_a_jurisdiction_field_are_warned_about_and_fail_closed() {
    let schema = schema();
    let plain = policy(&schema, "");
    assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);

    let per_jurisdiction = policy(
        &schema,
        "    jurisdictions:\n      EU:\n        rules:\n          - { category: user.contact.email, action: drop }\n",
    );
    let warning = per_jurisdiction
        .warnings
        .iter()
        .find(|w| w.message.contains("ROLE_JURISDICTION"))
        .expect("a warning about the missing jurisdiction field");
    assert_eq!(warning.line, 4, "at the purpose: {warning}");
    assert!(
        warning.message.contains("every record is refused"),
        "{warning}"
    );

    // What the warning announces.
    let plan = PurposePlan::compile(
        &per_jurisdiction,
        &schema,
        "shop.v1.Customer",
        "personalize",
        &ConsentGrant::default(),
        b"secret",
    )
    .unwrap();
    let record = [0x0a, 0x01, b'c'];
    let mut out = Vec::new();
    let outcome = plan
        .apply(&record, 0, &mut out, &mut RewriteReport::default())
        .unwrap();
    assert_eq!(
        outcome,
        RecordOutcome::Refused(Refusal::JurisdictionUnknown)
    );
    assert!(out.is_empty());
}
