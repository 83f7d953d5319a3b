//! TLS to an `https://` OpenTelemetry Collector (`audit.tls`): the CAs that issue the
//! collector's certificate, the name it must carry, and a client certificate for a
//! collector that asks for one.
//!
//! The access spans carry who read whose data for what (pseudonymous subjects, callers,
//! purposes): a collector reached over the network gets them encrypted and authenticated,
//! not in cleartext. As for the serving certificate (`tls.rs`), the files are watched:
//! cert-manager renews a client certificate and trust-manager rotates a CA bundle in
//! place, and the exporter's next connection uses what was loaded last; files that do not
//! load leave the last good ones in use.
use std::{path::PathBuf, sync::Arc};

use discreet_config::CollectorTlsConfig;
use discreet_telemetry::{
    CollectorTls,
    metrics::{GatewayMetrics, ReloadLabels},
};
use rustls::{
    SignatureScheme, client::ResolvesClientCert, crypto::CryptoProvider, sign::CertifiedKey,
};
use rustls_pki_types::ServerName;

use crate::watched_files::{FileReload, WatchedFiles};

/// Which of the watched files is which (their order in [`WatchedFiles`]).
#[derive(Debug, Clone)]
struct CollectorTlsFiles {
    ca_file: Option<PathBuf>,
    /// Certificate chain and key, together or not at all (validated).
    client_pair: Option<(PathBuf, PathBuf)>,
}

impl CollectorTlsFiles {
    fn in_order(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.ca_file.iter().cloned().collect();
        if let Some((cert, key)) = &self.client_pair {
            files.extend([cert.clone(), key.clone()]);
        }
        files
    }
}

/// A client configuration as loaded, and when its client certificate expires.
#[derive(Debug)]
struct LoadedClientConfig {
    config: Arc<rustls::ClientConfig>,
    /// The client certificate's `notAfter` (Unix seconds), if one is presented.
    not_after: Option<i64>,
}

/// The collector's TLS, reloaded when its files change.
#[derive(Debug)]
pub(crate) struct CollectorTlsState {
    files: CollectorTlsFiles,
    current: WatchedFiles<LoadedClientConfig>,
    server_name: ServerName<'static>,
    provider: Arc<CryptoProvider>,
}

impl CollectorTlsState {
    /// Loads every file; any that does not load is fatal at start. `endpoint_host` is the
    /// endpoint's host, the name verified unless `server_name` is set.
    pub(crate) fn load(
        config: &CollectorTlsConfig,
        endpoint_host: &str,
    ) -> Result<Arc<Self>, String> {
        let name = config.server_name.as_deref().unwrap_or(endpoint_host);
        let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
            format!("audit.tls.server_name `{name}`: expected a DNS name or IP address")
        })?;
        let files = CollectorTlsFiles {
            ca_file: config.ca_file.clone(),
            client_pair: config.cert_file.clone().zip(config.key_file.clone()),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = WatchedFiles::load(files.in_order(), |contents| {
            client_config(&files, contents, &provider)
        })?;
        Ok(Arc::new(CollectorTlsState {
            files,
            current,
            server_name,
            provider,
        }))
    }

    /// What the exporter connects with: the configuration loaded last, looked up at each
    /// connection.
    pub(crate) fn exporter_tls(self: &Arc<Self>) -> CollectorTls {
        let state = Arc::clone(self);
        CollectorTls {
            server_name: self.server_name.clone(),
            config: Arc::new(move || Arc::clone(&state.current.current().config)),
        }
    }

    /// Reloads the files whenever they change, until the returned task is aborted (no task
    /// when there are no files: the Mozilla roots do not change while the gateway runs).
    pub(crate) fn watch(
        self: Arc<Self>,
        poll: std::time::Duration,
        metrics: Arc<GatewayMetrics>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.report_expiry(&metrics);
        let files = self.files.in_order();
        if files.is_empty() {
            return None;
        }
        let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        Some(crate::file_watch::watch_files(&paths, poll, move || {
            self.reload(&metrics);
        }))
    }

    fn reload(&self, metrics: &GatewayMetrics) {
        let reloaded = self
            .current
            .reload(|contents| client_config(&self.files, contents, &self.provider));
        let count = |result: &'static str| {
            metrics
                .tls_certificate_reloads
                .get_or_create(&ReloadLabels {
                    files: "collector",
                    result,
                })
                .inc();
        };
        match reloaded {
            FileReload::Unchanged => {}
            FileReload::Loaded(_) => {
                count("applied");
                self.report_expiry(metrics);
                tracing::info!(
                    "audit.tls files reloaded; the next connection to the collector uses them"
                );
            }
            FileReload::Rejected(message) => {
                count("rejected");
                tracing::error!("audit.tls files rejected, keeping those in use: {message}");
            }
        }
    }

    fn report_expiry(&self, metrics: &GatewayMetrics) {
        if let (Some((cert_file, _)), Some(not_after)) =
            (&self.files.client_pair, self.current.current().not_after)
        {
            metrics.set_tls_certificate_expiry(cert_file, not_after);
        }
    }
}

