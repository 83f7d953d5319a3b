//! Step 8 of a read: every response message, rewritten with the compiled plan of the
//! record's own subject. Synchronous and allocation-light: it runs inside the response
//! body's poll, once per message.
use std::sync::Arc;

use bytes::Bytes;
use discreet_policy::{ConsentGrant, RecordOutcome, Refusal};
use discreet_redact::{RewriteReport, append_length_delimited, fields, last_string};
use http::{HeaderMap, HeaderValue};

use crate::{
    access::AccessLog,
    frame,
    grants::Grants,
    metadata,
    plans::{CompiledPlan, PlanCache},
    policy_state::ActivePolicy,
    route::{MethodRoute, ResponseShape},
    shadow::ShadowPolicy,
    status::{CallError, status_value},
};

/// The most bytes of withheld field paths put in one trailer; past it the list ends `...`.
const MAX_WITHHELD_TRAILER: usize = 4096;

/// The `x-discreet-withheld-fields` trailer for `paths`: comma-separated, cut at
/// [`MAX_WITHHELD_TRAILER`] bytes with a closing `...`; none for no paths.
pub(crate) fn withheld_trailer(paths: &[Arc<str>]) -> Option<HeaderValue> {
    if paths.is_empty() {
        return None;
    }
    let mut list = String::new();
    for p in paths {
        if list.len() + p.len() + 1 > MAX_WITHHELD_TRAILER {
            list.push_str(",...");
            break;
        }
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(p);
    }
    HeaderValue::from_str(&list).ok()
}

/// The paths a call has withheld so far. While every released record was served by one
/// plan variant with nothing withheld at run time (a unary read always; most streams)
/// they are that plan's own list, shared: nothing is copied per record or per call, and
/// the trailer and the span's lists come ready-made with the plan.
#[derive(Debug, Default)]
pub(crate) enum Withheld {
    #[default]
    Nothing,
    Plan(Arc<CompiledPlan>, Option<usize>),
    Paths(Vec<Arc<str>>),
}

impl Withheld {
    pub(crate) fn paths(&self) -> &[Arc<str>] {
        match self {
            Withheld::Nothing => &[],
            Withheld::Plan(plan, variant) => plan.withheld(*variant),
            Withheld::Paths(paths) => paths,
        }
    }

    /// A record served by `plan` (`variant`), with `runtime` withheld at run time too.
    pub(crate) fn add(
        &mut self,
        plan: &Arc<CompiledPlan>,
        variant: Option<usize>,
        runtime: &[Arc<str>],
    ) {
        match self {
            Withheld::Nothing if runtime.is_empty() => {
                *self = Withheld::Plan(Arc::clone(plan), variant);
            }
            Withheld::Plan(p, v) if runtime.is_empty() && Arc::ptr_eq(p, plan) && *v == variant => {
            }
            _ => {
                let mut paths = match std::mem::take(self) {
                    Withheld::Paths(paths) => paths,
                    other => other.paths().to_vec(),
                };
                for path in plan.withheld(variant).iter().chain(runtime) {
                    discreet_telemetry::push_unique(&mut paths, path);
                }
                *self = Withheld::Paths(paths);
            }
        }
    }

    fn trailer(&self) -> Option<HeaderValue> {
        match self {
            Withheld::Nothing => None,
            Withheld::Plan(plan, variant) => plan.withheld_trailer(*variant),
            Withheld::Paths(paths) => withheld_trailer(paths),
        }
    }
}

/// What happened to one record.
enum Verdict {
    Released,
    /// No grant for the record's subject (or no subject): nothing of it goes out.
    NoGrant,
    Refused(Refusal),
}

