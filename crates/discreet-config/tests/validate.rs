//! One test per rejection in `GatewayConfig::validate`, each checking the refused field is
//! named.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use discreet_config::{
    CollectorHeaderConfig, CollectorTlsConfig, GatewayConfig, IdentityConfig, SpiffeConfig,
    TlsConfig, Upstream,
};
use discreet_consent::{CallerConfig, KeySourceConfig, RevocationSourceConfig, SigningAlgorithm};

fn base() -> GatewayConfig {
    GatewayConfig::from_yaml(Path::new("t.yaml"), common::MINIMAL).unwrap()
}

/// Applies `mutate` to a valid configuration and checks it is refused for `field`.
fn refused(field: &str, mutate: impl FnOnce(&mut GatewayConfig)) {
    let mut config = base();
    mutate(&mut config);
    let err = config.validate().expect_err("should be refused");
    assert_eq!(err.field().as_deref(), Some(field), "{err}");
    assert!(err.to_string().contains(field), "{err}");
}

fn remote(address: &str) -> Upstream {
    Upstream::Remote {
        address: address.into(),
        connect_timeout: Duration::from_secs(2),
    }
}

fn service_account() -> CallerConfig {
    CallerConfig {
        issuer: "https://k8s".into(),
        audience: "discreet".into(),
        algorithms: vec![SigningAlgorithm::RS256],
        leeway: Duration::from_secs(30),
        keys: KeySourceConfig::file("jwks.json"),
    }
}

#[test]
fn base_is_valid() {
    assert!(base().validate().is_ok());
}

#[test]
fn empty_methods() {
    refused("methods", |c| c.methods.clear());
}

#[test]
fn malformed_method_name() {
    refused(r#"methods["GetProfile"]"#, |c| {
        c.methods
            .insert("GetProfile".into(), discreet_config::MethodKind::Read);
    });
}

#[test]
fn method_name_without_package() {
    refused(r#"methods["/ProfileService/GetProfile"]"#, |c| {
        c.methods.insert(
            "/ProfileService/GetProfile".into(),
            discreet_config::MethodKind::Write,
        );
    });
}

#[test]
fn embedded_profiles_zero() {
    refused("upstream.embedded.profiles", |c| {
        c.upstream = Upstream::Embedded { profiles: 0 };
    });
}

#[test]
fn embedded_profiles_absurd() {
    refused("upstream.embedded.profiles", |c| {
        c.upstream = Upstream::Embedded {
            profiles: 50_000_000,
        };
    });
}

#[test]
fn upstream_address_without_scheme() {
    refused("upstream.address", |c| {
        c.upstream = remote("127.0.0.1:50061")
    });
}

#[test]
fn upstream_address_https() {
    refused("upstream.address", |c| {
        c.upstream = remote("https://store:443")
    });
}

#[test]
fn upstream_address_with_path() {
    refused("upstream.address", |c| {
        c.upstream = remote("http://store:50061/api");
    });
}

#[test]
fn upstream_connect_timeout_zero() {
    refused("upstream.connect_timeout", |c| {
        c.upstream = Upstream::Remote {
            address: "http://store:50061".into(),
            connect_timeout: Duration::ZERO,
        };
    });
}

#[test]
fn schema_includes_without_protos() {
    refused("schema.includes", |c| {
        c.schema.includes = vec![PathBuf::from("protos")];
    });
}

#[test]
fn schema_mapping_without_protos() {
    refused("schema.mapping", |c| {
        c.schema.mapping = Some(PathBuf::from("mapping.yaml"));
    });
}

#[test]
fn policy_file_empty() {
    refused("policy.file", |c| c.policy.file = PathBuf::new());
}

#[test]
fn pseudonym_secret_file_empty() {
    refused("pseudonym.secret_file", |c| {
        c.pseudonym.secret_file = PathBuf::new();
    });
}

