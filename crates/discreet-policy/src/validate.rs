//! From the document as written to a [`Policy`], collecting every problem with its line.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use discreet_schema::{
    LabelContext, Role, Schema,
    prost_reflect::{Kind, MessageDescriptor},
};
use serde_saphyr::{Location, Spanned};

use crate::{
    Action, Diagnostic, Policy, Purpose, Rule, Vocabulary, VocabularyEntry,
    compile::scalar_kind,
    decide::matches,
    diagnostic::Diagnostics,
    document::{PolicyDoc, PurposeDoc, RuleDoc},
    jurisdiction::valid_code,
    numbers, parse_duration,
};

pub(crate) fn load(file: &Path, text: &str, schema: &Schema) -> Result<Policy, Vec<Diagnostic>> {
    let mut diags = Diagnostics::new(file.to_owned());
    let doc: PolicyDoc = match serde_saphyr::from_str(text) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, column) = crate::yaml_error::position(&e);
            return Err(vec![Diagnostic {
                severity: crate::Severity::Error,
                file: file.to_owned(),
                line,
                column,
                message: crate::yaml_error::message(&e),
            }]);
        }
    };
    let mut vocabulary = match Vocabulary::fideslang() {
        Ok(v) => v,
        Err(e) => {
            diags.error(&doc.version.referenced, e);
            return Err(diags.items);
        }
    };
    extend_vocabulary(&doc, &mut vocabulary, &mut diags);
    // Once, where they are written: not once per purpose that inherits them, and also
    // when no purpose does.
    numbers::minimum_ages(&doc.defaults.minimum_age, &mut diags);
    if doc.version.value.trim().is_empty() {
        diags.error(
            &doc.version.referenced,
            "version must not be empty: it names the policy in every span",
        );
    }
    let sites = schema_sites(schema);
    let mut purposes = BTreeMap::new();
    if doc.purposes.is_empty() {
        diags.error(
            &doc.version.referenced,
            "the policy defines no purposes: every call would be refused",
        );
    }
    for (name, spanned) in &doc.purposes {
        let purpose = purpose(name, spanned, &doc, &vocabulary, &sites, &mut diags);
        purposes.insert(name.clone(), purpose);
    }
    // In file order: purposes are checked in name order, not in the order written.
    diags.items.sort_by_key(|d| (d.line, d.column));
    if diags.has_errors() {
        return Err(diags.items);
    }
    Ok(Policy {
        version: doc.version.value,
        vocabulary,
        purposes,
        warnings: diags.items,
    })
}

/// Which list of the vocabulary an added entry goes to.
#[derive(Clone, Copy)]
enum EntryKind {
    Category,
    Purpose,
}

fn extend_vocabulary(doc: &PolicyDoc, vocabulary: &mut Vocabulary, diags: &mut Diagnostics) {
    let lists = [
        (EntryKind::Category, &doc.vocabulary.categories),
        (EntryKind::Purpose, &doc.vocabulary.purposes),
    ];
    for (kind, entries) in lists {
        let noun = match kind {
            EntryKind::Category => "category",
            EntryKind::Purpose => "purpose",
        };
        for entry in entries {
            let e = &entry.value;
            let known = |v: &Vocabulary, key: &str| match kind {
                EntryKind::Category => v.category(key).is_some(),
                EntryKind::Purpose => v.purpose(key).is_some(),
            };
            if known(vocabulary, &e.key) {
                diags.error(
                    &entry.referenced,
                    format!("{noun} {} is already in the vocabulary", e.key),
                );
                continue;
            }
            if let Some(parent) = &e.parent
                && !known(vocabulary, parent)
            {
                diags.error(
                    &entry.referenced,
                    format!(
                        "parent {noun} {parent} of {} is not in the vocabulary",
                        e.key
                    ),
                );
            }
            let added = VocabularyEntry {
                key: e.key.clone(),
                parent: e.parent.clone(),
                name: e.key.clone(),
                description: e.description.clone(),
                deprecated: None,
                replaced_by: None,
                special: matches!(kind, EntryKind::Category) && e.special,
            };
            match kind {
                EntryKind::Category => vocabulary.add_category(added),
                EntryKind::Purpose => vocabulary.add_purpose(added),
            }
        }
    }
}

