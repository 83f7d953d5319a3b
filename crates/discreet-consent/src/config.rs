//! Configuration (serde; YAML or JSON). Every field has a documented default; `validate`
//! refuses settings that would weaken verification or can never work.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::algorithm::SigningAlgorithm;
use crate::verify::TokenRules;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("consent configuration invalid: {0}")]
pub struct ConfigError(pub String);

fn bad(msg: &str) -> ConfigError {
    ConfigError(msg.to_owned())
}

/// The consent section of the gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {
    /// Required `iss` of consent tokens.
    pub issuer: String,
    /// `aud` that consent tokens must contain (this gateway's name).
    pub audience: String,
    /// Accepted algorithms. Default: RS256, PS256, ES256, EdDSA.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<SigningAlgorithm>,
    /// Allowed clock skew on `exp`, `nbf`, `iat`. Default `30s`.
    #[serde(default = "default_leeway", with = "duration")]
    pub leeway: Duration,
    /// Largest token accepted, in bytes. Default 8192.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// The issuer's JWKS.
    pub keys: KeySourceConfig,
    /// Revocation list; without it only signature and time are checked.
    #[serde(default)]
    pub revocation: Option<RevocationSourceConfig>,
    /// Verified-token cache.
    #[serde(default)]
    pub cache: CacheConfig,
}

/// Where the JWKS comes from and how it is kept fresh.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySourceConfig {
    /// A JWKS file (watched, and polled every `refresh_interval`). Exactly one of `file`, `url`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A JWKS URL (`https://…/jwks.json`). `http://` only to a loopback host, or with
    /// `allow_cleartext`: whoever can alter a cleartext answer can substitute keys and
    /// mint any token.
    #[serde(default)]
    pub url: Option<String>,
    /// Accept an `http://` URL to a host off loopback. Only where something else
    /// encrypts and authenticates the connection (a service mesh's mutual TLS). Default
    /// false.
    #[serde(default)]
    pub allow_cleartext: bool,
    /// CA certificates (PEM) that issue an `https://` source's certificate, when a private
    /// CA does: the cluster's for the API server's keys
    /// (`/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`). Read at start (refused
    /// if unreadable or empty) and again when it changes, so a rotated cluster CA needs no
    /// restart; while it cannot be used, reads of the source fail. Default: the Mozilla
    /// roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A file holding a bearer token, sent as `Authorization: Bearer <token>` with every
    /// request and read again for each (the kubelet renews a projected service-account
    /// token in place): the API server's `/openid/v1/jwks` asks for one. Only where the
    /// request cannot be read on the way: `https://`, loopback, or `allow_cleartext`.
    /// Default none.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Reload interval. Default `5m`.
    #[serde(default = "default_key_refresh", with = "duration")]
    pub refresh_interval: Duration,
    /// Minimum time between reloads triggered by an unknown `kid`. Default `10s`.
    #[serde(default = "default_unknown_kid", with = "duration")]
    pub unknown_kid_min_interval: Duration,
    /// How long the last good key set is used while the source fails. Default `1h`.
    #[serde(default = "default_key_staleness", with = "duration")]
    pub max_staleness: Duration,
    /// HTTP request timeout. Default `5s`.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

/// Where the revocation list comes from and how it is kept fresh.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationSourceConfig {
    /// A revocation file (watched, plus polled every `poll_interval`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A revocation URL (polled every `refresh_interval`). `http://` only to a loopback
    /// host, or with `allow_cleartext`: whoever can alter a cleartext answer can serve an
    /// empty list and bring withdrawn consent back.
    #[serde(default)]
    pub url: Option<String>,
    /// Accept an `http://` URL to a host off loopback. Only where something else
    /// encrypts and authenticates the connection (a service mesh's mutual TLS). Default
    /// false.
    #[serde(default)]
    pub allow_cleartext: bool,
    /// CA certificates (PEM) that issue an `https://` source's certificate, when a private
    /// CA does: the cluster's for the API server's keys
    /// (`/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`). Read at start (refused
    /// if unreadable or empty) and again when it changes, so a rotated cluster CA needs no
    /// restart; while it cannot be used, reads of the source fail. Default: the Mozilla
    /// roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A file holding a bearer token, sent as `Authorization: Bearer <token>` with every
    /// request and read again for each (the kubelet renews a projected service-account
    /// token in place): the API server's `/openid/v1/jwks` asks for one. Only where the
    /// request cannot be read on the way: `https://`, loopback, or `allow_cleartext`.
    /// Default none.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Poll interval for a file, as a fallback to the watcher. Default `250ms`.
    #[serde(default = "default_file_poll", with = "duration")]
    pub poll_interval: Duration,
    /// Watch a file source for changes (inotify and the like) besides polling. Default
    /// true; turn off where watch events are unreliable or limited.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Poll interval for a URL. Default `1s`.
    #[serde(default = "default_url_poll", with = "duration")]
    pub refresh_interval: Duration,
    /// How long the last good list is used while the source fails; after that every
    /// consent check fails closed. Default `60s`.
    #[serde(default = "default_revocation_staleness", with = "duration")]
    pub max_staleness: Duration,
    /// HTTP request timeout. Default `2s`.
    #[serde(default = "default_short_timeout", with = "duration")]
    pub timeout: Duration,
}

