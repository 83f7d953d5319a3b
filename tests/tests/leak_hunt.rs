//! Leak hunt (issue 8, item 6): every string and bytes field of every persona holds a unique
//! marker (`profile_store::Dataset::with_markers`), a broad set of calls goes through the
//! real gateway, and no marker may appear where the policy does not release it:
//!
//! - logs: everything the process logs through `tracing` (and `log`), at TRACE level, as
//!   text and as JSON (the gateway's two formats), spans' fields included;
//! - access spans as the OTLP receiver got them: every attribute, event, link and status
//!   message (the encoded span and its `Debug` form are searched); subjects may appear
//!   only as the audit key's pseudonyms;
//! - `/metrics`;
//! - responses: HTTP headers, trailers (status messages included) never; message bytes
//!   only the markers of fields that `Policy::explain` says the purpose keeps for that
//!   subject's jurisdiction and grant, and of subjects the call may release
//!   (`PurposePlan::apply` on the store's own record decides the guards).
//!
//! The oracle is two-sided: a released record must carry exactly the markers of the fields
//! the policy keeps (only freshness-limited fields may be missing), so a gateway that
//! released nothing would fail as surely as one that released too much. Tokens, genuine
//! and garbage, are secrets too: none may reach logs, spans or metrics.
//!
//! The calls are made with `h2` as a raw client, so that the bytes checked are the bytes
//! the gateway sent (a protobuf decoder would drop unknown fields).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
#[path = "common/fault_store.rs"]
mod fault_store;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use common::{PURPOSES, caller_for, http_get};
use discreet_consent::keyring::DevKeyring;
use discreet_policy::{Action, ConsentGrant, LegalBasis, Policy, PurposePlan, RecordOutcome};
use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, GetProfileRequest, Profile, StreamProfilesRequest,
    UpdateProfileRequest,
};
use discreet_redact::RewriteReport;
use discreet_schema::{
    Schema,
    prost_reflect::{DynamicMessage, MapKey, Value},
};
use discreet_telemetry::attr;
use discreet_testkit::{Dataset, Harness, REFERENCE_NOW, TempDir};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use prost::Message;
use tokio::net::TcpStream;
use tonic::Code;

const GET: &str = "/profile.v1.ProfileService/GetProfile";
const BATCH: &str = "/profile.v1.ProfileService/BatchGetProfiles";
const STREAM: &str = "/profile.v1.ProfileService/StreamProfiles";
const UPDATE: &str = "/profile.v1.ProfileService/UpdateProfile";
const ETHNICITY: &str = "user.demographic.race_ethnicity";
/// Subject ids the store does not hold (still personal data when a caller sends them).
const UNKNOWN: [&str; 2] = ["LEAK-subject_id-98", "LEAK-subject_id-99"];

// ---------------------------------------------------------------------------------------
// Logs: one process-wide subscriber writing into a buffer, installed before the gateway.

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// Everything logged from now on, at every level, in text and JSON, with span fields and
/// span open/close events (not enter/exit: an async span enters at every poll); `log`
/// records are forwarded too (tracing-subscriber's `tracing-log` feature).
fn capture_logs() -> LogBuffer {
    static LOGS: OnceLock<LogBuffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::{
            filter::LevelFilter, fmt, fmt::format::FmtSpan, layer::SubscriberExt,
            util::SubscriberInitExt,
        };
        let buffer = LogBuffer::default();
        tracing_subscriber::registry()
            .with(LevelFilter::TRACE)
            .with(
                fmt::layer()
                    .with_ansi(false)
                    .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
                    .with_writer(buffer.clone()),
            )
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(buffer.clone()),
            )
            .try_init()
            .expect("the leak hunt installs the only subscriber in this test binary");
        buffer
    })
    .clone()
}

// ---------------------------------------------------------------------------------------
// Markers.

/// One planted value.
#[derive(Debug, Clone)]
struct Marker {
    subject: String,
    /// Where it sits, with indices (`orders.1.skus.0`, `marketing_opt_in.key0`).
    at: String,
    /// The field path `Policy::explain` uses (`orders.skus`, `marketing_opt_in`).
    path: String,
    value: Vec<u8>,
}