#[test]
fn tls_cert_file_empty() {
    refused("tls.cert_file", |c| {
        c.tls = Some(TlsConfig {
            cert_file: PathBuf::new(),
            key_file: "tls.key".into(),
            client_ca_file: None,
        });
    });
}

#[test]
fn tls_key_file_empty() {
    refused("tls.key_file", |c| {
        c.tls = Some(TlsConfig {
            cert_file: "tls.crt".into(),
            key_file: PathBuf::new(),
            client_ca_file: None,
        });
    });
}

#[test]
fn static_identity_empty() {
    refused("identity.static", |c| {
        c.identity = IdentityConfig::Static(String::new());
    });
}

#[test]
fn static_identity_not_namespace_slash_name() {
    refused("identity.static", |c| {
        c.identity = IdentityConfig::Static("recommender".into());
    });
}

#[test]
fn static_identity_with_extra_segment() {
    refused("identity.static", |c| {
        c.identity = IdentityConfig::Static("shop/recommender/x".into());
    });
}

#[test]
fn service_account_issuer_empty() {
    refused("identity.service_account.issuer", |c| {
        let mut sa = service_account();
        sa.issuer = " ".into();
        c.identity = IdentityConfig::ServiceAccount(sa);
    });
}

#[test]
fn service_account_audience_empty() {
    refused("identity.service_account.audience", |c| {
        let mut sa = service_account();
        sa.audience = String::new();
        c.identity = IdentityConfig::ServiceAccount(sa);
    });
}

#[test]
fn service_account_algorithms_empty() {
    refused("identity.service_account.algorithms", |c| {
        let mut sa = service_account();
        sa.algorithms.clear();
        c.identity = IdentityConfig::ServiceAccount(sa);
    });
}

#[test]
fn service_account_leeway_too_long() {
    refused("identity.service_account.leeway", |c| {
        let mut sa = service_account();
        sa.leeway = Duration::from_secs(3600);
        c.identity = IdentityConfig::ServiceAccount(sa);
    });
}

#[test]
fn service_account_keys_both_file_and_url() {
    refused("identity.service_account.keys", |c| {
        let mut sa = service_account();
        sa.keys.url = Some("https://k8s/openid/v1/jwks".into());
        c.identity = IdentityConfig::ServiceAccount(sa);
    });
}

#[test]
fn consent_issuer_empty() {
    refused("consent.issuer", |c| c.consent.issuer = String::new());
}

#[test]
fn consent_keys_without_source() {
    refused("consent.keys", |c| {
        c.consent.keys = KeySourceConfig::file("k.json");
        c.consent.keys.file = None;
    });
}

#[test]
fn consent_revocation_staleness_below_poll() {
    refused("consent.revocation", |c| {
        let mut r = RevocationSourceConfig::file("r.json");
        r.max_staleness = Duration::from_millis(1);
        c.consent.revocation = Some(r);
    });
}

#[test]
fn max_message_bytes_too_small() {
    refused("limits.max_message_bytes", |c| {
        c.limits.max_message_bytes = 512
    });
}

#[test]
fn max_message_bytes_too_large() {
    refused("limits.max_message_bytes", |c| {
        c.limits.max_message_bytes = 65 * 1024 * 1024;
    });
}

#[test]
fn max_concurrent_calls_zero() {
    refused("limits.max_concurrent_calls", |c| {
        c.limits.max_concurrent_calls = 0;
    });
}

#[test]
fn adaptive_min_calls_zero() {
    refused("limits.adaptive_concurrency.min_calls", |c| {
        c.limits.adaptive_concurrency.min_calls = 0;
    });
}

#[test]
fn adaptive_min_calls_above_the_ceiling_is_accepted() {
    // The ceiling wins: a small max_concurrent_calls needs no adaptive_concurrency edit.
    let mut c = base();
    c.limits.max_concurrent_calls = 4;
    c.limits.adaptive_concurrency.min_calls = 8;
    c.validate().unwrap();
}

