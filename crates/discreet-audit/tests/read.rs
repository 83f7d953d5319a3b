//! Reading OTLP JSON into accesses: encodings, continuation spans, duplicates, errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use discreet_audit::{AuditTrail, ReadErrorKind, SpanReader};
use support::{CA, EU, MINOR, US, read_str, spans, trail};

fn subjects(a: &discreet_audit::Access) -> Vec<&str> {
    a.subjects
        .iter()
        .filter_map(|e| e.subject.as_deref())
        .collect()
}

#[test]
fn integers_read_from_strings_and_from_numbers() {
    let t = trail(&["gateway.jsonl"]);
    let by_span = |id: &str| t.accesses.iter().find(|a| a.span_id == id).unwrap();
    // Line 1 writes intValue as strings, line 3 as numbers.
    let a1 = by_span("00f067aa0ba902b7");
    assert_eq!((a1.records_total, a1.records_released), (Some(1), Some(1)));
    assert_eq!(a1.subjects[0].consent_version, Some(3));
    assert_eq!(a1.grpc_status_code, Some(0));
    let a4 = by_span("2222222222222222");
    assert_eq!(
        (a4.records_total, a4.records_released, a4.records_withheld),
        (Some(4), Some(2), Some(2))
    );
    assert_eq!(a4.subjects[1].consent_version, Some(1));
    let a3 = by_span("1111111111111111");
    assert_eq!(a3.grpc_status_code, Some(7));
    assert_eq!(a1.fields_transformed, ["address.postal_code"]);
    assert_eq!(a1.audit_key_id.as_deref(), Some(support::KEY_ID));
}

#[test]
fn enum_names_and_numbers_both_read() {
    let s = spans(&["gateway.jsonl"]);
    let denied = s.iter().find(|s| s.span_id == "1111111111111111").unwrap();
    assert_eq!((denied.kind, denied.status_code), (2, 2));
    assert_eq!(denied.status_message, "PERMISSION_DENIED");
    assert_eq!((denied.source.as_str(), denied.line), ("gateway.jsonl", 2));
    let first = &s[0];
    assert_eq!((first.kind, first.status_code), (2, 0));
}

#[test]
fn spans_that_are_not_discreets_are_ignored() {
    let s = spans(&["gateway.jsonl"]);
    assert!(s.iter().all(|s| s.name.starts_with("discreet.access")));
    assert_eq!(s.len(), 7);
}

#[test]
fn a_continuation_after_its_parent_is_merged() {
    let t = trail(&["gateway.jsonl"]);
    let batch = t
        .accesses
        .iter()
        .find(|a| a.span_id == "2222222222222222")
        .unwrap();
    assert_eq!(subjects(batch), [EU, US, MINOR, CA]);
    assert!(!batch.incomplete);
    assert_eq!(
        t.accesses.len(),
        5,
        "the continuation is not an access of its own"
    );
}

#[test]
fn a_continuation_before_its_parent_and_in_another_file_is_merged() {
    // continuation-first.jsonl: line 1 continues line 2; line 3 continues an access of
    // gateway.jsonl, read after it here and before it in the second trail.
    for files in [
        ["continuation-first.jsonl", "gateway.jsonl"],
        ["gateway.jsonl", "continuation-first.jsonl"],
    ] {
        let t = trail(&files);
        let support = t
            .accesses
            .iter()
            .find(|a| a.span_id == "6666666666666666")
            .unwrap();
        assert_eq!(subjects(support), [EU, US], "{files:?}");
        let batch = t
            .accesses
            .iter()
            .find(|a| a.span_id == "2222222222222222")
            .unwrap();
        assert_eq!(
            subjects(batch),
            [EU, US, MINOR, CA, "0123456789abcdef0123456789abcdef"],
            "{files:?}"
        );
        assert!(!batch.incomplete);
        assert_eq!(t.accesses.len(), 6);
    }
}

#[test]
fn a_continuation_without_its_access_span_is_kept_as_an_incomplete_access() {
    let t = trail(&["continuation-first.jsonl"]);
    let orphan = t
        .accesses
        .iter()
        .find(|a| a.span_id == "2222222222222222")
        .unwrap();
    assert!(orphan.incomplete);
    assert_eq!(orphan.caller.as_deref(), Some("analytics/reporting"));
    assert_eq!(subjects(orphan), ["0123456789abcdef0123456789abcdef"]);
}

#[test]
fn spans_read_twice_count_once() {
    let once = trail(&["gateway.jsonl"]);
    assert_eq!(once.duplicate_spans, 1, "line 8 repeats line 1");
    let twice = trail(&["gateway.jsonl", "gateway.jsonl"]);
    assert_eq!(twice.accesses, once.accesses);
    assert_eq!(twice.duplicate_spans, 8);
}