/// Cache sizes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Verified tokens kept (by SHA-256 of the token). Default 100 000; 0 disables.
    pub verified_tokens: u64,
    /// Upper bound on how long a verified token stays cached (never beyond its `exp`).
    /// Default `10m`.
    #[serde(with = "duration")]
    pub max_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            verified_tokens: 100_000,
            max_ttl: Duration::from_secs(600),
        }
    }
}

fn default_algorithms() -> Vec<SigningAlgorithm> {
    use SigningAlgorithm::*;
    vec![RS256, PS256, ES256, EdDSA]
}
fn default_true() -> bool {
    true
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_max_token_bytes() -> usize {
    8 * 1024
}
fn default_key_refresh() -> Duration {
    Duration::from_secs(300)
}
fn default_unknown_kid() -> Duration {
    Duration::from_secs(10)
}
fn default_key_staleness() -> Duration {
    Duration::from_secs(3600)
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_short_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_file_poll() -> Duration {
    Duration::from_millis(250)
}
fn default_url_poll() -> Duration {
    Duration::from_secs(1)
}
fn default_revocation_staleness() -> Duration {
    Duration::from_secs(60)
}

impl KeySourceConfig {
    /// A file key source with default timings.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        KeySourceConfig {
            file: Some(path.into()),
            url: None,
            allow_cleartext: false,
            ca_file: None,
            bearer_token_file: None,
            refresh_interval: default_key_refresh(),
            unknown_kid_min_interval: default_unknown_kid(),
            max_staleness: default_key_staleness(),
            timeout: default_timeout(),
        }
    }
}

impl RevocationSourceConfig {
    /// A file revocation source with default timings.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        RevocationSourceConfig {
            file: Some(path.into()),
            url: None,
            allow_cleartext: false,
            ca_file: None,
            bearer_token_file: None,
            poll_interval: default_file_poll(),
            watch: true,
            refresh_interval: default_url_poll(),
            max_staleness: default_revocation_staleness(),
            timeout: default_short_timeout(),
        }
    }
}

impl ConsentConfig {
    /// A configuration with defaults for everything but issuer, audience and keys.
    pub fn new(issuer: &str, audience: &str, keys: KeySourceConfig) -> Self {
        ConsentConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: default_algorithms(),
            leeway: default_leeway(),
            max_token_bytes: default_max_token_bytes(),
            keys,
            revocation: None,
            cache: CacheConfig::default(),
        }
    }

    /// Refuses configurations that are unsafe or cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(bad("issuer is empty"));
        }
        if self.audience.trim().is_empty() {
            return Err(bad("audience is empty"));
        }
        if self.algorithms.is_empty() {
            return Err(bad("algorithms is empty"));
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(bad("leeway above 5m weakens expiry; use at most 300s"));
        }
        if !(256..=64 * 1024).contains(&self.max_token_bytes) {
            return Err(bad("max_token_bytes must be between 256 and 65536"));
        }
        let k = &self.keys;
        if let Some(problem) = k.location_problem() {
            return Err(ConfigError(format!("keys: {problem}")));
        }
        if k.refresh_interval.is_zero()
            || k.unknown_kid_min_interval.is_zero()
            || k.timeout.is_zero()
        {
            return Err(bad("keys: intervals and timeout must be positive"));
        }
        if k.max_staleness < k.refresh_interval {
            return Err(bad("keys: max_staleness must be at least refresh_interval"));
        }
        if let Some(r) = &self.revocation {
            if let Some(problem) = r.location_problem() {
                return Err(ConfigError(format!("revocation: {problem}")));
            }
            if r.poll_interval.is_zero() || r.refresh_interval.is_zero() || r.timeout.is_zero() {
                return Err(bad("revocation: intervals and timeout must be positive"));
            }
            let interval = if r.file.is_some() {
                r.poll_interval
            } else {
                r.refresh_interval
            };
            if r.max_staleness < interval {
                return Err(bad(
                    "revocation: max_staleness must be at least the poll interval",
                ));
            }
        }
        if self.cache.max_ttl.is_zero() && self.cache.verified_tokens > 0 {
            return Err(bad(
                "cache: max_ttl must be positive when the cache is enabled",
            ));
        }
        Ok(())
    }

    /// The verification rules this configuration sets.
    pub fn token_rules(&self) -> TokenRules {
        TokenRules {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            algorithms: self.algorithms.clone(),
            leeway_secs: self.leeway.as_secs(),
            max_token_bytes: self.max_token_bytes,
        }
    }
}

