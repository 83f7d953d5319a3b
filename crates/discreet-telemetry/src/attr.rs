//! The audit span contract: every name an access span carries, in one place.
//!
//! One span named [`ACCESS_SPAN`] per call, kind SERVER, a child of the caller's W3C
//! `traceparent` when it sends one (a new trace otherwise), exported whatever the
//! caller's sampling flag says. One event named [`SUBJECT_EVENT`] per subject the call
//! touched. A call touching more subjects than `audit.max_subject_events` continues its
//! events on child spans named [`SUBJECTS_SPAN`], each with the same call attributes.
//!
//! A span never carries a field value, a token or a raw subject id: subjects appear only
//! as [`AuditKey`](crate::AuditKey) pseudonyms. Lists are OTLP string arrays.
//!
//! The README's "Audit span contract" table is this module; change both together.

/// Name of the one span per call.
pub const ACCESS_SPAN: &str = "discreet.access";
/// Name of the child spans that carry the subject events past the per-span limit.
pub const SUBJECTS_SPAN: &str = "discreet.access.subjects";
/// Name of the event recorded once per subject.
pub const SUBJECT_EVENT: &str = "discreet.subject";

// --- The call -------------------------------------------------------------------------

/// The calling workload, `namespace/name` (from its service-account token or the static
/// identity). Absent when the caller could not be identified.
pub const CALLER: &str = "discreet.caller";
/// The declared purpose, as sent (absent when none was declared).
pub const PURPOSE: &str = "discreet.purpose";
/// The purpose's legal basis in the active policy: `consent`, `contract`,
/// `legal_obligation`, `vital_interests`, `public_task`, `legitimate_interests`.
pub const LEGAL_BASIS: &str = "discreet.legal_basis";
/// `allowed` (everything the plan allows was released), `partial` (records or fields
/// withheld) or `denied` (nothing released).
pub const DECISION: &str = "discreet.decision";
/// The decision id, also sent to the caller in `x-discreet-decision-id`.
pub const DECISION_ID: &str = "discreet.decision_id";
/// Why a call was denied: one of the [`reason`] codes.
pub const DENIAL_REASON: &str = "discreet.denial.reason";
/// The status message the caller received (never holds a value, token or subject id).
pub const DENIAL_MESSAGE: &str = "discreet.denial.message";
/// The active policy's `version`.
pub const POLICY_VERSION: &str = "discreet.policy.version";
/// The active policy file's SHA-256, first 12 hex digits: tells apart two files under one
/// `version`.
pub const POLICY_DIGEST: &str = "discreet.policy.digest";
/// The full gRPC method, `/package.Service/Method`.
pub const METHOD: &str = "discreet.method";
/// `read` or `write`.
pub const METHOD_KIND: &str = "discreet.method.kind";
/// OpenTelemetry semantic conventions for RPC: `grpc`.
pub const RPC_SYSTEM: &str = "rpc.system";
/// Semantic conventions: `package.Service`.
pub const RPC_SERVICE: &str = "rpc.service";
/// Semantic conventions: `Method`.
pub const RPC_METHOD: &str = "rpc.method";
/// Semantic conventions: the gRPC status code the caller received (integer).
pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
/// Fingerprint of the audit key the pseudonyms were made with ([`AuditKey::key_id`]).
///
/// [`AuditKey::key_id`]: crate::AuditKey::key_id
pub const AUDIT_KEY_ID: &str = "discreet.audit.key_id";

// --- Subjects and consent -------------------------------------------------------------

/// The audit pseudonym of the subject, on the span when the call names exactly one
/// subject, and on every subject event.
pub const SUBJECT: &str = "discreet.subject";
/// Ids (`jti`) of the consent tokens the call presented and that verified (string array).
pub const CONSENT_TOKEN_IDS: &str = "discreet.consent.token_ids";
/// On a subject event: the id of the consent token that granted this subject.
pub const CONSENT_TOKEN_ID: &str = "discreet.consent.token_id";
/// On a subject event: the consent record's version (`consent_version` claim), integer.
pub const CONSENT_VERSION: &str = "discreet.consent.version";
/// On a subject event: `released`, `withheld` (no grant, or a guard such as freshness
/// removed the record from a batch or stream) or `denied` (the call was refused for
/// this subject).
pub const SUBJECT_OUTCOME: &str = "discreet.subject.outcome";
/// On a subject event: why it was withheld or denied, one of the [`reason`] codes.
pub const SUBJECT_REASON: &str = "discreet.subject.reason";

// --- What was released ----------------------------------------------------------------