#[test]
fn a_pretty_printed_document_with_the_legacy_scope_name_reads() {
    let t = trail(&["pretty.json"]);
    assert_eq!(t.accesses.len(), 1);
    assert_eq!(t.accesses[0].caller.as_deref(), Some("fraud/scorer"));
    assert_eq!(t.accesses[0].subject.as_deref(), Some(US));
}

#[test]
fn a_line_that_is_not_json_is_an_error_naming_the_file_and_line() {
    let file = std::fs::File::open(support::fixture("bad-line.jsonl")).unwrap();
    let mut out = Vec::new();
    let e = SpanReader::default()
        .read("bad-line.jsonl", std::io::BufReader::new(file), &mut out)
        .unwrap_err();
    assert_eq!((e.input.as_str(), e.line), ("bad-line.jsonl", 2));
    assert!(matches!(e.kind, ReadErrorKind::NotJson(_)));
    assert!(
        e.to_string().starts_with("bad-line.jsonl:2: not JSON"),
        "{e}"
    );
    assert!(
        !e.to_string().contains(" at line "),
        "one position, ours: {e}"
    );
}

#[test]
fn line_numbers_stay_right_after_a_multi_line_document() {
    let text = "\n{\n  \"resourceSpans\": []\n}\n{}\n{\"resourceSpans\": [}\n";
    let e = read_str(text).unwrap_err();
    assert!(e.starts_with("x.jsonl:6: not JSON"), "{e}");
    // An error inside a multi-line document names its own line and where the document began.
    let e = read_str("{}\n{\n  \"resourceSpans\":\n    [}\n}\n").unwrap_err();
    assert!(
        e.starts_with("x.jsonl:4: not JSON") && e.contains("starts on line 2"),
        "{e}"
    );
}

#[test]
fn input_ending_inside_a_document_is_incomplete() {
    let e = read_str("{}\n{\"resourceSpans\": [\n").unwrap_err();
    assert!(e.starts_with("x.jsonl:2: the input ends inside"), "{e}");
}

#[test]
fn documents_over_the_limit_are_refused() {
    let reader = SpanReader::with_max_document_bytes(64);
    let long_line = format!(
        "{{\"resourceSpans\": [], \"pad\": \"{}\"}}\n",
        "x".repeat(100)
    );
    // Line 1 `{}`, lines 2-4 a document under the limit, line 5 one over it.
    let small = format!("{{\n\"pad\": \"{}\"\n}}\n", "x".repeat(30));
    let big = format!("{{\n{}}}\n", "  \n".repeat(40));
    for (text, line) in [(long_line, 1), (format!("{{}}\n{small}{big}"), 5)] {
        let mut out = Vec::new();
        let e = reader
            .read("x.jsonl", text.as_bytes(), &mut out)
            .unwrap_err();
        assert_eq!(e.kind, ReadErrorKind::TooLong(64), "{e}");
        assert_eq!(e.line, line, "{e}");
    }
}

#[test]
fn a_discreet_span_without_ids_is_an_error_but_other_spans_need_none() {
    let ok = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"other"}]}]}]}"#;
    assert_eq!(read_str(ok).unwrap().len(), 0);
    let bad = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"discreet.access","traceId":"ab"}]}]}]}"#;
    let e = read_str(&format!("{ok}\n{bad}\n")).unwrap_err();
    assert_eq!(e, "x.jsonl:2: a discreet.access span without a spanId");
    assert!(
        read_str("42")
            .unwrap_err()
            .starts_with("x.jsonl:1: not an OTLP")
    );
}

#[test]
fn lenient_encodings_read() {
    // snake_case names, ids in upper case, numbers for times, a top-level array, a BOM,
    // a bool as a string, values of kinds the contract does not use.
    let text = "\u{feff}[{\"resource_spans\":[{\"scope_spans\":[{\"spans\":[{\"name\":\"discreet.access\",\
        \"trace_id\":\"ABCDEF\",\"span_id\":\"0A\",\"kind\":\"SERVER\",\"start_time_unix_nano\":1700000000000000000,\
        \"attributes\":[{\"key\":\"discreet.shadow.differs\",\"value\":{\"boolValue\":\"true\"}},\
        {\"key\":\"discreet.caller\",\"value\":{\"kvlistValue\":{}}},{\"key\":\"discreet.purpose\"},\
        {\"key\":\"discreet.records.total\",\"value\":{\"intValue\":\"x\"}}]}]}]}]}]";
    let s = read_str(text).unwrap();
    assert_eq!(
        (s[0].trace_id.as_str(), s[0].span_id.as_str(), s[0].kind),
        ("abcdef", "0a", 2)
    );
    assert_eq!(s[0].start_time_unix_nano, 1_700_000_000_000_000_000);
    let t = AuditTrail::from_spans(s);
    let a = &t.accesses[0];
    assert_eq!(a.shadow.as_ref().unwrap().differs, Some(true));
    assert_eq!(
        (a.caller.as_deref(), a.purpose.as_deref(), a.records_total),
        (None, None, None)
    );
}
