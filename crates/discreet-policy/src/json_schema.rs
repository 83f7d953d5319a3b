//! JSON Schemas of the files people edit (the policy, golden test cases), generated from
//! the very serde types that read them, so that an editor's completion and checks can
//! never drift from what the loader accepts. `schemas/*.schema.json` are checked-in
//! copies; a test fails when they differ from what this module generates. Enums such as
//! `LegalBasis` and `Provenance` derive their schema where they are defined, so no copy of
//! them exists to drift.
use schemars::{JsonSchema, generate::SchemaSettings};

use crate::{document::PolicyDoc, golden::GoldenCase};

/// A file of golden cases: a list of cases.
#[derive(Debug, JsonSchema)]
#[schemars(
    rename = "DiscreetPolicyTests",
    description = "Golden test cases for `discreet policy test`."
)]
#[allow(dead_code)] // only its schema is used
struct GoldenFileSchema(Vec<GoldenCase>);

fn render(schema: &schemars::Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// The JSON Schema (draft 2020-12) of a policy file, pretty-printed with a final newline.
#[must_use]
pub fn policy_json_schema() -> String {
    let generator = SchemaSettings::draft2020_12().into_generator();
    render(&generator.into_root_schema_for::<PolicyDoc>())
}

/// The JSON Schema (draft 2020-12) of a golden test case file.
#[must_use]
pub fn policy_tests_json_schema() -> String {
    let generator = SchemaSettings::draft2020_12().into_generator();
    render(&generator.into_root_schema_for::<GoldenFileSchema>())
}
