//! Fault injection for `tests/faults.rs`: the parts of the world a gateway depends on,
//! each able to fail on command and to come back.
//!
//! - [`FaultProxy`]: a TCP proxy in front of a real store that can refuse connections
//!   (its listener closed), cut every connection (the store killed), hold the store's
//!   answers (a stalled store), or forward to another address (a store that speaks
//!   garbage).
//! - [`ScriptedStore`]: a raw HTTP/2 server that answers each call with whatever the test
//!   scripts: valid records, records with fields the schema does not declare, invalid
//!   protobuf, lying frames, resets, odd statuses and headers.
//! - [`DocServer`]: a tiny HTTP/1.1 server for JWKS and revocation documents that can
//!   answer 503, cut the connection or serve garbage.
//! - [`GarbageServer`]: a TCP server that answers anything with bytes that are not
//!   HTTP/2.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, BatchGetProfilesResponse, GetProfileRequest, StreamProfilesRequest,
};
use discreet_testkit::Dataset;
use prost::Message;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

pub const GET_PROFILE: &str = "/profile.v1.ProfileService/GetProfile";
pub const BATCH_GET: &str = "/profile.v1.ProfileService/BatchGetProfiles";
pub const STREAM: &str = "/profile.v1.ProfileService/StreamProfiles";

// ---------------------------------------------------------------------------------------
// A TCP proxy in front of the store.

#[derive(Debug)]
struct ProxyState {
    target: Mutex<SocketAddr>,
    /// Bumped to cut every open connection.
    kill: watch::Sender<u64>,
    /// While true, bytes from the store are read but not passed on.
    stalled: watch::Sender<bool>,
    /// Bytes read from the store and held back by a stall.
    held: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicU64,
}

/// A TCP proxy on `127.0.0.1:0` that the gateway uses as its store.
#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<ProxyState>,
    accepting: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl FaultProxy {
    /// Forwards to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            target: Mutex::new(target),
            kill: watch::channel(0).0,
            stalled: watch::channel(false).0,
            held: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let proxy = FaultProxy {
            addr,
            state,
            accepting: Mutex::new(None),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (stop, mut stopped) = watch::channel(false);
        let state = Arc::clone(&self.state);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { continue };
                        state.accepted.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(pipe(inbound, Arc::clone(&state)));
                    }
                }
            }
            // The listener is dropped here: connecting now is refused.
        });
        *self.accepting.lock().unwrap() = Some((stop, task));
    }

    /// The store goes away: the port refuses connections and every open connection is
    /// cut.
    pub async fn refuse(&self) {
        let accepting = self.accepting.lock().unwrap().take();
        if let Some((stop, task)) = accepting {
            let _ = stop.send(true);
            task.await.unwrap();
        }
        self.kill_connections();
    }

    /// The store is back on the same port.
    pub async fn accept_again(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// Every open connection is closed at once, whatever it was doing.
    pub fn kill_connections(&self) {
        self.state.kill.send_modify(|g| *g += 1);
    }

    /// While stalled, the store's bytes are held back (requests still reach it).
    pub fn stall(&self, stalled: bool) {
        self.state.stalled.send_replace(stalled);
    }

    /// Bytes of the store's answers held back by a stall right now.
    pub fn held_bytes(&self) -> u64 {
        self.state.held.load(Ordering::SeqCst)
    }

    /// New connections go to `target` (open ones are not moved: cut them).
    pub fn set_target(&self, target: SocketAddr) {
        *self.state.target.lock().unwrap() = target;
    }
}