/// Where a document comes from, as either source configuration states it: what the
/// location checks and the service's source builder read, once for both kinds.
pub(crate) struct Location<'a> {
    pub(crate) file: &'a Option<PathBuf>,
    pub(crate) url: &'a Option<String>,
    pub(crate) allow_cleartext: bool,
    pub(crate) ca_file: &'a Option<PathBuf>,
    pub(crate) bearer_token_file: &'a Option<PathBuf>,
    /// Per request, for a URL.
    pub(crate) timeout: Duration,
}

impl KeySourceConfig {
    /// Why this source cannot be used, if it cannot (see [`source_url_problem`]).
    #[must_use]
    pub fn location_problem(&self) -> Option<String> {
        self.location().problem()
    }

    pub(crate) fn location(&self) -> Location<'_> {
        Location {
            file: &self.file,
            url: &self.url,
            allow_cleartext: self.allow_cleartext,
            ca_file: &self.ca_file,
            bearer_token_file: &self.bearer_token_file,
            timeout: self.timeout,
        }
    }
}

impl RevocationSourceConfig {
    /// Why this source cannot be used, if it cannot (see [`source_url_problem`]).
    #[must_use]
    pub fn location_problem(&self) -> Option<String> {
        self.location().problem()
    }

    pub(crate) fn location(&self) -> Location<'_> {
        Location {
            file: &self.file,
            url: &self.url,
            allow_cleartext: self.allow_cleartext,
            ca_file: &self.ca_file,
            bearer_token_file: &self.bearer_token_file,
            timeout: self.timeout,
        }
    }
}

impl Location<'_> {
    fn problem(&self) -> Option<String> {
        let url = match (self.file, self.url) {
            (Some(_), None) => {
                return (self.ca_file.is_some() || self.bearer_token_file.is_some())
                    .then(|| "ca_file and bearer_token_file go with url, not file".into());
            }
            (None, Some(url)) => url,
            _ => return Some("set exactly one of file, url".into()),
        };
        if let Some(problem) = source_url_problem(url, self.allow_cleartext) {
            return Some(format!("url {problem}"));
        }
        for (field, path) in [
            ("ca_file", self.ca_file),
            ("bearer_token_file", self.bearer_token_file),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return Some(format!("{field} is empty; expected a file path"));
            }
        }
        let https = url.starts_with("https://");
        if self.ca_file.is_some() && !https {
            return Some("ca_file is set but url is not https://".into());
        }
        // source_url_problem has already refused cleartext off loopback without
        // allow_cleartext, so a token never crosses the network readable unless a mesh
        // is said to protect it.
        None
    }
}

/// Why `url` cannot be a key or revocation source, if it cannot: it must be `https://`,
/// or `http://` to a loopback host, or `http://` anywhere with `allow_cleartext`. The
/// message never quotes the URL (a query may carry a credential).
#[must_use]
pub fn source_url_problem(url: &str, allow_cleartext: bool) -> Option<String> {
    let cleartext = url.starts_with("http://");
    if !cleartext && !url.starts_with("https://") {
        return Some("must be https:// (or http:// to a loopback host)".into());
    }
    let host = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_owned));
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Some("is not a URL with a host; expected https://host/path".into());
    };
    if cleartext && !allow_cleartext && !is_loopback_host(&host) {
        return Some(
            "is http:// to a host off loopback: anyone on the path could change the answer \
             (substitute keys, or empty the revocation list); expected https://, or \
             allow_cleartext: true where a service mesh encrypts and authenticates the connection"
                .into(),
        );
    }
    None
}

