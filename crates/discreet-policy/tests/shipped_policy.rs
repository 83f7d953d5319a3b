//! The shipped `config/policy.yaml` against the reference schema: each guard and the
//! precedence rules, on concrete profiles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::Path, sync::LazyLock};

use discreet_policy::{Because, ConsentGrant, Policy, PurposePlan, RecordOutcome, Refusal};
use discreet_proto::profile::v1::{
    Contact, Demographics, GeoPoint, Inferences, LifeEvent, PersonName, Profile,
};
use discreet_redact::RewriteReport;
use discreet_schema::Schema;
use prost::Message;
use prost_types::Timestamp;

const NOW: i64 = 1_795_000_000; // 2026-11-18
const DAY: i64 = 86_400;
static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap());
static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let text = include_str!("../../../config/policy.yaml");
    Policy::parse(Path::new("config/policy.yaml"), text, &SCHEMA).unwrap()
});

fn grant(purpose: &str, special: &[&str]) -> ConsentGrant {
    ConsentGrant {
        purposes: [purpose.to_owned()].into(),
        special_categories: special.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn person(birth_date: &str, jurisdiction: &str) -> Profile {
    Profile {
        subject_id: "u-000042".into(),
        username: "ada".into(),
        name: Some(PersonName {
            first: "Ada".into(),
            last: "Lovelace".into(),
            preferred: "Ada".into(),
        }),
        contact: Some(Contact {
            email: "ada@example.org".into(),
            phone: "+49 30 1234567".into(),
            ..Contact::default()
        }),
        demographics: Some(Demographics {
            birth_date: birth_date.into(),
            language: "de".into(),
            ethnicity: "declared-ethnicity".into(),
            ..Demographics::default()
        }),
        jurisdiction: jurisdiction.into(),
        last_location: Some(GeoPoint {
            latitude: 52.520_008,
            longitude: 13.404_954,
        }),
        inferences: Some(Inferences {
            pregnancy_likelihood: 0.93,
            interests: vec!["strollers".into()],
            life_events: vec![LifeEvent {
                kind: "new_baby".into(),
                detected_at: None,
            }],
            income_band: "50-75k".into(),
            updated_at: Some(Timestamp {
                seconds: NOW - 10 * DAY,
                nanos: 0,
            }),
        }),
        updated_at: Some(Timestamp {
            seconds: NOW - DAY,
            nanos: 0,
        }),
        ..Profile::default()
    }
}

fn apply(
    purpose: &str,
    g: &ConsentGrant,
    p: &Profile,
) -> (RecordOutcome, Option<Profile>, Vec<String>) {
    let plan = PurposePlan::compile(
        &POLICY,
        &SCHEMA,
        "profile.v1.Profile",
        purpose,
        g,
        b"test-secret",
    )
    .unwrap();
    let mut out = Vec::new();
    let mut report = RewriteReport::default();
    let outcome = plan
        .apply(&p.encode_to_vec(), NOW, &mut out, &mut report)
        .unwrap();
    let withheld = report
        .withheld
        .iter()
        .map(|id| plan.plan_for(Some(&p.jurisdiction)).path(*id).to_owned())
        .collect();
    let released =
        (outcome == RecordOutcome::Released).then(|| Profile::decode(out.as_slice()).unwrap());
    (outcome, released, withheld)
}

#[test]
fn a_minor_is_refused_for_marketing_and_an_adult_is_not() {
    let g = grant("marketing.communications.email", &[]);
    let (outcome, released, _) = apply(
        "marketing.communications.email",
        &g,
        &person("2012-03-01", "DE"),
    );
    assert_eq!(
        outcome,
        RecordOutcome::Refused(Refusal::BelowMinimumAge { minimum: 16 })
    );
    assert!(released.is_none());
    // 13 is enough in the US (COPPA), not in Germany.
    let (outcome, _, _) = apply(
        "marketing.communications.email",
        &g,
        &person("2012-03-01", "US"),
    );
    assert_eq!(outcome, RecordOutcome::Released);
    // No valid birth date: the age is unknown, and unknown fails closed.
    let (outcome, _, _) = apply(
        "marketing.communications.email",
        &g,
        &person("someday", "DE"),
    );
    assert_eq!(
        outcome,
        RecordOutcome::Refused(Refusal::AgeUnknown { minimum: 16 })
    );
    // Fraud detection sets no minimum age.
    let (outcome, _, _) = apply(
        "essential.fraud_detection",
        &ConsentGrant::default(),
        &person("2012-03-01", "DE"),
    );
    assert_eq!(outcome, RecordOutcome::Released);
}

#[test]
fn inferred_special_data_never_reaches_marketing_even_with_consent() {
    let g = grant("marketing.communications.email", &["user.health"]);
    let (_, released, _) = apply(
        "marketing.communications.email",
        &g,
        &person("1980-01-01", "US"),
    );
    let released = released.unwrap();
    assert!(released.inferences.is_none(), "{:?}", released.inferences);
    assert_eq!(released.contact.unwrap().email, "ada@example.org");
    assert!(released.demographics.as_ref().unwrap().ethnicity.is_empty());
    assert_eq!(released.demographics.unwrap().birth_date, "1980"); // generalize: year
}

#[test]
fn stale_behaviour_is_withheld_and_reported() {
    let mut p = person("1980-01-01", "DE");
    if let Some(inf) = p.inferences.as_mut() {
        inf.updated_at = Some(Timestamp {
            seconds: NOW - 400 * DAY,
            nanos: 0,
        });
    }
    let (_, released, withheld) = apply("personalize", &grant("personalize", &[]), &p);
    let released = released.unwrap();
    assert!(
        released.inferences.is_none(),
        "stale inferences released: {:?}",
        released.inferences
    );
    assert!(
        withheld.contains(&"inferences.interests".to_owned()),
        "{withheld:?}"
    );
    // Fresh inferences are released (interests) but never the pregnancy score.
    let (_, released, withheld) = apply(
        "personalize",
        &grant("personalize", &[]),
        &person("1980-01-01", "DE"),
    );
    let inf = released.unwrap().inferences.unwrap();
    assert_eq!(inf.interests, vec!["strollers".to_owned()]);
    assert_eq!(inf.pregnancy_likelihood, 0.0);
    assert!(withheld.is_empty(), "{withheld:?}");
}

#[test]
fn transforms_apply_per_purpose() {
    let p = person("1980-01-01", "DE");
    let (_, released, _) = apply("personalize", &grant("personalize", &[]), &p);
    let r = released.unwrap();
    assert_eq!(r.demographics.as_ref().unwrap().birth_date, "45-54");
    assert_ne!(r.subject_id, "u-000042");
    assert_eq!(r.subject_id.len(), 32);
    let loc = r.last_location.unwrap();
    assert!(
        (loc.latitude - 52.5).abs() < 1e-9 && (loc.longitude - 13.4).abs() < 1e-9,
        "{loc:?}"
    );
    assert!(r.contact.is_none(), "personalize gets no contact details");
    let (_, released, _) = apply("essential.fraud_detection", &ConsentGrant::default(), &p);
    let r = released.unwrap();
    assert_eq!(r.subject_id, "u-000042");
    assert_eq!(r.contact.as_ref().unwrap().email, "***@example.org");
    assert_eq!(r.contact.unwrap().phone, "***4567");
    // Pseudonyms are keyed per purpose: analytics and personalize cannot join on them.
    let (_, a, _) = apply("analytics.reporting", &ConsentGrant::default(), &p);
    let (_, b, _) = apply("personalize", &grant("personalize", &[]), &p);
    assert_ne!(a.unwrap().subject_id, b.unwrap().subject_id);
}

#[test]
fn special_categories_need_both_the_purpose_and_the_grant() {
    let p = person("1980-01-01", "DE");
    let (_, without, _) = apply("analytics.reporting", &ConsentGrant::default(), &p);
    assert!(without.unwrap().demographics.unwrap().ethnicity.is_empty());
    let g = grant("analytics.reporting", &["user.demographic.race_ethnicity"]);
    let (_, with, _) = apply("analytics.reporting", &g, &p);
    assert_eq!(
        with.unwrap().demographics.unwrap().ethnicity,
        "declared-ethnicity"
    );
    let rows = POLICY
        .explain(&SCHEMA, "profile.v1.Profile", "personalize", &g, None)
        .unwrap();
    let eth = rows
        .iter()
        .find(|r| r.path == "demographics.ethnicity")
        .unwrap();
    assert!(matches!(
        eth.decision.because,
        Because::SpecialNotAllowed(_)
    ));
}

#[test]
fn a_jurisdiction_override_beats_the_purpose_rule() {
    let rows = POLICY
        .explain(
            &SCHEMA,
            "profile.v1.Profile",
            "personalize",
            &grant("personalize", &[]),
            Some("US-CA"),
        )
        .unwrap();
    let order = rows.iter().find(|r| r.path == "orders.order_id").unwrap();
    assert!(!order.decision.action.releases());
    assert!(
        matches!(&order.decision.because, Because::Rule { jurisdiction: Some(j), .. } if j == "US-CA")
    );
    let rows = POLICY
        .explain(
            &SCHEMA,
            "profile.v1.Profile",
            "personalize",
            &grant("personalize", &[]),
            Some("US-NY"),
        )
        .unwrap();
    assert!(
        rows.iter()
            .find(|r| r.path == "orders.order_id")
            .unwrap()
            .decision
            .action
            .releases()
    );
}

/// A store may write a code in lower case or with spaces: it is the same jurisdiction, and
/// its overrides apply. A value that is no code at all (a country's name, ISO alpha-3,
/// nothing) leaves unknown which overrides apply: a purpose with any is refused the
/// record rather than given the rules of no jurisdiction; a purpose with none serves it.
#[test]
fn a_record_jurisdiction_is_normalized_and_an_unknown_one_fails_closed() {
    let marketing = "marketing.communications.email";
    let g = grant(marketing, &[]);
    // The EU override drops the birth date for marketing (the base rule keeps the year).
    for code in ["FR", "fr", " fr ", "Fr", "EL"] {
        let (outcome, released, _) = apply(marketing, &g, &person("1980-03-01", code));
        assert_eq!(outcome, RecordOutcome::Released, "{code:?}");
        assert_eq!(
            released.unwrap().demographics.unwrap().birth_date,
            "",
            "{code:?} did not get the EU override"
        );
    }
    // `XX` has the shape of a code and is assigned to no one.
    for unknown in ["France", "FRA", "", "F R", "XX"] {
        let (outcome, released, _) = apply(marketing, &g, &person("1980-03-01", unknown));
        assert_eq!(
            outcome,
            RecordOutcome::Refused(Refusal::JurisdictionUnknown),
            "{unknown:?}"
        );
        assert!(released.is_none());
    }
    // Fraud detection has no jurisdiction rules and no minimum age: served either way.
    let (outcome, _, _) = apply(
        "essential.fraud_detection",
        &ConsentGrant::default(),
        &person("1980-03-01", "France"),
    );
    assert_eq!(outcome, RecordOutcome::Released);
}

fn parse(text: &str) -> Result<Policy, Vec<discreet_policy::Diagnostic>> {
    Policy::parse(Path::new("p.yaml"), text, &SCHEMA)
}

const HEAD: &str = "version: t\npurposes:\n  personalize:\n    legal_basis: contract\n    callers: [\"*\"]\n    minimum_age: {}\n    rules:\n";

#[test]
fn deny_beats_allow_at_equal_specificity() {
    // Both rules name user.behavior with one condition each; an inferred third-party
    // field matches both: drop wins whatever the order.
    let p = parse(&format!(
        "{HEAD}      - {{ category: user.financial, source: [third_party], action: keep }}\n      - {{ category: user.financial, provenance: [inferred], action: drop }}\n"
    ))
    .unwrap();
    let rows = p
        .explain(
            &SCHEMA,
            "profile.v1.Profile",
            "personalize",
            &ConsentGrant::default(),
            None,
        )
        .unwrap();
    let income = rows
        .iter()
        .find(|r| r.path == "inferences.income_band")
        .unwrap();
    assert_eq!(income.decision.action, discreet_policy::Action::Drop);
    assert!(
        matches!(income.decision.because, Because::Rule { line: 9, .. }),
        "{:?}",
        income.decision.because
    );
}

#[test]
fn validation_errors_name_the_line_and_the_problem() {
    let cases = [
        (
            "      - { category: user.contact.emial, action: keep }\n",
            8,
            "unknown category user.contact.emial",
        ),
        (
            "      - { category: user.children, action: keep }\n",
            8,
            "can never match",
        ),
        (
            "      - { category: user.contact.email, action: keep }\n      - { category: user.contact.email, action: drop }\n",
            9,
            "conflicting rules",
        ),
        (
            "      - { category: user.demographic.race_ethnicity, action: keep }\n",
            8,
            "does not list it in special_categories",
        ),
        (
            "      - { category: user.location.precise, action: { mask: email } }\n",
            8,
            "cannot apply to any field",
        ),
        (
            "      - { category: user.name, action: shred }\n",
            8,
            "shred",
        ),
    ];
    for (rules, line, needle) in cases {
        let errs = parse(&format!("{HEAD}{rules}")).unwrap_err();
        let hit = errs
            .iter()
            .find(|d| d.message.contains(needle) || d.to_string().contains(needle));
        let hit = hit.unwrap_or_else(|| panic!("no error containing {needle:?}: {errs:?}"));
        assert_eq!(hit.line, line, "{hit}");
        assert!(
            hit.to_string().starts_with(&format!("p.yaml:{line}:")),
            "{hit}"
        );
    }
    let errs = parse("version: t\npurposes:\n  fortune_telling:\n    legal_basis: consent\n    callers: []\n    rules: []\n").unwrap_err();
    assert!(
        errs.iter()
            .any(|d| d.message.contains("unknown purpose fortune_telling") && d.line == 4),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|d| d.message.contains("lists no callers")),
        "{errs:?}"
    );
    let errs = parse("version: t\npurposes: {}\nsurprise: 1\n").unwrap_err();
    assert_eq!(errs[0].line, 3, "{errs:?}");
}

#[test]
fn a_policy_may_add_categories_and_purposes_to_the_vocabulary() {
    let text = "version: t\nvocabulary:\n  purposes:\n    - { key: personalize.loyalty, parent: personalize }\n    - { key: personalize, parent: null }\n  categories:\n    - { key: user.behavior.loyalty, parent: user.nowhere }\npurposes:\n  personalize.loyalty:\n    legal_basis: contract\n    callers: [\"*\"]\n    minimum_age: {}\n    rules:\n      - { category: user.behavior, action: keep }\n";
    let errs = parse(text).unwrap_err();
    assert!(
        errs.iter()
            .any(|d| d.line == 5 && d.message.contains("purpose personalize is already")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|d| d.line == 7 && d.message.contains("parent category user.nowhere")),
        "{errs:?}"
    );
    let ok = parse(
        &text
            .replace("    - { key: personalize, parent: null }\n", "")
            .replace("user.nowhere", "user.behavior"),
    );
    assert!(ok.unwrap().purpose("personalize.loyalty").is_some());
}

#[test]
fn malformed_input_is_an_error_and_appends_nothing() {
    let plan = PurposePlan::compile(
        &POLICY,
        &SCHEMA,
        "profile.v1.Profile",
        "essential.fraud_detection",
        &ConsentGrant::default(),
        b"k",
    )
    .unwrap();
    let good = person("1980-01-01", "DE").encode_to_vec();
    let mut report = RewriteReport::default();
    // Truncated in the middle of the last field, a lying length, field number 0, a group.
    let mut lying = good.clone();
    lying.extend_from_slice(&[0x22, 0xff, 0x01, b'x']);
    for bad in [
        good[..good.len() - 3].to_vec(),
        lying,
        [&good[..], &[0x00, 0x01]].concat(),
        [&good[..], &[0x0b]].concat(),
    ] {
        let mut out = b"earlier".to_vec();
        assert!(plan.apply(&bad, NOW, &mut out, &mut report).is_err());
        assert_eq!(out, b"earlier");
    }
}

#[test]
fn names_caller_knows_the_callers_the_policy_lists() {
    assert!(POLICY.names_caller("shop/recommender"));
    assert!(POLICY.names_caller("analytics/warehouse"));
    assert!(!POLICY.names_caller("someone/else"));
    assert!(!POLICY.names_caller("*"), "a wildcard names no caller");
}
