#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use discreet_consent::dev::{MintClaims, generate_keys, mint_token};
use discreet_consent::{KeySet, SigningAlgorithm};

pub const ISS: &str = "https://cmp.example";
pub const AUD: &str = "discreet";

/// A generated key: private PEM and its JWKS. RSA generation is slow in debug builds, so
/// keys are generated once per test binary.
#[derive(Clone)]
pub struct TestKey {
    pub alg: SigningAlgorithm,
    pub kid: String,
    pub pem: String,
    pub jwks: String,
}

pub fn key(alg: SigningAlgorithm) -> TestKey {
    static KEYS: OnceLock<std::sync::Mutex<Vec<TestKey>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    let mut keys = keys.lock().unwrap();
    if let Some(k) = keys.iter().find(|k| k.alg == alg) {
        return k.clone();
    }
    // RS256 and PS256 share one RSA key pair per binary, with distinct kids.
    let kid = format!("{}-1", alg.as_str().to_lowercase());
    let (pem, jwks) = match keys.iter().find(|k| k.alg.is_rsa() && alg.is_rsa()) {
        Some(rsa) => {
            let mut doc: serde_json::Value = serde_json::from_str(&rsa.jwks).unwrap();
            doc["keys"][0]["alg"] = alg.as_str().into();
            doc["keys"][0]["kid"] = kid.clone().into();
            (rsa.pem.clone(), doc.to_string())
        }
        None => generate_keys(alg, &kid).unwrap(),
    };
    let k = TestKey {
        alg,
        kid,
        pem,
        jwks,
    };
    keys.push(k.clone());
    k
}

pub fn fresh_key(alg: SigningAlgorithm, kid: &str) -> TestKey {
    let (pem, jwks) = generate_keys(alg, kid).unwrap();
    TestKey {
        alg,
        kid: kid.into(),
        pem,
        jwks,
    }
}

/// A JWKS document holding every given key.
pub fn jwks_of(keys: &[&TestKey]) -> String {
    let all: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| serde_json::from_str::<serde_json::Value>(&k.jwks).unwrap()["keys"][0].clone())
        .collect();
    serde_json::json!({ "keys": all }).to_string()
}

pub fn keyset(keys: &[&TestKey]) -> KeySet {
    KeySet::from_jwks(jwks_of(keys).as_bytes(), &SigningAlgorithm::ALL).unwrap()
}

pub fn claims(sub: &str) -> MintClaims {
    MintClaims::new(ISS, AUD, sub, &["personalize"], Duration::from_secs(600))
}

pub fn mint(k: &TestKey, c: &MintClaims) -> String {
    mint_token(&k.pem, &k.kid, k.alg, c).unwrap()
}

pub fn b64json(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// A token with hand-written header and payload and the given signature bytes.
pub fn craft(header: serde_json::Value, payload: serde_json::Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64json(&header),
        b64json(&payload),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

pub fn now() -> u64 {
    discreet_consent::unix_now()
}

/// A fresh temporary directory (removed by the OS; tests do not rely on cleanup).
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "discreet-consent-{name}-{}-{}",
        std::process::id(),
        discreet_consent::dev::random_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replaces a file atomically (write + rename), as ConfigMap updates and careful writers do.
pub fn write_atomic(path: &std::path::Path, contents: &str) {
    let tmp = path.with_extension(format!("tmp-{}", discreet_consent::dev::random_id()));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
