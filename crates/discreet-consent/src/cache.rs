//! The verified-token cache: keyed by SHA-256 of the token (the token itself is never a
//! key, so a heap dump of the cache holds no bearer credential), each entry expiring no
//! later than its token.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::claims::VerifiedConsent;

/// A cached verification, tied to the key-set generation it was verified with: a key-set
/// change (rotation, removal) sends the token through full verification again.
#[derive(Debug, Clone)]
pub(crate) struct CachedConsent {
    pub(crate) consent: Arc<VerifiedConsent>,
    pub(crate) key_generation: u64,
}

struct UntilExpiry {
    max_ttl: Duration,
}

impl moka::Expiry<[u8; 32], CachedConsent> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        value: &CachedConsent,
        _: Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(u64::MAX);
        let left = Duration::from_secs(value.consent.expires_at.saturating_sub(now));
        Some(left.min(self.max_ttl))
    }
}

#[derive(Clone)]
pub(crate) struct VerifiedCache {
    inner: Option<Cache<[u8; 32], CachedConsent>>,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedCache {
    pub(crate) fn new(capacity: u64, max_ttl: Duration) -> Self {
        let inner = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExpiry { max_ttl })
                .build()
        });
        VerifiedCache { inner }
    }

    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<CachedConsent> {
        self.inner.as_ref()?.get(digest)
    }

    pub(crate) fn insert(&self, digest: [u8; 32], value: CachedConsent) {
        if let Some(c) = &self.inner {
            c.insert(digest, value);
        }
    }

    pub(crate) fn remove(&self, digest: &[u8; 32]) {
        if let Some(c) = &self.inner {
            c.invalidate(digest);
        }
    }
}
