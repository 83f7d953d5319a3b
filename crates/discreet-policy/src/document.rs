//! The policy file as written: serde types with source locations. Validation turns this
//! into a [`crate::Policy`].
use std::collections::BTreeMap;

use discreet_schema::{Provenance, Source};
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyDoc {
    /// Shown in spans and trailers; change it with every edit.
    pub(crate) version: Spanned<String>,
    #[serde(default)]
    pub(crate) vocabulary: VocabularyDoc,
    #[serde(default)]
    pub(crate) defaults: DefaultsDoc,
    pub(crate) purposes: BTreeMap<String, Spanned<PurposeDoc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VocabularyDoc {
    pub(crate) categories: Vec<Spanned<EntryDoc>>,
    pub(crate) purposes: Vec<Spanned<EntryDoc>>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DefaultsDoc {
    /// Minimum subject age by jurisdiction (`default` for everywhere else).
    pub(crate) minimum_age: BTreeMap<String, Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurposeDoc {
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) legal_basis: Spanned<crate::LegalBasis>,
    pub(crate) callers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) special_categories: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) deny: DenyDoc,
    #[serde(default)]
    pub(crate) minimum_age: Option<BTreeMap<String, Spanned<u32>>>,
    #[serde(default)]
    pub(crate) max_data_age: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(crate) rules: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    pub(crate) jurisdictions: BTreeMap<String, Spanned<JurisdictionDoc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DenyDoc {
    /// Fields with these provenances are never released for the purpose.
    pub(crate) provenance: Vec<Provenance>,
    /// Fields from these sources are never released for the purpose.
    pub(crate) source: Vec<Source>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JurisdictionDoc {
    #[serde(default)]
    pub(crate) rules: Vec<Spanned<RuleDoc>>,
}

#[derive(Debug, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionDoc {
    Keep,
    Drop,
    Pseudonymize,
    Mask(MaskDoc),
    Generalize(GeneralizeDoc),
    Truncate(u32),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MaskDoc {
    Email,
    ShowLast(u32),
    Fixed(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GeneralizeDoc {
    Year,
    AgeBand,
    City,
    Region,
    Country,
    Bucket(u64),
}
