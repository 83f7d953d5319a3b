//! Compiled plans, cached by (policy generation, record type, purpose, grant). Compiling
//! walks the schema and the policy; a cached plan is one hash lookup away.
use std::sync::Arc;

use discreet_policy::{Action, ConsentGrant, PurposePlan};
use discreet_schema::Schema;
use discreet_telemetry::{
    FieldLists,
    metrics::{GatewayMetrics, ResultLabels},
};
use http::HeaderValue;
use prometheus_client::metrics::counter::Counter;

use crate::{enforce::withheld_trailer, policy_state::ActivePolicy};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PlanKey {
    generation: u64,
    record_type: Arc<str>,
    purpose: Arc<str>,
    grant: ConsentGrant,
}

/// A [`PlanKey`] borrowed from the call, for the lookup: the same fields in the same order,
/// so it hashes as the owned key does, and a hit (nearly every call) clones no grant.
#[derive(Hash)]
struct PlanKeyRef<'a> {
    generation: u64,
    record_type: &'a str,
    purpose: &'a str,
    grant: &'a ConsentGrant,
}

impl equivalent::Equivalent<PlanKey> for PlanKeyRef<'_> {
    fn equivalent(&self, key: &PlanKey) -> bool {
        self.generation == key.generation
            && self.record_type == &*key.record_type
            && self.purpose == &*key.purpose
            && *self.grant == key.grant
    }
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
    /// The access span's field lists of a call served by this plan alone (same indexing).
    lists: Vec<Arc<FieldLists>>,
    /// The `x-discreet-withheld-fields` trailer of such a call (same indexing).
    withheld_trailers: Vec<Option<HeaderValue>>,
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
                // Each leaf is explained once; de-duplicated all the same, since calls
                // served by this plan alone take these lists as they are.
                Action::Keep => discreet_telemetry::push_unique(&mut r.kept, &path),
                _ => discreet_telemetry::push_unique(&mut r.transformed, &path),
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

    /// The access span's field lists of a call whose released records this plan variant
    /// alone served, with nothing withheld at run time.
    pub(crate) fn lists(&self, variant: Option<usize>) -> Arc<FieldLists> {
        let i = variant.map_or(0, |v| v + 1);
        self.lists.get(i).map_or_else(FieldLists::none, Arc::clone)
    }

    /// The withheld-fields trailer of such a call.
    pub(crate) fn withheld_trailer(&self, variant: Option<usize>) -> Option<HeaderValue> {
        let i = variant.map_or(0, |v| v + 1);
        self.withheld_trailers.get(i).cloned().flatten()
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
        let probe = PlanKeyRef {
            generation: active.generation,
            record_type,
            purpose,
            grant,
        };
        if let Some(plan) = self.cache.get(&probe) {
            self.hits.inc();
            return Ok(plan);
        }
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
        let lists = released
            .iter()
            .zip(&withheld)
            .map(|(r, w)| {
                Arc::new(FieldLists::new(
                    r.kept.clone(),
                    r.transformed.clone(),
                    w.clone(),
                    r.categories.clone(),
                    r.withheld_categories.clone(),
                ))
            })
            .collect();
        let withheld_trailers = withheld.iter().map(|w| withheld_trailer(w)).collect();
        Ok(Arc::new(CompiledPlan {
            plan,
            withheld,
            released,
            lists,
            withheld_trailers,
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
#[allow(clippy::unwrap_used)]
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

    /// The shipped policy, active, and an empty plan cache for it.
    fn shipped_policy() -> (Arc<ActivePolicy>, PlanCache) {
        let schema =
            Arc::new(Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap());
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/policy.yaml");
        let state = crate::policy_state::PolicyState::load(&path, Arc::clone(&schema)).unwrap();
        let active = state.current();
        let cache = PlanCache::new(256, schema, Arc::from(&b"test secret"[..]), None);
        (active, cache)
    }

    /// Every plan of the shipped policy, every purpose, every jurisdiction variant.
    fn shipped_plans() -> Vec<(Arc<CompiledPlan>, Option<usize>)> {
        let (active, cache) = shipped_policy();
        let record_type: Arc<str> = Arc::from("profile.v1.Profile");
        let mut plans = Vec::new();
        for purpose in active.policy.purposes.keys() {
            let grant = ConsentGrant {
                purposes: [purpose.clone()].into(),
                special_categories: std::collections::BTreeSet::new(),
            };
            let plan = cache
                .get(&active, &record_type, &Arc::from(purpose.as_str()), &grant)
                .unwrap();
            plans.push((Arc::clone(&plan), None));
            for v in 0..plan.plan.variant_jurisdictions().count() {
                plans.push((Arc::clone(&plan), Some(v)));
            }
        }
        plans
    }

    /// The borrowed lookup key hashes and compares as the owned key, so a cached plan is
    /// found without building one: the second lookup returns the same plan.
    #[test]
    fn a_borrowed_key_finds_the_cached_plan() {
        use std::hash::BuildHasher;
        let grant = ConsentGrant {
            purposes: ["personalize".to_owned(), "analytics".to_owned()].into(),
            special_categories: ["user.health".to_owned()].into(),
        };
        let owned = PlanKey {
            generation: 3,
            record_type: Arc::from("profile.v1.Profile"),
            purpose: Arc::from("personalize"),
            grant: grant.clone(),
        };
        let borrowed = PlanKeyRef {
            generation: 3,
            record_type: "profile.v1.Profile",
            purpose: "personalize",
            grant: &grant,
        };
        let h = std::collections::hash_map::RandomState::new();
        assert_eq!(h.hash_one(&owned), h.hash_one(&borrowed));
        assert!(equivalent::Equivalent::equivalent(&borrowed, &owned));
        let other = PlanKeyRef {
            purpose: "analytics",
            ..borrowed
        };
        assert!(!equivalent::Equivalent::equivalent(&other, &owned));

        let (active, cache) = shipped_policy();
        let (record_type, purpose) = (Arc::from("profile.v1.Profile"), Arc::from("personalize"));
        let first = cache.get(&active, &record_type, &purpose, &grant).unwrap();
        let again = cache
            .get(&active, &record_type, &purpose, &grant.clone())
            .unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second lookup compiled anew"
        );
    }

    /// A call served by one plan variant takes the plan's ready-made lists and trailer;
    /// they must be exactly what building them for that call would give.
    #[test]
    fn a_plan_s_ready_made_lists_are_what_a_call_would_build() {
        let plans = shipped_plans();
        assert!(
            plans.len() > 6,
            "the shipped policy has variants: {}",
            plans.len()
        );
        let mut withholding = 0;
        for (plan, variant) in &plans {
            let one = [(Arc::clone(plan), *variant)];
            let built = crate::access::field_lists(&one, plan.withheld(*variant), &[]);
            assert_eq!(*plan.lists(*variant), built, "variant {variant:?}");
            assert_eq!(
                plan.withheld_trailer(*variant),
                crate::enforce::withheld_trailer(plan.withheld(*variant))
            );
            withholding += usize::from(!plan.withheld(*variant).is_empty());
        }
        assert!(
            withholding > 0,
            "no plan withholds anything: a vacuous test"
        );
    }

    /// Records of one plan variant keep the plan's list; a second variant or a field
    /// withheld at run time turns it into the union, each path once.
    #[test]
    fn withheld_paths_stay_shared_until_a_second_plan_serves() {
        use crate::enforce::Withheld;
        let plans = shipped_plans();
        let (a, va) = plans
            .iter()
            .find(|(p, v)| !p.withheld(*v).is_empty())
            .cloned()
            .unwrap();
        let (b, vb) = plans
            .iter()
            .find(|(p, v)| p.withheld(*v) != a.withheld(va) && !p.withheld(*v).is_empty())
            .cloned()
            .unwrap();
        let mut w = Withheld::default();
        w.add(&a, va, &[]);
        w.add(&a, va, &[]);
        assert!(matches!(w, Withheld::Plan(..)), "{w:?}");
        assert_eq!(w.paths(), a.withheld(va));

        w.add(&b, vb, &[]);
        let mut union: Vec<Arc<str>> = a.withheld(va).to_vec();
        for p in b.withheld(vb) {
            discreet_telemetry::push_unique(&mut union, p);
        }
        assert!(matches!(w, Withheld::Paths(_)), "{w:?}");
        assert_eq!(w.paths(), union.as_slice());

        let stale: Arc<str> = Arc::from("a.path.withheld.at.run.time");
        let mut w = Withheld::default();
        w.add(&a, va, std::slice::from_ref(&stale));
        assert!(matches!(w, Withheld::Paths(_)), "{w:?}");
        assert_eq!(w.paths().last(), Some(&stale));
        assert_eq!(w.paths().len(), a.withheld(va).len() + 1);
    }
}
