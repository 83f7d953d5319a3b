//! Step 9 of a read: the access span. An [`AccessLog`] is opened when a call arrives,
//! filled in as each step learns something (caller, purpose, grants, subjects, what each
//! record released) and closed exactly once: when the call ends, fails, or is dropped
//! (a caller that goes away mid-stream still leaves a span, marked cancelled).
//!
//! It also counts the call in the metrics, so the two can never disagree.
use std::{
    sync::Arc,
    time::{Instant, SystemTime},
};

use discreet_telemetry::{
    AccessRecord, AuditSlot, AuditTrail, AuditUnavailable, FieldLists, SubjectEvent, TraceContext,
    attr,
    metrics::{CallLabels, LatencyLabels, PurposeLabels},
    push_unique,
};

use crate::{
    enforce::Withheld, grants::Grants, plans::CompiledPlan, service::Core, status::CallError,
};

/// The union of what `plans` released, less what was withheld at run time.
pub(crate) fn field_lists(
    plans: &[(Arc<CompiledPlan>, Option<usize>)],
    withheld: &[Arc<str>],
    runtime_withheld: &[Arc<str>],
) -> FieldLists {
    let (mut kept, mut transformed, mut categories, mut withheld_categories) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (plan, variant) in plans {
        let served = plan.released(*variant);
        for p in &served.kept {
            if !runtime_withheld.contains(p) {
                push_unique(&mut kept, p);
            }
        }
        for p in &served.transformed {
            if !runtime_withheld.contains(p) {
                push_unique(&mut transformed, p);
            }
        }
        for c in &served.categories {
            push_unique(&mut categories, c);
        }
        for c in &served.withheld_categories {
            push_unique(&mut withheld_categories, c);
        }
    }
    FieldLists::new(
        kept,
        transformed,
        withheld.to_vec(),
        categories,
        withheld_categories,
    )
}

/// The access record of one call, and its place in the export queue.
#[derive(Debug)]
pub(crate) struct AccessLog {
    record: AccessRecord,
    slot: Option<AuditSlot>,
    core: Arc<Core>,
    started: Instant,
    /// Plans that served released records, with their variant: the span's field lists.
    plans: Vec<(Arc<CompiledPlan>, Option<usize>)>,
    /// Whether the caller and purpose are ones the policy names (metric labels).
    known_caller: bool,
    known_purpose: bool,
    shadow: Option<crate::shadow::ShadowTally>,
    /// The last subject pseudonymised and its pseudonym: a unary read names its subject in
    /// the request and again in the record, and one HMAC is enough.
    last_pseudonym: Option<(Box<str>, String)>,
    done: bool,
}

impl AccessLog {
    pub(crate) fn begin(
        core: &Arc<Core>,
        method: &str,
        traceparent: Option<&[u8]>,
        decision_id: &str,
    ) -> Self {
        let trace = TraceContext::for_call(traceparent, &core.audit.span_ids);
        let record = AccessRecord::begin(
            trace,
            Arc::from(bounded(method)),
            Arc::from(decision_id),
            Arc::clone(&core.audit.key_id),
        );
        core.metrics.in_flight.inc();
        AccessLog {
            record,
            slot: None,
            core: Arc::clone(core),
            started: Instant::now(),
            plans: Vec::new(),
            known_caller: false,
            known_purpose: false,
            shadow: None,
            last_pseudonym: None,
            done: false,
        }
    }

    /// Strict mode: refuses the call unless its span has a place in the export queue.
    pub(crate) fn reserve(&mut self, trail: &AuditTrail) -> Result<(), CallError> {
        let slot = trail
            .reserve()
            .map_err(|AuditUnavailable| CallError::AuditUnavailable)?;
        self.slot = Some(slot);
        Ok(())
    }

