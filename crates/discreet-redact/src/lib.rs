//! Applies a compiled [`RedactionPlan`] to protobuf wire bytes in one pass.
//!
//! The plan says, for every field number of every message type the schema knows, whether
//! to keep the bytes, drop them, descend into a nested message, or transform the value.
//! The rewriter never builds a message object: kept fields are copied as byte runs (and
//! adjacent kept fields as one run), dropped and unknown fields are skipped, and only
//! transformed values are decoded. Malformed input is an error, never a partial release.
//!
//! Pure logic: no I/O, no async, no allocation per kept field.
#![forbid(unsafe_code)]

pub mod date;
mod error;
mod extract;
mod fields;
mod plan;
mod rewrite;
mod transform;
mod wire;

pub use error::RedactError;
pub use extract::{extract_birth_date, extract_strings, last_string};
pub use fields::{WireField, append_length_delimited, fields};
pub use plan::{
    FieldAction, FieldRule, MessagePlan, MsgId, PlanBuilder, RedactionPlan, ScalarKind,
    UpdatedAtField,
};
pub use rewrite::{RewriteReport, rewrite};
pub use transform::{PseudonymKey, Transform, snap_to_grid};
pub use wire::MAX_DEPTH;
