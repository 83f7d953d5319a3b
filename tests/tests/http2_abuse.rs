//! HTTP/2 abuse (issue 8, item 3): rapid reset (CVE-2023-44487), CONTINUATION floods,
//! slow clients that never finish a request, many idle connections. For each: what the
//! abusive connection gets, that other clients are served meanwhile and afterwards, and
//! that the process's resident memory stays bounded (the gateway runs in this process).
//!
//! The tests take one lock so that each one's memory figures are its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{caller_for, get, metric};
use discreet_testkit::Harness;
use h2::Reason;
use http::{HeaderName, HeaderValue, Request};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Mutex,
};
use tonic::Code;

const SUBJECT: &str = "persona-eu";
const PURPOSE: &str = "personalize";
const GET_PROFILE: &str = "/profile.v1.ProfileService/GetProfile";
/// Resident memory an abuse may add: a sanity bound, not a benchmark.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// One test at a time, so that resident memory is measured for one abuse.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn report_memory(what: &str, before: u64, after: u64) {
    println!(
        "{what}: VmRSS before {before} KiB, after {after} KiB, growth {} KiB (bound {RSS_BOUND_KIB} KiB)",
        after.saturating_sub(before)
    );
    assert!(
        after.saturating_sub(before) < RSS_BOUND_KIB,
        "{what}: resident memory grew from {before} KiB to {after} KiB"
    );
}

/// The headers of a valid `GetProfile` as `caller`, declaring `purpose`.
fn valid_headers(h: &Harness, caller: &str, purpose: &str) -> Vec<(String, String)> {
    let token = h
        .keys
        .caller_token(caller, Duration::from_secs(3600))
        .unwrap();
    let consent = h.consent(SUBJECT, &[purpose]).unwrap();
    vec![
        ("content-type".into(), "application/grpc".into()),
        ("te".into(), "trailers".into()),
        ("authorization".into(), format!("Bearer {token}")),
        ("x-discreet-purpose".into(), purpose.into()),
        ("x-discreet-consent".into(), consent),
    ]
}

fn request(addr: SocketAddr, headers: &[(String, String)]) -> Request<()> {
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{GET_PROFILE}"))
        .body(())
        .unwrap();
    for (k, v) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    request
}

/// Ordinary calls from a tonic client, one after another, until stopped: how many
/// succeeded, how many failed, and the slowest.
struct Bystander {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64, Duration)>,
}

impl Bystander {
    fn start(h: &Arc<Harness>) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let h = Arc::clone(h);
            let stop = Arc::clone(&stop);
            async move {
                let (mut ok, mut failed, mut slowest) = (0u64, 0u64, Duration::ZERO);
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    match get(&h, SUBJECT, PURPOSE).await {
                        Ok(_) => ok += 1,
                        Err(s) => {
                            println!("bystander call failed: {s:?}");
                            failed += 1;
                        }
                    }
                    slowest = slowest.max(start.elapsed());
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (ok, failed, slowest)
            }
        });
        Bystander { stop, task }
    }

    /// Stops, and asserts every call succeeded, none slower than `max_latency`.
    async fn finish(self, what: &str, max_latency: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let (ok, failed, slowest) = self.task.await.unwrap();
        println!("{what}: bystander calls ok {ok}, failed {failed}, slowest {slowest:?}");
        assert!(ok > 0, "{what}: no bystander call completed");
        assert_eq!(failed, 0, "{what}: bystander calls failed");
        assert!(
            slowest < max_latency,
            "{what}: a bystander call took {slowest:?}"
        );
    }
}

async fn served_afterwards(h: &Harness, what: &str) {
    get(h, SUBJECT, PURPOSE)
        .await
        .unwrap_or_else(|s| panic!("{what}: a valid call afterwards failed: {s:?}"));
}