#[test]
fn adaptive_latency_buffer_too_large() {
    refused("limits.adaptive_concurrency.latency_buffer_percent", |c| {
        c.limits.adaptive_concurrency.latency_buffer_percent = 1001;
    });
}

#[test]
fn adaptive_probe_interval_too_short() {
    refused("limits.adaptive_concurrency.probe_interval", |c| {
        c.limits.adaptive_concurrency.probe_interval = Duration::from_millis(10);
    });
}

#[test]
fn max_timeout_zero() {
    refused("limits.max_timeout", |c| {
        c.limits.max_timeout = Duration::ZERO
    });
}

#[test]
fn max_timeout_absurd() {
    refused("limits.max_timeout", |c| {
        c.limits.max_timeout = Duration::from_secs(7 * 24 * 3600);
    });
}

#[test]
fn default_timeout_zero() {
    refused("limits.default_timeout", |c| {
        c.limits.default_timeout = Duration::ZERO;
    });
}

#[test]
fn default_timeout_above_max_timeout() {
    refused("limits.default_timeout", |c| {
        c.limits.default_timeout = Duration::from_secs(120);
    });
}

#[test]
fn max_batch_subjects_zero() {
    refused("limits.max_batch_subjects", |c| {
        c.limits.max_batch_subjects = 0;
    });
}

#[test]
fn max_consent_tokens_zero() {
    refused("limits.max_consent_tokens", |c| {
        c.limits.max_consent_tokens = 0;
    });
}

#[test]
fn max_header_list_bytes_too_small() {
    refused("limits.max_header_list_bytes", |c| {
        c.limits.max_header_list_bytes = 100;
    });
}

#[test]
fn max_concurrent_streams_zero() {
    refused("limits.max_concurrent_streams", |c| {
        c.limits.max_concurrent_streams = 0;
    });
}

#[test]
fn plan_cache_entries_zero() {
    refused("limits.plan_cache_entries", |c| {
        c.limits.plan_cache_entries = 0;
    });
}

#[test]
fn worker_threads_absurd() {
    refused("limits.worker_threads", |c| {
        c.limits.worker_threads = 257;
    });
}

#[test]
fn max_connections_zero_or_absurd() {
    refused("limits.max_connections", |c| c.limits.max_connections = 0);
    refused("limits.max_connections", |c| {
        c.limits.max_connections = 1_000_001;
    });
}

#[test]
fn connection_idle_timeout_too_short_or_long() {
    refused("limits.connection_idle_timeout", |c| {
        c.limits.connection_idle_timeout = Duration::from_millis(500);
    });
    refused("limits.connection_idle_timeout", |c| {
        c.limits.connection_idle_timeout = Duration::from_secs(25 * 3600);
    });
    // `0s` means never, and is accepted.
    let mut config = base();
    config.limits.connection_idle_timeout = Duration::ZERO;
    config.validate().unwrap();
}

#[test]
fn shutdown_grace_absurd() {
    refused("limits.shutdown_grace", |c| {
        c.limits.shutdown_grace = Duration::from_secs(2 * 3600);
    });
}

#[test]
fn audit_endpoint_without_scheme() {
    refused("audit.endpoint", |c| {
        c.audit.endpoint = "127.0.0.1:4317".into()
    });
}

#[test]
fn audit_endpoint_https_is_accepted_with_or_without_a_tls_section() {
    let mut c = base();
    c.audit.endpoint = "https://otel-collector.observability.svc:4317".into();
    c.validate().unwrap();
    assert_eq!(
        c.audit.endpoint_host(),
        Some("otel-collector.observability.svc")
    );
    c.audit.tls = Some(CollectorTlsConfig {
        ca_file: Some("ca.pem".into()),
        server_name: Some("10.0.0.7".into()),
        cert_file: Some("client.pem".into()),
        key_file: Some("client-key.pem".into()),
    });
    c.validate().unwrap();
    c.audit.endpoint = "https://[fd00::7]:4317".into();
    c.validate().unwrap();
    assert_eq!(c.audit.endpoint_host(), Some("fd00::7"));
}

