//! Faults (issue 8, item 4): the store refusing connections, killed mid-answer, stalled,
//! answering garbage or fields its schema does not declare; key and revocation sources
//! going down and coming back; the policy file replaced by garbage; the audit collector
//! away (relaxed mode; strict mode is `audit.rs`).
//!
//! Each test shows what the caller gets (the gRPC status and a message that says what
//! went wrong), that nothing beyond what the policy releases reaches the caller (a marker
//! planted in what the faulty part sends never appears in any answer byte, header,
//! trailer or span), and that a normal call is served again, with the same answer as
//! before the fault, once the fault clears.
//!
//! Everything is real: the gateway on `127.0.0.1:0`, tonic and raw `h2` clients, real
//! tokens, and the reference store behind a TCP proxy that injects the faults (or a raw
//! HTTP/2 store that answers what the test scripts): see `common/fault_store.rs`. No
//! assertion depends on timing: waits poll, with generous limits only so that a broken
//! gateway fails the test instead of hanging it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
#[path = "common/fault_store.rs"]
mod fault_store;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use common::{assert_refused, caller_for, get, meta};
use discreet_config::Upstream;
use discreet_consent::{KeySourceConfig, RevocationSourceConfig};
use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, BatchGetProfilesResponse, GetProfileRequest, Profile,
    StreamProfilesRequest, profile_service_client::ProfileServiceClient,
};
use discreet_testkit::{Dataset, Harness};
use fault_store::{
    BATCH_GET, Doc, DocServer, End, FaultProxy, GET_PROFILE, GarbageServer, Reply, Responder,
    STREAM, ScriptedStore, clean, grpc_frame,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use tonic::{Code, Status, transport::Channel};

/// Planted in everything a faulty part sends that the policy must not release.
const MARKER: &str = "FAULT-MARKER-5e1f0a";
const SUBJECT: &str = "persona-eu";
const PURPOSE: &str = "personalize";
/// A purpose whose legal basis is not consent: no consent token needed.
const NO_CONSENT_PURPOSE: &str = "essential.fraud_detection";
const STREAM_PURPOSE: &str = "analytics.reporting";
/// Longest a test waits for anything: only so that a hang fails instead of blocking.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Set-up.

/// The reference store (`profile_store`) on a free port: the personas and `profiles`
/// synthetic profiles, dated as the harness's fixed clock expects.
async fn real_store(profiles: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = profile_store::ProfileStore::new(Dataset::generate(profiles));
    tokio::spawn(profile_store::serve(
        store,
        listener,
        std::future::pending::<()>(),
    ));
    addr
}

fn remote(addr: SocketAddr) -> Upstream {
    Upstream::Remote {
        address: format!("http://{addr}"),
        connect_timeout: Duration::from_secs(2),
    }
}

/// Calls `attempt` until it succeeds; every failure on the way must have one of the
/// `allowed` codes (a recovering gateway still fails closed, and says why).
async fn until_served<T, F, Fut>(what: &str, allowed: &[Code], mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let start = tokio::time::Instant::now();
    loop {
        match tokio::time::timeout(PATIENCE, attempt()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(s)) => {
                assert!(allowed.contains(&s.code()), "{what}: unexpected {s:?}");
                assert!(
                    start.elapsed() < PATIENCE,
                    "{what}: not served again within {PATIENCE:?}; last {s:?}"
                );
            }
            Err(_) => panic!("{what}: a call hung for {PATIENCE:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls `attempt` until it fails, and returns the status; successes on the way are
/// allowed (a source that just went down is used until its last good copy is too old).
async fn until_refused<T, F, Fut>(what: &str, mut attempt: F) -> Status
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let start = tokio::time::Instant::now();
    loop {
        match tokio::time::timeout(PATIENCE, attempt()).await {
            Ok(Err(s)) => return s,
            Ok(Ok(_)) => assert!(
                start.elapsed() < PATIENCE,
                "{what}: still served after {PATIENCE:?}"
            ),
            Err(_) => panic!("{what}: a call hung for {PATIENCE:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `fut`, or a test failure if it has not finished within [`PATIENCE`].
async fn no_hang<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PATIENCE:?}"))
}

/// A `StreamProfiles` of every record, as the analytics caller (no consent needed).
fn stream_request(h: &Harness) -> tonic::Request<StreamProfilesRequest> {
    h.request(
        StreamProfilesRequest {
            segment: "all".into(),
            limit: 0,
        },
        caller_for(STREAM_PURPOSE),
        STREAM_PURPOSE,
        &[],
    )
    .unwrap()
}

/// A client that takes at most 64 KiB in flight: the gateway (and so the store) can run
/// only a little ahead of what the test has read.
async fn slow_client(h: &Harness) -> ProfileServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .unwrap();
    ProfileServiceClient::new(channel)
}

/// Reads a whole stream: the records, and the status it ended with.
async fn read_stream(
    stream: &mut tonic::Streaming<Profile>,
    into: &mut Vec<Profile>,
) -> Result<(), Status> {
    while let Some(p) = stream.message().await? {
        into.push(p);
    }
    Ok(())
}

/// A complete stream of every record, retried until the gateway serves it.
async fn full_stream(h: &Harness, allowed: &[Code]) -> Vec<Profile> {
    until_served("a full stream", allowed, || async {
        let mut stream = h
            .client()
            .await
            .unwrap()
            .stream_profiles(stream_request(h))
            .await?
            .into_inner();
        let mut out = Vec::new();
        read_stream(&mut stream, &mut out).await?;
        Ok(out)
    })
    .await
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/2 client: what the gateway sends, byte for byte.

/// What the gateway answered, as seen on the wire.
#[derive(Debug, Default)]
struct Answer {
    /// `grpc-status` (trailers-only headers or trailers).
    grpc: Option<i32>,
    /// `grpc-message`, percent-decoded.
    message: String,
    /// Every header and trailer, `name: value` per line.
    text: String,
    body: Vec<u8>,
    /// The stream was reset instead of answered.
    reset: Option<h2::Reason>,
}

impl Answer {
    fn code(&self) -> Code {
        Code::from_i32(
            self.grpc
                .unwrap_or_else(|| panic!("no grpc-status: {self:?}")),
        )
    }

    /// The messages of the body, without their frames.
    fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = self.body.as_slice();
        while !rest.is_empty() {
            assert!(rest.len() >= 5, "a partial frame reached the caller");
            assert_eq!(rest[0], 0, "compressed frame from the gateway");
            let n = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
            assert!(rest.len() >= 5 + n, "a partial message reached the caller");
            out.push(rest[5..5 + n].to_vec());
            rest = &rest[5 + n..];
        }
        out
    }

    /// The marker appears nowhere in the answer: body, headers, trailers, message.
    fn assert_clean(&self, case: &str) {
        let marker = MARKER.as_bytes();
        assert!(
            !self.body.windows(marker.len()).any(|w| w == marker),
            "{case}: the marker reached the caller in the body"
        );
        assert!(
            !self.text.contains(MARKER),
            "{case}: the marker reached the caller in headers or trailers:\n{}",
            self.text
        );
    }
}

fn note(answer: &mut Answer, headers: &HeaderMap) {
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        answer.text.push_str(&format!("{k}: {v}\n"));
        if k == "grpc-status" {
            answer.grpc = v.parse().ok();
        }
        if k == "grpc-message" {
            answer.message = common::percent_decode(&v);
            answer
                .text
                .push_str(&format!("(decoded) {}\n", answer.message));
        }
    }
}

/// Sends one call on a fresh connection, with a caller token for `purpose`, a consent
/// token for each of `subjects`, and `extra` headers; reads the whole answer.
async fn raw_call(
    h: &Harness,
    path: &str,
    purpose: &str,
    subjects: &[&str],
    message: &[u8],
    extra: &[(&str, &str)],
) -> Answer {
    let addr = h.addr();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let caller = h
        .keys
        .caller_token(caller_for(purpose), Duration::from_secs(3600))
        .unwrap();
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {caller}"))
        .header("x-discreet-purpose", purpose)
        .body(())
        .unwrap();
    for s in subjects {
        request.headers_mut().append(
            "x-discreet-consent",
            HeaderValue::from_str(&h.consent(s, &[purpose]).unwrap()).unwrap(),
        );
    }
    for (k, v) in extra {
        request.headers_mut().append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut answer = Answer::default();
    let exchange = async {
        let mut client = client.ready().await?;
        let (response, mut stream) = client.send_request(request, false)?;
        let _ = stream.send_data(grpc_frame(message), true);
        let response = response.await?;
        note(&mut answer, response.headers());
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            answer.body.extend_from_slice(&chunk);
        }
        if let Some(trailers) = body.trailers().await? {
            note(&mut answer, &trailers);
        }
        Ok::<_, h2::Error>(())
    };
    match tokio::time::timeout(PATIENCE, exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => answer.reset = e.reason(),
        Err(_) => panic!("{path}: no answer within {PATIENCE:?}"),
    }
    connection.abort();
    answer
}

fn get_message(subject: &str) -> Vec<u8> {
    GetProfileRequest {
        subject_id: subject.into(),
    }
    .encode_to_vec()
}

// ---------------------------------------------------------------------------------------
// Protobuf wire bytes, written and read by hand (unknown fields are the point).

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(number: u32, payload: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | 2, out);
    varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn field_varint(number: u32, v: u64, out: &mut Vec<u8>) {
    varint(u64::from(number) << 3, out);
    varint(v, out);
}

fn field_fixed64(number: u32, v: u64, out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | 1, out);
    out.extend_from_slice(&v.to_le_bytes());
}

/// The top-level fields of a message: (number, payload of a length-delimited field).
fn top_fields(mut input: &[u8]) -> Vec<(u32, Option<&[u8]>)> {
    fn read_varint(input: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (b, rest) = input
                .split_first()
                .expect("truncated varint from the gateway");
            *input = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !input.is_empty() {
        let key = read_varint(&mut input);
        let number = u32::try_from(key >> 3).unwrap();
        match key & 7 {
            0 => {
                read_varint(&mut input);
                out.push((number, None));
            }
            1 => {
                input = &input[8..];
                out.push((number, None));
            }
            2 => {
                let n = usize::try_from(read_varint(&mut input)).unwrap();
                out.push((number, Some(&input[..n])));
                input = &input[n..];
            }
            5 => {
                input = &input[4..];
                out.push((number, None));
            }
            other => panic!("wire type {other} from the gateway"),
        }
    }
    out
}

/// Field numbers `Profile` does not declare, planted by [`with_extras`].
const UNDECLARED_TOP: [u32; 3] = [999, 1000, 5000];
/// A field number `PersonName` does not declare, planted inside `name` (field 3).
const UNDECLARED_IN_NAME: u32 = 9;

/// `p`, with the marker in a declared field the policy withholds from `personalize`
/// (`national_id`), and fields the schema does not declare: at the top (a string holding
/// the marker, a varint, a fixed64) and inside `name` (a second occurrence of field 3,
/// which parsers merge, holding an undeclared string with the marker).
fn with_extras(p: &Profile) -> Vec<u8> {
    let mut p = p.clone();
    p.national_id = MARKER.into();
    let mut out = p.encode_to_vec();
    field_bytes(UNDECLARED_TOP[0], MARKER.as_bytes(), &mut out);
    field_varint(UNDECLARED_TOP[1], 42, &mut out);
    field_fixed64(UNDECLARED_TOP[2], 0x4d41_524b_4552_2121, &mut out);
    let mut name = Vec::new();
    field_bytes(UNDECLARED_IN_NAME, MARKER.as_bytes(), &mut name);
    field_bytes(3, &name, &mut out);
    out
}

/// No field the schema does not declare in a released record.
fn assert_only_declared(record: &[u8], case: &str) {
    for (number, payload) in top_fields(record) {
        assert!(
            !UNDECLARED_TOP.contains(&number),
            "{case}: undeclared field {number} released"
        );
        if number == 3 {
            let inner = top_fields(payload.unwrap());
            assert!(
                inner.iter().all(|(n, _)| *n != UNDECLARED_IN_NAME),
                "{case}: undeclared field inside name released"
            );
        }
    }
}

/// No span the gateway exported carries the marker.
async fn assert_spans_clean(h: &Harness, at_least: usize) {
    let spans = h.wait_for_spans(at_least).await.unwrap();
    let text = format!("{spans:?}");
    assert!(!text.contains(MARKER), "the marker reached an access span");
    let bytes: Vec<u8> = spans.iter().flat_map(Message::encode_to_vec).collect();
    assert!(
        !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
        "the marker reached an access span"
    );
}

// ---------------------------------------------------------------------------------------
// The store.

/// The store's port refuses connections (the store is down, its open connections cut):
/// every call is UNAVAILABLE at once with "profile store unavailable", nothing else; when
/// it listens again the next calls are served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusing_connections_gives_unavailable_until_it_is_back() {
    let proxy = FaultProxy::start(real_store(300).await).await;
    let h = Harness::start_with(|c| c.upstream = remote(proxy.addr))
        .await
        .unwrap();
    let before = get(&h, SUBJECT, PURPOSE).await.unwrap().into_inner();
    let before_raw = raw_call(
        &h,
        GET_PROFILE,
        PURPOSE,
        &[SUBJECT],
        &get_message(SUBJECT),
        &[],
    )
    .await;
    assert_eq!(before_raw.code(), Code::Ok, "{before_raw:?}");

    proxy.refuse().await;
    for _ in 0..3 {
        let s = assert_refused(
            no_hang("refused unary", get(&h, SUBJECT, PURPOSE)).await,
            Code::Unavailable,
        );
        assert_eq!(s.message(), "profile store unavailable", "{s:?}");
        let raw = raw_call(
            &h,
            GET_PROFILE,
            PURPOSE,
            &[SUBJECT],
            &get_message(SUBJECT),
            &[],
        )
        .await;
        assert_eq!(raw.code(), Code::Unavailable, "{raw:?}");
        assert!(raw.body.is_empty(), "a refused call carried a body");
        assert_eq!(meta_of(&raw, "x-discreet-decision"), "denied");
        // A stream fails the same way, before any record.
        let mut records = Vec::new();
        let ended = no_hang("refused stream", async {
            let mut stream = h
                .client()
                .await
                .unwrap()
                .stream_profiles(stream_request(&h))
                .await?
                .into_inner();
            read_stream(&mut stream, &mut records).await
        })
        .await;
        assert_eq!(ended.unwrap_err().code(), Code::Unavailable);
        assert!(records.is_empty());
    }

    proxy.accept_again().await;
    let after = until_served("store back", &[Code::Unavailable], || {
        get(&h, SUBJECT, PURPOSE)
    })
    .await
    .into_inner();
    assert_eq!(after, before, "the same answer as before the outage");
    let after_raw = raw_call(
        &h,
        GET_PROFILE,
        PURPOSE,
        &[SUBJECT],
        &get_message(SUBJECT),
        &[],
    )
    .await;
    assert_eq!(after_raw.body, before_raw.body);
    assert_eq!(full_stream(&h, &[]).await.len(), 306);
    h.shutdown().await;
}

/// A header or trailer of a raw answer.
fn meta_of(answer: &Answer, key: &str) -> String {
    answer
        .text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_default()
        .to_owned()
}

/// The store dies with an answer half sent: a unary call whose answer the store had
/// started, and a stream some records in. Both end UNAVAILABLE (a cut stream never looks
/// complete), the records the stream delivered are exactly the enforced records an intact
/// stream delivers, and calls are served again on a new connection at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_killed_mid_answer_ends_the_call_unavailable_and_service_recovers() {
    const PROFILES: usize = 3000;
    let proxy = FaultProxy::start(real_store(PROFILES).await).await;
    let h = Arc::new(
        Harness::start_with(|c| c.upstream = remote(proxy.addr))
            .await
            .unwrap(),
    );
    let before = get(&h, SUBJECT, PURPOSE).await.unwrap().into_inner();

    // Unary: the store has answered, the answer is held in the proxy, then the store dies.
    let record_size = common::raw(&h, SUBJECT).await.encoded_len() as u64;
    proxy.stall(true);
    let call = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { get(&h, SUBJECT, PURPOSE).await })
    };
    // (The store's answer, not some small control frame: at least the record's size.)
    no_hang("the store's answer reaches the proxy", async {
        while proxy.held_bytes() < record_size {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    proxy.kill_connections();
    let s = assert_refused(no_hang("unary cut", call).await.unwrap(), Code::Unavailable);
    proxy.stall(false);
    assert_eq!(s.message(), "profile store unavailable", "{s:?}");

    // A stream, ten records in.
    let mut stream = slow_client(&h)
        .await
        .stream_profiles(stream_request(&h))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    for _ in 0..10 {
        received.push(stream.message().await.unwrap().unwrap());
    }
    proxy.kill_connections();
    let ended = no_hang("stream cut", read_stream(&mut stream, &mut received)).await;
    let s = ended.expect_err("a stream cut by the store ended as if complete");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert_eq!(s.message(), "profile store unavailable", "{s:?}");
    assert!(
        received.len() < PROFILES + 6,
        "every record arrived though the store was killed"
    );

    // Back at once (the store itself never went away, only its connection).
    let after = until_served("after the cut", &[Code::Unavailable], || {
        get(&h, SUBJECT, PURPOSE)
    })
    .await
    .into_inner();
    assert_eq!(after, before);
    let intact = full_stream(&h, &[Code::Unavailable]).await;
    assert_eq!(intact.len(), PROFILES + 6);
    assert_eq!(
        received[..],
        intact[..received.len()],
        "the cut stream delivered exactly what an intact one does, as far as it went"
    );
    eprintln!(
        "cut stream: {} of {} records before UNAVAILABLE",
        received.len(),
        intact.len()
    );
    Arc::try_unwrap(h).unwrap().shutdown().await;
}

/// The store stops answering (its connection open, its answers held back). A unary call
/// ends at the caller's deadline with DEADLINE_EXCEEDED; a stream without a deadline ends
/// UNAVAILABLE once the store has sent nothing for the idle limit
/// (`limits.default_timeout`). When the store answers again, calls are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_ends_calls_at_their_deadline_and_service_recovers() {
    const PROFILES: usize = 3000;
    let proxy = FaultProxy::start(real_store(PROFILES).await).await;
    let h = Harness::start_with(|c| {
        c.upstream = remote(proxy.addr);
        c.limits.default_timeout = Duration::from_secs(2);
    })
    .await
    .unwrap();
    let deadline = [("grpc-timeout", "20S")];
    let before = raw_call(
        &h,
        GET_PROFILE,
        PURPOSE,
        &[SUBJECT],
        &get_message(SUBJECT),
        &deadline,
    )
    .await;
    assert_eq!(before.code(), Code::Ok, "{before:?}");

    proxy.stall(true);
    let stalled = raw_call(
        &h,
        GET_PROFILE,
        PURPOSE,
        &[SUBJECT],
        &get_message(SUBJECT),
        &[("grpc-timeout", "1000m")],
    )
    .await;
    assert_eq!(stalled.code(), Code::DeadlineExceeded, "{stalled:?}");
    assert_eq!(stalled.message, "deadline exceeded");
    assert!(stalled.body.is_empty());

    // A stream, ten records in, then the store stalls.
    proxy.stall(false);
    let mut stream = slow_client(&h)
        .await
        .stream_profiles(stream_request(&h))
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    for _ in 0..10 {
        received.push(stream.message().await.unwrap().unwrap());
    }
    proxy.stall(true);
    let ended = no_hang("stalled stream", read_stream(&mut stream, &mut received)).await;
    let s = ended.expect_err("a stalled stream ended as if complete");
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert!(s.message().contains("idle limit"), "{s:?}");
    assert!(received.len() < PROFILES + 6);

    proxy.stall(false);
    let after = until_served(
        "stall cleared",
        &[Code::Unavailable, Code::DeadlineExceeded],
        || async {
            let a = raw_call(
                &h,
                GET_PROFILE,
                PURPOSE,
                &[SUBJECT],
                &get_message(SUBJECT),
                &deadline,
            )
            .await;
            match a.code() {
                Code::Ok => Ok(a),
                code => Err(Status::new(code, a.message)),
            }
        },
    )
    .await;
    assert_eq!(
        after.body, before.body,
        "the same answer as before the stall"
    );
    let intact = full_stream(&h, &[Code::Unavailable]).await;
    assert_eq!(intact.len(), PROFILES + 6);
    assert_eq!(received[..], intact[..received.len()]);
    h.shutdown().await;
}

/// One way for a store to answer garbage.
struct Garbage {
    name: &'static str,
    reply: Reply,
    code: Code,
    /// What the status message must say.
    says: &'static str,
}

fn garbage_cases(record: &Profile, other: &Profile) -> Vec<Garbage> {
    let marker = MARKER.as_bytes();
    let good = Bytes::from(with_extras(record));
    let framed = |m: &[u8]| grpc_frame(m);
    // A declared string holding the marker, then a broken field.
    let with_tail = |tail: &[u8]| {
        let mut m = Vec::new();
        field_bytes(22, marker, &mut m);
        m.extend_from_slice(tail);
        m
    };
    let mut lying = vec![0u8];
    lying.extend_from_slice(&1000u32.to_be_bytes());
    lying.extend_from_slice(&with_tail(&[]));
    let mut compressed = vec![1u8];
    compressed.extend_from_slice(&u32::try_from(marker.len()).unwrap().to_be_bytes());
    compressed.extend_from_slice(marker);
    let mut huge = vec![0u8, 0xff, 0xff, 0xff, 0xff];
    huge.extend_from_slice(marker);
    let mut not_a_profile = vec![0xff; 16];
    not_a_profile.extend_from_slice(marker);
    let ok = Reply::ok;
    vec![
        Garbage {
            name: "truncated varint after a field",
            reply: ok(vec![framed(&with_tail(&[0x88, 0x01, 0xff]))]),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "a field longer than the message",
            reply: ok(vec![framed(&with_tail(&[0x12, 0x7f, b'x']))]),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "bytes that are no protobuf at all",
            reply: ok(vec![framed(&not_a_profile)]),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "a frame declaring more than it holds",
            reply: ok(vec![Bytes::from(lying)]),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "a compressed frame",
            reply: ok(vec![Bytes::from(compressed)]),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "a frame declaring 4 GiB",
            reply: ok(vec![Bytes::from(huge)]),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "OK without a message",
            reply: ok(Vec::new()),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "a record and no grpc-status",
            reply: Reply {
                end: End::Bare,
                ..ok(vec![framed(&good)])
            },
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "two messages on a unary call",
            reply: ok(vec![framed(&good), framed(&with_tail(&[]))]),
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "a record, then a reset",
            reply: Reply {
                end: End::Reset,
                ..ok(vec![framed(&good)])
            },
            code: Code::Unavailable,
            says: "profile store",
        },
        Garbage {
            name: "HTTP 500 with an error page",
            reply: Reply {
                status: 500,
                headers: vec![("content-type".into(), "text/html".into())],
                data: vec![Bytes::from(format!("<h1>{MARKER}</h1>"))],
                end: End::Bare,
            },
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "response headers over the 16 KiB cap",
            reply: Reply {
                headers: vec![
                    ("content-type".into(), "application/grpc".into()),
                    (
                        "x-store-debug".into(),
                        MARKER.repeat(20_000 / MARKER.len() + 1),
                    ),
                ],
                ..ok(vec![framed(&good)])
            },
            code: Code::Unavailable,
            says: "profile store",
        },
        Garbage {
            name: "HTTP 503",
            reply: Reply {
                status: 503,
                headers: vec![("x-debug".into(), MARKER.into())],
                data: vec![Bytes::from(MARKER)],
                end: End::Bare,
            },
            code: Code::Unavailable,
            says: "profile store",
        },
        Garbage {
            name: "a refusal whose message and headers quote the record",
            reply: Reply {
                headers: vec![
                    ("content-type".into(), "application/grpc".into()),
                    ("grpc-status".into(), "5".into()),
                    ("grpc-message".into(), format!("no record like {MARKER}")),
                    ("x-store-debug".into(), MARKER.into()),
                ],
                ..Reply::status(5, "")
            },
            code: Code::NotFound,
            says: "profile store",
        },
        Garbage {
            name: "a record, then an error status quoting it",
            reply: Reply {
                end: End::Trailers(vec![
                    ("grpc-status".into(), "13".into()),
                    ("grpc-message".into(), format!("failed after {MARKER}")),
                    ("x-store-debug".into(), MARKER.into()),
                ]),
                ..ok(vec![framed(&good)])
            },
            code: Code::Internal,
            says: "profile store",
        },
        Garbage {
            name: "the record of a subject the call has no consent for",
            reply: ok(vec![framed(&with_extras(other))]),
            code: Code::PermissionDenied,
            says: "a subject the call has no grant for",
        },
    ]
}

/// The store answers garbage of every kind: broken protobuf, lying or compressed frames,
/// missing or extra messages, resets, HTTP errors, statuses and headers that quote the
/// record, and bytes that are not HTTP/2 at all. Each call fails with INTERNAL (a broken
/// answer) or UNAVAILABLE (no answer), or passes on the store's own code without its
/// message; the marker in the garbage never reaches the caller or a span, whatever part
/// of a message is released is the enforced record, and the next call after each case is
/// served exactly as before.
// ---------------------------------------------------------------------------------------
// A store restarting: what it provably did not take is sent again, nothing else is.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_store_s_goaway_excluded_is_sent_again_on_a_new_connection() {
    let store = fault_store::RestartingStore::start(real_store(10).await).await;
    let h = Harness::start_with(|c| c.upstream = remote(store.addr))
        .await
        .unwrap();
    // The first connection's GOAWAY names no stream processed: the caller sees nothing
    // of it, and the call is served on a second connection.
    let first = no_hang("a call through a GOAWAY", get(&h, SUBJECT, PURPOSE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(store.connections(), 2, "the request was not sent again");
    // The second connection stays in use, and serves the same enforced record.
    let second = get(&h, SUBJECT, PURPOSE).await.unwrap().into_inner();
    assert_eq!(second, first);
    assert!(
        first.contact.is_none(),
        "not the enforced record: {first:?}"
    );
    assert_eq!(store.connections(), 2);
    assert_spans_clean(&h, 2).await;
}

/// A responder that answers the first request with `first` and every later one as
/// [`clean`] does, and counts the requests it saw.
fn first_then_clean(first: Reply, data: &Arc<Dataset>) -> (Responder, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&seen);
    let clean = clean(Arc::clone(data));
    let responder: Responder = Arc::new(move |path, message| {
        if counted.fetch_add(1, Ordering::Relaxed) == 0 {
            first.clone()
        } else {
            clean(path, message)
        }
    });
    (responder, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_store_refused_is_sent_again_and_no_other_reset_is() {
    let data = Arc::new(Dataset::generate(10));
    let reset_first = |reason| Reply {
        end: End::ResetFirst(reason),
        ..Reply::ok(Vec::new())
    };
    let (refused, seen) = first_then_clean(reset_first(h2::Reason::REFUSED_STREAM), &data);
    let store = ScriptedStore::start(refused).await;
    let h = Harness::start_with(|c| c.upstream = remote(store.addr))
        .await
        .unwrap();
    // REFUSED_STREAM: the store did not process it (RFC 9113, 8.7), so it is sent again.
    let served = no_hang("a refused stream", get(&h, SUBJECT, PURPOSE)).await;
    assert!(served.is_ok(), "{served:?}");
    assert_eq!(seen.load(Ordering::Relaxed), 2);
    // Any other reset may come after the store acted on the request: not repeated.
    for reason in [
        h2::Reason::INTERNAL_ERROR,
        h2::Reason::CANCEL,
        h2::Reason::NO_ERROR,
    ] {
        let (reset, seen) = first_then_clean(reset_first(reason), &data);
        store.set(reset);
        let failed = no_hang("a reset stream", get(&h, SUBJECT, PURPOSE))
            .await
            .unwrap_err();
        assert_eq!(failed.code(), Code::Unavailable, "{reason:?}: {failed:?}");
        assert_eq!(seen.load(Ordering::Relaxed), 1, "{reason:?} was sent again");
    }
    assert_spans_clean(&h, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_the_store_fails_the_call_and_releases_none_of_it() {
    let data = Arc::new(Dataset::generate(300));
    let store = ScriptedStore::start(clean(Arc::clone(&data))).await;
    let proxy = FaultProxy::start(store.addr).await;
    let h = Harness::start_with(|c| c.upstream = remote(proxy.addr))
        .await
        .unwrap();
    let message = get_message(SUBJECT);
    let call = || raw_call(&h, GET_PROFILE, PURPOSE, &[SUBJECT], &message, &[]);
    let baseline = call().await;
    assert_eq!(baseline.code(), Code::Ok, "{baseline:?}");
    let released = baseline.messages();
    assert_eq!(released.len(), 1);
    let mut calls = 1;

    let record = data.profiles.get(SUBJECT).unwrap().clone();
    let other = data.profiles.get("persona-california").unwrap().clone();
    let mut statuses = Vec::new();
    for case in garbage_cases(&record, &other) {
        let reply = case.reply.clone();
        store.set(Arc::new(move |_, _| reply.clone()));
        let a = call().await;
        calls += 1;
        assert_eq!(a.code(), case.code, "{}: {a:?}", case.name);
        assert!(
            a.message.contains(case.says),
            "{}: the message does not say what failed: {:?}",
            case.name,
            a.message
        );
        // The trailer agrees with the access span: `partial` once a record went out.
        let decision = if a.messages().is_empty() {
            "denied"
        } else {
            "partial"
        };
        assert_eq!(
            meta_of(&a, "x-discreet-decision"),
            decision,
            "{}",
            case.name
        );
        a.assert_clean(case.name);
        // A unary answer is sent as the store's message arrives, so a message can precede
        // the failure; it is then the enforced record, never more.
        for m in a.messages() {
            assert_eq!(
                m, released[0],
                "{}: released other than the enforced record",
                case.name
            );
        }
        statuses.push(format!("{}: {:?} {:?}", case.name, a.code(), a.message));

        store.set(clean(Arc::clone(&data)));
        let back = call().await;
        calls += 1;
        assert_eq!(back.code(), Code::Ok, "after {}: {back:?}", case.name);
        assert_eq!(back.body, baseline.body, "after {}", case.name);
    }

    // A stream that turns to garbage after two records: the two are released, enforced
    // as an intact stream releases them, and the stream ends INTERNAL.
    let stream_message = StreamProfilesRequest {
        segment: "all".into(),
        limit: 3,
    }
    .encode_to_vec();
    let stream_call = || raw_call(&h, STREAM, STREAM_PURPOSE, &[], &stream_message, &[]);
    let intact = stream_call().await;
    assert_eq!(intact.code(), Code::Ok, "{intact:?}");
    assert_eq!(intact.messages().len(), 3);
    let first: Vec<Profile> = data.profiles.values().take(2).cloned().collect();
    let broken = {
        let mut m = Vec::new();
        field_bytes(22, MARKER.as_bytes(), &mut m);
        m.extend_from_slice(&[0x12, 0x7f, b'x']);
        m
    };
    let reply = Reply::ok(vec![
        grpc_frame(&with_extras(&first[0])),
        grpc_frame(&with_extras(&first[1])),
        grpc_frame(&broken),
    ]);
    store.set(Arc::new(move |_, _| reply.clone()));
    let a = stream_call().await;
    assert_eq!(a.code(), Code::Internal, "stream: {a:?}");
    assert!(a.message.contains("profile store"), "{a:?}");
    a.assert_clean("stream turning to garbage");
    assert_eq!(a.messages(), intact.messages()[..2].to_vec());
    // Two records were released before the failure: the trailer says so, as the span does.
    assert_eq!(meta_of(&a, "x-discreet-decision"), "partial");
    statuses.push(format!(
        "a stream turning to garbage after 2 records: {:?} {:?}",
        a.code(),
        a.message
    ));

    // A batch whose envelope holds one good record and one broken one: nothing of it.
    let subjects = [SUBJECT, "persona-california"];
    let batch_message = BatchGetProfilesRequest {
        subject_ids: subjects.iter().map(|s| (*s).to_owned()).collect(),
    }
    .encode_to_vec();
    let mut envelope = Vec::new();
    field_bytes(1, &with_extras(&record), &mut envelope);
    field_bytes(1, &broken, &mut envelope);
    let reply = Reply::ok(vec![grpc_frame(&envelope)]);
    store.set(Arc::new(move |_, _| reply.clone()));
    let a = raw_call(&h, BATCH_GET, PURPOSE, &subjects, &batch_message, &[]).await;
    assert_eq!(a.code(), Code::Internal, "batch: {a:?}");
    assert!(a.message.contains("profile store"), "{a:?}");
    assert!(a.body.is_empty(), "part of a broken batch was released");
    a.assert_clean("batch with a broken record");
    statuses.push(format!(
        "a batch with one broken record: {:?} {:?}",
        a.code(),
        a.message
    ));
    calls += 3;

    // An empty stream answered trailers-only (the status in the response head, as gRPC
    // servers may): OK with nothing released, not a broken answer.
    store.set(Arc::new(|_, _| Reply::status(0, "")));
    let a = stream_call().await;
    calls += 1;
    assert_eq!(a.code(), Code::Ok, "empty stream, trailers-only: {a:?}");
    assert!(a.body.is_empty(), "{a:?}");
    a.assert_clean("empty stream, trailers-only");
    // A status in the head of a stream that then sends a record and ends without
    // trailers: not a gRPC answer, whatever the head says. Nothing of it goes out.
    let reply = Reply {
        headers: vec![
            ("content-type".into(), "application/grpc".into()),
            ("grpc-status".into(), "0".into()),
        ],
        data: vec![grpc_frame(&with_extras(&first[0]))],
        end: End::Bare,
        ..Reply::ok(Vec::new())
    };
    store.set(Arc::new(move |_, _| reply.clone()));
    let a = stream_call().await;
    calls += 1;
    assert_eq!(a.code(), Code::Internal, "a status in an open head: {a:?}");
    assert!(a.body.is_empty(), "{a:?}");
    a.assert_clean("a status in an open head");
    store.set(clean(Arc::clone(&data)));
    let back = stream_call().await;
    calls += 1;
    assert_eq!(back.body, intact.body, "the stream is served again");

    // Not HTTP/2 at all: an HTTP/1.1 error page holding the marker.
    let garbage = GarbageServer::start(MARKER).await;
    proxy.set_target(garbage.addr);
    proxy.kill_connections();
    for _ in 0..2 {
        let a = call().await;
        calls += 1;
        assert_eq!(a.code(), Code::Unavailable, "not HTTP/2: {a:?}");
        assert_eq!(a.message, "profile store unavailable");
        assert!(a.body.is_empty());
        a.assert_clean("not HTTP/2");
    }
    statuses.push("bytes that are not HTTP/2: Unavailable".into());
    proxy.set_target(store.addr);
    proxy.kill_connections();
    let back = until_served("HTTP/2 again", &[Code::Unavailable], || async {
        let a = call().await;
        match a.code() {
            Code::Ok => Ok(a),
            code => Err(Status::new(code, a.message)),
        }
    })
    .await;
    calls += 1;
    assert_eq!(back.body, baseline.body);
    eprintln!("garbage from the store:\n  {}", statuses.join("\n  "));
    assert_spans_clean(&h, calls).await;
    h.shutdown().await;
}

/// The store answers records with fields its schema does not declare (at the top, inside
/// a kept sub-message, in a batch's envelope) and the marker in a declared field the
/// policy withholds. Unary, batch and stream answers are exactly what the same records
/// without the extras give: no undeclared field, no marker, in any answer or span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_schema_does_not_declare_never_reach_the_caller() {
    let data = Arc::new(Dataset::generate(300));
    let store = ScriptedStore::start(clean(Arc::clone(&data))).await;
    let h = Harness::start_with(|c| c.upstream = remote(store.addr))
        .await
        .unwrap();
    let subjects = [SUBJECT, "persona-california"];
    let batch_message = BatchGetProfilesRequest {
        subject_ids: subjects.iter().map(|s| (*s).to_owned()).collect(),
    }
    .encode_to_vec();
    let stream_message = StreamProfilesRequest {
        segment: "all".into(),
        limit: 5,
    }
    .encode_to_vec();
    let calls = || async {
        [
            raw_call(
                &h,
                GET_PROFILE,
                PURPOSE,
                &[SUBJECT],
                &get_message(SUBJECT),
                &[],
            )
            .await,
            raw_call(&h, BATCH_GET, PURPOSE, &subjects, &batch_message, &[]).await,
            raw_call(&h, STREAM, STREAM_PURPOSE, &[], &stream_message, &[]).await,
        ]
    };
    let clean_answers = calls().await;
    for a in &clean_answers {
        assert_eq!(a.code(), Code::Ok, "{a:?}");
    }
    let unary = Profile::decode(clean_answers[0].messages()[0].as_slice()).unwrap();
    assert!(
        unary.national_id.is_empty(),
        "the policy withholds national_id"
    );
    assert!(unary.name.is_some(), "the policy keeps the name");

    let extras: Responder = {
        let data = Arc::clone(&data);
        Arc::new(move |path, message| {
            let record = |id: &str| with_extras(data.profiles.get(id).unwrap());
            match path {
                GET_PROFILE => {
                    let id = GetProfileRequest::decode(message).unwrap().subject_id;
                    Reply::ok(vec![grpc_frame(&record(&id))])
                }
                BATCH_GET => {
                    let mut envelope = Vec::new();
                    for id in BatchGetProfilesRequest::decode(message)
                        .unwrap()
                        .subject_ids
                    {
                        field_bytes(1, &record(&id), &mut envelope);
                    }
                    field_bytes(77, MARKER.as_bytes(), &mut envelope);
                    field_varint(78, 7, &mut envelope);
                    Reply::ok(vec![grpc_frame(&envelope)])
                }
                STREAM => Reply::ok(
                    data.profiles
                        .values()
                        .take(5)
                        .map(|p| grpc_frame(&with_extras(p)))
                        .collect(),
                ),
                _ => Reply::status(12, ""),
            }
        })
    };
    store.set(extras);
    let answers = calls().await;
    for (name, (a, clean)) in ["unary", "batch", "stream"]
        .iter()
        .zip(answers.iter().zip(&clean_answers))
    {
        assert_eq!(a.code(), Code::Ok, "{name}: {a:?}");
        a.assert_clean(name);
        assert_eq!(
            meta_of(a, "x-discreet-policy-version"),
            meta_of(clean, "x-discreet-policy-version")
        );
        let (got, want) = (a.messages(), clean.messages());
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            if *name == "batch" {
                let fields = top_fields(g);
                assert!(
                    fields.iter().all(|(n, _)| *n == 1),
                    "{name}: envelope extras released"
                );
                for (_, record) in fields {
                    assert_only_declared(record.unwrap(), name);
                }
                assert_eq!(
                    BatchGetProfilesResponse::decode(g.as_slice()).unwrap(),
                    BatchGetProfilesResponse::decode(w.as_slice()).unwrap(),
                    "{name}"
                );
            } else {
                assert_only_declared(g, name);
                assert_eq!(
                    Profile::decode(g.as_slice()).unwrap(),
                    Profile::decode(w.as_slice()).unwrap(),
                    "{name}: released other than the clean record gives"
                );
            }
        }
    }
    // The store behaves again: the same answers.
    store.set(clean(Arc::clone(&data)));
    for (a, clean) in calls().await.iter().zip(&clean_answers) {
        assert_eq!(a.body, clean.body);
    }
    assert_spans_clean(&h, 9).await;
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Key and revocation sources.

/// How quickly the URL sources are re-read, and how long a copy stays usable.
const REFRESH: Duration = Duration::from_millis(100);
const STALENESS: Duration = Duration::from_secs(2);
/// While a source is up, a call can still meet a stale copy if the machine stalls the
/// reload task for longer than [`STALENESS`]: calls that must be served are retried
/// through such a blip, which can only ever be UNAVAILABLE.
const BLIP: &[Code] = &[Code::Unavailable];

fn url_keys(url: String) -> KeySourceConfig {
    KeySourceConfig {
        file: None,
        url: Some(url),
        allow_cleartext: false,
        ca_file: None,
        bearer_token_file: None,
        refresh_interval: REFRESH,
        unknown_kid_min_interval: REFRESH,
        max_staleness: STALENESS,
        timeout: Duration::from_secs(2),
    }
}

/// A gateway whose consent keys, caller keys and revocation list come from `docs`, each
/// served from the harness's own files.
async fn harness_with_sources(docs: &DocServer) -> Harness {
    Harness::start_with(|c| {
        point_sources_at(c, docs);
    })
    .await
    .unwrap()
}

/// Points the consent keys, revocation list and caller keys of `c` at `docs`, which
/// serves the files they named. Returns each document's path and file.
fn point_sources_at(
    c: &mut discreet_config::GatewayConfig,
    docs: &DocServer,
) -> Vec<(&'static str, std::path::PathBuf)> {
    let mut served = Vec::new();
    let mut serve = |path: &'static str, file: std::path::PathBuf| {
        docs.set(path, Doc::File(file.clone()));
        served.push((path, file));
        docs.url(path)
    };
    c.consent.keys = url_keys(serve(
        "/consent-jwks.json",
        c.consent.keys.file.clone().unwrap(),
    ));
    let revocation = c.consent.revocation.as_ref().unwrap();
    let url = serve("/revocations.json", revocation.file.clone().unwrap());
    c.consent.revocation = Some(RevocationSourceConfig {
        file: None,
        url: Some(url),
        refresh_interval: REFRESH,
        max_staleness: STALENESS,
        timeout: Duration::from_secs(2),
        ..RevocationSourceConfig::file("unused")
    });
    let discreet_config::IdentityConfig::ServiceAccount(identity) = &mut c.identity else {
        panic!("the shipped configuration uses service-account identity");
    };
    identity.keys = url_keys(serve(
        "/caller-jwks.json",
        identity.keys.file.clone().unwrap(),
    ));
    served
}

/// The gateway's gRPC health for the whole server and for the profile service.
async fn health(h: &Harness) -> Vec<i32> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let mut statuses = Vec::new();
    for service in ["", "profile.v1.ProfileService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        statuses.push(client.check(request).await.unwrap().into_inner().status);
    }
    statuses
}

/// A gateway started while its key and revocation URLs are down starts (the network may
/// come later) but is not ready: health answers NOT_SERVING, so a rollout keeps traffic
/// on the pods that can serve, and calls fail closed. Once the sources answer it is read
/// again within seconds (not after the 5-minute refresh) and reports SERVING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_sources_are_down_at_start_is_not_ready_until_they_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let docs = DocServer::start().await;
    let mut served = Vec::new();
    let h = Harness::start_with(|c| {
        served = point_sources_at(c, &docs);
        for (path, _) in &served {
            docs.set(path, Doc::Down);
        }
        // As shipped: a failed read is retried sooner than this, not after it.
        c.consent.keys.refresh_interval = Duration::from_secs(300);
        c.consent.keys.max_staleness = Duration::from_secs(600);
    })
    .await
    .unwrap();
    let not_serving = ServingStatus::NotServing as i32;
    assert_eq!(health(&h).await, vec![not_serving, not_serving]);
    let s = get(&h, "persona-eu", "personalize").await.unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");

    for (path, file) in &served {
        docs.set(path, Doc::File(file.clone()));
    }
    let serving = ServingStatus::Serving as i32;
    assert!(
        common::eventually(Duration::from_secs(10), async || health(&h).await
            == vec![serving, serving])
        .await,
        "the gateway did not become ready once its sources answered"
    );
    get(&h, "persona-eu", "personalize").await.unwrap();
    h.shutdown().await;
}

/// The consent issuer's key set becomes unreachable (503), then garbage (200 with a body
/// that is no JWKS): the last good keys are used for at most `max_staleness`, then calls
/// that need consent fail closed, UNAVAILABLE, saying the keys are unavailable (calls
/// that need no consent are still served). When the keys are back, calls are served
/// exactly as before, with the very same token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_keys_down_or_garbage_fail_closed_and_come_back() {
    let docs = DocServer::start().await;
    let h = harness_with_sources(&docs).await;
    let consent = vec![h.consent(SUBJECT, &[PURPOSE]).unwrap()];
    let call = || common::get_with(&h, SUBJECT, PURPOSE, &consent);
    let before = until_served("before", BLIP, call).await.into_inner();
    let file = Doc::File(h.keys.dir().join("consent-jwks.json"));

    for (fault, doc) in [
        ("down", Doc::Down),
        ("garbage", Doc::Body(format!("{{\"keys\": \"{MARKER}\"}}"))),
    ] {
        docs.set("/consent-jwks.json", doc);
        let s = until_refused(fault, call).await;
        assert_eq!(s.code(), Code::Unavailable, "{fault}: {s:?}");
        assert_eq!(
            s.message(),
            "consent token refused: token signing keys unavailable; retry later",
            "{fault}"
        );
        assert!(!s.message().contains(MARKER));
        // Consent keys are not needed where the legal basis is not consent.
        until_served(fault, BLIP, || {
            common::get_with(&h, SUBJECT, NO_CONSENT_PURPOSE, &[])
        })
        .await;

        docs.set("/consent-jwks.json", file.clone());
        let after = until_served(fault, &[Code::Unavailable], call)
            .await
            .into_inner();
        assert_eq!(after, before, "{fault}: served as before");
    }
    h.shutdown().await;
}

