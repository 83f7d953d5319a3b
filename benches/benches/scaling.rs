//! How enforcement cost grows, each figure beside `prost` decoding the same bytes in the
//! same run (BENCHMARKS.md, "Scaling"; `benches/scaling/plot.py` draws it):
//!
//! - `fields/N`: one profile of N populated fields (10 to 1,000: a fixed head of 10 plus
//!   orders of 5 fields each), purpose `essential.fraud_detection`;
//! - `batch/N`: a `BatchGetProfilesResponse` of N typical profiles (1 to 1,000), each
//!   record rewritten on its own as the gateway does;
//! - `policy/P`: the typical profile under a policy of P purposes (5 to 1,000), each with
//!   the fraud-detection rules: the plan of one purpose should cost the same however
//!   large the policy around it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use discreet_benches::{NOW, SHIPPED_POLICY, reference_schema, typical_profile};
use discreet_policy::{ConsentGrant, Policy, PurposePlan};
use discreet_proto::profile::v1::{
    BatchGetProfilesResponse, Contact, Demographics, Order, OrderStatus, PersonName, Profile,
};
use discreet_redact::{RewriteReport, fields};
use prost::Message;

const PROFILE: &str = "profile.v1.Profile";
const PURPOSE: &str = "essential.fraud_detection";

fn plan(policy: &Policy, purpose: &str) -> PurposePlan {
    let grant = ConsentGrant {
        purposes: [purpose.to_owned()].into(),
        special_categories: Default::default(),
    };
    PurposePlan::compile(
        policy,
        &reference_schema(),
        PROFILE,
        purpose,
        &grant,
        b"bench-secret",
    )
    .unwrap_or_else(|e| panic!("{purpose}: {e}"))
}

/// A profile with exactly `n` populated leaf fields (`n` = 10 + 5k).
fn profile_with_fields(n: usize) -> Profile {
    assert!(n >= 10 && (n - 10).is_multiple_of(5), "{n}");
    Profile {
        subject_id: "u-000042".into(),
        username: "ada".into(),
        name: Some(PersonName {
            first: "Ada".into(),
            last: "Lovelace".into(),
            ..Default::default()
        }),
        contact: Some(Contact {
            email: "ada@example.com".into(),
            phone: "+44 20 7946 0000".into(),
            ..Default::default()
        }),
        jurisdiction: "GB".into(),
        demographics: Some(Demographics {
            birth_date: "1990-12-10".into(),
            language: "en".into(),
            ..Default::default()
        }),
        loyalty_points: 1200,
        orders: (0..(n - 10) / 5)
            .map(|i| Order {
                order_id: format!("o-{i:06}"),
                total_cents: 1999 + i as i64,
                currency: "EUR".into(),
                skus: vec![format!("sku-{i}")],
                status: OrderStatus::Delivered as i32,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The shipped policy plus `extra` purposes, each a copy of fraud detection's rules.
fn policy_of(purposes: usize) -> Policy {
    let extra = purposes.saturating_sub(5);
    let mut text = SHIPPED_POLICY.to_owned();
    let fraud = &SHIPPED_POLICY[SHIPPED_POLICY.find("  essential.fraud_detection:").unwrap()
        ..SHIPPED_POLICY
            .find("  essential.service.operations.support:")
            .unwrap()];
    let mut vocabulary = String::from("vocabulary:\n  purposes:\n");
    for i in 0..extra {
        writeln!(
            vocabulary,
            "    - {{ key: bench.p{i:04}, description: generated }}"
        )
        .unwrap();
        text.push_str(&fraud.replace("essential.fraud_detection", &format!("bench.p{i:04}")));
    }
    if extra > 0 {
        text = text.replacen("\npurposes:\n", &format!("\n{vocabulary}\npurposes:\n"), 1);
    }
    Policy::parse(Path::new("scaling.yaml"), &text, &reference_schema())
        .unwrap_or_else(|d| panic!("{purposes} purposes: {d:?}"))
}

fn bench_scaling(c: &mut Criterion) {
    let shipped = policy_of(5);
    let fraud = plan(&shipped, PURPOSE);
    let mut out = Vec::new();
    let mut report = RewriteReport::default();

    let mut group = c.benchmark_group("scaling-fields");
    for n in [10usize, 30, 100, 300, 1000] {
        let input = profile_with_fields(n).encode_to_vec();
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::new("prost_decode", n), &input, |b, input| {
            b.iter(|| Profile::decode(black_box(input.as_slice())).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("rewrite", n), &input, |b, input| {
            b.iter(|| {
                out.clear();
                report.clear();
                fraud
                    .apply(black_box(input), NOW, &mut out, &mut report)
                    .unwrap()
            });
        });
    }
    group.finish();

    let typical = typical_profile();
    let mut group = c.benchmark_group("scaling-batch");
    for n in [1usize, 10, 100, 1000] {
        let input = BatchGetProfilesResponse {
            profiles: vec![typical.clone(); n],
        }
        .encode_to_vec();
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::new("prost_decode", n), &input, |b, input| {
            b.iter(|| BatchGetProfilesResponse::decode(black_box(input.as_slice())).unwrap());
        });
        group.bench_with_input(BenchmarkId::new("rewrite", n), &input, |b, input| {
            b.iter(|| {
                out.clear();
                for record in fields(black_box(input)) {
                    report.clear();
                    fraud
                        .apply(record.unwrap().payload, NOW, &mut out, &mut report)
                        .unwrap();
                }
            });
        });
    }
    group.finish();

    let input = typical.encode_to_vec();
    let mut group = c.benchmark_group("scaling-policy");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for purposes in [5usize, 50, 200, 1000] {
        let policy = policy_of(purposes);
        assert_eq!(policy.purposes.len(), purposes);
        let plan = plan(&policy, PURPOSE);
        group.bench_with_input(
            BenchmarkId::new("prost_decode", purposes),
            &input,
            |b, input| {
                b.iter(|| Profile::decode(black_box(input.as_slice())).unwrap());
            },
        );
        group.bench_with_input(BenchmarkId::new("rewrite", purposes), &input, |b, input| {
            b.iter(|| {
                out.clear();
                report.clear();
                plan.apply(black_box(input), NOW, &mut out, &mut report)
                    .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench_scaling
}
criterion_main!(benches);
