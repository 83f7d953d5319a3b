//! The auditor's questions over the fixtures: accesses, windows, denials, one subject, the
//! subject access report and the shadow summary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use discreet_audit::{
    Filter, Format, ShadowSummary, SubjectReport, accesses_table, report_table, report_text,
    shadow_table, subject_table,
    time::{Bound, parse_time},
};
use support::{CA, EU, KEY_ID, MINOR, US, at, key, trail};

fn spans_of(accesses: &[&discreet_audit::Access]) -> Vec<String> {
    accesses.iter().map(|a| a.span_id[..4].to_owned()).collect()
}

#[test]
fn accesses_filter_by_purpose_caller_and_decision() {
    let t = trail(&["gateway.jsonl"]);
    let q = |f: Filter| spans_of(&t.accesses(&f));
    assert_eq!(
        q(Filter::default()),
        ["00f0", "4444", "1111", "2222", "5555"],
        "oldest first"
    );
    let purpose = |p: &str| Filter {
        purpose: Some(p.into()),
        ..Filter::default()
    };
    assert_eq!(q(purpose("personalize")), ["00f0", "4444", "5555"]);
    assert_eq!(
        q(purpose("marketing")),
        ["1111"],
        "a parent purpose matches"
    );
    assert_eq!(
        q(purpose("marketing.comm")),
        Vec::<String>::new(),
        "not a prefix of a name"
    );
    let caller = |c: &str| Filter {
        caller: Some(c.into()),
        ..Filter::default()
    };
    assert_eq!(q(caller("shop/recommender")).len(), 3);
    assert_eq!(q(caller("shop/")).len(), 3, "a namespace");
    assert_eq!(q(caller("shop")).len(), 0);
    let decision = Filter {
        decision: Some("partial".into()),
        purpose: Some("analytics.reporting".into()),
        ..Filter::default()
    };
    assert_eq!(q(decision), ["2222"]);
}

#[test]
fn time_windows_include_their_start_and_exclude_their_end() {
    let t = trail(&["gateway.jsonl"]);
    let window = |since: Option<&str>, until: Option<&str>| {
        let f = Filter {
            since: since.map(|s| parse_time(s, Bound::Since).unwrap()),
            until: until.map(|u| parse_time(u, Bound::Until).unwrap()),
            ..Filter::default()
        };
        spans_of(&t.accesses(&f))
    };
    // Line 3's access is at 2026-11-22T12:00:00Z exactly.
    assert_eq!(window(Some("2026-11-22T12:00:00Z"), None), ["2222", "5555"]);
    assert_eq!(
        window(None, Some("2026-11-22T12:00:00Z")),
        ["00f0", "4444", "1111"]
    );
    assert_eq!(
        window(Some("2026-11-22T12:00:00.000000001Z"), None),
        ["5555"]
    );
    // A date as the end includes that whole day; as the start, from its midnight.
    assert_eq!(
        window(Some("2026-11-22"), Some("2026-11-22")),
        ["4444", "1111", "2222"]
    );
    assert_eq!(window(None, Some("2026-11-21")), ["00f0"]);
    assert_eq!(window(Some("2026-11-24"), None), Vec::<String>::new());
    assert_eq!(window(Some("2026-11-23T11:00:00+01:00"), None), ["5555"]);
}

#[test]
fn denials_are_the_refused_calls() {
    let t = trail(&["gateway.jsonl", "continuation-first.jsonl"]);
    let denied = t.denials(&Filter::default());
    assert_eq!(spans_of(&denied), ["1111"]);
    assert_eq!(denied[0].denial_reason.as_deref(), Some("no_consent"));
    let table = discreet_audit::denials_table(&denied).to_text();
    assert!(table.starts_with("TIME "), "{table}");
    assert!(
        table.contains("ads/mailer") && table.contains("no consent for purpose"),
        "{table}"
    );
}

