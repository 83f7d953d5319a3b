//! A verified, immutable set of public keys indexed by `kid`.
//!
//! Each key's algorithm is pinned here, from the JWK's `alg` or, without one, from its key
//! type and curve. A token's header `alg` must then equal the pinned algorithm; the header
//! never chooses how a key is used.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use sha2::{Digest, Sha256};

use crate::algorithm::SigningAlgorithm;
use crate::error::ConsentError;
use crate::signature::SignatureKey;

/// RSA moduli below this many bits are refused: 2048 is the NIST floor for signatures.
const MIN_RSA_BITS: usize = 2048;

/// One public key, with the only algorithm it may verify.
#[derive(Clone)]
pub struct VerificationKey {
    kid: String,
    algorithm: SigningAlgorithm,
    signature: SignatureKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Checks `token`'s signature with this key and its pinned algorithm.
    pub(crate) fn verify_signature(&self, token: &str) -> Result<(), ConsentError> {
        self.signature.verify(self.algorithm, token)
    }
}

/// Why a JWKS document was not accepted as a whole. The previous good set stays in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// Not a JSON object with a `keys` array.
    #[error("key set is not a JWKS document (JSON object with a `keys` array)")]
    NotJwks,
    /// Two usable keys share a `kid`: which one signs is ambiguous.
    #[error("key set has two keys with the same kid")]
    DuplicateKeyId,
}

/// An immutable set of verification keys. Cheap to share behind an `Arc`; a new document
/// produces a new set (rotation is a swap, never an in-place edit).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, Arc<VerificationKey>>,
    skipped: usize,
    digest: [u8; 32],
}

impl KeySet {
    /// Parses a JWKS document, keeping the keys usable for `allowed` algorithms.
    ///
    /// Keys that are not for signatures (`use`, `key_ops`), symmetric (`oct`), without a
    /// `kid`, with an unknown or disallowed algorithm, with an algorithm that does not fit
    /// the key type, with invalid points, or RSA below 2048 bits are skipped (counted in
    /// [`KeySet::skipped`]), so one odd key in a provider's JWKS does not block the rest.
    /// An empty set is valid: every token then fails with `UnknownKey` (fail closed).
    pub fn from_jwks(document: &[u8], allowed: &[SigningAlgorithm]) -> Result<Self, KeySetError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document = serde_json::from_slice(document).map_err(|_| KeySetError::NotJwks)?;
        let mut set = KeySet {
            digest: Sha256::digest(document).into(),
            ..KeySet::default()
        };
        for value in doc.keys {
            let key = serde_json::from_value::<Jwk>(value)
                .ok()
                .and_then(|jwk| usable_key(&jwk, allowed));
            match key {
                Some(key) => {
                    if set.keys.insert(key.kid.clone(), Arc::new(key)).is_some() {
                        return Err(KeySetError::DuplicateKeyId);
                    }
                }
                None => set.skipped += 1,
            }
        }
        Ok(set)
    }

    /// The key with this `kid`, if any.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerificationKey>> {
        self.keys.get(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys in the document that were skipped as unusable.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// SHA-256 of the source document; equal digests mean nothing changed.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

fn usable_key(jwk: &Jwk, allowed: &[SigningAlgorithm]) -> Option<VerificationKey> {
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty())?;
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return None;
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return None;
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(declared) => declared.to_string().parse::<SigningAlgorithm>().ok()?,
        None => implied_algorithm(&jwk.algorithm)?,
    };
    if !allowed.contains(&algorithm) || !key_fits(&jwk.algorithm, algorithm) {
        return None;
    }
    let signature = signature_key(&jwk.algorithm)?;
    Some(VerificationKey {
        kid,
        algorithm,
        signature,
    })
}

