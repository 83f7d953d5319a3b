//! Arbitrary bytes as a DER certificate whose expiry the gateway reads
//! (`crates/discreet-proxy/src/x509_expiry.rs`).
//!
//! Invariants: nothing panics; an expiry read is a time the two encodings can name,
//! between 0000-01-01T00:00:00Z (a GeneralizedTime; RFC 5280 wants UTCTime before 2050,
//! but webpki accepts either, so the expiry is reported as written) and
//! 9999-12-31T23:59:59Z; bytes after the certificate do not change it.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use discreet_proxy::fuzzing::certificate_not_after;
use libfuzzer_sys::fuzz_target;

const EARLIEST: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
const LATEST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

fuzz_target!(|data: &[u8]| {
    if let Ok(not_after) = certificate_not_after(data) {
        assert!(
            (EARLIEST..=LATEST).contains(&not_after),
            "expiry {not_after} outside the encodable range"
        );
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"\x30\x00trailing");
        assert_eq!(certificate_not_after(&longer), Ok(not_after));
    }
});
