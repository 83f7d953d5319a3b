//! What a candidate (shadow) policy would have changed, per purpose and field path, so a
//! policy change can be judged on real traffic before it is rolled out.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::access::Access;
use crate::query::Filter;
use crate::trail::AuditTrail;

/// The candidate policy's verdicts, summed per purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShadowSummary {
    /// One entry per purpose that had calls judged by a candidate, by purpose name.
    pub purposes: Vec<PurposeShadow>,
    /// Calls matching the filter without a candidate verdict (no shadow policy loaded).
    pub calls_without_candidate: usize,
}

/// One purpose's calls under the candidate policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurposeShadow {
    /// The purpose (absent for calls that declared none).
    pub purpose: Option<String>,
    /// Versions of the candidate policy that judged these calls.
    pub candidate_versions: Vec<String>,
    /// Calls judged by a candidate.
    pub calls: usize,
    /// Calls on which the candidate differs from the active policy.
    pub calls_differing: usize,
    /// Calls whose decision would change, per (active, candidate) decision.
    pub decision_changes: Vec<DecisionChange>,
    /// Per field path, calls on which the candidate would release or withhold it
    /// differently; ordered by path.
    pub fields: Vec<FieldShadow>,
}

/// Calls whose decision the candidate would change from one value to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionChange {
    /// The active policy's decision.
    pub from: String,
    /// The candidate's decision.
    pub to: String,
    /// How many calls.
    pub calls: usize,
}

/// One field path under the candidate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldShadow {
    /// The field path (a leaf, such as `contact.email`).
    pub path: String,
    /// Calls on which the candidate would have released it and the active policy did not.
    pub would_release: usize,
    /// Calls on which the candidate would have withheld it and the active policy released it.
    pub would_withhold: usize,
}

impl ShadowSummary {
    /// The summary of the calls matching `filter`.
    #[must_use]
    pub fn build(trail: &AuditTrail, filter: &Filter) -> ShadowSummary {
        let mut purposes: BTreeMap<Option<String>, Tally> = BTreeMap::new();
        let mut calls_without_candidate = 0;
        for access in trail.accesses(filter) {
            let Some(shadow) = &access.shadow else {
                calls_without_candidate += 1;
                continue;
            };
            let t = purposes.entry(access.purpose.clone()).or_default();
            t.calls += 1;
            t.calls_differing += usize::from(differs(access));
            t.versions.extend(shadow.policy_version.iter().cloned());
            if let (Some(from), Some(to)) = (&access.decision, &shadow.decision)
                && from != to
            {
                *t.decisions.entry((from.clone(), to.clone())).or_insert(0) += 1;
            }
            // A path listed twice on one call still counts that call once.
            let released: BTreeSet<&String> = shadow.fields_released.iter().collect();
            let withheld: BTreeSet<&String> = shadow.fields_withheld.iter().collect();
            for path in released {
                t.fields.entry(path.clone()).or_default().0 += 1;
            }
            for path in withheld {
                t.fields.entry(path.clone()).or_default().1 += 1;
            }
        }
        ShadowSummary {
            purposes: purposes
                .into_iter()
                .map(|(purpose, t)| PurposeShadow {
                    purpose,
                    candidate_versions: t.versions.into_iter().collect(),
                    calls: t.calls,
                    calls_differing: t.calls_differing,
                    decision_changes: t
                        .decisions
                        .into_iter()
                        .map(|((from, to), calls)| DecisionChange { from, to, calls })
                        .collect(),
                    fields: t
                        .fields
                        .into_iter()
                        .map(|(path, (would_release, would_withhold))| FieldShadow {
                            path,
                            would_release,
                            would_withhold,
                        })
                        .collect(),
                })
                .collect(),
            calls_without_candidate,
        }
    }
}

/// Running counts for one purpose.
#[derive(Default)]
struct Tally {
    calls: usize,
    calls_differing: usize,
    versions: BTreeSet<String>,
    decisions: BTreeMap<(String, String), usize>,
    /// Path to (would release, would withhold).
    fields: BTreeMap<String, (usize, usize)>,
}

/// The exporter's own verdict when it wrote one, else any change in decision or fields.
fn differs(access: &Access) -> bool {
    access.shadow.as_ref().is_some_and(|s| {
        s.differs.unwrap_or_else(|| {
            s.decision != access.decision
                || !s.fields_released.is_empty()
                || !s.fields_withheld.is_empty()
        })
    })
}
