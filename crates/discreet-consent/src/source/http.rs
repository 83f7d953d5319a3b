//! A document at an HTTP(S) URL. HTTPS uses rustls with the ring provider and the Mozilla
//! (webpki) roots, or the CAs of a `ca_file` for a source a private CA vouches for (the
//! API server), so no system OpenSSL is needed. A bearer token, for a source that asks for
//! one, is read from its file for every request: a projected service-account token is
//! renewed in place.

use std::path::{Path, PathBuf};
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
    bearer_token_file: Option<PathBuf>,
}

/// How an [`HttpSource`] authenticates the server and itself, beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct HttpSourceOptions {
    /// PEM CA certificates to trust instead of the Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
    /// A file whose content (trimmed) is sent as `Authorization: Bearer <content>`.
    pub bearer_token_file: Option<PathBuf>,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only scheme and authority: a URL's path or query may carry a credential.
        f.debug_struct("HttpSource")
            .field("scheme", &self.uri.scheme_str())
            .field("host", &self.uri.host())
            .field("bearer_token_file", &self.bearer_token_file)
            .finish_non_exhaustive()
    }
}

impl HttpSource {
    /// A source for `url` (`http://` or `https://`), with a per-request `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SourceError> {
        Self::with_options(url, timeout, HttpSourceOptions::default())
    }

    /// As [`HttpSource::new`], trusting `options.ca_pem` instead of the Mozilla roots and
    /// sending the bearer token of `options.bearer_token_file`.
    pub fn with_options(
        url: &str,
        timeout: Duration,
        options: HttpSourceOptions,
    ) -> Result<Self, SourceError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| SourceError::Http("invalid URL".into()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(SourceError::Http("URL scheme must be http or https".into()));
        }
        let provider = rustls::crypto::ring::default_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &options.ca_pem {
            None => builder
                .with_provider_and_webpki_roots(provider)
                .map_err(|_| SourceError::Http("TLS set-up failed".into()))?,
            Some(pem) => builder.with_tls_config(private_ca_config(pem, provider)?),
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(HttpSource {
            uri,
            client,
            timeout,
            bearer_token_file: options.bearer_token_file,
        })
    }

    /// The same client for another URL (consent lookup builds one per subject).
    pub(crate) fn with_uri(&self, uri: http::Uri) -> Self {
        HttpSource {
            uri,
            client: self.client.clone(),
            timeout: self.timeout,
            bearer_token_file: self.bearer_token_file.clone(),
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
            let mut request = http::Request::get(self.uri.clone());
            if let Some(file) = &self.bearer_token_file {
                request = request.header(http::header::AUTHORIZATION, bearer(file).await?);
            }
            let request = request
                .body(Empty::new())
                .map_err(|_| SourceError::Http("invalid request".into()))?;
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| SourceError::Http(format!("request failed: {}", causes(&e))))?;
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

/// `Bearer <token>` from `file`, marked sensitive (never indexed by HPACK, shown as
/// "Sensitive" by `Debug`). Errors never quote the file's content.
async fn bearer(file: &Path) -> Result<http::HeaderValue, SourceError> {
    use tokio::io::AsyncReadExt;
    const MAX_TOKEN_BYTES: u64 = 16 * 1024;
    let unreadable = |e: std::io::Error| {
        SourceError::Http(format!("bearer token file unreadable: {}", e.kind()))
    };
    // Bounded: a path naming something else (a device, a log) is not read whole.
    let mut raw = Vec::new();
    tokio::fs::File::open(file)
        .await
        .map_err(unreadable)?
        .take(MAX_TOKEN_BYTES + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(unreadable)?;
    let token = raw.trim_ascii();
    if token.is_empty() || token.len() as u64 > MAX_TOKEN_BYTES {
        return Err(SourceError::Http(
            "bearer token file is empty or over 16 KiB".into(),
        ));
    }
    let mut value = http::HeaderValue::from_bytes(&[b"Bearer ", token].concat()).map_err(|_| {
        SourceError::Http("bearer token file holds a line break or control byte".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A TLS client configuration trusting only the CA certificates in `pem`.
fn private_ca_config(
    pem: &[u8],
    provider: rustls::crypto::CryptoProvider,
) -> Result<rustls::ClientConfig, SourceError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| SourceError::Http("ca_file is not PEM".into()))?;
        roots
            .add(cert)
            .map_err(|e| SourceError::Http(format!("ca_file: {e}")))?;
    }
    if roots.is_empty() {
        return Err(SourceError::Http("ca_file holds no certificate".into()));
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|_| SourceError::Http("TLS set-up failed".into()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// The error's sources after its own text: hyper's client says only "client error
/// (Connect)", the cause (an untrusted certificate, a refused connection) is below it.
/// A URL never appears in them (hyper names no URL).
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