/// Per-call enforcement state.
#[derive(Debug)]
pub(crate) struct ResponseEnforcer {
    route: Arc<MethodRoute>,
    active: Arc<ActivePolicy>,
    plans: Arc<PlanCache>,
    purpose: Arc<str>,
    consent_required: bool,
    grants: Grants,
    now: i64,
    /// Withheld before the call reached the store (batch subjects without a grant).
    pub(crate) withheld_records: u64,
    pub(crate) released_records: u64,
    withheld_fields: Withheld,
    /// Leaf paths withheld at run time (stale data), for the access span.
    runtime_withheld: Vec<Arc<str>>,
    records_total: u64,
    pub(crate) access: AccessLog,
    shadow: Option<Arc<ShadowPolicy>>,
    report: RewriteReport,
    scratch: Vec<u8>,
    /// The last plan used and its grant: records of one call mostly share one.
    last: Option<(Arc<ConsentGrant>, Arc<CompiledPlan>)>,
    /// The grant of a record read under a purpose that needs no consent.
    no_grant: Arc<ConsentGrant>,
}

impl ResponseEnforcer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        route: Arc<MethodRoute>,
        active: Arc<ActivePolicy>,
        plans: Arc<PlanCache>,
        purpose: Arc<str>,
        consent_required: bool,
        grants: Grants,
        now: i64,
        withheld_before: u64,
        (access, shadow): (AccessLog, Option<Arc<ShadowPolicy>>),
    ) -> Self {
        ResponseEnforcer {
            route,
            active,
            plans,
            purpose,
            consent_required,
            grants,
            now,
            withheld_records: withheld_before,
            released_records: 0,
            withheld_fields: Withheld::Nothing,
            runtime_withheld: Vec::new(),
            records_total: withheld_before,
            access,
            shadow,
            report: RewriteReport::default(),
            scratch: Vec::new(),
            last: None,
            no_grant: Arc::default(),
        }
    }

    /// Rewrites one response message. `Ok(None)`: the message is withheld whole (a
    /// stream record without a grant); the call goes on.
    pub(crate) fn message(&mut self, input: &[u8]) -> Result<Option<Bytes>, CallError> {
        let mut out = Vec::with_capacity(input.len());
        match self.route.response {
            ResponseShape::Record => match self.record(input, &mut out)? {
                Verdict::Released => {}
                _ if self.route.server_streaming => {
                    self.withheld_records += 1;
                    return Ok(None);
                }
                Verdict::NoGrant => return Err(CallError::UnexpectedSubject),
                Verdict::Refused(r) => return Err(CallError::Refused(r)),
            },
            ResponseShape::Envelope { field } => {
                let mut scratch = std::mem::take(&mut self.scratch);
                for f in fields(input) {
                    let f = f.map_err(|e| CallError::UpstreamProtocol(e.to_string()))?;
                    // Only the records are covered by the policy; the envelope's other
                    // fields are dropped like any unknown field.
                    if f.number != field || !f.length_delimited {
                        continue;
                    }
                    scratch.clear();
                    match self.record(f.payload, &mut scratch)? {
                        Verdict::Released => append_length_delimited(&mut out, field, &scratch),
                        Verdict::NoGrant | Verdict::Refused(_) => self.withheld_records += 1,
                    }
                }
                self.scratch = scratch;
            }
        }
        Ok(Some(frame::encode(&out)))
    }

    fn record(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Verdict, CallError> {
        use discreet_telemetry::attr::{outcome, reason};
        self.records_total += 1;
        let subject = last_string(input, &self.route.record_subject)
            .map_err(|e| CallError::UpstreamProtocol(e.to_string()))?;
        // Special categories in a token are consented to for the token's purposes only:
        // a token that does not name this purpose opens nothing, even where the purpose
        // needs no consent to read the rest of the record.
        let grant = match subject.and_then(|s| self.grants.get(s)) {
            Some(g) if g.allows_purpose(&self.purpose) => Arc::clone(g),
            _ if self.consent_required => {
                if let Some(s) = subject {
                    self.access.subject(
                        s,
                        outcome::WITHHELD,
                        Some(reason::NO_CONSENT),
                        &self.grants,
                    )?;
                }
                return Ok(Verdict::NoGrant);
            }
            // Not consent-based: no token needed, and no special category either.
            _ => Arc::clone(&self.no_grant),
        };
        let plan = self.plan(&grant)?;
        self.report.clear();
        let (outcome, variant) = plan
            .plan
            .apply_variant(input, self.now, out, &mut self.report)
            .map_err(|e| CallError::UpstreamProtocol(e.to_string()))?;
        // Withheld at run time (stale, or a transform that did not apply).
        let runtime: Vec<Arc<str>> = if self.report.withheld.is_empty() {
            Vec::new()
        } else {
            let served_by = plan.plan.redaction_plan(variant);
            self.report
                .withheld
                .iter()
                .map(|id| Arc::from(served_by.path(*id)))
                .collect()
        };
        let released = matches!(outcome, RecordOutcome::Released);
        if let Some(shadow) = &self.shadow
            && let Some(tally) = self.access.shadow().as_mut()
        {
            let active = released.then_some((&*plan, variant, runtime.as_slice()));
            tally.record(
                shadow,
                &self.route.record_type,
                &self.purpose,
                &grant,
                input,
                self.now,
                active,
            );
        }
        match outcome {
            RecordOutcome::Released => {
                self.released_records += 1;
                self.withheld_fields.add(&plan, variant, &runtime);
                for path in &runtime {
                    discreet_telemetry::push_unique(&mut self.runtime_withheld, path);
                }
                self.access.record_served(&plan, variant);
                if let Some(s) = subject {
                    self.access
                        .subject(s, outcome::RELEASED, None, &self.grants)?;
                }
                Ok(Verdict::Released)
            }
            RecordOutcome::Refused(r) => {
                // A refused record of a stream or batch is withheld and the call goes on;
                // a refused single record fails the call (and its span says denied).
                let withheld_whole = self.route.server_streaming
                    || matches!(self.route.response, ResponseShape::Envelope { .. });
                if withheld_whole && let Some(s) = subject {
                    self.access
                        .subject(s, outcome::WITHHELD, Some(reason::GUARD), &self.grants)?;
                }
                Ok(Verdict::Refused(r))
            }
        }
    }

    /// The plan for `grant`, remembered for the next record (records of one call mostly
    /// share one grant).
    fn plan(&mut self, grant: &Arc<ConsentGrant>) -> Result<Arc<CompiledPlan>, CallError> {
        if let Some((g, plan)) = &self.last
            && (Arc::ptr_eq(g, grant) || g == grant)
        {
            return Ok(Arc::clone(plan));
        }
        let plan = self
            .plans
            .get(&self.active, &self.route.record_type, &self.purpose, grant)
            .map_err(CallError::Policy)?;
        self.last = Some((Arc::clone(grant), Arc::clone(&plan)));
        Ok(plan)
    }

    /// The trailers of a call that completed: OK, plus what was withheld. Closes the
    /// access span.
    pub(crate) fn finish_ok(&mut self, decision_id: &HeaderValue) -> HeaderMap {
        let mut t = HeaderMap::with_capacity(6);
        t.insert("grpc-status", status_value(tonic::Code::Ok));
        t.insert(metadata::DECISION_ID, decision_id.clone());
        let partial = self.withheld_records > 0 || !self.withheld_fields.paths().is_empty();
        let decision = if partial { "partial" } else { "allowed" };
        t.insert(metadata::DECISION, HeaderValue::from_static(decision));
        if let Ok(v) = HeaderValue::from_str(&self.active.policy.version) {
            t.insert(metadata::POLICY_VERSION, v);
        }
        if let Some(v) = self.withheld_fields.trailer() {
            t.insert(metadata::WITHHELD_FIELDS, v);
        }
        if self.route.server_streaming
            || matches!(self.route.response, ResponseShape::Envelope { .. })
        {
            t.insert(
                metadata::WITHHELD_RECORDS,
                HeaderValue::from(self.withheld_records),
            );
        }
        self.access.finish_ok(
            decision,
            &self.withheld_fields,
            &self.runtime_withheld,
            (
                self.records_total,
                self.released_records,
                self.withheld_records,
            ),
        );
        t
    }
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Released => f.write_str("Released"),
            Verdict::NoGrant => f.write_str("NoGrant"),
            Verdict::Refused(r) => write!(f, "Refused({r})"),
        }
    }
}
