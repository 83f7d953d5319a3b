//! The reference profile store: what Discreet's quick start, tests and benchmarks read
//! through the gateway. Deterministic synthetic profiles plus named personas that exercise
//! every rule of the shipped policy, served over a real `profile.v1.ProfileService`.
//!
//! It enforces nothing: it is the store a gateway protects, and it answers anyone who can
//! reach it (in a deployment, only the gateway can).
#![forbid(unsafe_code)]

mod dataset;
mod service;

pub use dataset::{Dataset, PERSONAS, Persona, REFERENCE_NOW};
pub use service::{ProfileStore, serve};
