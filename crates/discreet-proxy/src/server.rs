//! Accepting connections: HTTP/2 only (gRPC needs nothing else), over TCP or TLS, with
//! the protocol limits that keep one abusive connection from taking the process down,
//! served on the serving threads (`workers.rs`), and a graceful shutdown that lets calls
//! in flight finish.
use std::{convert::Infallible, sync::Arc, time::Duration};

use discreet_config::Limits;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    caller::ClientCertificateCaller,
    idle::ConnectionCalls,
    linger::Lingering,
    request_body::RequestBody,
    service::Core,
    tls::TlsServer,
    workers::{ConnectionHandler, ConnectionLimit, Workers},
};

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts `threads` serving threads (see `workers.rs`) that will serve the connections
/// [`serve`] accepts.
pub(crate) fn start_workers(
    threads: usize,
    tls: Option<Arc<TlsServer>>,
    core: &Arc<Core>,
    limits: &Limits,
) -> Result<Workers, String> {
    let builder = Arc::new(http2_builder(limits));
    let limit = ConnectionLimit {
        max: limits.max_connections,
        open: core.metrics.connections_open.clone(),
        refused: core.metrics.connections_refused.clone(),
    };
    Workers::start(threads, limits.shutdown_grace, limit, |_| {
        Http2Connections {
            core: Arc::clone(core),
            builder: Arc::clone(&builder),
            tls: tls.clone(),
            draining: watch::channel(false).0,
            lingering: Lingering::default(),
            idle_timeout: limits.connection_idle_timeout,
            max_age: limits.max_connection_age,
            grace: limits.shutdown_grace,
        }
    })
}

/// Accepts connections and hands them to `workers` until `shutdown` resolves, then stops
/// accepting and lets each thread drain for up to `limits.shutdown_grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    workers: Workers,
    shutdown: impl Future<Output = ()>,
) {
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
                match stream.into_std() {
                    Ok(stream) => workers.assign(stream),
                    Err(e) => tracing::warn!(error = %e, "cannot hand over an accepted connection"),
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    workers.stop().await;
}

/// HTTP/2 with the protocol limits that keep one abusive connection from taking the
/// process down.
fn http2_builder(limits: &Limits) -> hyper::server::conn::http2::Builder<TokioExecutor> {
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
    builder
}

/// The connections of one serving thread: TLS if configured, then HTTP/2 into
/// [`Core::handle`]. Each thread has its own, so the graceful shutdown is per thread too.
struct Http2Connections {
    core: Arc<Core>,
    builder: Arc<hyper::server::conn::http2::Builder<TokioExecutor>>,
    tls: Option<Arc<TlsServer>>,
    /// Turned true when the thread drains: every connection sends GOAWAY, lets its calls
    /// finish and closes.
    draining: watch::Sender<bool>,
    /// Every connection's socket, until it has closed and lingered: what a drain waits
    /// for (`linger.rs`).
    lingering: Lingering,
    /// `limits.connection_idle_timeout`.
    idle_timeout: Duration,
    /// `limits.max_connection_age` (zero: never).
    max_age: Duration,
    /// `limits.shutdown_grace`: how long an aged connection's calls may take to finish.
    grace: Duration,
}

impl ConnectionHandler for Http2Connections {
    fn serve(&self, stream: tokio::net::TcpStream) -> impl Future<Output = ()> + Send + 'static {
        let calls = Arc::new(ConnectionCalls::default());
        let core = Arc::clone(&self.core);
        let counted = Arc::clone(&calls);
        // Every request of the connection goes to `Core::handle`, with the caller its
        // client certificate names (`identity: spiffe`) in its extensions.
        let service = move |peer: Option<ClientCertificateCaller>| {
            service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let core = Arc::clone(&core);
                let call = counted.begin();
                // From here on an unread request body ends cleanly (`request_body.rs`).
                let mut request = request.map(RequestBody::new);
                if let Some(peer) = &peer {
                    request.extensions_mut().insert(peer.clone());
                }
                async move { Ok::<_, Infallible>(core.handle(request, call).await) }
            })
        };
        let builder = Arc::clone(&self.builder);
        // The acceptor in force now: the client CAs may have been reloaded.
        let tls = self.tls.as_ref().map(|t| t.acceptor());
        let callers = Arc::clone(&self.core);
        let stream = self.lingering.stream(stream);
        let closing = Closing {
            draining: self.draining.subscribe(),
            idle: calls.idle_for(self.idle_timeout),
            idle_closed: self.core.metrics.connections_idle_closed.clone(),
            max_age: jittered(self.max_age),
            grace: self.grace,
            aged_out: self.core.metrics.connections_aged_out.clone(),
        };
        async move {
            let result = match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service(None));
                    closing.serve(connection).await
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    // Verified by the handshake against `tls.client_ca_file`, when set.
                    let leaf = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(<[_]>::first);
                    let peer = callers
                        .callers
                        .client_certificate_caller(leaf.map(AsRef::as_ref));
                    let connection = builder.serve_connection(TokioIo::new(stream), service(peer));
                    closing.serve(connection).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
    }

    async fn drain(self, grace: Duration) {
        self.draining.send_replace(true);
        // Each connection is gone once its socket has closed and lingered: its last
        // frames then reached the caller (ending the runtime sooner would reset them).
        if tokio::time::timeout(grace, self.lingering.finished())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing the remaining connections");
        }
    }
}

