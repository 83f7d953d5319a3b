//! Step 7 of a read: the store, over one multiplexed HTTP/2 (h2c) connection per serving
//! thread, re-established when it drops. The store listens on loopback beside us, so one
//! connection per thread carries its calls without head-of-line trouble worth a pool,
//! and a call's request and response never leave the thread that serves it
//! (`workers.rs`).
//!
//! The client is `h2` itself rather than hyper's client on top of it: hyper hands every
//! request to its connection task over a channel, spawns a task per request to wait for
//! the response and hands that back over a oneshot, three wake-ups and two allocations a
//! call that buy nothing here. With `h2` the call's own task opens the stream, queues
//! the one request message and awaits the response; only the connection task is shared.
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use discreet_telemetry::metrics::ResultLabels;
use h2::{RecvStream, client::SendRequest};
use http::{Request, Response, Uri, uri::Authority};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tokio::net::TcpStream;

use crate::{retry_budget::RetryBudget, status::CallError};

/// How often a connection is checked with a PING, and how long the answer may take: a
/// store that went away without closing the socket (its node lost, a network partition)
/// is noticed within `interval + timeout`. Without it, such a connection would take every
/// call to its deadline until TCP gave up on it, a quarter of an hour later.
#[derive(Debug, Clone, Copy)]
struct Keepalive {
    interval: Duration,
    timeout: Duration,
}

const KEEPALIVE: Keepalive = Keepalive {
    interval: Duration::from_secs(20),
    timeout: Duration::from_secs(10),
};

/// One connection: the handle calls open streams with, and whether its connection task
/// has ended (a handle to a dead connection fails every call).
#[derive(Debug, Clone)]
struct Connection {
    sender: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

/// A live connection to the store, or none yet.
type Slot = Mutex<Option<Connection>>;

/// The store's address and the live connections to it.
#[derive(Debug)]
pub(crate) struct UpstreamClient {
    address: String,
    authority: Authority,
    connect_timeout: Duration,
    keepalive: Keepalive,
    /// One per serving thread, and a last one for calls made anywhere else.
    connections: Vec<Slot>,
    /// Likewise, the retry budget of each (`retry_budget.rs`).
    budgets: Vec<Mutex<RetryBudget>>,
    /// `discreet_upstream_retries_total`.
    retries: Family<ResultLabels, Counter>,
}

impl UpstreamClient {
    /// `address` is `host:port`; `workers` is the number of serving threads; `retries`
    /// counts the retries sent and those the budget refused.
    pub(crate) fn new(
        address: String,
        connect_timeout: Duration,
        workers: usize,
        retries: Family<ResultLabels, Counter>,
    ) -> Result<Self, String> {
        let authority = address
            .parse()
            .map_err(|_| format!("upstream address {address}: expected host:port"))?;
        // Both series from the start, at zero: an alert on their increase needs them.
        for result in ["sent", "over_budget"] {
            let _ = retries.get_or_create(&ResultLabels { result }).get();
        }
        Ok(UpstreamClient {
            address,
            authority,
            connect_timeout,
            keepalive: KEEPALIVE,
            connections: (0..=workers).map(|_| Mutex::new(None)).collect(),
            budgets: (0..=workers)
                .map(|_| Mutex::new(RetryBudget::new(std::time::Instant::now())))
                .collect(),
            retries,
        })
    }

    /// This thread's index into `connections` and `budgets`.
    fn here(&self) -> usize {
        let last = self.connections.len() - 1;
        crate::workers::current_worker().map_or(last, |i| i.min(last))
    }

    /// This thread's connection: each serving thread's connection task runs on that
    /// thread's runtime, so using another's would hand every call across threads.
    fn slot(&self) -> &Slot {
        &self.connections[self.here()]
    }

    /// Runs `f` on this thread's retry budget (a lock no other thread takes, but for the
    /// calls made off the serving threads). `None` if the lock is poisoned.
    fn budget<R>(&self, f: impl FnOnce(&mut RetryBudget) -> R) -> Option<R> {
        self.budgets[self.here()].lock().ok().map(|mut b| f(&mut b))
    }

    /// The store's URI for a method path (`/package.Service/Method`).
    pub(crate) fn uri(&self, path: &str) -> Result<Uri, CallError> {
        Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| CallError::UnknownMethod(path.to_owned()))
    }

