//! Serving TLS from a certificate and key in PEM files, optionally asking callers for
//! client certificates from a CA bundle, and taking renewed files without a restart.
//!
//! Certificates are short-lived in Kubernetes (cert-manager renews at two thirds of their
//! life, a mesh CA within a day), and a sidecar that read them only at start would serve
//! an expired certificate until someone restarted every pod; CA bundles rotate too
//! (trust-manager updates them in place). So the files are watched (`file_watch.rs`), and
//! each new handshake gets what was loaded last. Files that do not load (unparseable, the
//! key not the certificate's, a half-written file, an empty bundle) are refused and the
//! last good ones keep serving (`watched_files.rs`): a bad renewal never takes TLS down.
//! Connections already open keep what they were made with, as in any TLS server.
use std::{path::PathBuf, sync::Arc};

use discreet_config::TlsConfig;
use discreet_telemetry::metrics::{GatewayMetrics, ReloadLabels};
use rustls::{
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert, danger::ClientCertVerifier},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::TlsAcceptor;

use crate::watched_files::{FileReload, WatchedFiles};

/// One certificate chain and key as loaded.
#[derive(Debug)]
pub(crate) struct LoadedPair {
    pub(crate) key: Arc<CertifiedKey>,
    /// The leaf certificate's `notAfter`, seconds since the epoch.
    pub(crate) not_after: i64,
}

/// What a reload of the certificate and key did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CertificateReload {
    Unchanged,
    /// A new pair serves new handshakes; its leaf expires at `not_after` (Unix seconds).
    Loaded {
        not_after: i64,
    },
    /// The files do not make a usable pair; the previous one keeps serving. The message
    /// names the file and the problem, never key material.
    Rejected(String),
}

/// The certificate and key the gateway serves, swapped when their files change.
#[derive(Debug)]
pub(crate) struct ServingCertificate {
    pair: WatchedFiles<LoadedPair>,
    provider: Arc<CryptoProvider>,
}

impl ServingCertificate {
    /// Loads the pair at start-up; a pair that does not load is fatal here (there is no
    /// last good one to keep serving).
    pub(crate) fn load(
        cert_file: &std::path::Path,
        key_file: &std::path::Path,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let files = vec![cert_file.to_owned(), key_file.to_owned()];
        let pair = WatchedFiles::load(files.clone(), |c| parse_pair(&files, c, &provider))?;
        Ok(ServingCertificate { pair, provider })
    }

    /// When the certificate serving now expires, seconds since the epoch.
    pub(crate) fn not_after(&self) -> i64 {
        self.pair.current().not_after
    }

    /// Re-reads both files; serves the pair they hold if it changed and loads.
    pub(crate) fn reload(&self) -> CertificateReload {
        let files = self.pair.files();
        match self.pair.reload(|c| parse_pair(files, c, &self.provider)) {
            FileReload::Unchanged => CertificateReload::Unchanged,
            FileReload::Loaded(pair) => CertificateReload::Loaded {
                not_after: pair.not_after,
            },
            FileReload::Rejected(message) => CertificateReload::Rejected(message),
        }
    }

    fn cert_file(&self) -> &std::path::Path {
        &self.pair.files()[0]
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.pair.current().key))
    }
}

/// The caller-facing TLS: the serving certificate, and the handshake configuration built
/// with it; with mutual TLS that configuration is rebuilt from the client CA bundle when
/// the bundle changes (the certificate is looked up at each handshake and needs no
/// rebuild).
#[derive(Debug)]
pub(crate) struct TlsServer {
    certificate: Arc<ServingCertificate>,
    config: HandshakeConfig,
}

/// What each new connection's handshake runs with.
#[derive(Debug)]
enum HandshakeConfig {
    /// Server authentication only: built once.
    Fixed(Arc<rustls::ServerConfig>),
    /// Mutual TLS: built from the client CA bundle (`tls.client_ca_file`), whose file is
    /// watched. The configuration, not just the CAs, is the watched value, so a bundle
    /// counts as loaded only once new handshakes use it.
    ClientCertificates(WatchedFiles<rustls::ServerConfig>),
}

