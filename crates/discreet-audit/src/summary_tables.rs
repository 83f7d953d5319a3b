//! The two summaries as tables: the subject access report's groups and the shadow policy's
//! per-field counts, plus the shadow summary's text form.
use std::fmt::Write;

use crate::render::{Cell, Table};
use crate::report::{ReportLine, SubjectReport};
use crate::shadow::ShadowSummary;
use crate::tables::{columns, list};
use crate::time::format_time;

/// The report's groups, one row each (for CSV; the text form is
/// [`report_text`](crate::report_text)).
#[must_use]
pub fn report_table(r: &SubjectReport) -> Table {
    let group = |outcome: &str, l: &ReportLine| {
        vec![
            Cell::Text(outcome.to_owned()),
            Cell::opt(l.caller.as_deref()),
            Cell::opt(l.purpose.as_deref()),
            Cell::opt(l.legal_basis.as_deref()),
            Cell::count(l.count),
            Cell::Text(format_time(l.first)),
            Cell::Text(format_time(l.last)),
            list(&l.categories),
            Cell::List(
                l.reasons
                    .iter()
                    .map(|(code, n)| format!("{code} ({n})"))
                    .collect(),
            ),
        ]
    };
    let rows = (r.received.iter().map(|l| group("received", l)))
        .chain(r.withheld.iter().map(|l| group("withheld", l)))
        .chain(r.refused.iter().map(|l| group("refused", l)))
        .collect();
    Table {
        columns: columns(&[
            ("outcome", true),
            ("caller", true),
            ("purpose", true),
            ("legal_basis", true),
            ("calls", true),
            ("first", true),
            ("last", true),
            ("categories_received", true),
            ("reasons", true),
        ]),
        rows,
    }
}

/// One row per purpose and field path the candidate policy treats differently.
#[must_use]
pub fn shadow_table(s: &ShadowSummary) -> Table {
    let rows = s
        .purposes
        .iter()
        .flat_map(|p| {
            p.fields.iter().map(move |f| {
                vec![
                    Cell::opt(p.purpose.as_deref()),
                    Cell::Text(f.path.clone()),
                    Cell::count(f.would_release),
                    Cell::count(f.would_withhold),
                    Cell::count(p.calls),
                    Cell::count(p.calls_differing),
                    list(&p.candidate_versions),
                ]
            })
        })
        .collect();
    Table {
        columns: columns(&[
            ("purpose", true),
            ("field", true),
            ("would_release", true),
            ("would_withhold", true),
            ("calls", true),
            ("calls_differing", false),
            ("candidate_versions", false),
        ]),
        rows,
    }
}

/// The shadow summary for a terminal: a sentence per purpose, then the per-field table.
#[must_use]
pub fn shadow_text(s: &ShadowSummary) -> String {
    let mut out = String::new();
    if s.purposes.is_empty() {
        out.push_str("No call in the trail was judged by a candidate policy.\n");
    }
    for p in &s.purposes {
        let versions = if p.candidate_versions.is_empty() {
            String::new()
        } else {
            format!(" {}", p.candidate_versions.join(", "))
        };
        let _ = write!(
            out,
            "{}: {} judged by the candidate policy{versions}; it would differ on {}",
            p.purpose.as_deref().unwrap_or("(no purpose)"),
            calls(p.calls),
            calls(p.calls_differing),
        );
        for c in &p.decision_changes {
            let _ = write!(out, "; {} -> {} on {}", c.from, c.to, calls(c.calls));
        }
        out.push_str(".\n");
    }
    if s.purposes.iter().any(|p| !p.fields.is_empty()) {
        out.push('\n');
        out.push_str(&shadow_table(s).to_text());
    }
    if s.calls_without_candidate > 0 {
        let _ = writeln!(
            out,
            "\n{} had no candidate policy verdict.",
            calls(s.calls_without_candidate)
        );
    }
    out.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn calls(n: usize) -> String {
    if n == 1 {
        "1 call".to_owned()
    } else {
        format!("{n} calls")
    }
}
