//! The live consent checker the gateway holds: key set and revocation list kept fresh in
//! the background, verified tokens cached, every answer fail-closed.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::{CachedConsent, VerifiedCache, token_digest};
use crate::claims::VerifiedConsent;
use crate::config::{
    ConfigError, ConsentConfig, KeySourceConfig, Location, RevocationSourceConfig,
};
use crate::error::ConsentError;
use crate::keyset::KeySet;
use crate::live::{LiveDocument, TaskGuard};
use crate::lookup::ConsentLookup;
use crate::revocation::RevocationList;
use crate::source::{DocumentSource, FileSource, HttpSource};
use crate::verify::ConsentVerifier;

/// Seconds since the epoch from the system clock (0 if the clock is before 1970, which
/// makes every token not-yet-valid rather than valid).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Verifies consent tokens against live keys and revocations, with a cache.
///
/// Background reload tasks run on the current Tokio runtime and stop when the service is
/// dropped.
#[derive(Debug)]
pub struct ConsentService {
    verifier: ConsentVerifier,
    keys: Arc<LiveDocument<KeySet>>,
    revocation: Option<Arc<LiveDocument<RevocationList>>>,
    cache: VerifiedCache,
    unknown_kid_min_interval: std::time::Duration,
    _tasks: Vec<TaskGuard>,
}

impl ConsentService {
    /// Validates `config`, loads keys and revocations once (a file that does not load is
    /// an error; a URL that does not is not: checks fail closed until a load succeeds),
    /// and starts the reload tasks.
    pub async fn start(config: &ConsentConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let keys = Arc::new(key_document("consent_keys", &config.keys)?);
        first_load(&keys, "keys").await?;
        let mut tasks = vec![keys.spawn(config.keys.refresh_interval, true)];
        let revocation = match &config.revocation {
            Some(r) => {
                let (doc, interval) = revocation_document(r)?;
                let doc = Arc::new(doc);
                first_load(&doc, "revocation").await?;
                tasks.push(doc.spawn(interval, r.watch));
                Some(doc)
            }
            None => None,
        };
        Ok(ConsentService {
            verifier: ConsentVerifier::new(config.token_rules()),
            keys,
            revocation,
            cache: VerifiedCache::new(config.cache.verified_tokens, config.cache.max_ttl),
            unknown_kid_min_interval: config.keys.unknown_kid_min_interval,
            _tasks: tasks,
        })
    }

    /// How the key source (`consent_keys`) and the revocation source (`revocation`, when
    /// configured) are doing.
    #[must_use]
    pub fn source_health(&self) -> Vec<(&'static str, crate::SourceHealth)> {
        let mut health = vec![(self.keys.name(), self.keys.health())];
        if let Some(revocation) = &self.revocation {
            health.push((revocation.name(), revocation.health()));
        }
        health
    }

    /// Verifies `token` (cache first) and checks it against the current revocation list.
    /// A cache hit still checks expiry, revocation and that the key set is unchanged and
    /// fresh.
    pub async fn verify_cached(&self, token: &str) -> Result<Arc<VerifiedConsent>, ConsentError> {
        self.verify_at(token, unix_now(), true).await
    }

    /// As [`Self::verify_cached`] but always checks the signature (and does not fill the
    /// cache). For benchmarks and diagnostics.
    pub async fn verify_uncached(&self, token: &str) -> Result<Arc<VerifiedConsent>, ConsentError> {
        self.verify_at(token, unix_now(), false).await
    }

    /// Looks up `subject`'s current consent token and verifies it like any other; the token
    /// must name that subject. Missing or unverifiable means no grant.
    pub async fn grant_for_subject(
        &self,
        subject: &str,
        lookup: &dyn ConsentLookup,
    ) -> Result<Arc<VerifiedConsent>, ConsentError> {
        let token = lookup
            .current_token(subject)
            .await
            .map_err(|_| ConsentError::LookupUnavailable)?
            .ok_or(ConsentError::NoConsent)?;
        let consent = self.verify_cached(&token).await?;
        if consent.subject != subject {
            return Err(ConsentError::SubjectMismatch);
        }
        Ok(consent)
    }