/// A leaf of the schema as the policy sees it.
struct Site {
    path: String,
    category: Option<String>,
    ctx: LabelContext,
    kind: discreet_redact::ScalarKind,
    /// The field's own role (subject id, birth date, jurisdiction, updated-at).
    role: Option<Role>,
}

/// Every leaf below every message type a service returns.
fn schema_sites(schema: &Schema) -> Vec<Site> {
    fn walk(
        schema: &Schema,
        m: &MessageDescriptor,
        ctx: &LabelContext,
        prefix: &str,
        stack: &mut Vec<String>,
        out: &mut Vec<Site>,
    ) {
        if stack.iter().any(|n| n == m.full_name()) {
            return;
        }
        stack.push(m.full_name().to_owned());
        let ctx = ctx.enter_message(schema.message_label(m));
        for f in m.fields() {
            let fctx = ctx.enter_field(schema.field_label(&f));
            let path = format!("{prefix}{}.{}", m.name(), f.name());
            let kind = if f.is_map() {
                match f.kind() {
                    Kind::Message(e) => {
                        let value = e.map_entry_value_field();
                        if let Kind::Message(vm) = value.kind() {
                            walk(schema, &vm, &fctx, "", stack, out);
                            scalar_kind(&e.map_entry_key_field().kind())
                        } else {
                            scalar_kind(&value.kind())
                        }
                    }
                    other => scalar_kind(&other),
                }
            } else if let Kind::Message(child) = f.kind() {
                walk(schema, &child, &fctx, "", stack, out);
                continue;
            } else {
                scalar_kind(&f.kind())
            };
            out.push(Site {
                path,
                category: fctx.category.clone(),
                ctx: fctx,
                kind,
                role: schema.field_label(&f).and_then(|l| l.role),
            });
        }
        stack.pop();
    }
    let mut out = Vec::new();
    for m in schema.response_types() {
        walk(
            schema,
            &m,
            &LabelContext::default(),
            "",
            &mut Vec::new(),
            &mut out,
        );
    }
    // A type reached from several responses (Profile alone and in a batch) counts once.
    let mut seen = BTreeSet::new();
    out.retain(|s| seen.insert((s.path.clone(), format!("{:?}", s.ctx))));
    out
}

