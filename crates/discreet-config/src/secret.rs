//! The pseudonym secret: read from its own file so it never sits in the configuration.

use std::path::Path;

use crate::ConfigError;

/// Fewest secret bytes accepted: HMAC-SHA-256 keys derived from less would be weaker than
/// the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// Reads the deployment secret from which per-purpose pseudonym keys derive. Surrounding
/// whitespace is trimmed (secrets are often written with a trailing newline); if what is
/// left is hexadecimal it is decoded, otherwise its raw bytes are the secret. Fewer than
/// [`MIN_SECRET_BYTES`] bytes is refused. Errors never contain the file's contents.
pub fn load_pseudonym_secret(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let refuse = |message: String| ConfigError::Secret {
        file: path.to_owned(),
        message,
    };
    let raw = std::fs::read(path).map_err(|e| refuse(format!("cannot read: {}", e.kind())))?;
    let text = raw.trim_ascii();
    let secret = match hex::decode(text) {
        Ok(bytes) if !text.is_empty() => bytes,
        _ => text.to_vec(),
    };
    if secret.len() < MIN_SECRET_BYTES {
        return Err(refuse(format!(
            "pseudonym secret is {} bytes; at least {MIN_SECRET_BYTES} are required \
             (e.g. 64 hex digits from `openssl rand -hex 32`)",
            secret.len()
        )));
    }
    Ok(secret)
}