/// Whether `host` (as a URL names it, IPv6 in brackets or not) is `localhost` or a
/// loopback address: traffic to it never leaves the pod.
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Durations as `250ms`, `30s`, `5m`, `1h` or `1d`; a bare number is refused.
pub(crate) mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::Deserializer;
    use serde::de::{Error, Unexpected, Visitor};

    /// What an error says a duration must look like.
    pub const EXPECTED: &str = "a duration with its unit: 250ms, 2s, 5m, 1h or 1d (a bare number is refused: write 30s, not 30)";

    /// Parses a whole number and its unit, `250ms`, `30s`, `5m`, `1h` or `1d`; `None` for
    /// anything else, including values that overflow and a bare number (`timeout: 500`
    /// could mean milliseconds as well as seconds; taking it for either would be a silent
    /// surprise). The one parser of the configuration's durations: `discreet-config` and
    /// the development tools use it too.
    pub fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().ok()?;
        Some(match unit.trim() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        })
    }

    /// `#[serde(with = "duration")]`: a string [`parse`] accepts; a YAML number (no
    /// unit) is refused.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_u64<E: Error>(self, n: u64) -> Result<Duration, E> {
            Err(E::invalid_value(Unexpected::Unsigned(n), &self))
        }

        fn visit_i64<E: Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::invalid_value(Unexpected::Signed(n), &self))
        }

        fn visit_f64<E: Error>(self, n: f64) -> Result<Duration, E> {
            Err(E::invalid_value(Unexpected::Float(n), &self))
        }

        fn visit_str<E: Error>(self, text: &str) -> Result<Duration, E> {
            parse(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn base() -> ConsentConfig {
        ConsentConfig::new("https://cmp", "discreet", KeySourceConfig::file("/k.json"))
    }

    #[test]
    fn cleartext_sources_only_on_loopback_or_when_allowed() {
        for url in [
            "https://consent.example/jwks.json",
            "http://127.0.0.1:8080/jwks.json",
            "http://[::1]:8080/jwks.json",
            "http://localhost/jwks.json",
        ] {
            assert_eq!(source_url_problem(url, false), None, "{url}");
        }
        for url in [
            "http://consent.example/jwks.json",
            "http://127.0.0.1.example/jwks.json",
            "http://10.0.0.7/jwks.json",
            "http://localhost.example/jwks.json",
        ] {
            let problem = source_url_problem(url, false).unwrap();
            assert!(problem.contains("allow_cleartext"), "{url}: {problem}");
            assert!(!problem.contains("example"), "the URL is quoted: {problem}");
            assert_eq!(source_url_problem(url, true), None, "{url}");
        }
        assert!(source_url_problem("ftp://x/jwks.json", true).is_some());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(duration::parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration::parse("5m"), Some(Duration::from_secs(300)));
        assert_eq!(duration::parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(duration::parse("2d"), Some(Duration::from_secs(172_800)));
        // A bare number has no unit: refused rather than guessed.
        assert_eq!(duration::parse("7"), None);
        assert_eq!(duration::parse("99999999999999999999d"), None);
        assert_eq!(duration::parse("5 parsecs"), None);
        assert_eq!(duration::parse(""), None);
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(base().validate(), Ok(()));
    }

    #[test]
    fn rejections() {
        let cases: Vec<fn(&mut ConsentConfig)> = vec![
            |c| c.issuer = " ".into(),
            |c| c.audience = String::new(),
            |c| c.algorithms.clear(),
            |c| c.leeway = Duration::from_secs(3600),
            |c| c.max_token_bytes = 10,
            |c| c.keys.url = Some("https://x".into()),
            |c| c.keys.file = None,
            |c| c.keys.max_staleness = Duration::from_secs(1),
            |c| c.keys.unknown_kid_min_interval = Duration::ZERO,
            |c| {
                let mut r = RevocationSourceConfig::file("/r");
                r.url = Some("ftp://x".into());
                c.revocation = Some(r);
            },
            |c| {
                let mut r = RevocationSourceConfig::file("/r");
                r.max_staleness = Duration::from_millis(1);
                c.revocation = Some(r);
            },
            |c| {
                c.keys.file = None;
                c.keys.url = Some("http://consent.example/jwks.json".into());
            },
            |c| {
                let mut r = RevocationSourceConfig::file("/r");
                r.file = None;
                r.url = Some("http://10.0.0.7/revocations.json".into());
                c.revocation = Some(r);
            },
            |c| {
                c.keys.file = None;
                c.keys.url = Some("https:///jwks.json".into());
            },
            |c| c.keys.ca_file = Some("/ca.pem".into()),
            |c| c.keys.bearer_token_file = Some("/token".into()),
            |c| {
                c.keys.file = None;
                c.keys.url = Some("http://127.0.0.1/jwks.json".into());
                c.keys.ca_file = Some("/ca.pem".into());
            },
            |c| {
                c.keys.file = None;
                c.keys.url = Some("https://k8s/openid/v1/jwks".into());
                c.keys.bearer_token_file = Some(PathBuf::new());
            },
        ];
        for (i, mutate) in cases.into_iter().enumerate() {
            let mut c = base();
            mutate(&mut c);
            assert!(c.validate().is_err(), "case {i} should be refused");
        }
    }
}
