//! An [`AccessRecord`] as the bytes of an OTLP span, encoded on the call that made it
//! (see `otlp.rs`). Built directly rather than through a tracer: an access span must not
//! depend on a sampler, and the export queue is ours (see `export.rs`).
use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    attr,
    otlp::{
        FLAGS_HAS_IS_REMOTE, FLAGS_IS_REMOTE, FLAGS_SAMPLED, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER,
        STATUS_CODE_ERROR, Writer,
    },
    record::{AccessRecord, FieldLists, SubjectEvent},
};

/// `Span.attributes`, `Event.attributes`.
const SPAN_ATTRIBUTES: u32 = 9;
const EVENT_ATTRIBUTES: u32 = 3;

/// The instrumentation scope of every access span: name and version.
pub(crate) const SCOPE: (&str, &str) = ("discreet.audit", env!("CARGO_PKG_VERSION"));

/// The size of the last access span encoded: the next one is usually about the same, and
/// a buffer sized from it is not grown (and copied) twice while the span is written.
static LAST_ACCESS_SPAN_LEN: AtomicUsize = AtomicUsize::new(1024);

/// The access span of `record`, as an encoded OTLP `Span`.
#[must_use]
pub fn access_span(record: &AccessRecord) -> Vec<u8> {
    let hint = LAST_ACCESS_SPAN_LEN
        .load(Ordering::Relaxed)
        .clamp(512, 64 * 1024);
    let mut w = Writer::with_capacity(hint + 64 + record.events.len() * 128);
    span_head(
        &mut w,
        record,
        attr::ACCESS_SPAN,
        record.trace.span_id,
        record.trace.parent_span_id,
    );
    call_attributes(&mut w, record);
    let a = SPAN_ATTRIBUTES;
    if let Some(subject) = &record.subject {
        w.attr_str(a, attr::SUBJECT, subject);
    }
    if !record.token_ids.is_empty() {
        w.attr_strs(a, attr::CONSENT_TOKEN_IDS, &record.token_ids);
    }
    // Shared by every call of the plan that served this one, and encoded once.
    w.buf
        .extend_from_slice(record.fields.encoded(field_list_attributes));
    w.attr_int(a, attr::RECORDS_TOTAL, int(record.records_total));
    w.attr_int(a, attr::RECORDS_RELEASED, int(record.records_released));
    w.attr_int(a, attr::RECORDS_WITHHELD, int(record.records_withheld));
    if record.continued_events > 0 {
        w.attr_int(
            a,
            attr::SUBJECT_EVENTS_CONTINUED,
            int(record.continued_events),
        );
    }
    if let Some(shadow) = &record.shadow {
        w.attr_str(a, attr::SHADOW_POLICY_VERSION, &shadow.policy_version);
        w.attr_str(a, attr::SHADOW_DECISION, shadow.decision);
        w.attr_bool(
            a,
            attr::SHADOW_DIFFERS,
            shadow.differs_from(record.decision),
        );
        if !shadow.fields_released.is_empty() {
            w.attr_strs(a, attr::SHADOW_FIELDS_RELEASED, &shadow.fields_released);
        }
        if !shadow.fields_withheld.is_empty() {
            w.attr_strs(a, attr::SHADOW_FIELDS_WITHHELD, &shadow.fields_withheld);
        }
    }
    events(&mut w, &record.events);
    if let Some((_, message)) = &record.denial
        && record.grpc_status != 0
    {
        w.message(15, |status| {
            status.string(2, message);
            status.varint(3, STATUS_CODE_ERROR);
        });
    }
    LAST_ACCESS_SPAN_LEN.store(w.buf.len(), Ordering::Relaxed);
    w.buf
}

/// The field and category lists as `Span.attributes`, each left out when empty.
fn field_list_attributes(lists: &FieldLists) -> Vec<u8> {
    let mut w = Writer::with_capacity(1024);
    for (key, values) in [
        (attr::FIELDS_RELEASED, lists.released()),
        (attr::FIELDS_TRANSFORMED, lists.transformed()),
        (attr::FIELDS_WITHHELD, lists.withheld()),
        (attr::CATEGORIES_RELEASED, lists.categories_released()),
        (attr::CATEGORIES_WITHHELD, lists.categories_withheld()),
    ] {
        if !values.is_empty() {
            w.attr_strs(SPAN_ATTRIBUTES, key, values);
        }
    }
    w.buf
}

