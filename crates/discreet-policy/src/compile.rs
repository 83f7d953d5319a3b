//! Compiling (message type, purpose, grant) into plans, and explaining them.
use discreet_redact::{
    FieldAction, FieldRule, MsgId, PlanBuilder, PseudonymKey, RedactError, RedactionPlan,
    RewriteReport, ScalarKind, UpdatedAtField, date::CivilDate, extract_birth_date, last_string,
    rewrite,
};
use discreet_schema::{
    LabelContext, Role, Schema,
    prost_reflect::{FieldDescriptor, Kind, MessageDescriptor},
};

use crate::{
    ConsentGrant, Explanation, Policy, Purpose,
    decide::{FieldSite, decide, max_age},
    jurisdiction_chain,
};

/// Everything the gateway needs to serve one (message type, purpose, grant): the record
/// guards and a redaction plan per jurisdiction the purpose overrides.
#[derive(Debug, Clone)]
pub struct PurposePlan {
    pub purpose: String,
    pub policy_version: String,
    base: RedactionPlan,
    variants: Vec<(String, RedactionPlan)>,
    minimum_age: Vec<(String, u32)>,
    birth_date: Option<(Vec<u32>, bool)>,
    jurisdiction: Option<Vec<u32>>,
    /// Whether a record's jurisdiction changes what it gets (a variant plan or a minimum
    /// age of its own): then a record whose jurisdiction is unknown is refused.
    jurisdiction_matters: bool,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The rewritten record was appended to the output.
    Released,
    /// Nothing of the record may be released for this purpose.
    Refused(Refusal),
}

/// Why a whole record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the subject is younger than the purpose's minimum age of {minimum}")]
    BelowMinimumAge { minimum: u32 },
    #[error("the purpose has a minimum age of {minimum} and the record has no valid birth date")]
    AgeUnknown { minimum: u32 },
    /// The purpose has rules or a minimum age per jurisdiction, and the record's
    /// jurisdiction is missing or not an ISO 3166 code: which of them apply is unknown,
    /// and the rules of no jurisdiction could release what an override withholds.
    #[error(
        "the purpose's rules depend on the jurisdiction and the record has no valid jurisdiction (an ISO 3166 code such as FR or US-CA)"
    )]
    JurisdictionUnknown,
}

impl PurposePlan {
    /// Compiles the plans. `pseudonym_secret` is the deployment's secret from which each
    /// purpose's HMAC key is derived.
    pub fn compile(
        policy: &Policy,
        schema: &Schema,
        message: &str,
        purpose: &str,
        grant: &ConsentGrant,
        pseudonym_secret: &[u8],
    ) -> Result<PurposePlan, String> {
        let p = policy
            .purpose(purpose)
            .ok_or_else(|| format!("purpose {purpose:?} is not defined by the policy"))?;
        let root = schema.message(message).map_err(|e| e.to_string())?;
        let key = PseudonymKey::derive(pseudonym_secret, purpose);
        let build = |scopes: Vec<&str>| -> Result<RedactionPlan, String> {
            let mut w = Walker::new(policy, p, schema, scopes, grant, &key, false);
            let id = w.message(&root, &LabelContext::default(), "")?;
            Ok(w.builder.finish(id))
        };
        let base = build(Vec::new())?;
        let mut variants = Vec::new();
        for code in p.jurisdictions.keys() {
            let scopes = jurisdiction_chain(code)
                .into_iter()
                .filter(|c| p.jurisdictions.contains_key(*c))
                .collect();
            variants.push((code.clone(), build(scopes)?));
        }
        let jurisdiction_matters = p.depends_on_jurisdiction();
        Ok(PurposePlan {
            jurisdiction_matters,
            purpose: purpose.to_owned(),
            policy_version: policy.version.clone(),
            base,
            variants,
            minimum_age: p.minimum_age.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            birth_date: role_path(schema, &root, Role::BirthDate),
            jurisdiction: role_path(schema, &root, Role::Jurisdiction).map(|(p, _)| p),
        })
    }

    /// The plan for a record in `jurisdiction` (normalized as a record's is; an unknown
    /// code gets the base plan here, which [`PurposePlan::apply`] would refuse).
    #[must_use]
    pub fn plan_for(&self, jurisdiction: Option<&str>) -> &RedactionPlan {
        let code = jurisdiction.and_then(crate::normalize_code);
        self.plan_for_chain(&code.as_deref().map(jurisdiction_chain).unwrap_or_default())
    }

