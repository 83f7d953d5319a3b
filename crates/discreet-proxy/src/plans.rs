//! Compiled plans, cached by (policy generation, record type, purpose, grant). Compiling
//! walks the schema and the policy; a cached plan is one hash lookup away.
use std::sync::Arc;

use discreet_policy::{Action, ConsentGrant, PurposePlan};
use discreet_schema::Schema;
use discreet_telemetry::metrics::{GatewayMetrics, ResultLabels};
use prometheus_client::metrics::counter::Counter;

use crate::policy_state::ActivePolicy;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PlanKey {
    generation: u64,
    record_type: Arc<str>,
    purpose: Arc<str>,
    grant: ConsentGrant,
}

/// A plan plus what it withholds, worked out once per plan for the trailers.
#[derive(Debug)]
pub(crate) struct CompiledPlan {
    pub(crate) plan: PurposePlan,
    /// Field paths the policy withholds from this purpose, collapsed to the highest fully
    /// withheld message: index 0 for the base plan, `i + 1` for the `i`-th jurisdiction
    /// variant.
    withheld: Vec<Vec<Arc<str>>>,
    /// What each plan (same indexing) releases, for the access span.
    released: Vec<Released>,
}

/// What one plan lets out, worked out once per plan: leaf paths kept as they are, leaf
/// paths transformed, and the categories of both and of what is withheld.
#[derive(Debug, Default)]
pub(crate) struct Released {
    pub(crate) kept: Vec<Arc<str>>,
    pub(crate) transformed: Vec<Arc<str>>,
    pub(crate) categories: Vec<Arc<str>>,
    pub(crate) withheld_categories: Vec<Arc<str>>,
}

impl Released {
    fn from_explained(explained: &[discreet_policy::Explanation]) -> Self {
        let mut r = Released::default();
        for e in explained {
            let path: Arc<str> = Arc::from(e.path.as_str());
            let category = e.category.as_deref().map(Arc::<str>::from);
            match e.decision.action {
                Action::Drop => {
                    if let Some(c) = &category {
                        discreet_telemetry::push_unique(&mut r.withheld_categories, c);
                    }
                    continue;
                }
                Action::Keep => r.kept.push(path),
                _ => r.transformed.push(path),
            }
            if let Some(c) = &category {
                discreet_telemetry::push_unique(&mut r.categories, c);
            }
        }
        r
    }

    /// Whether `path` (a leaf) is released by this plan.
    pub(crate) fn releases(&self, path: &str) -> bool {
        self.kept
            .iter()
            .chain(&self.transformed)
            .any(|p| &**p == path)
    }
}

impl CompiledPlan {
    /// What the plan that served a record releases.
    pub(crate) fn released(&self, variant: Option<usize>) -> &Released {
        static NONE: std::sync::OnceLock<Released> = std::sync::OnceLock::new();
        let i = variant.map_or(0, |v| v + 1);
        self.released
            .get(i)
            .unwrap_or_else(|| NONE.get_or_init(Released::default))
    }

    /// What the plan that served a record (see `PurposePlan::apply_variant`) withholds.
    pub(crate) fn withheld(&self, variant: Option<usize>) -> &[Arc<str>] {
        let i = variant.map_or(0, |v| v + 1);
        self.withheld.get(i).map_or(&[], Vec::as_slice)
    }
}

/// The cache. Entries of old policy generations age out by size.
#[derive(Debug)]
pub(crate) struct PlanCache {
    cache: moka::sync::Cache<PlanKey, Arc<CompiledPlan>>,
    schema: Arc<Schema>,
    secret: Arc<[u8]>,
    hits: Counter,
    misses: Counter,
}

impl PlanCache {
    /// `metrics`: where hits and misses are counted (`None` for a cache nobody watches,
    /// such as the shadow policy's).
    pub(crate) fn new(
        capacity: u64,
        schema: Arc<Schema>,
        secret: Arc<[u8]>,
        metrics: Option<&GatewayMetrics>,
    ) -> Self {
        let counter = |result| {
            metrics.map_or_else(Counter::default, |m| {
                m.plan_cache.get_or_create(&ResultLabels { result }).clone()
            })
        };
        PlanCache {
            cache: moka::sync::Cache::new(capacity),
            schema,
            secret,
            hits: counter("hit"),
            misses: counter("miss"),
        }
    }

