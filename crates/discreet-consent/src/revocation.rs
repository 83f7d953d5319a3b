//! The revocation list: revoked token ids and per-subject minimum consent versions.
//!
//! ```json
//! { "version": "2026-11-23T10:00:00Z#42",
//!   "revoked_jti": ["4f1c…", "9a0b…"],
//!   "min_consent_version": { "subject-123": 3 } }
//! ```
//! Unknown fields are refused: a misspelt field would otherwise silently revoke nothing.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::claims::VerifiedConsent;
use crate::error::ConsentError;

/// A parsed revocation document. Immutable; a new document replaces it whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// Opaque version label from the source, for logs and metrics.
    #[serde(default)]
    pub version: Option<String>,
    /// Token ids (`jti`) that are revoked.
    #[serde(default)]
    pub revoked_jti: HashSet<String>,
    /// Subject id → lowest `consent_version` still valid.
    #[serde(default)]
    pub min_consent_version: HashMap<String, u64>,
}

/// The revocation document is not valid JSON of the documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("revocation document invalid (expected revoked_jti and min_consent_version)")]
pub struct RevocationParseError;

impl RevocationList {
    /// Parses a revocation document.
    pub fn from_json(document: &[u8]) -> Result<Self, RevocationParseError> {
        serde_json::from_slice(document).map_err(|_| RevocationParseError)
    }

    /// `Err(Revoked)` if the token id is revoked; `Err(Outdated)` if the subject has a
    /// minimum version and the token's is lower or absent.
    pub fn check(&self, consent: &VerifiedConsent) -> Result<(), ConsentError> {
        if self.revoked_jti.contains(&consent.token_id) {
            return Err(ConsentError::Revoked);
        }
        if let Some(&min) = self.min_consent_version.get(&consent.subject)
            && consent.consent_version.is_none_or(|v| v < min)
        {
            return Err(ConsentError::Outdated);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn consent(jti: &str, version: Option<u64>) -> VerifiedConsent {
        VerifiedConsent {
            subject: "s1".into(),
            purposes: Default::default(),
            special_categories: Default::default(),
            token_id: jti.into(),
            consent_version: version,
            expires_at: 10,
            issued_at: None,
            key_id: "k".into(),
        }
    }

    #[test]
    fn revoked_and_outdated() {
        let list = RevocationList::from_json(
            br#"{"revoked_jti": ["bad"], "min_consent_version": {"s1": 3}}"#,
        )
        .unwrap();
        assert_eq!(
            list.check(&consent("bad", Some(9))),
            Err(ConsentError::Revoked)
        );
        assert_eq!(
            list.check(&consent("ok", Some(2))),
            Err(ConsentError::Outdated)
        );
        assert_eq!(
            list.check(&consent("ok", None)),
            Err(ConsentError::Outdated)
        );
        assert_eq!(list.check(&consent("ok", Some(3))), Ok(()));
        assert_eq!(
            RevocationList::default().check(&consent("ok", None)),
            Ok(())
        );
    }

    #[test]
    fn misspelt_fields_are_refused() {
        assert!(RevocationList::from_json(br#"{"revoked_jtis": ["x"]}"#).is_err());
        assert!(RevocationList::from_json(b"{}").is_ok());
    }
}