    /// Sends one request (`head()` and its one message) and waits for the response
    /// head; any failure to reach the store is UNAVAILABLE.
    ///
    /// A request the store provably never processed is sent once more, on a new
    /// connection: one its GOAWAY excluded (a stream above the GOAWAY's last stream id, or
    /// opened after it) or one it refused with `REFUSED_STREAM` (RFC 9113, sections 6.8
    /// and 8.7). That is what a store's rolling restart looks like from here, and callers
    /// should not see it. Nothing else is retried: a request the store may have acted on
    /// is not ours to repeat. `head` is called again for the second try rather than the
    /// first head copied for every call. Retries are held to a share of calls
    /// (`retry_budget.rs`): a store that refuses streams to shed load is not sent each
    /// refused request twice.
    pub(crate) async fn send(
        &self,
        head: impl Fn() -> Result<http::request::Parts, CallError>,
        message: Bytes,
    ) -> Result<Response<RecvStream>, CallError> {
        self.budget(RetryBudget::deposit);
        let e = match self.attempt(head()?, message.clone()).await? {
            Ok(response) => return Ok(response),
            Err(e) if never_processed(&e) => e,
            Err(e) => {
                tracing::warn!(error = %StoreError(&e), "profile store request failed");
                return Err(CallError::UpstreamUnavailable);
            }
        };
        if self.budget(|b| b.withdraw(std::time::Instant::now())) != Some(true) {
            self.retries
                .get_or_create(&ResultLabels {
                    result: "over_budget",
                })
                .inc();
            // Debug, not warn: under a refusal storm this is every fifth call or more,
            // and the counter says it.
            tracing::debug!(error = %StoreError(&e), "the profile store did not take the request; not sent again: over the retry budget");
            return Err(CallError::UpstreamUnavailable);
        }
        self.retries
            .get_or_create(&ResultLabels { result: "sent" })
            .inc();
        tracing::info!(error = %StoreError(&e), "the profile store did not take the request; sending it again on a new connection");
        match self.attempt(head()?, message).await? {
            Ok(response) => Ok(response),
            Err(e) => {
                tracing::warn!(error = %StoreError(&e), "profile store request failed");
                Err(CallError::UpstreamUnavailable)
            }
        }
    }

    /// One try: `Err` when there is no connection to try on, `Ok(Err)` with the h2 error
    /// when the try failed.
    async fn attempt(
        &self,
        head: http::request::Parts,
        message: Bytes,
    ) -> Result<Result<Response<RecvStream>, h2::Error>, CallError> {
        let Connection { sender, closed } = self.connection().await?;
        let sent = async {
            let mut sender = sender.ready().await?;
            let (response, mut stream) =
                sender.send_request(Request::from_parts(head, ()), false)?;
            // The message is already whole and bounded by `max_message_bytes`; h2
            // queues what the store's window cannot take yet.
            stream.send_data(message, true)?;
            response.await
        };
        let result = sent.await;
        if let Err(e) = &result {
            // A refused or reset stream leaves the connection usable; anything else
            // (GOAWAY, I/O) means a new one for the next call.
            if e.is_io() || e.is_go_away() || e.reason().is_none() {
                self.forget(&closed);
            }
        }
        Ok(result)
    }