// ---------------------------------------------------------------------------------------
// Rapid reset.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_is_cut_off_and_others_are_served() {
    let _serial = SERIAL.lock().await;
    let h = Arc::new(Harness::start().await.unwrap());
    served_afterwards(&h, "warm-up").await;
    let before = rss_kib();
    let bystander = Bystander::start(&h);

    let addr = h.addr();
    let headers = valid_headers(&h, caller_for(PURPOSE), PURPOSE);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) = h2::client::Builder::new()
        .max_concurrent_reset_streams(100_000)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    const STREAMS: u32 = 5_000;
    let start = Instant::now();
    let mut opened = 0u32;
    let mut ended = None;
    for _ in 0..STREAMS {
        // Open a stream (headers only, the request body never comes) and reset it at once.
        client = match client.ready().await {
            Ok(c) => c,
            Err(e) => {
                ended = Some(e);
                break;
            }
        };
        match client.send_request(request(addr, &headers), false) {
            Ok((_response, mut stream)) => {
                stream.send_reset(Reason::CANCEL);
                opened += 1;
            }
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
    }
    // The connection's fate: wait for it to end, or give up waiting after a moment.
    let outcome = match tokio::time::timeout(Duration::from_secs(3), connection).await {
        Ok(Ok(Ok(()))) => "connection closed cleanly".to_owned(),
        Ok(Ok(Err(e))) => format!("connection ended: {e} (reason {:?})", e.reason()),
        Ok(Err(e)) => format!("connection task failed: {e}"),
        Err(_) => "connection still open".to_owned(),
    };
    println!(
        "rapid reset: {opened} of {STREAMS} streams opened and reset in {:?}; send side ended: {}; {outcome}",
        start.elapsed(),
        ended.map_or_else(|| "no".to_owned(), |e| e.to_string())
    );
    // hyper's max_pending_accept_reset_streams (server.rs) closes a connection that
    // resets streams faster than they are accepted; whichever way it goes, the gateway
    // must not have spent unbounded work or memory on it, and others are served.
    // The attacker's client runs in this process too, in a debug build on a shared
    // 2-core machine: bystander latency here is an upper bound on the gateway's share.
    bystander
        .finish("rapid reset", Duration::from_secs(20))
        .await;
    served_afterwards(&h, "rapid reset").await;
    report_memory("rapid reset", before, rss_kib());
}

