//! Loading the fixtures (see fixtures/README.md for what each holds).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::BufReader;
use std::path::PathBuf;

use discreet_audit::{AuditKey, AuditTrail, Span, SpanReader, time};

pub(crate) const EU: &str = "46a3118a662238307241743f1371ba1b";
pub(crate) const US: &str = "02848a743df3077a20f12451396c5333";
pub(crate) const MINOR: &str = "d2ab5ba9af85d92d96e3da830d5853f7";
pub(crate) const CA: &str = "7dc16e6b93de7e6181a51815684bfeba";
pub(crate) const KEY_ID: &str = "798dfc5d";

/// The key the fixtures' pseudonyms were made with, as a key file holds it.
pub(crate) fn key() -> AuditKey {
    AuditKey::from_file_contents(format!("{}\n", "11".repeat(32)).as_bytes()).unwrap()
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub(crate) fn spans(names: &[&str]) -> Vec<Span> {
    let mut out = Vec::new();
    for name in names {
        let file = std::fs::File::open(fixture(name)).unwrap();
        SpanReader::default()
            .read(name, BufReader::new(file), &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    out
}

pub(crate) fn trail(names: &[&str]) -> AuditTrail {
    AuditTrail::from_spans(spans(names))
}

/// Reads `text` as the input named `x.jsonl`.
pub(crate) fn read_str(text: &str) -> Result<Vec<Span>, String> {
    let mut out = Vec::new();
    SpanReader::default()
        .read("x.jsonl", text.as_bytes(), &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn at(t: &str) -> u64 {
    time::parse_time(t, time::Bound::Since).unwrap()
}
