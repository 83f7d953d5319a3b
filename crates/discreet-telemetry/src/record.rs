//! One access, as plain data: what the gateway fills in while it serves a call and hands
//! to the exporter when the call ends. No I/O here, so the record can be built and tested
//! without a collector; `span.rs` turns it into an OpenTelemetry span.
use std::{
    sync::{Arc, OnceLock},
    time::SystemTime,
};

use crate::trace_context::TraceContext;

/// Everything the access span of one call says (see [`attr`](crate::attr) for what each
/// field becomes). Holds pseudonyms, names and paths only, never a field value.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub trace: TraceContext,
    pub start: SystemTime,
    pub end: SystemTime,
    /// `/package.Service/Method`.
    pub method: Arc<str>,
    /// `read`, `write`, or empty for a method that is not served.
    pub method_kind: &'static str,
    pub caller: Option<Arc<str>>,
    pub purpose: Option<Arc<str>>,
    pub legal_basis: Option<&'static str>,
    /// One of [`attr::decision`](crate::attr::decision).
    pub decision: &'static str,
    pub decision_id: Arc<str>,
    /// A [`attr::reason`](crate::attr::reason) code and the status message.
    pub denial: Option<(&'static str, String)>,
    /// The gRPC status code the caller received.
    pub grpc_status: i32,
    pub policy_version: Option<Arc<str>>,
    /// The policy file's digest ([`attr::POLICY_DIGEST`](crate::attr::POLICY_DIGEST)).
    pub policy_digest: Option<Arc<str>>,
    /// The audit pseudonym of the one subject the call names, if it names one.
    pub subject: Option<String>,
    /// Ids of the consent tokens that verified.
    pub token_ids: Vec<Arc<str>>,
    pub events: Vec<SubjectEvent>,
    /// Events already sent on continuation spans.
    pub continued_events: u64,
    /// What went out and what did not, by leaf path and category.
    pub fields: Arc<FieldLists>,
    pub records_total: u64,
    pub records_released: u64,
    pub records_withheld: u64,
    pub shadow: Option<ShadowOutcome>,
    pub audit_key_id: Arc<str>,
}

/// What a call released and withheld: leaf paths kept, leaf paths transformed, paths
/// withheld, and the categories released and withheld. Every call served by one plan says
/// the same, so a plan builds its lists once and its calls share them (an `Arc` each,
/// rather than some eighty `Arc<str>` clones and drops per call, on counters that every
/// serving thread touches), and the span attributes they become are encoded once too.
#[derive(Debug, Default)]
pub struct FieldLists {
    released: Vec<Arc<str>>,
    transformed: Vec<Arc<str>>,
    withheld: Vec<Arc<str>>,
    categories_released: Vec<Arc<str>>,
    categories_withheld: Vec<Arc<str>>,
    /// The five as encoded span attributes, made on first use (by the exporter).
    #[cfg_attr(not(feature = "export"), allow(dead_code))]
    encoded: OnceLock<Vec<u8>>,
}

impl FieldLists {
    /// Lists in the order the span gives them; each should hold no duplicates.
    #[must_use]
    pub fn new(
        released: Vec<Arc<str>>,
        transformed: Vec<Arc<str>>,
        withheld: Vec<Arc<str>>,
        categories_released: Vec<Arc<str>>,
        categories_withheld: Vec<Arc<str>>,
    ) -> Self {
        FieldLists {
            released,
            transformed,
            withheld,
            categories_released,
            categories_withheld,
            encoded: OnceLock::new(),
        }
    }

    /// The lists of a call that released nothing and withheld nothing by field (shared).
    #[must_use]
    pub fn none() -> Arc<FieldLists> {
        static NONE: OnceLock<Arc<FieldLists>> = OnceLock::new();
        Arc::clone(NONE.get_or_init(Arc::default))
    }

    /// Leaf paths released as they are.
    #[must_use]
    pub fn released(&self) -> &[Arc<str>] {
        &self.released
    }

    /// Leaf paths released transformed (masked, generalised, pseudonymised).
    #[must_use]
    pub fn transformed(&self) -> &[Arc<str>] {
        &self.transformed
    }

    /// Paths withheld.
    #[must_use]
    pub fn withheld(&self) -> &[Arc<str>] {
        &self.withheld
    }

    /// Categories of what was released.
    #[must_use]
    pub fn categories_released(&self) -> &[Arc<str>] {
        &self.categories_released
    }

    /// Categories of what was withheld.
    #[must_use]
    pub fn categories_withheld(&self) -> &[Arc<str>] {
        &self.categories_withheld
    }

    /// The non-empty lists as encoded `Span.attributes`, encoded on the first call.
    #[cfg(feature = "export")]
    pub(crate) fn encoded(&self, encode: impl FnOnce(&FieldLists) -> Vec<u8>) -> &[u8] {
        self.encoded.get_or_init(|| encode(self))
    }
}

impl PartialEq for FieldLists {
    fn eq(&self, other: &Self) -> bool {
        self.released == other.released
            && self.transformed == other.transformed
            && self.withheld == other.withheld
            && self.categories_released == other.categories_released
            && self.categories_withheld == other.categories_withheld
    }
}

impl Eq for FieldLists {}

/// One subject the call touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectEvent {
    pub time: SystemTime,
    /// The subject's audit pseudonym.
    pub pseudonym: String,
    /// One of [`attr::outcome`](crate::attr::outcome).
    pub outcome: &'static str,
    /// A [`attr::reason`](crate::attr::reason) code when withheld or denied.
    pub reason: Option<&'static str>,
    pub token_id: Option<Arc<str>>,
    pub consent_version: Option<u64>,
}

/// Where a candidate policy would have decided differently from the active one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShadowOutcome {
    pub policy_version: Arc<str>,
    pub decision: &'static str,
    /// Leaf paths the candidate would release that the active policy withheld.
    pub fields_released: Vec<Arc<str>>,
    /// Leaf paths the candidate would withhold that the active policy released.
    pub fields_withheld: Vec<Arc<str>>,
}

impl ShadowOutcome {
    /// Whether the candidate differs from the active decision `active`.
    #[must_use]
    pub fn differs_from(&self, active: &str) -> bool {
        self.decision != active
            || !self.fields_released.is_empty()
            || !self.fields_withheld.is_empty()
    }
}

impl AccessRecord {
    /// A record for a call that has just arrived: denied until shown otherwise, so a
    /// record finished early (a dropped call) never claims more than happened.
    #[must_use]
    pub fn begin(
        trace: TraceContext,
        method: Arc<str>,
        decision_id: Arc<str>,
        audit_key_id: Arc<str>,
    ) -> Self {
        let now = SystemTime::now();
        AccessRecord {
            trace,
            start: now,
            end: now,
            method,
            method_kind: "",
            caller: None,
            purpose: None,
            legal_basis: None,
            decision: crate::attr::decision::DENIED,
            decision_id,
            denial: None,
            grpc_status: 2,
            policy_version: None,
            policy_digest: None,
            subject: None,
            token_ids: Vec::new(),
            events: Vec::new(),
            continued_events: 0,
            fields: FieldLists::none(),
            records_total: 0,
            records_released: 0,
            records_withheld: 0,
            shadow: None,
            audit_key_id,
        }
    }
}

/// Adds `item` to `list` unless it is there already (lists are short: a linear scan
/// beats hashing).
pub fn push_unique(list: &mut Vec<Arc<str>>, item: &Arc<str>) {
    if !list.iter().any(|p| p == item) {
        list.push(Arc::clone(item));
    }
}
