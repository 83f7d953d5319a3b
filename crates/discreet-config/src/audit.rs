//! The `audit` and `metrics` sections: where access spans go, what happens when they
//! cannot, and where Prometheus scrapes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::{CollectorHeaderConfig, ConfigError};

/// The audit trail: one OpenTelemetry span per access, exported over OTLP/gRPC.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The OpenTelemetry Collector's OTLP/gRPC endpoint: `http://host:port` for a
    /// collector agent on the node or in the pod (usually `http://127.0.0.1:4317`), or
    /// `https://host:port` for one reached over the network, verified as `tls` says.
    /// Required: a gateway without an audit trail is not a privacy gateway.
    pub endpoint: String,
    /// TLS to an `https://` collector: which CAs to trust, the name to verify and a
    /// client certificate for a collector that asks for one. Only with `https://`.
    /// Default: the Mozilla roots and the endpoint's host name, no client certificate.
    #[serde(default)]
    pub tls: Option<CollectorTlsConfig>,
    /// Metadata sent with every export request, by name: what a hosted collector or one
    /// that authenticates its clients requires (`authorization`, `x-honeycomb-team`) or a
    /// tenant id (`x-scope-orgid`). Each value is `file:` (credentials: a mounted Secret,
    /// watched) or `value:` (what is not secret). A credential is refused inline, and
    /// refused over a cleartext endpoint that is not on loopback. Default none.
    #[serde(default)]
    pub headers: BTreeMap<String, CollectorHeaderConfig>,
    /// `strict` (default): a call whose access span cannot be queued for export is refused
    /// `UNAVAILABLE`, so nothing is served unaudited. `relaxed`: the call is served and the
    /// lost span counted (`discreet_audit_spans_dropped_total`).
    #[serde(default)]
    pub mode: AuditModeConfig,
    /// File holding the audit key (hex, or at least 32 raw bytes): subjects appear in spans
    /// only as HMAC pseudonyms under this key. A different key from `pseudonym.secret_file`,
    /// so callers' pseudonyms cannot be joined with the audit trail. Required.
    pub key_file: PathBuf,
    /// Spans held for export, including one reserved by each call in flight. With the
    /// collector away, the gateway serves about this many calls before strict mode refuses.
    /// Default 8192; at least `limits.max_concurrent_calls`.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Bytes of encoded spans held for export: queued, or in the request being sent. A
    /// call starts only while the queue holds less than this (strict mode refuses it
    /// `UNAVAILABLE`, relaxed mode serves it and counts its span as dropped), so with the
    /// collector away the queue stops at this size whatever the spans weigh: a
    /// `GetProfile` span is about 3 KiB, a batch's span about 200 bytes per subject (200
    /// KiB for 1,000), and 8192 places of such spans would otherwise hold over a gigabyte
    /// and get the container killed for memory, losing every span in it. Calls already started may add their
    /// spans past it (their data is out). Default 67108864 (64 MiB: the shipped
    /// deployment's memory limit is 256 MiB); 1048576 (1 MiB) to 4294967296 (4 GiB).
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: u64,
    /// Spans in one export request: a batch is sent as soon as this many are queued
    /// (otherwise after `batch_delay`). Default 32: an access span is about 3 KiB, so a
    /// request is about 100 KiB. Larger batches cost a little less CPU per span but decode
    /// at the collector in longer bursts; on a node shared with the collector that showed
    /// in the gateway's p99 (3.1 ms at 128 against 2.0 ms at 32, BENCHMARKS.md). When the
    /// exporter has fallen behind, one request carries up to 8 batches (still cut at 3 MiB),
    /// so that it catches up instead of the queue filling: it trades a longer decode burst
    /// at the collector for a queue that drains. That request's spans are held beside the
    /// queue while it is sent (and retried).
    #[serde(default = "default_batch")]
    pub max_batch: usize,
    /// Longest one export request may take before it is retried. Default `5s`.
    #[serde(
        default = "default_export_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub export_timeout: Duration,
    /// Longest a finished span waits for others to share its export request; a full batch
    /// (`max_batch`) is sent at once. Batching keeps the cost of the audit trail, for the
    /// gateway and for the collector, per request rather than per call. Default `50ms`;
    /// `0s` sends whatever is queued as soon as the exporter is free. At most `10s`.
    #[serde(
        default = "default_batch_delay",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub batch_delay: Duration,
    /// Subject events on one span; a batch or stream touching more subjects continues them
    /// on child spans (`discreet.access.subjects`), each taking a queue place. Default 1000.
    #[serde(default = "default_events")]
    pub max_subject_events: usize,
    /// A candidate policy file evaluated beside the active one on every call ("shadow"
    /// or dry-run): calls are served by the active policy, and spans record where the
    /// candidate would have released or withheld differently. Watched like the policy.
    /// Default none.
    #[serde(default)]
    pub shadow_policy: Option<PathBuf>,
    /// `service.name` of the spans' resource. Default `discreet`.
    #[serde(default = "default_service")]
    pub service_name: String,
}

