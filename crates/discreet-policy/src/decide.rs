//! The one decision function: what a purpose gets of one field. Plans and explanations
//! both come from here, so `explain` can never disagree with what is enforced.
use std::fmt;

use discreet_redact::ScalarKind;
use discreet_schema::LabelContext;

use crate::{Action, ConsentGrant, Purpose, Rule, Vocabulary, vocabulary::within};

/// A field as the decision sees it: its inherited label and its type.
#[derive(Clone, Debug)]
pub(crate) struct FieldSite<'a> {
    pub(crate) ctx: &'a LabelContext,
    pub(crate) kind: ScalarKind,
}

/// What a purpose gets of a field, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldDecision {
    pub action: Action,
    pub because: Because,
}

/// The reason behind a decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Because {
    /// A rule chose the action.
    Rule {
        line: u64,
        category: String,
        jurisdiction: Option<String>,
    },
    /// No category reaches the field: never released.
    NoCategory,
    /// No rule of the purpose matches the field's category: the default is drop.
    NoRule,
    /// A special category the purpose does not list.
    SpecialNotAllowed(String),
    /// A special category the subject's consent does not name.
    SpecialNotGranted(String),
    /// The purpose denies the field's provenance or source.
    ProvenanceDenied(String),
    /// The rule's transform cannot produce a value of the field's type.
    TransformDoesNotFit { line: u64, action: Action },
}

impl fmt::Display for Because {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Because::Rule {
                line,
                category,
                jurisdiction: None,
            } => write!(f, "rule {category} (line {line})"),
            Because::Rule {
                line,
                category,
                jurisdiction: Some(j),
            } => {
                write!(f, "rule {category} for {j} (line {line})")
            }
            Because::NoCategory => f.write_str("field has no category"),
            Because::NoRule => f.write_str("no rule matches: default drop"),
            Because::SpecialNotAllowed(c) => {
                write!(f, "special category {c} not allowed for this purpose")
            }
            Because::SpecialNotGranted(c) => write!(f, "special category {c} not named by consent"),
            Because::ProvenanceDenied(p) => write!(f, "purpose denies {p} data"),
            Because::TransformDoesNotFit { line, action } => {
                write!(
                    f,
                    "{action} (line {line}) cannot apply to this type: dropped"
                )
            }
        }
    }
}

fn drop(because: Because) -> FieldDecision {
    FieldDecision {
        action: Action::Drop,
        because,
    }
}

/// Decides one field for one purpose, under the jurisdiction codes in `scopes` (most
/// specific first; empty for the purpose's base rules) and the subject's grant.
pub(crate) fn decide(
    purpose: &Purpose,
    vocabulary: &Vocabulary,
    scopes: &[&str],
    grant: &ConsentGrant,
    site: &FieldSite<'_>,
) -> FieldDecision {
    let Some(raw) = site.ctx.category.as_deref() else {
        return drop(Because::NoCategory);
    };
    let category = vocabulary.canonical(raw);
    if purpose.deny_provenance.contains(&site.ctx.provenance) {
        return drop(Because::ProvenanceDenied(snake(&format!(
            "{:?}",
            site.ctx.provenance
        ))));
    }
    if purpose.deny_source.contains(&site.ctx.source) {
        return drop(Because::ProvenanceDenied(snake(&format!(
            "{:?}",
            site.ctx.source
        ))));
    }
    if site.ctx.special || vocabulary.is_special(category) {
        let canon = |c: &String| vocabulary.canonical(c).to_owned();
        if !purpose
            .special_categories
            .iter()
            .map(canon)
            .any(|c| within(category, &c))
        {
            return drop(Because::SpecialNotAllowed(category.to_owned()));
        }
        if !grant
            .special_categories
            .iter()
            .map(canon)
            .any(|c| within(category, &c))
        {
            return drop(Because::SpecialNotGranted(category.to_owned()));
        }
    }
    // The most specific jurisdiction with a matching rule overrides everything below it.
    let mut chosen = None;
    for scope in scopes {
        if let Some(rules) = purpose.jurisdictions.get(*scope) {
            chosen = best_rule(rules, category, site.ctx);
            if chosen.is_some() {
                break;
            }
        }
    }
    let Some(rule) = chosen.or_else(|| best_rule(&purpose.rules, category, site.ctx)) else {
        return drop(Because::NoRule);
    };
    if !rule.action.fits(site.kind) {
        return drop(Because::TransformDoesNotFit {
            line: rule.line,
            action: rule.action.clone(),
        });
    }
    FieldDecision {
        action: rule.action.clone(),
        because: Because::Rule {
            line: rule.line,
            category: rule.category.clone(),
            jurisdiction: rule.jurisdiction.clone(),
        },
    }
}

/// Whether a rule applies to a field with `category` and label `ctx`.
pub(crate) fn matches(rule: &Rule, category: &str, ctx: &LabelContext) -> bool {
    within(category, &rule.category)
        && (rule.provenance.is_empty() || rule.provenance.contains(&ctx.provenance))
        && (rule.source.is_empty() || rule.source.contains(&ctx.source))
}

/// Most specific matching rule; at equal specificity the most restrictive (deny beats
/// allow), and at equal restrictiveness the first written.
fn best_rule<'r>(rules: &'r [Rule], category: &str, ctx: &LabelContext) -> Option<&'r Rule> {
    let mut best: Option<&Rule> = None;
    for rule in rules.iter().filter(|r| matches(r, category, ctx)) {
        best = match best {
            None => Some(rule),
            Some(b) => {
                let (rs, bs) = (rule.specificity(), b.specificity());
                if rs > bs
                    || (rs == bs && rule.action.restrictiveness() < b.action.restrictiveness())
                {
                    Some(rule)
                } else {
                    Some(b)
                }
            }
        };
    }
    best
}

/// The freshness limit for a category: the most specific `max_data_age` entry.
pub(crate) fn max_age(
    purpose: &Purpose,
    vocabulary: &Vocabulary,
    category: Option<&str>,
) -> Option<u64> {
    let category = vocabulary.canonical(category?);
    purpose
        .max_data_age
        .iter()
        .filter(|(c, _)| within(category, c))
        .max_by_key(|(c, _)| c.len())
        .map(|(_, secs)| *secs)
}

/// `ThirdParty` → `third_party`, as the policy file spells it.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