/// Every string and bytes value of `message`, map keys included, with its path.
fn strings_of(message: &DynamicMessage, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for (field, value) in message.fields() {
        let at = if prefix.is_empty() {
            field.name().to_owned()
        } else {
            format!("{prefix}.{}", field.name())
        };
        value_strings(value, &at, out);
    }
}

fn value_strings(value: &Value, at: &str, out: &mut Vec<(String, Vec<u8>)>) {
    match value {
        Value::String(s) => out.push((at.to_owned(), s.as_bytes().to_vec())),
        Value::Bytes(b) => out.push((at.to_owned(), b.to_vec())),
        Value::Message(m) => strings_of(m, at, out),
        Value::List(items) => {
            for (i, v) in items.iter().enumerate() {
                value_strings(v, &format!("{at}.{i}"), out);
            }
        }
        Value::Map(entries) => {
            for (i, (k, v)) in entries.iter().enumerate() {
                if let MapKey::String(k) = k {
                    out.push((format!("{at}.key{i}"), k.as_bytes().to_vec()));
                }
                value_strings(v, &format!("{at}.value{i}"), out);
            }
        }
        _ => {}
    }
}

/// `orders.1.skus.0` -> `orders.skus`; `marketing_opt_in.key0` -> `marketing_opt_in`.
fn explain_path(at: &str) -> String {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let index = |s: &str| {
        digits(s)
            || s.strip_prefix("key").is_some_and(digits)
            || s.strip_prefix("value").is_some_and(digits)
    };
    at.split('.')
        .filter(|s| !index(s))
        .collect::<Vec<_>>()
        .join(".")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    // `str::contains` is std's optimised search even in a debug build; the logs run to
    // megabytes. Every needle is ASCII, so the lossy view finds exactly what the bytes hold.
    !needle.is_empty()
        && String::from_utf8_lossy(haystack).contains(&*String::from_utf8_lossy(needle))
}

/// The ways a value might be rendered in text: itself, and for bytes that are not text
/// also `Debug`'s list of numbers.
fn renderings(value: &[u8]) -> Vec<Vec<u8>> {
    let list = format!("{value:?}");
    vec![
        value.to_vec(),
        list.trim_matches(['[', ']']).as_bytes().to_vec(),
    ]
}

// ---------------------------------------------------------------------------------------
// The world: store records, policy, markers.

struct World {
    records: BTreeMap<String, Profile>,
    markers: Vec<Marker>,
    policy: Policy,
    schema: Schema,
    secret: Vec<u8>,
}

impl World {
    fn new(h: &Harness, data: &Dataset) -> World {
        let schema = Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap();
        let text = std::fs::read_to_string(h.policy_path()).unwrap();
        let policy = Policy::parse(&h.policy_path(), &text, &schema).unwrap();
        let secret =
            discreet_config::load_pseudonym_secret(&h.config.pseudonym.secret_file).unwrap();
        let desc = schema.message("profile.v1.Profile").unwrap();
        let mut markers = Vec::new();
        for (subject, record) in &data.profiles {
            let dynamic =
                DynamicMessage::decode(desc.clone(), record.encode_to_vec().as_slice()).unwrap();
            let mut found = Vec::new();
            strings_of(&dynamic, "", &mut found);
            for (at, value) in found {
                if at == "jurisdiction" && value.len() <= 5 {
                    // The personas keep their ISO code: the guards depend on it.
                    continue;
                }
                markers.push(Marker {
                    subject: subject.clone(),
                    path: explain_path(&at),
                    at,
                    value,
                });
            }
        }
        World {
            records: data.profiles.clone(),
            markers,
            policy,
            schema,
            secret,
        }
    }

    /// The markers of `subject` that `purpose` may release under `grant`: (always there,
    /// possibly withheld at run time because of a freshness limit).
    fn allowed(
        &self,
        subject: &str,
        purpose: &str,
        grant: &ConsentGrant,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let record = &self.records[subject];
        let explained = self
            .policy
            .explain(
                &self.schema,
                "profile.v1.Profile",
                purpose,
                grant,
                Some(record.jurisdiction.as_str()),
            )
            .unwrap();
        let (mut sure, mut maybe) = (BTreeSet::new(), BTreeSet::new());
        for m in self.markers.iter().filter(|m| m.subject == subject) {
            if let Some(e) = explained
                .iter()
                .find(|e| e.path == m.path && e.decision.action == Action::Keep)
            {
                if e.max_age_secs.is_some() {
                    maybe.insert(m.at.clone());
                } else {
                    sure.insert(m.at.clone());
                }
            }
        }
        (sure, maybe)
    }