    fn plan_for_chain(&self, chain: &[&str]) -> &RedactionPlan {
        match self.variant_for_chain(chain) {
            Some(i) => self.variants.get(i).map_or(&self.base, |(_, p)| p),
            None => &self.base,
        }
    }

    /// Which jurisdiction variant serves a record with this chain (`None`: the base plan).
    fn variant_for_chain(&self, chain: &[&str]) -> Option<usize> {
        if self.variants.is_empty() {
            return None;
        }
        chain
            .iter()
            .find_map(|c| self.variants.iter().position(|(k, _)| k == c))
    }

    /// The redaction plan numbered as [`PurposePlan::apply_variant`] reports it.
    #[must_use]
    pub fn redaction_plan(&self, variant: Option<usize>) -> &RedactionPlan {
        variant
            .and_then(|i| self.variants.get(i))
            .map_or(&self.base, |(_, p)| p)
    }

    /// The jurisdictions that have a plan of their own, in the order that
    /// [`PurposePlan::apply_variant`] numbers them.
    pub fn variant_jurisdictions(&self) -> impl Iterator<Item = &str> {
        self.variants.iter().map(|(k, _)| k.as_str())
    }

    fn minimum_age_for(&self, chain: &[&str]) -> Option<u32> {
        let lookup = |c: &str| {
            self.minimum_age
                .iter()
                .find(|(k, _)| k == c)
                .map(|(_, a)| *a)
        };
        chain
            .iter()
            .find_map(|c| lookup(c))
            .or_else(|| lookup("default"))
    }

    /// Applies the guards and, if the record may be released, appends its rewrite to
    /// `out`. On a refusal or an error nothing is appended.
    pub fn apply(
        &self,
        input: &[u8],
        now_unix: i64,
        out: &mut Vec<u8>,
        report: &mut RewriteReport,
    ) -> Result<RecordOutcome, RedactError> {
        self.apply_variant(input, now_unix, out, report)
            .map(|(outcome, _)| outcome)
    }

    /// As [`PurposePlan::apply`], also telling which plan served the record: `None` for
    /// the base plan, `Some(i)` for the `i`-th of [`PurposePlan::variant_jurisdictions`].
    /// The gateway uses it to report exactly what that plan withholds.
    pub fn apply_variant(
        &self,
        input: &[u8],
        now_unix: i64,
        out: &mut Vec<u8>,
        report: &mut RewriteReport,
    ) -> Result<(RecordOutcome, Option<usize>), RedactError> {
        let raw = match &self.jurisdiction {
            Some(path) => last_string(input, path)?,
            None => None,
        };
        let code = raw.and_then(crate::normalize_code);
        if code.is_none() && self.jurisdiction_matters {
            return Ok((RecordOutcome::Refused(Refusal::JurisdictionUnknown), None));
        }
        // The chain is worked out once per record: the age guard and the plan both use it.
        let chain = code.as_deref().map(jurisdiction_chain).unwrap_or_default();
        if let Some(minimum) = self.minimum_age_for(&chain) {
            let birth = match &self.birth_date {
                Some((path, is_message)) => extract_birth_date(input, path, *is_message)?,
                None => None,
            };
            match birth {
                None => {
                    return Ok((
                        RecordOutcome::Refused(Refusal::AgeUnknown { minimum }),
                        None,
                    ));
                }
                Some(b)
                    if b.age_on(CivilDate::from_unix(now_unix))
                        < i32::try_from(minimum).unwrap_or(i32::MAX) =>
                {
                    return Ok((
                        RecordOutcome::Refused(Refusal::BelowMinimumAge { minimum }),
                        None,
                    ));
                }
                Some(_) => {}
            }
        }
        let mark = out.len();
        let variant = self.variant_for_chain(&chain);
        if let Err(e) = rewrite(self.plan_for_chain(&chain), input, now_unix, out, report) {
            // A partial rewrite must never reach anyone: take it back here, not in callers.
            out.truncate(mark);
            return Err(e);
        }
        Ok((RecordOutcome::Released, variant))
    }
}