fn collector_tls(mutate: impl FnOnce(&mut CollectorTlsConfig)) -> impl FnOnce(&mut GatewayConfig) {
    |c| {
        c.audit.endpoint = "https://collector.example:4317".into();
        let mut tls = CollectorTlsConfig::default();
        mutate(&mut tls);
        c.audit.tls = Some(tls);
    }
}

#[test]
fn audit_tls_on_a_cleartext_endpoint_would_go_unused() {
    refused("audit.tls", |c| {
        c.audit.tls = Some(CollectorTlsConfig::default());
    });
}

#[test]
fn audit_tls_client_certificate_without_its_key() {
    refused(
        "audit.tls.key_file",
        collector_tls(|t| t.cert_file = Some("client.pem".into())),
    );
    refused(
        "audit.tls.cert_file",
        collector_tls(|t| t.key_file = Some("client-key.pem".into())),
    );
}

#[test]
fn audit_tls_empty_paths() {
    refused(
        "audit.tls.ca_file",
        collector_tls(|t| t.ca_file = Some(PathBuf::new())),
    );
}

#[test]
fn audit_tls_server_name_not_a_name() {
    refused(
        "audit.tls.server_name",
        collector_tls(|t| t.server_name = Some("collector/4317".into())),
    );
    refused(
        "audit.tls.server_name",
        collector_tls(|t| t.server_name = Some("-bad.example".into())),
    );
}

#[test]
fn audit_endpoint_with_credentials() {
    refused("audit.endpoint", |c| {
        c.audit.endpoint = "https://user:secret@collector.example:4317".into()
    });
    let mut c = base();
    c.audit.endpoint = "https://user:secret@collector.example:4317".into();
    assert_eq!(c.audit.endpoint_host(), Some("collector.example"));
}

#[test]
fn audit_endpoint_with_a_path_that_would_be_dropped() {
    for endpoint in [
        "https://otlp.example.com/otlp",
        "https://otlp.example.com:4317?api_key=secret",
        "http://127.0.0.1:4317#frag",
    ] {
        let mut c = base();
        c.audit.endpoint = endpoint.into();
        let err = c.validate().expect_err(endpoint);
        assert_eq!(err.field().as_deref(), Some("audit.endpoint"), "{err}");
        assert!(
            !err.to_string().contains("secret"),
            "the query is echoed: {err}"
        );
    }
    let mut c = base();
    c.audit.endpoint = "http://127.0.0.1:4317/".into();
    c.validate().unwrap();
}

#[test]
fn audit_endpoint_host_a_certificate_cannot_name() {
    // No tls section: the host is the name verified, so the endpoint is what is refused.
    refused("audit.endpoint", |c| {
        c.audit.endpoint = "https://collector!:4317".into()
    });
}

#[test]
fn audit_endpoint_empty_host() {
    refused("audit.endpoint", |c| c.audit.endpoint = "http://".into());
}

#[test]
fn audit_key_file_empty() {
    refused("audit.key_file", |c| c.audit.key_file = PathBuf::new());
}

#[test]
fn audit_queue_smaller_than_concurrency() {
    // Every call in flight holds a queue place: a smaller queue would refuse calls
    // under the concurrency limit with the collector healthy.
    refused("audit.queue_capacity", |c| {
        c.limits.max_concurrent_calls = 512;
        c.audit.queue_capacity = 100;
    });
}

#[test]
fn audit_queue_bytes_out_of_range() {
    refused("audit.queue_bytes", |c| c.audit.queue_bytes = 1000);
    refused("audit.queue_bytes", |c| c.audit.queue_bytes = 5 << 30);
}

