//! The configuration file's model: one struct per section, each refusing unknown keys so a
//! misspelt setting is an error rather than a silently ignored default.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::de::Error;
use serde::{Deserialize, Deserializer};

use crate::{Limits, Upstream};

/// The whole gateway configuration (`config/discreet.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address the gRPC server listens on. Default `127.0.0.1:50051` (loopback, so a
    /// development gateway is not exposed by accident; in a pod use `0.0.0.0:50051`).
    #[serde(default = "default_listen", deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// The profile store reads are forwarded to. Required.
    pub upstream: Upstream,
    /// The store's protobuf schema. Default: the embedded reference schema.
    #[serde(default)]
    pub schema: SchemaConfig,
    /// The policy file. Required.
    pub policy: PolicyConfig,
    /// Full gRPC method name (`/package.Service/Method`) to how it is treated. Required and
    /// non-empty: methods not listed are denied, so a new store method is never exposed
    /// unreviewed.
    pub methods: BTreeMap<String, MethodKind>,
    /// How callers are identified. Required.
    pub identity: IdentityConfig,
    /// Consent token verification (issuer, audience, keys, revocation). Required.
    pub consent: discreet_consent::ConsentConfig,
    /// Keyed pseudonyms. Required.
    pub pseudonym: PseudonymConfig,
    /// The audit trail: where access spans are exported and what happens when they cannot
    /// be. Required.
    pub audit: crate::AuditConfig,
    /// The Prometheus endpoint. Default none.
    #[serde(default)]
    pub metrics: Option<crate::MetricsConfig>,
    /// Resource limits. Default [`Limits::default`].
    #[serde(default)]
    pub limits: Limits,
    /// TLS for callers. Default none: HTTP/2 cleartext (h2c), for a sidecar behind a mesh
    /// or on loopback.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 50051))
}

/// `ip:port`, with an error that shows an example (serde's says only "invalid syntax").
pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        D::Error::custom(format!(
            "`{text}` is not a socket address; expected ip:port such as 127.0.0.1:50051 or 0.0.0.0:50051"
        ))
    })
}

/// Where the store's protobuf schema comes from. All empty (the default) means the
/// embedded reference schema (`proto/profile/v1`), which matches the embedded store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaConfig {
    /// `.proto` files to compile. Default empty: the embedded reference schema.
    pub protos: Vec<PathBuf>,
    /// Import directories for `protos`. Default empty (the directories of `protos`).
    /// Only meaningful with `protos`.
    pub includes: Vec<PathBuf>,
    /// Field-to-category mapping file for stores whose protos lack Discreet annotations.
    /// Default none. Only meaningful with `protos`.
    pub mapping: Option<PathBuf>,
}

/// The purpose policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The policy YAML file. Required.
    pub file: PathBuf,
    /// Reload the policy when the file changes (a bad edit is rejected and the previous
    /// policy kept). Default true.
    #[serde(default = "default_true")]
    pub watch: bool,
}

fn default_true() -> bool {
    true
}

/// How a listed method is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodKind {
    /// `read`: responses are enforced (consent, policy, minimisation) field by field.
    Read,
    /// `write`: caller and purpose are checked; the payload passes through unchanged.
    Write,
}

/// How callers prove who they are. Exactly one of the three keys.
///
/// ```yaml
/// identity: { static: shop/recommender }      # development: every caller is this one
/// identity:
///   service_account: { issuer: ..., audience: discreet, keys: { file: ... } }
/// identity: { spiffe: { trust_domain: cluster.local } }   # with tls.client_ca_file
/// ```
// Read once at start and never moved on a hot path: boxing the large variant would only
// make every match on it noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityConfig {
    /// Every caller is this `namespace/name` (development only: nothing is verified).
    Static(String),
    /// Kubernetes projected service-account tokens, verified against the API server's
    /// keys; the caller is `namespace/serviceaccount`.
    ServiceAccount(discreet_consent::CallerConfig),
    /// Client certificates (mutual TLS): the caller is the `namespace/serviceaccount` of
    /// the SPIFFE ID `spiffe://<trust_domain>/ns/<namespace>/sa/<serviceaccount>` in the
    /// certificate it presented. Needs `tls.client_ca_file`.
    Spiffe(SpiffeConfig),
}

/// Callers named by the SPIFFE ID of their client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpiffeConfig {
    /// The trust domain callers' IDs must be in (`cluster.local` for most meshes and
    /// csi-driver-spiffe). Required.
    pub trust_domain: String,
}

/// Keyed pseudonyms for subject identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymConfig {
    /// File holding the deployment secret (hex, or at least 32 raw bytes) from which the
    /// per-purpose HMAC keys derive; a file, not a value, so the secret stays out of the
    /// configuration and can come from a Kubernetes Secret. Required. Read with
    /// [`crate::load_pseudonym_secret`].
    pub secret_file: PathBuf,
}

/// TLS for the caller-facing listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM. Required.
    pub cert_file: PathBuf,
    /// Private key, PEM. Required.
    pub key_file: PathBuf,
    /// CA certificates (PEM) that issue callers' client certificates. When set, every
    /// connection must present a client certificate that chains to one of them (mutual
    /// TLS), or its handshake fails. Watched: an updated bundle applies to new
    /// connections. Default none: no client certificate is asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}
