//! Parsing: the accepted spellings, defaults, and errors that name file, line and column.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use discreet_config::{ConfigError, GatewayConfig, IdentityConfig, Limits, MethodKind, Upstream};

const FILE: &str = "config/discreet.yaml";

fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::from_yaml(Path::new(FILE), text)
}

fn error(text: &str) -> String {
    parse(text).expect_err("should be refused").to_string()
}

#[test]
fn minimal_takes_defaults() {
    let c = parse(common::MINIMAL).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
    assert_eq!(c.upstream, Upstream::Embedded { profiles: 5000 });
    assert!(c.schema.protos.is_empty() && c.schema.mapping.is_none());
    assert!(c.policy.watch);
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.tls, None);
    assert_eq!(
        c.identity,
        IdentityConfig::Static("shop/recommender".into())
    );
    assert_eq!(
        c.methods.get("/profile.v1.ProfileService/GetProfile"),
        Some(&MethodKind::Read)
    );
    // from_yaml does no file access and leaves paths as written.
    assert_eq!(c.policy.file, Path::new("policy.yaml"));
}

#[test]
fn limits_defaults_are_the_documented_ones() {
    let l = Limits::default();
    assert_eq!(l.max_message_bytes, 4 * 1024 * 1024);
    assert_eq!(l.max_concurrent_calls, 512);
    assert_eq!(l.default_timeout, Duration::from_secs(10));
    assert_eq!(l.max_timeout, Duration::from_secs(60));
    assert_eq!(l.max_batch_subjects, 1000);
    assert_eq!(l.max_consent_tokens, 1000);
    assert_eq!(l.max_header_list_bytes, 16 * 1024);
    assert_eq!(l.max_concurrent_streams, 256);
    assert_eq!(l.plan_cache_entries, 4096);
    assert_eq!(l.shutdown_grace, Duration::from_secs(30));
}

#[test]
fn partial_limits_keep_other_defaults() {
    let c = parse(&common::with(
        "limits: { default_timeout: 250ms, max_timeout: 5m }\n",
    ))
    .unwrap();
    assert_eq!(c.limits.default_timeout, Duration::from_millis(250));
    assert_eq!(c.limits.max_timeout, Duration::from_secs(300));
    assert_eq!(c.limits.max_concurrent_calls, 512);
}

#[test]
fn upstream_embedded_with_profiles() {
    let text = common::replacing("upstream:", "upstream: { embedded: { profiles: 200 } }");
    assert_eq!(
        parse(&text).unwrap().upstream,
        Upstream::Embedded { profiles: 200 }
    );
    let text = common::replacing("upstream:", "upstream: { embedded: {} }");
    assert_eq!(
        parse(&text).unwrap().upstream,
        Upstream::Embedded { profiles: 5000 }
    );
}

#[test]
fn upstream_remote() {
    let text = common::replacing(
        "upstream:",
        "upstream: { address: \"http://127.0.0.1:50061\", connect_timeout: 500ms }",
    );
    assert_eq!(
        parse(&text).unwrap().upstream,
        Upstream::Remote {
            address: "http://127.0.0.1:50061".into(),
            connect_timeout: Duration::from_millis(500),
        }
    );
    let text = common::replacing("upstream:", "upstream: { address: \"http://store:1\" }");
    assert!(matches!(
        parse(&text).unwrap().upstream,
        Upstream::Remote { connect_timeout, .. } if connect_timeout == Duration::from_secs(2)
    ));
}

#[test]
fn upstream_unknown_key_lists_accepted_keys() {
    let text = common::replacing("upstream:", "upstream: { adress: \"http://h:1\" }");
    let e = error(&text);
    assert!(e.starts_with("config/discreet.yaml:1:"), "{e}");
    assert!(e.contains("adress") && e.contains("address"), "{e}");
}

#[test]
fn upstream_embedded_and_address_together() {
    let text = common::replacing(
        "upstream:",
        "upstream: { embedded: {}, address: \"http://h:1\" }",
    );
    assert!(error(&text).contains("cannot be combined"));
}

