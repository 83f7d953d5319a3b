//! Spans to accesses: duplicates dropped, continuation spans folded into their call.
//!
//! Exporters retry, and collectors fan in, so the same span can be read twice; the
//! continuation spans of a call can be written before or after its access span, even to
//! another file. Both are resolved only once every input has been read.
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use discreet_telemetry::attr;

use crate::access::{Access, subject_events};
use crate::span::Span;

/// Every access found in the input, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditTrail {
    /// The accesses, ordered by time (then trace and span id, so the order is stable).
    pub accesses: Vec<Access>,
    /// Spans dropped because the same trace and span id had already been read.
    pub duplicate_spans: usize,
}

impl AuditTrail {
    /// Builds the trail from every span read, in any order.
    #[must_use]
    pub fn from_spans(spans: impl IntoIterator<Item = Span>) -> AuditTrail {
        // (trace id, span id) -> span, first seen wins.
        let mut unique: BTreeMap<(String, String), Span> = BTreeMap::new();
        let mut duplicate_spans = 0;
        for span in spans {
            let key = (span.trace_id.clone(), span.span_id.clone());
            match unique.entry(key) {
                Entry::Occupied(_) => duplicate_spans += 1,
                Entry::Vacant(slot) => {
                    slot.insert(span);
                }
            }
        }
        let (calls, continuations): (Vec<Span>, Vec<Span>) = unique
            .into_values()
            .partition(|s| s.name == attr::ACCESS_SPAN);
        let mut by_id: BTreeMap<(String, String), Access> = calls
            .iter()
            .map(|s| {
                (
                    (s.trace_id.clone(), s.span_id.clone()),
                    Access::from_span(s),
                )
            })
            .collect();
        for cont in &continuations {
            let parent = (cont.trace_id.clone(), cont.parent_span_id.clone());
            let access = by_id.entry(parent).or_insert_with(|| {
                // The access span is not in the input: the continuation carries the same
                // call attributes, so the call is still known, under its parent's id.
                let mut orphan = Access::from_span(cont);
                orphan.span_id = cont.parent_span_id.clone();
                orphan.subjects.clear();
                orphan.incomplete = true;
                orphan
            });
            if access.incomplete {
                access.time_unix_nano = access.time_unix_nano.min(cont.start_time_unix_nano);
            }
            access.subjects.extend(subject_events(&cont.events));
        }
        let mut accesses: Vec<Access> = by_id.into_values().collect();
        for a in &mut accesses {
            a.subjects.sort_by_key(|e| e.time_unix_nano);
        }
        accesses.sort_by(|a, b| {
            (a.time_unix_nano, &a.trace_id, &a.span_id).cmp(&(
                b.time_unix_nano,
                &b.trace_id,
                &b.span_id,
            ))
        });
        AuditTrail {
            accesses,
            duplicate_spans,
        }
    }
}