async fn pipe(inbound: TcpStream, state: Arc<ProxyState>) {
    let mut kill = state.kill.subscribe();
    let target = *state.target.lock().unwrap();
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut from_gateway, mut to_gateway) = inbound.into_split();
    let (mut from_store, mut to_store) = outbound.into_split();
    let requests = async {
        let _ = tokio::io::copy(&mut from_gateway, &mut to_store).await;
        let _ = to_store.shutdown().await;
    };
    let answers = async {
        let mut stalled = state.stalled.subscribe();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from_store.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if *stalled.borrow_and_update() {
                // Counted while held, also when the connection is killed meanwhile.
                struct Held<'a>(&'a AtomicU64, u64);
                impl Drop for Held<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(self.1, Ordering::SeqCst);
                    }
                }
                state.held.fetch_add(n as u64, Ordering::SeqCst);
                let _held = Held(&state.held, n as u64);
                let _ = stalled.wait_for(|s| !*s).await;
            }
            if to_gateway.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_gateway.shutdown().await;
    };
    tokio::select! {
        // A kill wins over bytes waiting to be passed on.
        biased;
        _ = kill.changed() => {}
        _ = async { tokio::join!(requests, answers) } => {}
    }
    // Both sockets are dropped here: the gateway sees its connection end.
}

// ---------------------------------------------------------------------------------------
// A scripted HTTP/2 store.

/// How a scripted answer ends.
#[derive(Debug, Clone)]
pub enum End {
    /// Trailers (`name`, `value`).
    Trailers(Vec<(String, String)>),
    /// End of stream on the last DATA frame (or on the headers), no trailers.
    Bare,
    /// RST_STREAM (INTERNAL_ERROR) after the data.
    Reset,
    /// RST_STREAM with this reason instead of any answer: `REFUSED_STREAM` says the
    /// request was not processed (RFC 9113, section 8.7).
    ResetFirst(h2::Reason),
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// DATA frames, sent as they are (framing is the script's business).
    pub data: Vec<Bytes>,
    pub end: End,
}

impl Reply {
    /// HTTP 200, `application/grpc`, these DATA frames, then trailers with `grpc-status: 0`.
    pub fn ok(data: Vec<Bytes>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/grpc".into())],
            data,
            end: End::Trailers(vec![("grpc-status".into(), "0".into())]),
        }
    }

    /// A trailers-only answer with this `grpc-status` and `grpc-message`.
    pub fn status(code: i32, message: &str) -> Reply {
        Reply {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/grpc".into()),
                ("grpc-status".into(), code.to_string()),
                ("grpc-message".into(), message.into()),
            ],
            data: Vec::new(),
            end: End::Bare,
        }
    }
}

/// Decides the answer from the method path and the request message (without its frame).
pub type Responder = Arc<dyn Fn(&str, &[u8]) -> Reply + Send + Sync>;

/// A gRPC message frame (uncompressed, honest length).
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// Answers as the reference store would, from `data`, for the three read methods.
pub fn clean(data: Arc<Dataset>) -> Responder {
    Arc::new(move |path, message| match path {
        GET_PROFILE => {
            let request = GetProfileRequest::decode(message).unwrap();
            match data.profiles.get(&request.subject_id) {
                Some(p) => Reply::ok(vec![grpc_frame(&p.encode_to_vec())]),
                None => Reply::status(5, ""),
            }
        }
        BATCH_GET => {
            let request = BatchGetProfilesRequest::decode(message).unwrap();
            let profiles = request
                .subject_ids
                .iter()
                .filter_map(|id| data.profiles.get(id).cloned())
                .collect();
            Reply::ok(vec![grpc_frame(
                &BatchGetProfilesResponse { profiles }.encode_to_vec(),
            )])
        }
        STREAM => {
            let request = StreamProfilesRequest::decode(message).unwrap();
            let limit = if request.limit == 0 {
                usize::MAX
            } else {
                request.limit as usize
            };
            Reply::ok(
                data.profiles
                    .values()
                    .take(limit)
                    .map(|p| grpc_frame(&p.encode_to_vec()))
                    .collect(),
            )
        }
        _ => Reply::status(12, ""),
    })
}

/// A raw HTTP/2 server answering every call with what its responder says.
#[derive(Clone)]
pub struct ScriptedStore {
    pub addr: SocketAddr,
    responder: Arc<Mutex<Responder>>,
}

