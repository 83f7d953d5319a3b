//! What one call did, read from its access span: the plain record every query works on.
use discreet_telemetry::attr;
use serde::Serialize;

use crate::span::{Attributes, Span, SpanEvent};
use crate::time::format_time;

/// One call through the gateway, as its access span (and continuation spans) recorded it.
/// Absent attributes are `None` or empty: a query never guesses a value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Access {
    /// When the call started, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// When it ended, Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// The trace the call belongs to (the caller's, when it sent `traceparent`).
    pub trace_id: String,
    /// The access span's id.
    pub span_id: String,
    /// The calling workload, `namespace/name`.
    pub caller: Option<String>,
    /// The declared purpose.
    pub purpose: Option<String>,
    /// The purpose's legal basis.
    pub legal_basis: Option<String>,
    /// `allowed`, `partial` or `denied`.
    pub decision: Option<String>,
    /// The decision id the caller was given.
    pub decision_id: Option<String>,
    /// Why the call was denied (a `reason` code).
    pub denial_reason: Option<String>,
    /// The status message the caller received.
    pub denial_message: Option<String>,
    /// The active policy's version.
    pub policy_version: Option<String>,
    /// The full gRPC method.
    pub method: Option<String>,
    /// `read` or `write`.
    pub method_kind: Option<String>,
    /// The gRPC status code the caller received.
    pub grpc_status_code: Option<i64>,
    /// The subject's audit pseudonym, when the call named exactly one.
    pub subject: Option<String>,
    /// One entry per subject the call touched, from the access span and its continuations.
    pub subjects: Vec<SubjectEvent>,
    /// Ids of the consent tokens that verified.
    pub consent_token_ids: Vec<String>,
    /// Field paths released unchanged.
    pub fields_released: Vec<String>,
    /// Field paths released transformed.
    pub fields_transformed: Vec<String>,
    /// Field paths withheld.
    pub fields_withheld: Vec<String>,
    /// Data categories released (unchanged or transformed).
    pub categories_released: Vec<String>,
    /// Data categories withheld.
    pub categories_withheld: Vec<String>,
    /// Records the store returned.
    pub records_total: Option<i64>,
    /// Records released.
    pub records_released: Option<i64>,
    /// Records withheld whole.
    pub records_withheld: Option<i64>,
    /// What a candidate policy would have done, when one was loaded.
    pub shadow: Option<Shadow>,
    /// Fingerprint of the audit key the pseudonyms were made with.
    pub audit_key_id: Option<String>,
    /// True when the access span itself was not in the input, only continuation spans
    /// (which carry the same call attributes): the call is known, some subjects may not be.
    pub incomplete: bool,
}

/// One subject's part in a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubjectEvent {
    /// When the event was recorded, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// The subject's audit pseudonym.
    pub subject: Option<String>,
    /// `released`, `withheld` or `denied`.
    pub outcome: Option<String>,
    /// Why it was withheld or denied (a `reason` code).
    pub reason: Option<String>,
    /// The consent token that granted this subject.
    pub consent_token_id: Option<String>,
    /// The consent record's version.
    pub consent_version: Option<i64>,
}

/// The candidate (shadow) policy's verdict on a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shadow {
    /// The candidate's version.
    pub policy_version: Option<String>,
    /// The decision the candidate would have made.
    pub decision: Option<String>,
    /// Field paths the candidate would have released that the active policy withheld.
    pub fields_released: Vec<String>,
    /// Field paths the candidate would have withheld that the active policy released.
    pub fields_withheld: Vec<String>,
    /// Whether the candidate differs on this call.
    pub differs: Option<bool>,
}

