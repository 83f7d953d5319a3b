//! The live caller authenticator: [`CallerVerifier`] with the issuer's JWKS kept fresh.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::algorithm::SigningAlgorithm;
use crate::config::{ConfigError, KeySourceConfig, duration};
use crate::error::ConsentError;
use crate::identity::{CallerIdentity, CallerVerifier};
use crate::keyset::KeySet;
use crate::live::{LiveDocument, TaskGuard};
use crate::service::{key_document, unix_now};
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
    _task: TaskGuard,
}

impl CallerService {
    /// Loads the JWKS once (failure is not fatal: authentication fails closed until a load
    /// succeeds) and starts its reload task.
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
        let keys = Arc::new(key_document(&config.keys)?);
        let _ = keys.reload().await;
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
            _task: task,
        })
    }

    /// The caller named by `bearer_token`.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<CallerIdentity, ConsentError> {
        let now = unix_now();
        let (keys, generation) = self.keys.current().ok_or(ConsentError::KeysUnavailable)?;
        match self.verifier.verify(bearer_token, &keys, now) {
            Err(ConsentError::UnknownKey) => {
                self.keys
                    .reload_rate_limited(self.unknown_kid_min_interval)
                    .await;
                let (fresh, fresh_generation) =
                    self.keys.current().ok_or(ConsentError::KeysUnavailable)?;
                if fresh_generation == generation {
                    return Err(ConsentError::UnknownKey);
                }
                self.verifier.verify(bearer_token, &fresh, now)
            }
            other => other,
        }
    }
}