fn purpose(
    name: &str,
    spanned: &Spanned<PurposeDoc>,
    doc: &PolicyDoc,
    vocabulary: &Vocabulary,
    sites: &[Site],
    diags: &mut Diagnostics,
) -> Purpose {
    let at = &spanned.referenced;
    let p = &spanned.value;
    if vocabulary.purpose(name).is_none() {
        diags.error(
            at,
            format!(
                "unknown purpose {name}: not in the fideslang vocabulary nor in vocabulary.purposes"
            ),
        );
    }
    if p.callers.is_empty() {
        diags.error(
            at,
            format!("purpose {name} lists no callers: nobody could declare it"),
        );
    }
    for caller in &p.callers {
        let c = caller.value.as_str();
        if c != "*" && (c.split('/').count() != 2 || c.split('/').any(str::is_empty)) {
            diags.error(
                &caller.referenced,
                format!("caller {c:?} must be namespace/serviceaccount or *"),
            );
        }
    }
    let mut special_categories = Vec::new();
    for sc in &p.special_categories {
        match vocabulary.category(&sc.value) {
            None => diags.error(
                &sc.referenced,
                format!("unknown category {} in special_categories", sc.value),
            ),
            Some(_) if !vocabulary.is_special(&sc.value) => {
                diags.warn(
                    &sc.referenced,
                    format!(
                        "{} is not a special category: listing it changes nothing",
                        sc.value
                    ),
                );
            }
            // No warning for a purpose whose legal basis is not consent: a special
            // category still needs the subject's explicit consent (GDPR art. 9(2)(a)),
            // which is what the gateway asks for (a token naming the purpose and the
            // category) whatever the purpose's own basis; the shipped analytics purpose
            // is that case, and correct.
            Some(_) => {
                special_categories.push(vocabulary.canonical(&sc.value).to_owned());
            }
        }
    }
    if let Some(own) = &p.minimum_age {
        numbers::minimum_ages(own, diags);
    }
    let minimum_age = p
        .minimum_age
        .as_ref()
        .unwrap_or(&doc.defaults.minimum_age)
        .iter()
        .map(|(code, age)| (code.clone(), age.value))
        .collect();
    let mut max_data_age = Vec::new();
    for (category, duration) in &p.max_data_age {
        known_category(category, &duration.referenced, vocabulary, diags);
        match parse_duration(&duration.value) {
            Ok(secs) => max_data_age.push((vocabulary.canonical(category).to_owned(), secs)),
            Err(e) => diags.error(
                &duration.referenced,
                format!("max_data_age for {category}: {e}"),
            ),
        }
    }
    let mut purpose = Purpose {
        name: name.to_owned(),
        description: p.description.clone(),
        legal_basis: p.legal_basis.value,
        callers: p.callers.iter().map(|c| c.value.clone()).collect(),
        special_categories,
        deny_provenance: p.deny.provenance.clone(),
        deny_source: p.deny.source.clone(),
        minimum_age,
        max_data_age,
        rules: Vec::new(),
        jurisdictions: BTreeMap::new(),
        line: at.line(),
    };
    purpose.rules = rules(&p.rules, None, &purpose, vocabulary, sites, diags);
    for (code, j) in &p.jurisdictions {
        if !valid_code(code) {
            diags.error(
                &j.referenced,
                format!(
                    "jurisdiction {code:?} must be an ISO 3166 code like DE or US-CA, or EU/EEA"
                ),
            );
        }
        let list = rules(
            &j.value.rules,
            Some(code),
            &purpose,
            vocabulary,
            sites,
            diags,
        );
        purpose.jurisdictions.insert(code.clone(), list);
    }
    check_fits(&purpose, vocabulary, sites, diags);
    jurisdiction_without_role(name, &purpose, at, sites, diags);
    purpose
}

/// A purpose whose rules or minimum age depend on the record's jurisdiction refuses every
/// record whose jurisdiction is unknown (fail closed); with no field labelled
/// `ROLE_JURISDICTION` in the schema, that is every record. Said at check time rather
/// than found in production.
fn jurisdiction_without_role(
    name: &str,
    purpose: &Purpose,
    at: &Location,
    sites: &[Site],
    diags: &mut Diagnostics,
) {
    if purpose.depends_on_jurisdiction()
        && !sites.iter().any(|s| s.role == Some(Role::Jurisdiction))
    {
        diags.warn(
            at,
            format!(
                "purpose {name} has rules or a minimum age per jurisdiction, but no field of \
                 the schema has ROLE_JURISDICTION: every record's jurisdiction is unknown, so \
                 every record is refused for this purpose"
            ),
        );
    }
}

fn known_category(
    category: &str,
    at: &Location,
    vocabulary: &Vocabulary,
    diags: &mut Diagnostics,
) -> bool {
    if let Some(unknown) = vocabulary.unknown_category(category) {
        diags.error(at, unknown);
        return false;
    }
    match vocabulary.category(category) {
        None => false,
        Some(e) => {
            if let Some(next) = &e.replaced_by {
                diags.warn(at, format!("category {category} is deprecated: use {next}"));
            }
            true
        }
    }
}

