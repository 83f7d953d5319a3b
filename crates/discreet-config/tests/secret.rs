//! `load_pseudonym_secret`: hex or raw, trimmed, at least 32 bytes, never echoed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use discreet_config::{ConfigError, load_pseudonym_secret};

/// A file in the temp directory, unique to this test process and `name`.
fn write(name: &str, contents: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "discreet-config-secret-{}-{name}",
        std::process::id()
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn hex_is_decoded_and_trimmed() {
    let hex = "ab".repeat(32);
    let path = write("hex", format!("  {hex}\n").as_bytes());
    assert_eq!(load_pseudonym_secret(&path).unwrap(), vec![0xab; 32]);
}

#[test]
fn raw_bytes_are_used_as_they_are() {
    let raw = "correct horse battery staple, and then some more";
    let path = write("raw", format!("{raw}\n").as_bytes());
    assert_eq!(load_pseudonym_secret(&path).unwrap(), raw.as_bytes());
}

#[test]
fn short_secret_is_refused_without_echoing_it() {
    let path = write("short", b"hunter2-is-not-a-secret\n");
    let err = load_pseudonym_secret(&path).unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, ConfigError::Secret { .. }));
    assert!(shown.contains("at least 32"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn short_hex_counts_decoded_bytes() {
    // 40 hex digits are 20 bytes: too short, although the text has 40 characters.
    let path = write("short-hex", "cd".repeat(20).as_bytes());
    let shown = load_pseudonym_secret(&path).unwrap_err().to_string();
    assert!(shown.contains("20 bytes"), "{shown}");
    assert!(!shown.contains("cdcd"), "{shown}");
}

#[test]
fn empty_file_is_refused() {
    let path = write("empty", b"\n");
    assert!(load_pseudonym_secret(&path).is_err());
}

#[test]
fn missing_file_names_the_file() {
    let path = std::env::temp_dir().join("discreet-config-no-such-secret");
    let shown = load_pseudonym_secret(&path).unwrap_err().to_string();
    assert!(shown.contains("discreet-config-no-such-secret"), "{shown}");
}
