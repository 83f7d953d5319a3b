//! Arbitrary bytes as a DER certificate: the one the gateway serves (its expiry) and a
//! caller's client certificate (its SPIFFE ID, `identity: spiffe`)
//! (`crates/discreet-proxy/src/x509.rs`, `spiffe.rs`).
//!
//! Invariants: nothing panics; an expiry read is a time the two encodings can name,
//! between 0000-01-01T00:00:00Z (a GeneralizedTime; RFC 5280 wants UTCTime before 2050,
//! but webpki accepts either, so the expiry is reported as written) and
//! 9999-12-31T23:59:59Z; bytes after the certificate change neither reading; a caller is
//! named only from exactly one URI, `spiffe://cluster.local/ns/<ns>/sa/<sa>`, as `<ns>/<sa>`;
//! a refusal never quotes a URI.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use discreet_proxy::fuzzing::{certificate_caller, certificate_not_after};
use libfuzzer_sys::fuzz_target;

const EARLIEST: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const LATEST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

fuzz_target!(|data: &[u8]| {
    let mut longer = data.to_vec();
    longer.extend_from_slice(b"\x30\x00trailing");
    if let Ok(not_after) = certificate_not_after(data) {
        assert!(
            (EARLIEST..=LATEST).contains(&not_after),
            "expiry {not_after} outside the encodable range"
        );
        assert_eq!(certificate_not_after(&longer), Ok(not_after));
    }
    if let Ok((uris, caller)) = certificate_caller(data) {
        assert_eq!(
            certificate_caller(&longer),
            Ok((uris.clone(), caller.clone()))
        );
        match caller {
            Ok(name) => {
                assert_eq!(uris.len(), 1);
                let (ns, sa) = name.split_once('/').unwrap();
                assert_eq!(uris[0], format!("spiffe://cluster.local/ns/{ns}/sa/{sa}"));
                assert!(!sa.contains('/'));
            }
            Err(refusal) => {
                // A refusal is a fixed text; a URI long enough not to be a piece of one by
                // chance can only appear in it by being quoted.
                for uri in uris.iter().filter(|u| u.len() > 40) {
                    assert!(!refusal.contains(uri), "{refusal} quotes {uri}");
                }
            }
        }
    }
});
