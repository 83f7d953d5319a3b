//! The audit pseudonym: HMAC-SHA-256 of the subject id under the deployment's audit key.
//!
//! It is a different key from the per-purpose pseudonym keys that callers see, so a
//! caller's pseudonyms cannot be joined with the audit trail, and an auditor's key opens
//! the trail without opening what callers received.
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Fewest key bytes accepted.
pub const MIN_AUDIT_KEY_BYTES: usize = 32;

/// Bytes of the HMAC kept in a pseudonym: 128 bits, hex-encoded to 32 characters.
const PSEUDONYM_BYTES: usize = 16;

/// The audit key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct AuditKey {
    mac: Hmac<Sha256>,
    key_id: String,
}

/// Why a key was refused. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditKeyError {
    /// Fewer than [`MIN_AUDIT_KEY_BYTES`] bytes.
    #[error(
        "audit key is {0} bytes; at least {MIN_AUDIT_KEY_BYTES} are required \
         (e.g. 64 hex digits from `openssl rand -hex 32`)"
    )]
    TooShort(usize),
}

impl AuditKey {
    /// A key from its raw bytes (at least [`MIN_AUDIT_KEY_BYTES`]).
    pub fn new(key: &[u8]) -> Result<Self, AuditKeyError> {
        if key.len() < MIN_AUDIT_KEY_BYTES {
            return Err(AuditKeyError::TooShort(key.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| AuditKeyError::TooShort(0))?;
        let mut id = mac.clone();
        id.update(b"discreet audit key id");
        let key_id = hex::encode(&id.finalize().into_bytes()[..4]);
        Ok(AuditKey { mac, key_id })
    }

    /// A key from a key file's contents: hex if the trimmed text is hex, else raw bytes
    /// (the same rule as the pseudonym secret's file).
    pub fn from_file_contents(raw: &[u8]) -> Result<Self, AuditKeyError> {
        let text = raw.trim_ascii();
        match hex::decode(text) {
            Ok(bytes) if !text.is_empty() => Self::new(&bytes),
            _ => Self::new(text),
        }
    }

    /// The subject's audit pseudonym: 32 lowercase hex characters.
    #[must_use]
    pub fn pseudonym(&self, subject_id: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"subject\0");
        mac.update(subject_id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..PSEUDONYM_BYTES])
    }

    /// A short public fingerprint of the key (8 hex characters), recorded on every span
    /// so that an auditor knows which key a pseudonym was made with after a rotation.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_never_the_id() {
        let a = AuditKey::new(&[7; 32]).unwrap();
        let b = AuditKey::new(&[8; 32]).unwrap();
        let p = a.pseudonym("persona-eu");
        assert_eq!(p.len(), 32);
        assert!(!p.contains("persona"));
        assert_eq!(p, a.pseudonym("persona-eu"));
        assert_ne!(p, a.pseudonym("persona-us"));
        assert_ne!(p, b.pseudonym("persona-eu"));
        assert_ne!(a.key_id(), b.key_id());
        assert!(!format!("{a:?}").contains("7, 7"));
    }

    #[test]
    fn short_keys_are_refused_and_hex_files_decoded() {
        assert_eq!(
            AuditKey::new(&[1; 31]).unwrap_err(),
            AuditKeyError::TooShort(31)
        );
        let hex_file = format!("{}\n", "ab".repeat(32));
        let from_hex = AuditKey::from_file_contents(hex_file.as_bytes()).unwrap();
        assert_eq!(
            from_hex.pseudonym("x"),
            AuditKey::new(&[0xab; 32]).unwrap().pseudonym("x")
        );
        assert!(AuditKey::from_file_contents(b"short").is_err());
    }
}
