//! Checks on a compact JWS that must happen before any signature work: size, shape and
//! header. jsonwebtoken parses the header too, but it neither enforces a size limit nor
//! understands `crit`, and it would turn `alg: none` into a generic JSON error.
//!
//! Header parameters that carry or point to keys (`jwk`, `jku`, `x5u`, `x5c`) are ignored:
//! the key is only ever chosen by `kid` from the configured key set, and nothing named in a
//! token is ever fetched. They are not refused, because some issuers add `x5c` or `jku` for
//! other verifiers; ignoring them is safe since they have no effect here.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::algorithm::SigningAlgorithm;
use crate::error::ConsentError;

/// Largest header accepted, in base64 characters; real headers are ~100 bytes.
const MAX_HEADER_B64: usize = 2048;

/// The parts of a header the verifier acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckedHeader {
    pub(crate) algorithm: SigningAlgorithm,
    pub(crate) kid: String,
}

/// Size, shape and header checks, in that order, refusing as early as possible.
pub(crate) fn check_compact(
    token: &str,
    max_bytes: usize,
    allowed: &[SigningAlgorithm],
) -> Result<CheckedHeader, ConsentError> {
    // Before anything is decoded: the length of the raw string.
    if token.len() > max_bytes {
        return Err(ConsentError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ConsentError::Malformed);
    };
    if header.is_empty() || payload.is_empty() || header.len() > MAX_HEADER_B64 {
        return Err(ConsentError::Malformed);
    }
    if !token.bytes().all(|b| b == b'.' || is_base64url(b)) {
        return Err(ConsentError::Malformed);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| ConsentError::Malformed)?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&header).map_err(|_| ConsentError::Malformed)?;

    // RFC 7515 §4.1.11: an empty `crit` or one that names a standard parameter is invalid;
    // any extension we do not implement (we implement none) must be refused.
    if let Some(crit) = header.get("crit") {
        let names = crit.as_array().ok_or(ConsentError::Malformed)?;
        if names.is_empty() || names.iter().any(|n| !n.is_string()) {
            return Err(ConsentError::Malformed);
        }
        return Err(ConsentError::UnsupportedCritical);
    }
    let algorithm = match header.get("alg") {
        Some(Value::String(name)) => name
            .parse::<SigningAlgorithm>()
            .ok()
            .filter(|alg| allowed.contains(alg))
            .ok_or(ConsentError::AlgorithmNotAllowed)?,
        Some(_) => return Err(ConsentError::Malformed),
        None => return Err(ConsentError::AlgorithmNotAllowed),
    };
    // A stripped signature is an unsigned token; say so rather than "malformed".
    if signature.is_empty() {
        return Err(ConsentError::BadSignature);
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        Some(Value::String(_)) | None => return Err(ConsentError::MissingKeyId),
        Some(_) => return Err(ConsentError::Malformed),
    };
    Ok(CheckedHeader { algorithm, kid })
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn token(header: serde_json::Value) -> String {
        format!(
            "{}.{}.c2ln",
            b64(&header),
            b64(&serde_json::json!({"sub": "s"}))
        )
    }

    const ALL: &[SigningAlgorithm] = &SigningAlgorithm::ALL;

    #[test]
    fn accepts_a_plain_header() {
        let h = check_compact(
            &token(serde_json::json!({"alg": "ES256", "kid": "k"})),
            8192,
            ALL,
        )
        .unwrap();
        assert_eq!(
            h,
            CheckedHeader {
                algorithm: SigningAlgorithm::ES256,
                kid: "k".into()
            }
        );
    }

    #[test]
    fn size_is_checked_before_decoding() {
        // Not even base64: the size limit must still be what refuses it.
        let garbage = "!".repeat(9000);
        assert_eq!(
            check_compact(&garbage, 8192, ALL),
            Err(ConsentError::TooLarge)
        );
    }

    #[test]
    fn refuses_bad_shapes() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            ".b.c",
            "a..c",
            "a b.c.d",
            "e30.e30.c2ln=",
        ] {
            assert_eq!(
                check_compact(t, 8192, ALL),
                Err(ConsentError::Malformed),
                "{t}"
            );
        }
    }

    #[test]
    fn refuses_none_symmetric_and_disallowed_algorithms() {
        for alg in ["none", "HS256", "RS1", ""] {
            let t = token(serde_json::json!({"alg": alg, "kid": "k"}));
            assert_eq!(
                check_compact(&t, 8192, ALL),
                Err(ConsentError::AlgorithmNotAllowed)
            );
        }
        let t = token(serde_json::json!({"alg": "RS256", "kid": "k"}));
        assert_eq!(
            check_compact(&t, 8192, &[SigningAlgorithm::ES256]),
            Err(ConsentError::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn refuses_crit_and_missing_kid() {
        let t = token(serde_json::json!({"alg": "ES256", "kid": "k", "crit": ["exp"], "exp": 1}));
        assert_eq!(
            check_compact(&t, 8192, ALL),
            Err(ConsentError::UnsupportedCritical)
        );
        let t = token(serde_json::json!({"alg": "ES256", "kid": "k", "crit": []}));
        assert_eq!(check_compact(&t, 8192, ALL), Err(ConsentError::Malformed));
        let t = token(serde_json::json!({"alg": "ES256"}));
        assert_eq!(
            check_compact(&t, 8192, ALL),
            Err(ConsentError::MissingKeyId)
        );
    }

    #[test]
    fn stripped_signature_is_a_bad_signature() {
        let t = token(serde_json::json!({"alg": "ES256", "kid": "k"}));
        let stripped = &t[..t.rfind('.').unwrap() + 1];
        assert_eq!(
            check_compact(stripped, 8192, ALL),
            Err(ConsentError::BadSignature)
        );
    }
}