/// The API server's key set (caller identity) goes down (its connections closed without an answer): once the last good copy is too
/// old every caller is refused UNAVAILABLE ("caller not authenticated: token signing keys
/// unavailable"), not served unauthenticated; when it is back, callers are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_keys_down_fail_closed_and_come_back() {
    let docs = DocServer::start().await;
    let h = harness_with_sources(&docs).await;
    let before = until_served("before", BLIP, || get(&h, SUBJECT, PURPOSE))
        .await
        .into_inner();
    let file = Doc::File(h.keys.dir().join("caller-jwks.json"));

    // This time the source closes the connection without an answer.
    docs.set("/caller-jwks.json", Doc::Cut);
    let s = until_refused("caller keys down", || get(&h, SUBJECT, PURPOSE)).await;
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert_eq!(
        s.message(),
        "caller not authenticated: token signing keys unavailable; retry later"
    );
    // Every purpose, consent or not: nobody is identified.
    let s = assert_refused(
        common::get_with(&h, SUBJECT, NO_CONSENT_PURPOSE, &[]).await,
        Code::Unavailable,
    );
    assert!(s.message().starts_with("caller not authenticated"), "{s:?}");

    docs.set("/caller-jwks.json", file);
    let after = until_served("caller keys back", &[Code::Unavailable], || {
        get(&h, SUBJECT, PURPOSE)
    })
    .await
    .into_inner();
    assert_eq!(after, before);
    h.shutdown().await;
}

