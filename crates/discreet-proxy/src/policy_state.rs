//! The active policy and its hot reload. Calls take an `Arc` of the active version at
//! their start and keep it to their end, so a reload never changes the rules under a
//! call in flight, and a call never waits for a reload.
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use discreet_policy::Policy;
use discreet_schema::Schema;
use sha2::{Digest, Sha256};

/// One loaded policy version.
#[derive(Debug)]
pub(crate) struct ActivePolicy {
    pub(crate) policy: Policy,
    /// Counts loads in this process: plans are cached by it, so a reload whose `version`
    /// string was not changed still gets fresh plans.
    pub(crate) generation: u64,
    /// `policy.version`, shared: every call's access span and metrics carry it.
    pub(crate) version: Arc<str>,
    digest: [u8; 32],
    /// The file's SHA-256, first 12 hex digits, shared like `version`: every access span
    /// and the version metric carry it, telling apart two files under one version.
    pub(crate) digest_hex: Arc<str>,
}

fn digest_hex(digest: &[u8; 32]) -> Arc<str> {
    Arc::from(hex::encode(&digest[..6]))
}

/// What a reload attempt did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reload {
    Unchanged,
    Loaded {
        version: String,
        generation: u64,
    },
    /// The file does not parse or validate; the previous version stays active. The
    /// message names the file, line and problem of each error.
    Rejected(String),
}

/// The active policy, swapped atomically on reload.
#[derive(Debug)]
pub(crate) struct PolicyState {
    path: PathBuf,
    schema: Arc<Schema>,
    current: RwLock<Arc<ActivePolicy>>,
    generations: AtomicU64,
    /// The digest of the last rejected file, so a bad file is reported once, not on every
    /// poll.
    last_rejected: RwLock<Option<[u8; 32]>>,
}

impl PolicyState {
    /// Loads the policy at start-up: an invalid policy is fatal here (there is no last
    /// good version to fall back to).
    pub(crate) fn load(path: &Path, schema: Arc<Schema>) -> Result<PolicyState, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read policy: {e}", path.display()))?;
        let policy = parse(path, &text, &schema)?;
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        Ok(PolicyState {
            path: path.to_owned(),
            schema,
            current: RwLock::new(Arc::new(ActivePolicy {
                version: Arc::from(policy.version.as_str()),
                policy,
                generation: 1,
                digest_hex: digest_hex(&digest),
                digest,
            })),
            generations: AtomicU64::new(1),
            last_rejected: RwLock::new(None),
        })
    }

    /// The active version.
    pub(crate) fn current(&self) -> Arc<ActivePolicy> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            // A writer panicked mid-swap; the Arc inside is still a whole policy.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the file; activates it if it changed and is valid.
    pub(crate) fn reload(&self) -> Reload {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                // Mid-replacement (a ConfigMap symlink swap) the file can briefly vanish.
                return Reload::Rejected(format!(
                    "{}: cannot read policy: {e}",
                    self.path.display()
                ));
            }
        };
        let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
        if digest == self.current().digest {
            return Reload::Unchanged;
        }
        if let Ok(last) = self.last_rejected.read()
            && *last == Some(digest)
        {
            return Reload::Unchanged;
        }
        let parsed = parse(&self.path, &text, &self.schema);
        match parsed {
            Ok(policy) => {
                if policy.version == self.current().policy.version {
                    // Applied all the same: refusing it would leave running replicas on
                    // the old rules while restarted ones load the new file under the same
                    // name. The version metric's digest label shows the difference.
                    tracing::warn!(
                        policy.version = %policy.version,
                        "{}: the policy changed but its version did not: spans and response \
                         trailers cannot tell the two apart; give each policy its own version",
                        self.path.display()
                    );
                }
                let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                let version = policy.version.clone();
                let next = Arc::new(ActivePolicy {
                    version: Arc::from(policy.version.as_str()),
                    policy,
                    generation,
                    digest_hex: digest_hex(&digest),
                    digest,
                });
                match self.current.write() {
                    Ok(mut guard) => *guard = next,
                    Err(poisoned) => *poisoned.into_inner() = next,
                }
                Reload::Loaded {
                    version,
                    generation,
                }
            }
            Err(message) => {
                if let Ok(mut last) = self.last_rejected.write() {
                    *last = Some(digest);
                }
                Reload::Rejected(message)
            }
        }
    }

    /// Watches the file until the returned task is aborted (`file_watch.rs`).
    /// `report` is told of every reload attempt that changed something: the active
    /// version and whether the new file was applied (for metrics).
    pub(crate) fn watch(
        self: Arc<Self>,
        poll: Duration,
        what: &'static str,
        report: impl Fn(&ActivePolicy, bool) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let path = self.path.clone();
        crate::file_watch::watch_files(&[&path], poll, move || match self.reload() {
            Reload::Unchanged => {}
            Reload::Loaded {
                version,
                generation,
            } => {
                tracing::info!(policy.version = %version, policy.generation = generation, "{what} reloaded");
                report(&self.current(), true);
            }
            Reload::Rejected(message) => {
                let active = self.current();
                tracing::error!(
                    policy.version = %active.policy.version,
                    "{what} file rejected, keeping the active version: {message}"
                );
                report(&active, false);
            }
        })
    }
}

fn parse(path: &Path, text: &str, schema: &Schema) -> Result<Policy, String> {
    Policy::parse(path, text, schema).map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}
