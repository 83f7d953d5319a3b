//! A document at an HTTP(S) URL. HTTPS uses rustls with the ring provider and the Mozilla
//! (webpki) roots, or the CAs of a `ca_file` for a source a private CA vouches for (the
//! API server), so no system OpenSSL is needed. A bearer token, for a source that asks for
//! one, is read from its file for every request: a projected service-account token is
//! renewed in place. A `ca_file` is checked before every request too and, when it has
//! changed, read again (a cluster's CA is rotated by updating `kube-root-ca.crt`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{MAX_DOCUMENT_BYTES, SourceError};

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A CA bundle is tens of kilobytes (Mozilla's whole set is ~200 KiB); a path naming
/// something larger (a device, a log) is refused rather than read whole.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// An HTTP(S) source.
#[derive(Clone)]
pub struct HttpSource {
    uri: http::Uri,
    client: Clients,
    timeout: Duration,
    bearer_token_file: Option<PathBuf>,
}

/// How an [`HttpSource`] authenticates the server and itself, beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct HttpSourceOptions {
    /// A PEM file of the CA certificates to trust instead of the Mozilla roots. Read when
    /// the source is built (an unreadable or empty bundle refuses it) and again whenever
    /// it changes.
    pub ca_file: Option<PathBuf>,
    /// A file whose content (trimmed) is sent as `Authorization: Bearer <content>`.
    pub bearer_token_file: Option<PathBuf>,
}

/// The client a request goes out on.
#[derive(Clone)]
enum Clients {
    /// Trusting the Mozilla roots, for the source's life.
    Fixed(Box<HttpsClient>),
    /// Trusting a `ca_file`, rebuilt when the file changes.
    PrivateCa(Arc<PrivateCa>),
}

/// A `ca_file` and the client that trusts what it held when last read.
struct PrivateCa {
    path: PathBuf,
    state: Mutex<CaState>,
}

/// Length, modification and change times, and inode of a file: a replacement that keeps
/// the length and the modification time (`cp -p`, `rsync -t`, a tarball) still changes
/// the change time or the inode, which no copy can preserve.
type FileStamp = (u64, Option<SystemTime>, i64, i64, u64);

struct CaState {
    /// Length and modification time of the file when last read: a changed stamp means
    /// read again (Kubernetes replaces a mounted file, so the time moves).
    stamp: FileStamp,
    /// The bytes last read, so a touched but unchanged file keeps its client (and the
    /// client's pooled connections).
    pem: Vec<u8>,
    /// The client for `pem`, or why the file as it now stands cannot be trusted: every
    /// request fails with that until the file changes again. The previous CA is not
    /// kept: a file that was replaced no longer says what to trust.
    client: Result<HttpsClient, SourceError>,
}

impl PrivateCa {
    /// Reads `path` now; an unreadable file or one with no certificate is an error.
    fn load(path: &Path) -> Result<Self, SourceError> {
        let (stamp, pem) = read_ca_file(path)?;
        let client = private_ca_client(path, &pem)?;
        Ok(PrivateCa {
            path: path.to_owned(),
            state: Mutex::new(CaState {
                stamp,
                pem,
                client: Ok(client),
            }),
        })
    }

    /// The client for the file as it is now: one `stat` when nothing changed (a blocking
    /// call, made once per fetch of a key or revocation document, not per gateway call).
    fn current(&self) -> Result<HttpsClient, SourceError> {
        // Nothing in the section below leaves the state half-written: a panic elsewhere
        // while holding the lock does not make the source unusable.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = ca_stamp(&self.path);
        if stamp.as_ref().ok() != Some(&state.stamp) {
            match read_ca_file(&self.path) {
                Ok((stamp, pem)) => {
                    if pem != state.pem || state.client.is_err() {
                        state.client = private_ca_client(&self.path, &pem);
                        match &state.client {
                            Ok(_) => tracing::info!(
                                ca_file = %self.path.display(),
                                "ca_file changed: trusting the certificates it holds now"
                            ),
                            Err(e) => tracing::warn!(
                                ca_file = %self.path.display(),
                                error = %e,
                                "ca_file changed and cannot be used: its source's reads fail until it is fixed"
                            ),
                        }
                    }
                    state.stamp = stamp;
                    state.pem = pem;
                }
                Err(e) => {
                    // Unreadable (removed, a permission change): nothing is trusted, and
                    // the next request reads again.
                    state.stamp = (u64::MAX, None, 0, 0, 0);
                    state.pem.clear();
                    state.client = Err(e);
                }
            }
        }
        state.client.clone()
    }
}

fn ca_stamp(path: &Path) -> Result<FileStamp, SourceError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| ca_error(path, e))?;
    Ok((
        meta.len(),
        meta.modified().ok(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino(),
    ))
}

fn ca_error(path: &Path, e: std::io::Error) -> SourceError {
    SourceError::CaFile(format!("{}: cannot read: {}", path.display(), e.kind()))
}

/// The file's stamp and content, bounded.
fn read_ca_file(path: &Path) -> Result<(FileStamp, Vec<u8>), SourceError> {
    use std::io::Read;
    let stamp = ca_stamp(path)?;
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut pem))
        .map_err(|e| ca_error(path, e))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(SourceError::CaFile(format!(
            "{}: over 1 MiB, not a CA bundle",
            path.display()
        )));
    }
    Ok((stamp, pem))
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
        let client = match &options.ca_file {
            None => {
                let builder = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
                    .map_err(|_| SourceError::Http("TLS set-up failed".into()))?;
                Clients::Fixed(Box::new(client_for(builder)))
            }
            Some(path) => Clients::PrivateCa(Arc::new(PrivateCa::load(path)?)),
        };
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
            let client = match &self.client {
                Clients::Fixed(client) => (**client).clone(),
                Clients::PrivateCa(ca) => ca.current()?,
            };
            let response = client
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

fn client_for(
    builder: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
) -> HttpsClient {
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A client trusting only the CA certificates in `pem`.
fn private_ca_client(path: &Path, pem: &[u8]) -> Result<HttpsClient, SourceError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let refuse = |why: &str| SourceError::CaFile(format!("{}: {why}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|_| refuse("is not PEM"))?;
        roots.add(cert).map_err(|e| refuse(&e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(refuse("holds no certificate"));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|_| SourceError::Http("TLS set-up failed".into()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(client_for(
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config),
    ))
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
