//! `audit.headers`: metadata sent with every export request, for a collector that
//! authenticates its clients (a hosted backend's API key, a bearer token checked by the
//! Collector's `bearertokenauth` extension) or routes by tenant (`x-scope-orgid`).
//!
//! Credentials come from files, never from this configuration (a ConfigMap that many can
//! read), and never over cleartext beyond the node: the validation below refuses both.
use std::path::PathBuf;

use serde::Deserialize;

use crate::{AuditConfig, ConfigError};

/// Most headers in `audit.headers`.
pub const MAX_COLLECTOR_HEADERS: usize = 32;

/// Longest header value, inline or read from a file (a JWT is 1-2 KiB).
pub const MAX_COLLECTOR_HEADER_BYTES: usize = 8192;

/// One header's value: read from a file, or written inline. Exactly one of the two.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorHeaderConfig {
    /// A file holding the value, surrounding whitespace trimmed: for credentials (mount
    /// the Kubernetes Secret). Watched: a rotated token applies from the next export
    /// request; a file that does not load leaves the last good value in use. The value is
    /// sent marked sensitive (never entered in an HPACK table) and never logged.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The value itself, for what is not a secret (a tenant or dataset name). Refused for
    /// names that look like credentials (`authorization`, names with `key`, `token`,
    /// `secret`, `passw`, `auth`, `credential`, `cookie`, `bearer`, `session`, `team`,
    /// `dsn`, `license` or `signature`).
    #[serde(default)]
    pub value: Option<String>,
}

impl std::fmt::Debug for CollectorHeaderConfig {
    // An inline value is not meant to be secret, but one put there by mistake should not
    // reach a debug log either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorHeaderConfig")
            .field("file", &self.file)
            .field(
                "value",
                &self.value.as_ref().map(|v| format!("<{} bytes>", v.len())),
            )
            .finish()
    }
}

/// Why `value` cannot be sent as a gRPC metadata value, if it cannot: printable ASCII
/// only (gRPC's ASCII metadata), no surrounding spaces, 1 to
/// [`MAX_COLLECTOR_HEADER_BYTES`] bytes. The message never quotes the value.
pub fn collector_header_value_problem(value: &[u8]) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".into());
    }
    if value.len() > MAX_COLLECTOR_HEADER_BYTES {
        return Some(format!(
            "is {} bytes; expected at most {MAX_COLLECTOR_HEADER_BYTES}",
            value.len()
        ));
    }
    if let Some(at) = value.iter().position(|b| !(0x20..=0x7e).contains(b)) {
        return Some(format!(
            "has a byte that is not printable ASCII at offset {at}; expected printable ASCII (gRPC text metadata)"
        ));
    }
    if value.first() == Some(&b' ') || value.last() == Some(&b' ') {
        return Some("starts or ends with a space".into());
    }
    None
}

/// Names HTTP/2 or gRPC set themselves: a configured value would be dropped or would
/// break the request.
const RESERVED: &[&str] = &[
    "te",
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Words that mark a header as a credential (`x-api-key`, `dd-api-key`,
/// `x-auth-token`, `x-honeycomb-team`, `uptrace-dsn`...): its value must come from a file.
/// Broad on purpose: a name caught by mistake only has to be written `file:`.
const CREDENTIAL_WORDS: &[&str] = &[
    "auth",
    "key",
    "token",
    "secret",
    "passw",
    "credential",
    "cookie",
    "bearer",
    "session",
    "team",
    "dsn",
    "license",
    "signature",
];

impl AuditConfig {
    pub(crate) fn check_headers(&self) -> Result<(), ConfigError> {
        if self.headers.len() > MAX_COLLECTOR_HEADERS {
            return Err(ConfigError::invalid(
                &["audit", "headers"],
                format!(
                    "has {} headers; expected at most {MAX_COLLECTOR_HEADERS}",
                    self.headers.len()
                ),
            ));
        }
        for (name, header) in &self.headers {
            let refuse =
                |message: String| Err(ConfigError::invalid(&["audit", "headers", name], message));
            if let Some(problem) = name_problem(name) {
                return refuse(problem);
            }
            let credential = CREDENTIAL_WORDS.iter().any(|w| name.contains(w));
            match (&header.file, &header.value) {
                (Some(_), Some(_)) | (None, None) => {
                    return refuse("set exactly one of file, value".into());
                }
                (Some(file), None) if file.as_os_str().is_empty() => {
                    return refuse("file is empty; expected a file path".into());
                }
                (Some(_), None) => {
                    if !self.endpoint_is_tls() && !self.endpoint_is_loopback() {
                        return refuse(
                            "is read from a file (a credential) but audit.endpoint is cleartext and not on \
                             loopback, so it would cross the network readable; expected an https:// endpoint"
                                .into(),
                        );
                    }
                }
                (None, Some(_)) if credential => {
                    return refuse(format!(
                        "is a credential ({name}) written in the configuration; expected `file:` naming a \
                         file that holds it (a mounted Kubernetes Secret)"
                    ));
                }
                (None, Some(value)) => {
                    if let Some(problem) = collector_header_value_problem(value.as_bytes()) {
                        return refuse(format!("value {problem}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the endpoint's host is a loopback address or `localhost`: a collector in
    /// the pod.
    fn endpoint_is_loopback(&self) -> bool {
        self.endpoint_host()
            .is_some_and(discreet_consent::is_loopback_host)
    }
}

/// Why `name` cannot be a configured metadata key, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    let expected = "expected a lowercase gRPC metadata name such as authorization or x-scope-orgid";
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
    {
        return Some(format!(
            "is not a metadata name (lowercase letters, digits, - _ . only); {expected}"
        ));
    }
    if name.ends_with("-bin") {
        return Some(format!(
            "is binary metadata (-bin), which is not supported; {expected}"
        ));
    }
    if name.starts_with("grpc-") || RESERVED.contains(&name) {
        return Some(format!("is set by HTTP/2 or gRPC itself; {expected}"));
    }
    None
}
