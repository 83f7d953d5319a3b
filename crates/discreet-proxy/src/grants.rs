//! Step 5 of a read: the consent tokens a call carries, verified, as grants by subject.
//! One token per subject; a batch carries several `x-discreet-consent` entries (or one
//! entry with comma-separated tokens, as HTTP may fold repeated headers).
use std::{collections::HashMap, sync::Arc};

use discreet_consent::ConsentService;
use discreet_policy::ConsentGrant;
use http::HeaderMap;

use crate::{metadata::CONSENT, status::CallError};

/// What each subject of the call granted.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    /// Shared, so each record of a stream takes a reference count, not a copy of sets.
    by_subject: HashMap<String, Arc<ConsentGrant>>,
    /// Each subject's (last) token id and consent version, for the access span.
    tokens: HashMap<String, (Arc<str>, Option<u64>)>,
    token_ids: Vec<Arc<str>>,
}

impl Grants {
    pub(crate) fn token_ids(&self) -> &[Arc<str>] {
        &self.token_ids
    }

    /// The token that granted `subject`, and its consent version.
    pub(crate) fn token_of(&self, subject: &str) -> (Option<Arc<str>>, Option<u64>) {
        self.tokens
            .get(subject)
            .map_or((None, None), |(id, v)| (Some(Arc::clone(id)), *v))
    }

    pub(crate) fn get(&self, subject: &str) -> Option<&Arc<ConsentGrant>> {
        self.by_subject.get(subject)
    }

    /// Whether `subject` granted `purpose`.
    pub(crate) fn allows(&self, subject: &str, purpose: &str) -> bool {
        self.get(subject).is_some_and(|g| g.allows_purpose(purpose))
    }
}

/// Verifies every consent token of the call. Any token that fails fails the call: a
/// caller that sends a forged, expired or revoked token is told so, not quietly served
/// less.
pub(crate) async fn verify(
    consent: &ConsentService,
    headers: &HeaderMap,
    max_tokens: usize,
) -> Result<Grants, CallError> {
    let mut grants = Grants::default();
    let mut count = 0usize;
    for value in headers.get_all(CONSENT) {
        let value = value
            .to_str()
            .map_err(|_| CallError::RequestMetadata("x-discreet-consent is not ASCII"))?;
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            count += 1;
            if count > max_tokens {
                return Err(CallError::TooManyTokens(max_tokens));
            }
            let verified = consent
                .verify_cached(token)
                .await
                .map_err(CallError::Consent)?;
            let id: Arc<str> = Arc::from(verified.token_id.as_str());
            grants.token_ids.push(Arc::clone(&id));
            grants
                .tokens
                .insert(verified.subject.clone(), (id, verified.consent_version));
            // Two tokens for one subject: each is genuine consent, so the grant is both.
            let grant = Arc::make_mut(
                grants
                    .by_subject
                    .entry(verified.subject.clone())
                    .or_default(),
            );
            grant.purposes.extend(verified.purposes.iter().cloned());
            grant
                .special_categories
                .extend(verified.special_categories.iter().cloned());
        }
    }
    Ok(grants)
}
