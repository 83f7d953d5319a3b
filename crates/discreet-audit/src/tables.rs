//! Each answer as a [`Table`]: which columns, and which of them the text table shows.
use std::collections::BTreeSet;

use discreet_telemetry::attr;

use crate::access::Access;
use crate::query::SubjectAccess;
use crate::render::{Cell, Column, Table};

pub(crate) fn columns(spec: &[(&'static str, bool)]) -> Vec<Column> {
    spec.iter()
        .map(|&(name, in_text)| Column { name, in_text })
        .collect()
}

pub(crate) fn list(items: &[String]) -> Cell {
    Cell::List(items.to_vec())
}

fn int(n: Option<i64>) -> Cell {
    n.map_or(Cell::Empty, Cell::Int)
}

/// One row per call.
#[must_use]
pub fn accesses_table(accesses: &[&Access]) -> Table {
    let rows = accesses
        .iter()
        .map(|a| {
            let subjects: Vec<String> = a
                .subject_pseudonyms()
                .into_iter()
                .map(str::to_owned)
                .collect();
            vec![
                Cell::Text(a.time()),
                Cell::opt(a.caller.as_deref()),
                Cell::opt(a.purpose.as_deref()),
                Cell::opt(a.legal_basis.as_deref()),
                Cell::opt(a.decision.as_deref()),
                Cell::opt(a.denial_reason.as_deref()),
                Cell::count(subjects.len()),
                list(&a.categories_released),
                list(&a.categories_withheld),
                list(&a.fields_released),
                list(&a.fields_transformed),
                list(&a.fields_withheld),
                int(a.records_total),
                int(a.records_released),
                int(a.records_withheld),
                Cell::opt(a.method.as_deref()),
                Cell::opt(a.policy_version.as_deref()),
                Cell::opt(a.decision_id.as_deref()),
                Cell::List(subjects),
                Cell::opt(a.audit_key_id.as_deref()),
                Cell::Text(a.trace_id.clone()),
                Cell::Text(a.span_id.clone()),
            ]
        })
        .collect();
    Table {
        columns: columns(&[
            ("time", true),
            ("caller", true),
            ("purpose", true),
            ("legal_basis", false),
            ("decision", true),
            ("reason", true),
            ("subjects", true),
            ("categories_released", true),
            ("categories_withheld", false),
            ("fields_released", false),
            ("fields_transformed", false),
            ("fields_withheld", false),
            ("records_total", false),
            ("records_released", false),
            ("records_withheld", false),
            ("method", false),
            ("policy_version", false),
            ("decision_id", false),
            ("subject_pseudonyms", false),
            ("audit_key_id", false),
            ("trace_id", false),
            ("span_id", false),
        ]),
        rows,
    }
}

/// One row per refused call: why, and how many subjects it refused.
#[must_use]
pub fn denials_table(accesses: &[&Access]) -> Table {
    let rows = accesses
        .iter()
        .map(|a| {
            let denied: Vec<_> = a
                .subjects
                .iter()
                .filter(|e| e.outcome.as_deref() == Some(attr::outcome::DENIED))
                .collect();
            // The call's own reason, else the reasons it gave subjects.
            let reasons: BTreeSet<String> = match &a.denial_reason {
                Some(r) => BTreeSet::from([r.clone()]),
                None => denied.iter().filter_map(|e| e.reason.clone()).collect(),
            };
            vec![
                Cell::Text(a.time()),
                Cell::opt(a.caller.as_deref()),
                Cell::opt(a.purpose.as_deref()),
                Cell::List(reasons.into_iter().collect()),
                Cell::count(denied.len()),
                Cell::opt(a.denial_message.as_deref()),
                Cell::opt(a.decision.as_deref()),
                Cell::opt(a.legal_basis.as_deref()),
                Cell::opt(a.method.as_deref()),
                int(a.grpc_status_code),
                Cell::opt(a.policy_version.as_deref()),
                Cell::opt(a.decision_id.as_deref()),
                Cell::Text(a.trace_id.clone()),
            ]
        })
        .collect();
    Table {
        columns: columns(&[
            ("time", true),
            ("caller", true),
            ("purpose", true),
            ("reason", true),
            ("subjects_denied", true),
            ("message", true),
            ("decision", false),
            ("legal_basis", false),
            ("method", false),
            ("grpc_status_code", false),
            ("policy_version", false),
            ("decision_id", false),
            ("trace_id", false),
        ]),
        rows,
    }
}

/// One row per call that touched the subject. What the call released is shown only where
/// this subject's record was released: in a batch, the rest went to other people's records.
#[must_use]
pub fn subject_table(found: &[SubjectAccess<'_>]) -> Table {
    let rows = found
        .iter()
        .map(|s| {
            let a = s.access;
            let released = s.event.outcome.as_deref() == Some(attr::outcome::RELEASED);
            let if_released = |items: &[String]| if released { list(items) } else { Cell::Empty };
            vec![
                Cell::Text(a.time()),
                Cell::opt(a.caller.as_deref()),
                Cell::opt(a.purpose.as_deref()),
                Cell::opt(a.legal_basis.as_deref()),
                Cell::opt(s.event.outcome.as_deref()),
                Cell::opt(s.event.reason.as_deref()),
                if_released(&a.categories_released),
                if_released(&a.fields_released),
                if_released(&a.fields_transformed),
                list(&a.fields_withheld),
                Cell::opt(s.event.consent_token_id.as_deref()),
                int(s.event.consent_version),
                Cell::opt(a.decision.as_deref()),
                Cell::opt(a.decision_id.as_deref()),
                Cell::opt(a.policy_version.as_deref()),
                Cell::opt(a.method.as_deref()),
                Cell::Text(a.trace_id.clone()),
            ]
        })
        .collect();
    Table {
        columns: columns(&[
            ("time", true),
            ("caller", true),
            ("purpose", true),
            ("legal_basis", true),
            ("outcome", true),
            ("reason", true),
            ("categories_released", true),
            ("fields_released", false),
            ("fields_transformed", false),
            ("fields_withheld", false),
            ("consent_token_id", false),
            ("consent_version", false),
            ("decision", false),
            ("decision_id", false),
            ("policy_version", false),
            ("method", false),
            ("trace_id", false),
        ]),
        rows,
    }
}
