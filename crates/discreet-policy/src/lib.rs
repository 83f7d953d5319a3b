//! The Discreet policy: which purposes exist, who may declare them, and what each purpose
//! may see of a record.
//!
//! A policy is a YAML document ([`Policy::parse`]). It is validated against the vocabulary
//! (fideslang categories and purposes plus the policy's own) and against the schema, with
//! diagnostics that name the file, line and problem. A valid policy compiles, for a
//! (message type, purpose, grant) triple, into a [`PurposePlan`]: record guards plus
//! [`discreet_redact::RedactionPlan`]s that the rewriter applies without looking anything
//! up by name. [`Policy::explain`] tells, for every field path, the action and the rule
//! that chose it, from the very same decision function the compiler uses.
//!
//! Pure logic: no I/O, no async.
#![forbid(unsafe_code)]

mod action;
mod closest;
mod compile;
mod decide;
mod diagnostic;
mod diff;
mod document;
mod duration;
mod golden;
mod golden_paths;
mod json_schema;
mod jurisdiction;
mod lint;
mod numbers;
mod policy;
mod validate;
#[cfg(test)]
mod validate_tests;
mod vocabulary;
mod yaml_error;

pub use action::Action;
pub use compile::{PurposePlan, RecordOutcome, Refusal, role_path};
pub use decide::{Because, FieldDecision};
pub use diagnostic::{Diagnostic, Severity};
pub use diff::{PolicyChange, diff_policies};
pub use duration::parse_duration;
pub use golden::{
    Actual, CaseResult, Clock, Expectation, GoldenCase, GoldenFile, GrantDoc, Outcome, RecordRef,
    run_case,
};
pub use json_schema::{policy_json_schema, policy_tests_json_schema};
pub use jurisdiction::{jurisdiction_chain, normalize_code};
pub use lint::{LintFinding, LintProblem, lint_schema};
pub use policy::{
    AccessDenial, ConsentGrant, Explanation, LegalBasis, Policy, Purpose, Rule, parse_jurisdiction,
};
pub use vocabulary::{Vocabulary, VocabularyEntry};