    async fn verify_at(
        &self,
        token: &str,
        now: u64,
        use_cache: bool,
    ) -> Result<Arc<VerifiedConsent>, ConsentError> {
        let rules = self.verifier.rules();
        // Before hashing or decoding anything.
        if token.len() > rules.max_token_bytes {
            return Err(ConsentError::TooLarge);
        }
        let revocations = match &self.revocation {
            Some(doc) => Some(doc.current().ok_or(ConsentError::RevocationUnavailable)?.0),
            None => None,
        };
        let (mut keys, mut generation) =
            self.keys.current().ok_or(ConsentError::KeysUnavailable)?;
        let digest = token_digest(token);
        if use_cache && let Some(hit) = self.cache.get(&digest) {
            if hit.key_generation == generation && hit.consent.is_live_at(now, rules.leeway_secs) {
                if let Some(list) = &revocations {
                    list.check(&hit.consent)?;
                }
                return Ok(hit.consent);
            }
            self.cache.remove(&digest);
        }
        let verified = match self.verifier.verify(token, &keys, now) {
            Err(ConsentError::UnknownKey) => {
                // A new kid may mean the issuer rotated: reload, at most once per interval.
                // Another request may have reloaded meanwhile: retry whenever the set changed.
                self.keys
                    .reload_rate_limited(self.unknown_kid_min_interval)
                    .await;
                let (fresh, fresh_generation) =
                    self.keys.current().ok_or(ConsentError::KeysUnavailable)?;
                if fresh_generation == generation {
                    return Err(ConsentError::UnknownKey);
                }
                (keys, generation) = (fresh, fresh_generation);
                self.verifier.verify(token, &keys, now)?
            }
            other => other?,
        };
        if let Some(list) = &revocations {
            list.check(&verified)?;
        }
        let consent = Arc::new(verified);
        if use_cache {
            let entry = CachedConsent {
                consent: Arc::clone(&consent),
                key_generation: generation,
            };
            self.cache.insert(digest, entry);
        }
        Ok(consent)
    }
}

/// Reads `doc` for the first time. A file that cannot be read or parsed now refuses the
/// start (`what` names the field): a mounted file is in place before the container
/// starts, so this is a wrong path or a bad document, and serving would refuse every call
/// that needs it while looking healthy. A URL that cannot be reached does not: the
/// network may come later, checks fail closed until it is read, and the source's metrics
/// and readiness say so.
pub(crate) async fn first_load<T: Send + Sync + 'static>(
    doc: &LiveDocument<T>,
    what: &str,
) -> Result<(), ConfigError> {
    match doc.reload().await {
        Err(reason) if doc.is_file() => Err(ConfigError(format!("{what}: {reason}"))),
        _ => Ok(()),
    }
}

/// The source of document `what` (`keys`, `revocation`: the field errors are named by);
/// for a URL, its CA bundle is read now (and again whenever it changes). Errors never
/// hold a file's content.
fn source(what: &str, fields: &Location<'_>) -> Result<DocumentSource, ConfigError> {
    let refuse = |message: String| ConfigError(format!("{what}: {message}"));
    match (fields.file, fields.url) {
        (Some(path), None) => Ok(DocumentSource::File(FileSource::new(path))),
        (None, Some(url)) => {
            let options = crate::source::HttpSourceOptions {
                ca_file: fields.ca_file.clone(),
                bearer_token_file: fields.bearer_token_file.clone(),
            };
            HttpSource::with_options(url, fields.timeout, options)
                .map(|h| DocumentSource::Http(Box::new(h)))
                .map_err(|e| refuse(e.to_string()))
        }
        _ => Err(refuse("set exactly one of file, url".into())),
    }
}

/// The live key set of `cfg`; `name` (`consent_keys`, `caller_keys`) names it in logs
/// and metrics.
pub(crate) fn key_document(
    name: &'static str,
    cfg: &KeySourceConfig,
) -> Result<LiveDocument<KeySet>, ConfigError> {
    // Every asymmetric key is kept; the configured algorithms are enforced per token (the
    // header `alg` must be allowed and equal the key's pinned algorithm).
    fn parse(bytes: &[u8]) -> Option<KeySet> {
        KeySet::from_jwks(bytes, &crate::SigningAlgorithm::ALL).ok()
    }
    Ok(LiveDocument::new(
        name,
        source("keys", &cfg.location())?,
        parse,
        cfg.max_staleness,
    ))
}

fn revocation_document(
    cfg: &RevocationSourceConfig,
) -> Result<(LiveDocument<RevocationList>, std::time::Duration), ConfigError> {
    fn parse(bytes: &[u8]) -> Option<RevocationList> {
        RevocationList::from_json(bytes).ok()
    }
    let interval = if cfg.file.is_some() {
        cfg.poll_interval
    } else {
        cfg.refresh_interval
    };
    let doc = LiveDocument::new(
        "revocation",
        source("revocation", &cfg.location())?,
        parse,
        cfg.max_staleness,
    );
    Ok((doc, interval))
}
