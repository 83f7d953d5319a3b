//! Arbitrary bytes as a consent token, through the pure verifier with a fixed key set.
//! Run: `cargo fuzz run verify_token seeds/verify_token` (nightly, or `-s none` on stable).
#![no_main]

use std::sync::OnceLock;

use discreet_consent::{ConsentVerifier, KeySet, SigningAlgorithm, TokenRules};
use libfuzzer_sys::fuzz_target;

/// One Ed25519 public key (kid `fuzz-ed`); the seed token in `seeds/` is signed by it.
const JWKS: &str = r#"{"keys":[{"alg":"EdDSA","crv":"Ed25519","kid":"fuzz-ed","kty":"OKP","use":"sig","x":"rCM1QGu11hGYvP39ZNFuYpunTvOfp2my4FvDo7SabmQ"}]}"#;

/// Inside the seed token's validity window, so fuzzing reaches the claim checks.
const NOW: u64 = 1_795_431_000;

fn setup() -> &'static (ConsentVerifier, KeySet) {
    static SETUP: OnceLock<(ConsentVerifier, KeySet)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rules = TokenRules {
            issuer: "https://cmp.example".into(),
            audience: "discreet".into(),
            algorithms: SigningAlgorithm::ALL.to_vec(),
            leeway_secs: 30,
            max_token_bytes: 8192,
        };
        let keys = KeySet::from_jwks(JWKS.as_bytes(), &SigningAlgorithm::ALL).unwrap_or_default();
        (ConsentVerifier::new(rules), keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let (verifier, keys) = setup();
    if let Ok(token) = std::str::from_utf8(data) {
        // Must never panic; any result is fine, but an error must not echo the input.
        // The verifier's error texts are fixed and none has a '.', so a token with a '.' can
        // only appear in one by being quoted. (An input that merely equals part of a
        // fixed text, as the fuzzer once found, is not a leak.)
        if let Err(e) = verifier.verify(token, keys, NOW) {
            let msg = e.to_string();
            assert!(!token.contains('.') || !msg.contains(token), "{msg}");
            // And whatever the input, the text is one of the short fixed ones (the longest
            // is 67 bytes): an echo of anything longer than a few characters would show.
            assert!(msg.len() <= 80, "{msg}");
        }
    }
});
