//! Serving TLS from a certificate and key in PEM files, and taking a renewed pair without
//! a restart.
//!
//! Certificates are short-lived in Kubernetes (cert-manager renews at two thirds of their
//! life, a mesh CA within a day), and a sidecar that read them only at start would serve
//! an expired certificate until someone restarted every pod. So the files are watched
//! (`file_watch.rs`), and each new handshake gets the pair loaded last. A pair that does
//! not load (unparseable, the key not the certificate's, a half-written file) is refused
//! and the last good one keeps serving: a bad renewal never takes TLS down. Connections
//! already open keep the certificate they were made with, as in any TLS server.
use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;

/// One certificate chain and key as loaded.
#[derive(Debug)]
struct LoadedPair {
    key: Arc<CertifiedKey>,
    /// Of both files' bytes: a reload that finds the same bytes does nothing.
    digest: [u8; 32],
    /// The leaf certificate's `notAfter`, seconds since the epoch.
    not_after: i64,
}

/// What a reload attempt did.
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
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<LoadedPair>>,
    /// The digest of the last refused pair, so it is reported once, not on every poll.
    last_rejected: RwLock<Option<[u8; 32]>>,
}

impl ServingCertificate {
    /// Loads the pair at start-up; a pair that does not load is fatal here (there is no
    /// last good one to keep serving).
    pub(crate) fn load(cert_file: &Path, key_file: &Path) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pair = load_pair(cert_file, key_file, &provider)?;
        Ok(ServingCertificate {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            last_rejected: RwLock::new(None),
        })
    }

    /// When the certificate serving now expires, seconds since the epoch.
    pub(crate) fn not_after(&self) -> i64 {
        self.current().not_after
    }

    /// The files, to watch.
    pub(crate) fn files(&self) -> [&Path; 2] {
        [&self.cert_file, &self.key_file]
    }

    /// Re-reads both files; serves the pair they hold if it changed and loads.
    pub(crate) fn reload(&self) -> CertificateReload {
        // What the files hold now, or why they cannot be read (mid-replacement a file can
        // briefly vanish; deleted, it stays gone): either way a state, reported once.
        let (digest, unreadable) = match read_both(&self.cert_file, &self.key_file) {
            Ok((cert, key)) => (digest(&cert, &key), None),
            Err(message) => (digest(message.as_bytes(), b"unreadable"), Some(message)),
        };
        if digest == self.current().digest {
            self.set_last_rejected(None);
            return CertificateReload::Unchanged;
        }
        if let Ok(last) = self.last_rejected.read()
            && *last == Some(digest)
        {
            return CertificateReload::Unchanged;
        }
        let loaded = match unreadable {
            Some(message) => Err(message),
            None => load_pair(&self.cert_file, &self.key_file, &self.provider),
        };
        match loaded {
            // The files may have changed again between the two reads: the pair loaded
            // carries the digest of what was actually parsed.
            Ok(pair) => {
                let not_after = pair.not_after;
                match self.current.write() {
                    Ok(mut guard) => *guard = Arc::new(pair),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(pair),
                }
                self.set_last_rejected(None);
                CertificateReload::Loaded { not_after }
            }
            Err(message) => {
                self.set_last_rejected(Some(digest));
                CertificateReload::Rejected(message)
            }
        }
    }

    fn set_last_rejected(&self, digest: Option<[u8; 32]>) {
        if let Ok(mut last) = self.last_rejected.write() {
            *last = digest;
        }
    }

    fn current(&self) -> Arc<LoadedPair> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            // A writer panicked mid-swap; the Arc inside is still a whole pair.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current().key))
    }
}

/// A TLS acceptor serving `certificate` (whichever pair it holds at each handshake);
/// ALPN offers h2 only. With `client_ca_file`, every client must present a certificate
/// that chains to one of its CAs (mutual TLS), or the handshake fails.
pub(crate) fn acceptor(
    certificate: &Arc<ServingCertificate>,
    client_ca_file: Option<&Path>,
) -> Result<TlsAcceptor, String> {
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&certificate.provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(file) => {
            builder.with_client_cert_verifier(client_verifier(file, &certificate.provider)?)
        }
    };
    let mut config =
        builder.with_cert_resolver(Arc::clone(certificate) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Verifies client certificates against the CAs in `file` (PEM); a client without one
/// is refused.
fn client_verifier(
    file: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let at = |e: &dyn std::fmt::Display| format!("tls.client_ca_file {}: {e}", file.display());
    let cas = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| at(&e))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| at(&e))?;
    }
    if roots.is_empty() {
        return Err(at(
            &"expected PEM CERTIFICATE blocks of the CAs that issue client certificates, found none",
        ));
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(provider),
    )
    .build()
    .map_err(|e| at(&e))
}

fn read_both(cert_file: &Path, key_file: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
    Ok((read(cert_file)?, read(key_file)?))
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(u64::try_from(cert.len()).unwrap_or(u64::MAX).to_le_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<LoadedPair, String> {
    let (cert_pem, key_pem) = read_both(cert_file, key_file)?;
    let cert_error = |e: &dyn std::fmt::Display| format!("{}: {e}", cert_file.display());
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(&e))?;
    let leaf = chain
        .first()
        .ok_or_else(|| cert_error(&"expected a PEM CERTIFICATE block, found none"))?;
    let not_after = crate::x509::not_after(leaf)
        .map_err(|e| cert_error(&format_args!("the first certificate's validity: {e}")))?;
    // The key's own parse error would say nothing more useful, and must never echo it.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
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
        digest: digest(&cert_pem, &key_pem),
        not_after,
    })
}

impl ServingCertificate {
    /// Reloads the pair whenever its files change, until the returned task is aborted;
    /// counts each attempt that changed something and reports the expiry serving now.
    pub(crate) fn watch(
        self: Arc<Self>,
        poll: std::time::Duration,
        metrics: Arc<discreet_telemetry::metrics::GatewayMetrics>,
    ) -> tokio::task::JoinHandle<()> {
        metrics.set_tls_certificate_expiry(&self.cert_file, self.not_after());
        let files = self.files().map(Path::to_path_buf);
        let count = |metrics: &discreet_telemetry::metrics::GatewayMetrics, result| {
            metrics
                .tls_certificate_reloads
                .get_or_create(&discreet_telemetry::metrics::ResultLabels { result })
                .inc();
        };
        crate::file_watch::watch_files(&[&files[0], &files[1]], poll, move || match self.reload() {
            CertificateReload::Unchanged => {}
            CertificateReload::Loaded { not_after } => {
                count(&metrics, "applied");
                metrics.set_tls_certificate_expiry(&self.cert_file, not_after);
                tracing::info!(
                    tls.cert_file = %self.cert_file.display(),
                    tls.not_after = not_after,
                    "TLS certificate reloaded; new connections get it"
                );
            }
            CertificateReload::Rejected(message) => {
                count(&metrics, "rejected");
                tracing::error!(
                    "TLS certificate and key rejected, keeping the pair serving now: {message}"
                );
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
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
        certificate.current().key.cert[0].to_vec()
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
}