impl TlsServer {
    /// Loads every file of `config`; any that does not load is fatal at start.
    pub(crate) fn start(config: &TlsConfig) -> Result<Arc<TlsServer>, String> {
        let certificate = Arc::new(ServingCertificate::load(
            &config.cert_file,
            &config.key_file,
        )?);
        let handshake = match &config.client_ca_file {
            None => HandshakeConfig::Fixed(Arc::new(server_config(&certificate, None)?)),
            Some(file) => {
                HandshakeConfig::ClientCertificates(WatchedFiles::load(vec![file.clone()], |c| {
                    mutual_tls_config(&certificate, file, c)
                })?)
            }
        };
        Ok(Arc::new(TlsServer {
            certificate,
            config: handshake,
        }))
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(match &self.config {
            HandshakeConfig::Fixed(config) => Arc::clone(config),
            HandshakeConfig::ClientCertificates(watched) => watched.current(),
        })
    }

    /// Reloads the files whenever they change, until the returned task is aborted; counts
    /// each attempt that changed something and reports the expiry serving now.
    pub(crate) fn watch(
        self: Arc<Self>,
        poll: std::time::Duration,
        metrics: Arc<GatewayMetrics>,
    ) -> tokio::task::JoinHandle<()> {
        metrics
            .set_tls_certificate_expiry(self.certificate.cert_file(), self.certificate.not_after());
        let mut files: Vec<PathBuf> = self.certificate.pair.files().to_vec();
        if let HandshakeConfig::ClientCertificates(watched) = &self.config {
            files.extend_from_slice(watched.files());
        }
        let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        crate::file_watch::watch_files(&paths, poll, move || {
            self.reload_certificate(&metrics);
            self.reload_client_cas(&metrics);
        })
    }

    fn reload_certificate(&self, metrics: &GatewayMetrics) {
        let cert_file = self.certificate.cert_file();
        match self.certificate.reload() {
            CertificateReload::Unchanged => {}
            CertificateReload::Loaded { not_after } => {
                count(metrics, "serving", "applied");
                metrics.set_tls_certificate_expiry(cert_file, not_after);
                tracing::info!(
                    tls.cert_file = %cert_file.display(),
                    tls.not_after = not_after,
                    "TLS certificate reloaded; new connections get it"
                );
            }
            CertificateReload::Rejected(message) => {
                count(metrics, "serving", "rejected");
                tracing::error!(
                    "TLS certificate and key rejected, keeping the pair serving now: {message}"
                );
            }
        }
    }

    fn reload_client_cas(&self, metrics: &GatewayMetrics) {
        let HandshakeConfig::ClientCertificates(watched) = &self.config else {
            return;
        };
        let file = &watched.files()[0];
        match watched.reload(|c| mutual_tls_config(&self.certificate, file, c)) {
            FileReload::Unchanged => {}
            FileReload::Loaded(_) => {
                count(metrics, "client_ca", "applied");
                tracing::info!(
                    tls.client_ca_file = %file.display(),
                    "client CAs reloaded; new connections are verified against them"
                );
            }
            FileReload::Rejected(message) => {
                count(metrics, "client_ca", "rejected");
                tracing::error!("client CAs rejected, keeping those in force: {message}");
            }
        }
    }
}

/// Mutual TLS with the client CAs in `contents` (the bytes of `file`).
fn mutual_tls_config(
    certificate: &Arc<ServingCertificate>,
    file: &std::path::Path,
    contents: &[Vec<u8>],
) -> Result<rustls::ServerConfig, String> {
    let verifier = client_verifier(file, contents, &certificate.provider)?;
    server_config(certificate, Some(verifier))
}

fn count(metrics: &GatewayMetrics, files: &'static str, result: &'static str) {
    metrics
        .tls_certificate_reloads
        .get_or_create(&ReloadLabels { files, result })
        .inc();
}

