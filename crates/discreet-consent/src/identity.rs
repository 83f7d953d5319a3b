//! Who is calling: Kubernetes projected service-account tokens, or a static identity in
//! development. [`CallerAuthenticator`] is the seam for mTLS/SPIFFE later.

use crate::error::ConsentError;
use crate::keyset::KeySet;
use crate::verify::{JwtCore, TokenRules};

/// The authenticated caller, named `namespace/serviceaccount` for Kubernetes callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerIdentity {
    /// Stable caller name used in policy (`allowed callers`) and audit spans.
    pub name: String,
}

/// What a caller presented. More fields (peer certificate chain, SPIFFE id) come with mTLS.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerCredentials<'a> {
    /// The bearer token from the `authorization` metadata, without the `Bearer ` prefix.
    pub bearer_token: Option<&'a str>,
}

/// Turns credentials into a caller identity. Implementations are pure given their state;
/// the keys of [`CallerVerifier`] are passed in so the live key set can rotate.
pub trait CallerAuthenticator: Send + Sync {
    /// Authenticates the caller with the current `keys` at `now`.
    fn authenticate(
        &self,
        credentials: &CallerCredentials<'_>,
        keys: &KeySet,
        now: u64,
    ) -> Result<CallerIdentity, ConsentError>;
}

/// Verifies Kubernetes projected service-account tokens: the API server's issuer, a
/// configured audience (the gateway's own, never the API server's default), the issuer's
/// JWKS. The name comes from the `kubernetes.io` claim, or from
/// `sub = system:serviceaccount:NAMESPACE:NAME`.
#[derive(Debug, Clone)]
pub struct CallerVerifier {
    core: JwtCore,
}

impl CallerVerifier {
    /// A verifier for these rules.
    pub fn new(rules: TokenRules) -> Self {
        CallerVerifier {
            core: JwtCore::new(rules),
        }
    }

    /// Verifies a service-account token at `now`.
    pub fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
    ) -> Result<CallerIdentity, ConsentError> {
        self.verify_until(token, keys, now)
            .map(|(identity, _)| identity)
    }

    /// As [`Self::verify`], with the token's `exp` (seconds since the epoch): how long
    /// the verification may be reused.
    pub fn verify_until(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
    ) -> Result<(CallerIdentity, u64), ConsentError> {
        let (claims, _) = self.core.verify(token, keys, now)?;
        let expires_at = claims.exp.ok_or(ConsentError::MissingClaim("exp"))?;
        let from_claim = claims.kubernetes.and_then(|k| {
            let ns = k.namespace?;
            let sa = k.serviceaccount?.name?;
            Some((ns, sa))
        });
        let from_sub = || {
            let sub = claims.sub.as_deref()?;
            let rest = sub.strip_prefix("system:serviceaccount:")?;
            let (ns, sa) = rest.split_once(':')?;
            Some((ns.to_owned(), sa.to_owned()))
        };
        let (ns, sa) = from_claim
            .or_else(from_sub)
            .ok_or(ConsentError::MissingClaim("kubernetes.io"))?;
        let valid = |s: &str| !s.is_empty() && !s.contains(['/', ':']);
        if !valid(&ns) || !valid(&sa) {
            return Err(ConsentError::Malformed);
        }
        Ok((
            CallerIdentity {
                name: format!("{ns}/{sa}"),
            },
            expires_at,
        ))
    }
}

impl CallerAuthenticator for CallerVerifier {
    fn authenticate(
        &self,
        credentials: &CallerCredentials<'_>,
        keys: &KeySet,
        now: u64,
    ) -> Result<CallerIdentity, ConsentError> {
        let token = credentials
            .bearer_token
            .ok_or(ConsentError::MissingClaim("authorization"))?;
        self.verify(token, keys, now)
    }
}

/// Every caller is this one identity. Development only: it authenticates nothing.
#[derive(Debug, Clone)]
pub struct StaticIdentity(pub CallerIdentity);

impl CallerAuthenticator for StaticIdentity {
    fn authenticate(
        &self,
        _: &CallerCredentials<'_>,
        _: &KeySet,
        _: u64,
    ) -> Result<CallerIdentity, ConsentError> {
        Ok(self.0.clone())
    }
}