/// The revocation list goes down: withdrawn consent must not keep flowing, so once the
/// last good list is too old every consent check fails closed, UNAVAILABLE. A token
/// revoked while the list was down is refused as soon as the list is back, and a fresh
/// token is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_source_down_fails_closed_and_comes_back_with_the_news() {
    let docs = DocServer::start().await;
    let h = harness_with_sources(&docs).await;
    let (token, jti) = h
        .keys
        .consent_token(SUBJECT, &[PURPOSE], &[], Duration::from_secs(3600))
        .unwrap();
    let tokens = vec![token];
    let call = || common::get_with(&h, SUBJECT, PURPOSE, &tokens);
    let before = until_served("before", BLIP, call).await.into_inner();
    let file = Doc::File(h.keys.dir().join("revocations.json"));

    // While it is up, the operator's metrics say so.
    let failures = "discreet_key_source_consecutive_failures{source=\"revocation\"}";
    assert_eq!(metric(&h, failures).await, 0);
    let age = source_age(&h, "revocation").await;
    assert!(age < STALENESS.as_secs_f64(), "revocation age {age}");

    docs.set("/revocations.json", Doc::Down);
    let s = until_refused("revocation list down", call).await;
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert_eq!(
        s.message(),
        "consent token refused: consent revocation state unavailable; retry later"
    );
    // ...and that it is not: failed reads counted, its last good read past the staleness.
    assert!(metric(&h, failures).await >= 1);
    assert!(source_age(&h, "revocation").await > STALENESS.as_secs_f64());
    assert_eq!(
        metric(
            &h,
            "discreet_key_source_consecutive_failures{source=\"consent_keys\"}"
        )
        .await,
        0,
        "the key source is still up"
    );
    // Meanwhile the subject withdraws consent.
    h.keys.revoke(&[jti].into()).unwrap();
    // A garbage list is no better than none.
    docs.set(
        "/revocations.json",
        Doc::Body(format!("{{\"revoked\": [\"{MARKER}\"]}}")),
    );
    let s = assert_refused(call().await, Code::Unavailable);
    assert!(s.message().contains("revocation"), "{s:?}");

    docs.set("/revocations.json", file);
    let s = until_refused("revocation list back", || async {
        match call().await {
            Err(s) if s.code() == Code::Unavailable => Ok(()),
            other => other.map(|_| ()),
        }
    })
    .await;
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert_eq!(s.message(), "consent token refused: consent revoked");
    let fresh = vec![h.consent(SUBJECT, &[PURPOSE]).unwrap()];
    let after = until_served("a fresh token", BLIP, || {
        common::get_with(&h, SUBJECT, PURPOSE, &fresh)
    })
    .await
    .into_inner();
    assert_eq!(after, before);
    assert_eq!(
        metric(&h, failures).await,
        0,
        "back: no failure since the last read"
    );
    h.shutdown().await;
}

