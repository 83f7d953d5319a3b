//! Arbitrary bytes as an encoded `profile.v1.Profile`, through every purpose of the shipped
//! policy (config/policy.yaml) with a grant naming every purpose and special category.
//!
//! Invariants: nothing panics; on `Released` the output is a valid `Profile` and rewriting
//! the output again for the same purpose succeeds (the rewrite's output is a well-formed
//! input of the same shape). Run: see ../README.md.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::LazyLock;

use discreet_policy::{ConsentGrant, Policy, PurposePlan, RecordOutcome};
use discreet_redact::RewriteReport;
use libfuzzer_sys::fuzz_target;
use prost::Message;

const POLICY: &str = include_str!("../../../../config/policy.yaml");

/// Inside the freshness windows of the seed profiles, so `max_data_age` paths are reached.
const NOW: i64 = 1_795_000_000;

static PLANS: LazyLock<Vec<PurposePlan>> = LazyLock::new(|| {
    let schema = discreet_schema::Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET)
        .expect("reference schema");
    let policy = Policy::parse(Path::new("config/policy.yaml"), POLICY, &schema)
        .unwrap_or_else(|d| panic!("shipped policy does not load: {d:?}"));
    let grant = ConsentGrant {
        purposes: policy.purposes.keys().cloned().collect(),
        special_categories: policy
            .purposes
            .values()
            .flat_map(|p| p.special_categories.iter().cloned())
            .collect(),
    };
    policy
        .purposes
        .keys()
        .map(|purpose| {
            PurposePlan::compile(
                &policy,
                &schema,
                "profile.v1.Profile",
                purpose,
                &grant,
                b"fuzz-secret",
            )
            .unwrap_or_else(|e| panic!("{purpose}: {e}"))
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let mut again = Vec::new();
    let mut report = RewriteReport::default();
    for plan in PLANS.iter() {
        out.clear();
        report.clear();
        match plan.apply(data, NOW, &mut out, &mut report) {
            Ok(RecordOutcome::Released) => {
                if let Err(e) = discreet_proto::profile::v1::Profile::decode(out.as_slice()) {
                    panic!(
                        "{}: released output is not a Profile: {e}; output {:02x?}",
                        plan.purpose, out
                    );
                }
                again.clear();
                report.clear();
                if let Err(e) = plan.apply(&out, NOW, &mut again, &mut report) {
                    panic!(
                        "{}: rewriting the released output fails: {e}; output {:02x?}",
                        plan.purpose, out
                    );
                }
            }
            Ok(RecordOutcome::Refused(_)) | Err(_) => {}
        }
    }
});
