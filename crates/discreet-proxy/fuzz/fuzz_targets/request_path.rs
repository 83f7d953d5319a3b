//! Arbitrary bytes as one gRPC request: metadata and a body, through the gateway's parsers
//! of caller input (`discreet_proxy::fuzzing`, feature `fuzzing`).
//!
//! Input: byte 0 picks the method (low 2 bits) and how the body is split into DATA chunks
//! (the rest); then metadata lines up to the first empty line, each a name selector byte
//! and a value; then the body.
//!
//! Invariants: nothing panics; `grpc-timeout` is accepted only in its grammar and never
//! above the cap; a purpose or bearer token is one non-empty entry taken from its header;
//! tokens and unknown headers never reach the store; framing does not depend on how the
//! body is chunked, never yields a message over the limit, and re-encodes to the bytes it
//! consumed; the subjects the gateway checks consent for are exactly the ones the store
//! (prost) will read, and a filtered batch forwards only subjects that were allowed.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, GetProfileRequest, UpdateProfileRequest,
};
use discreet_proxy::fuzzing::{self, Frames, METHODS, Subjects};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// Header names a metadata line's first byte selects from.
const NAMES: [&str; 12] = [
    "x-discreet-purpose",
    "grpc-timeout",
    "authorization",
    "x-discreet-consent",
    "grpc-status",
    "traceparent",
    "tracestate",
    "x-request-id",
    "grpc-encoding",
    "cookie",
    "content-type",
    "x-other",
];

/// Names the store may receive (`metadata.rs` `upstream_headers`).
const TO_STORE: [&str; 8] = [
    "content-type",
    "te",
    "grpc-timeout",
    "traceparent",
    "tracestate",
    "x-request-id",
    "x-discreet-purpose",
    "x-discreet-caller",
];

/// Small enough that short inputs reach the size check.
const LIMITS: [usize; 4] = [0, 16, 300, 4 * 1024 * 1024];

fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[]),
    }
}