    /// Drops the connection whose flag is `closed` from this thread's slot, unless a
    /// newer one replaced it.
    fn forget(&self, closed: &Arc<AtomicBool>) {
        if let Ok(mut guard) = self.slot().lock()
            && guard
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.closed, closed))
        {
            *guard = None;
        }
    }

    async fn connection(&self) -> Result<Connection, CallError> {
        if let Ok(guard) = self.slot().lock()
            && let Some(c) = guard.as_ref()
            && !c.closed.load(Ordering::Acquire)
        {
            return Ok(c.clone());
        }
        let c = self.connect().await?;
        if let Ok(mut guard) = self.slot().lock() {
            *guard = Some(c.clone());
        }
        Ok(c)
    }

    async fn connect(&self) -> Result<Connection, CallError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| CallError::UpstreamUnavailable)?
            .map_err(|e| {
                tracing::warn!(upstream = %self.address, error = %e, "cannot connect to the profile store");
                CallError::UpstreamUnavailable
            })?;
        let _ = stream.set_nodelay(true);
        let handshake = h2::client::Builder::new()
            // Flow-control windows bound what one stream can have in flight from the
            // store while the caller reads slowly: 256 KiB per stream, 4 MiB in all.
            .initial_window_size(256 * 1024)
            .initial_connection_window_size(4 * 1024 * 1024)
            // The store's answers are untrusted (THREAT_MODEL.md): at most 16 KiB of
            // headers or trailers per response (h2 would take 16 MiB), no server push (a
            // pushed stream nobody reads would hold connection window), and no more than
            // 100 streams before the store's SETTINGS say how many it takes. What hyper's
            // client set for us.
            .max_header_list_size(16 * 1024)
            .enable_push(false)
            .initial_max_send_streams(100)
            .handshake::<_, Bytes>(stream);
        let (sender, mut connection) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| CallError::UpstreamUnavailable)?
            .map_err(|e| {
                tracing::warn!(upstream = %self.address, error = %StoreError(&e), "HTTP/2 handshake with the profile store failed");
                CallError::UpstreamUnavailable
            })?;
        let closed = Arc::new(AtomicBool::new(false));
        let pings = connection.ping_pong();
        let ended = Arc::clone(&closed);
        let keepalive_every = self.keepalive;
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(error = %StoreError(&e), "profile store connection ended");
                    }
                }
                () = keepalive(pings, keepalive_every) => {
                    tracing::warn!("profile store did not answer a PING in time: connection dropped");
                }
            }
            ended.store(true, Ordering::Release);
        });
        Ok(Connection { sender, closed })
    }
}

/// Whether `e` proves the store never processed the request: its GOAWAY excluded the
/// stream (h2 fails streams above the GOAWAY's last stream id, and new ones, with the
/// store's GOAWAY; streams below it that are cut off fail with a broken pipe instead), or
/// it refused the stream.
fn never_processed(e: &h2::Error) -> bool {
    e.is_remote()
        && (e.is_go_away() || (e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM)))
}

/// An `h2` error as our logs may show it: what happened and the HTTP/2 reason code, never
/// the bytes the store sent. h2's own `Display` appends a GOAWAY's debug data, which the
/// store chooses (and a broken or hostile store could fill with a record).
struct StoreError<'a>(&'a h2::Error);

impl std::fmt::Display for StoreError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0;
        if let Some(io) = e.get_io() {
            return write!(f, "I/O: {}", io.kind());
        }
        let what = if e.is_go_away() {
            "GOAWAY"
        } else if e.is_reset() {
            "stream reset"
        } else {
            "HTTP/2 error"
        };
        let by = if e.is_remote() {
            "from the store"
        } else {
            "ours"
        };
        match e.reason() {
            Some(reason) => write!(f, "{what} ({by}): {reason}"),
            None => write!(f, "{what} ({by})"),
        }
    }
}