/// A continuation span: more subject events of the call, a child of its access span.
#[must_use]
pub fn subjects_span(
    record: &AccessRecord,
    span_id: [u8; 8],
    subject_events: &[SubjectEvent],
) -> Vec<u8> {
    let mut w = Writer::with_capacity(512 + subject_events.len() * 128);
    span_head(
        &mut w,
        record,
        attr::SUBJECTS_SPAN,
        span_id,
        Some(record.trace.span_id),
    );
    call_attributes(&mut w, record);
    events(&mut w, subject_events);
    w.buf
}

/// Ids, name, kind, flags and times: `Span` fields 1 to 8 and 16.
fn span_head(
    w: &mut Writer,
    record: &AccessRecord,
    name: &'static str,
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
) {
    let access = name == attr::ACCESS_SPAN;
    w.bytes(1, &record.trace.trace_id);
    w.bytes(2, &span_id);
    if let Some(parent) = parent {
        w.bytes(4, &parent);
    }
    w.string(5, name);
    w.varint(
        6,
        if access {
            SPAN_KIND_SERVER
        } else {
            SPAN_KIND_INTERNAL
        },
    );
    w.fixed64(7, unix_nanos(record.start));
    w.fixed64(8, unix_nanos(record.end));
    // The access span's parent is the caller's span (remote); a continuation's is ours.
    let remote = access && parent.is_some();
    w.fixed32(
        16,
        FLAGS_SAMPLED | FLAGS_HAS_IS_REMOTE | if remote { FLAGS_IS_REMOTE } else { 0 },
    );
}

/// What identifies the call: on the access span and on every continuation.
fn call_attributes(w: &mut Writer, record: &AccessRecord) {
    let a = SPAN_ATTRIBUTES;
    let (service, method) = record
        .method
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", &record.method));
    w.attr_str(a, attr::RPC_SYSTEM, "grpc");
    w.attr_str(a, attr::RPC_SERVICE, service);
    w.attr_str(a, attr::RPC_METHOD, method);
    w.attr_int(a, attr::RPC_GRPC_STATUS_CODE, i64::from(record.grpc_status));
    w.attr_str(a, attr::METHOD, &record.method);
    if !record.method_kind.is_empty() {
        w.attr_str(a, attr::METHOD_KIND, record.method_kind);
    }
    w.attr_str(a, attr::DECISION_ID, &record.decision_id);
    w.attr_str(a, attr::DECISION, record.decision);
    w.attr_str(a, attr::AUDIT_KEY_ID, &record.audit_key_id);
    if let Some(caller) = &record.caller {
        w.attr_str(a, attr::CALLER, caller);
    }
    if let Some(purpose) = &record.purpose {
        w.attr_str(a, attr::PURPOSE, purpose);
    }
    if let Some(basis) = record.legal_basis {
        w.attr_str(a, attr::LEGAL_BASIS, basis);
    }
    if let Some(version) = &record.policy_version {
        w.attr_str(a, attr::POLICY_VERSION, version);
    }
    if let Some(digest) = &record.policy_digest {
        w.attr_str(a, attr::POLICY_DIGEST, digest);
    }
    if let Some((reason, message)) = &record.denial {
        w.attr_str(a, attr::DENIAL_REASON, reason);
        w.attr_str(a, attr::DENIAL_MESSAGE, message);
    }
}

/// `Span.events`: one per subject.
fn events(w: &mut Writer, events: &[SubjectEvent]) {
    let a = EVENT_ATTRIBUTES;
    for e in events {
        w.message(11, |event| {
            event.fixed64(1, unix_nanos(e.time));
            event.string(2, attr::SUBJECT_EVENT);
            event.attr_str(a, attr::SUBJECT, &e.pseudonym);
            event.attr_str(a, attr::SUBJECT_OUTCOME, e.outcome);
            if let Some(reason) = e.reason {
                event.attr_str(a, attr::SUBJECT_REASON, reason);
            }
            if let Some(token) = &e.token_id {
                event.attr_str(a, attr::CONSENT_TOKEN_ID, token);
            }
            if let Some(version) = e.consent_version {
                event.attr_int(a, attr::CONSENT_VERSION, int(version));
            }
        });
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