fn decode_all(limit: usize, body: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Option<String>, bool) {
    let mut frames = Frames::new(limit);
    let mut messages = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        frames.push(piece);
        loop {
            match frames.next_message() {
                Ok(Some(m)) => messages.push(m.to_vec()),
                Ok(None) => break,
                Err(e) => return (messages, Some(e), false),
            }
        }
    }
    let finished = frames.finish().is_ok();
    (messages, None, finished)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(first & 3)];
    let chunk = usize::from(first >> 2) + 1;
    let (head, body) = split_head(rest);

    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(selector) % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }

    // grpc-timeout: 1-8 digits and a unit, capped.
    if let Ok(d) = fuzzing::timeout(&headers) {
        assert!(d <= fuzzing::max_timeout());
        if let Some(v) = headers.get("grpc-timeout") {
            let v = v.as_bytes();
            assert!((2..=9).contains(&v.len()), "accepted grpc-timeout {v:?}");
            let (digits, unit) = v.split_at(v.len() - 1);
            assert!(digits.iter().all(u8::is_ascii_digit), "accepted {v:?}");
            assert!(b"HMSmun".contains(&unit[0]), "accepted {v:?}");
        }
    }
    // One purpose, one name, from the one entry.
    if let Ok(p) = fuzzing::purpose(&headers) {
        let all: Vec<_> = headers.get_all("x-discreet-purpose").iter().collect();
        assert_eq!(all.len(), 1);
        assert!(!p.is_empty() && !p.contains([',', ' ']), "purpose {p:?}");
        assert!(all[0].to_str().unwrap().contains(p));
    }
    // One bearer token, from the one entry.
    let caller = match fuzzing::bearer_token(&headers) {
        Ok(t) => {
            let all: Vec<_> = headers.get_all("authorization").iter().collect();
            assert_eq!(all.len(), 1);
            assert!(!t.is_empty());
            assert!(all[0].to_str().unwrap().contains(t));
            "ns/caller"
        }
        Err(e) => {
            // A refusal never quotes the token. The refusal texts are fixed and have
            // no '.', so a value with a '.' can only appear in one by being quoted;
            // a value that merely equals part of a fixed text is not a leak.
            if let Some(v) = headers.get("authorization")
                && let Ok(v) = v.to_str()
                && v.contains('.')
            {
                assert!(!e.contains(v), "{e}");
            }
            // Whatever the value, the refusal is one of two fixed texts (at most 110 bytes).
            assert!(e.len() <= 110, "{e}");
            "ns/other"
        }
    };
    // What reaches the store: an allow-list, and never a token.
    let timeout_ms = u64::from_le_bytes(
        data.iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(8)
            .collect::<Vec<_>>()
            .try_into()
            .unwrap(),
    );
    for timeout in [None, Some(timeout_ms)] {
        let out = fuzzing::upstream_headers(&headers, caller, timeout);
        for (name, value) in &out {
            assert!(
                TO_STORE.contains(&name.as_str()),
                "{name} reaches the store"
            );
            if name == "grpc-timeout" {
                assert!(value.len() <= 9, "grpc-timeout {value:?}");
            }
        }
        assert!(out.get("authorization").is_none() && out.get("x-discreet-consent").is_none());
    }
    if fuzzing::upstream_code(&headers).is_some() {
        let status = headers.get("grpc-status").unwrap().to_str().unwrap();
        assert!(status.parse::<i32>().is_ok(), "grpc-status {status:?}");
    }

    // Framing: the same whatever the chunking; messages within the limit; re-encodes.
    let limit = LIMITS[usize::from(first >> 6)];
    let whole = decode_all(limit, body, body.len());
    let chunked = decode_all(limit, body, chunk);
    assert_eq!(whole, chunked, "framing depends on chunking");
    let (messages, error, finished) = whole;
    let mut consumed = Vec::new();
    for m in &messages {
        assert!(m.len() <= limit);
        consumed.extend_from_slice(&fuzzing::encode(m));
    }
    assert_eq!(&body[..consumed.len()], consumed.as_slice());
    if finished {
        assert_eq!(consumed.len(), body.len());
    }
    let _ = error;

    // The request message: the subjects consent is checked for are the ones the store
    // parses. A gateway error is fail-closed (the call is refused); a prost error means the
    // store would refuse it. Both succeeding and disagreeing is the bug.
    let Some(message) = messages.first() else {
        return;
    };
    let Ok(subjects) = fuzzing::request_subjects(method, message) else {
        return;
    };
    match subjects {
        Subjects::None => assert!(method.ends_with("StreamProfiles")),
        Subjects::Single(subject) => {
            let parsed = if method.ends_with("GetProfile") {
                GetProfileRequest::decode(message.as_slice()).map(|r| r.subject_id)
            } else {
                UpdateProfileRequest::decode(message.as_slice())
                    .map(|r| r.profile.map(|p| p.subject_id).unwrap_or_default())
            };
            if let Ok(parsed) = parsed {
                assert_eq!(
                    subject.unwrap_or(""),
                    parsed,
                    "{method}: gateway and store read different subjects"
                );
            }
        }
        Subjects::Batch { number, ids } => {
            assert!(method.ends_with("BatchGetProfiles"));
            if let Ok(parsed) = BatchGetProfilesRequest::decode(message.as_slice()) {
                assert_eq!(ids, parsed.subject_ids, "batch subjects differ");
            }
            // Allow every other distinct subject: the store sees only allowed ones.
            let allows = |s: &str| s.len() % 2 == 0;
            let Ok((kept, withheld)) = fuzzing::filter_batch(message, number, allows) else {
                return;
            };
            assert_eq!(withheld, ids.iter().filter(|s| !allows(s)).count() as u64);
            if let Ok(forwarded) = BatchGetProfilesRequest::decode(kept.as_slice()) {
                for s in &forwarded.subject_ids {
                    assert!(allows(s), "forwarded a subject that was not allowed: {s:?}");
                }
            }
        }
    }
});
