//! A document at an HTTP(S) URL. HTTPS uses rustls with the ring provider and the Mozilla
//! (webpki) roots, so no system OpenSSL is needed.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{MAX_DOCUMENT_BYTES, SourceError};

/// An HTTP(S) source.
#[derive(Clone)]
pub struct HttpSource {
    uri: http::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only scheme and authority: a URL's path or query may carry a credential.
        f.debug_struct("HttpSource")
            .field("scheme", &self.uri.scheme_str())
            .field("host", &self.uri.host())
            .finish_non_exhaustive()
    }
}

impl HttpSource {
    /// A source for `url` (`http://` or `https://`), with a per-request `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SourceError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| SourceError::Http("invalid URL".into()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(SourceError::Http("URL scheme must be http or https".into()));
        }
        let provider = rustls::crypto::ring::default_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .map_err(|_| SourceError::Http("TLS set-up failed".into()))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpSource {
            uri,
            client,
            timeout,
        })
    }

    /// The same client for another URL (consent lookup builds one per subject).
    pub(crate) fn with_uri(&self, uri: http::Uri) -> Self {
        HttpSource {
            uri,
            client: self.client.clone(),
            timeout: self.timeout,
        }
    }

    pub(crate) fn uri(&self) -> &http::Uri {
        &self.uri
    }

    pub(crate) async fn fetch(&self) -> Result<Vec<u8>, SourceError> {
        match self.fetch_status().await? {
            (status, body) if status.is_success() => Ok(body),
            (status, _) => Err(SourceError::Http(format!("status {}", status.as_u16()))),
        }
    }

    /// GET the URL; returns the status and the body (bounded).
    pub(crate) async fn fetch_status(&self) -> Result<(http::StatusCode, Vec<u8>), SourceError> {
        let request = async {
            let response = self
                .client
                .get(self.uri.clone())
                .await
                .map_err(|_| SourceError::Http("request failed".into()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        SourceError::TooLarge
                    } else {
                        SourceError::Http("response body failed".into())
                    }
                })?
                .to_bytes();
            Ok((status, body.to_vec()))
        };
        tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| SourceError::Http("timed out".into()))?
    }
}
