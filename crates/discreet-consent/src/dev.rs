//! Development and test tooling: generate a signing key with its JWKS, and mint consent
//! tokens. Used by `discreet keys generate` / `discreet token mint`, tests and benches.
//! Not for production issuance: a consent-management platform issues real tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use rand_core::{OsRng, RngCore};
use serde::Serialize;

use crate::algorithm::SigningAlgorithm;

/// RSA key size for generated keys.
const RSA_BITS: usize = 2048;

/// Why a key could not be generated or a token minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// Key generation is not implemented for this algorithm (it is for every
    /// [`SigningAlgorithm`] today; the variant stays for callers matching on it).
    #[error("key generation not supported for {0}")]
    UnsupportedAlgorithm(SigningAlgorithm),
    /// The key could not be generated or encoded.
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    /// The PEM does not hold a private key of the algorithm's type.
    #[error("private key unusable for {0} (expected a PKCS#8 PEM of the matching type)")]
    BadPrivateKey(SigningAlgorithm),
    /// Signing failed.
    #[error("token signing failed")]
    Signing,
}

/// Generates a private key for `algorithm` and returns `(private_key_pkcs8_pem, jwks_json)`.
/// The JWKS holds the public key with `kid`, `alg` and `use: sig`.
pub fn generate_keys(algorithm: SigningAlgorithm, kid: &str) -> Result<(String, String), DevError> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let keygen = |e: &dyn std::fmt::Display| DevError::KeyGeneration(e.to_string());
    let mut jwk = serde_json::Map::new();
    let pem = match algorithm {
        alg if alg.is_rsa() => {
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut OsRng, RSA_BITS).map_err(|e| keygen(&e))?;
            jwk.insert("kty".into(), "RSA".into());
            jwk.insert(
                "n".into(),
                URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()).into(),
            );
            jwk.insert(
                "e".into(),
                URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()).into(),
            );
            key.to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| keygen(&e))?
                .to_string()
        }
        SigningAlgorithm::ES256 => {
            let key = p256::SecretKey::random(&mut OsRng);
            let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                &key.public_key(),
                false,
            );
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err(DevError::KeyGeneration("P-256 point not affine".into()));
            };
            jwk.insert("kty".into(), "EC".into());
            jwk.insert("crv".into(), "P-256".into());
            jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
            jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(y).into());
            key.to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| keygen(&e))?
                .to_string()
        }
        SigningAlgorithm::ES384 => {
            // ring, which verifies P-384 here, also makes the key (no p384 crate needed).
            use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                .map_err(|e| keygen(&e))?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|e| keygen(&e))?;
            // SEC1 uncompressed: 0x04, then x and y of 48 bytes each.
            let point = pair.public_key().as_ref();
            let (Some(x), Some(y)) = (point.get(1..49), point.get(49..97)) else {
                return Err(DevError::KeyGeneration(
                    "P-384 point not uncompressed".into(),
                ));
            };
            jwk.insert("kty".into(), "EC".into());
            jwk.insert("crv".into(), "P-384".into());
            jwk.insert("x".into(), URL_SAFE_NO_PAD.encode(x).into());
            jwk.insert("y".into(), URL_SAFE_NO_PAD.encode(y).into());
            // DER to PEM only: p256's re-export of the pkcs8 crate, nothing P-256 about it.
            p256::pkcs8::SecretDocument::try_from(pkcs8.as_ref())
                .and_then(|doc| doc.to_pem("PRIVATE KEY", LineEnding::LF))
                .map_err(|e| keygen(&e))?
                .to_string()
        }
        SigningAlgorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
            jwk.insert("kty".into(), "OKP".into());
            jwk.insert("crv".into(), "Ed25519".into());
            jwk.insert(
                "x".into(),
                URL_SAFE_NO_PAD
                    .encode(key.verifying_key().as_bytes())
                    .into(),
            );
            key.to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| keygen(&e))?
                .to_string()
        }
        other => return Err(DevError::UnsupportedAlgorithm(other)),
    };
    jwk.insert("kid".into(), kid.into());
    jwk.insert("alg".into(), algorithm.as_str().into());
    jwk.insert("use".into(), "sig".into());
    let jwks = serde_json::json!({ "keys": [jwk] });
    let jwks = serde_json::to_string_pretty(&jwks).map_err(|e| keygen(&e))?;
    Ok((pem, jwks))
}

