//! The effect of a policy change: for every purpose, field path and jurisdiction
//! variant, the decision under each version, kept only where it differs. A reviewer sees
//! what a caller will receive differently, not which YAML lines moved.
use std::collections::BTreeSet;

use discreet_schema::Schema;

use crate::{ConsentGrant, Explanation, Policy};

/// One difference between two policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyChange {
    PurposeAdded(String),
    PurposeRemoved(String),
    /// A field's decision changed for a purpose (under `jurisdiction`'s overrides, or the
    /// purpose's own rules when `None`).
    Decision {
        purpose: String,
        jurisdiction: Option<String>,
        path: String,
        before: String,
        after: String,
    },
}

/// Every change between `old` and `new` for records of type `message`.
///
/// Each purpose is explained with a grant that names it and every special category either
/// version lists for it, so that changes to special-category rules show. A jurisdiction
/// variant is reported only where it differs from the purpose-wide change, so one edited
/// rule prints once.
pub fn diff_policies(
    old: &Policy,
    new: &Policy,
    schema: &Schema,
    message: &str,
) -> Result<Vec<PolicyChange>, String> {
    let mut changes = Vec::new();
    for name in old.purposes.keys() {
        if !new.purposes.contains_key(name) {
            changes.push(PolicyChange::PurposeRemoved(name.clone()));
        }
    }
    for name in new.purposes.keys() {
        if !old.purposes.contains_key(name) {
            changes.push(PolicyChange::PurposeAdded(name.clone()));
        }
    }
    for (name, old_p) in &old.purposes {
        let Some(new_p) = new.purposes.get(name) else {
            continue;
        };
        let grant = ConsentGrant {
            purposes: [name.clone()].into(),
            special_categories: old_p
                .special_categories
                .iter()
                .chain(&new_p.special_categories)
                .cloned()
                .collect(),
        };
        let base_before = old.explain(schema, message, name, &grant, None)?;
        let base_after = new.explain(schema, message, name, &grant, None)?;
        let base = changed(&base_before, &base_after);
        for (path, before, after) in &base {
            changes.push(PolicyChange::Decision {
                purpose: name.clone(),
                jurisdiction: None,
                path: path.clone(),
                before: before.clone(),
                after: after.clone(),
            });
        }
        let codes: BTreeSet<&String> = old_p
            .jurisdictions
            .keys()
            .chain(new_p.jurisdictions.keys())
            .collect();
        for code in codes {
            let before = old.explain(schema, message, name, &grant, Some(code))?;
            let after = new.explain(schema, message, name, &grant, Some(code))?;
            for change in changed(&before, &after) {
                if base.contains(&change) {
                    continue;
                }
                let (path, before, after) = change;
                changes.push(PolicyChange::Decision {
                    purpose: name.clone(),
                    jurisdiction: Some(code.clone()),
                    path,
                    before,
                    after,
                });
            }
        }
    }
    Ok(changes)
}

/// (path, before, after) for every path whose decision text differs.
fn changed(before: &[Explanation], after: &[Explanation]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for b in before {
        let a = after.iter().find(|a| a.path == b.path);
        let (was, now) = (decision(Some(b)), decision(a));
        if was != now {
            out.push((b.path.clone(), was, now));
        }
    }
    out
}

/// The action, and the freshness limit when one applies.
fn decision(e: Option<&Explanation>) -> String {
    match e {
        None => "(no field)".to_owned(),
        Some(e) => match e.max_age_secs {
            Some(secs) => format!("{} (max age {}d)", e.decision.action, secs / 86_400),
            None => e.decision.action.to_string(),
        },
    }
}
