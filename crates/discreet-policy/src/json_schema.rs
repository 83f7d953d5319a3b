//! JSON Schemas of the files people edit (the policy, golden test cases), generated from
//! the very serde types that read them, so that an editor's completion and checks can
//! never drift from what the loader accepts. `schemas/*.schema.json` are checked-in
//! copies; a test fails when they differ from what this module generates.
use schemars::{JsonSchema, generate::SchemaSettings};
use serde::Deserialize;

use crate::{document::PolicyDoc, golden::GoldenCase};

/// What `legal_basis` accepts (mirrors [`crate::LegalBasis`], whose crate module the
/// schema derive may not touch; a test keeps the two in step).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LegalBasisSchema {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

/// What `provenance` accepts (mirrors [`discreet_schema::Provenance`]).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProvenanceSchema {
    Unspecified,
    Collected,
    Observed,
    Derived,
    Inferred,
}

/// What `source` accepts (mirrors [`discreet_schema::Source`]).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SourceSchema {
    Unspecified,
    FirstParty,
    ThirdParty,
}

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use discreet_schema::{Provenance, Source};

    use crate::LegalBasis;

    /// Every value a mirror enum's schema offers is one the real enum accepts.
    #[test]
    fn mirror_enums_match_the_real_ones() {
        for v in [
            "unspecified",
            "collected",
            "observed",
            "derived",
            "inferred",
        ] {
            serde_saphyr::from_str::<super::ProvenanceSchema>(v).unwrap();
            serde_saphyr::from_str::<Provenance>(v).unwrap();
        }
        for v in ["unspecified", "first_party", "third_party"] {
            serde_saphyr::from_str::<super::SourceSchema>(v).unwrap();
            serde_saphyr::from_str::<Source>(v).unwrap();
        }
        for v in [
            "consent",
            "contract",
            "legal_obligation",
            "vital_interests",
            "public_task",
            "legitimate_interests",
        ] {
            serde_saphyr::from_str::<super::LegalBasisSchema>(v).unwrap();
            assert_eq!(serde_saphyr::from_str::<LegalBasis>(v).unwrap().as_str(), v);
        }
    }
}
