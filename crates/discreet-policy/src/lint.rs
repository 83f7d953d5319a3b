//! Schema lint: labelling mistakes a store team should fix before a policy can do its
//! job. Checks every field reachable from a service response, because those are the
//! fields the gateway rewrites.
use std::fmt;

use discreet_schema::{
    LabelContext, Schema, Sensitivity,
    prost_reflect::{Kind, MessageDescriptor},
};

use crate::Vocabulary;

/// One labelling problem, naming the field by its full protobuf name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LintFinding {
    /// `profile.v1.Order.order_id`, or a message name for a message default.
    pub field: String,
    pub problem: LintProblem,
}

/// What is wrong with a field's label.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LintProblem {
    /// No category reaches the field: it can never be released.
    NoCategory { path: String },
    /// The category is not in the vocabulary.
    UnknownCategory(String),
    /// Marked SENSITIVITY_SPECIAL, but its category is not special in the vocabulary.
    SpecialNotSpecialCategory(String),
}

impl fmt::Display for LintFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            LintProblem::NoCategory { path } => {
                write!(
                    f,
                    "{}: no category (path {path}): never released",
                    self.field
                )
            }
            LintProblem::UnknownCategory(c) => {
                write!(f, "{}: unknown category {c}", self.field)
            }
            LintProblem::SpecialNotSpecialCategory(c) => write!(
                f,
                "{}: marked SENSITIVITY_SPECIAL but its category {c} is not a special category",
                self.field
            ),
        }
    }
}

/// Lints every field reachable from the schema's response types. Role mismatches are
/// caught when the schema loads, before this runs.
#[must_use]
pub fn lint_schema(schema: &Schema, vocabulary: &Vocabulary) -> Vec<LintFinding> {
    let mut findings = Vec::new();
    let mut unlabelled = std::collections::HashSet::new();
    for root in schema.response_types() {
        // A type reached from several responses is reported once, at its first path.
        for u in schema.unlabelled_fields(&root) {
            if !unlabelled.insert(u.full_name.clone()) {
                continue;
            }
            findings.push(LintFinding {
                field: u.full_name,
                problem: LintProblem::NoCategory { path: u.path },
            });
        }
        let mut stack = Vec::new();
        walk(
            schema,
            vocabulary,
            &root,
            &LabelContext::default(),
            &mut stack,
            &mut findings,
        );
    }
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert(f.clone()));
    findings
}

fn walk(
    schema: &Schema,
    vocabulary: &Vocabulary,
    message: &MessageDescriptor,
    outer: &LabelContext,
    stack: &mut Vec<String>,
    out: &mut Vec<LintFinding>,
) {
    if stack.iter().any(|m| m == message.full_name()) {
        return;
    }
    stack.push(message.full_name().to_owned());
    let label = schema.message_label(message);
    if let Some(c) = label.and_then(|l| l.category.as_deref())
        && vocabulary.category(c).is_none()
    {
        out.push(LintFinding {
            field: message.full_name().to_owned(),
            problem: LintProblem::UnknownCategory(c.to_owned()),
        });
    }
    let ctx = outer.enter_message(label);
    for field in message.fields() {
        let own = schema.field_label(&field);
        let fctx = ctx.enter_field(own);
        if let Some(own) = own {
            if let Some(c) = own.category.as_deref()
                && vocabulary.category(c).is_none()
            {
                out.push(LintFinding {
                    field: field.full_name().to_owned(),
                    problem: LintProblem::UnknownCategory(c.to_owned()),
                });
            }
            if own.sensitivity == Sensitivity::Special
                && let Some(c) = fctx.category.as_deref()
                && vocabulary.category(c).is_some()
                && !vocabulary.is_special(vocabulary.canonical(c))
            {
                out.push(LintFinding {
                    field: field.full_name().to_owned(),
                    problem: LintProblem::SpecialNotSpecialCategory(c.to_owned()),
                });
            }
        }
        if let Kind::Message(child) = field.kind() {
            walk(schema, vocabulary, &child, &fctx, stack, out);
        }
    }
    stack.pop();
}
