//! `discreet keys` and `discreet token`: development keys and keyrings, consent tokens and
//! callers' service-account tokens.
//! Production tokens come from the consent-management platform, never from here.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use discreet_consent::SigningAlgorithm;
use discreet_consent::dev::{MintClaims, generate_keys, mint_token, parse_duration, random_id};
use discreet_consent::keyring::DevKeyring;

/// File names written by `keys generate`.
const PRIVATE_KEY_FILE: &str = "consent-private.pem";
const JWKS_FILE: &str = "consent-jwks.json";

/// `discreet keys …`
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a signing key pair: `consent-private.pem` (mode 0600) and `consent-jwks.json`.
    Generate(GenerateArgs),
    /// Create (or complete) a development keyring: consent and caller keys, an empty
    /// revocation list, a pseudonymisation secret and an audit key, in the layout
    /// `config/discreet.yaml` expects under `keys/`.
    Dev(DevKeysArgs),
}

/// Arguments of `discreet keys dev`.
#[derive(Debug, Args)]
pub(crate) struct DevKeysArgs {
    /// The keyring directory (created if missing; existing keys are kept).
    #[arg(long, default_value = "config/keys")]
    pub(crate) dir: PathBuf,
}

/// Arguments shared by the development token commands.
#[derive(Debug, Args)]
pub(crate) struct DevTokenArgs {
    /// The keyring directory written by `discreet keys dev`.
    #[arg(long, default_value = "config/keys")]
    pub(crate) keys: PathBuf,
    /// Lifetime: 30s, 15m, 1h, …
    #[arg(long, default_value = "1h")]
    pub(crate) ttl: String,
}

/// Arguments of `discreet token dev-consent`.
#[derive(Debug, Args)]
pub(crate) struct DevConsentArgs {
    #[command(flatten)]
    pub(crate) common: DevTokenArgs,
    /// Subject id (`sub`), as the store knows it.
    #[arg(long)]
    pub(crate) sub: String,
    /// Purpose granted; repeat for several.
    #[arg(long = "purpose", required = true)]
    pub(crate) purposes: Vec<String>,
    /// Special category granted explicitly; repeat for several.
    #[arg(long = "special")]
    pub(crate) special_categories: Vec<String>,
}

/// Arguments of `discreet token dev-caller`.
#[derive(Debug, Args)]
pub(crate) struct DevCallerArgs {
    #[command(flatten)]
    pub(crate) common: DevTokenArgs,
    /// The caller, `namespace/serviceaccount`.
    #[arg(long)]
    pub(crate) caller: String,
}

/// Arguments of `discreet keys generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Algorithm: ES256, ES384, EdDSA, RS256 (RS384/512), PS256 (PS384/512).
    #[arg(long, default_value = "ES256")]
    pub(crate) alg: SigningAlgorithm,
    /// Directory to write the two files into (created if missing).
    #[arg(long)]
    pub(crate) out_dir: PathBuf,
    /// Key id; a random one when omitted.
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub(crate) force: bool,
}

/// `discreet token …`
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Mint a consent token and print it to stdout.
    Mint(MintArgs),
    /// Mint a consent token with the development keyring (issuer and audience as in
    /// `config/discreet.yaml`) and print it.
    DevConsent(DevConsentArgs),
    /// Mint a Kubernetes-style service-account token for a caller with the development
    /// keyring and print it.
    DevCaller(DevCallerArgs),
}

