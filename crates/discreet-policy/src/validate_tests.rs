//! Validation findings on edited copies of the shipped policy: each names its line once and
//! says what is expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, sync::LazyLock};

use discreet_schema::Schema;

use crate::{Diagnostic, Policy, Severity};

static SCHEMA: LazyLock<Schema> =
    LazyLock::new(|| Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap());
const SHIPPED: &str = include_str!("../../../config/policy.yaml");

/// The shipped policy with `from` replaced (once, which must exist) by `to`.
fn edited(from: &str, to: &str) -> String {
    assert!(
        SHIPPED.contains(from),
        "{from:?} is not in the shipped policy"
    );
    SHIPPED.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> u64 {
    let index = text.lines().position(|l| l.contains(needle)).unwrap();
    u64::try_from(index).unwrap() + 1
}

fn errors(text: &str) -> Vec<Diagnostic> {
    Policy::parse(Path::new("p.yaml"), text, &SCHEMA)
        .expect_err("the edited policy should not load")
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

#[test]
fn a_yaml_error_says_error_and_its_position_once() {
    let text = edited(
        "user.contact.address.country, action: keep",
        "user.contact.address.country, action: kept",
    );
    let line = line_of(&text, "action: kept");
    let found = errors(&text);
    let shown = found[0].to_string();
    assert!(
        shown.starts_with(&format!("p.yaml:{line}:"))
            && shown.contains(": error: unknown variant `kept`"),
        "{shown}"
    );
    assert_eq!(shown.matches("error").count(), 1, "{shown}");
    assert!(!shown.contains(&format!("line {line}")), "{shown}");

    let fraud = SHIPPED
        .split("  essential.fraud_detection:")
        .nth(1)
        .and_then(|rest| rest.split("  essential.service").next())
        .unwrap();
    let twice = format!("{SHIPPED}  essential.fraud_detection:{fraud}");
    let shown = errors(&twice)[0].to_string();
    assert!(
        shown.ends_with(": error: `essential.fraud_detection` appears twice in this mapping"),
        "{shown}"
    );
}

#[test]
fn a_bad_default_minimum_age_key_is_reported_once_even_if_no_purpose_inherits_it() {
    let text = edited("    US: 13\n", "    USA: 13\n");
    let line = line_of(&text, "USA: 13");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, line);
    assert!(found[0].message.contains("\"USA\""), "{found:?}");

    // Every purpose sets its own ages: the defaults are still checked.
    let own = text
        .replace(
            "    callers: [shop/recommender, shop/web]\n",
            "    callers: [shop/recommender, shop/web]\n    minimum_age: { default: 16 }\n",
        )
        .replace(
            "    callers: [marketing/mailer]\n",
            "    callers: [marketing/mailer]\n    minimum_age: { default: 16 }\n",
        );
    let found = errors(&own);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("\"USA\""), "{found:?}");
}

#[test]
fn an_implausible_minimum_age_is_refused() {
    let text = edited("    default: 16\n", "    default: 160\n");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, line_of(&text, "default: 160"));
    assert!(found[0].message.contains("expected 0 to 25"), "{found:?}");
    let adult = edited("    default: 16\n", "    default: 25\n");
    assert!(Policy::parse(Path::new("p.yaml"), &adult, &SCHEMA).is_ok());
}

#[test]
fn a_bucket_or_truncation_that_changes_nothing_or_keeps_nothing_is_refused() {
    let bucket = "{ generalize: { bucket: 10000 } }";
    for (to, expected) in [
        (
            "{ generalize: { bucket: 0 } }",
            "bucket 0 would be read as 1",
        ),
        (
            "{ generalize: { bucket: 1 } }",
            "bucket 1 releases integers unchanged (Profile.lifetime_value_cents)",
        ),
    ] {
        let text = edited(bucket, to);
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{to}: {found:?}");
        assert_eq!(found[0].line, line_of(&text, to));
        assert!(found[0].message.contains(expected), "{found:?}");
    }
    let text = edited("{ truncate: 3 }", "{ truncate: 0 }");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].message.contains("truncate 0 keeps nothing"),
        "{found:?}"
    );
}
