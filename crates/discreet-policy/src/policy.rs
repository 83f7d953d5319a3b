//! The validated policy: plain data, ready to decide and compile.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use discreet_schema::{Provenance, Schema, Source};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::{Action, Diagnostic, FieldDecision, Vocabulary};

/// The lawful basis a purpose relies on (GDPR Art. 6(1)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// The subject agreed: a consent token naming the purpose is required for every read.
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    /// The name used in spans and reports.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterests => "vital_interests",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterests => "legitimate_interests",
        }
    }
}

/// One rule of a purpose, as validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Canonical category key (deprecated aliases already replaced).
    pub category: String,
    /// Only fields with one of these provenances (empty: any).
    pub provenance: Vec<Provenance>,
    /// Only fields from one of these sources (empty: any).
    pub source: Vec<Source>,
    pub action: Action,
    /// Where the rule is written.
    pub line: u64,
    /// The jurisdiction override the rule belongs to, if any.
    pub jurisdiction: Option<String>,
}

impl Rule {
    /// How specific the rule is: category depth first, then the number of qualifiers.
    pub(crate) fn specificity(&self) -> (usize, usize) {
        (
            self.category.split('.').count(),
            usize::from(!self.provenance.is_empty()) + usize::from(!self.source.is_empty()),
        )
    }
}

/// One purpose, as validated.
#[derive(Clone, Debug)]
pub struct Purpose {
    pub name: String,
    pub description: String,
    pub legal_basis: LegalBasis,
    /// Callers (`namespace/serviceaccount`) allowed to declare it; `*` allows any.
    pub callers: BTreeSet<String>,
    /// Special categories the purpose may ever receive (still only with explicit consent).
    pub special_categories: Vec<String>,
    pub deny_provenance: Vec<Provenance>,
    pub deny_source: Vec<Source>,
    /// Minimum subject age by jurisdiction code; `default` applies elsewhere.
    pub minimum_age: BTreeMap<String, u32>,
    /// Maximum data age in seconds by category.
    pub max_data_age: Vec<(String, u64)>,
    pub rules: Vec<Rule>,
    /// Override rules by jurisdiction code.
    pub jurisdictions: BTreeMap<String, Vec<Rule>>,
    pub line: u64,
}

impl Purpose {
    /// Whether a record's jurisdiction changes what this purpose releases: it has
    /// override rules, or a minimum age of its own for some jurisdiction. Then a record
    /// whose jurisdiction is unknown is refused (see `PurposePlan::apply`).
    #[must_use]
    pub fn depends_on_jurisdiction(&self) -> bool {
        !self.jurisdictions.is_empty() || self.minimum_age.keys().any(|k| k != "default")
    }
}

/// What the data subject granted, from verified consent tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsentGrant {
    pub purposes: BTreeSet<String>,
    pub special_categories: BTreeSet<String>,
}

impl ConsentGrant {
    /// Whether the grant names `purpose` (or a purpose above it: `marketing` covers
    /// `marketing.communications.email`).
    #[must_use]
    pub fn allows_purpose(&self, purpose: &str) -> bool {
        crate::vocabulary::ancestors_or_self(purpose).any(|p| self.purposes.contains(p))
    }
}

/// A jurisdiction as a person types it on a command line (`fr`, `us-ca`), upper-cased and
/// checked as a policy's own codes are; the error says what is expected.
pub fn parse_jurisdiction(text: &str) -> Result<String, String> {
    match crate::normalize_code(text) {
        Some(code) => Ok(code.into_owned()),
        None => Err(format!(
            "{text:?} is not a jurisdiction code: expected an ISO 3166-1 alpha-2 code like FR, \
             a subdivision like US-CA, or EU/EEA"
        )),
    }
}

/// Why a call may not use a purpose at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenial {
    #[error("purpose {0:?} is not defined by the policy")]
    UnknownPurpose(String),
    #[error("caller {caller:?} may not declare purpose {purpose:?}")]
    CallerNotAllowed { caller: String, purpose: String },
    #[error("the subject has not consented to purpose {0:?}")]
    NoConsent(String),
}

/// One line of an explanation: a field path and what the purpose gets of it.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub path: String,
    pub category: Option<String>,
    pub decision: FieldDecision,
    pub max_age_secs: Option<u64>,
}

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub version: String,
    pub vocabulary: Vocabulary,
    pub purposes: BTreeMap<String, Purpose>,
    /// Warnings found while loading (errors stop loading).
    pub warnings: Vec<Diagnostic>,
}

impl Policy {
    /// Parses and validates a policy file against the vocabulary and the schema. On
    /// failure every error found is returned, each naming the file and line.
    pub fn parse(file: &Path, text: &str, schema: &Schema) -> Result<Policy, Vec<Diagnostic>> {
        crate::validate::load(file, text, schema)
    }

    /// Checks that `caller` may declare `purpose`, and that a consent-based purpose is
    /// granted. Does not look at records.
    pub fn check_access(
        &self,
        caller: &str,
        purpose: &str,
        grant: Option<&ConsentGrant>,
    ) -> Result<&Purpose, AccessDenial> {
        let p = self.check_caller(caller, purpose)?;
        if p.legal_basis == LegalBasis::Consent && !grant.is_some_and(|g| g.allows_purpose(purpose))
        {
            return Err(AccessDenial::NoConsent(purpose.to_owned()));
        }
        Ok(p)
    }

    /// Whether some purpose names `caller` (a wildcard names no one): callers the policy
    /// does not know are counted as `other` in metrics, so they cannot grow the series.
    #[must_use]
    pub fn names_caller(&self, caller: &str) -> bool {
        caller != "*" && self.purposes.values().any(|p| p.callers.contains(caller))
    }

    /// Checks that `purpose` exists and `caller` may declare it; consent is checked per
    /// subject afterwards (a batch names several subjects, each with their own grant).
    pub fn check_caller(&self, caller: &str, purpose: &str) -> Result<&Purpose, AccessDenial> {
        let p = self
            .purposes
            .get(purpose)
            .ok_or_else(|| AccessDenial::UnknownPurpose(purpose.to_owned()))?;
        if !p.callers.contains("*") && !p.callers.contains(caller) {
            return Err(AccessDenial::CallerNotAllowed {
                caller: caller.to_owned(),
                purpose: purpose.to_owned(),
            });
        }
        Ok(p)
    }

    /// The purpose by name.
    #[must_use]
    pub fn purpose(&self, name: &str) -> Option<&Purpose> {
        self.purposes.get(name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_typed_jurisdiction_is_upper_cased_or_refused_with_what_is_expected() {
        assert_eq!(parse_jurisdiction("fr"), Ok("FR".to_owned()));
        assert_eq!(parse_jurisdiction("us-ca"), Ok("US-CA".to_owned()));
        let refused = parse_jurisdiction("France").unwrap_err();
        assert!(
            refused.contains("\"France\"") && refused.contains("ISO 3166-1 alpha-2 code like FR"),
            "{refused}"
        );
    }
}
