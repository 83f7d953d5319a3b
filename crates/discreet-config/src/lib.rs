//! The gateway's configuration file (`config/discreet.yaml`): the model, parsing with
//! positions in every error, validation, and path resolution.
//!
//! Kept apart from the proxy so that `discreet check` and tests can read and validate a
//! configuration without starting a server (no async runtime here).
//!
//! ```no_run
//! # fn main() -> Result<(), discreet_config::ConfigError> {
//! let config = discreet_config::GatewayConfig::load("config/discreet.yaml".as_ref())?;
//! let secret = discreet_config::load_pseudonym_secret(&config.pseudonym.secret_file)?;
//! # let _ = secret;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod audit;
mod collector_headers;
mod duration;
mod error;
mod identity;
mod limits;
mod load;
mod locate;
mod model;
mod secret;
mod upstream;
mod validate;

pub use audit::{AuditConfig, AuditModeConfig, CollectorTlsConfig, MetricsConfig};
pub use collector_headers::{
    CollectorHeaderConfig, MAX_COLLECTOR_HEADER_BYTES, MAX_COLLECTOR_HEADERS,
    collector_header_value_problem,
};
pub use error::ConfigError;
pub use limits::{AdaptiveConcurrency, Limits};
pub use model::{
    GatewayConfig, IdentityConfig, MethodKind, PolicyConfig, PseudonymConfig, SchemaConfig,
    SpiffeConfig, TlsConfig,
};
pub use secret::{MIN_SECRET_BYTES, load_pseudonym_secret};
pub use upstream::Upstream;
pub use validate::is_kubernetes_name;