impl Policy {
    /// For every field path below `message`: what `purpose` gets under `grant` for a record
    /// in `jurisdiction`, and the rule or reason that decided it.
    pub fn explain(
        &self,
        schema: &Schema,
        message: &str,
        purpose: &str,
        grant: &ConsentGrant,
        jurisdiction: Option<&str>,
    ) -> Result<Vec<Explanation>, String> {
        let p = self
            .purpose(purpose)
            .ok_or_else(|| format!("purpose {purpose:?} is not defined by the policy"))?;
        let root = schema.message(message).map_err(|e| e.to_string())?;
        let code = jurisdiction.and_then(crate::normalize_code);
        let scopes = code
            .as_deref()
            .into_iter()
            .flat_map(jurisdiction_chain)
            .filter(|c| p.jurisdictions.contains_key(*c))
            .collect();
        let key = PseudonymKey::derive(b"explain", purpose);
        let mut w = Walker::new(self, p, schema, scopes, grant, &key, true);
        w.message(&root, &LabelContext::default(), "")?;
        Ok(w.explained)
    }
}

/// The path of field numbers to the first singular field with `role` below `root`, and
/// whether that field is a message (a date message for birth dates).
#[must_use]
pub fn role_path(
    schema: &Schema,
    root: &MessageDescriptor,
    role: Role,
) -> Option<(Vec<u32>, bool)> {
    fn search(
        schema: &Schema,
        m: &MessageDescriptor,
        role: Role,
        path: &mut Vec<u32>,
        depth: usize,
    ) -> Option<bool> {
        if depth > 8 {
            return None;
        }
        for f in m.fields() {
            if schema.field_label(&f).and_then(|l| l.role) == Some(role) {
                path.push(f.number());
                return Some(matches!(f.kind(), Kind::Message(_)));
            }
        }
        for f in m.fields().filter(|f| !f.is_list() && !f.is_map()) {
            if let Kind::Message(child) = f.kind() {
                path.push(f.number());
                if let Some(found) = search(schema, &child, role, path, depth + 1) {
                    return Some(found);
                }
                path.pop();
            }
        }
        None
    }
    let mut path = Vec::new();
    search(schema, root, role, &mut path, 0).map(|is_message| (path, is_message))
}

pub(crate) fn scalar_kind(kind: &Kind) -> ScalarKind {
    match kind {
        Kind::Double => ScalarKind::Double,
        Kind::Float => ScalarKind::Float,
        Kind::Int32 => ScalarKind::Int32,
        Kind::Int64 => ScalarKind::Int64,
        Kind::Uint32 => ScalarKind::Uint32,
        Kind::Uint64 => ScalarKind::Uint64,
        Kind::Sint32 => ScalarKind::Sint32,
        Kind::Sint64 => ScalarKind::Sint64,
        Kind::Fixed32 => ScalarKind::Fixed32,
        Kind::Fixed64 => ScalarKind::Fixed64,
        Kind::Sfixed32 => ScalarKind::Sfixed32,
        Kind::Sfixed64 => ScalarKind::Sfixed64,
        Kind::Bool => ScalarKind::Bool,
        Kind::String => ScalarKind::String,
        Kind::Bytes => ScalarKind::Bytes,
        Kind::Enum(_) => ScalarKind::Enum,
        Kind::Message(_) => ScalarKind::Message,
    }
}

struct Walker<'a> {
    policy: &'a Policy,
    purpose: &'a Purpose,
    schema: &'a Schema,
    scopes: Vec<&'a str>,
    grant: &'a ConsentGrant,
    key: &'a PseudonymKey,
    builder: PlanBuilder,
    /// Messages being built, to close cycles of recursive types.
    in_progress: Vec<(String, LabelContext, MsgId)>,
    explaining: bool,
    explained: Vec<Explanation>,
}

impl<'a> Walker<'a> {
    fn new(
        policy: &'a Policy,
        purpose: &'a Purpose,
        schema: &'a Schema,
        scopes: Vec<&'a str>,
        grant: &'a ConsentGrant,
        key: &'a PseudonymKey,
        explaining: bool,
    ) -> Self {
        Walker {
            policy,
            purpose,
            schema,
            scopes,
            grant,
            key,
            builder: PlanBuilder::new(),
            in_progress: Vec::new(),
            explaining,
            explained: Vec::new(),
        }
    }

