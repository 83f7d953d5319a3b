//! The one error type for consent and caller tokens, and its gRPC status mapping.
//!
//! Display strings tell the caller what to fix. They never contain the token, a claim value
//! or a subject id: error messages end up in gRPC statuses and logs.

/// The gRPC status a [`ConsentError`] maps to.
///
/// A local enum so that this crate does not depend on tonic; the gateway converts it to
/// `tonic::Code` in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrpcCode {
    /// The token cannot be trusted: it is malformed, unsigned, wrongly signed, expired, for
    /// someone else, or it cannot be checked right now.
    Unauthenticated,
    /// The token is genuine but does not allow this access: revoked, outdated, missing, or
    /// it does not grant the purpose or category.
    PermissionDenied,
}

/// Why a consent (or caller) token was refused. Every variant means *no grant*.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsentError {
    /// Larger than the configured `max_token_bytes`; refused before any decoding.
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS (three base64url parts with JSON header and claims), or a claim
    /// has the wrong type.
    #[error("token malformed: not a compact JWS with JSON header and claims")]
    Malformed,
    /// `alg` is `none`, symmetric (HS*), not in the allowed list, or disagrees with the
    /// algorithm of the key named by `kid`.
    #[error("token algorithm not allowed or does not match its key")]
    AlgorithmNotAllowed,
    /// The header lists a `crit` extension this verifier does not implement.
    #[error("token header lists an unsupported critical extension")]
    UnsupportedCritical,
    /// The header has no `kid`; keys are only ever selected by `kid` from the key set.
    #[error("token header has no key id (kid)")]
    MissingKeyId,
    /// No key with this `kid` in the current key set (after a rate-limited refetch).
    #[error("token signed by unknown key id")]
    UnknownKey,
    /// The signature does not verify with the key named by `kid` (or is missing).
    #[error("token signature invalid")]
    BadSignature,
    /// `exp` (plus the allowed clock skew) is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` (minus the allowed clock skew) is in the future.
    #[error("token not yet valid (nbf or iat in the future)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("token audience does not include this service")]
    WrongAudience,
    /// A required claim is absent; the name is the claim's name, never its value.
    #[error("token lacks required claim `{0}`")]
    MissingClaim(&'static str),
    /// The key set could not be loaded, or its last good copy is older than
    /// `max_staleness`: fail closed.
    #[error("token signing keys unavailable; retry later")]
    KeysUnavailable,
    /// The revocation source could not be read for longer than its `max_staleness`.
    #[error("consent revocation state unavailable; retry later")]
    RevocationUnavailable,
    /// The token's `jti` is on the revocation list.
    #[error("consent revoked")]
    Revoked,
    /// `consent_version` is below (or absent while there is) the subject's minimum.
    #[error("consent superseded by a newer version; obtain a fresh consent token")]
    Outdated,
    /// No consent token could be found for the subject (consent lookup).
    #[error("no consent on record for this subject")]
    NoConsent,
    /// The consent lookup source failed; no grant.
    #[error("consent lookup unavailable; retry later")]
    LookupUnavailable,
    /// A looked-up token names a different subject than the one asked for.
    #[error("consent token is for a different subject")]
    SubjectMismatch,
    /// The consent is genuine but does not grant the requested purpose.
    #[error("consent does not grant this purpose")]
    PurposeNotGranted,
    /// The consent is genuine but does not explicitly grant the special category.
    #[error("consent does not grant this special category")]
    SpecialCategoryNotGranted,
}

impl ConsentError {
    /// The gRPC status for this error. See the crate documentation for the table.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            Self::TooLarge
            | Self::Malformed
            | Self::AlgorithmNotAllowed
            | Self::UnsupportedCritical
            | Self::MissingKeyId
            | Self::UnknownKey
            | Self::BadSignature
            | Self::Expired
            | Self::NotYetValid
            | Self::WrongIssuer
            | Self::WrongAudience
            | Self::MissingClaim(_)
            | Self::KeysUnavailable
            | Self::RevocationUnavailable => GrpcCode::Unauthenticated,
            Self::Revoked
            | Self::Outdated
            | Self::NoConsent
            | Self::LookupUnavailable
            | Self::SubjectMismatch
            | Self::PurposeNotGranted
            | Self::SpecialCategoryNotGranted => GrpcCode::PermissionDenied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_failures_are_unauthenticated_and_refusals_are_denied() {
        assert_eq!(
            ConsentError::BadSignature.grpc_code(),
            GrpcCode::Unauthenticated
        );
        assert_eq!(
            ConsentError::KeysUnavailable.grpc_code(),
            GrpcCode::Unauthenticated
        );
        assert_eq!(
            ConsentError::MissingClaim("sub").grpc_code(),
            GrpcCode::Unauthenticated
        );
        assert_eq!(
            ConsentError::Revoked.grpc_code(),
            GrpcCode::PermissionDenied
        );
        assert_eq!(
            ConsentError::Outdated.grpc_code(),
            GrpcCode::PermissionDenied
        );
        assert_eq!(
            ConsentError::PurposeNotGranted.grpc_code(),
            GrpcCode::PermissionDenied
        );
    }

    #[test]
    fn messages_name_claims_not_values() {
        assert_eq!(
            ConsentError::MissingClaim("sub").to_string(),
            "token lacks required claim `sub`"
        );
    }
}
