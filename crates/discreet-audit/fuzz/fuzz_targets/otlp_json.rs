//! Arbitrary bytes as an OTLP JSON span file (untrusted: anyone who can write to the
//! collector's output can write anything), through the reader, the trail, every query and
//! every output format.
//!
//! Invariants: nothing panics; an error names the input and a line that exists; reading the
//! same spans twice gives the same accesses; JSON output is valid JSON. Run: see ../README.md.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use discreet_audit::{
    AuditTrail, Filter, Format, ShadowSummary, SpanReader, SubjectReport, accesses_table,
    denials_table, report_table, report_text, shadow_table, shadow_text, subject_table,
};
use libfuzzer_sys::fuzz_target;

/// Small, so that the size limit is reached too.
const MAX_DOCUMENT_BYTES: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let mut spans = Vec::new();
    let reader = SpanReader::with_max_document_bytes(MAX_DOCUMENT_BYTES);
    if let Err(e) = reader.read("fuzz.jsonl", data, &mut spans) {
        let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
        assert!(
            e.line >= 1 && e.line <= lines,
            "line {} of {lines}: {e}",
            e.line
        );
        assert!(e.to_string().starts_with("fuzz.jsonl:"), "{e}");
    }
    let trail = AuditTrail::from_spans(spans.clone());
    let twice = AuditTrail::from_spans(spans.iter().cloned().chain(spans.iter().cloned()));
    assert_eq!(
        trail.accesses, twice.accesses,
        "duplicates must not change the trail"
    );

    let all = trail.accesses(&Filter::default());
    // A pseudonym from the input, when there is one, so the subject paths are reached.
    let pseudonym = all
        .iter()
        .flat_map(|a| a.subject_pseudonyms())
        .next()
        .unwrap_or("00000000000000000000000000000000")
        .to_owned();
    let report = SubjectReport::build(
        &trail,
        "fuzz",
        &pseudonym,
        Some("00000000"),
        &Filter::default(),
    );
    let _ = report_text(&report);
    let shadow = ShadowSummary::build(&trail, &Filter::default());
    let _ = shadow_text(&shadow);
    let tables = [
        accesses_table(&all),
        denials_table(&trail.denials(&Filter::default())),
        subject_table(&trail.subject(&pseudonym, &Filter::default())),
        report_table(&report),
        shadow_table(&shadow),
    ];
    for table in &tables {
        let _ = table.render(Format::Table);
        let _ = table.render(Format::Csv);
        let json = table.render(Format::Json);
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
            panic!("JSON output does not parse: {e}: {json}");
        }
    }
});
