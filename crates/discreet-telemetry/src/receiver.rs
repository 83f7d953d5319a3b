//! A small in-process OTLP/gRPC trace receiver: what the tests, the demo and the load
//! benchmark export to when no OpenTelemetry Collector runs. It keeps every request it
//! receives and can write them as OTLP JSON lines, the format of the Collector's `file`
//! exporter, which `discreet audit` reads.
//!
//! It can be stopped and started again on the same address, to show what the gateway
//! does while its collector is away, and it can serve TLS (optionally asking for client
//! certificates), as a collector reached over the network does.
use std::{
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// What the receiver has been sent, and the metadata it requires of a request.
#[derive(Debug, Default, Clone)]
struct Received {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    /// Names and the values a request must carry under them, as a collector that checks
    /// a bearer token or an API key, or routes by tenant, does.
    required: Arc<Mutex<Vec<(String, String)>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let required = self
            .required
            .lock()
            .map_err(|_| tonic::Status::internal("receiver state poisoned"))?
            .clone();
        for (name, value) in required {
            let sent = request.metadata().get(name.as_str()).map(|v| v.as_bytes());
            if sent != Some(value.as_bytes()) {
                // As a collector answers: the name, never what was sent.
                return Err(tonic::Status::unauthenticated(format!(
                    "missing or wrong {name}"
                )));
            }
        }
        let mut requests = self
            .requests
            .lock()
            .map_err(|_| tonic::Status::internal("receiver state poisoned"))?;
        requests.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// What serves while the receiver runs: the server task, what stops it, and (with TLS)
/// the task accepting connections, which owns the listening socket.
#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    accepting: Option<JoinHandle<()>>,
}

/// A running (or stopped) receiver.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Received,
    running: Option<Running>,
    max_request_bytes: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl OtlpReceiver {
    /// Starts on `listener` (bind `127.0.0.1:0` for a free port).
    pub fn start(listener: TcpListener) -> std::io::Result<Self> {
        Self::start_with_limit(listener, 4 * 1024 * 1024)
    }

    /// Starts on `listener`, refusing requests over `max_request_bytes` as a collector
    /// with a smaller `max_recv_msg_size` does.
    pub fn start_with_limit(
        listener: TcpListener,
        max_request_bytes: usize,
    ) -> std::io::Result<Self> {
        Self::start_inner(listener, max_request_bytes, None)
    }

    /// Starts on `listener`, serving TLS with `config` (see [`tls_server_config`]).
    pub fn start_tls(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        Self::start_inner(listener, 4 * 1024 * 1024, Some(config))
    }

    fn start_inner(
        listener: TcpListener,
        max_request_bytes: usize,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let mut receiver = OtlpReceiver {
            addr,
            received: Received::default(),
            running: None,
            max_request_bytes,
            tls,
        };
        receiver.serve(listener);
        Ok(receiver)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let service = TraceServiceServer::new(self.received.clone())
            .max_decoding_message_size(self.max_request_bytes);
        let router = tonic::transport::Server::builder().add_service(service);
        let stop = async {
            let _ = stop_rx.await;
        };
        let (server, accepting) = match self.tls.clone() {
            None => {
                let serving = router.serve_with_incoming_shutdown(
                    // No Nagle delay on export responses, as a collector answers.
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    stop,
                );
                (tokio::spawn(report_stop(serving)), None)
            }
            Some(config) => {
                let (tx, rx) = tokio::sync::mpsc::channel(16);
                let accepting = tokio::spawn(accept_tls(
                    listener,
                    tokio_rustls::TlsAcceptor::from(config),
                    tx,
                ));
                let serving = router.serve_with_incoming_shutdown(
                    tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(rx),
                    stop,
                );
                (tokio::spawn(report_stop(serving)), Some(accepting))
            }
        };
        self.running = Some(Running {
            stop: stop_tx,
            server,
            accepting,
        });
    }

    /// `http://127.0.0.1:<port>` (`https://localhost:<port>` when serving TLS: the name
    /// the test certificates carry): the endpoint to configure as `audit.endpoint`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and closes the port: exporters see connection refused.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.server.await;
            // The accepting task owns the socket: the port is closed once it is gone.
            if let Some(accepting) = running.accepting {
                accepting.abort();
                let _ = accepting.await;
            }
        }
    }

    /// Serves again on the same address.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    /// From now on, refuses (`UNAUTHENTICATED`) export requests that do not carry each
    /// `(name, value)` as metadata; an empty list accepts every request again.
    pub fn require_metadata(&self, required: &[(&str, &str)]) {
        if let Ok(mut r) = self.received.required.lock() {
            *r = required
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect();
        }
    }

    /// Every export request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.received
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Every span received so far, in arrival order.
    #[must_use]
    pub fn spans(&self) -> Vec<Span> {
        self.requests()
            .into_iter()
            .flat_map(|r| r.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        if let Ok(mut r) = self.received.requests.lock() {
            r.clear();
        }
    }

    /// Writes every request received as OTLP JSON, one request per line, as the
    /// OpenTelemetry Collector's `file` exporter does.
    pub fn write_otlp_json(&self, path: &Path) -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for request in self.requests() {
            serde_json::to_writer(&mut file, &request)?;
            file.write_all(b"\n")?;
        }
        file.flush()
    }
}

async fn report_stop(
    serving: impl std::future::Future<Output = Result<(), tonic::transport::Error>>,
) {
    if let Err(e) = serving.await {
        tracing::warn!("OTLP receiver stopped: {e}");
    }
}

/// A TLS server configuration from PEM: the receiver's certificate chain and key, and, if
/// given, the CAs whose client certificates it requires (mutual TLS). ALPN offers `h2`.
pub fn tls_server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("key: {e}"))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(ca.map_err(|e| format!("client CA: {e}"))?)
                    .map_err(|e| format!("client CA: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts TCP connections and hands those whose TLS handshake succeeds to the server. A
/// failed handshake (a client that does not trust the receiver, or presents no
/// certificate it accepts) closes that connection only.
async fn accept_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    connections: tokio::sync::mpsc::Sender<std::io::Result<TlsConnection>>,
) {
    while !connections.is_closed() {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            // A failed accept (a connection reset before it was taken, descriptors
            // exhausted for a moment) ends that connection, not the receiver.
            Err(e) => {
                tracing::debug!("OTLP receiver: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            // A client that connects and never finishes its handshake holds nothing for long.
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            match handshake.await {
                Ok(Ok(stream)) => {
                    let _ = connections.send(Ok(TlsConnection(stream))).await;
                }
                Ok(Err(e)) => tracing::debug!("OTLP receiver: TLS handshake failed: {e}"),
                Err(_) => tracing::debug!("OTLP receiver: TLS handshake timed out"),
            }
        });
    }
}

/// A TLS connection as tonic's server takes it (tonic implements `Connected` for TLS
/// streams only when built with its own TLS).
struct TlsConnection(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for TlsConnection {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl tokio::io::AsyncRead for TlsConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.server.abort();
            if let Some(accepting) = running.accepting {
                accepting.abort();
            }
        }
    }
}
