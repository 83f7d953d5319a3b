//! The claim set of consent tokens and what a verified token grants.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer};

use crate::error::ConsentError;

/// Claims as they arrive, before the rules in `verify` are applied. Unknown claims are
/// ignored; duplicate claims make the token malformed (serde refuses them).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenClaims {
    pub(crate) iss: Option<String>,
    pub(crate) aud: Option<Audience>,
    pub(crate) sub: Option<String>,
    pub(crate) jti: Option<String>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) exp: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) nbf: Option<u64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) iat: Option<u64>,
    pub(crate) purposes: Option<Vec<String>>,
    pub(crate) special_categories: Option<Vec<String>>,
    pub(crate) consent_version: Option<u64>,
    #[serde(rename = "kubernetes.io")]
    pub(crate) kubernetes: Option<KubernetesClaims>,
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

/// The `kubernetes.io` claim of a projected service-account token.
#[derive(Debug, Deserialize)]
pub(crate) struct KubernetesClaims {
    pub(crate) namespace: Option<String>,
    pub(crate) serviceaccount: Option<NamedObject>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct NamedObject {
    pub(crate) name: Option<String>,
}

/// RFC 7519 NumericDate: seconds, possibly fractional; fractions are truncated.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n = Option::<serde_json::Number>::deserialize(d)?;
    Ok(match n {
        None => None,
        Some(n) => Some(match n.as_u64() {
            Some(v) => v,
            None => match n.as_f64() {
                Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => f as u64,
                _ => return Err(serde::de::Error::custom("NumericDate out of range")),
            },
        }),
    })
}

/// A consent token that passed every check (signature, issuer, audience, time, claims).
/// Revocation is checked separately against the live [`crate::RevocationList`].
///
/// `Debug` leaves the subject out: it is a raw subject id and must not reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedConsent {
    /// The subject id as the store knows it (`sub`).
    pub subject: String,
    /// Purposes granted (`purposes`).
    pub purposes: BTreeSet<String>,
    /// Special categories granted explicitly (`special_categories`).
    pub special_categories: BTreeSet<String>,
    /// Token id (`jti`), the handle for revocation.
    pub token_id: String,
    /// `consent_version`, compared with the subject's minimum on the revocation list.
    pub consent_version: Option<u64>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
    /// `iat`, seconds since the epoch, when present.
    pub issued_at: Option<u64>,
    /// `kid` of the key that signed it.
    pub key_id: String,
}

impl std::fmt::Debug for VerifiedConsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedConsent")
            .field("subject", &"<redacted>")
            .field("purposes", &self.purposes)
            .field("special_categories", &self.special_categories)
            .field("consent_version", &self.consent_version)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a consent allows, without who or when: the view the policy engine needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentGrant {
    /// Purposes granted.
    pub purposes: BTreeSet<String>,
    /// Special categories granted explicitly.
    pub special_categories: BTreeSet<String>,
}

impl ConsentGrant {
    /// Whether `purpose` is granted (exact match; no hierarchy is implied).
    pub fn permits_purpose(&self, purpose: &str) -> bool {
        self.purposes.contains(purpose)
    }

    /// Whether the special `category` is explicitly granted.
    pub fn permits_special_category(&self, category: &str) -> bool {
        self.special_categories.contains(category)
    }

    /// `Ok` if `purpose` and every special category in `categories` are granted.
    pub fn require<'a>(
        &self,
        purpose: &str,
        categories: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), ConsentError> {
        if !self.permits_purpose(purpose) {
            return Err(ConsentError::PurposeNotGranted);
        }
        if categories
            .into_iter()
            .any(|c| !self.permits_special_category(c))
        {
            return Err(ConsentError::SpecialCategoryNotGranted);
        }
        Ok(())
    }
}

impl VerifiedConsent {
    /// The grant this consent carries.
    pub fn grant(&self) -> ConsentGrant {
        ConsentGrant {
            purposes: self.purposes.clone(),
            special_categories: self.special_categories.clone(),
        }
    }

    /// Whether the token is still within `exp` (plus `leeway_secs`) at `now`.
    pub fn is_live_at(&self, now: u64, leeway_secs: u64) -> bool {
        now < self.expires_at.saturating_add(leeway_secs)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grant_requires_purpose_and_each_category() {
        let g = ConsentGrant {
            purposes: ["personalize".to_owned()].into(),
            special_categories: ["user.health".to_owned()].into(),
        };
        assert!(g.require("personalize", ["user.health"]).is_ok());
        assert_eq!(
            g.require("marketing", []),
            Err(ConsentError::PurposeNotGranted)
        );
        assert_eq!(
            g.require("personalize", ["user.health", "user.biometric"]),
            Err(ConsentError::SpecialCategoryNotGranted)
        );
    }

    #[test]
    fn numeric_dates_accept_fractions_and_refuse_strings() {
        let c: TokenClaims = serde_json::from_str(r#"{"exp": 10.7}"#).unwrap();
        assert_eq!(c.exp, Some(10));
        assert!(serde_json::from_str::<TokenClaims>(r#"{"exp": "10"}"#).is_err());
        assert!(serde_json::from_str::<TokenClaims>(r#"{"exp": -1}"#).is_err());
    }
}
