//! An [`AccessRecord`] as an OpenTelemetry span, ready for the OTLP exporter. Built
//! straight as `SpanData` rather than through a tracer: an access span must not depend
//! on a sampler, and the exporter's queue is ours (see `export.rs`).
use std::{borrow::Cow, sync::Arc};

use opentelemetry::{
    InstrumentationScope, KeyValue, StringValue, Value,
    trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::{
    attr,
    record::{AccessRecord, SubjectEvent},
};

/// The instrumentation scope of every access span.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("discreet.audit")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// The access span of `record`.
#[must_use]
pub fn access_span(record: &AccessRecord, scope: &InstrumentationScope) -> SpanData {
    let mut attributes = call_attributes(record);
    if let Some(subject) = &record.subject {
        attributes.push(KeyValue::new(attr::SUBJECT, subject.clone()));
    }
    if !record.token_ids.is_empty() {
        attributes.push(list(attr::CONSENT_TOKEN_IDS, &record.token_ids));
    }
    for (key, values) in [
        (attr::FIELDS_RELEASED, &record.fields_released),
        (attr::FIELDS_TRANSFORMED, &record.fields_transformed),
        (attr::FIELDS_WITHHELD, &record.fields_withheld),
        (attr::CATEGORIES_RELEASED, &record.categories_released),
        (attr::CATEGORIES_WITHHELD, &record.categories_withheld),
    ] {
        if !values.is_empty() {
            attributes.push(list(key, values));
        }
    }
    attributes.extend([
        int(attr::RECORDS_TOTAL, record.records_total),
        int(attr::RECORDS_RELEASED, record.records_released),
        int(attr::RECORDS_WITHHELD, record.records_withheld),
    ]);
    if record.continued_events > 0 {
        attributes.push(int(attr::SUBJECT_EVENTS_CONTINUED, record.continued_events));
    }
    if let Some(shadow) = &record.shadow {
        attributes.push(KeyValue::new(
            attr::SHADOW_POLICY_VERSION,
            StringValue::from(Arc::clone(&shadow.policy_version)),
        ));
        attributes.push(KeyValue::new(attr::SHADOW_DECISION, shadow.decision));
        attributes.push(KeyValue::new(
            attr::SHADOW_DIFFERS,
            shadow.differs_from(record.decision),
        ));
        if !shadow.fields_released.is_empty() {
            attributes.push(list(attr::SHADOW_FIELDS_RELEASED, &shadow.fields_released));
        }
        if !shadow.fields_withheld.is_empty() {
            attributes.push(list(attr::SHADOW_FIELDS_WITHHELD, &shadow.fields_withheld));
        }
    }
    let status = match &record.denial {
        Some((_, message)) if record.grpc_status != 0 => Status::Error {
            description: Cow::Owned(message.clone()),
        },
        _ => Status::Unset,
    };
    span(
        record,
        attr::ACCESS_SPAN,
        SpanId::from_bytes(record.trace.span_id),
        record.trace.parent_span_id.map(SpanId::from_bytes),
        attributes,
        &record.events,
        status,
        scope,
    )
}

/// A continuation span: more subject events of the call, a child of its access span.
#[must_use]
pub fn subjects_span(
    record: &AccessRecord,
    span_id: [u8; 8],
    events: &[SubjectEvent],
    scope: &InstrumentationScope,
) -> SpanData {
    span(
        record,
        attr::SUBJECTS_SPAN,
        SpanId::from_bytes(span_id),
        Some(SpanId::from_bytes(record.trace.span_id)),
        call_attributes(record),
        events,
        Status::Unset,
        scope,
    )
}

/// What identifies the call: on the access span and on every continuation.
fn call_attributes(record: &AccessRecord) -> Vec<KeyValue> {
    let (service, method) = record
        .method
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", &record.method));
    let mut a = Vec::with_capacity(32);
    a.push(KeyValue::new(attr::RPC_SYSTEM, "grpc"));
    a.push(KeyValue::new(attr::RPC_SERVICE, service.to_owned()));
    a.push(KeyValue::new(attr::RPC_METHOD, method.to_owned()));
    a.push(KeyValue::new(
        attr::RPC_GRPC_STATUS_CODE,
        i64::from(record.grpc_status),
    ));
    a.push(string(attr::METHOD, &record.method));
    if !record.method_kind.is_empty() {
        a.push(KeyValue::new(attr::METHOD_KIND, record.method_kind));
    }
    a.push(string(attr::DECISION_ID, &record.decision_id));
    a.push(KeyValue::new(attr::DECISION, record.decision));
    a.push(string(attr::AUDIT_KEY_ID, &record.audit_key_id));
    if let Some(caller) = &record.caller {
        a.push(string(attr::CALLER, caller));
    }
    if let Some(purpose) = &record.purpose {
        a.push(string(attr::PURPOSE, purpose));
    }
    if let Some(basis) = record.legal_basis {
        a.push(KeyValue::new(attr::LEGAL_BASIS, basis));
    }
    if let Some(version) = &record.policy_version {
        a.push(string(attr::POLICY_VERSION, version));
    }
    if let Some((reason, message)) = &record.denial {
        a.push(KeyValue::new(attr::DENIAL_REASON, *reason));
        a.push(KeyValue::new(attr::DENIAL_MESSAGE, message.clone()));
    }
    a
}

#[allow(clippy::too_many_arguments)]
fn span(
    record: &AccessRecord,
    name: &'static str,
    span_id: SpanId,
    parent: Option<SpanId>,
    attributes: Vec<KeyValue>,
    events: &[SubjectEvent],
    status: Status,
    scope: &InstrumentationScope,
) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(record.trace.trace_id),
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent.unwrap_or(SpanId::INVALID),
        parent_span_is_remote: name == attr::ACCESS_SPAN && parent.is_some(),
        span_kind: if name == attr::ACCESS_SPAN {
            SpanKind::Server
        } else {
            SpanKind::Internal
        },
        name: Cow::Borrowed(name),
        start_time: record.start,
        end_time: record.end,
        attributes,
        dropped_attributes_count: 0,
        events: span_events(events),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn span_events(events: &[SubjectEvent]) -> SpanEvents {
    let mut out = SpanEvents::default();
    out.events.reserve(events.len());
    for e in events {
        let mut a = Vec::with_capacity(5);
        a.push(KeyValue::new(attr::SUBJECT, e.pseudonym.clone()));
        a.push(KeyValue::new(attr::SUBJECT_OUTCOME, e.outcome));
        if let Some(reason) = e.reason {
            a.push(KeyValue::new(attr::SUBJECT_REASON, reason));
        }
        if let Some(token) = &e.token_id {
            a.push(string(attr::CONSENT_TOKEN_ID, token));
        }
        if let Some(version) = e.consent_version {
            a.push(int(attr::CONSENT_VERSION, version));
        }
        out.events
            .push(Event::new(attr::SUBJECT_EVENT, e.time, a, 0));
    }
    out
}

fn string(key: &'static str, value: &Arc<str>) -> KeyValue {
    KeyValue::new(key, StringValue::from(Arc::clone(value)))
}

fn int(key: &'static str, value: u64) -> KeyValue {
    KeyValue::new(key, i64::try_from(value).unwrap_or(i64::MAX))
}

fn list(key: &'static str, values: &[Arc<str>]) -> KeyValue {
    KeyValue::new(
        key,
        Value::Array(opentelemetry::Array::String(
            values
                .iter()
                .map(|v| StringValue::from(Arc::clone(v)))
                .collect(),
        )),
    )
}