#[test]
fn upstream_unknown_word() {
    let e = error(&common::replacing("upstream:", "upstream: remote"));
    assert!(e.starts_with("config/discreet.yaml:1:"), "{e}");
    assert!(e.contains("embedded"), "{e}");
}

#[test]
fn service_account_identity() {
    let text = common::replacing(
        "identity:",
        "identity: { service_account: { issuer: https://k8s, audience: discreet, keys: { file: j.json } } }",
    );
    let c = parse(&text).unwrap();
    let IdentityConfig::ServiceAccount(sa) = c.identity else {
        panic!("expected service_account");
    };
    assert_eq!(sa.issuer, "https://k8s");
}

#[test]
fn identity_with_both_keys_is_refused() {
    let text = common::replacing(
        "identity:",
        "identity: { static: a/b, service_account: { issuer: x, audience: y, keys: { file: j } } }",
    );
    let e = error(&text);
    assert!(e.starts_with("config/discreet.yaml:5:"), "{e}");
    assert!(
        e.contains("exactly one of `static`, `service_account`"),
        "{e}"
    );
}

#[test]
fn identity_with_no_key_is_refused() {
    let e = error(&common::replacing("identity:", "identity: {}"));
    assert!(
        e.contains("exactly one of `static`, `service_account`"),
        "{e}"
    );
}

#[test]
fn identity_unknown_key_lists_accepted_keys() {
    let e = error(&common::replacing("identity:", "identity: { statik: a/b }"));
    assert!(
        e.starts_with("config/discreet.yaml:5:13: unknown field `statik`, expected one of static, service_account"),
        "{e}"
    );
}

#[test]
fn unknown_top_level_field_names_line_and_column() {
    let e = error(&format!("listn: 127.0.0.1:50051\n{}", common::MINIMAL));
    assert!(
        e.starts_with("config/discreet.yaml:1:1: unknown field `listn`, expected one of"),
        "{e}"
    );
    assert!(e.contains("listen"), "{e}");
}

#[test]
fn unknown_nested_field_points_at_it() {
    let e = error(&common::with(
        "limits:\n  max_timeout: 5s\n  max_timout: 5s\n",
    ));
    assert!(
        e.starts_with("config/discreet.yaml:14:3: unknown field `max_timout`"),
        "{e}"
    );
}

#[test]
fn bad_duration_says_what_is_expected() {
    let e = error(&common::with("limits:\n  max_timeout: 5 parsecs\n"));
    assert!(e.starts_with("config/discreet.yaml:13:"), "{e}");
    assert!(e.contains("250ms"), "{e}");
}

#[test]
fn bad_method_kind() {
    let text = common::MINIMAL.replace("GetProfile: read", "GetProfile: reed");
    let e = error(&text);
    assert!(e.starts_with("config/discreet.yaml:4:"), "{e}");
    assert!(e.contains("read, write"), "{e}");
}

#[test]
fn missing_required_section() {
    let text = common::MINIMAL.replace("pseudonym: { secret_file: keys/pseudonym.key }\n", "");
    assert!(error(&text).contains("missing field `pseudonym`"));
}

#[test]
fn bad_listen_address() {
    let e = error(&common::with("listen: localhost\n"));
    assert!(e.starts_with("config/discreet.yaml:12:"), "{e}");
    assert!(e.contains("`localhost` is not a socket address"), "{e}");
}

#[test]
fn not_yaml() {
    let e = error("methods: [\n");
    assert!(e.starts_with("config/discreet.yaml:"), "{e}");
}

#[test]
fn validation_error_points_at_the_key() {
    let e = error(&common::with(
        "limits:\n  default_timeout: 2m\n  max_timeout: 1m\n",
    ));
    assert_eq!(
        e,
        "config/discreet.yaml:13:3: limits.default_timeout: 2m is longer than limits.max_timeout (1m), which caps every deadline"
    );
}

