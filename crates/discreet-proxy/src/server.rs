//! Accepting connections: HTTP/2 only (gRPC needs nothing else), over TCP or TLS, with
//! the protocol limits that keep one abusive connection from taking the process down,
//! and a graceful shutdown that lets calls in flight finish.
use std::{convert::Infallible, sync::Arc, time::Duration};

use discreet_config::Limits;
use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::service::Core;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves, then stops accepting and drains for up to
/// `limits.shutdown_grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    core: Arc<Core>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_bytes)
        // Rapid reset (CVE-2023-44487) and error-reset floods: a connection that makes
        // the server reset streams too often is closed.
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256))
        // What a stream may queue toward a slow reader beyond its window (hyper's default
        // is 400 KiB): with the upstream window this bounds a stream's memory.
        .max_send_buf_size(128 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, do not spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let core = Arc::clone(&core);
                let service = service_fn(move |request| {
                    let core = Arc::clone(&core);
                    async move { Ok::<_, Infallible>(core.handle(request).await) }
                });
                let watcher = graceful.watcher();
                let builder = Arc::clone(&builder);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await,
                        Some(acceptor) => {
                            let Ok(Ok(stream)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
                                return;
                            };
                            watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
    }
}

/// A TLS acceptor from PEM files; ALPN offers h2 only.
pub(crate) fn tls_acceptor(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
