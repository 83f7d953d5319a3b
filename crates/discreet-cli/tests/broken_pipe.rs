//! `discreet … | head -1`: a reader that leaves early ends the command quietly (status 141,
//! as a shell shows a program SIGPIPE ended), never with a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

/// Runs `discreet args` with stdout a pipe whose reader is already closed, so its first
/// write fails whatever the timing; returns the exit code and stderr.
fn into_a_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_discreet"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn println_into_a_closed_pipe_ends_quietly() {
    let (code, stderr) = into_a_closed_pipe(&[
        "policy",
        "explain",
        "config/policy.yaml",
        "--purpose",
        "personalize",
    ]);
    assert_eq!(code, Some(141), "{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}

#[test]
fn an_answer_written_into_a_closed_pipe_ends_quietly() {
    // `discreet audit` writes its answer itself and returns the write error.
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../discreet-audit/tests/fixtures/gateway.jsonl"
    );
    let (code, stderr) = into_a_closed_pipe(&["audit", "accesses", fixtures]);
    assert_eq!(code, Some(141), "{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
}