#[test]
fn audit_max_batch_zero() {
    refused("audit.max_batch", |c| c.audit.max_batch = 0);
}

#[test]
fn audit_max_subject_events_zero() {
    refused("audit.max_subject_events", |c| {
        c.audit.max_subject_events = 0
    });
}

#[test]
fn audit_export_timeout_zero() {
    refused("audit.export_timeout", |c| {
        c.audit.export_timeout = Duration::ZERO
    });
}

#[test]
fn audit_batch_delay_too_long() {
    refused("audit.batch_delay", |c| {
        c.audit.batch_delay = Duration::from_secs(11)
    });
}

#[test]
fn audit_shadow_policy_empty() {
    refused("audit.shadow_policy", |c| {
        c.audit.shadow_policy = Some(PathBuf::new())
    });
}

#[test]
fn audit_section_defaults() {
    let c = base();
    assert_eq!(c.audit.mode, discreet_config::AuditModeConfig::Strict);
    assert_eq!(c.audit.queue_capacity, 8192);
    assert_eq!(c.audit.queue_bytes, 64 << 20);
    assert_eq!(c.audit.max_subject_events, 1000);
    assert!(c.metrics.is_none());
}

fn spiffe(trust_domain: &str) -> IdentityConfig {
    IdentityConfig::Spiffe(SpiffeConfig {
        trust_domain: trust_domain.into(),
    })
}

fn mutual_tls(client_ca_file: Option<&str>) -> Option<TlsConfig> {
    Some(TlsConfig {
        cert_file: "tls.crt".into(),
        key_file: "tls.key".into(),
        client_ca_file: client_ca_file.map(PathBuf::from),
    })
}

#[test]
fn spiffe_identity_needs_client_certificates() {
    refused("identity.spiffe", |c| c.identity = spiffe("cluster.local"));
    refused("identity.spiffe", |c| {
        c.identity = spiffe("cluster.local");
        c.tls = mutual_tls(None);
    });
    let mut ok = base();
    ok.identity = spiffe("cluster.local");
    ok.tls = mutual_tls(Some("client-ca.crt"));
    ok.validate().unwrap();
}

#[test]
fn spiffe_trust_domain_follows_the_spiffe_grammar() {
    for bad in [
        "",
        "Cluster.local",
        "cluster.local/ns",
        "spiffe://cluster.local",
    ] {
        refused("identity.spiffe.trust_domain", |c| {
            c.identity = spiffe(bad);
            c.tls = mutual_tls(Some("client-ca.crt"));
        });
    }
}

#[test]
fn tls_client_ca_file_empty() {
    refused("tls.client_ca_file", |c| c.tls = mutual_tls(Some("")));
}

#[test]
fn static_identity_names_start_and_end_alphanumeric() {
    for bad in ["-shop/recommender", "shop/recommender.", "../recommender"] {
        refused("identity.static", |c| {
            c.identity = IdentityConfig::Static(bad.into())
        });
    }
}

#[test]
fn max_connection_age_too_short_or_long() {
    refused("limits.max_connection_age", |c| {
        c.limits.max_connection_age = Duration::from_secs(5);
    });
    refused("limits.max_connection_age", |c| {
        c.limits.max_connection_age = Duration::from_secs(31 * 24 * 3600);
    });
    refused("limits.max_connection_age", |c| {
        c.limits.max_connection_age = Duration::from_secs(1800);
        c.limits.shutdown_grace = Duration::ZERO;
    });
    let mut config = base();
    config.limits.max_connection_age = Duration::from_secs(1800);
    config.validate().unwrap();
}

#[test]
fn max_calls_per_caller_at_most_the_concurrency_limit() {
    refused("limits.max_calls_per_caller", |c| {
        c.limits.max_calls_per_caller = c.limits.max_concurrent_calls + 1;
    });
    let mut config = base();
    config.limits.max_calls_per_caller = config.limits.max_concurrent_calls;
    config.validate().unwrap();
}