impl std::fmt::Debug for ScriptedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedStore")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedStore {
    pub async fn start(responder: Responder) -> ScriptedStore {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let responder = Arc::new(Mutex::new(responder));
        let shared = Arc::clone(&responder);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((request, respond))) = connection.accept().await {
                        let responder = Arc::clone(&shared.lock().unwrap());
                        tokio::spawn(answer(request, respond, responder));
                    }
                });
            }
        });
        ScriptedStore { addr, responder }
    }

    /// From now on, calls are answered by `responder`.
    pub fn set(&self, responder: Responder) {
        *self.responder.lock().unwrap() = responder;
    }
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    responder: Responder,
) {
    let path = request.uri().path().to_owned();
    let mut body = request.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let reply = responder(&path, bytes.get(5..).unwrap_or(&[]));
    if let End::ResetFirst(reason) = reply.end {
        respond.send_reset(reason);
        return;
    }
    let mut response = http::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        response = response.header(k.as_str(), v.as_str());
    }
    let headers_only = reply.data.is_empty() && matches!(reply.end, End::Bare);
    let Ok(mut send) = respond.send_response(response.body(()).unwrap(), headers_only) else {
        return;
    };
    if headers_only {
        return;
    }
    let last = reply.data.len().saturating_sub(1);
    for (i, data) in reply.data.into_iter().enumerate() {
        let end = i == last && matches!(reply.end, End::Bare);
        if send.send_data(data, end).is_err() {
            return;
        }
    }
    match reply.end {
        End::Trailers(trailers) => {
            let mut map = http::HeaderMap::new();
            for (k, v) in trailers {
                map.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(&v).unwrap(),
                );
            }
            let _ = send.send_trailers(map);
        }
        End::Bare | End::ResetFirst(_) => {}
        End::Reset => {
            // Let the data go out first, so that the reset comes mid-answer (a reset
            // before it is a fault too; either way the call must fail).
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            send.send_reset(h2::Reason::INTERNAL_ERROR);
        }
    }
    // Keep the stream open until its frames are flushed or the peer resets it.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        std::future::poll_fn(|cx| send.poll_reset(cx)),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// A TCP server that does not speak HTTP/2.

/// Answers every connection with an HTTP/1.1 error page holding `marker`, then closes it.
#[derive(Debug)]
pub struct GarbageServer {
    pub addr: SocketAddr,
}

impl GarbageServer {
    pub async fn start(marker: &str) -> GarbageServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let page = format!(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n<h1>{marker}</h1>"
        )
        .into_bytes();
        let mut page = page;
        page.extend_from_slice(&[0x00, 0xff, 0x00, 0x05, 0x80, 0x81]);
        answer_every_connection(listener, page, true);
        GarbageServer { addr }
    }
}

/// Writes `answer` on every connection `listener` accepts, then (`close`) shuts the write
/// side, and reads whatever comes until the peer closes.
fn answer_every_connection(listener: TcpListener, answer: Vec<u8>, close: bool) {
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let _ = tcp.write_all(&answer).await;
                if close {
                    let _ = tcp.shutdown().await;
                }
                let mut sink = [0u8; 1024];
                while let Ok(n) = tcp.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
}

/// An HTTP/2 frame on stream 0, no flags.
fn h2_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, 0, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// An HTTP/2 server that answers every connection with its SETTINGS and then a GOAWAY
/// (PROTOCOL_ERROR, no stream processed) whose debug data is `debug`: the store chooses
/// those bytes, so they may hold anything, a record included.
#[derive(Debug)]
pub struct GoAwayServer {
    pub addr: SocketAddr,
}

impl GoAwayServer {
    pub async fn start(debug: &str) -> GoAwayServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut goaway = vec![0, 0, 0, 0, 0, 0, 0, 1];
        goaway.extend_from_slice(debug.as_bytes());
        let mut answer = h2_frame(0x4, &[]);
        answer.extend_from_slice(&h2_frame(0x7, &goaway));
        answer_every_connection(listener, answer, false);
        GoAwayServer { addr }
    }
}