/// `age` give or take 10%, chosen per connection, so that connections made together (a
/// caller's pool, every caller after a rollout) do not all go, and come back, together.
/// `None` for zero (never).
fn jittered(age: Duration) -> Option<Duration> {
    use rand_core::{OsRng, RngCore};
    if age.is_zero() {
        return None;
    }
    // 0.9 to 1.1 of `age`, in thousandths.
    let thousandths = 900 + OsRng.next_u32() % 201;
    Some(age / 1000 * thousandths)
}

/// What ends a connection gracefully (GOAWAY, its calls finish, close): the thread
/// draining, no call for `limits.connection_idle_timeout`, or the connection reaching
/// `limits.max_connection_age`.
struct Closing<F> {
    draining: watch::Receiver<bool>,
    idle: F,
    idle_closed: prometheus_client::metrics::counter::Counter,
    /// This connection's `limits.max_connection_age`, jittered.
    max_age: Option<Duration>,
    /// How long its calls may take to finish once it is asked to go for its age.
    grace: Duration,
    aged_out: prometheus_client::metrics::counter::Counter,
}

impl<F: Future<Output = ()>> Closing<F> {
    async fn serve<I, S, B>(
        mut self,
        connection: hyper::server::conn::http2::Connection<I, S, TokioExecutor>,
    ) -> Result<(), hyper::Error>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin,
        S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        tokio::pin!(connection);
        let idle = self.idle;
        let aged = async {
            match self.max_age {
                Some(age) => tokio::time::sleep(age).await,
                None => std::future::pending().await,
            }
        };
        let aged_out = tokio::select! {
            result = connection.as_mut() => return result,
            // `Err`: the sender is gone, the thread is ending: close all the same (the
            // drain bounds how long that takes).
            _ = self.draining.wait_for(|draining| *draining) => false,
            () = idle => {
                self.idle_closed.inc();
                tracing::debug!("closing a connection idle for limits.connection_idle_timeout");
                false
            }
            () = aged => {
                self.aged_out.inc();
                tracing::debug!("closing a connection older than limits.max_connection_age");
                true
            }
        };
        connection.as_mut().graceful_shutdown();
        if !aged_out {
            return connection.await;
        }
        // A stream may run for hours: past the grace its calls are cut (the caller sees
        // them end and retries on its new connection).
        match tokio::time::timeout(self.grace, connection).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(
                    "calls still open after limits.shutdown_grace; closing the aged connection"
                );
                Ok(())
            }
        }
    }
}
