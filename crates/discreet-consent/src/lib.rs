#![doc = include_str!("../CONSENT.md")]
//!
//! ### Using it from the gateway
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use discreet_consent::{ConsentConfig, ConsentService, KeySourceConfig};
//!
//! let config = ConsentConfig::new(
//!     "https://cmp.example",
//!     "discreet",
//!     KeySourceConfig::file("/etc/discreet/consent-jwks.json"),
//! );
//! let consent = ConsentService::start(&config).await?;
//! # let token = "";
//! match consent.verify_cached(token).await {
//!     Ok(verified) => verified.grant().require("personalize", ["user.health"])?,
//!     Err(e) => {
//!         let _status = e.grpc_code(); // mapped to tonic::Code in one place
//!         return Err(e.into());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod algorithm;
mod cache;
mod caller;
mod claims;
mod config;
mod error;
mod identity;
mod jws;
mod keyset;
mod live;
mod lookup;
mod revocation;
mod service;
mod signature;
mod verify;

pub mod dev;
pub mod keyring;
pub mod source;

pub use algorithm::{SigningAlgorithm, UnknownAlgorithm};
pub use caller::{CallerConfig, CallerService};
pub use claims::{ConsentGrant, VerifiedConsent};
pub use config::duration::{
    EXPECTED as DURATION_EXPECTED, deserialize as deserialize_duration, parse as parse_duration,
};
pub use config::{
    CacheConfig, ConfigError, ConsentConfig, KeySourceConfig, RevocationSourceConfig,
    is_loopback_host, source_url_problem,
};
pub use error::{ConsentError, GrpcCode};
pub use identity::{
    CallerAuthenticator, CallerCredentials, CallerIdentity, CallerVerifier, StaticIdentity,
};
pub use keyset::{KeySet, KeySetError, VerificationKey};
pub use live::SourceHealth;
pub use lookup::{ConsentLookup, DirectoryConsentLookup, HttpConsentLookup, LookupFuture};
pub use revocation::{RevocationList, RevocationParseError};
pub use service::{ConsentService, unix_now};
pub use verify::{ConsentVerifier, TokenRules};