/// See [`AuditConfig::tls`]. The files are watched: a renewed client certificate or CA
/// bundle applies to the next connection to the collector, and a file that does not load
/// leaves the last good ones in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorTlsConfig {
    /// CA certificates (PEM) that issue the collector's certificate, usually the
    /// cluster's private CA. Default none: the Mozilla roots (webpki-roots), as for a
    /// public endpoint.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The DNS name (or IP address) the collector's certificate must carry. Default: the
    /// endpoint's host. Set it when the endpoint is an address the certificate does not
    /// name, such as a node IP.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Client certificate chain (PEM) for a collector that requires mutual TLS. With
    /// `key_file`; default none.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM). With `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl AuditConfig {
    /// The host of `endpoint` (without brackets for an IPv6 address), once validated.
    #[must_use]
    pub fn endpoint_host(&self) -> Option<&str> {
        let rest = self
            .endpoint
            .strip_prefix("https://")
            .or_else(|| self.endpoint.strip_prefix("http://"))?;
        let authority = rest.split(['/', '?', '#']).next()?;
        // Never the userinfo (refused by validation, but this also names the host in logs).
        let authority = authority.rsplit('@').next()?;
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        (!host.is_empty()).then_some(host)
    }

    /// Whether the exporter connects over TLS.
    #[must_use]
    pub fn endpoint_is_tls(&self) -> bool {
        self.endpoint.starts_with("https://")
    }
}

/// See [`AuditConfig::mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditModeConfig {
    #[default]
    Strict,
    Relaxed,
}

fn default_queue() -> usize {
    8192
}
fn default_queue_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_batch() -> usize {
    32
}
fn default_export_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_batch_delay() -> Duration {
    Duration::from_millis(50)
}
fn default_events() -> usize {
    1000
}
fn default_service() -> String {
    "discreet".to_owned()
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint serving `/metrics` (text format). Required in the
    /// section; leave the section out for no endpoint.
    #[serde(deserialize_with = "crate::model::socket_addr")]
    pub listen: SocketAddr,
}