fn rules(
    docs: &[Spanned<RuleDoc>],
    jurisdiction: Option<&String>,
    purpose: &Purpose,
    vocabulary: &Vocabulary,
    sites: &[Site],
    diags: &mut Diagnostics,
) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut seen: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for spanned in docs {
        let (doc, at) = (&spanned.value, &spanned.referenced);
        numbers::action_parameters(&doc.action, at, diags);
        if !known_category(&doc.category, at, vocabulary, diags) {
            continue;
        }
        let rule = Rule {
            category: vocabulary.canonical(&doc.category).to_owned(),
            provenance: doc.provenance.clone(),
            source: doc.source.clone(),
            action: Action::from(&doc.action),
            line: at.line(),
            jurisdiction: jurisdiction.cloned(),
        };
        let key = (
            rule.category.clone(),
            format!("{:?}", sorted(&rule.provenance)),
            format!("{:?}", sorted(&rule.source)),
        );
        if let Some(first) = seen.get(&key) {
            diags.error(at, format!("conflicting rules: category {} is already ruled at line {first} with the same conditions", rule.category));
            continue;
        }
        seen.insert(key, at.line());
        check_against_schema(&rule, purpose, vocabulary, sites, at, diags);
        out.push(rule);
    }
    out
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn check_against_schema(
    rule: &Rule,
    purpose: &Purpose,
    vocabulary: &Vocabulary,
    sites: &[Site],
    at: &Location,
    diags: &mut Diagnostics,
) {
    let matched: Vec<&Site> = sites
        .iter()
        .filter(|s| {
            s.category
                .as_deref()
                .is_some_and(|c| matches(rule, vocabulary.canonical(c), &s.ctx))
        })
        .collect();
    if matched.is_empty() {
        diags.error(at, format!("rule for {} can never match: no field of the schema has this category (or one below it) with these conditions", rule.category));
        return;
    }
    if rule.action.releases() && vocabulary.is_special(&rule.category) {
        let listed = purpose
            .special_categories
            .iter()
            .any(|c| crate::vocabulary::within(&rule.category, c));
        if !listed {
            diags.error(at, format!(
                "rule releases special category {} but purpose {} does not list it in special_categories, so it could never apply",
                rule.category, purpose.name
            ));
        }
    }
    if matched.iter().all(|s| !rule.action.fits(s.kind)) {
        let paths: Vec<&str> = matched.iter().map(|s| s.path.as_str()).collect();
        diags.error(
            at,
            format!(
                "{} cannot apply to any field it matches ({})",
                rule.action,
                paths.join(", ")
            ),
        );
    }
}

/// Warns where a rule decides a field its action cannot transform (the field is dropped),
/// and refuses a rule that releases integers it decides unchanged while calling them
/// generalised (a bucket of 1), using the real decision so that fields another rule
/// decides are not reported.
fn check_fits(purpose: &Purpose, vocabulary: &Vocabulary, sites: &[Site], diags: &mut Diagnostics) {
    let grant = crate::ConsentGrant {
        purposes: BTreeSet::new(),
        special_categories: purpose.special_categories.iter().cloned().collect(),
    };
    let mut scopes: Vec<Vec<&str>> = vec![Vec::new()];
    scopes.extend(purpose.jurisdictions.keys().map(|k| vec![k.as_str()]));
    let mut unfit: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    let mut unchanged: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for scope in &scopes {
        for site in sites {
            let d = crate::decide::decide(
                purpose,
                vocabulary,
                scope,
                &grant,
                &crate::decide::FieldSite {
                    ctx: &site.ctx,
                    kind: site.kind,
                },
            );
            let list = match d.because {
                crate::Because::TransformDoesNotFit { line, .. } => unfit.entry(line),
                crate::Because::Rule { line, .. }
                    if numbers::bucket_leaves_unchanged(&d.action, site.kind) =>
                {
                    unchanged.entry(line)
                }
                _ => continue,
            }
            .or_default();
            if !list.contains(&site.path.as_str()) {
                list.push(&site.path);
            }
        }
    }
    for (line, paths) in unchanged {
        diags.error_line(
            line,
            format!(
                "generalize bucket 1 releases integers unchanged ({}): expected a bucket of at least 2",
                paths.join(", ")
            ),
        );
    }
    for (line, paths) in unfit {
        diags.warn_line(
            line,
            format!(
                "the action of this rule cannot apply to {}: those fields are dropped",
                paths.join(", ")
            ),
        );
    }
}
