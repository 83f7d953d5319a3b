//! The live caller authenticator: [`CallerVerifier`] with the issuer's JWKS kept fresh.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::Digest;

use crate::algorithm::SigningAlgorithm;
use crate::config::{ConfigError, KeySourceConfig, duration};
use crate::error::ConsentError;
use crate::identity::{CallerIdentity, CallerVerifier};
use crate::keyset::KeySet;
use crate::live::{LiveDocument, TaskGuard};
use crate::service::{first_load, key_document, unix_now};
use crate::verify::TokenRules;

/// Kubernetes service-account token settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    /// The API server's issuer (`kubectl get --raw /.well-known/openid-configuration`).
    pub issuer: String,
    /// The audience callers request in their projected token (this gateway's name).
    pub audience: String,
    /// Accepted algorithms. Default: RS256, ES256 (what API servers sign with).
    #[serde(default = "default_caller_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Clock skew. Default `30s`.
    #[serde(default = "default_leeway", with = "duration")]
    pub leeway: Duration,
    /// The issuer's JWKS (a mounted file, or the API server's `/openid/v1/jwks`).
    pub keys: KeySourceConfig,
}

fn default_caller_algorithms() -> Vec<SigningAlgorithm> {
    vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256]
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

/// Authenticates callers from their service-account bearer token.
#[derive(Debug)]
pub struct CallerService {
    verifier: CallerVerifier,
    keys: Arc<LiveDocument<KeySet>>,
    unknown_kid_min_interval: Duration,
    verified: CallerCache,
    leeway_secs: u64,
    _task: TaskGuard,
}

/// Callers' tokens already verified, by SHA-256 of the token (never the bearer credential
/// itself). A pod presents the same projected token on every call until the kubelet
/// rotates it, so without this each call would pay a signature verification (an ES256
/// verification costs more than the rest of a call). An entry is reused only under the
/// key-set generation that verified it and only until the token's `exp`: a rotated or
/// removed signing key sends every token through full verification again.
#[derive(Clone)]
struct CallerCache(moka::sync::Cache<[u8; 32], CachedCaller>);

#[derive(Debug, Clone)]
struct CachedCaller {
    name: Arc<str>,
    expires_at: u64,
    key_generation: u64,
}

impl std::fmt::Debug for CallerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerCache")
            .field("entries", &self.0.entry_count())
            .finish()
    }
}

/// Distinct caller tokens remembered: pods times rotations, far below this.
const CALLER_CACHE_ENTRIES: u64 = 10_000;
/// A cached verification is redone at least this often, whatever the token's lifetime.
const CALLER_CACHE_TTL: Duration = Duration::from_secs(300);

impl CallerService {
    /// How the source of the callers' keys is doing (`caller_keys`).
    #[must_use]
    pub fn source_health(&self) -> (&'static str, crate::SourceHealth) {
        (self.keys.name(), self.keys.health())
    }

    /// Loads the JWKS once (a file that does not load is an error; a URL that does not
    /// is not: authentication fails closed until a load succeeds) and starts its reload
    /// task.
    pub async fn start(config: &CallerConfig) -> Result<Self, ConfigError> {
        if config.issuer.trim().is_empty() || config.audience.trim().is_empty() {
            return Err(ConfigError(
                "caller: issuer and audience are required".into(),
            ));
        }
        if config.algorithms.is_empty() || config.leeway > Duration::from_secs(300) {
            return Err(ConfigError(
                "caller: algorithms empty or leeway above 5m".into(),
            ));
        }
        let keys = Arc::new(key_document("caller_keys", &config.keys)?);
        first_load(&keys, "keys").await?;
        let task = keys.spawn(config.keys.refresh_interval, true);
        let rules = TokenRules {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            algorithms: config.algorithms.clone(),
            leeway_secs: config.leeway.as_secs(),
            max_token_bytes: 8 * 1024,
        };
        Ok(CallerService {
            verifier: CallerVerifier::new(rules),
            keys,
            unknown_kid_min_interval: config.keys.unknown_kid_min_interval,
            verified: CallerCache(
                moka::sync::Cache::builder()
                    .max_capacity(CALLER_CACHE_ENTRIES)
                    .time_to_live(CALLER_CACHE_TTL)
                    .build(),
            ),
            leeway_secs: config.leeway.as_secs(),
            _task: task,
        })
    }

    /// The caller named by `bearer_token` (`namespace/name`).
    pub async fn authenticate(&self, bearer_token: &str) -> Result<CallerIdentity, ConsentError> {
        self.authenticate_name(bearer_token)
            .await
            .map(|name| CallerIdentity {
                name: name.as_ref().to_owned(),
            })
    }

    /// As [`Self::authenticate`], sharing the cached name instead of copying it.
    pub async fn authenticate_name(&self, bearer_token: &str) -> Result<Arc<str>, ConsentError> {
        let now = unix_now();
        let (keys, generation) = self.keys.current().ok_or(ConsentError::KeysUnavailable)?;
        // Before hashing: a token over the size limit is refused by the verifier anyway.
        if bearer_token.len() > 8 * 1024 {
            return Err(ConsentError::TooLarge);
        }
        let digest: [u8; 32] = sha2::Sha256::digest(bearer_token.as_bytes()).into();
        if let Some(hit) = self.verified.0.get(&digest) {
            if hit.key_generation == generation
                && now < hit.expires_at.saturating_add(self.leeway_secs)
            {
                return Ok(hit.name);
            }
            self.verified.0.invalidate(&digest);
        }
        let (identity, expires_at, key_generation) = self
            .verify_reloading(bearer_token, &keys, generation, now)
            .await?;
        let name: Arc<str> = Arc::from(identity.name);
        self.verified.0.insert(
            digest,
            CachedCaller {
                name: Arc::clone(&name),
                expires_at,
                key_generation,
            },
        );
        Ok(name)
    }

    /// Full verification; an unknown key id reloads the JWKS (rate-limited) and retries.
    async fn verify_reloading(
        &self,
        bearer_token: &str,
        keys: &KeySet,
        generation: u64,
        now: u64,
    ) -> Result<(CallerIdentity, u64, u64), ConsentError> {
        match self.verifier.verify_until(bearer_token, keys, now) {
            Err(ConsentError::UnknownKey) => {
                self.keys
                    .reload_rate_limited(self.unknown_kid_min_interval)
                    .await;
                let (fresh, fresh_generation) =
                    self.keys.current().ok_or(ConsentError::KeysUnavailable)?;
                if fresh_generation == generation {
                    return Err(ConsentError::UnknownKey);
                }
                self.verifier
                    .verify_until(bearer_token, &fresh, now)
                    .map(|(identity, exp)| (identity, exp, fresh_generation))
            }
            other => other.map(|(identity, exp)| (identity, exp, generation)),
        }
    }
}