impl AuditConfig {
    pub(crate) fn check(&self, max_concurrent_calls: usize) -> Result<(), ConfigError> {
        let refuse =
            |field: &str, message: String| Err(ConfigError::invalid(&["audit", field], message));
        let endpoint = self.endpoint.as_str();
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        // Credentials in the URL would not be sent (and would reach the log line naming
        // the collector); say so rather than ignore them.
        if rest.is_some_and(|r| {
            r.split(['/', '?', '#'])
                .next()
                .is_some_and(|a| a.contains('@'))
        }) {
            return refuse(
                "endpoint",
                "carries credentials (user@host); they are not sent to the collector: expected http(s)://host:port".into(),
            );
        }
        if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace))
            || self.endpoint_host().is_none()
        {
            // Not echoed: an address that does not parse may still carry a token.
            return refuse(
                "endpoint",
                "is not a collector address; expected http://host:port such as http://127.0.0.1:4317, or https://host:port".into(),
            );
        }
        // tonic sends every request to the endpoint's origin: a path (a hosted
        // collector's /otlp, say), a query or a fragment would be dropped without a word
        // (and a query may carry a token).
        let beyond_authority = rest
            .and_then(|r| r.find(['/', '?', '#']).map(|at| &r[at..]))
            .unwrap_or_default();
        if !beyond_authority.is_empty() && beyond_authority != "/" {
            return refuse(
                "endpoint",
                "has a path, query or fragment after host:port, which OTLP/gRPC does not use; expected http(s)://host:port".into(),
            );
        }
        if let Some(tls) = &self.tls {
            self.check_tls(tls)?;
        }
        if self.endpoint_is_tls() {
            self.check_server_name()?;
        }
        self.check_headers()?;
        if self.key_file.as_os_str().is_empty() {
            return refuse("key_file", "is empty; expected a file path".into());
        }
        if self.queue_capacity < max_concurrent_calls.max(1) || self.queue_capacity > 1_000_000 {
            return refuse(
                "queue_capacity",
                format!(
                    "{} is out of range; expected limits.max_concurrent_calls ({max_concurrent_calls}) to 1000000, \
                     since every call in flight holds a place",
                    self.queue_capacity
                ),
            );
        }
        if !(1 << 20..=1 << 32).contains(&self.queue_bytes) {
            return refuse(
                "queue_bytes",
                format!(
                    "{} is out of range; expected 1048576 (1 MiB) to 4294967296 (4 GiB) bytes of queued spans",
                    self.queue_bytes
                ),
            );
        }
        if !(1..=10_000).contains(&self.max_batch) {
            return refuse(
                "max_batch",
                format!("{} is out of range; expected 1 to 10000", self.max_batch),
            );
        }
        if !(1..=100_000).contains(&self.max_subject_events) {
            return refuse(
                "max_subject_events",
                format!(
                    "{} is out of range; expected 1 to 100000",
                    self.max_subject_events
                ),
            );
        }
        if self.export_timeout.is_zero() || self.export_timeout > Duration::from_secs(60) {
            return refuse(
                "export_timeout",
                "expected more than 0s and at most 60s".into(),
            );
        }
        if self.batch_delay > Duration::from_secs(10) {
            return refuse(
                "batch_delay",
                format!(
                    "{}ms is too long: spans would reach the collector late and hold queue places; expected at most 10s",
                    self.batch_delay.as_millis()
                ),
            );
        }
        if self.service_name.trim().is_empty() {
            return refuse("service_name", "is empty".into());
        }
        if self
            .shadow_policy
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return refuse(
                "shadow_policy",
                "is empty; expected a policy file path".into(),
            );
        }
        Ok(())
    }

    /// The name the collector's certificate is verified against must be one rustls takes:
    /// `audit.tls.server_name` when set, else the endpoint's host (so the error names the
    /// field the operator wrote).
    fn check_server_name(&self) -> Result<(), ConfigError> {
        let configured = self.tls.as_ref().and_then(|t| t.server_name.as_deref());
        let (field, name): (&[&str], &str) = match configured {
            Some(name) => (&["audit", "tls", "server_name"], name),
            None => (
                &["audit", "endpoint"],
                self.endpoint_host().unwrap_or_default(),
            ),
        };
        if rustls_pki_types::ServerName::try_from(name).is_err() {
            return Err(ConfigError::invalid(
                field,
                format!(
                    "`{name}` is not a DNS name or IP address a certificate can be verified against; expected a name such as otel-collector.observability.svc{}",
                    if configured.is_none() {
                        ", or audit.tls.server_name"
                    } else {
                        ""
                    }
                ),
            ));
        }
        Ok(())
    }

    fn check_tls(&self, tls: &CollectorTlsConfig) -> Result<(), ConfigError> {
        let refuse = |field: &str, message: String| {
            Err(ConfigError::invalid(&["audit", "tls", field], message))
        };
        // TLS settings on a cleartext endpoint would be silently unused: the operator
        // meant the connection to be encrypted, and it would not be.
        if !self.endpoint_is_tls() {
            return Err(ConfigError::invalid(
                &["audit", "tls"],
                format!(
                    "is set but audit.endpoint `{}` is cleartext; expected an https:// endpoint, or no tls section",
                    self.endpoint
                ),
            ));
        }
        for (field, path) in [
            ("ca_file", &tls.ca_file),
            ("cert_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return refuse(field, "is empty; expected a file path".into());
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(_), None) => {
                return refuse(
                    "key_file",
                    "is missing; cert_file needs its private key".into(),
                );
            }
            (None, Some(_)) => {
                return refuse(
                    "cert_file",
                    "is missing; key_file needs its certificate chain".into(),
                );
            }
            _ => {}
        }
        Ok(())
    }
}