    /// Whether a call for `purpose` carrying `grant` for `subject` releases its record:
    /// consent, then the plan's guards on the store's record.
    fn releases(&self, subject: &str, purpose: &str, grant: Option<&ConsentGrant>) -> bool {
        let Some(record) = self.records.get(subject) else {
            return false;
        };
        let p = self.policy.purpose(purpose).unwrap();
        if p.legal_basis == LegalBasis::Consent && !grant.is_some_and(|g| g.allows_purpose(purpose))
        {
            return false;
        }
        let plan = PurposePlan::compile(
            &self.policy,
            &self.schema,
            "profile.v1.Profile",
            purpose,
            &grant.cloned().unwrap_or_default(),
            &self.secret,
        )
        .unwrap();
        let outcome = plan
            .apply(
                &record.encode_to_vec(),
                REFERENCE_NOW,
                &mut Vec::new(),
                &mut RewriteReport::default(),
            )
            .unwrap();
        outcome == RecordOutcome::Released
    }

    /// Which subject's markers, at which places, are in `bytes`.
    fn found_in(&self, bytes: &[u8]) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in &self.markers {
            if contains(bytes, &m.value) {
                out.entry(m.subject.clone())
                    .or_default()
                    .insert(m.at.clone());
            }
        }
        out
    }

    /// Every forbidden rendering of every marker, unknown subject id and token found in
    /// `text` (for telemetry). The logs run to tens of megabytes and this is a debug
    /// build, so a few prefixes are looked for first: every marker but the personas'
    /// birth dates starts with `LEAK-` (or its `Debug` byte list), every genuine token with
    /// `eyJ`; the values behind a prefix are only looked for when it is there.
    fn leaks_in(&self, text: &[u8], secrets: &[String]) -> Vec<String> {
        let text = String::from_utf8_lossy(text);
        let has =
            |needle: &[u8]| !needle.is_empty() && text.contains(&*String::from_utf8_lossy(needle));
        let leak = b"LEAK-";
        let marked = renderings(leak).iter().any(|r| has(r));
        let jwt = has(b"eyJ");
        let mut out = Vec::new();
        for m in &self.markers {
            let look = !m.value.starts_with(leak) || marked;
            if look && renderings(&m.value).iter().any(|r| has(r)) {
                out.push(format!("{} of {}", m.at, m.subject));
            }
        }
        for id in UNKNOWN {
            if marked && has(id.as_bytes()) {
                out.push(format!("unknown subject id {id}"));
            }
        }
        for s in secrets {
            let look = if s.as_bytes().starts_with(leak) {
                marked
            } else {
                jwt
            };
            // A whole token, or the signature that makes it one.
            let signature = s.rsplit('.').next().unwrap_or(s);
            if look && (has(s.as_bytes()) || (signature.len() >= 16 && has(signature.as_bytes()))) {
                out.push(format!("token {}...", &s[..s.len().min(12)]));
            }
        }
        if marked && out.is_empty() {
            out.push("a LEAK- marker that is none of the planted ones".into());
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Calls: raw HTTP/2, everything kept.

#[derive(Debug, Default)]
struct Answer {
    http: u16,
    headers: HeaderMap,
    trailers: HeaderMap,
    body: Vec<u8>,
    error: Option<String>,
}

impl Answer {
    fn code(&self) -> Option<Code> {
        let v = self
            .trailers
            .get("grpc-status")
            .or_else(|| self.headers.get("grpc-status"))?;
        Some(Code::from_i32(v.to_str().ok()?.parse().ok()?))
    }

    /// The gRPC messages of the body.
    fn messages(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = self.body.as_slice();
        while rest.len() >= 5 {
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            assert_eq!(rest[0], 0, "uncompressed messages expected");
            assert!(rest.len() >= 5 + len, "truncated message");
            out.push(&rest[5..5 + len]);
            rest = &rest[5 + len..];
        }
        assert!(rest.is_empty(), "trailing bytes in the body");
        out
    }
}

/// One call as a test describes it.
struct Call {
    name: String,
    path: &'static str,
    caller_token: Option<String>,
    purpose: &'static str,
    consents: Vec<String>,
    message: Vec<u8>,
}

async fn send(addr: SocketAddr, call: &Call) -> Answer {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut request = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{}", call.path))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-discreet-purpose", call.purpose)
        .body(())
        .unwrap();
    let headers = request.headers_mut();
    if let Some(t) = &call.caller_token {
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    for c in &call.consents {
        headers.append(
            HeaderName::from_static("x-discreet-consent"),
            HeaderValue::from_str(c).unwrap(),
        );
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(call.message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&call.message);
    let mut answer = Answer::default();
    let exchange = async {
        let mut client = client.ready().await?;
        let (response, mut stream) = client.send_request(request, false)?;
        let _ = stream.send_data(Bytes::from(framed), true);
        let response = response.await?;
        answer.http = response.status().as_u16();
        answer.headers = response.headers().clone();
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            answer.body.extend_from_slice(&chunk);
        }
        if let Some(t) = body.trailers().await? {
            answer.trailers = t;
        }
        Ok::<_, h2::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(20), exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => answer.error = Some(e.to_string()),
        Err(_) => panic!("{}: no answer within 20 s", call.name),
    }
    connection.abort();
    answer
}

/// What a call must release: for each subject, the grant it carries (or none).
struct Expect {
    /// `None`: a refusal with any code but OK; `Some(code)`: this code.
    code: Option<Code>,
    /// Subjects whose records may be released, with the grant the call carries for each.
    subjects: Vec<(String, Option<ConsentGrant>)>,
}

fn metadata_text(map: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in map {
        out.extend_from_slice(k.as_str().as_bytes());
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Checks one answer against the policy; returns how many records were compared.
fn check_answer(world: &World, call: &Call, expect: &Expect, answer: &Answer) -> usize {
    let name = &call.name;
    assert!(answer.error.is_none(), "{name}: {:?}", answer.error);
    assert_eq!(answer.http, 200, "{name}");
    let code = answer
        .code()
        .unwrap_or_else(|| panic!("{name}: no grpc-status"));
    match expect.code {
        Some(c) => assert_eq!(code, c, "{name}: {answer:?}"),
        None => assert_ne!(code, Code::Ok, "{name}: refusal expected"),
    }
    // Metadata: never a marker (status messages included, percent-encoded or not).
    for (which, map) in [("headers", &answer.headers), ("trailers", &answer.trailers)] {
        let text = metadata_text(map);
        let leaks = world.found_in(&text);
        assert!(leaks.is_empty(), "{name}: markers in {which}: {leaks:?}");
        for id in UNKNOWN {
            assert!(!contains(&text, id.as_bytes()), "{name}: {id} in {which}");
        }
    }
    let messages = answer.messages();
    if code != Code::Ok {
        assert!(messages.is_empty(), "{name}: a refusal with a message");
        return 0;
    }
    // Records: per message (a batch: per record of the envelope), one subject's markers.
    let mut records: Vec<&[u8]> = Vec::new();
    for m in &messages {
        if call.path == BATCH {
            for f in discreet_redact::fields(m) {
                let f = f.unwrap();
                assert_eq!(f.number, 1, "{name}: envelope field {} released", f.number);
                records.push(f.payload);
            }
        } else {
            records.push(m);
        }
    }
    let mut released = BTreeSet::new();
    for record in &records {
        let found = world.found_in(record);
        assert_eq!(
            found.len(),
            1,
            "{name}: a record with markers of {} subjects: {found:?}",
            found.len()
        );
        let (subject, at) = found.into_iter().next().unwrap();
        let Some((_, grant)) = expect.subjects.iter().find(|(s, _)| *s == subject) else {
            panic!("{name}: {subject}'s record released: {at:?}");
        };
        let grant = grant.clone().unwrap_or_default();
        let (sure, maybe) = world.allowed(&subject, call.purpose, &grant);
        let beyond: Vec<_> = at
            .iter()
            .filter(|a| !sure.contains(*a) && !maybe.contains(*a))
            .collect();
        assert!(
            beyond.is_empty(),
            "{name}: {subject}: released beyond the policy: {beyond:?}"
        );
        let missing: Vec<_> = sure.iter().filter(|a| !at.contains(*a)).collect();
        assert!(
            missing.is_empty(),
            "{name}: {subject}: kept by the policy but missing: {missing:?}"
        );
        assert!(released.insert(subject.clone()), "{name}: {subject} twice");
    }
    let expected: BTreeSet<String> = expect
        .subjects
        .iter()
        .filter(|(s, g)| world.releases(s, call.purpose, g.as_ref()))
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(released, expected, "{name}: released records");
    records.len()
}

// ---------------------------------------------------------------------------------------
// The hunt.

fn grant(purposes: &[&str], special: &[&str]) -> ConsentGrant {
    ConsentGrant {
        purposes: purposes.iter().map(|p| (*p).to_owned()).collect(),
        special_categories: special.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_marker_leaks_beyond_the_policy() {
    let logs = capture_logs();
    // The marked data in a store of its own, behind the gateway.
    let data = Dataset::with_markers();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_addr = listener.local_addr().unwrap();
    tokio::spawn(profile_store::serve(
        profile_store::ProfileStore::new(data.clone()),
        listener,
        std::future::pending(),
    ));
    // The collector checks a bearer token (`audit.headers`), a secret like the others.
    let collector_dir = TempDir::new("leak-hunt-collector").unwrap();
    let collector_token = format!("LEAK-collector-token-{}", std::process::id());
    std::fs::write(
        collector_dir.path().join("token"),
        format!("Bearer {collector_token}\n"),
    )
    .unwrap();
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Remote {
            address: format!("http://{store_addr}"),
            connect_timeout: Duration::from_secs(2),
        };
        c.audit.headers.insert(
            "authorization".into(),
            discreet_config::CollectorHeaderConfig {
                file: Some(collector_dir.path().join("token")),
                value: None,
            },
        );
    })
    .await
    .unwrap();
    h.receiver
        .require_metadata(&[("authorization", &format!("Bearer {collector_token}"))]);
    let world = World::new(&h, &data);
    let subjects: Vec<String> = data.profiles.keys().cloned().collect();
    assert_eq!(subjects.len(), 7);
    // The data set is marked through and through: every string is a marker (the personas'
    // ISO jurisdictions aside), unique, and none contains another.
    let persona_strings: usize = world.markers.len();
    assert!(persona_strings >= 7 * 40, "{persona_strings} markers");
    for (i, a) in world.markers.iter().enumerate() {
        assert!(a.value.len() >= 10, "{a:?} is too short to be a marker");
        for b in &world.markers[i + 1..] {
            assert!(
                !contains(&a.value, &b.value) && !contains(&b.value, &a.value),
                "{a:?} and {b:?} overlap"
            );
        }
    }

    let other_keys_dir = TempDir::new("leak-hunt-keys").unwrap();
    let other_keys = DevKeyring::open_or_create(other_keys_dir.path()).unwrap();
    let hour = Duration::from_secs(3600);
    let mut secrets: Vec<String> = vec![collector_token.clone()];
    let caller_token = |caller: &str, secrets: &mut Vec<String>| {
        let t = h.keys.caller_token(caller, hour).unwrap();
        secrets.push(t.clone());
        Some(t)
    };
    let consent = |subject: &str, purposes: &[&str], special: &[&str], s: &mut Vec<String>| {
        let t = h
            .keys
            .consent_token(subject, purposes, special, hour)
            .unwrap()
            .0;
        s.push(t.clone());
        t
    };
    let get = |s: &str| {
        GetProfileRequest {
            subject_id: s.into(),
        }
        .encode_to_vec()
    };

    let mut calls: Vec<(Call, Expect)> = Vec::new();
    for (purpose, caller) in PURPOSES {
        // Analytics may see ethnicity only with the subject's explicit consent naming it.
        let special: &[&str] = if purpose == "analytics.reporting" {
            &[ETHNICITY]
        } else {
            &[]
        };
        // GetProfile for every subject, with a token (allowed, partial, or refused by a
        // guard) and, for consent purposes, without one (refused).
        for s in &subjects {
            let token = consent(s, &[purpose], special, &mut secrets);
            let g = grant(&[purpose], special);
            let released = world.releases(s, purpose, Some(&g));
            calls.push((
                Call {
                    name: format!("{purpose} get {s} with consent"),
                    path: GET,
                    caller_token: caller_token(caller, &mut secrets),
                    purpose,
                    consents: vec![token],
                    message: get(s),
                },
                Expect {
                    code: Some(if released {
                        Code::Ok
                    } else {
                        Code::PermissionDenied
                    }),
                    subjects: vec![(s.clone(), Some(g))],
                },
            ));
            let released = world.releases(s, purpose, None);
            calls.push((
                Call {
                    name: format!("{purpose} get {s} without consent"),
                    path: GET,
                    caller_token: caller_token(caller, &mut secrets),
                    purpose,
                    consents: Vec::new(),
                    message: get(s),
                },
                Expect {
                    code: Some(if released {
                        Code::Ok
                    } else {
                        Code::PermissionDenied
                    }),
                    subjects: vec![(s.clone(), None)],
                },
            ));
        }
        // An unknown subject: consent-based purposes refuse it for want of consent, or
        // the store does not find it.
        let token = consent(UNKNOWN[0], &[purpose], &[], &mut secrets);
        calls.push((
            Call {
                name: format!("{purpose} get an unknown subject"),
                path: GET,
                caller_token: caller_token(caller, &mut secrets),
                purpose,
                consents: vec![token],
                message: get(UNKNOWN[0]),
            },
            Expect {
                code: Some(Code::NotFound),
                subjects: Vec::new(),
            },
        ));
        // A batch of every subject and an unknown one, with consent for every other
        // subject only: partial for consent purposes.
        let mut consents = Vec::new();
        let mut batch_subjects = Vec::new();
        for (i, s) in subjects.iter().enumerate() {
            if i % 2 == 0 {
                consents.push(consent(s, &[purpose], special, &mut secrets));
                batch_subjects.push((s.clone(), Some(grant(&[purpose], special))));
            } else {
                batch_subjects.push((s.clone(), None));
            }
        }
        let mut ids: Vec<String> = subjects.clone();
        ids.push(UNKNOWN[1].to_owned());
        calls.push((
            Call {
                name: format!("{purpose} batch"),
                path: BATCH,
                caller_token: caller_token(caller, &mut secrets),
                purpose,
                consents,
                message: BatchGetProfilesRequest { subject_ids: ids }.encode_to_vec(),
            },
            Expect {
                code: Some(Code::Ok),
                subjects: batch_subjects,
            },
        ));
        // A stream of every record, with consent for all of them, and without any.
        let all_consents: Vec<String> = subjects
            .iter()
            .map(|s| consent(s, &[purpose], special, &mut secrets))
            .collect();
        for (label, consents) in [("with consent", all_consents), ("without", Vec::new())] {
            let with = !consents.is_empty();
            calls.push((
                Call {
                    name: format!("{purpose} stream {label}"),
                    path: STREAM,
                    caller_token: caller_token(caller, &mut secrets),
                    purpose,
                    consents,
                    message: StreamProfilesRequest {
                        segment: "all".into(),
                        limit: 0,
                    }
                    .encode_to_vec(),
                },
                Expect {
                    code: Some(Code::Ok),
                    subjects: subjects
                        .iter()
                        .map(|s| (s.clone(), with.then(|| grant(&[purpose], special))))
                        .collect(),
                },
            ));
        }
        // A caller that may not declare this purpose.
        let intruder = PURPOSES
            .iter()
            .map(|(_, c)| *c)
            .find(|c| *c != caller)
            .unwrap();
        let token = consent(&subjects[4], &[purpose], &[], &mut secrets);
        calls.push((
            Call {
                name: format!("{purpose} get as {intruder}"),
                path: GET,
                caller_token: caller_token(intruder, &mut secrets),
                purpose,
                consents: vec![token],
                message: get(&subjects[4]),
            },
            Expect {
                code: Some(Code::PermissionDenied),
                subjects: Vec::new(),
            },
        ));
    }

    // Bad credentials and borrowed consent, on a consent purpose.
    let purpose = "personalize";
    let caller = caller_for(purpose);
    let eu = subjects[4].clone();
    let garbage_caller = "LEAK-caller-token.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW5vdC1yZWFs".to_owned();
    let garbage_consent = "LEAK-consent-token.eyJzdWIiOiJ5In0.bm90LWEtc2lnbmF0dXJl".to_owned();
    let forged_caller = other_keys.caller_token(caller, hour).unwrap();
    let forged_consent = other_keys
        .consent_token(&eu, &[purpose], &[], hour)
        .unwrap()
        .0;
    let expired = h
        .keys
        .expired_consent_token(&eu, &[purpose], Duration::from_secs(7200))
        .unwrap();
    let borrowed = consent(&subjects[5], &[purpose], &[], &mut secrets);
    let genuine = consent(&eu, &[purpose], &[], &mut secrets);
    secrets.extend([
        garbage_caller.clone(),
        garbage_consent.clone(),
        forged_caller.clone(),
        forged_consent.clone(),
        expired.clone(),
    ]);
    let bad: Vec<(&str, Option<String>, Vec<String>)> = vec![
        ("no caller token", None, vec![genuine.clone()]),
        (
            "garbage caller token",
            Some(garbage_caller),
            vec![genuine.clone()],
        ),
        (
            "forged caller token",
            Some(forged_caller),
            vec![genuine.clone()],
        ),
        (
            "garbage consent token",
            caller_token(caller, &mut secrets),
            vec![garbage_consent],
        ),
        (
            "forged consent token",
            caller_token(caller, &mut secrets),
            vec![forged_consent],
        ),
        (
            "expired consent token",
            caller_token(caller, &mut secrets),
            vec![expired],
        ),
        (
            "another subject's consent",
            caller_token(caller, &mut secrets),
            vec![borrowed],
        ),
    ];
    for (label, token, consents) in bad {
        calls.push((
            Call {
                name: format!("{purpose} get {eu}: {label}"),
                path: GET,
                caller_token: token,
                purpose,
                consents,
                message: get(&eu),
            },
            Expect {
                code: None,
                subjects: Vec::new(),
            },
        ));
    }
    // Writes: the record sent back unchanged (the store keeps what it had), by support
    // (contract) and for personalize with and without consent.
    let update = |s: &str| {
        UpdateProfileRequest {
            profile: Some(world.records[s].clone()),
        }
        .encode_to_vec()
    };
    let support = "essential.service.operations.support";
    calls.push((
        Call {
            name: format!("{support} update {eu}"),
            path: UPDATE,
            caller_token: caller_token(caller_for(support), &mut secrets),
            purpose: support,
            consents: Vec::new(),
            message: update(&eu),
        },
        Expect {
            code: Some(Code::Ok),
            subjects: vec![(eu.clone(), None)],
        },
    ));
    let token = consent(&eu, &[purpose], &[], &mut secrets);
    calls.push((
        Call {
            name: format!("{purpose} update {eu} with consent"),
            path: UPDATE,
            caller_token: caller_token(caller, &mut secrets),
            purpose,
            consents: vec![token],
            message: update(&eu),
        },
        Expect {
            code: Some(Code::Ok),
            subjects: vec![(eu.clone(), Some(grant(&[purpose], &[])))],
        },
    ));
    calls.push((
        Call {
            name: format!("{purpose} update {eu} without consent"),
            path: UPDATE,
            caller_token: caller_token(caller, &mut secrets),
            purpose,
            consents: Vec::new(),
            message: update(&eu),
        },
        Expect {
            code: Some(Code::PermissionDenied),
            subjects: Vec::new(),
        },
    ));

    // Run them all, checking each answer.
    let mut records = 0;
    let mut by_code: BTreeMap<String, usize> = BTreeMap::new();
    for (call, expect) in &calls {
        let answer = send(h.addr(), call).await;
        records += check_answer(&world, call, expect, &answer);
        *by_code
            .entry(format!("{:?}", answer.code().unwrap()))
            .or_default() += 1;
    }
    println!(
        "leak hunt: {} markers in {} records, {} calls ({by_code:?}), {records} records released and compared",
        world.markers.len(),
        subjects.len(),
        calls.len()
    );
    assert!(records >= 60, "only {records} records released");
    assert!(by_code.len() >= 4, "{by_code:?}");

    // Spans: one per call at least; no marker, no token; subjects only as pseudonyms.
    let spans = h.wait_for_spans(calls.len()).await.unwrap();
    let key = h.audit_key().unwrap();
    let pseudonyms: BTreeMap<String, String> = subjects
        .iter()
        .map(String::as_str)
        .chain(UNKNOWN)
        .map(|s| (key.pseudonym(s), s.to_owned()))
        .collect();
    let mut seen = BTreeSet::new();
    for span in &spans {
        let mut text = format!("{span:?}").into_bytes();
        text.extend_from_slice(&span.encode_to_vec());
        let leaks = world.leaks_in(&text, &secrets);
        assert!(leaks.is_empty(), "span {}: {leaks:?}", span.name);
        let values = span
            .attributes
            .iter()
            .chain(span.events.iter().flat_map(|e| e.attributes.iter()))
            .filter(|kv| kv.key == attr::SUBJECT)
            .map(|kv| format!("{:?}", kv.value));
        for v in values {
            let p = pseudonyms
                .keys()
                .find(|p| v.contains(p.as_str()))
                .unwrap_or_else(|| panic!("span {}: subject {v} is no pseudonym", span.name));
            seen.insert(pseudonyms[p].clone());
        }
    }
    let all: BTreeSet<String> = pseudonyms.values().cloned().collect();
    assert_eq!(
        seen, all,
        "every subject asked for appears as its pseudonym"
    );

    // Metrics.
    let metrics = http_get(h.metrics_addr().unwrap(), "/metrics").await;
    assert!(metrics.contains("discreet_calls_total"), "{metrics}");
    let leaks = world.leaks_in(metrics.as_bytes(), &secrets);
    assert!(leaks.is_empty(), "/metrics: {leaks:?}");

    h.shutdown().await;

    // Logs, last: everything the calls, the export and the shutdown logged.
    let logged = logs.0.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&logged);
    assert!(text.contains("call refused"), "refusals are logged");
    assert!(
        text.contains("\"routed\"") || text.contains(" routed"),
        "debug events are captured"
    );
    assert!(text.contains("TRACE"), "trace events are captured");
    let leaks = world.leaks_in(&logged, &secrets);
    let lines: Vec<&str> = if leaks.is_empty() {
        Vec::new()
    } else {
        text.lines()
            .filter(|l| !world.leaks_in(l.as_bytes(), &secrets).is_empty())
            .take(5)
            .collect()
    };
    assert!(leaks.is_empty(), "logs: {leaks:?}\n{}", lines.join("\n"));
    println!(
        "leak hunt: {} KiB of logs, {} spans, {} bytes of metrics checked",
        logged.len() / 1024,
        spans.len(),
        metrics.len()
    );
}

/// The bytes a store puts in a GOAWAY's debug data are the store's to choose (a broken or
/// hostile one could put a record there), and h2's own error text quotes them. The call
/// fails UNAVAILABLE and the gateway logs why, at every level, without them. (The check
/// fails on an `error = %e` of the h2 error.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_s_goaway_debug_data_never_reaches_the_logs() {
    // Not `LEAK-`: the other test in this binary shares the log buffer and flags those.
    const DEBUG: &str = "goaway-debug-data-7f3a";
    let logs = capture_logs();
    let store = fault_store::GoAwayServer::start(DEBUG).await;
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Remote {
            address: format!("http://{}", store.addr),
            connect_timeout: Duration::from_secs(2),
        };
    })
    .await
    .unwrap();
    for _ in 0..3 {
        let refused = common::get(&h, "persona-eu", "personalize")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert!(!refused.message().contains(DEBUG), "{refused:?}");
    }
    h.shutdown().await;
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("profile store request failed"),
        "the failure was not logged: a vacuous test"
    );
    assert!(
        text.contains("GOAWAY (from the store)"),
        "the log does not say what failed"
    );
    // h2's own debug and trace lines print the frames, GOAWAY included; the gateway caps
    // the HTTP/2 libraries at `info` whatever RUST_LOG says (`serve_cmd.rs`, tested
    // there), so they are not the gateway's lines. Every other line is checked.
    let wire_library = |l: &&str| {
        [
            " h2::",
            "\"target\":\"h2::",
            " hyper::",
            "\"target\":\"hyper::",
        ]
        .iter()
        .any(|t| l.contains(t))
    };
    let leaks: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(DEBUG) && !wire_library(l))
        .collect();
    assert!(
        leaks.is_empty(),
        "a GOAWAY's debug data reached the logs: {leaks:#?}"
    );
}