#[test]
fn a_subject_is_found_by_raw_id_and_key_in_every_access_that_touched_them() {
    let t = trail(&["gateway.jsonl", "continuation-first.jsonl"]);
    let key = key();
    assert_eq!(key.pseudonym("persona-eu"), EU);
    assert_eq!(key.key_id(), KEY_ID);
    let found = t.subject(&key.pseudonym("persona-eu"), &Filter::default());
    let outcomes: Vec<(&str, &str)> = found
        .iter()
        .map(|s| {
            (
                s.access.caller.as_deref().unwrap(),
                s.event.outcome.as_deref().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("shop/recommender", "released"),
            ("shop/recommender", "released"),
            ("ads/mailer", "denied"),
            ("analytics/reporting", "withheld"),
            ("support/agent", "released"),
            ("shop/recommender", "released"),
        ]
    );
    // Found through a continuation span only.
    assert_eq!(t.subject(MINOR, &Filter::default()).len(), 1);
    assert_eq!(
        t.subject(&key.pseudonym("nobody"), &Filter::default())
            .len(),
        0
    );
    assert!(t.other_key_ids(KEY_ID).is_empty());
    assert_eq!(t.other_key_ids("00000000").get(KEY_ID), Some(&6));

    // Where the subject's record was withheld, the call's releases are not theirs.
    let text = subject_table(&found).to_text();
    let batch = text
        .lines()
        .find(|l| l.contains("analytics/reporting"))
        .unwrap();
    assert!(
        batch.contains("withheld") && batch.contains("guard"),
        "{batch}"
    );
    assert!(!batch.contains("user.demographic"), "{batch}");
    assert!(
        !text.contains(US) && !text.contains(CA),
        "no other subject: {text}"
    );
}

#[test]
fn the_subject_access_report_reads_for_the_person() {
    let t = trail(&["gateway.jsonl", "continuation-first.jsonl", "pretty.json"]);
    let key = key();
    let report = SubjectReport::build(
        &t,
        "persona-eu",
        &key.pseudonym("persona-eu"),
        Some(key.key_id()),
        &Filter::default(),
    );
    let text = report_text(&report);
    print!("{text}");
    assert_eq!(
        text,
        "\
Who accessed the data of persona-eu

Your data was asked for 6 times by 4 services, between 2026-11-21 08:00 UTC and 2026-11-23 10:00 UTC.

Who received your data
  - shop/recommender read your data 3 times for personalize (legal basis: consent), between 2026-11-21 08:00 UTC and 2026-11-23 10:00 UTC. It was released these kinds of data, where your record held them: user.behavior.browsing_history, user.behavior.purchase_history, user.demographic.
  - support/agent read your data once for essential.service.operations.support (legal basis: contract), on 2026-11-23 07:00 UTC. It was released these kinds of data, where your record held them: user.contact.

Who asked but did not receive your record
  - analytics/reporting asked for your data once for analytics.reporting (legal basis: legitimate interests), on 2026-11-22 12:00 UTC, but your record was left out: a rule about your data (such as your age or where you live) did not allow it.

Who was refused
  - ads/mailer was refused your data once for marketing.communications.email (legal basis: consent), on 2026-11-22 11:00 UTC: you have not given consent for this purpose.

For the record: the audit trail names you only by the pseudonym 46a3118a662238307241743f1371ba1b, made with audit key 798dfc5d.
"
    );
    for other in [US, MINOR, CA, "persona-us", "0123456789abcdef"] {
        assert!(!text.contains(other), "{other} in {text}");
    }
    let csv = report_table(&report).render(Format::Csv);
    assert!(
        csv.starts_with("outcome,caller,purpose,legal_basis,calls,first,last"),
        "{csv}"
    );
    assert!(csv.contains("\nrefused,ads/mailer,marketing.communications.email,consent,1,2026-11-22T11:00:00Z,2026-11-22T11:00:00Z,,no_consent (1)\n"), "{csv}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["accesses"], 6);
    assert_eq!(json["first"], "2026-11-21T08:00:00Z");
    assert_eq!(json["refused"][0]["reasons"]["no_consent"], 1);
}

#[test]
fn a_report_in_a_window_and_under_a_rotated_key_says_so() {
    let t = trail(&["gateway.jsonl"]);
    let other_key = discreet_audit::AuditKey::new(&[0x22; 32]).unwrap();
    let filter = Filter {
        since: Some(at("2026-11-22")),
        until: Some(parse_time("2026-11-22", Bound::Until).unwrap()),
        ..Filter::default()
    };
    let p = other_key.pseudonym("persona-eu");
    let report = SubjectReport::build(&t, "persona-eu", &p, Some(other_key.key_id()), &filter);
    let text = report_text(&report);
    assert!(
        text.contains("Period: from 2026-11-22 00:00 UTC until 2026-11-23 00:00 UTC."),
        "{text}"
    );
    assert!(
        text.contains("The audit trail records no access to your data."),
        "{text}"
    );
    assert!(
        text.contains("5 accesses in this trail were recorded under another audit key (798dfc5d)"),
        "{text}"
    );
}

#[test]
fn the_shadow_summary_counts_calls_per_purpose_and_field() {
    let t = trail(&["gateway.jsonl"]);
    let s = ShadowSummary::build(&t, &Filter::default());
    assert_eq!(
        s.calls_without_candidate, 1,
        "the denied call had no candidate"
    );
    let personalize = &s.purposes[1];
    assert_eq!(personalize.purpose.as_deref(), Some("personalize"));
    assert_eq!((personalize.calls, personalize.calls_differing), (3, 2));
    assert_eq!(personalize.candidate_versions, ["2026-11-30"]);
    let fields: Vec<(&str, usize, usize)> = personalize
        .fields
        .iter()
        .map(|f| (f.path.as_str(), f.would_release, f.would_withhold))
        .collect();
    assert_eq!(
        fields,
        [
            ("demographics.birth_date", 0, 2),
            ("interests.inferred", 1, 0),
            ("orders.skus", 0, 1),
        ]
    );
    let change = &personalize.decision_changes[0];
    assert_eq!(
        (change.from.as_str(), change.to.as_str(), change.calls),
        ("allowed", "partial", 1)
    );
    // No `differs` attribute: a changed decision counts as differing.
    let analytics = &s.purposes[0];
    assert_eq!((analytics.calls, analytics.calls_differing), (1, 1));
    assert!(analytics.fields.is_empty());

    let text = discreet_audit::shadow_text(&s);
    print!("{text}");
    assert!(text.contains("personalize: 3 calls judged by the candidate policy 2026-11-30; it would differ on 2 calls; allowed -> partial on 1 call."), "{text}");
    let table = shadow_table(&s).to_text();
    assert!(
        table.lines().any(|l| l.split_whitespace().eq([
            "personalize",
            "demographics.birth_date",
            "0",
            "2",
            "3"
        ])),
        "{table}"
    );
}

#[test]
fn every_answer_renders_in_every_format() {
    let t = trail(&["gateway.jsonl", "continuation-first.jsonl", "pretty.json"]);
    let all = t.accesses(&Filter::default());
    let table = accesses_table(&all);
    let json: serde_json::Value = serde_json::from_str(&table.render(Format::Json)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 7);
    assert_eq!(
        json[0]["categories_released"][1],
        "user.behavior.browsing_history"
    );
    assert_eq!(json[0]["records_total"], 1);
    let csv = table.render(Format::Csv);
    assert_eq!(csv.lines().count(), 8);
    let text = table.render(Format::Table);
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("TIME") && header.contains("CATEGORIES RELEASED"),
        "{header}"
    );
    assert!(!header.contains("TRACE ID"), "narrow text table: {header}");
}
