//! The policy file as written: serde types with source locations. Validation turns this
//! into a [`crate::Policy`].
use std::collections::BTreeMap;

use discreet_schema::{Provenance, Source};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    rename = "DiscreetPolicy",
    description = "A Discreet policy: purposes, who may declare them, and what each may see."
)]
pub(crate) struct PolicyDoc {
    /// Shown in spans and trailers; change it with every edit.
    #[schemars(with = "String")]
    pub(crate) version: Spanned<String>,
    #[serde(default)]
    pub(crate) vocabulary: VocabularyDoc,
    #[serde(default)]
    pub(crate) defaults: DefaultsDoc,
    #[schemars(with = "BTreeMap<String, PurposeDoc>")]
    pub(crate) purposes: BTreeMap<String, Spanned<PurposeDoc>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VocabularyDoc {
    #[schemars(with = "Vec<EntryDoc>")]
    pub(crate) categories: Vec<Spanned<EntryDoc>>,
    #[schemars(with = "Vec<EntryDoc>")]
    pub(crate) purposes: Vec<Spanned<EntryDoc>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntryDoc {
    pub(crate) key: String,
    #[serde(default)]
    pub(crate) parent: Option<String>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) special: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DefaultsDoc {
    /// Minimum subject age by jurisdiction (`default` for everywhere else).
    #[schemars(with = "BTreeMap<String, u32>")]
    pub(crate) minimum_age: BTreeMap<String, Spanned<u32>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurposeDoc {
    #[serde(default)]
    pub(crate) description: String,
    #[schemars(with = "crate::LegalBasis")]
    pub(crate) legal_basis: Spanned<crate::LegalBasis>,
    #[schemars(with = "Vec<String>")]
    pub(crate) callers: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub(crate) special_categories: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) deny: DenyDoc,
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, u32>>")]
    pub(crate) minimum_age: Option<BTreeMap<String, Spanned<u32>>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub(crate) max_data_age: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<RuleDoc>")]
    pub(crate) rules: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, JurisdictionDoc>")]
    pub(crate) jurisdictions: BTreeMap<String, Spanned<JurisdictionDoc>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DenyDoc {
    /// Fields with these provenances are never released for the purpose.
    pub(crate) provenance: Vec<Provenance>,
    /// Fields from these sources are never released for the purpose.
    pub(crate) source: Vec<Source>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JurisdictionDoc {
    #[serde(default)]
    #[schemars(with = "Vec<RuleDoc>")]
    pub(crate) rules: Vec<Spanned<RuleDoc>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDoc {
    pub(crate) category: String,
    pub(crate) action: ActionDoc,
    /// Only fields with one of these provenances.
    #[serde(default)]
    pub(crate) provenance: Vec<Provenance>,
    /// Only fields from one of these sources.
    #[serde(default)]
    pub(crate) source: Vec<Source>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionDoc {
    Keep,
    Drop,
    Pseudonymize,
    Mask(MaskDoc),
    Generalize(GeneralizeDoc),
    Truncate(u32),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MaskDoc {
    Email,
    ShowLast(u32),
    Fixed(String),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GeneralizeDoc {
    Year,
    AgeBand,
    City,
    Region,
    Country,
    Bucket(u64),
}
