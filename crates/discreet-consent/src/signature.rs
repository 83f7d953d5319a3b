//! JWS signature checks with `ring`.
//!
//! jsonwebtoken (kept for signing development tokens and for parsing JWKS) verifies with
//! its pure-Rust backend: on this project's 2-core machine an ES256 check took ~450 µs and
//! an RS256 check ~300 µs, more than the whole rest of a call, so a caller sending a new
//! token on every call got a third of the throughput of one that reused it. ring, which
//! rustls already brings into the build, does the same checks in assembly
//! (`cargo bench -p discreet-benches --bench consent` has the figures).
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};

use crate::{algorithm::SigningAlgorithm, error::ConsentError};

/// A JWKS key's public material, as ring takes it.
#[derive(Clone)]
pub(crate) enum SignatureKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A SEC1 uncompressed point (ES256, ES384) or an Ed25519 public key (EdDSA).
    Raw(Vec<u8>),
}

fn trimmed(bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes[zeros..].to_vec()
}

impl SignatureKey {
    pub(crate) fn rsa(n: Vec<u8>, e: Vec<u8>) -> Self {
        SignatureKey::Rsa {
            n: trimmed(n),
            e: trimmed(e),
        }
    }

    /// Checks the signature of compact JWS `token` (`header.payload.signature`) made with
    /// `algorithm`, the one algorithm this key is pinned to.
    pub(crate) fn verify(
        &self,
        algorithm: SigningAlgorithm,
        token: &str,
    ) -> Result<(), ConsentError> {
        let (message, signature) = token.rsplit_once('.').ok_or(ConsentError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| ConsentError::Malformed)?;
        let verified = match self {
            SignatureKey::Rsa { n, e } => {
                let params = match algorithm {
                    SigningAlgorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    SigningAlgorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    SigningAlgorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    SigningAlgorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                    SigningAlgorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
                    SigningAlgorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(ConsentError::AlgorithmNotAllowed),
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, message.as_bytes(), &signature)
                    .is_ok()
            }
            SignatureKey::Raw(key) => {
                let params: &'static dyn VerificationAlgorithm = match algorithm {
                    SigningAlgorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    SigningAlgorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    SigningAlgorithm::EdDSA => &signature::ED25519,
                    _ => return Err(ConsentError::AlgorithmNotAllowed),
                };
                UnparsedPublicKey::new(params, key)
                    .verify(message.as_bytes(), &signature)
                    .is_ok()
            }
        };
        if verified {
            Ok(())
        } else {
            Err(ConsentError::BadSignature)
        }
    }
}
