//! The subject access report in words for the person it is about, not for an engineer.
use std::fmt::Write;

use discreet_telemetry::attr::reason;

use crate::report::{ReportLine, SubjectReport};
use crate::time::format_time_readable as when;

/// The report as plain text.
#[must_use]
pub fn report_text(r: &SubjectReport) -> String {
    let mut out = format!("Who accessed the data of {}\n", r.subject);
    match (r.since, r.until) {
        (Some(s), Some(u)) => push(
            &mut out,
            &format!("Period: from {} until {}.", when(s), when(u)),
        ),
        (Some(s), None) => push(&mut out, &format!("Period: from {}.", when(s))),
        (None, Some(u)) => push(&mut out, &format!("Period: until {}.", when(u))),
        (None, None) => {}
    }
    out.push('\n');
    match (r.first, r.last) {
        (Some(first), Some(last)) => {
            let services = [&r.received, &r.withheld, &r.refused]
                .iter()
                .flat_map(|lines| lines.iter().map(|l| &l.caller))
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            push(
                &mut out,
                &format!(
                    "Your data was asked for {} by {} {}, {}.",
                    times(r.accesses),
                    services,
                    if services == 1 { "service" } else { "services" },
                    span_words(first, last)
                ),
            );
        }
        _ => push(&mut out, "The audit trail records no access to your data."),
    }
    section(&mut out, "Who received your data", &r.received, |l| {
        let got = if l.categories.is_empty() {
            "The record does not say which kinds of data it received.".to_owned()
        } else {
            // The span lists what the policy released for the call, not what the
            // record held: a kind of data the record had no value for is listed too.
            format!(
                "It was released these kinds of data, where your record held them: {}.",
                l.categories.join(", ")
            )
        };
        format!(
            "{} read your data {}{}, {}. {got}",
            who(l),
            times(l.count),
            why(l),
            span_words(l.first, l.last)
        )
    });
    section(
        &mut out,
        "Who asked but did not receive your record",
        &r.withheld,
        |l| {
            format!(
                "{} asked for your data {}{}, {}, but your record was left out: {}.",
                who(l),
                times(l.count),
                why(l),
                span_words(l.first, l.last),
                reasons(l)
            )
        },
    );
    section(&mut out, "Who was refused", &r.refused, |l| {
        format!(
            "{} was refused your data {}{}, {}: {}.",
            who(l),
            times(l.count),
            why(l),
            span_words(l.first, l.last),
            reasons(l)
        )
    });
    out.push('\n');
    push(
        &mut out,
        &format!(
            "For the record: the audit trail names you only by the pseudonym {}{}.",
            r.pseudonym,
            r.key_id
                .as_ref()
                .map_or_else(String::new, |k| format!(", made with audit key {k}"))
        ),
    );
    for (key, n) in &r.other_key_ids {
        push(
            &mut out,
            &format!(
                "{} in this trail were recorded under another audit key ({key}) and could not be checked for your data.",
                capitalize(&accesses(*n))
            ),
        );
    }
    out
}

/// A titled list, or nothing when it is empty.
fn section(
    out: &mut String,
    title: &str,
    lines: &[ReportLine],
    sentence: impl Fn(&ReportLine) -> String,
) {
    if lines.is_empty() {
        return;
    }
    let _ = write!(out, "\n{title}\n");
    for l in lines {
        push(out, &format!("  - {}", sentence(l)));
    }
}

/// Appends a line. Control characters in it (from the trail, which is untrusted input)
/// are replaced so they cannot rewrite the reader's terminal.
fn push(out: &mut String, line: &str) {
    out.extend(
        line.chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c }),
    );
    out.push('\n');
}

fn who(l: &ReportLine) -> String {
    l.caller
        .clone()
        .unwrap_or_else(|| "A service that could not be identified".to_owned())
}

fn why(l: &ReportLine) -> String {
    match (&l.purpose, &l.legal_basis) {
        (Some(p), Some(b)) => format!(" for {p} (legal basis: {})", b.replace('_', " ")),
        (Some(p), None) => format!(" for {p}"),
        (None, _) => " without stating a purpose".to_owned(),
    }
}

fn times(n: usize) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

fn accesses(n: usize) -> String {
    if n == 1 {
        "1 access".to_owned()
    } else {
        format!("{n} accesses")
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

fn span_words(first: u64, last: u64) -> String {
    let (a, b) = (when(first), when(last));
    if a == b {
        format!("on {a}")
    } else {
        format!("between {a} and {b}")
    }
}

/// The reasons in plain words, with counts when there are several.
fn reasons(l: &ReportLine) -> String {
    let words: Vec<String> = l
        .reasons
        .iter()
        .map(|(code, n)| {
            let w = reason_words(code);
            if l.reasons.len() > 1 {
                format!("{w} ({})", times(*n))
            } else {
                w
            }
        })
        .collect();
    words.join("; ")
}

/// A reason code as a person would say it.
fn reason_words(code: &str) -> String {
    match code {
        reason::OVERLOADED => "the service was too busy to answer",
        reason::AUDIT_UNAVAILABLE => "the access could not be recorded, so it was not allowed",
        reason::UNKNOWN_METHOD => "it asked in a way the service does not offer",
        reason::UNAUTHENTICATED_CALLER => "it could not prove which service it was",
        reason::INVALID_PURPOSE => "it did not state a valid purpose",
        reason::CALLER_NOT_ALLOWED => "it is not allowed to use data for this purpose",
        reason::INVALID_CONSENT_TOKEN => "the proof of your consent it presented was not valid",
        reason::CONSENT_REVOKED => "you had withdrawn your consent",
        reason::NO_CONSENT => "you have not given consent for this purpose",
        reason::GUARD => {
            "a rule about your data (such as your age or where you live) did not allow it"
        }
        reason::INVALID_REQUEST => "its request was malformed",
        reason::DEADLINE_EXCEEDED => "it stopped waiting for the answer",
        reason::UPSTREAM => "the data store did not answer",
        reason::DEPENDENCY_UNAVAILABLE => {
            "a required check could not be made, so nothing was released"
        }
        reason::CANCELLED => "it cancelled the request",
        reason::INTERNAL => "an internal error occurred, so nothing was released",
        "" => "no reason was recorded",
        other => return format!("a reason recorded as \"{other}\""),
    }
    .to_owned()
}