/// A store going away gracefully, as in a rolling restart: its first connection waits for
/// a request, then answers with SETTINGS and a GOAWAY (NO_ERROR) whose last stream id is
/// 0, so that request was provably not processed. Every later connection is passed
/// through to `target`, a working store.
#[derive(Debug)]
pub struct RestartingStore {
    pub addr: SocketAddr,
    connections: Arc<AtomicU64>,
}

impl RestartingStore {
    pub async fn start(target: SocketAddr) -> RestartingStore {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                if counted.fetch_add(1, Ordering::Relaxed) > 0 {
                    tokio::spawn(async move {
                        let Ok(mut store) = TcpStream::connect(target).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut store).await;
                    });
                    continue;
                }
                tokio::spawn(async move {
                    if !read_until_headers(&mut tcp).await {
                        return;
                    }
                    // SETTINGS, then GOAWAY: last stream 0, NO_ERROR.
                    let mut answer = h2_frame(0x4, &[]);
                    answer.extend_from_slice(&h2_frame(0x7, &[0; 8]));
                    let _ = tcp.write_all(&answer).await;
                    let mut sink = [0u8; 1024];
                    while let Ok(n) = tcp.read(&mut sink).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        RestartingStore { addr, connections }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Reads a client's preface and frames until a HEADERS frame has arrived; false if the
/// connection ends first.
async fn read_until_headers(tcp: &mut TcpStream) -> bool {
    const PREFACE: usize = 24;
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut at = PREFACE;
        while seen.len() >= at + 9 {
            let len = usize::from(seen[at]) << 16
                | usize::from(seen[at + 1]) << 8
                | usize::from(seen[at + 2]);
            if seen[at + 3] == 0x1 {
                return true;
            }
            at += 9 + len;
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---------------------------------------------------------------------------------------
// JWKS and revocation documents over HTTP.

/// What a document path answers.
#[derive(Debug, Clone)]
pub enum Doc {
    /// The current contents of this file (read on every request).
    File(PathBuf),
    /// 503 Service Unavailable.
    Down,
    /// The connection is closed without an answer.
    Cut,
    /// 200 with this body.
    Body(String),
}

/// An HTTP/1.1 server for key sets and revocation lists (one request per connection).
#[derive(Debug, Clone)]
pub struct DocServer {
    pub addr: SocketAddr,
    docs: Arc<Mutex<HashMap<String, Doc>>>,
    /// Requests answered so far, per path.
    served: Arc<Mutex<HashMap<String, u64>>>,
}

impl DocServer {
    pub async fn start() -> DocServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = DocServer {
            addr,
            docs: Arc::default(),
            served: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(s.clone().answer(tcp));
            }
        });
        server
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set(&self, path: &str, doc: Doc) {
        self.docs.lock().unwrap().insert(path.into(), doc);
    }

    /// Requests for `path` answered so far (whatever the answer).
    pub fn served(&self, path: &str) -> u64 {
        self.served.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    async fn answer(self, mut tcp: TcpStream) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
            if request.len() > 64 * 1024 {
                return;
            }
        }
        let text = String::from_utf8_lossy(&request);
        let path = text.split(' ').nth(1).unwrap_or("").to_owned();
        let doc = self.docs.lock().unwrap().get(&path).cloned();
        *self.served.lock().unwrap().entry(path).or_default() += 1;
        let (status, body) = match doc {
            Some(Doc::File(file)) => match std::fs::read_to_string(&file) {
                Ok(body) => ("200 OK", body),
                Err(_) => ("404 Not Found", String::new()),
            },
            Some(Doc::Body(body)) => ("200 OK", body),
            Some(Doc::Down) => ("503 Service Unavailable", String::new()),
            Some(Doc::Cut) => return,
            None => ("404 Not Found", String::new()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(response.as_bytes()).await;
        let _ = tcp.shutdown().await;
    }
}