/// The client configuration from the files' `contents` (in [`CollectorTlsFiles::in_order`]
/// order).
fn client_config(
    files: &CollectorTlsFiles,
    contents: &[Vec<u8>],
    provider: &Arc<CryptoProvider>,
) -> Result<LoadedClientConfig, String> {
    let mut rest = contents;
    let roots = match &files.ca_file {
        Some(file) => {
            let (pem, after) = rest
                .split_first()
                .ok_or_else(|| format!("{}: not read", file.display()))?;
            rest = after;
            crate::tls::ca_bundle(
                "audit.tls.ca_file",
                file,
                pem,
                "the collector's certificate",
            )?
        }
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let (mut config, not_after) = match &files.client_pair {
        Some((cert_file, key_file)) => {
            let pair =
                crate::tls::parse_pair(&[cert_file.clone(), key_file.clone()], rest, provider)
                    .map_err(|e| format!("audit.tls: {e}"))?;
            let config = builder.with_client_cert_resolver(Arc::new(ClientCertificate(pair.key)));
            (config, Some(pair.not_after))
        }
        None => (builder.with_no_client_auth(), None),
    };
    // gRPC over TLS is HTTP/2 negotiated by ALPN; the Collector (grpc-go) refuses a
    // handshake that offers none.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(LoadedClientConfig {
        config: Arc::new(config),
        not_after,
    })
}

/// The client certificate, presented whenever the collector asks for one.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name)
    }

    fn config(ca: Option<&str>, client: Option<&str>) -> CollectorTlsConfig {
        CollectorTlsConfig {
            ca_file: ca.map(fixture),
            server_name: None,
            cert_file: client.map(|c| fixture(&format!("{c}-cert.pem"))),
            key_file: client.map(|c| fixture(&format!("{c}-key.pem"))),
        }
    }

    #[test]
    fn loads_a_ca_bundle_and_a_client_certificate_and_offers_h2() {
        let state = CollectorTlsState::load(
            &config(Some("ca-cert.pem"), Some("client-recommender")),
            "collector.example",
        )
        .unwrap();
        let tls = state.exporter_tls();
        assert_eq!(
            tls.server_name,
            ServerName::try_from("collector.example").unwrap()
        );
        let client = (tls.config)();
        assert_eq!(client.alpn_protocols, [b"h2".to_vec()]);
        assert!(client.client_auth_cert_resolver.has_certs());
        // The fixture client certificate expires in 2125.
        assert!(state.current.current().not_after.unwrap() > 4_000_000_000);
    }

    #[test]
    fn without_files_the_mozilla_roots_and_no_client_certificate() {
        let state = CollectorTlsState::load(&config(None, None), "collector.example").unwrap();
        let client = (state.exporter_tls().config)();
        assert!(!client.client_auth_cert_resolver.has_certs());
        assert!(state.current.current().not_after.is_none());
        assert!(state.files.in_order().is_empty());
    }

    #[test]
    fn the_configured_server_name_wins_over_the_endpoint_host() {
        let mut c = config(None, None);
        c.server_name = Some("otel-collector.observability.svc".into());
        let state = CollectorTlsState::load(&c, "10.0.0.7").unwrap();
        assert_eq!(
            state.exporter_tls().server_name,
            ServerName::try_from("otel-collector.observability.svc").unwrap()
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused_naming_it() {
        // A key file holds no CERTIFICATE block.
        let e =
            CollectorTlsState::load(&config(Some("tls-key.pem"), None), "c.example").unwrap_err();
        assert!(e.starts_with("audit.tls.ca_file "), "{e}");
        assert!(e.contains("tls-key.pem"), "{e}");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let mut c = config(Some("ca-cert.pem"), Some("client-recommender"));
        c.key_file = Some(fixture("client-rogue-key.pem"));
        let e = CollectorTlsState::load(&c, "c.example").unwrap_err();
        assert!(e.contains("the key is not the certificate's"), "{e}");
        assert!(
            !e.contains("PRIVATE KEY"),
            "key material in the message: {e}"
        );
    }
}
