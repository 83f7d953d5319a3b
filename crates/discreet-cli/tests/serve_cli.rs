//! `discreet serve --check-config` as an operator runs it before a rollout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn discreet(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_discreet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shipped configuration and policy in a scratch directory, with development keys.
fn scratch_config(label: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("discreet-serve-cli-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
    for file in ["discreet.yaml", "policy.yaml"] {
        std::fs::copy(shipped.join(file), dir.join(file)).unwrap();
    }
    let keys = dir.join("keys");
    let (ok, stderr) = discreet(&["keys", "dev", "--dir", keys.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    dir
}

/// A key or revocation file the configuration names but that is missing (a typo, a
/// Secret not mounted) or holds no key set fails the check, naming the file: serving it
/// would refuse every call that needs it while the gateway looked healthy.
#[test]
fn check_config_fails_on_a_key_or_revocation_file_that_does_not_load() {
    let dir = scratch_config("keys");
    let config = dir.join("discreet.yaml");
    let config_arg = config.to_str().unwrap();
    let (ok, stderr) = discreet(&["serve", "--config", config_arg, "--check-config"]);
    assert!(ok, "the shipped configuration with dev keys: {stderr}");

    let shipped = std::fs::read_to_string(&config).unwrap();
    for (from, to, names) in [
        (
            "file: keys/consent-jwks.json",
            "file: keys/consent-jwk.json",
            "consent-jwk.json",
        ),
        (
            "file: keys/revocations.json",
            "file: keys/revocation.json",
            "revocation.json",
        ),
        (
            "file: keys/caller-jwks.json",
            "file: keys/caller_jwks.json",
            "caller_jwks.json",
        ),
    ] {
        assert!(shipped.contains(from), "{from}");
        std::fs::write(&config, shipped.replace(from, to)).unwrap();
        let (ok, stderr) = discreet(&["serve", "--config", config_arg, "--check-config"]);
        assert!(!ok, "{to}: passed the check");
        assert!(
            stderr.contains(names) && stderr.contains("not found"),
            "{to}: {stderr}"
        );
        assert!(!stderr.contains(": ok"), "{to}: {stderr}");
    }

    // There, but not a key set.
    std::fs::write(&config, &shipped).unwrap();
    std::fs::write(dir.join("keys/consent-jwks.json"), "{\"keys\": 42}").unwrap();
    let (ok, stderr) = discreet(&["serve", "--config", config_arg, "--check-config"]);
    assert!(!ok);
    assert!(
        stderr.contains("consent-jwks.json: the document does not parse"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A method the schema does not have is named with the configuration file and the
/// methods the service does have.
#[test]
fn check_config_names_the_file_and_the_methods_there_are() {
    let dir = scratch_config("method");
    let config = dir.join("discreet.yaml");
    let shipped = std::fs::read_to_string(&config).unwrap();
    let typo = shipped.replacen(
        "/profile.v1.ProfileService/GetProfile: read",
        "/profile.v1.ProfileService/GetProfil: read",
        1,
    );
    assert_ne!(typo, shipped);
    std::fs::write(&config, typo).unwrap();
    let (ok, stderr) = discreet(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--check-config",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{}: method /profile.v1.ProfileService/GetProfil",
            config.display()
        )) && stderr.contains("it has: GetProfile, BatchGetProfiles"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
