//! Protobuf descriptors plus privacy annotations, turned into field labels.
//!
//! A store team labels its `.proto` fields with the `discreet.privacy.v1` options (or, for
//! a schema it does not own, with a [`SchemaMapping`] in configuration). [`Schema`] reads
//! those labels once, so that the policy compiler can ask "what does this field hold, where
//! did it come from, and what role does it play" without touching option bytes again.
//!
//! Pure logic: no I/O beyond reading the `.proto` files it is asked to compile.
#![forbid(unsafe_code)]

mod error;
mod label;
mod load;
mod mapping;
mod schema;

pub use error::SchemaError;
pub use label::{FieldLabel, LabelContext, MessageLabel, Provenance, Role, Sensitivity, Source};
pub use load::{ANNOTATIONS_PROTO, ANNOTATIONS_PROTO_NAME};
pub use mapping::{FieldMapping, MessageMapping, SchemaMapping};
pub use prost_reflect;
pub use schema::{Schema, UnlabelledField};
