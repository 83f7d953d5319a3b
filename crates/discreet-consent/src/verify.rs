//! Pure token verification: no I/O, no clock (the caller passes `now`), no tokio.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

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
}

impl JwtCore {
    pub(crate) fn new(rules: TokenRules) -> Self {
        JwtCore { rules }
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
        // The signature first (ring, see `signature.rs`): nothing of an unsigned payload is
        // parsed beyond the header.
        key.verify_signature(token)?;
        let claims = decode_claims(token)?;
        self.check_registered(&claims)?;
        self.check_times(&claims, now)?;
        Ok((claims, header.kid))
    }

    /// `iss`, `aud` and `sub` (and `exp`, in `check_times`) are required; `iss` must be the
    /// configured issuer and `aud` must name this gateway.
    fn check_registered(&self, claims: &TokenClaims) -> Result<(), ConsentError> {
        if claims.exp.is_none() {
            return Err(ConsentError::MissingClaim("exp"));
        }
        let issuer = claims
            .iss
            .as_deref()
            .ok_or(ConsentError::MissingClaim("iss"))?;
        let audience = claims
            .aud
            .as_ref()
            .ok_or(ConsentError::MissingClaim("aud"))?;
        if claims.sub.is_none() {
            return Err(ConsentError::MissingClaim("sub"));
        }
        if issuer != self.rules.issuer {
            return Err(ConsentError::WrongIssuer);
        }
        if !audience.contains(&self.rules.audience) {
            return Err(ConsentError::WrongAudience);
        }
        Ok(())
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

/// The payload of a compact JWS whose signature has been checked, as claims.
fn decode_claims(token: &str) -> Result<TokenClaims, ConsentError> {
    let payload = token.split('.').nth(1).ok_or(ConsentError::Malformed)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ConsentError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| ConsentError::Malformed)
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
