//! `discreet audit` as an auditor runs it, on the span fixtures of discreet-audit
//! (crates/discreet-audit/tests/fixtures/README.md says what they hold).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../discreet-audit/tests/fixtures"
);

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// The key the fixtures' pseudonyms were made with, written as the dev keyring writes it.
/// One file per test: tests run in parallel.
fn key_file(test: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("discreet-audit-{}-{test}.key", std::process::id()));
    std::fs::write(&path, format!("{}\n", "11".repeat(32))).unwrap();
    path
}

fn discreet(args: &[&str], stdin: Option<&[u8]>) -> (Output, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_discreet"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

#[test]
fn report_tells_one_person_who_accessed_their_data() {
    let key = key_file("report");
    let (out, stdout, stderr) = discreet(
        &[
            "audit",
            &fixture("gateway.jsonl"),
            "report",
            "--id",
            "persona-eu",
            "--key-file",
            key.to_str().unwrap(),
            &fixture("continuation-first.jsonl"),
        ],
        None,
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("Who accessed the data of persona-eu\n"),
        "{stdout}"
    );
    for sentence in [
        "Your data was asked for 6 times by 4 services, between 2026-11-21 08:00 UTC and 2026-11-23 10:00 UTC.",
        "  - shop/recommender read your data 3 times for personalize (legal basis: consent), between 2026-11-21 08:00 UTC and 2026-11-23 10:00 UTC. It was released these kinds of data, where your record held them: user.behavior.browsing_history, user.behavior.purchase_history, user.demographic.",
        "  - ads/mailer was refused your data once for marketing.communications.email (legal basis: consent), on 2026-11-22 11:00 UTC: you have not given consent for this purpose.",
        "but your record was left out: a rule about your data (such as your age or where you live) did not allow it.",
        "made with audit key 798dfc5d.",
    ] {
        assert!(
            stdout.contains(sentence),
            "missing {sentence:?} in\n{stdout}"
        );
    }
    // Nobody else's pseudonym, and no raw id but the one typed.
    assert!(
        !stdout.contains("02848a743df3077a20f12451396c5333"),
        "{stdout}"
    );
    assert!(!stdout.contains("persona-us"), "{stdout}");
    std::fs::remove_file(key).unwrap();
}

#[test]
fn report_as_csv_and_json_from_standard_input() {
    let key = key_file("stdin");
    let spans = std::fs::read(fixture("gateway.jsonl")).unwrap();
    let args = [
        "audit",
        "report",
        "--id",
        "persona-eu",
        "--key-file",
        key.to_str().unwrap(),
    ];
    let (out, csv, stderr) = discreet(&[&args[..], &["--format", "csv"]].concat(), Some(&spans));
    assert!(out.status.success(), "{stderr}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("refused,ads/mailer,marketing.communications.email,consent,1,")),
        "{csv}"
    );
    let (out, json, stderr) = discreet(
        &[&args[..], &["--format", "json", "-"]].concat(),
        Some(&spans),
    );
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["accesses"], 5);
    assert_eq!(v["subject"], "persona-eu");
    std::fs::remove_file(key).unwrap();
}

#[test]
fn accesses_filter_and_a_bad_line_is_named() {
    let (out, stdout, stderr) = discreet(
        &[
            "audit",
            "accesses",
            "--purpose",
            "personalize",
            "--since",
            "2026-11-22",
            "--format",
            "csv",
            &fixture("gateway.jsonl"),
        ],
        None,
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "header and two calls: {stdout}");
    let (out, _, stderr) = discreet(&["audit", "denials", &fixture("bad-line.jsonl")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("bad-line.jsonl:2: not JSON"), "{stderr}");
}
