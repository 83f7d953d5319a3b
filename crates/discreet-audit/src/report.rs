//! The subject access report: for one person, who accessed their data, when, for what and
//! on which legal basis, what they received, and which attempts were refused and why.
//! [`report_text`](crate::report_text) words it for that person.
use std::collections::BTreeMap;

use discreet_telemetry::attr;
use serde::{Serialize, Serializer};

use crate::query::Filter;
use crate::time::format_time;
use crate::trail::AuditTrail;

/// One person's accesses, grouped by who asked, for what, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectReport {
    /// The person as the auditor named them (the raw id typed, or the pseudonym). Never
    /// derived from the trail: pseudonyms are not reversed.
    pub subject: String,
    /// Their audit pseudonym.
    pub pseudonym: String,
    /// The audit key's fingerprint, when the report was made from a raw id and a key.
    pub key_id: Option<String>,
    /// The window asked for, if any.
    #[serde(serialize_with = "opt_time")]
    pub since: Option<u64>,
    /// The end of the window asked for (exclusive), if any.
    #[serde(serialize_with = "opt_time")]
    pub until: Option<u64>,
    /// Calls that touched their data.
    pub accesses: usize,
    /// The first of them.
    #[serde(serialize_with = "opt_time")]
    pub first: Option<u64>,
    /// The last of them.
    #[serde(serialize_with = "opt_time")]
    pub last: Option<u64>,
    /// Callers that received their data.
    pub received: Vec<ReportLine>,
    /// Callers whose call went through but left their record out.
    pub withheld: Vec<ReportLine>,
    /// Callers that were refused.
    pub refused: Vec<ReportLine>,
    /// Accesses recorded under other audit keys, by key id: not searchable with this one.
    pub other_key_ids: BTreeMap<String, usize>,
}

/// The calls of one caller, for one purpose, with one outcome for the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportLine {
    /// The calling workload (absent when it could not be identified).
    pub caller: Option<String>,
    /// The purpose it declared.
    pub purpose: Option<String>,
    /// The purpose's legal basis.
    pub legal_basis: Option<String>,
    /// How many calls.
    pub count: usize,
    /// The first.
    #[serde(serialize_with = "time")]
    pub first: u64,
    /// The last.
    #[serde(serialize_with = "time")]
    pub last: u64,
    /// Data categories released by these calls (for calls that received the data).
    pub categories: Vec<String>,
    /// Why the data was withheld or refused: reason code to number of calls.
    pub reasons: BTreeMap<String, usize>,
}

type GroupKey = (Option<String>, Option<String>, Option<String>);

impl SubjectReport {
    /// The report for the subject with audit pseudonym `pseudonym`, named `subject` in the
    /// text; `key_id` is the fingerprint of the key the pseudonym was made with, if known.
    #[must_use]
    pub fn build(
        trail: &AuditTrail,
        subject: &str,
        pseudonym: &str,
        key_id: Option<&str>,
        filter: &Filter,
    ) -> SubjectReport {
        let mut groups: [BTreeMap<GroupKey, ReportLine>; 3] = Default::default();
        let found = trail.subject(pseudonym, filter);
        for s in &found {
            let a = s.access;
            let slot = match s.event.outcome.as_deref() {
                Some(attr::outcome::WITHHELD) => 1,
                Some(attr::outcome::DENIED) => 2,
                // Anything else may have released the data: report it as received.
                _ => 0,
            };
            let key = (a.caller.clone(), a.purpose.clone(), a.legal_basis.clone());
            let line = groups[slot].entry(key).or_insert_with(|| ReportLine {
                caller: a.caller.clone(),
                purpose: a.purpose.clone(),
                legal_basis: a.legal_basis.clone(),
                count: 0,
                first: a.time_unix_nano,
                last: a.time_unix_nano,
                categories: Vec::new(),
                reasons: BTreeMap::new(),
            });
            line.count += 1;
            line.first = line.first.min(a.time_unix_nano);
            line.last = line.last.max(a.time_unix_nano);
            if slot == 0 {
                line.categories
                    .extend(a.categories_released.iter().cloned());
                line.categories.sort();
                line.categories.dedup();
            } else {
                let reason = s.event.reason.clone().or_else(|| a.denial_reason.clone());
                *line.reasons.entry(reason.unwrap_or_default()).or_insert(0) += 1;
            }
        }
        let [received, withheld, refused] = groups.map(|g| {
            let mut lines: Vec<ReportLine> = g.into_values().collect();
            lines.sort_by(|a, b| (a.first, &a.caller).cmp(&(b.first, &b.caller)));
            lines
        });
        SubjectReport {
            subject: subject.to_owned(),
            pseudonym: pseudonym.to_owned(),
            key_id: key_id.map(str::to_owned),
            since: filter.since,
            until: filter.until,
            accesses: found.len(),
            first: found.iter().map(|s| s.access.time_unix_nano).min(),
            last: found.iter().map(|s| s.access.time_unix_nano).max(),
            received,
            withheld,
            refused,
            other_key_ids: key_id.map_or_else(BTreeMap::new, |k| {
                trail
                    .other_key_ids(k)
                    .into_iter()
                    .map(|(k, n)| (k.to_owned(), n))
                    .collect()
            }),
        }
    }
}

fn time<S: Serializer>(t: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(*t))
}

fn opt_time<S: Serializer>(t: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_time(*t)),
        None => s.serialize_none(),
    }
}