/// `discreet_key_source_age_seconds` of `source`.
async fn source_age(h: &Harness, source: &str) -> f64 {
    let name = format!("discreet_key_source_age_seconds{{source=\"{source}\"}}");
    metrics_text(h)
        .await
        .lines()
        .find_map(|l| {
            l.strip_prefix(name.as_str())
                .and_then(|r| r.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{name} not exported"))
}

// ---------------------------------------------------------------------------------------
// The policy file.

async fn metrics_text(h: &Harness) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(h.metrics_addr().unwrap())
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

async fn metric(h: &Harness, name: &str) -> u64 {
    metrics_text(h)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0)
}

/// Replaces the policy file the way a ConfigMap update does (a new file renamed over it).
fn replace_policy(h: &Harness, contents: &[u8]) {
    let tmp = h.dir().join(".policy.yaml.tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, h.policy_path()).unwrap();
}

/// The policy file is replaced by garbage of several kinds (not YAML, binary, empty,
/// truncated, a well-formed policy naming a category the schema does not have, and
/// deleted): each is rejected (counted in `discreet_policy_reloads_total`), calls go on
/// being served under the last good version with exactly the same answer, and a valid
/// file applies as soon as it is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_policy_keeps_the_last_good_one_and_a_valid_file_applies() {
    const REJECTED: &str = "discreet_policy_reloads_total{result=\"rejected\"}";
    let h = Harness::start().await.unwrap();
    let before = get(&h, SUBJECT, PURPOSE).await.unwrap();
    let version = meta(&before, "x-discreet-policy-version");
    let before = before.into_inner();
    let text = std::fs::read_to_string(h.policy_path()).unwrap();
    let unknown_category = text.replacen(
        "- { category: user.name, action: keep }",
        "- { category: user.no_such_category, action: keep }",
        1,
    );
    assert_ne!(unknown_category, text);
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        (
            "not YAML",
            b"version: 3\npurposes: [this is not a policy".to_vec(),
        ),
        ("binary", vec![0xff, 0xfe, 0x00, 0x9c, 0x80, 0x00, 0x01]),
        ("empty", Vec::new()),
        ("truncated", text.as_bytes()[..text.len() / 2].to_vec()),
        ("unknown category", unknown_category.into_bytes()),
    ];
    for (name, contents) in garbage {
        let rejected = metric(&h, REJECTED).await;
        replace_policy(&h, &contents);
        no_hang(name, async {
            while metric(&h, REJECTED).await <= rejected {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let r = get(&h, SUBJECT, PURPOSE)
            .await
            .unwrap_or_else(|s| panic!("{name}: {s:?}"));
        assert_eq!(meta(&r, "x-discreet-policy-version"), version, "{name}");
        assert_eq!(
            r.into_inner(),
            before,
            "{name}: the last good policy applies"
        );
    }
    let rejected = metric(&h, REJECTED).await;
    std::fs::remove_file(h.policy_path()).unwrap();
    no_hang("deleted", async {
        while metric(&h, REJECTED).await <= rejected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let r = get(&h, SUBJECT, PURPOSE).await.unwrap();
    assert_eq!(meta(&r, "x-discreet-policy-version"), version);
    assert_eq!(r.into_inner(), before);

    // A valid file: a new version in which personalisation loses the name.
    let next = text
        .replace(
            &format!("version: \"{version}\""),
            "version: \"faults-recovered\"",
        )
        .replacen(
            "- { category: user.name, action: keep }",
            "- { category: user.name, action: drop }",
            1,
        );
    assert!(next.contains("faults-recovered"));
    replace_policy(&h, next.as_bytes());
    let after = until_served("valid policy", &[Code::Unavailable], || async {
        let r = get(&h, SUBJECT, PURPOSE).await?;
        if meta(&r, "x-discreet-policy-version") == "faults-recovered" {
            Ok(r.into_inner())
        } else {
            Err(Status::unavailable("not reloaded yet"))
        }
    })
    .await;
    assert!(after.name.is_none(), "the new policy applies");
    h.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The audit collector.

/// Relaxed audit mode, collector away: calls are served (and the lost spans counted, see
/// `audit.rs`); when the collector is back, the spans of new calls arrive again.
/// (Strict mode, which refuses calls UNAVAILABLE while the collector is away, and its
/// recovery: `audit.rs` `strict_mode_refuses_while_the_collector_is_away_and_recovers`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_audit_resumes_exporting_when_the_collector_is_back() {
    let mut h = Harness::start_with(|c| {
        c.audit.queue_capacity = 8;
        // Every call in flight holds a queue place: the queue must fit the limit.
        c.limits.max_concurrent_calls = 8;
        c.audit.max_batch = 2;
        c.audit.mode = discreet_config::AuditModeConfig::Relaxed;
    })
    .await
    .unwrap();
    h.receiver.stop().await;
    let before = get(&h, SUBJECT, PURPOSE).await.unwrap().into_inner();
    for _ in 0..20 {
        assert_eq!(
            get(&h, SUBJECT, PURPOSE).await.unwrap().into_inner(),
            before
        );
    }
    h.receiver.restart().await.unwrap();
    // The queue drains first (what it held while the collector was away); the calls made
    // while it is still full are lost, as relaxed mode allows. Then new calls are audited
    // again: call until one of them has its span.
    let mut ids = Vec::new();
    no_hang("the span of a call after the collector's return", async {
        loop {
            let r = get(&h, SUBJECT, PURPOSE).await.unwrap();
            assert_eq!(r.get_ref(), &before);
            ids.push(meta(&r, "x-discreet-decision-id"));
            let spans = format!("{:?}", h.receiver.spans());
            if ids.iter().any(|id| spans.contains(id.as_str())) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    h.shutdown().await;
}
