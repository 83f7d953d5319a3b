//! Pure token verification: no I/O, no clock (the caller passes `now`), no tokio.

use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;

use crate::algorithm::SigningAlgorithm;
use crate::claims::{TokenClaims, VerifiedConsent};
use crate::error::ConsentError;
use crate::jws::check_compact;
use crate::keyset::KeySet;

/// The rules a token must meet, independent of what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRules {
    /// Required `iss`.
    pub issuer: String,
    /// `aud` must contain this.
    pub audience: String,
    /// Algorithms accepted at all; each key is further pinned to one.
    pub algorithms: Vec<SigningAlgorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: u64,
    /// Largest token accepted, in bytes of the compact form.
    pub max_token_bytes: usize,
}

/// Signature and registered-claim checks shared by consent and caller tokens.
#[derive(Debug, Clone)]
pub(crate) struct JwtCore {
    rules: TokenRules,
    /// One jsonwebtoken `Validation` per algorithm, built once.
    validations: Vec<(SigningAlgorithm, Validation)>,
}

impl JwtCore {
    pub(crate) fn new(rules: TokenRules) -> Self {
        let validations = rules
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg.to_jwt());
                // Everything explicit: jsonwebtoken's defaults require only `exp`.
                v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
                v.set_issuer(&[&rules.issuer]);
                v.set_audience(&[&rules.audience]);
                v.validate_aud = true;
                v.leeway = rules.leeway_secs;
                // jsonwebtoken reads the system clock inside `decode`; time is checked in
                // `check_times` against the `now` passed in, so the result depends only on
                // the inputs (testable, and a cache hit uses the same rule).
                v.validate_exp = false;
                v.validate_nbf = false;
                (alg, v)
            })
            .collect();
        JwtCore { rules, validations }
    }

    pub(crate) fn rules(&self) -> &TokenRules {
        &self.rules
    }

    /// Verifies the token and returns its claims and the signing key id.
    pub(crate) fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
    ) -> Result<(TokenClaims, String), ConsentError> {
        let header = check_compact(token, self.rules.max_token_bytes, &self.rules.algorithms)?;
        let key = keys.get(&header.kid).ok_or(ConsentError::UnknownKey)?;
        // The key decides the algorithm; a header that disagrees is refused.
        if key.algorithm() != header.algorithm {
            return Err(ConsentError::AlgorithmNotAllowed);
        }
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == key.algorithm())
            .map(|(_, v)| v)
            .ok_or(ConsentError::AlgorithmNotAllowed)?;
        let data = jsonwebtoken::decode::<TokenClaims>(token, key.decoding_key(), validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        self.check_times(&data.claims, now)?;
        Ok((data.claims, header.kid))
    }

    fn check_times(&self, claims: &TokenClaims, now: u64) -> Result<(), ConsentError> {
        let leeway = self.rules.leeway_secs;
        let exp = claims.exp.ok_or(ConsentError::MissingClaim("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(ConsentError::Expired);
        }
        let future = |t: Option<u64>| t.is_some_and(|t| t > now.saturating_add(leeway));
        if future(claims.nbf) || future(claims.iat) {
            return Err(ConsentError::NotYetValid);
        }
        Ok(())
    }
}

fn map_jwt_error(kind: &ErrorKind) -> ConsentError {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => ConsentError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => ConsentError::AlgorithmNotAllowed,
        ErrorKind::MissingRequiredClaim(name) => ConsentError::MissingClaim(match name.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            _ => "registered claim",
        }),
        ErrorKind::ExpiredSignature => ConsentError::Expired,
        ErrorKind::ImmatureSignature => ConsentError::NotYetValid,
        ErrorKind::InvalidIssuer => ConsentError::WrongIssuer,
        ErrorKind::InvalidAudience => ConsentError::WrongAudience,
        _ => ConsentError::Malformed,
    }
}

/// Verifies consent tokens: [`TokenRules`] plus the consent claim set (`jti` and
/// `purposes` required). Pure: keys and time are arguments.
#[derive(Debug, Clone)]
pub struct ConsentVerifier {
    core: JwtCore,
}

impl ConsentVerifier {
    /// A verifier for these rules.
    pub fn new(rules: TokenRules) -> Self {
        ConsentVerifier {
            core: JwtCore::new(rules),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &TokenRules {
        self.core.rules()
    }

    /// Verifies `token` against `keys` at `now` (seconds since the epoch). Does not check
    /// revocation: see [`crate::RevocationList::check`] and [`crate::ConsentService`].
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
    ) -> Result<VerifiedConsent, ConsentError> {
        let (claims, key_id) = self.core.verify(token, keys, now)?;
        let subject = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(ConsentError::MissingClaim("sub"))?;
        let token_id = claims
            .jti
            .filter(|s| !s.is_empty())
            .ok_or(ConsentError::MissingClaim("jti"))?;
        let purposes = claims
            .purposes
            .ok_or(ConsentError::MissingClaim("purposes"))?;
        Ok(VerifiedConsent {
            subject,
            purposes: purposes.into_iter().collect(),
            special_categories: claims
                .special_categories
                .unwrap_or_default()
                .into_iter()
                .collect(),
            token_id,
            consent_version: claims.consent_version,
            expires_at: claims.exp.unwrap_or(0),
            issued_at: claims.iat,
            key_id,
        })
    }
}