#[test]
fn validation_error_for_a_defaulted_key_points_at_its_section() {
    let e = parse(&common::with("limits:\n  max_timeout: 1s\n")).unwrap_err();
    assert_eq!(e.line(), Some(12));
    assert_eq!(e.field().as_deref(), Some("limits.default_timeout"));
}

#[test]
fn validation_error_for_a_method_points_at_it() {
    let text = common::MINIMAL.replace("GetProfile: read", "GetProfile: read\n  GetProfile: write");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line(), Some(5), "{e}");
    assert!(e.to_string().contains(r#"methods["GetProfile"]"#), "{e}");
}

#[test]
fn validation_error_inside_consent_points_at_it() {
    let text = common::MINIMAL.replace("issuer: https://consent.example.com", "issuer: \"\"");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line(), Some(7), "{e}");
    assert_eq!(e.field().as_deref(), Some("consent.issuer"));
}

#[test]
fn audit_is_required_and_its_mode_spelled_out() {
    let without = common::MINIMAL.replace(
        "audit: { endpoint: \"http://127.0.0.1:4317\", key_file: keys/audit.key }\n",
        "",
    );
    let err = GatewayConfig::from_yaml(Path::new("t.yaml"), &without).unwrap_err();
    assert!(err.to_string().contains("audit"), "{err}");
    let bad_mode =
        common::MINIMAL.replace("key_file: keys/audit.key }", "key_file: k, mode: lax }");
    let err = GatewayConfig::from_yaml(Path::new("t.yaml"), &bad_mode).unwrap_err();
    assert!(
        err.to_string().contains("t.yaml:"),
        "names the file and line: {err}"
    );
    let relaxed =
        common::MINIMAL.replace("key_file: keys/audit.key }", "key_file: k, mode: relaxed }");
    let c = GatewayConfig::from_yaml(Path::new("t.yaml"), &relaxed).unwrap();
    assert_eq!(c.audit.mode, discreet_config::AuditModeConfig::Relaxed);
    let metrics = common::with("metrics: { listen: 127.0.0.1:9464 }\n");
    let c = GatewayConfig::from_yaml(Path::new("t.yaml"), &metrics).unwrap();
    assert_eq!(c.metrics.unwrap().listen.port(), 9464);
}

#[test]
fn spiffe_identity_and_client_certificates_parse() {
    let text = common::replacing(
        "identity:",
        "identity: { spiffe: { trust_domain: cluster.local } }",
    ) + "tls: { cert_file: tls.crt, key_file: tls.key, client_ca_file: client-ca.crt }\n";
    let c = parse(&text).unwrap();
    assert_eq!(
        c.identity,
        IdentityConfig::Spiffe(discreet_config::SpiffeConfig {
            trust_domain: "cluster.local".into()
        })
    );
    assert_eq!(
        c.tls.unwrap().client_ca_file.as_deref(),
        Some(Path::new("client-ca.crt"))
    );
    let e = error(&common::replacing(
        "identity:",
        "identity: { spiffe: { trust_domain: cluster.local, domain: x } }",
    ));
    assert!(
        e.contains("unknown field `domain`") && e.contains("discreet.yaml:5:"),
        "{e}"
    );
}

#[test]
fn validation_error_for_an_audit_header_points_at_it() {
    let text = common::replacing(
        "audit:",
        "audit:\n  endpoint: http://10.0.0.7:4317\n  key_file: keys/audit.key\n  headers:\n    x-scope-orgid: { value: tenant-a }\n    authorization: { file: keys/collector-token }",
    );
    let e = parse(&text).unwrap_err();
    assert_eq!(e.line(), Some(16), "{e}");
    assert_eq!(e.field().as_deref(), Some("audit.headers.authorization"));
    // Relative header files are relative to the configuration file, as every path is.
    let text = text.replace("http://10.0.0.7", "https://otlp.example.com");
    let mut config = parse(&text).unwrap();
    config.resolve_paths(std::path::Path::new("config"));
    assert_eq!(
        config.audit.headers["authorization"].file.as_deref(),
        Some(std::path::Path::new("config/keys/collector-token"))
    );
}