    /// The plan for this record type, purpose and grant under `active`.
    pub(crate) fn get(
        &self,
        active: &ActivePolicy,
        record_type: &Arc<str>,
        purpose: &Arc<str>,
        grant: &ConsentGrant,
    ) -> Result<Arc<CompiledPlan>, String> {
        let key = PlanKey {
            generation: active.generation,
            record_type: Arc::clone(record_type),
            purpose: Arc::clone(purpose),
            grant: grant.clone(),
        };
        let compiled = std::cell::Cell::new(false);
        let plan = self
            .cache
            .try_get_with(key, || {
                compiled.set(true);
                self.compile(active, record_type, purpose, grant)
            })
            .map_err(|e| (*e).clone());
        if compiled.get() {
            self.misses.inc();
        } else {
            self.hits.inc();
        }
        plan
    }

    fn compile(
        &self,
        active: &ActivePolicy,
        record_type: &str,
        purpose: &str,
        grant: &ConsentGrant,
    ) -> Result<Arc<CompiledPlan>, String> {
        let policy = &active.policy;
        let plan = PurposePlan::compile(
            policy,
            &self.schema,
            record_type,
            purpose,
            grant,
            &self.secret,
        )?;
        let base = policy.explain(&self.schema, record_type, purpose, grant, None)?;
        let mut released = vec![Released::from_explained(&base)];
        let mut withheld = vec![withheld_paths(base)];
        for jurisdiction in plan.variant_jurisdictions() {
            let explained = policy.explain(
                &self.schema,
                record_type,
                purpose,
                grant,
                Some(jurisdiction),
            )?;
            released.push(Released::from_explained(&explained));
            withheld.push(withheld_paths(explained));
        }
        Ok(Arc::new(CompiledPlan {
            plan,
            withheld,
            released,
        }))
    }
}

/// Dropped leaf paths, each replaced by its highest ancestor whose leaves are all dropped
/// (`contact.address` rather than its five fields).
fn withheld_paths(explained: Vec<discreet_policy::Explanation>) -> Vec<Arc<str>> {
    let leaves: Vec<(String, bool)> = explained
        .into_iter()
        .map(|e| (e.path, e.decision.action == Action::Drop))
        .collect();
    let all_dropped_under = |prefix: &str| {
        leaves
            .iter()
            .filter(|(p, _)| p == prefix || p.starts_with(&format!("{prefix}.")))
            .all(|(_, dropped)| *dropped)
    };
    let mut out: Vec<Arc<str>> = Vec::new();
    for (path, dropped) in &leaves {
        if !dropped {
            continue;
        }
        // The shortest prefix (ending at a '.') whose leaves are all dropped, else the leaf.
        let cover = path
            .match_indices('.')
            .map(|(i, _)| &path[..i])
            .find(|prefix| all_dropped_under(prefix))
            .unwrap_or(path.as_str());
        if !out.iter().any(|o| &**o == cover) {
            out.push(Arc::from(cover));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use discreet_policy::{Because, Explanation, FieldDecision};

    fn leaf(path: &str, action: Action) -> Explanation {
        Explanation {
            path: path.into(),
            category: None,
            decision: FieldDecision {
                action,
                because: Because::NoRule,
            },
            max_age_secs: None,
        }
    }

    #[test]
    fn collapses_fully_dropped_messages() {
        let got = withheld_paths(vec![
            leaf("subject_id", Action::Pseudonymize),
            leaf("contact.email", Action::Keep),
            leaf("contact.phone", Action::Drop),
            leaf("contact.address.city", Action::Drop),
            leaf("contact.address.street", Action::Drop),
            leaf("orders.order_id", Action::Drop),
            leaf("orders.total", Action::Drop),
            leaf("iban", Action::Drop),
        ]);
        let got: Vec<&str> = got.iter().map(|s| &**s).collect();
        assert_eq!(got, ["contact.phone", "contact.address", "orders", "iban"]);
    }
}