/// Field paths released unchanged (string array, leaf paths such as `contact.email`).
pub const FIELDS_RELEASED: &str = "discreet.fields.released";
/// Field paths released transformed: masked, generalised, pseudonymised or truncated.
pub const FIELDS_TRANSFORMED: &str = "discreet.fields.transformed";
/// Field paths withheld, by the policy or at run time (stale data), collapsed to the
/// highest fully withheld message as in the `x-discreet-withheld-fields` trailer.
pub const FIELDS_WITHHELD: &str = "discreet.fields.withheld";
/// Data categories of the released and transformed fields.
pub const CATEGORIES_RELEASED: &str = "discreet.categories.released";
/// Data categories of the withheld fields.
pub const CATEGORIES_WITHHELD: &str = "discreet.categories.withheld";
/// Records the store returned (or, for a write, was sent), integer.
pub const RECORDS_TOTAL: &str = "discreet.records.total";
/// Records released to the caller, integer.
pub const RECORDS_RELEASED: &str = "discreet.records.released";
/// Records withheld whole (no grant, or refused by a guard), integer.
pub const RECORDS_WITHHELD: &str = "discreet.records.withheld";
/// Subject events not recorded on this span because they were carried on
/// [`SUBJECTS_SPAN`] children, integer.
pub const SUBJECT_EVENTS_CONTINUED: &str = "discreet.subject_events.continued";

// --- Shadow policy --------------------------------------------------------------------

/// The candidate (shadow) policy's `version`, when one is loaded.
pub const SHADOW_POLICY_VERSION: &str = "discreet.shadow.policy.version";
/// The decision the candidate would have made: `allowed`, `partial` or `denied`.
pub const SHADOW_DECISION: &str = "discreet.shadow.decision";
/// Field paths (leaves) the candidate would have released that the active policy
/// withheld (string array).
pub const SHADOW_FIELDS_RELEASED: &str = "discreet.shadow.fields.released";
/// Field paths (leaves) the candidate would have withheld that the active policy
/// released (string array).
pub const SHADOW_FIELDS_WITHHELD: &str = "discreet.shadow.fields.withheld";
/// Whether the candidate differs from the active policy on this call (boolean).
pub const SHADOW_DIFFERS: &str = "discreet.shadow.differs";

/// The values of [`DECISION`] and [`SHADOW_DECISION`].
pub mod decision {
    pub const ALLOWED: &str = "allowed";
    pub const PARTIAL: &str = "partial";
    pub const DENIED: &str = "denied";
}

/// The values of [`SUBJECT_OUTCOME`].
pub mod outcome {
    pub const RELEASED: &str = "released";
    pub const WITHHELD: &str = "withheld";
    pub const DENIED: &str = "denied";
}

/// The values of [`DENIAL_REASON`] and [`SUBJECT_REASON`]: stable codes, one per kind of
/// refusal, so a query does not depend on message wording.
pub mod reason {
    /// The gateway was at its concurrency limit.
    pub const OVERLOADED: &str = "overloaded";
    /// Strict audit mode: the access could not be queued for export.
    pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";
    /// The method is not served.
    pub const UNKNOWN_METHOD: &str = "unknown_method";
    /// No or an invalid caller identity.
    pub const UNAUTHENTICATED_CALLER: &str = "unauthenticated_caller";
    /// No purpose, several, or one the policy does not know.
    pub const INVALID_PURPOSE: &str = "invalid_purpose";
    /// The policy does not allow this caller this purpose.
    pub const CALLER_NOT_ALLOWED: &str = "caller_not_allowed";
    /// A consent token failed verification (forged, expired, wrong audience...).
    pub const INVALID_CONSENT_TOKEN: &str = "invalid_consent_token";
    /// A consent token was revoked.
    pub const CONSENT_REVOKED: &str = "consent_revoked";
    /// No consent token grants this purpose for the subject.
    pub const NO_CONSENT: &str = "no_consent";
    /// A record guard refused the record (minimum age, jurisdiction...).
    pub const GUARD: &str = "guard";
    /// The request was malformed (framing, message, metadata, limits).
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The caller's deadline passed.
    pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";
    /// The store was unavailable or answered with an error.
    pub const UPSTREAM: &str = "upstream";
    /// Keys, revocation list or another dependency was unavailable.
    pub const DEPENDENCY_UNAVAILABLE: &str = "dependency_unavailable";
    /// The caller went away before the answer was complete.
    pub const CANCELLED: &str = "cancelled";
    /// An internal failure (a plan that could not be applied).
    pub const INTERNAL: &str = "internal";
}
