//! The one-pass rewriter against prost, on a realistic ~1 KB profile, in one criterion group
//! so the figures of one run can be compared directly:
//!
//! - `prost_decode`: decoding the profile into generated types, the floor any gateway that
//!   decodes would pay;
//! - `prost_decode_encode`: decode and re-encode, what a decode-redact-encode gateway pays
//!   before redacting anything;
//! - `rewrite/<purpose>`: `PurposePlan::apply` (guards + rewrite) for each purpose of
//!   config/policy.yaml, output and report buffers reused;
//! - `rewrite_keep_all`: a plan that keeps every field, the rewriter's copy path alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use discreet_benches::{NOW, reference_schema, shipped_policy, typical_profile};
use discreet_policy::{ConsentGrant, Policy, PurposePlan, RecordOutcome};
use discreet_proto::profile::v1::Profile;
use discreet_redact::RewriteReport;
use prost::Message;

const PROFILE: &str = "profile.v1.Profile";

/// One purpose that keeps everything the schema labels (every top-level category, and the
/// special categories listed and granted), for the copy path.
const KEEP_ALL_POLICY: &str = r#"
version: "bench-keep-all"
purposes:
  essential.service:
    description: Everything, to measure the rewriter's copy path.
    legal_basis: contract
    callers: [bench/keep-all]
    minimum_age: {}
    special_categories: [user.demographic.race_ethnicity, user.demographic.religious_belief, user.health]
    rules:
      - { category: user, action: keep }
      - { category: system, action: keep }
"#;

fn grant_everything(policy: &Policy) -> ConsentGrant {
    ConsentGrant {
        purposes: policy.purposes.keys().cloned().collect(),
        special_categories: policy
            .purposes
            .values()
            .flat_map(|p| p.special_categories.iter().cloned())
            .collect(),
    }
}

fn compile(policy: &Policy, purpose: &str) -> PurposePlan {
    let schema = reference_schema();
    PurposePlan::compile(
        policy,
        &schema,
        PROFILE,
        purpose,
        &grant_everything(policy),
        b"bench-secret",
    )
    .unwrap_or_else(|e| panic!("{purpose}: {e}"))
}

/// Applies `plan` once outside the timing loop: the record must be released, and the
/// output must be a valid profile.
fn released_len(plan: &PurposePlan, input: &[u8]) -> usize {
    let mut out = Vec::new();
    let mut report = RewriteReport::default();
    let outcome = plan.apply(input, NOW, &mut out, &mut report).unwrap();
    assert_eq!(outcome, RecordOutcome::Released, "{}", plan.purpose);
    assert!(
        report.withheld.is_empty(),
        "{}: withheld {:?}",
        plan.purpose,
        report.withheld
    );
    Profile::decode(out.as_slice()).unwrap();
    out.len()
}

fn bench_rewrite(c: &mut Criterion) {
    let schema = reference_schema();
    let policy = shipped_policy(&schema);
    let input = typical_profile().encode_to_vec();
    println!("typical profile: {} bytes encoded", input.len());

    let mut plans: Vec<(String, PurposePlan)> = policy
        .purposes
        .keys()
        .map(|p| (format!("rewrite/{p}"), compile(&policy, p)))
        .collect();
    let keep_all_policy = Policy::parse(Path::new("keep_all.yaml"), KEEP_ALL_POLICY, &schema)
        .unwrap_or_else(|d| panic!("keep-all policy: {d:?}"));
    let keep_all = compile(&keep_all_policy, "essential.service");
    {
        let mut out = Vec::new();
        let mut report = RewriteReport::default();
        keep_all.apply(&input, NOW, &mut out, &mut report).unwrap();
        assert_eq!(
            out, input,
            "the keep-all plan must release the input unchanged"
        );
    }
    plans.push(("rewrite_keep_all".to_owned(), keep_all));
    for (name, plan) in &plans {
        println!("{name}: {} bytes released", released_len(plan, &input));
    }

    let mut group = c.benchmark_group("profile");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("prost_decode", |b| {
        b.iter(|| Profile::decode(black_box(input.as_slice())).unwrap());
    });
    group.bench_function("prost_decode_encode", |b| {
        b.iter(|| {
            Profile::decode(black_box(input.as_slice()))
                .unwrap()
                .encode_to_vec()
        });
    });
    let mut out = Vec::with_capacity(2 * input.len());
    let mut report = RewriteReport::default();
    for (name, plan) in &plans {
        group.bench_function(name.as_str(), |b| {
            b.iter(|| {
                out.clear();
                report.clear();
                let outcome = plan
                    .apply(black_box(input.as_slice()), NOW, &mut out, &mut report)
                    .unwrap();
                black_box(&out);
                outcome
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_rewrite);
criterion_main!(benches);
