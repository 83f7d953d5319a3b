//! The shadow (candidate) policy: loaded beside the active one, evaluated on every call
//! on the same records, never used to answer. Where it would have released or withheld
//! differently, the access span says so (`discreet.shadow.*`), so a policy change can be
//! watched on production traffic before it is rolled out.
use std::sync::Arc;

use discreet_policy::{ConsentGrant, RecordOutcome};
use discreet_redact::RewriteReport;
use discreet_telemetry::{ShadowOutcome, attr, push_unique};

use crate::{
    plans::{CompiledPlan, PlanCache},
    policy_state::{ActivePolicy, PolicyState},
};

/// The candidate policy and its own plan cache (its generations are its own).
#[derive(Debug)]
pub(crate) struct ShadowPolicy {
    pub(crate) state: Arc<PolicyState>,
    pub(crate) plans: PlanCache,
}

/// How the active policy served a record: its plan, the plan's variant, and the leaf
/// paths it withheld at run time.
pub(crate) type ActiveServed<'a> = (&'a CompiledPlan, Option<usize>, &'a [Arc<str>]);

/// What the candidate would have done on one call, gathered record by record.
#[derive(Debug)]
pub(crate) struct ShadowTally {
    pub(crate) active: Arc<ActivePolicy>,
    /// The candidate would have refused the caller or purpose outright.
    caller_denied: bool,
    would_release: Vec<Arc<str>>,
    would_withhold: Vec<Arc<str>>,
    withheld_any: bool,
    records: u64,
    refused: u64,
    scratch: Vec<u8>,
    report: RewriteReport,
}

impl ShadowTally {
    pub(crate) fn new(active: Arc<ActivePolicy>, caller_denied: bool) -> Self {
        ShadowTally {
            active,
            caller_denied,
            would_release: Vec::new(),
            would_withhold: Vec::new(),
            withheld_any: false,
            records: 0,
            refused: 0,
            scratch: Vec::new(),
            report: RewriteReport::default(),
        }
    }

    /// A record the active policy served with `plan` (`variant`), minus the fields it
    /// withheld at run time (`runtime`), or refused (`plan` is `None`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        &mut self,
        shadow: &ShadowPolicy,
        record_type: &Arc<str>,
        purpose: &Arc<str>,
        grant: &ConsentGrant,
        input: &[u8],
        now: i64,
        active: Option<ActiveServed<'_>>,
    ) {
        self.records += 1;
        let candidate = shadow.plans.get(&self.active, record_type, purpose, grant);
        self.scratch.clear();
        self.report.clear();
        let served = candidate.ok().and_then(|plan| {
            match plan
                .plan
                .apply_variant(input, now, &mut self.scratch, &mut self.report)
            {
                Ok((RecordOutcome::Released, variant)) => Some((plan, variant)),
                _ => None,
            }
        });
        let Some((plan, variant)) = served else {
            self.refused += 1;
            self.withheld_any = true;
            if let Some((active_plan, v, runtime)) = active {
                let released = active_plan.released(v);
                for leaf in released.kept.iter().chain(&released.transformed) {
                    if !runtime.contains(leaf) {
                        push_unique(&mut self.would_withhold, leaf);
                    }
                }
            }
            return;
        };
        let redaction = plan.plan.redaction_plan(variant);
        let shadow_runtime: Vec<&str> = self
            .report
            .withheld
            .iter()
            .map(|id| redaction.path(*id))
            .collect();
        if !plan.withheld(variant).is_empty() || !shadow_runtime.is_empty() {
            self.withheld_any = true;
        }
        let candidate_releases = plan.released(variant);
        let candidate_has =
            |leaf: &str| candidate_releases.releases(leaf) && !shadow_runtime.contains(&leaf);
        let empty: (Vec<Arc<str>>, Vec<Arc<str>>) = (Vec::new(), Vec::new());
        let (kept, transformed, runtime) = match active {
            Some((p, v, runtime)) => {
                let r = p.released(v);
                (&r.kept, &r.transformed, runtime)
            }
            None => (&empty.0, &empty.1, &[][..]),
        };
        let active_has = |leaf: &str| {
            kept.iter().chain(transformed).any(|p| &**p == leaf)
                && !runtime.iter().any(|p| &**p == leaf)
        };
        for leaf in kept.iter().chain(transformed) {
            if active_has(leaf) && !candidate_has(leaf) {
                push_unique(&mut self.would_withhold, leaf);
            }
        }
        for leaf in candidate_releases
            .kept
            .iter()
            .chain(&candidate_releases.transformed)
        {
            if candidate_has(leaf) && !active_has(leaf) {
                push_unique(&mut self.would_release, leaf);
            }
        }
    }

    /// Records withheld before the store (no grant): the same under both policies.
    pub(crate) fn withheld_before(&mut self, count: u64) {
        if count > 0 {
            self.withheld_any = true;
        }
    }

    pub(crate) fn outcome(self) -> ShadowOutcome {
        let decision = if self.caller_denied || (self.records > 0 && self.refused == self.records) {
            attr::decision::DENIED
        } else if self.withheld_any {
            attr::decision::PARTIAL
        } else {
            attr::decision::ALLOWED
        };
        ShadowOutcome {
            policy_version: Arc::clone(&self.active.version),
            decision,
            fields_released: self.would_release,
            fields_withheld: self.would_withhold,
        }
    }
}
