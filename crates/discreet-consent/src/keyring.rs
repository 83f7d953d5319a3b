//! A development keyring: everything a gateway needs to verify, written into one
//! directory in the layout `config/discreet.yaml` expects (`keys/` beside it), plus the
//! private halves to mint tokens with. The demo, the integration tests and the benchmarks
//! use it; production keys come from the consent platform and the cluster.
//!
//! | file | what |
//! |---|---|
//! | `consent-jwks.json`, `consent-private.pem` | consent token keys (ES256, kid `dev-consent`) |
//! | `caller-jwks.json`, `caller-private.pem` | service-account token keys (ES256, kid `dev-caller`) |
//! | `revocations.json` | the revocation list (empty) |
//! | `pseudonym.key` | 32 random bytes, hex: the pseudonymisation secret |
//! | `audit.key` | 32 random bytes, hex: the audit pseudonym key (`discreet audit` needs it) |

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use rand_core::{OsRng, RngCore};

use crate::{
    SigningAlgorithm,
    dev::{DevError, MintClaims, generate_keys, mint_token},
};

/// The consent issuer the shipped configuration trusts.
pub const DEV_CONSENT_ISSUER: &str = "https://consent.example.com";
/// The Kubernetes issuer the shipped configuration trusts.
pub const DEV_CALLER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience both token kinds are minted for.
pub const DEV_AUDIENCE: &str = "discreet";
const CONSENT_KID: &str = "dev-consent";
const CALLER_KID: &str = "dev-caller";

/// A keyring directory and the private keys in it.
#[derive(Debug, Clone)]
pub struct DevKeyring {
    dir: PathBuf,
    consent_pem: String,
    caller_pem: String,
}

impl DevKeyring {
    /// Opens the keyring in `dir`, creating whatever is missing (existing keys are kept,
    /// so tokens minted earlier stay valid).
    pub fn open_or_create(dir: &Path) -> Result<DevKeyring, DevError> {
        let io = |e: std::io::Error| DevError::KeyGeneration(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let consent_pem = key_pair(dir, "consent", CONSENT_KID)?;
        let caller_pem = key_pair(dir, "caller", CALLER_KID)?;
        let revocations = dir.join("revocations.json");
        if !revocations.exists() {
            write(
                &revocations,
                br#"{"version": "dev-0", "revoked_jti": []}"#,
                false,
            )
            .map_err(io)?;
        }
        // Two independent secrets: callers' pseudonyms and the audit trail's must not join.
        for name in ["pseudonym.key", "audit.key"] {
            let secret = dir.join(name);
            if !secret.exists() {
                let mut bytes = [0u8; 32];
                OsRng.fill_bytes(&mut bytes);
                write(&secret, hex_encode(&bytes).as_bytes(), true).map_err(io)?;
            }
        }
        Ok(DevKeyring {
            dir: dir.to_owned(),
            consent_pem,
            caller_pem,
        })
    }

    /// Opens an existing keyring without creating anything (minting tools: a missing
    /// keyring is an error, not a new key nobody trusts).
    pub fn open(dir: &Path) -> Result<DevKeyring, DevError> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| {
                DevError::KeyGeneration(format!(
                    "{}: {e} (create the keyring with `discreet keys dev --dir {}`)",
                    dir.join(name).display(),
                    dir.display()
                ))
            })
        };
        Ok(DevKeyring {
            dir: dir.to_owned(),
            consent_pem: read("consent-private.pem")?,
            caller_pem: read("caller-private.pem")?,
        })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A consent token for `subject` granting `purposes` (and `special` categories),
    /// valid for `ttl`. Returns the token and its `jti` (the handle for revocation).
    pub fn consent_token(
        &self,
        subject: &str,
        purposes: &[&str],
        special: &[&str],
        ttl: Duration,
    ) -> Result<(String, String), DevError> {
        let mut claims = MintClaims::new(DEV_CONSENT_ISSUER, DEV_AUDIENCE, subject, purposes, ttl);
        claims.special_categories = special.iter().map(|s| (*s).to_owned()).collect();
        let jti = claims.jti.clone();
        Ok((
            mint_token(
                &self.consent_pem,
                CONSENT_KID,
                SigningAlgorithm::ES256,
                &claims,
            )?,
            jti,
        ))
    }

    /// A consent token that expired `ago` ago (beyond any clock-skew leeway you pass).
    pub fn expired_consent_token(
        &self,
        subject: &str,
        purposes: &[&str],
        ago: Duration,
    ) -> Result<String, DevError> {
        let mut claims = MintClaims::new(
            DEV_CONSENT_ISSUER,
            DEV_AUDIENCE,
            subject,
            purposes,
            Duration::ZERO,
        );
        claims.iat = claims.iat.saturating_sub(ago.as_secs() + 60);
        claims.nbf = claims.iat;
        claims.exp = claims.exp.saturating_sub(ago.as_secs());
        mint_token(
            &self.consent_pem,
            CONSENT_KID,
            SigningAlgorithm::ES256,
            &claims,
        )
    }

    /// A projected service-account token for `namespace/name`, as the kubelet would
    /// mount it for a pod whose token audience is `discreet`.
    pub fn caller_token(&self, caller: &str, ttl: Duration) -> Result<String, DevError> {
        let (ns, sa) = caller
            .split_once('/')
            .ok_or_else(|| DevError::KeyGeneration("caller must be namespace/name".into()))?;
        let sub = format!("system:serviceaccount:{ns}:{sa}");
        let claims = MintClaims::new(DEV_CALLER_ISSUER, DEV_AUDIENCE, &sub, &[], ttl);
        mint_token(
            &self.caller_pem,
            CALLER_KID,
            SigningAlgorithm::ES256,
            &claims,
        )
    }

    /// Rewrites the revocation list with these token ids (atomically: write, then rename).
    pub fn revoke(&self, jtis: &BTreeSet<String>) -> std::io::Result<()> {
        let doc =
            serde_json::json!({ "version": format!("dev-{}", jtis.len()), "revoked_jti": jtis });
        let tmp = self.dir.join(".revocations.json.tmp");
        write(&tmp, doc.to_string().as_bytes(), false)?;
        std::fs::rename(tmp, self.dir.join("revocations.json"))
    }
}

fn key_pair(dir: &Path, name: &str, kid: &str) -> Result<String, DevError> {
    let pem_path = dir.join(format!("{name}-private.pem"));
    let jwks_path = dir.join(format!("{name}-jwks.json"));
    let io = |e: std::io::Error| DevError::KeyGeneration(format!("{}: {e}", dir.display()));
    if pem_path.exists() && jwks_path.exists() {
        return std::fs::read_to_string(&pem_path).map_err(io);
    }
    let (pem, jwks) = generate_keys(SigningAlgorithm::ES256, kid)?;
    write(&pem_path, pem.as_bytes(), true).map_err(io)?;
    write(&jwks_path, jwks.as_bytes(), false).map_err(io)?;
    Ok(pem)
}

/// Private files are created 0600 on Unix.
fn write(path: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options.open(path)?.write_all(contents)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