// ---------------------------------------------------------------------------------------
// CONTINUATION floods, written frame by frame on a raw socket.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn raw_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix, `first` holding the pattern bits.
fn hpack_int(first: u8, n: u8, mut v: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A literal header field without indexing, new name (RFC 7541, 6.2.2).
fn hpack_literal(name: &str, value: &str, out: &mut Vec<u8>) {
    out.push(0);
    hpack_int(0, 7, name.len(), out);
    out.extend_from_slice(name.as_bytes());
    hpack_int(0, 7, value.len(), out);
    out.extend_from_slice(value.as_bytes());
}

/// Builds the payload of the `i`-th CONTINUATION frame of a flood.
type FrameMaker = Box<dyn Fn(u64) -> Vec<u8>>;

/// What the server did to a flooding connection.
#[derive(Debug)]
struct FloodOutcome {
    frames_written: u64,
    bytes_written: u64,
    /// The error code of the server's GOAWAY, if one arrived.
    go_away: Option<u32>,
    closed: bool,
}

/// Opens stream 1 with a HEADERS frame that does not end the header block, then writes
/// CONTINUATION frames built by `next` (never END_HEADERS) until the server closes the
/// connection or `max_frames` are written.
async fn continuation_flood(
    addr: SocketAddr,
    max_frames: u64,
    next: impl Fn(u64) -> Vec<u8>,
) -> FloodOutcome {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = tcp.into_split();
    let go_away = Arc::new(AtomicU64::new(u64::MAX));
    let closed = Arc::new(AtomicBool::new(false));
    let mut frames = server_frames(read);
    let reader = tokio::spawn({
        let go_away = Arc::clone(&go_away);
        let closed = Arc::clone(&closed);
        async move {
            while let Some(frame) = frames.recv().await {
                match frame {
                    ServerFrame::GoAway(code) => go_away.store(u64::from(code), Ordering::Relaxed),
                    ServerFrame::Closed => break,
                    _ => {}
                }
            }
            closed.store(true, Ordering::Relaxed);
        }
    });
    let mut start = PREFACE.to_vec();
    start.extend(raw_frame(4, 0, 0, &[])); // SETTINGS
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    hpack_literal(":path", GET_PROFILE, &mut block);
    hpack_literal(":authority", "localhost", &mut block);
    hpack_literal("content-type", "application/grpc", &mut block);
    start.extend(raw_frame(1, 0, 1, &block)); // HEADERS, no END_HEADERS
    write.write_all(&start).await.unwrap();
    let mut outcome = FloodOutcome {
        frames_written: 0,
        bytes_written: 0,
        go_away: None,
        closed: false,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while outcome.frames_written < max_frames && Instant::now() < deadline {
        if closed.load(Ordering::Relaxed) {
            break;
        }
        let frame = raw_frame(9, 0, 1, &next(outcome.frames_written)); // CONTINUATION
        if write.write_all(&frame).await.is_err() {
            break;
        }
        outcome.frames_written += 1;
        outcome.bytes_written += frame.len() as u64;
    }
    // Give the server a moment to answer what it has read.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while !closed.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    outcome.closed = closed.load(Ordering::Relaxed);
    let code = go_away.load(Ordering::Relaxed);
    outcome.go_away = (code != u64::MAX).then(|| u32::try_from(code).unwrap());
    drop(write);
    reader.abort();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_floods_are_cut_off_and_others_are_served() {
    let _serial = SERIAL.lock().await;
    let h = Arc::new(Harness::start().await.unwrap());
    served_afterwards(&h, "warm-up").await;
    let before = rss_kib();
    let bystander = Bystander::start(&h);
    const MAX_FRAMES: u64 = 1_000_000;
    let floods: [(&str, FrameMaker); 2] = [
        // Each frame a 1 KiB header field: the header list outgrows any limit.
        (
            "CONTINUATION flood, 1 KiB fields",
            Box::new(|i| {
                let mut f = Vec::new();
                hpack_literal(&format!("x-flood-{i}"), &"f".repeat(1024), &mut f);
                f
            }),
        ),
        // Empty frames: the header list never grows, only the frame count does.
        ("CONTINUATION flood, empty frames", Box::new(|_| Vec::new())),
    ];
    for (what, next) in floods {
        let outcome = continuation_flood(h.addr(), MAX_FRAMES, next).await;
        println!("{what}: {outcome:?}");
        assert!(
            outcome.closed,
            "{what}: the gateway kept reading an endless header block: {outcome:?}"
        );
        assert!(
            outcome.bytes_written < 16 * 1024 * 1024,
            "{what}: the gateway read {} bytes of one header block before closing",
            outcome.bytes_written
        );
        // A GOAWAY says why (ENHANCE_YOUR_CALM = 0xb, PROTOCOL_ERROR = 1,
        // COMPRESSION_ERROR = 9); a plain close is acceptable too.
        if let Some(code) = outcome.go_away {
            assert!(matches!(code, 0x1 | 0x9 | 0xb), "{what}: GOAWAY {code:#x}");
        }
        served_afterwards(&h, what).await;
    }
    bystander
        .finish("CONTINUATION floods", Duration::from_secs(5))
        .await;
    report_memory("CONTINUATION floods", before, rss_kib());
}

// ---------------------------------------------------------------------------------------
// Slow clients: a request body that never ends.

/// Opens `n` streams on one connection whose request body starts a message and never
/// finishes it. Returns the client (keep it alive to keep the streams open) and the
/// response futures.
async fn slow_streams(
    addr: SocketAddr,
    headers: &[(String, String)],
    n: usize,
) -> (
    h2::client::SendRequest<Bytes>,
    Vec<(h2::client::ResponseFuture, h2::SendStream<Bytes>)>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut streams = Vec::new();
    for _ in 0..n {
        client = client.ready().await.unwrap();
        let (response, mut stream) = client.send_request(request(addr, headers), false).unwrap();
        // A message that declares 100 bytes; 10 arrive; the rest never does.
        let mut partial = vec![0u8, 0, 0, 0, 100];
        partial.extend_from_slice(&[0x0a; 10]);
        stream.send_data(Bytes::from(partial), false).unwrap();
        streams.push((response, stream));
    }
    (client, streams)
}

/// The `grpc-status` a slow stream ends with.
async fn slow_status(response: h2::client::ResponseFuture) -> Option<i32> {
    let response = response.await.ok()?;
    let status = |h: &http::HeaderMap| h.get("grpc-status")?.to_str().ok()?.parse().ok();
    if let Some(s) = status(response.headers()) {
        return Some(s);
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.ok()?;
    }
    status(&body.trailers().await.ok()??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_end_at_their_deadline_and_others_are_served() {
    let _serial = SERIAL.lock().await;
    let h = Arc::new(Harness::start().await.unwrap());
    served_afterwards(&h, "warm-up").await;
    let before = rss_kib();
    let bystander = Bystander::start(&h);
    // 100 slow streams from another caller, each with a 2 s deadline: well under the
    // admission limit (512), so they cost streams and a little memory, nothing else.
    let purpose = "analytics.reporting";
    let mut headers = valid_headers(&h, caller_for(purpose), purpose);
    headers.push(("grpc-timeout".into(), "2S".into()));
    let start = Instant::now();
    let (_client, streams) = slow_streams(h.addr(), &headers, 100).await;
    let mut statuses = Vec::new();
    for (response, _stream) in streams {
        statuses.push(slow_status(response).await);
    }
    let took = start.elapsed();
    println!("slow clients: 100 streams ended after {took:?} with {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == Some(Code::DeadlineExceeded as i32)),
        "{statuses:?}"
    );
    assert!(
        took < Duration::from_secs(6),
        "slow streams held for {took:?}"
    );
    bystander
        .finish("slow clients", Duration::from_secs(5))
        .await;
    served_afterwards(&h, "slow clients").await;
    report_memory("slow clients", before, rss_kib());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn finding_4_slow_bodies_do_not_lock_other_callers_out() {
    let _serial = SERIAL.lock().await;
    const LIMIT: usize = 8;
    let h = Arc::new(
        Harness::start_with(|c| c.limits.max_concurrent_calls = LIMIT)
            .await
            .unwrap(),
    );
    served_afterwards(&h, "warm-up").await;
    // One caller (a compromised pod with a valid token) opens LIMIT slow streams, each
    // with the longest deadline the gateway allows.
    let purpose = "analytics.reporting";
    let mut headers = valid_headers(&h, caller_for(purpose), purpose);
    headers.push(("grpc-timeout".into(), "60S".into()));
    let (_client, _streams) = slow_streams(h.addr(), &headers, LIMIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another caller must get through within a few seconds.
    let start = Instant::now();
    loop {
        match get(&h, SUBJECT, PURPOSE).await {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "another caller locked out for {:?} by {LIMIT} request bodies that never finish: {s:?}",
                    start.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Many idle connections.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_cost_bounded_memory_and_others_are_served() {
    let _serial = SERIAL.lock().await;
    let h = Arc::new(Harness::start().await.unwrap());
    served_afterwards(&h, "warm-up").await;
    let before = rss_kib();
    const CONNECTIONS: usize = 1000;
    let mut idle = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let tcp = TcpStream::connect(h.addr()).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        idle.push((client, tokio::spawn(connection)));
    }
    let bystander = Bystander::start(&h);
    tokio::time::sleep(Duration::from_secs(1)).await;
    bystander
        .finish("idle connections", Duration::from_secs(5))
        .await;
    let during = rss_kib();
    println!(
        "idle connections: {CONNECTIONS} open, {} KiB each (both ends, this process)",
        during.saturating_sub(before) / CONNECTIONS as u64
    );
    report_memory("idle connections (open)", before, during);
    // Every one of them can still make a call: they were idle, not refused.
    let (client, _) = idle.pop().unwrap();
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(
            request(h.addr(), &valid_headers(&h, caller_for(PURPOSE), PURPOSE)),
            true,
        )
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    for (_, connection) in idle {
        connection.abort();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    served_afterwards(&h, "idle connections").await;
    report_memory("idle connections (closed)", before, rss_kib());
}

// ---------------------------------------------------------------------------------------
// Large request bodies that never finish.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn finding_5_unfinished_large_bodies_cost_bounded_memory() {
    let _serial = SERIAL.lock().await;
    let h = Arc::new(Harness::start().await.unwrap());
    served_afterwards(&h, "warm-up").await;
    let before = rss_kib();
    // One caller, 32 streams (of 512 admission slots), each a message that declares
    // 4 MiB, sends all of it but the last byte, and never ends.
    const STREAMS: usize = 32;
    const DECLARED: usize = 4 * 1024 * 1024;
    let purpose = "analytics.reporting";
    let mut headers = valid_headers(&h, caller_for(purpose), purpose);
    headers.push(("grpc-timeout".into(), "60S".into()));
    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        client = client.ready().await.unwrap();
        let (response, mut stream) = client
            .send_request(request(h.addr(), &headers), false)
            .unwrap();
        let mut body = vec![0u8; 5 + DECLARED - 1];
        body[1..5].copy_from_slice(&u32::try_from(DECLARED).unwrap().to_be_bytes());
        stream.send_data(Bytes::from(body), false).unwrap();
        streams.push((response, stream));
    }
    // Wait until the gateway has taken in what was sent (the client's send buffers drain).
    let start = Instant::now();
    let mut peak = rss_kib();
    while start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(rss_kib());
    }
    println!(
        "unfinished large bodies: {STREAMS} x {} KiB held; VmRSS before {before} KiB, peak {peak} KiB, growth {} KiB",
        DECLARED / 1024,
        peak.saturating_sub(before)
    );
    drop((client, streams));
    // Once they are gone, others are served again (within the request-body timeout a
    // fix may add).
    let start = Instant::now();
    while let Err(s) = get(&h, SUBJECT, PURPOSE).await {
        assert!(start.elapsed() < Duration::from_secs(10), "{s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        peak.saturating_sub(before) < RSS_BOUND_KIB,
        "{STREAMS} unfinished request bodies grew resident memory by {} KiB",
        peak.saturating_sub(before)
    );
}

// ---------------------------------------------------------------------------------------
// Shedding: refusals sent before the request body arrived.

/// What the gateway sent back on a raw connection, frame by frame.
#[derive(Debug)]
enum ServerFrame {
    /// A HEADERS frame that ended its stream (a trailers-only answer).
    Ended(u32),
    /// RST_STREAM, with its error code.
    Reset(u32),
    /// GOAWAY, with its error code.
    GoAway(u32),
    Closed,
}

/// Reads frames from `read` and reports the ones [`ServerFrame`] names.
fn server_frames(
    mut read: tokio::net::tcp::OwnedReadHalf,
) -> tokio::sync::mpsc::UnboundedReceiver<ServerFrame> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while buf.len() >= 9 {
                let len =
                    usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                let word = |at: usize| {
                    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
                };
                let event = match buf[3] {
                    1 if buf[4] & 1 == 1 => Some(ServerFrame::Ended(stream)),
                    3 if len >= 4 => Some(ServerFrame::Reset(word(9))),
                    7 if len >= 8 => Some(ServerFrame::GoAway(word(13))),
                    _ => None,
                };
                if let Some(event) = event {
                    let _ = tx.send(event);
                }
                buf.drain(..9 + len);
            }
        }
        let _ = tx.send(ServerFrame::Closed);
    });
    rx
}

/// A caller whose calls are all shed, each request's DATA frame reaching the gateway after
/// its refusal went out (a flood's calls queue behind one another), keeps its connection
/// and gets `RESOURCE_EXHAUSTED` for every call. The gateway reads the rest of a refused
/// call's body instead of resetting the stream: h2 answers DATA on a reset stream it has
/// forgotten with a stream error, and closes a connection that provoked 256 of those with
/// GOAWAY(ENHANCE_YOUR_CALM), every call on it lost (the overload benchmark's 5x flood
/// lost its connections this way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_calls_whose_body_comes_late_keep_their_connection() {
    let _serial = SERIAL.lock().await;
    let h = Harness::start_with(|c| c.limits.max_concurrent_calls = 1)
        .await
        .unwrap();
    let purpose = "analytics.reporting";
    let mut headers = valid_headers(&h, caller_for(purpose), purpose);
    headers.push(("grpc-timeout".into(), "60S".into()));
    // One call whose body never ends holds the only place: every other call is shed.
    let held = slow_streams(h.addr(), &headers, 1).await;
    // Admitted before any call below arrives (it travels on another connection).
    let start = Instant::now();
    while metric(&h, "discreet_calls_in_flight").await < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the held call was not admitted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let tcp = TcpStream::connect(h.addr()).await.unwrap();
    let (read, mut write) = tcp.into_split();
    let mut frames = server_frames(read);
    let mut start = PREFACE.to_vec();
    start.extend(raw_frame(4, 0, 0, &[])); // SETTINGS
    write.write_all(&start).await.unwrap();
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    hpack_literal(":path", GET_PROFILE, &mut block);
    hpack_literal(":authority", "localhost", &mut block);
    for (name, value) in &headers {
        hpack_literal(name, value, &mut block);
    }
    // Rounds of 100 calls: all their HEADERS, then (every refusal received) their DATA.
    const ROUNDS: u32 = 6;
    const CALLS: u32 = 100;
    let mut next_stream = 1u32;
    let mut resets = Vec::new();
    for round in 0..ROUNDS {
        let first = next_stream;
        let mut out = Vec::new();
        for _ in 0..CALLS {
            out.extend(raw_frame(1, 0x4, next_stream, &block)); // HEADERS, END_HEADERS
            next_stream += 2;
        }
        write.write_all(&out).await.unwrap();
        let mut refused = 0;
        while refused < CALLS {
            let event = tokio::time::timeout(Duration::from_secs(10), frames.recv())
                .await
                .unwrap_or_else(|_| panic!("round {round}: {refused} of {CALLS} refusals in 10 s"));
            match event {
                Some(ServerFrame::Ended(s)) if s >= first => refused += 1,
                Some(ServerFrame::Ended(_)) => {}
                Some(ServerFrame::Reset(code)) => resets.push(code),
                Some(ServerFrame::GoAway(code)) => {
                    panic!("round {round}: the gateway closed the connection: GOAWAY {code:#x}")
                }
                other => panic!("round {round}: the gateway gave up the connection: {other:?}"),
            }
        }
        // The calls' messages (an empty GetProfileRequest), after their refusals.
        let mut out = Vec::new();
        for stream in (first..next_stream).step_by(2) {
            out.extend(raw_frame(0, 0x1, stream, &[0, 0, 0, 0, 0])); // DATA, END_STREAM
        }
        write.write_all(&out).await.unwrap();
    }
    // One more call on the same connection is answered like the others.
    write
        .write_all(&raw_frame(1, 0x5, next_stream, &block))
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), frames.recv()).await {
            Ok(Some(ServerFrame::Ended(s))) if s == next_stream => break,
            Ok(Some(ServerFrame::Ended(_))) => {}
            Ok(Some(ServerFrame::Reset(code))) => resets.push(code),
            other => panic!("the last call was not answered: {other:?}"),
        }
    }
    assert!(
        resets.is_empty(),
        "the gateway reset {} refused streams (codes {:?}) instead of reading their bodies",
        resets.len(),
        &resets[..resets.len().min(5)]
    );
    assert_eq!(
        metric(&h, "discreet_calls_shed_total").await,
        u64::from(ROUNDS * CALLS + 1)
    );
    drop((held, write));
    h.shutdown().await;
}
