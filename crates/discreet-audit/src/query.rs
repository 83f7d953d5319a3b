//! The questions an auditor asks of a trail.
use std::collections::BTreeMap;

use discreet_telemetry::attr;

use crate::access::{Access, SubjectEvent};
use crate::trail::AuditTrail;

/// Which accesses a query is about; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The purpose, or a parent in the dotted taxonomy (`marketing` matches
    /// `marketing.communications.email`).
    pub purpose: Option<String>,
    /// The caller, `namespace/name`; `namespace/` matches every caller in the namespace.
    pub caller: Option<String>,
    /// `allowed`, `partial` or `denied`.
    pub decision: Option<String>,
    /// First instant included, Unix nanoseconds.
    pub since: Option<u64>,
    /// First instant no longer included, Unix nanoseconds.
    pub until: Option<u64>,
}

impl Filter {
    /// Whether `access` satisfies every condition.
    #[must_use]
    pub fn matches(&self, access: &Access) -> bool {
        let purpose_ok = self.purpose.as_deref().is_none_or(|want| {
            access.purpose.as_deref().is_some_and(|p| {
                p == want
                    || p.strip_prefix(want)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        });
        let caller_ok = self.caller.as_deref().is_none_or(|want| {
            access
                .caller
                .as_deref()
                .is_some_and(|c| c == want || (want.ends_with('/') && c.starts_with(want)))
        });
        let decision_ok = self.decision.is_none() || self.decision == access.decision;
        let t = access.time_unix_nano;
        purpose_ok
            && caller_ok
            && decision_ok
            && self.since.is_none_or(|s| t >= s)
            && self.until.is_none_or(|u| t < u)
    }
}

/// One access to one subject's data, with what it did to that subject.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectAccess<'a> {
    /// The call.
    pub access: &'a Access,
    /// This subject's part in it.
    pub event: SubjectEvent,
}

impl AuditTrail {
    /// The accesses that match `filter`, oldest first.
    #[must_use]
    pub fn accesses(&self, filter: &Filter) -> Vec<&Access> {
        self.accesses.iter().filter(|a| filter.matches(a)).collect()
    }

    /// The refusals that match `filter`: calls denied whole, and calls that refused some
    /// subject (a subject event whose outcome is `denied`).
    #[must_use]
    pub fn denials(&self, filter: &Filter) -> Vec<&Access> {
        self.accesses(filter)
            .into_iter()
            .filter(|a| {
                a.decision.as_deref() == Some(attr::decision::DENIED)
                    || a.subjects
                        .iter()
                        .any(|e| e.outcome.as_deref() == Some(attr::outcome::DENIED))
            })
            .collect()
    }

    /// Every access matching `filter` that touched the subject with this audit pseudonym.
    #[must_use]
    pub fn subject(&self, pseudonym: &str, filter: &Filter) -> Vec<SubjectAccess<'_>> {
        self.accesses(filter)
            .into_iter()
            .filter_map(|access| {
                let event = access.outcome_for(pseudonym)?;
                Some(SubjectAccess { access, event })
            })
            .collect()
    }

    /// Accesses whose pseudonyms were made with an audit key other than `key_id`, by key
    /// id: a subject's pseudonym under `key_id` cannot find them (the key was rotated).
    #[must_use]
    pub fn other_key_ids(&self, key_id: &str) -> BTreeMap<&str, usize> {
        let mut other = BTreeMap::new();
        for a in &self.accesses {
            if let Some(k) = a.audit_key_id.as_deref().filter(|k| *k != key_id) {
                *other.entry(k).or_insert(0) += 1;
            }
        }
        other
    }
}
