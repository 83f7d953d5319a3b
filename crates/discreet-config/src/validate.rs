//! `GatewayConfig::validate`: refuses configurations that parse but cannot work or would
//! weaken enforcement. Pure (no file access), so it also checks configurations built in code.

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::Duration;

use crate::duration::show;
use crate::{ConfigError, GatewayConfig, IdentityConfig, Limits, Upstream};

type Checked = Result<(), ConfigError>;

fn refuse(path: &[&str], message: impl Into<String>) -> Checked {
    Err(ConfigError::invalid(path, message))
}

impl GatewayConfig {
    /// Checks every section; the first problem found is returned, naming its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_methods()?;
        check_upstream(&self.upstream)?;
        self.check_files()?;
        check_identity(&self.identity)?;
        if let IdentityConfig::Spiffe(_) = &self.identity
            && self.tls.as_ref().is_none_or(|t| t.client_ca_file.is_none())
        {
            return refuse(
                &["identity", "spiffe"],
                "needs tls.client_ca_file: the caller's SPIFFE ID is read from the client certificate it presents, verified against those CAs",
            );
        }
        check_consent(&self.consent)?;
        check_limits(&self.limits)?;
        self.audit.check(self.limits.max_concurrent_calls)
    }

    fn check_methods(&self) -> Checked {
        if self.methods.is_empty() {
            return refuse(
                &["methods"],
                "at least one method is required (methods not listed are denied)",
            );
        }
        for name in self.methods.keys() {
            if !is_method_name(name) {
                return refuse(
                    &["methods", name],
                    format!(
                        "`{name}` is not a full gRPC method name; expected /package.Service/Method"
                    ),
                );
            }
        }
        Ok(())
    }

    fn check_files(&self) -> Checked {
        let schema = &self.schema;
        if schema.protos.is_empty() && !schema.includes.is_empty() {
            return refuse(
                &["schema", "includes"],
                "set only together with schema.protos (without protos the embedded schema is used)",
            );
        }
        if schema.protos.is_empty() && schema.mapping.is_some() {
            return refuse(
                &["schema", "mapping"],
                "set only together with schema.protos (without protos the embedded schema is used)",
            );
        }
        non_empty(&["policy", "file"], &self.policy.file)?;
        non_empty(&["pseudonym", "secret_file"], &self.pseudonym.secret_file)?;
        if let Some(tls) = &self.tls {
            non_empty(&["tls", "cert_file"], &tls.cert_file)?;
            non_empty(&["tls", "key_file"], &tls.key_file)?;
            if let Some(ca) = &tls.client_ca_file {
                non_empty(&["tls", "client_ca_file"], ca)?;
            }
        }
        Ok(())
    }
}

fn non_empty(path: &[&str], file: &Path) -> Checked {
    if file.as_os_str().is_empty() {
        return refuse(path, "is empty; expected a file path");
    }
    Ok(())
}

/// `/package.Service/Method`: a dotted service name with a package, then a method.
fn is_method_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('/') else {
        return false;
    };
    let Some((service, method)) = rest.split_once('/') else {
        return false;
    };
    let parts: Vec<&str> = service.split('.').collect();
    parts.len() >= 2 && parts.iter().all(|p| is_identifier(p)) && is_identifier(method)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_upstream(upstream: &Upstream) -> Checked {
    match upstream {
        Upstream::Embedded { profiles } => {
            if !(1..=1_000_000).contains(profiles) {
                return refuse(
                    &["upstream", "embedded", "profiles"],
                    format!("{profiles} is out of range; expected 1 to 1000000"),
                );
            }
        }
        Upstream::Remote {
            address,
            connect_timeout,
        } => {
            if let Err(why) = check_address(address) {
                return refuse(&["upstream", "address"], why);
            }
            if connect_timeout.is_zero() || *connect_timeout > Duration::from_secs(60) {
                return refuse(
                    &["upstream", "connect_timeout"],
                    format!(
                        "{} is out of range; expected 1ms to 60s",
                        show(*connect_timeout)
                    ),
                );
            }
        }
    }
    Ok(())
}