/// The algorithm a key without `alg` is used with. RSA keys default to RS256, the most
/// common choice; publish `alg` to use PS* or longer hashes.
fn implied_algorithm(params: &AlgorithmParameters) -> Option<SigningAlgorithm> {
    match params {
        AlgorithmParameters::RSA(_) => Some(SigningAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Some(SigningAlgorithm::ES256),
            EllipticCurve::P384 => Some(SigningAlgorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(SigningAlgorithm::EdDSA)
        }
        _ => None,
    }
}

/// Largest RSA modulus ring verifies (`RSA_*_2048_8192_*`): a larger one is skipped at load
/// rather than refused on every call.
const MAX_RSA_BITS: usize = 8192;

/// The exact bit length of a big-endian modulus (a 2047-bit modulus is 256 bytes too).
fn modulus_bits(n: &[u8]) -> usize {
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    n.first()
        .map_or(0, |first| n.len() * 8 - first.leading_zeros() as usize)
}

/// Whether the key material is valid for the algorithm; checked once here so that a bad key
/// is skipped at load time rather than failing every verification.
fn key_fits(params: &AlgorithmParameters, algorithm: SigningAlgorithm) -> bool {
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    match (params, algorithm) {
        (AlgorithmParameters::RSA(rsa), alg) if alg.is_rsa() => decode(&rsa.n)
            .map(|n| (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&modulus_bits(&n)))
            .unwrap_or(false),
        (AlgorithmParameters::EllipticCurve(ec), SigningAlgorithm::ES256) => {
            ec.curve == EllipticCurve::P256
                && sec1_point(&ec.x, &ec.y, 32)
                    .is_some_and(|p| p256::PublicKey::from_sec1_bytes(&p).is_ok())
        }
        (AlgorithmParameters::EllipticCurve(ec), SigningAlgorithm::ES384) => {
            // p384 is in the tree through jsonwebtoken but not a direct dependency; checking
            // coordinate lengths here, the curve check happens at verification.
            ec.curve == EllipticCurve::P384 && sec1_point(&ec.x, &ec.y, 48).is_some()
        }
        (AlgorithmParameters::OctetKeyPair(okp), SigningAlgorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
                && decode(&okp.x)
                    .and_then(|x| <[u8; 32]>::try_from(x.as_slice()).ok())
                    .is_some_and(|x| ed25519_dalek::VerifyingKey::from_bytes(&x).is_ok())
        }
        _ => false,
    }
}

/// The key material as ring takes it (its fit to the algorithm is checked by `key_fits`).
fn signature_key(params: &AlgorithmParameters) -> Option<SignatureKey> {
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).ok();
    match params {
        AlgorithmParameters::RSA(rsa) => Some(SignatureKey::rsa(decode(&rsa.n)?, decode(&rsa.e)?)),
        AlgorithmParameters::EllipticCurve(ec) => {
            let len = if ec.curve == EllipticCurve::P384 {
                48
            } else {
                32
            };
            Some(SignatureKey::Raw(sec1_point(&ec.x, &ec.y, len)?))
        }
        AlgorithmParameters::OctetKeyPair(okp) => Some(SignatureKey::Raw(decode(&okp.x)?)),
        _ => None,
    }
}

fn sec1_point(x: &str, y: &str, len: usize) -> Option<Vec<u8>> {
    let x = URL_SAFE_NO_PAD.decode(x).ok()?;
    let y = URL_SAFE_NO_PAD.decode(y).ok()?;
    if x.len() != len || y.len() != len {
        return None;
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Some(point)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {

    #[test]
    fn rsa_modulus_length_is_counted_in_bits() {
        assert_eq!(modulus_bits(&[0, 0, 0x01]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
        let mut n = vec![0xff; 256];
        assert_eq!(modulus_bits(&n), 2048);
        n[0] = 0x7f; // 2047 bits in 256 bytes: below the minimum ring verifies
        assert_eq!(modulus_bits(&n), 2047);
        assert!(!(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&modulus_bits(&n)));
        assert!(!(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&modulus_bits(&vec![0xff; 1025])));
    }

    use super::*;
    use crate::dev::generate_keys;

    fn all() -> Vec<SigningAlgorithm> {
        SigningAlgorithm::ALL.to_vec()
    }

    #[test]
    fn pins_algorithm_from_jwk() {
        for alg in [
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
            SigningAlgorithm::PS256,
        ] {
            let (_, jwks) = generate_keys(alg, "k1").unwrap();
            let set = KeySet::from_jwks(jwks.as_bytes(), &all()).unwrap();
            assert_eq!(set.get("k1").unwrap().algorithm(), alg);
        }
    }

    #[test]
    fn derives_algorithm_without_alg_and_skips_disallowed() {
        let (_, jwks) = generate_keys(SigningAlgorithm::ES256, "ec").unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&jwks).unwrap();
        doc["keys"][0].as_object_mut().unwrap().remove("alg");
        let bytes = serde_json::to_vec(&doc).unwrap();
        let set = KeySet::from_jwks(&bytes, &all()).unwrap();
        assert_eq!(set.get("ec").unwrap().algorithm(), SigningAlgorithm::ES256);
        let set = KeySet::from_jwks(&bytes, &[SigningAlgorithm::RS256]).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.skipped(), 1);
    }

    #[test]
    fn skips_symmetric_encryption_and_mismatched_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "x", "crv": "Ed25519", "x": "AAAA", "alg": "RS256"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"}
        ]});
        let set = KeySet::from_jwks(&serde_json::to_vec(&doc).unwrap(), &all()).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.skipped(), 5);
    }

    #[test]
    fn refuses_duplicate_kids_and_non_jwks() {
        let (_, jwks) = generate_keys(SigningAlgorithm::EdDSA, "d").unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&jwks).unwrap();
        let key = doc["keys"][0].clone();
        doc["keys"].as_array_mut().unwrap().push(key);
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_eq!(
            KeySet::from_jwks(&bytes, &all()).unwrap_err(),
            KeySetError::DuplicateKeyId
        );
        assert_eq!(
            KeySet::from_jwks(b"[]", &all()).unwrap_err(),
            KeySetError::NotJwks
        );
        assert_eq!(
            KeySet::from_jwks(b"", &all()).unwrap_err(),
            KeySetError::NotJwks
        );
    }
}