    /// The decision recorded so far (final once the log is finished).
    pub(crate) fn decision(&self) -> &'static str {
        self.record.decision
    }

    pub(crate) fn trace(&self) -> &TraceContext {
        &self.record.trace
    }

    pub(crate) fn method_kind(&mut self, kind: &'static str) {
        self.record.method_kind = kind;
    }

    pub(crate) fn caller(&mut self, caller: &Arc<str>) {
        self.record.caller = Some(Arc::clone(caller));
    }

    pub(crate) fn purpose(&mut self, purpose: &str, known: bool) {
        self.record.purpose = Some(Arc::from(bounded(purpose)));
        self.known_purpose = known;
    }

    /// The caller was allowed the purpose: it is a caller the policy names.
    pub(crate) fn allowed(&mut self, legal_basis: &'static str) {
        self.record.legal_basis = Some(legal_basis);
        self.known_caller = true;
    }

    pub(crate) fn policy_version(&mut self, version: &Arc<str>, digest: &Arc<str>) {
        self.record.policy_version = Some(Arc::clone(version));
        self.record.policy_digest = Some(Arc::clone(digest));
    }

    pub(crate) fn grants(&mut self, grants: &Grants) {
        self.record.token_ids = grants.token_ids().to_vec();
    }

    /// The one subject a single-subject call names.
    pub(crate) fn single_subject(&mut self, subject: &str) {
        self.record.subject = Some(self.pseudonym(subject));
    }

    fn pseudonym(&mut self, subject: &str) -> String {
        if let Some((raw, pseudonym)) = &self.last_pseudonym
            && **raw == *subject
        {
            return pseudonym.clone();
        }
        let pseudonym = self.core.audit.key.pseudonym(subject);
        self.last_pseudonym = Some((Box::from(subject), pseudonym.clone()));
        pseudonym
    }

    /// One subject event: `outcome` is an `attr::outcome` value. Strict mode: `Err` when
    /// the events overflow onto a continuation span that cannot be queued.
    pub(crate) fn subject(
        &mut self,
        subject: &str,
        outcome: &'static str,
        reason: Option<&'static str>,
        grants: &Grants,
    ) -> Result<(), CallError> {
        let (token_id, consent_version) = grants.token_of(subject);
        let pseudonym = self.pseudonym(subject);
        self.record.events.push(SubjectEvent {
            time: SystemTime::now(),
            pseudonym,
            outcome,
            reason,
            token_id,
            consent_version,
        });
        if self.record.events.len() >= self.core.audit.max_subject_events {
            let span_id = self.core.audit.span_ids.span_id();
            let queued =
                self.core
                    .audit
                    .trail
                    .continuation(&self.record, span_id, &self.record.events);
            match queued {
                Ok(()) => {
                    self.record.continued_events += self.record.events.len() as u64;
                    self.record.events.clear();
                }
                // Strict mode: the stream stops here, and the events stay on the access
                // span (whose place was reserved at the start), so the records already
                // sent are still accounted for.
                Err(AuditUnavailable) => return Err(CallError::AuditUnavailable),
            }
        }
        Ok(())
    }

    pub(crate) fn record_served(&mut self, plan: &Arc<CompiledPlan>, variant: Option<usize>) {
        if !self
            .plans
            .iter()
            .any(|(p, v)| Arc::ptr_eq(p, plan) && *v == variant)
        {
            self.plans.push((Arc::clone(plan), variant));
        }
    }

    pub(crate) fn shadow(&mut self) -> &mut Option<crate::shadow::ShadowTally> {
        &mut self.shadow
    }

    /// The call completed: what was released, withheld, and how many records.
    pub(crate) fn finish_ok(
        &mut self,
        decision: &'static str,
        withheld: &Withheld,
        runtime_withheld: &[Arc<str>],
        (total, released, withheld_records): (u64, u64, u64),
    ) {
        let r = &mut self.record;
        r.decision = decision;
        r.grpc_status = 0;
        r.records_total = total;
        r.records_released = released;
        r.records_withheld = withheld_records;
        r.fields = match (self.plans.as_slice(), withheld) {
            // One plan variant served every released record, nothing withheld at run
            // time: its lists, made when it was compiled.
            ([(plan, variant)], Withheld::Plan(p, v))
                if Arc::ptr_eq(plan, p) && variant == v && runtime_withheld.is_empty() =>
            {
                plan.lists(*variant)
            }
            (plans, withheld) => Arc::new(field_lists(plans, withheld.paths(), runtime_withheld)),
        };
        self.close();
    }

    /// The call failed with `error`: nothing more was released.
    pub(crate) fn finish_err(&mut self, error: &CallError) {
        if self.done {
            return;
        }
        let r = &mut self.record;
        // Records already streamed before a mid-stream failure were released: the span
        // says partial, not denied, so an auditor does not miss them.
        r.decision = if self.plans.is_empty() {
            attr::decision::DENIED
        } else {
            attr::decision::PARTIAL
        };
        r.grpc_status = error.code() as i32;
        r.denial = Some((error.reason(), error.to_string()));
        if r.events.is_empty()
            && let Some(subject) = &r.subject
        {
            r.events.push(SubjectEvent {
                time: SystemTime::now(),
                pseudonym: subject.clone(),
                outcome: attr::outcome::DENIED,
                reason: Some(error.reason()),
                token_id: None,
                consent_version: None,
            });
        }
        self.close();
    }

    fn close(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let r = &mut self.record;
        r.end = SystemTime::now();
        if let Some(tally) = self.shadow.take() {
            r.shadow = Some(tally.outcome());
        }
        let metrics = &self.core.metrics;
        metrics.in_flight.dec();
        let other = &self.core.audit.other_label;
        let purpose = match (&r.purpose, self.known_purpose) {
            (Some(p), true) => Arc::clone(p),
            _ => Arc::clone(other),
        };
        // A caller refused before it was allowed a purpose is still named by its label if
        // the policy lists it (looked up only then: an allowed caller is known already).
        let caller = match &r.caller {
            Some(c) if self.known_caller || self.core.policy.current().policy.names_caller(c) => {
                Arc::clone(c)
            }
            _ => Arc::clone(other),
        };
        let method = if r.method_kind.is_empty() {
            Arc::clone(other)
        } else {
            Arc::clone(&r.method)
        };
        metrics
            .calls
            .get_or_create(&CallLabels {
                method: Arc::clone(&method),
                purpose: Arc::clone(&purpose),
                caller,
                decision: r.decision,
            })
            .inc();
        metrics
            .latency
            .get_or_create(&LatencyLabels {
                method,
                decision: r.decision,
            })
            .observe(self.started.elapsed().as_secs_f64());
        if !r.fields.withheld().is_empty() {
            metrics
                .fields_withheld
                .get_or_create(&PurposeLabels {
                    purpose: Arc::clone(&purpose),
                })
                .inc_by(r.fields.withheld().len() as u64);
        }
        if r.records_withheld > 0 {
            metrics
                .records_withheld
                .get_or_create(&PurposeLabels { purpose })
                .inc_by(r.records_withheld);
        }
        let slot = self
            .slot
            .take()
            .unwrap_or_else(|| self.core.audit.trail.best_effort());
        slot.record(&self.record);
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        if !self.done {
            self.finish_err(&CallError::Cancelled);
        }
    }
}

/// Caller-supplied text (a method path or purpose the policy may not know) goes into the
/// span as evidence of what was asked, cut to this many bytes: a caller cannot write
/// kilobytes of its own text into the audit trail.
const MAX_CALLER_TEXT: usize = 128;

fn bounded(text: &str) -> &str {
    if text.len() <= MAX_CALLER_TEXT {
        return text;
    }
    let mut end = MAX_CALLER_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The audit trail's parts that every call uses.
#[derive(Debug)]
pub(crate) struct AuditState {
    pub(crate) trail: AuditTrail,
    pub(crate) key: discreet_telemetry::AuditKey,
    pub(crate) key_id: Arc<str>,
    pub(crate) span_ids: discreet_telemetry::SpanIds,
    pub(crate) max_subject_events: usize,
    /// The metric label for purposes, callers and methods the policy does not name.
    pub(crate) other_label: Arc<str>,
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn caller_text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded("personalize"), "personalize");
        let long = "é".repeat(100);
        let cut = bounded(&long);
        assert!(cut.len() <= 128 && cut.len() >= 127, "{}", cut.len());
        assert!(long.starts_with(cut));
    }
}