/// `http://host:port` (h2c), no path; the proxy appends the gRPC path itself.
fn check_address(address: &str) -> Result<(), String> {
    if address.starts_with("https://") {
        return Err(format!(
            "`{address}`: https is not supported; the upstream is reached over h2c, expected http://host:port"
        ));
    }
    let bad = || format!("`{address}` is not an address; expected http://host:port");
    let rest = address.strip_prefix("http://").ok_or_else(bad)?;
    let (host_ok, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (host, port) = v6.split_once("]:").ok_or_else(bad)?;
            (host.parse::<Ipv6Addr>().is_ok(), port)
        }
        None => {
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let host_ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
            (host_ok, port)
        }
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

fn check_identity(identity: &IdentityConfig) -> Checked {
    match identity {
        IdentityConfig::Static(caller) => {
            let shaped = caller
                .split_once('/')
                .is_some_and(|(ns, name)| is_kubernetes_name(ns) && is_kubernetes_name(name));
            if !shaped {
                return refuse(
                    &["identity", "static"],
                    format!(
                        "`{caller}` is not a caller name; expected namespace/name (e.g. shop/recommender)"
                    ),
                );
            }
        }
        IdentityConfig::Spiffe(spiffe) => {
            let domain = &spiffe.trust_domain;
            // The SPIFFE grammar: lowercase letters, digits, `.`, `-`, `_`.
            let valid = !domain.is_empty()
                && domain.len() <= 255
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !valid {
                return refuse(
                    &["identity", "spiffe", "trust_domain"],
                    format!(
                        "`{domain}` is not a SPIFFE trust domain; expected lowercase letters, digits, `.`, `-` or `_` (e.g. cluster.local)"
                    ),
                );
            }
        }
        IdentityConfig::ServiceAccount(sa) => {
            let at = |field| ["identity", "service_account", field];
            if sa.issuer.trim().is_empty() {
                return refuse(
                    &at("issuer"),
                    "is empty; expected the API server's issuer URL",
                );
            }
            if sa.audience.trim().is_empty() {
                return refuse(
                    &at("audience"),
                    "is empty; expected this gateway's audience",
                );
            }
            if sa.algorithms.is_empty() {
                return refuse(
                    &at("algorithms"),
                    "is empty; expected at least one algorithm",
                );
            }
            if sa.leeway > Duration::from_secs(300) {
                return refuse(
                    &at("leeway"),
                    "above 5m weakens expiry; expected at most 300s",
                );
            }
            if let Some(problem) = sa.keys.location_problem() {
                return refuse(&at("keys"), problem);
            }
        }
    }
    Ok(())
}

/// A Kubernetes namespace or service-account name (a DNS-1123 subdomain: lowercase
/// letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253).
pub fn is_kubernetes_name(s: &str) -> bool {
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.len() <= 253
        && s.starts_with(alphanumeric)
        && s.ends_with(alphanumeric)
        && s.chars().all(|c| alphanumeric(c) || c == '-' || c == '.')
}

/// Runs the consent crate's own checks, and turns its message's leading field name into a
/// path so the error can point at a line.
fn check_consent(consent: &discreet_consent::ConsentConfig) -> Checked {
    const FIELDS: &[&str] = &[
        "issuer",
        "audience",
        "algorithms",
        "leeway",
        "max_token_bytes",
        "keys",
        "revocation",
        "cache",
    ];
    let Err(discreet_consent::ConfigError(message)) = consent.validate() else {
        return Ok(());
    };
    let split = message.find([':', ' ']).unwrap_or(message.len());
    let (first, rest) = message.split_at(split);
    match FIELDS.iter().find(|f| **f == first) {
        Some(field) => refuse(
            &["consent", field],
            rest.trim_start_matches(':').trim_start(),
        ),
        None => refuse(&["consent"], message.as_str()),
    }
}

fn check_limits(limits: &Limits) -> Checked {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    let at = |field| ["limits", field];
    let count = |field, value: u64, max: u64| -> Checked {
        if (1..=max).contains(&value) {
            Ok(())
        } else {
            refuse(
                &at(field),
                format!("{value} is out of range; expected 1 to {max}"),
            )
        }
    };
    let bytes = limits.max_message_bytes;
    if !(KIB..=64 * MIB).contains(&bytes) {
        return refuse(
            &at("max_message_bytes"),
            format!("{bytes} is out of range; expected 1024 (1 KiB) to 67108864 (64 MiB)"),
        );
    }
    count(
        "max_concurrent_calls",
        limits.max_concurrent_calls as u64,
        100_000,
    )?;
    let adaptive = &limits.adaptive_concurrency;
    let at_adaptive = |field| ["limits", "adaptive_concurrency", field];
    if adaptive.min_calls == 0 || adaptive.min_calls > 100_000 {
        return refuse(
            &at_adaptive("min_calls"),
            format!(
                "{} is out of range; expected 1 to 100000",
                adaptive.min_calls
            ),
        );
    }
    if adaptive.latency_buffer_percent > 1000 {
        return refuse(
            &at_adaptive("latency_buffer_percent"),
            format!(
                "{} is out of range; expected 0 to 1000",
                adaptive.latency_buffer_percent
            ),
        );
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&adaptive.probe_interval) {
        return refuse(
            &at_adaptive("probe_interval"),
            format!(
                "{} is out of range; expected 1s to 1h",
                show(adaptive.probe_interval)
            ),
        );
    }
    let duration = |field, value: Duration, max: Duration| -> Checked {
        if value.is_zero() || value > max {
            refuse(
                &at(field),
                format!(
                    "{} is out of range; expected 1ms to {}",
                    show(value),
                    show(max)
                ),
            )
        } else {
            Ok(())
        }
    };
    duration(
        "max_timeout",
        limits.max_timeout,
        Duration::from_secs(24 * 3600),
    )?;
    if limits.default_timeout > limits.max_timeout {
        return refuse(
            &at("default_timeout"),
            format!(
                "{} is longer than limits.max_timeout ({}), which caps every deadline",
                show(limits.default_timeout),
                show(limits.max_timeout)
            ),
        );
    }
    duration(
        "default_timeout",
        limits.default_timeout,
        limits.max_timeout,
    )?;
    count(
        "max_batch_subjects",
        limits.max_batch_subjects as u64,
        100_000,
    )?;
    count(
        "max_consent_tokens",
        limits.max_consent_tokens as u64,
        100_000,
    )?;
    let header = limits.max_header_list_bytes;
    if !(1024..=1024 * 1024).contains(&header) {
        return refuse(
            &at("max_header_list_bytes"),
            format!("{header} is out of range; expected 1024 (1 KiB) to 1048576 (1 MiB)"),
        );
    }
    count(
        "max_concurrent_streams",
        u64::from(limits.max_concurrent_streams),
        10_000,
    )?;
    count("plan_cache_entries", limits.plan_cache_entries, 10_000_000)?;
    if limits.worker_threads > 256 {
        return refuse(
            &at("worker_threads"),
            format!(
                "{} is out of range; expected 0 (one per CPU) to 256",
                limits.worker_threads
            ),
        );
    }
    count("max_connections", limits.max_connections as u64, 1_000_000)?;
    let idle = limits.connection_idle_timeout;
    if !idle.is_zero() && !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&idle)
    {
        return refuse(
            &at("connection_idle_timeout"),
            format!(
                "{} is out of range; expected 0s (never) or 1s to 24h",
                show(idle)
            ),
        );
    }
    if limits.max_calls_per_caller > limits.max_concurrent_calls {
        return refuse(
            &at("max_calls_per_caller"),
            format!(
                "{} is out of range; expected 0 (no per-caller limit) or 1 to limits.max_concurrent_calls ({})",
                limits.max_calls_per_caller, limits.max_concurrent_calls
            ),
        );
    }
    let age = limits.max_connection_age;
    if !age.is_zero()
        && !(Duration::from_secs(10)..=Duration::from_secs(30 * 24 * 3600)).contains(&age)
    {
        return refuse(
            &at("max_connection_age"),
            format!(
                "{} is out of range; expected 0s (never) or 10s to 720h",
                show(age)
            ),
        );
    }
    if !age.is_zero() && limits.shutdown_grace < Duration::from_secs(1) {
        return refuse(
            &at("max_connection_age"),
            "needs limits.shutdown_grace of at least 1s: an aged connection's calls get that long to finish, and with 0s every call open on it would be cut at once",
        );
    }
    if limits.shutdown_grace > Duration::from_secs(3600) {
        return refuse(
            &at("shutdown_grace"),
            format!(
                "{} is out of range; expected 0s to 3600s",
                show(limits.shutdown_grace)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names() {
        assert!(is_method_name("/profile.v1.ProfileService/GetProfile"));
        assert!(is_method_name("/a.B/C"));
        for bad in [
            "", "/", "a.B/C", "/B/C", "/a.B/", "/a.B/C/D", "/a..B/C", "/a.B/C D",
        ] {
            assert!(!is_method_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn addresses() {
        for good in [
            "http://127.0.0.1:50061",
            "http://store:80",
            "http://[::1]:50061",
        ] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            "127.0.0.1:50061",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:50061/",
            "http://:1",
            "http://[::1]",
            "http://u@h:1",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        assert!(check_address("https://h:1").is_err_and(|m| m.contains("h2c")));
    }
}