/// TLS serving `certificate` (whichever pair it holds at each handshake); ALPN offers h2
/// only. With a client verifier, every client must present a certificate it accepts
/// (mutual TLS), or the handshake fails.
fn server_config(
    certificate: &Arc<ServingCertificate>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<rustls::ServerConfig, String> {
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&certificate.provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mutual = client_verifier.is_some();
    let builder = match client_verifier {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut config =
        builder.with_cert_resolver(Arc::clone(certificate) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec()];
    if mutual {
        // No session resumption: a resumed handshake carries the client certificate of
        // the session it resumes without verifying it again, so a caller (or whoever
        // holds its resumption secret) could keep an identity past its certificate's
        // expiry or its CA's removal, without the private key. Every connection of a
        // mutual-TLS caller does a full handshake.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}

/// Verifies client certificates against the CAs in `file`'s `contents` (PEM); a client
/// without one is refused.
fn client_verifier(
    file: &std::path::Path,
    contents: &[Vec<u8>],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let pem = contents.first().map_or(&[][..], Vec::as_slice);
    let roots = ca_bundle("tls.client_ca_file", file, pem, "client certificates")?;
    let at = |e: &dyn std::fmt::Display| format!("tls.client_ca_file {}: {e}", file.display());
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(provider),
    )
    .build()
    .map_err(|e| at(&e))
}

/// The CAs in `pem` (the bytes of `file`, set as `field`), which issue `what`; a bundle
/// without one is refused, as is any block that does not parse.
pub(crate) fn ca_bundle(
    field: &str,
    file: &std::path::Path,
    pem: &[u8],
    what: &str,
) -> Result<rustls::RootCertStore, String> {
    let at = |e: &dyn std::fmt::Display| format!("{field} {}: {e}", file.display());
    let cas = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| at(&e))?;
    }
    if roots.is_empty() {
        return Err(at(&format_args!(
            "expected PEM CERTIFICATE blocks of the CAs that issue {what}, found none"
        )));
    }
    Ok(roots)
}

/// The pair in `contents` (the certificate file's bytes, then the key file's), with
/// errors naming `files`.
pub(crate) fn parse_pair(
    files: &[PathBuf],
    contents: &[Vec<u8>],
    provider: &CryptoProvider,
) -> Result<LoadedPair, String> {
    let (Some(cert_file), Some(key_file), [cert_pem, key_pem]) =
        (files.first(), files.get(1), contents)
    else {
        return Err("expected a certificate file and a key file".to_owned());
    };
    let cert_error = |e: &dyn std::fmt::Display| format!("{}: {e}", cert_file.display());
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(&e))?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_error(&"expected a PEM CERTIFICATE block, found none"))?;
    let not_after = crate::x509::not_after(leaf)
        .map_err(|e| cert_error(&format_args!("the first certificate's validity: {e}")))?;
    // The key's own parse error would say nothing more useful, and must never echo it.
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
        format!(
            "{}: expected a PEM private key (PKCS#8, PKCS#1 or SEC1)",
            key_file.display()
        )
    })?;
    let signing_key = provider.key_provider.load_private_key(key).map_err(|_| {
        format!(
            "{}: expected a PEM private key (ECDSA, Ed25519 or RSA) that parses",
            key_file.display()
        )
    })?;
    let key = CertifiedKey::new(chain, signing_key);
    // As rustls' own `CertifiedKey::from_der`: a key whose public half cannot be
    // compared is accepted; one that compares different is not.
    match key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(format!(
                "{} and {}: the key is not the certificate's ({e})",
                key_file.display(),
                cert_file.display()
            ));
        }
    }
    Ok(LoadedPair {
        key: Arc::new(key),
        not_after,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::path::Path;

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    /// A directory holding `tls.crt` and `tls.key` as a Kubernetes TLS Secret does.
    struct SecretDir(PathBuf);

    impl SecretDir {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("discreet-tls-{test}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let d = SecretDir(dir);
            d.write(&fixture("tls-cert.pem"), &fixture("tls-key.pem"));
            d
        }
        fn cert(&self) -> PathBuf {
            self.0.join("tls.crt")
        }
        fn key(&self) -> PathBuf {
            self.0.join("tls.key")
        }
        fn write(&self, cert: &[u8], key: &[u8]) {
            std::fs::write(self.cert(), cert).unwrap();
            std::fs::write(self.key(), key).unwrap();
        }
    }

    impl Drop for SecretDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The leaf certificate a handshake would be given now.
    fn served(certificate: &ServingCertificate) -> Vec<u8> {
        certificate.pair.current().key.cert[0].to_vec()
    }

    fn leaf(pem: &[u8]) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem).unwrap().to_vec()
    }

    const FIRST_NOT_AFTER: i64 = 4_949_042_733; // 2126-10-30T14:05:33Z
    const RENEWED_NOT_AFTER: i64 = 4_905_942_922; // 2125-06-18T17:55:22Z

    #[test]
    fn a_renewed_pair_serves_new_handshakes() {
        let dir = SecretDir::new("renew");
        let certificate = ServingCertificate::load(&dir.cert(), &dir.key()).unwrap();
        assert_eq!(certificate.not_after(), FIRST_NOT_AFTER);
        assert_eq!(served(&certificate), leaf(&fixture("tls-cert.pem")));
        assert_eq!(certificate.reload(), CertificateReload::Unchanged);

        dir.write(&fixture("renewed-cert.pem"), &fixture("renewed-key.pem"));
        assert_eq!(
            certificate.reload(),
            CertificateReload::Loaded {
                not_after: RENEWED_NOT_AFTER
            }
        );
        assert_eq!(served(&certificate), leaf(&fixture("renewed-cert.pem")));
        assert_eq!(certificate.not_after(), RENEWED_NOT_AFTER);
        assert_eq!(certificate.reload(), CertificateReload::Unchanged);
    }

    #[test]
    fn a_bad_pair_is_refused_once_and_the_last_good_one_keeps_serving() {
        let dir = SecretDir::new("refuse");
        let certificate = ServingCertificate::load(&dir.cert(), &dir.key()).unwrap();
        let first = served(&certificate);
        let key_pem = String::from_utf8(fixture("tls-key.pem")).unwrap();
        let key_line = key_pem.lines().nth(1).unwrap();
        let cases: [(&str, Vec<u8>, Vec<u8>, &str); 4] = [
            // Renewed certificate, old key: what a renewal written file by file looks
            // like between the two writes.
            (
                "mismatch",
                fixture("renewed-cert.pem"),
                fixture("tls-key.pem"),
                "the key is not the certificate's",
            ),
            (
                "no certificate",
                b"garbage".to_vec(),
                fixture("tls-key.pem"),
                "found none",
            ),
            (
                "no key",
                fixture("tls-cert.pem"),
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec(),
                "tls.key: expected a PEM private key",
            ),
            (
                "half-written certificate",
                fixture("tls-cert.pem")[..300].to_vec(),
                fixture("tls-key.pem"),
                "tls.crt",
            ),
        ];
        for (case, cert, key, expected) in cases {
            dir.write(&cert, &key);
            match certificate.reload() {
                CertificateReload::Rejected(message) => {
                    assert!(message.contains(expected), "{case}: {message}");
                    assert!(
                        !message.contains(key_line),
                        "{case}: key material in {message}"
                    );
                }
                other => panic!("{case}: {other:?}"),
            }
            assert_eq!(
                certificate.reload(),
                CertificateReload::Unchanged,
                "{case}: reported once"
            );
            assert_eq!(
                served(&certificate),
                first,
                "{case}: the last good pair serves"
            );
            assert_eq!(certificate.not_after(), FIRST_NOT_AFTER);
        }
        // A file gone (mid-swap) is refused too; the renewal then completes.
        std::fs::remove_file(dir.key()).unwrap();
        assert!(
            matches!(certificate.reload(), CertificateReload::Rejected(m) if m.contains("tls.key"))
        );
        dir.write(&fixture("renewed-cert.pem"), &fixture("renewed-key.pem"));
        assert!(matches!(
            certificate.reload(),
            CertificateReload::Loaded { .. }
        ));
        assert_eq!(served(&certificate), leaf(&fixture("renewed-cert.pem")));
    }

    #[test]
    fn a_bad_pair_at_start_is_an_error_naming_the_file() {
        let dir = SecretDir::new("start");
        dir.write(&fixture("renewed-cert.pem"), &fixture("tls-key.pem"));
        let e = ServingCertificate::load(&dir.cert(), &dir.key()).unwrap_err();
        assert!(e.contains("tls.crt") && e.contains("tls.key"), "{e}");
    }

    #[test]
    fn mutual_tls_never_resumes_a_session() {
        let dir = SecretDir::new("resume");
        let certificate = Arc::new(ServingCertificate::load(&dir.cert(), &dir.key()).unwrap());
        let ca =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/client-ca-cert.pem");
        let mutual = mutual_tls_config(&certificate, &ca, &[std::fs::read(&ca).unwrap()]).unwrap();
        // A resumed session would carry a client certificate without verifying it again.
        assert_eq!(mutual.send_tls13_tickets, 0);
        assert!(!mutual.session_storage.can_cache());
        assert!(!mutual.ticketer.enabled());
        // Server authentication alone keeps rustls' resumption.
        let plain = server_config(&certificate, None).unwrap();
        assert!(plain.send_tls13_tickets > 0 && plain.session_storage.can_cache());
    }

    #[test]
    fn a_bundle_without_a_ca_is_refused() {
        let dir = SecretDir::new("bundle");
        let certificate = Arc::new(ServingCertificate::load(&dir.cert(), &dir.key()).unwrap());
        let e = mutual_tls_config(&certificate, Path::new("ca.crt"), &[b"no CA here".to_vec()])
            .unwrap_err();
        assert!(
            e.contains("tls.client_ca_file ca.crt") && e.contains("found none"),
            "{e}"
        );
    }
}
