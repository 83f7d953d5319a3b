//! The Discreet gateway: an HTTP/2 gRPC server that puts purpose, consent and policy on
//! every read of a profile store.
//!
//! The request path is in [`service`](crate::service) (one call, step by step, with the
//! reason for the order); the one table from failures to gRPC statuses is in
//! [`status`](crate::status). Pure decisions live in the policy, redaction and consent
//! crates; this crate is the I/O around them.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! let config = discreet_config::GatewayConfig::load("config/discreet.yaml".as_ref())
//!     .map_err(|e| e.to_string())?;
//! let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| e.to_string())?;
//! let gateway = discreet_proxy::Gateway::start(&config, listener, discreet_proxy::Options::default()).await?;
//! gateway.run_until_signal().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod access;
mod admin;
mod admission;
mod batch;
mod body;
mod caller;
mod caller_share;
mod collector_headers;
mod collector_tls;
mod enforce;
mod file_watch;
mod frame;
/// Parsers of untrusted input for the fuzz target (`fuzz/`); only with `--features fuzzing`.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod grants;
mod idle;
mod limit;
mod linger;
mod local;
mod metadata;
mod plans;
mod policy_state;
mod request_body;
mod retry_budget;
mod route;
mod server;
mod service;
mod shadow;
mod spiffe;
mod status;
mod tls;
mod upstream;
mod watched_files;
mod workers;
mod x509;

pub use gateway::{Gateway, Options, ShutdownReport};

use std::sync::atomic::{AtomicU64, Ordering};

/// The clock that record guards (age, freshness) read. Token expiry always uses the
/// system clock.
#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A fixed instant (seconds since the epoch): for tests and reproducible demos
    /// against a data set dated relative to one instant.
    Fixed(i64),
}

impl Clock {
    /// Seconds since the epoch.
    #[must_use]
    pub fn now(self) -> i64 {
        match self {
            Clock::System => i64::try_from(discreet_consent::unix_now()).unwrap_or(i64::MAX),
            Clock::Fixed(t) => t,
        }
    }
}

/// Decision ids: a random per-process prefix and a counter. Unique across replicas and
/// restarts without a random draw per call.
#[derive(Debug)]
pub(crate) struct DecisionIds {
    prefix: String,
    counter: AtomicU64,
}

impl DecisionIds {
    pub(crate) fn new() -> Self {
        use rand_core::{OsRng, RngCore};
        let mut bytes = [0u8; 8];
        OsRng.fill_bytes(&mut bytes);
        DecisionIds {
            prefix: hex::encode(bytes),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> http::HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut id = http::HeaderValue::from_str(&format!("{}-{n:012x}", self.prefix))
            .unwrap_or(http::HeaderValue::from_static("unknown"));
        // Never the same twice: kept out of HPACK tables (ours and the caller's), where
        // every call's id would only push out entries worth keeping.
        id.set_sensitive(true);
        id
    }
}
