//! The documented configuration in `config/discreet.yaml` loads, and its relative paths
//! resolve against its directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use discreet_config::{GatewayConfig, IdentityConfig, Limits, MethodKind, Upstream};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

fn load() -> GatewayConfig {
    GatewayConfig::load(&config_dir().join("discreet.yaml")).unwrap()
}

#[test]
fn reference_config_loads() {
    let c = load();
    assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
    assert_eq!(c.upstream, Upstream::Embedded { profiles: 5000 });
    assert!(c.schema.protos.is_empty());
    assert!(c.policy.watch);
    assert_eq!(c.methods.len(), 4);
    assert_eq!(
        c.methods.get("/profile.v1.ProfileService/UpdateProfile"),
        Some(&MethodKind::Write)
    );
    assert_eq!(c.consent.issuer, "https://consent.example.com");
    assert_eq!(c.consent.audience, "discreet");
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.tls, None);
}

#[test]
fn reference_paths_resolve_against_the_config_directory() {
    let c = load();
    let dir = config_dir();
    assert_eq!(c.policy.file, dir.join("policy.yaml"));
    assert!(c.policy.file.is_file(), "{}", c.policy.file.display());
    assert_eq!(c.pseudonym.secret_file, dir.join("keys/pseudonym.key"));
    assert_eq!(
        c.consent.keys.file,
        Some(dir.join("keys/consent-jwks.json"))
    );
    let revocation = c.consent.revocation.as_ref().unwrap();
    assert_eq!(revocation.file, Some(dir.join("keys/revocations.json")));
    let IdentityConfig::ServiceAccount(sa) = &c.identity else {
        panic!("the reference config uses service-account identity");
    };
    assert_eq!(sa.issuer, "https://kubernetes.default.svc.cluster.local");
    assert_eq!(sa.audience, "discreet");
    assert_eq!(sa.keys.file, Some(dir.join("keys/caller-jwks.json")));
}

#[test]
fn absolute_paths_are_kept() {
    let mut c = load();
    c.policy.file = PathBuf::from("/etc/discreet/policy.yaml");
    c.resolve_paths(Path::new("/elsewhere"));
    assert_eq!(c.policy.file, Path::new("/etc/discreet/policy.yaml"));
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let e = GatewayConfig::load(Path::new("no/such/discreet.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no/such/discreet.yaml: cannot read"),
        "{e}"
    );
}

#[test]
fn collector_tls_paths_resolve_against_the_config_directory() {
    let mut c = load();
    c.audit.tls = Some(discreet_config::CollectorTlsConfig {
        ca_file: Some("collector-ca.pem".into()),
        server_name: None,
        cert_file: Some("keys/client.pem".into()),
        key_file: Some("/etc/discreet/keys/client-key.pem".into()),
    });
    c.resolve_paths(Path::new("/elsewhere"));
    let tls = c.audit.tls.unwrap();
    assert_eq!(
        tls.ca_file.unwrap(),
        Path::new("/elsewhere/collector-ca.pem")
    );
    assert_eq!(
        tls.cert_file.unwrap(),
        Path::new("/elsewhere/keys/client.pem")
    );
    assert_eq!(
        tls.key_file.unwrap(),
        Path::new("/etc/discreet/keys/client-key.pem")
    );
}