/// Returns when a PING goes unanswered for `every.timeout`; never otherwise. Runs beside
/// the connection future, which is what reads the PONG.
async fn keepalive(pings: Option<h2::PingPong>, every: Keepalive) {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every.interval).await;
        match tokio::time::timeout(every.timeout, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            // The connection is failing anyway: let its own future say why.
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A store on a free port that serves each connection with `serve`, and counts them.
    async fn counting_store<F, Fut>(serve: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(tcp));
            }
        });
        (address, connections)
    }

    /// A store that completes the HTTP/2 handshake and then goes silent, as one behind a
    /// lost node or a partition does: it answers no call and no PING, and never closes.
    async fn silent_store() -> (String, Arc<AtomicUsize>) {
        counting_store(|mut tcp| async move {
            // An empty SETTINGS frame, then nothing: what arrives is read and dropped, so
            // the client's writes never block.
            tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
            let mut sink = [0u8; 4096];
            while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        })
        .await
    }

    /// A store that refuses every stream (`REFUSED_STREAM`), as one shedding load does,
    /// and counts the streams it was sent.
    async fn refusing_store() -> (String, Arc<AtomicUsize>) {
        let streams = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&streams);
        let (address, _) = counting_store(move |tcp| {
            let counted = Arc::clone(&counted);
            async move {
                let mut connection = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    counted.fetch_add(1, Ordering::Relaxed);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            }
        })
        .await;
        (address, streams)
    }

    #[tokio::test]
    async fn retries_to_a_store_refusing_every_stream_stay_within_the_budget() {
        use crate::retry_budget::{MIN_PER_SECOND, RATIO_PERCENT};
        let (address, streams) = refusing_store().await;
        let retries = Family::<ResultLabels, Counter>::default();
        let client =
            UpstreamClient::new(address, Duration::from_secs(2), 1, retries.clone()).unwrap();
        let calls = 500u64;
        for _ in 0..calls {
            let (head, message) = request(&client);
            assert!(matches!(
                client.send(head, message).await,
                Err(CallError::UpstreamUnavailable)
            ));
        }
        let count = |result| retries.get_or_create(&ResultLabels { result }).get();
        let sent = count("sent");
        // Each call earns a fifth of a retry, on top of one second's allowance (more if
        // the test ran slowly); without the budget every call would have been sent twice.
        let most = calls * RATIO_PERCENT / 100 + MIN_PER_SECOND * 3;
        assert!(
            sent >= calls * RATIO_PERCENT / 100 && sent <= most,
            "{sent} retries for {calls} refused calls"
        );
        assert_eq!(sent + count("over_budget"), calls);
        assert_eq!(streams.load(Ordering::Relaxed) as u64, calls + sent);
    }

    /// A `GetProfile` with an empty message, as `send` takes it.
    fn request(
        client: &UpstreamClient,
    ) -> (
        impl Fn() -> Result<http::request::Parts, CallError> + '_,
        Bytes,
    ) {
        let head = || {
            let mut head = Request::new(());
            *head.method_mut() = http::Method::POST;
            *head.uri_mut() = client.uri("/profile.v1.ProfileService/GetProfile")?;
            Ok(head.into_parts().0)
        };
        (head, Bytes::from_static(&[0, 0, 0, 0, 0]))
    }

    /// A call to a store that does not answer: its deadline (300 ms) ends it, or the
    /// keep-alive its connection (UNAVAILABLE); never an answer.
    async fn unanswered(client: &UpstreamClient) {
        let (head, message) = request(client);
        let sent = tokio::time::timeout(Duration::from_millis(300), client.send(head, message));
        assert!(
            !matches!(sent.await, Ok(Ok(_))),
            "the silent store answered"
        );
    }

    #[tokio::test]
    async fn a_store_that_goes_silent_is_dropped_for_a_new_connection() {
        let (address, connections) = silent_store().await;
        let mut client =
            UpstreamClient::new(address, Duration::from_secs(2), 1, Family::default()).unwrap();
        client.keepalive = Keepalive {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(100),
        };
        unanswered(&client).await;
        assert_eq!(connections.load(Ordering::Relaxed), 1);
        // The unanswered PING ends the connection, so the next call does not inherit it.
        let slot = client.slot();
        for _ in 0..100 {
            let dead = slot
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|c| c.closed.load(Ordering::Acquire));
            if dead {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unanswered(&client).await;
        assert_eq!(
            connections.load(Ordering::Relaxed),
            2,
            "the call went to the silent connection"
        );
    }

    #[tokio::test]
    async fn a_store_that_answers_pings_keeps_its_connection() {
        // The reference of the test above: an h2 server that answers PINGs (h2 does so
        // on its own) but no call keeps the one connection past several intervals.
        let (address, connections) = counting_store(|tcp| async move {
            let mut connection = h2::server::handshake(tcp).await.unwrap();
            // Requests are taken and never answered; the connection is polled, so PINGs
            // are.
            let mut held = Vec::new();
            while let Some(Ok(call)) = connection.accept().await {
                held.push(call);
            }
        })
        .await;
        let mut client =
            UpstreamClient::new(address, Duration::from_secs(2), 1, Family::default()).unwrap();
        client.keepalive = Keepalive {
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(2),
        };
        for _ in 0..3 {
            let waited = tokio::time::timeout(Duration::from_millis(300), {
                let (head, message) = request(&client);
                client.send(head, message)
            });
            assert!(waited.await.is_err());
        }
        assert_eq!(connections.load(Ordering::Relaxed), 1);
    }
}