    fn message(
        &mut self,
        desc: &MessageDescriptor,
        outer: &LabelContext,
        prefix: &str,
    ) -> Result<MsgId, String> {
        let ctx = outer.enter_message(self.schema.message_label(desc));
        if let Some((_, _, id)) = self
            .in_progress
            .iter()
            .find(|(n, c, _)| n == desc.full_name() && *c == ctx)
        {
            return Ok(*id);
        }
        let id = self.builder.reserve(desc.full_name());
        self.in_progress
            .push((desc.full_name().to_owned(), ctx.clone(), id));
        let mut rules = Vec::new();
        let mut updated_at = None;
        for field in desc.fields() {
            let label = self.schema.field_label(&field);
            let fctx = ctx.enter_field(label);
            let path = if prefix.is_empty() {
                field.name().to_owned()
            } else {
                format!("{prefix}.{}", field.name())
            };
            if label.and_then(|l| l.role) == Some(Role::UpdatedAt) {
                updated_at = Some(match field.kind() {
                    Kind::Message(_) => UpdatedAtField::Timestamp(field.number()),
                    _ => UpdatedAtField::UnixSeconds(field.number()),
                });
            }
            let (action, max_age_secs) = self.field(&field, &fctx, &path)?;
            let path_id = self.builder.path(&path);
            rules.push(FieldRule {
                number: field.number(),
                kind: scalar_kind(&field.kind()),
                repeated: field.is_list() || field.is_map(),
                action,
                max_age_secs,
                path_id,
            });
        }
        self.in_progress.pop();
        self.builder
            .define(id, rules, updated_at)
            .map_err(|e| format!("{}: {e}", desc.full_name()))?;
        Ok(id)
    }

    fn field(
        &mut self,
        field: &FieldDescriptor,
        fctx: &LabelContext,
        path: &str,
    ) -> Result<(FieldAction, Option<u64>), String> {
        let kind = field.kind();
        if field.is_map() {
            let Kind::Message(entry) = kind else {
                return Ok((FieldAction::Drop, None));
            };
            let (key_f, value_f) = (entry.map_entry_key_field(), entry.map_entry_value_field());
            // The entry exists only if the map's own category may be released; the value
            // is decided (or descended into) like any field.
            let value_kind = scalar_kind(&value_f.kind());
            let decided_kind = if value_kind == ScalarKind::Message {
                scalar_kind(&key_f.kind())
            } else {
                value_kind
            };
            let (value_action, max_age) = self.leaf(fctx, decided_kind, path);
            if matches!(value_action, FieldAction::Drop) {
                return Ok((FieldAction::Drop, None));
            }
            // A key holds the same kind of data as its value (an e-mail address, a device
            // id): it is released only as the decision says. A transform that cannot apply
            // to the key drops the whole map rather than release keys in clear.
            let key_kind = scalar_kind(&key_f.kind());
            let key_action = match &value_action {
                FieldAction::Keep => FieldAction::Keep,
                FieldAction::Transform(t) if t.fits(key_kind) => FieldAction::Transform(t.clone()),
                _ => return Ok((FieldAction::Drop, None)),
            };
            let value_action = match value_f.kind() {
                Kind::Message(m) => FieldAction::Message(self.message(&m, fctx, path)?),
                _ => value_action,
            };
            let entry_id = self.builder.reserve(entry.full_name());
            let key_path = self.builder.path(&format!("{path}.key"));
            let value_path = self.builder.path(&format!("{path}.value"));
            let entry_rules = vec![
                FieldRule {
                    number: 1,
                    kind: key_kind,
                    repeated: false,
                    action: key_action,
                    max_age_secs: None,
                    path_id: key_path,
                },
                FieldRule {
                    number: 2,
                    kind: value_kind,
                    repeated: false,
                    action: value_action,
                    max_age_secs: None,
                    path_id: value_path,
                },
            ];
            self.builder.define(entry_id, entry_rules, None)?;
            return Ok((FieldAction::Message(entry_id), max_age));
        }
        if let Kind::Message(child) = kind {
            return Ok((
                FieldAction::Message(self.message(&child, fctx, path)?),
                None,
            ));
        }
        Ok(self.leaf(fctx, scalar_kind(&kind), path))
    }

    fn leaf(
        &mut self,
        fctx: &LabelContext,
        kind: ScalarKind,
        path: &str,
    ) -> (FieldAction, Option<u64>) {
        let site = FieldSite { ctx: fctx, kind };
        let decision = decide(
            self.purpose,
            &self.policy.vocabulary,
            &self.scopes,
            self.grant,
            &site,
        );
        let max_age_secs = if decision.action.releases() {
            max_age(
                self.purpose,
                &self.policy.vocabulary,
                fctx.category.as_deref(),
            )
        } else {
            None
        };
        let action = match decision.action.transform(self.key) {
            Some(t) => FieldAction::Transform(t),
            None if decision.action.releases() => FieldAction::Keep,
            None => FieldAction::Drop,
        };
        if self.explaining {
            self.explained.push(Explanation {
                path: path.to_owned(),
                category: fctx.category.clone(),
                decision,
                max_age_secs,
            });
        }
        (action, max_age_secs)
    }
}