fn header(file: Option<&str>, value: Option<&str>) -> CollectorHeaderConfig {
    CollectorHeaderConfig {
        file: file.map(PathBuf::from),
        value: value.map(str::to_owned),
    }
}

fn with_header(
    name: &str,
    h: CollectorHeaderConfig,
    endpoint: &str,
) -> impl FnOnce(&mut GatewayConfig) {
    let (name, endpoint) = (name.to_owned(), endpoint.to_owned());
    move |c| {
        c.audit.endpoint = endpoint;
        c.audit.headers.insert(name, h);
    }
}

#[test]
fn audit_headers_accepted() {
    let mut c = base();
    c.audit.endpoint = "https://otlp.example.com:4317".into();
    c.audit
        .headers
        .insert("authorization".into(), header(Some("token"), None));
    c.audit
        .headers
        .insert("x-scope-orgid".into(), header(None, Some("tenant-a")));
    c.validate().unwrap();
    // A credential to a collector in the pod may go in cleartext: it never leaves the host.
    for endpoint in [
        "http://127.0.0.1:4317",
        "http://localhost:4317",
        "http://[::1]:4317",
    ] {
        c.audit.endpoint = endpoint.into();
        c.validate().unwrap();
    }
}

#[test]
fn audit_header_names_that_cannot_be_sent() {
    for name in [
        "Authorization",
        "x api key",
        "",
        "grpc-timeout",
        "te",
        "content-type",
        "trace-bin",
        ":authority",
    ] {
        // From a file, so that the credential rule cannot be why it is refused.
        let mut c = base();
        with_header(name, header(Some("value"), None), "https://c.example:4317")(&mut c);
        let err = c.validate().expect_err(name);
        assert!(
            err.field().is_some_and(|f| f.starts_with("audit.headers")),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains("metadata name") || err.to_string().contains("set by HTTP/2"),
            "{name}: refused for another reason: {err}"
        );
    }
}

#[test]
fn audit_header_needs_exactly_one_of_file_and_value() {
    refused(
        "audit.headers[\"x-scope-orgid\"]",
        with_header(
            "x-scope-orgid",
            header(None, None),
            "https://c.example:4317",
        ),
    );
    refused(
        "audit.headers[\"x-scope-orgid\"]",
        with_header(
            "x-scope-orgid",
            header(Some("f"), Some("v")),
            "https://c.example:4317",
        ),
    );
    refused(
        "audit.headers[\"x-scope-orgid\"]",
        with_header(
            "x-scope-orgid",
            header(Some(""), None),
            "https://c.example:4317",
        ),
    );
}

#[test]
fn audit_header_credential_written_inline_is_refused_without_echoing_it() {
    for name in [
        "authorization",
        "x-api-key",
        "dd-api-key",
        "x-auth-token",
        "x-secret",
        "x-honeycomb-team",
        "uptrace-dsn",
    ] {
        let mut c = base();
        with_header(
            name,
            header(None, Some("Bearer s3cr3t")),
            "https://c.example:4317",
        )(&mut c);
        let err = c.validate().expect_err(name);
        assert!(err.to_string().contains("file"), "{err}");
        assert!(
            !err.to_string().contains("s3cr3t"),
            "the value is echoed: {err}"
        );
        assert!(
            !format!("{:?}", c.audit).contains("s3cr3t"),
            "Debug shows the value"
        );
    }
}

#[test]
fn audit_header_credential_over_cleartext_beyond_the_pod_is_refused() {
    // Hosts that only look like loopback.
    for endpoint in [
        "http://127.0.0.1.evil.example:4317",
        "http://localhost.example:4317",
        "http://[::ffff:127.0.0.1]:4317",
        "http://0.0.0.0:4317",
    ] {
        let mut c = base();
        with_header("authorization", header(Some("token"), None), endpoint)(&mut c);
        assert!(c.validate().is_err(), "{endpoint} taken for loopback");
    }
    refused(
        "audit.headers.authorization",
        with_header(
            "authorization",
            header(Some("token"), None),
            "http://10.0.0.7:4317",
        ),
    );
    refused(
        "audit.headers.authorization",
        with_header(
            "authorization",
            header(Some("token"), None),
            "http://otel-agent.observability:4317",
        ),
    );
}