/// The claims of a consent token to mint.
#[derive(Debug, Clone, Serialize)]
pub struct MintClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Subject id as the store knows it.
    pub sub: String,
    /// Purposes granted.
    pub purposes: Vec<String>,
    /// Special categories granted explicitly.
    pub special_categories: Vec<String>,
    /// Optional consent version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_version: Option<u64>,
    /// Token id; a random one when empty.
    pub jti: String,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Not before (seconds since the epoch).
    pub nbf: u64,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
}

impl MintClaims {
    /// Claims valid from now for `ttl`, with a random `jti`.
    pub fn new(iss: &str, aud: &str, sub: &str, purposes: &[&str], ttl: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        MintClaims {
            iss: iss.into(),
            aud: aud.into(),
            sub: sub.into(),
            purposes: purposes.iter().map(|p| (*p).to_owned()).collect(),
            special_categories: Vec::new(),
            consent_version: None,
            jti: random_id(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl.as_secs()),
        }
    }
}

/// A random 128-bit id, base64url.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `claims` with a PKCS#8 PEM private key, naming `kid` in the header.
pub fn mint_token(
    private_key_pem: &str,
    kid: &str,
    algorithm: SigningAlgorithm,
    claims: &MintClaims,
) -> Result<String, DevError> {
    let pem = private_key_pem.as_bytes();
    let key = match algorithm {
        alg if alg.is_rsa() => EncodingKey::from_rsa_pem(pem),
        SigningAlgorithm::ES256 | SigningAlgorithm::ES384 => EncodingKey::from_ec_pem(pem),
        _ => EncodingKey::from_ed_pem(pem),
    }
    .map_err(|_| DevError::BadPrivateKey(algorithm))?;
    let mut header = Header::new(algorithm.to_jwt());
    header.kid = Some(kid.to_owned());
    let mut claims = claims.clone();
    if claims.jti.is_empty() {
        claims.jti = random_id();
    }
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
        | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
        | jsonwebtoken::errors::ErrorKind::InvalidEddsaKey
        | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => DevError::BadPrivateKey(algorithm),
        _ => DevError::Signing,
    })
}

/// Parses `250ms`, `30s`, `5m`, `1h` or `1d` (as in the configuration).
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::parse_duration(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_mint_verifiable_tokens() {
        for alg in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::ES384,
            SigningAlgorithm::EdDSA,
        ] {
            let (pem, jwks) = generate_keys(alg, "k").unwrap();
            let keys = crate::KeySet::from_jwks(jwks.as_bytes(), &SigningAlgorithm::ALL).unwrap();
            let claims = MintClaims::new("i", "a", "s", &["p"], Duration::from_secs(60));
            let token = mint_token(&pem, "k", alg, &claims).unwrap();
            let rules = crate::TokenRules {
                issuer: "i".into(),
                audience: "a".into(),
                algorithms: vec![alg],
                leeway_secs: 0,
                max_token_bytes: 8192,
            };
            let v = crate::ConsentVerifier::new(rules)
                .verify(&token, &keys, claims.iat)
                .unwrap();
            assert_eq!(v.token_id, claims.jti);
        }
        assert!(matches!(
            mint_token(
                "not a pem",
                "k",
                SigningAlgorithm::ES256,
                &MintClaims::new("i", "a", "s", &[], Duration::ZERO)
            ),
            Err(DevError::BadPrivateKey(_))
        ));
    }
}
