//! Generated Rust types for Discreet's own protobuf files, and their descriptor set.
//!
//! The descriptor set is what the gateway reads annotations from and serves over
//! reflection; the generated types are for the reference store, the tests and the
//! benchmarks. The gateway itself never decodes a profile into these types: it rewrites
//! wire bytes.
#![forbid(unsafe_code)]
#![allow(missing_docs, unreachable_pub, clippy::all)]

/// The encoded `FileDescriptorSet` of `proto/` (annotations, profile service, and the
/// Google well-known types they import).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// The privacy annotations (`discreet.privacy.v1`).
pub mod privacy {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/discreet.privacy.v1.rs"));
    }
}

/// The reference profile service (`profile.v1`).
pub mod profile {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/profile.v1.rs"));
    }
}