#[test]
fn audit_header_inline_values_that_cannot_be_sent() {
    for value in ["", " padded", "line\nbreak", "caf\u{e9}"] {
        let mut c = base();
        with_header(
            "x-scope-orgid",
            header(None, Some(value)),
            "https://c.example:4317",
        )(&mut c);
        let err = c.validate().expect_err(value);
        assert_eq!(
            err.field().as_deref(),
            Some("audit.headers[\"x-scope-orgid\"]"),
            "{err}"
        );
    }
    let long = "a".repeat(discreet_config::MAX_COLLECTOR_HEADER_BYTES + 1);
    refused(
        "audit.headers[\"x-scope-orgid\"]",
        with_header(
            "x-scope-orgid",
            header(None, Some(&long)),
            "https://c.example:4317",
        ),
    );
}

#[test]
fn audit_headers_at_most_32() {
    refused("audit.headers", |c| {
        for i in 0..=discreet_config::MAX_COLLECTOR_HEADERS {
            c.audit
                .headers
                .insert(format!("x-h{i}"), header(None, Some("v")));
        }
    });
}

/// Keys or a revocation list fetched over cleartext from off the pod could be swapped by
/// anyone on the path: refused unless the operator says a mesh protects the connection.
#[test]
fn key_and_revocation_urls_in_cleartext_off_loopback() {
    refused("identity.service_account.keys", |c| {
        let mut sa = service_account();
        sa.keys.file = None;
        sa.keys.url = Some("http://kubernetes.default.svc/openid/v1/jwks".into());
        c.identity = IdentityConfig::ServiceAccount(sa);
    });
    refused("consent.keys", |c| {
        c.consent.keys.file = None;
        c.consent.keys.url = Some("http://consent.example/jwks.json".into());
    });
    refused("consent.revocation", |c| {
        let mut r = RevocationSourceConfig::file("r.json");
        r.file = None;
        r.url = Some("http://consent.example/revocations.json".into());
        c.consent.revocation = Some(r);
    });
    // On loopback, or with the mesh's word for it, accepted.
    let mut c = base();
    c.consent.keys.file = None;
    c.consent.keys.url = Some("http://127.0.0.1:8080/jwks.json".into());
    c.validate().unwrap();
    c.consent.keys.url = Some("http://consent.example/jwks.json".into());
    c.consent.keys.allow_cleartext = true;
    c.validate().unwrap();
}

/// The API server's keys straight from it: its CA and the pod's own token.
#[test]
fn service_account_keys_from_the_api_server() {
    let mut c = base();
    let mut sa = service_account();
    sa.keys.file = None;
    sa.keys.url = Some("https://kubernetes.default.svc/openid/v1/jwks".into());
    sa.keys.ca_file = Some("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt".into());
    sa.keys.bearer_token_file = Some("/var/run/secrets/kubernetes.io/serviceaccount/token".into());
    c.identity = IdentityConfig::ServiceAccount(sa.clone());
    c.validate().unwrap();
    // A CA bundle or a token with a file source would go unused: refused.
    refused("identity.service_account.keys", |c| {
        let mut sa = service_account();
        sa.keys.ca_file = Some("ca.crt".into());
        c.identity = IdentityConfig::ServiceAccount(sa);
    });
    refused("consent.revocation", |c| {
        let mut r = RevocationSourceConfig::file("r.json");
        r.bearer_token_file = Some("token".into());
        c.consent.revocation = Some(r);
    });
}
