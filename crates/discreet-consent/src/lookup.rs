//! Consent lookup for calls that carry no token per subject (batches, export streams): a
//! source returns the subject's current signed consent token, which is then verified like
//! any other by [`crate::ConsentService::grant_for_subject`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::source::{HttpSource, SourceError};

/// A boxed future, so `ConsentLookup` can be used as `dyn`.
pub type LookupFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, SourceError>> + Send + 'a>>;

/// Returns a subject's current consent token: `Ok(None)` when there is none.
pub trait ConsentLookup: Send + Sync {
    /// The current token for `subject`.
    fn current_token<'a>(&'a self, subject: &'a str) -> LookupFuture<'a>;
}

/// `GET {base_url}/{subject}` on the consent platform: 200 with the token as the body, 404
/// for no consent; anything else is a failure (no grant). The subject is percent-encoded.
#[derive(Debug, Clone)]
pub struct HttpConsentLookup {
    base: String,
    client: HttpSource,
}

impl HttpConsentLookup {
    /// A lookup against `base_url` (no trailing slash needed).
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, SourceError> {
        let client = HttpSource::new(base_url, timeout)?;
        Ok(HttpConsentLookup {
            base: client.uri().to_string().trim_end_matches('/').to_owned(),
            client,
        })
    }
}

impl ConsentLookup for HttpConsentLookup {
    fn current_token<'a>(&'a self, subject: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            let uri = format!("{}/{}", self.base, percent_encode(subject))
                .parse::<http::Uri>()
                .map_err(|_| SourceError::Http("invalid lookup URL".into()))?;
            let (status, body) = self.client.with_uri(uri).fetch_status().await?;
            match status.as_u16() {
                200 => String::from_utf8(body)
                    .map(|t| Some(t.trim().to_owned()))
                    .map_err(|_| SourceError::Http("token not UTF-8".into())),
                404 => Ok(None),
                other => Err(SourceError::Http(format!("status {other}"))),
            }
        })
    }
}

/// Development: `{dir}/{subject}.jwt`. Subjects that are not plain file names (path
/// separators, leading dot, other than `[A-Za-z0-9._@-]`) have no consent.
#[derive(Debug, Clone)]
pub struct DirectoryConsentLookup {
    dir: PathBuf,
}

impl DirectoryConsentLookup {
    /// A lookup reading token files from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirectoryConsentLookup { dir: dir.into() }
    }
}

impl ConsentLookup for DirectoryConsentLookup {
    fn current_token<'a>(&'a self, subject: &'a str) -> LookupFuture<'a> {
        Box::pin(async move {
            let safe = !subject.is_empty()
                && !subject.starts_with('.')
                && subject
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
            if !safe {
                return Ok(None);
            }
            match tokio::fs::read_to_string(self.dir.join(format!("{subject}.jwt"))).await {
                Ok(t) => Ok(Some(t.trim().to_owned())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(SourceError::File(e.kind().to_string())),
            }
        })
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(super::percent_encode("a b/../c@d"), "a%20b%2F..%2Fc%40d");
    }
}