/// Arguments of `discreet token mint`.
#[derive(Debug, Args)]
pub(crate) struct MintArgs {
    /// PKCS#8 PEM private key (as written by `keys generate`).
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// Key id, as in the JWKS.
    #[arg(long)]
    pub(crate) kid: String,
    /// Algorithm of the key.
    #[arg(long, default_value = "ES256")]
    pub(crate) alg: SigningAlgorithm,
    /// Issuer (`iss`).
    #[arg(long)]
    pub(crate) iss: String,
    /// Audience (`aud`).
    #[arg(long)]
    pub(crate) aud: String,
    /// Subject id (`sub`).
    #[arg(long)]
    pub(crate) sub: String,
    /// Purpose granted; repeat for several.
    #[arg(long = "purpose", required = true)]
    pub(crate) purposes: Vec<String>,
    /// Special category granted explicitly; repeat for several.
    #[arg(long = "special")]
    pub(crate) special_categories: Vec<String>,
    /// Lifetime: 30s, 15m, 1h, …
    #[arg(long, default_value = "1h")]
    pub(crate) ttl: String,
    /// `consent_version` claim.
    #[arg(long)]
    pub(crate) consent_version: Option<u64>,
    /// Token id (`jti`); random when omitted.
    #[arg(long)]
    pub(crate) jti: Option<String>,
}

/// Runs `discreet keys …`.
pub(crate) fn run_keys(cmd: KeysCommand) -> Result<(), Box<dyn std::error::Error>> {
    match cmd {
        KeysCommand::Dev(args) => {
            let ring = DevKeyring::open_or_create(&args.dir)?;
            eprintln!("development keyring ready in {}", ring.dir().display());
            Ok(())
        }
        KeysCommand::Generate(args) => {
            let kid = args.kid.unwrap_or_else(random_id);
            let (pem, jwks) = generate_keys(args.alg, &kid)?;
            std::fs::create_dir_all(&args.out_dir)?;
            let key_path = args.out_dir.join(PRIVATE_KEY_FILE);
            let jwks_path = args.out_dir.join(JWKS_FILE);
            if !args.force {
                for path in [&key_path, &jwks_path] {
                    if path.exists() {
                        return Err(format!(
                            "{} exists; pass --force to overwrite",
                            path.display()
                        )
                        .into());
                    }
                }
            }
            write_file(&key_path, pem.as_bytes(), true)?;
            write_file(&jwks_path, jwks.as_bytes(), false)?;
            eprintln!(
                "wrote {} (keep it secret) and {} (kid {kid}, {})",
                key_path.display(),
                jwks_path.display(),
                args.alg
            );
            Ok(())
        }
    }
}

/// Runs `discreet token …`.
pub(crate) fn run_token(cmd: TokenCommand) -> Result<(), Box<dyn std::error::Error>> {
    let ttl_of = |ttl: &str| {
        parse_duration(ttl)
            .ok_or_else(|| format!("--ttl: expected {}", discreet_consent::DURATION_EXPECTED))
    };
    match cmd {
        TokenCommand::DevConsent(args) => {
            let ring = DevKeyring::open(&args.common.keys)?;
            let purposes: Vec<&str> = args.purposes.iter().map(String::as_str).collect();
            let special: Vec<&str> = args.special_categories.iter().map(String::as_str).collect();
            let (token, _) =
                ring.consent_token(&args.sub, &purposes, &special, ttl_of(&args.common.ttl)?)?;
            println!("{token}");
            Ok(())
        }
        TokenCommand::DevCaller(args) => {
            let ring = DevKeyring::open(&args.common.keys)?;
            println!(
                "{}",
                ring.caller_token(&args.caller, ttl_of(&args.common.ttl)?)?
            );
            Ok(())
        }
        TokenCommand::Mint(args) => {
            let ttl = parse_duration(&args.ttl).ok_or_else(|| {
                format!("--ttl: expected {}", discreet_consent::DURATION_EXPECTED)
            })?;
            let pem = std::fs::read_to_string(&args.key)?;
            let purposes: Vec<&str> = args.purposes.iter().map(String::as_str).collect();
            let mut claims = MintClaims::new(&args.iss, &args.aud, &args.sub, &purposes, ttl);
            claims.special_categories = args.special_categories;
            claims.consent_version = args.consent_version;
            if let Some(jti) = args.jti {
                claims.jti = jti;
            }
            println!("{}", mint_token(&pem, &args.kid, args.alg, &claims)?);
            Ok(())
        }
    }
}

/// Writes `contents`; private files are created with mode 0600 on Unix (and set to 0600 when
/// overwritten), so the key is never readable by others, even briefly.
fn write_file(path: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
