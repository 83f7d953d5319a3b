//! Arbitrary bytes as a policy file (and as a golden-test file), through the loader and,
//! when the loader accepts it, the compiler, the explainer, the diff against the shipped
//! policy and the redaction of a typical profile.
//!
//! Invariants: nothing panics or overflows the stack; a refusal carries at least one
//! error diagnostic naming the file; a policy the loader accepts compiles for every
//! purpose it defines (the gateway compiles plans lazily, on the first call, so a policy
//! that loads but does not compile would fail calls instead of failing the reload);
//! `explain` agrees with the plan on which fields are released; a released rewrite is
//! a rewrite the same plan accepts again. Run: see ../README.md.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::sync::LazyLock;

use discreet_policy::{ConsentGrant, GoldenFile, Policy, PurposePlan, RecordOutcome, Severity};
use discreet_redact::{FieldAction, RewriteReport};
use discreet_schema::Schema;
use libfuzzer_sys::fuzz_target;

const SHIPPED: &str = include_str!("../../../../config/policy.yaml");
/// A typical encoded profile (the redact fuzzer's seed).
const PROFILE: &[u8] =
    include_bytes!("../../../discreet-redact/fuzz/seeds/rewrite/typical-profile.bin");
const NOW: i64 = 1_795_000_000;

static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).expect("reference schema")
});
static BASELINE: LazyLock<Policy> = LazyLock::new(|| {
    Policy::parse(Path::new("config/policy.yaml"), SHIPPED, &SCHEMA)
        .unwrap_or_else(|d| panic!("shipped policy does not load: {d:?}"))
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.yaml");
    // The golden-test loader reads the same kind of YAML from the same authors.
    let _ = GoldenFile::parse(file, text);
    let policy = match Policy::parse(file, text, &SCHEMA) {
        Ok(p) => p,
        Err(diagnostics) => {
            assert!(
                diagnostics
                    .iter()
                    .any(|d| d.severity == Severity::Error && d.file == file),
                "refused without an error diagnostic: {diagnostics:?}"
            );
            return;
        }
    };
    let grant = ConsentGrant {
        purposes: policy.purposes.keys().cloned().collect(),
        special_categories: policy
            .purposes
            .values()
            .flat_map(|p| p.special_categories.iter().cloned())
            .collect(),
    };
    let _ = discreet_policy::diff_policies(&BASELINE, &policy, &SCHEMA, "profile.v1.Profile");
    for purpose in policy.purposes.keys() {
        let plan = PurposePlan::compile(
            &policy,
            &SCHEMA,
            "profile.v1.Profile",
            purpose,
            &grant,
            b"fuzz-secret",
        )
        .unwrap_or_else(|e| panic!("{purpose}: a loaded policy does not compile: {e}"));
        let explained = policy
            .explain(&SCHEMA, "profile.v1.Profile", purpose, &grant, None)
            .unwrap_or_else(|e| panic!("{purpose}: a loaded policy cannot be explained: {e}"));
        for jurisdiction in plan.variant_jurisdictions() {
            policy
                .explain(
                    &SCHEMA,
                    "profile.v1.Profile",
                    purpose,
                    &grant,
                    Some(jurisdiction),
                )
                .unwrap_or_else(|e| panic!("{purpose}/{jurisdiction}: {e}"));
        }
        // A field the base plan keeps or transforms is one `explain` says is released.
        let base = plan.redaction_plan(None);
        for (_, rule) in base.rules() {
            if matches!(rule.action, FieldAction::Keep | FieldAction::Transform(_)) {
                let path = base.path(rule.path_id);
                assert!(
                    explained.iter().any(|e| {
                        // A map is explained once; its entries' key and value rules are
                        // `<map>.key` and `<map>.value`.
                        let covers = e.path == path
                            || path
                                .strip_prefix(e.path.as_str())
                                .is_some_and(|rest| rest == ".key" || rest == ".value");
                        covers && e.decision.action.releases()
                    }),
                    "{purpose}: the plan releases {path} but explain does not say so"
                );
            }
        }
        let mut out = Vec::new();
        let mut report = RewriteReport::default();
        if let Ok(RecordOutcome::Released) = plan.apply(PROFILE, NOW, &mut out, &mut report) {
            let mut again = Vec::new();
            report.clear();
            plan.apply(&out, NOW, &mut again, &mut report)
                .unwrap_or_else(|e| panic!("{purpose}: its own output does not rewrite: {e}"));
        }
    }
});