impl Access {
    /// The call recorded by an access (or continuation) span.
    #[must_use]
    pub fn from_span(span: &Span) -> Access {
        let a = &span.attributes;
        let shadow = [
            attr::SHADOW_POLICY_VERSION,
            attr::SHADOW_DECISION,
            attr::SHADOW_FIELDS_RELEASED,
            attr::SHADOW_FIELDS_WITHHELD,
            attr::SHADOW_DIFFERS,
        ]
        .iter()
        .any(|k| a.get(k).is_some())
        .then(|| Shadow {
            policy_version: a.string(attr::SHADOW_POLICY_VERSION),
            decision: a.string(attr::SHADOW_DECISION),
            fields_released: a.strings(attr::SHADOW_FIELDS_RELEASED),
            fields_withheld: a.strings(attr::SHADOW_FIELDS_WITHHELD),
            differs: a.bool(attr::SHADOW_DIFFERS),
        });
        Access {
            time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            trace_id: span.trace_id.clone(),
            span_id: span.span_id.clone(),
            caller: a.string(attr::CALLER),
            purpose: a.string(attr::PURPOSE),
            legal_basis: a.string(attr::LEGAL_BASIS),
            decision: a.string(attr::DECISION),
            decision_id: a.string(attr::DECISION_ID),
            denial_reason: a.string(attr::DENIAL_REASON),
            denial_message: a.string(attr::DENIAL_MESSAGE),
            policy_version: a.string(attr::POLICY_VERSION),
            method: a.string(attr::METHOD),
            method_kind: a.string(attr::METHOD_KIND),
            grpc_status_code: a.int(attr::RPC_GRPC_STATUS_CODE),
            subject: a.string(attr::SUBJECT),
            subjects: subject_events(&span.events),
            consent_token_ids: a.strings(attr::CONSENT_TOKEN_IDS),
            fields_released: a.strings(attr::FIELDS_RELEASED),
            fields_transformed: a.strings(attr::FIELDS_TRANSFORMED),
            fields_withheld: a.strings(attr::FIELDS_WITHHELD),
            categories_released: a.strings(attr::CATEGORIES_RELEASED),
            categories_withheld: a.strings(attr::CATEGORIES_WITHHELD),
            records_total: a.int(attr::RECORDS_TOTAL),
            records_released: a.int(attr::RECORDS_RELEASED),
            records_withheld: a.int(attr::RECORDS_WITHHELD),
            shadow,
            audit_key_id: a.string(attr::AUDIT_KEY_ID),
            incomplete: false,
        }
    }

    /// `time` as RFC 3339, for output.
    #[must_use]
    pub fn time(&self) -> String {
        format_time(self.time_unix_nano)
    }

    /// Every subject pseudonym the call names, each once, in order of appearance.
    #[must_use]
    pub fn subject_pseudonyms(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        let named = self.subject.iter().map(String::as_str);
        for p in named.chain(self.subjects.iter().filter_map(|e| e.subject.as_deref())) {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        all
    }

    /// What the call did to `pseudonym`'s data: its subject event, or, for a call naming
    /// only this subject on the span, an outcome read from the decision. `None` when the
    /// call did not touch the subject.
    #[must_use]
    pub fn outcome_for(&self, pseudonym: &str) -> Option<SubjectEvent> {
        if let Some(e) = self
            .subjects
            .iter()
            .find(|e| e.subject.as_deref() == Some(pseudonym))
        {
            return Some(e.clone());
        }
        (self.subject.as_deref() == Some(pseudonym)).then(|| {
            let denied = self.decision.as_deref() == Some(attr::decision::DENIED);
            SubjectEvent {
                time_unix_nano: self.time_unix_nano,
                subject: self.subject.clone(),
                outcome: Some(
                    if denied {
                        attr::outcome::DENIED
                    } else {
                        attr::outcome::RELEASED
                    }
                    .to_owned(),
                ),
                reason: self.denial_reason.clone().filter(|_| denied),
                ..SubjectEvent::default()
            }
        })
    }
}

/// The subject events among a span's events (other events, such as exceptions, are not).
pub(crate) fn subject_events(events: &[SpanEvent]) -> Vec<SubjectEvent> {
    events
        .iter()
        .filter(|e| e.name == attr::SUBJECT_EVENT)
        .map(|e| subject_event(e.time_unix_nano, &e.attributes))
        .collect()
}

fn subject_event(time_unix_nano: u64, a: &Attributes) -> SubjectEvent {
    SubjectEvent {
        time_unix_nano,
        subject: a.string(attr::SUBJECT),
        outcome: a.string(attr::SUBJECT_OUTCOME),
        reason: a.string(attr::SUBJECT_REASON),
        consent_token_id: a.string(attr::CONSENT_TOKEN_ID),
        consent_version: a.int(attr::CONSENT_VERSION),
    }
}
