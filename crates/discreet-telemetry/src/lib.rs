//! Discreet's audit trail: one OpenTelemetry span per access.
//!
//! - [`attr`]: the span contract. Every attribute, event and span name, as constants, in
//!   one place; the README's "Audit span contract" table is this module.
//! - [`AuditKey`]: the keyed pseudonym under which a subject appears in spans. Auditors
//!   holding the key can find a person's accesses from their raw id; nobody reading the
//!   spans without it can.
#![forbid(unsafe_code)]

pub mod attr;
mod audit_key;
mod record;
mod trace_context;

#[cfg(feature = "export")]
mod collector;
#[cfg(feature = "export")]
mod export;
#[cfg(feature = "export")]
pub mod metrics;
#[cfg(feature = "export")]
mod otlp;
#[cfg(feature = "export")]
pub mod receiver;
#[cfg(feature = "export")]
mod span;

pub use audit_key::{AuditKey, AuditKeyError, MIN_AUDIT_KEY_BYTES};
pub use record::{AccessRecord, FieldLists, ShadowOutcome, SubjectEvent, push_unique};
pub use trace_context::{SpanIds, TraceContext};

#[cfg(feature = "export")]
pub use collector::{CollectorHeaders, CollectorTls};
#[cfg(feature = "export")]
pub use export::{
    AuditBacklog, AuditMode, AuditSlot, AuditTrail, AuditUnavailable, ExportSettings,
};
#[cfg(feature = "export")]
pub use span::{access_span, subjects_span};
