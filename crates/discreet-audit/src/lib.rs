//! `discreet audit`'s logic: reads the gateway's access spans as OTLP JSON and answers an
//! auditor's questions about them.
//!
//! - [`SpanReader`] reads OTLP JSON (JSON Lines as the Collector's `file` exporter writes
//!   them, or pretty-printed documents) into [`Span`]s, keeping only Discreet's.
//! - [`AuditTrail::from_spans`] turns them into [`Access`] records: duplicates dropped,
//!   continuation spans (`discreet.access.subjects`) folded into their call.
//! - Queries: [`AuditTrail::accesses`], [`AuditTrail::denials`], [`AuditTrail::subject`],
//!   the [`SubjectReport`] for one person, the [`ShadowSummary`] of a candidate policy.
//! - [`Table`] renders an answer as aligned text, CSV or JSON.
//!
//! Subjects appear only as audit pseudonyms; an auditor finds a person by computing their
//! pseudonym with the [`AuditKey`]. Nothing here reverses a pseudonym.
//!
//! Pure logic: no network, no async; input is any `BufRead`.
#![forbid(unsafe_code)]

mod access;
mod error;
mod otlp;
mod query;
mod reader;
mod render;
mod report;
mod report_text;
mod shadow;
mod span;
mod summary_tables;
mod tables;
pub mod time;
mod trail;

pub use access::{Access, Shadow, SubjectEvent};
pub use discreet_telemetry::{AuditKey, AuditKeyError, attr};
pub use error::{ReadError, ReadErrorKind};
pub use query::{Filter, SubjectAccess};
pub use reader::{DEFAULT_MAX_DOCUMENT_BYTES, SpanReader};
pub use render::{Cell, Column, Format, Table};
pub use report::{ReportLine, SubjectReport};
pub use report_text::report_text;
pub use shadow::{DecisionChange, FieldShadow, PurposeShadow, ShadowSummary};
pub use span::{AttrValue, Attributes, Span, SpanEvent};
pub use summary_tables::{report_table, shadow_table, shadow_text};
pub use tables::{accesses_table, denials_table, subject_table};
pub use trail::AuditTrail;
