//! Step 7 of a read: the store, over one multiplexed HTTP/2 (h2c) connection per serving
//! thread, re-established when it drops. The store listens on loopback beside us, so one
//! connection per thread carries its calls without head-of-line trouble worth a pool,
//! and a call's request and response never leave the thread that serves it
//! (`workers.rs`).
use std::{sync::Mutex, time::Duration};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::{body::Incoming, client::conn::http2::SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::status::CallError;

/// A live connection to the store, or none yet.
type Slot = Mutex<Option<SendRequest<Full<Bytes>>>>;

/// The store's address and the live connections to it.
#[derive(Debug)]
pub(crate) struct UpstreamClient {
    authority: String,
    connect_timeout: Duration,
    /// One per serving thread, and a last one for calls made anywhere else.
    connections: Vec<Slot>,
}

impl UpstreamClient {
    /// `authority` is `host:port`; `workers` is the number of serving threads.
    pub(crate) fn new(authority: String, connect_timeout: Duration, workers: usize) -> Self {
        UpstreamClient {
            authority,
            connect_timeout,
            connections: (0..=workers).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// This thread's connection: each serving thread's connection task runs on that
    /// thread's runtime, so using another's would hand every call across threads.
    fn slot(&self) -> &Slot {
        let last = self.connections.len() - 1;
        let i = crate::workers::current_worker().map_or(last, |i| i.min(last));
        &self.connections[i]
    }

    pub(crate) fn uri(&self, path: &str) -> Result<Uri, CallError> {
        format!("http://{}{path}", self.authority)
            .parse()
            .map_err(|_| CallError::UnknownMethod(path.to_owned()))
    }

    /// Sends one request; any failure to reach the store is UNAVAILABLE.
    pub(crate) async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, CallError> {
        let mut sender = self.sender().await?;
        match sender.send_request(request).await {
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::warn!(error = %e, "profile store request failed");
                if let Ok(mut guard) = self.slot().lock() {
                    *guard = None;
                }
                Err(CallError::UpstreamUnavailable)
            }
        }
    }

    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        if let Ok(guard) = self.slot().lock()
            && let Some(s) = guard.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        let s = self.connect().await?;
        if let Ok(mut guard) = self.slot().lock() {
            *guard = Some(s.clone());
        }
        Ok(s)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| CallError::UpstreamUnavailable)?
            .map_err(|e| {
                tracing::warn!(upstream = %self.authority, error = %e, "cannot connect to the profile store");
                CallError::UpstreamUnavailable
            })?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // Flow-control windows bound what one stream can have in flight from the
            // store while the caller reads slowly: 256 KiB per stream, 4 MiB in all.
            .initial_stream_window_size(256 * 1024)
            .initial_connection_window_size(4 * 1024 * 1024)
            .adaptive_window(false)
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| CallError::UpstreamUnavailable)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "profile store connection ended");
            }
        });
        Ok(sender)
    }
}
