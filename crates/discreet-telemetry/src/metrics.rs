//! The gateway's Prometheus metrics. Label values are bounded: purposes and callers
//! are those the policy names (anything else is `other`), decisions and results are
//! fixed sets, so a caller cannot grow the series count.
use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::Registry,
};

use crate::export::AuditMode;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: Arc<str>,
    pub purpose: Arc<str>,
    pub caller: Arc<str>,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallerLabels {
    /// A caller the policy names, or `other`.
    pub caller: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurposeLabels {
    pub purpose: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub method: Arc<str>,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Which TLS files a reload was of (`serving`: the certificate and key callers are
/// served; `client_ca`: the client CA bundle; `collector`: the collector's CA bundle and
/// client certificate), and its result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub files: &'static str,
    pub result: &'static str,
}

/// A key or revocation source: `consent_keys`, `revocation`, `caller_keys`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: Arc<str>,
    /// The policy file's SHA-256 (first 12 hex digits): two files under one version
    /// show as two series.
    digest: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: &'static str,
}

/// The audit pipeline's counters, shared with the export task.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Spans the collector accepted.
    pub exported: Counter,
    /// Relaxed mode: spans lost because the queue was full.
    pub dropped: Counter,
    /// Strict mode: calls refused because their span had no place in the queue.
    pub refused: Counter,
    /// Export requests that failed (each is retried).
    pub export_failures: Counter,
    /// Spans in the batch being exported right now.
    pub in_export: Gauge,
    mode: Family<ModeLabels, Gauge>,
}

impl AuditCounters {
    pub(crate) fn set_mode(&self, mode: AuditMode) {
        for m in [AuditMode::Strict, AuditMode::Relaxed] {
            self.mode
                .get_or_create(&ModeLabels { mode: m.as_str() })
                .set(i64::from(m == mode));
        }
    }
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct GatewayMetrics {
    registry: Registry,
    pub calls: Family<CallLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram>,
    pub fields_withheld: Family<PurposeLabels, Counter>,
    pub records_withheld: Family<PurposeLabels, Counter>,
    pub plan_cache: Family<ResultLabels, Counter>,
    /// Requests the store provably did not process, sent again (`sent`) or not for lack
    /// of retry budget (`over_budget`).
    pub upstream_retries: Family<ResultLabels, Counter>,
    pub policy_reloads: Family<ResultLabels, Counter>,
    /// Reloads of TLS files by result (applied, rejected): the serving certificate and key,
    /// the client CA bundle, the collector's CA bundle and client certificate.
    pub tls_certificate_reloads: Family<ReloadLabels, Counter>,
    /// Reloads of the `audit.headers` files (collector credentials) by result.
    pub audit_header_reloads: Family<ResultLabels, Counter>,
    /// `notAfter` of each certificate the gateway presents (serving, collector client), by
    /// file; no series without TLS.
    tls_certificate_expiry: Family<FileLabels, Gauge>,
    key_source_age: Family<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    key_source_max_staleness: Family<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    key_source_failures: Family<SourceLabels, Gauge>,
    pub in_flight: Gauge,
    /// Calls admitted at once: `limits.max_concurrent_calls`, or the adaptive limit.
    pub concurrency_limit: Gauge,
    /// Calls refused at admission (over the concurrency limit), which get no access span.
    pub shed: Counter,
    /// Calls refused because their caller had `limits.max_calls_per_caller` in flight, by
    /// caller (those the policy names; the rest as `other`).
    pub over_caller_share: Family<CallerLabels, Counter>,
    /// Caller connections open now (all serving threads).
    pub connections_open: Gauge,
    /// Caller connections closed at accept, over `limits.max_connections`.
    pub connections_refused: Counter,
    /// Caller connections closed after `limits.connection_idle_timeout` with no call open.
    pub connections_idle_closed: Counter,
    /// Caller connections asked to go (GOAWAY) at `limits.max_connection_age`.
    pub connections_aged_out: Counter,
    pub audit_queue_depth: Gauge,
    /// Bytes of encoded spans queued or being exported (bounded by `audit.queue_bytes`).
    pub audit_queue_bytes: Gauge,
    pub audit: Arc<AuditCounters>,
    policy_version: Family<VersionLabels, Gauge>,
    shadow_policy_version: Family<VersionLabels, Gauge>,
    current_policy: Mutex<Option<VersionLabels>>,
    current_shadow: Mutex<Option<VersionLabels>>,
}

impl GatewayMetrics {
    #[must_use]
    pub fn new(audit_key_id: &str) -> Self {
        let mut registry = Registry::with_prefix("discreet");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls by method, purpose, caller and decision",
            calls.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~6.5 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        registry.register_with_unit(
            "call_duration",
            "Time from request headers to the last response byte",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let fields_withheld = Family::<PurposeLabels, Counter>::default();
        registry.register(
            "fields_withheld",
            "Field paths withheld, summed over calls",
            fields_withheld.clone(),
        );
        let records_withheld = Family::<PurposeLabels, Counter>::default();
        registry.register(
            "records_withheld",
            "Whole records withheld",
            records_withheld.clone(),
        );
        let plan_cache = Family::<ResultLabels, Counter>::default();
        registry.register(
            "plan_cache_lookups",
            "Compiled-plan cache lookups by result (hit, miss)",
            plan_cache.clone(),
        );
        let upstream_retries = Family::<ResultLabels, Counter>::default();
        registry.register(
            "upstream_retries",
            "Requests the store provably did not process (GOAWAY, REFUSED_STREAM), by result: sent again, or not (over_budget: retries are held to a fifth of calls plus 10 a second per serving thread)",
            upstream_retries.clone(),
        );
        let policy_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "policy_reloads",
            "Policy file reloads by result (applied, rejected)",
            policy_reloads.clone(),
        );
        let tls_certificate_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "tls_certificate_reloads",
            "TLS file reloads by files (serving: certificate and key; client_ca: client CA bundle; collector: collector CA bundle and client certificate) and result (applied, rejected: what was in force stays in use)",
            tls_certificate_reloads.clone(),
        );
        let audit_header_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "audit_header_reloads",
            "Reloads of the audit.headers files (credentials sent to the collector) by result (applied, rejected: the values in use are kept)",
            audit_header_reloads.clone(),
        );
        let tls_certificate_expiry = Family::<FileLabels, Gauge>::default();
        registry.register(
            "tls_certificate_expiration_timestamp_seconds",
            "When a certificate the gateway presents expires (its notAfter, Unix seconds): the one served to new connections, or the client certificate for the collector",
            tls_certificate_expiry.clone(),
        );
        let key_source_age =
            Family::<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "key_source_age_seconds",
            "Seconds since a key or revocation source (consent_keys, revocation, caller_keys) was last read successfully; +Inf if never. Past key_source_max_staleness_seconds, every check that needs it fails closed",
            key_source_age.clone(),
        );
        let key_source_max_staleness =
            Family::<SourceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "key_source_max_staleness_seconds",
            "How long a source's last good copy is used (max_staleness) before checks fail closed",
            key_source_max_staleness.clone(),
        );
        let key_source_failures = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "key_source_consecutive_failures",
            "Reads of a key or revocation source that failed (unreachable, refused, unparsable) since the last that succeeded",
            key_source_failures.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("calls_in_flight", "Calls being served", in_flight.clone());
        let concurrency_limit = Gauge::default();
        registry.register(
            "concurrency_limit",
            "Calls admitted at once (fixed, or the adaptive limit now)",
            concurrency_limit.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "calls_shed",
            "Calls refused RESOURCE_EXHAUSTED at admission, over the concurrency limit",
            shed.clone(),
        );
        let over_caller_share = Family::<CallerLabels, Counter>::default();
        registry.register(
            "calls_over_caller_share",
            "Calls refused RESOURCE_EXHAUSTED because their caller had limits.max_calls_per_caller in flight, by caller",
            over_caller_share.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Caller connections open now",
            connections_open.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Caller connections closed at accept, over limits.max_connections",
            connections_refused.clone(),
        );
        let connections_idle_closed = Counter::default();
        registry.register(
            "connections_idle_closed",
            "Caller connections closed with no call open for limits.connection_idle_timeout",
            connections_idle_closed.clone(),
        );
        let connections_aged_out = Counter::default();
        registry.register(
            "connections_aged_out",
            "Caller connections asked to go (GOAWAY) at limits.max_connection_age",
            connections_aged_out.clone(),
        );
        let audit_queue_depth = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Access spans queued or reserved, not yet exported",
            audit_queue_depth.clone(),
        );
        let audit_queue_bytes = Gauge::default();
        registry.register(
            "audit_queue_bytes",
            "Bytes of access spans queued or being exported (audit.queue_bytes bounds it)",
            audit_queue_bytes.clone(),
        );
        let audit = Arc::new(AuditCounters::default());
        registry.register(
            "audit_spans_exported",
            "Access spans the collector accepted",
            audit.exported.clone(),
        );
        registry.register(
            "audit_spans_dropped",
            "Relaxed mode: access spans lost because the queue was full",
            audit.dropped.clone(),
        );
        registry.register(
            "audit_calls_refused",
            "Strict mode: calls refused because their access span could not be queued",
            audit.refused.clone(),
        );
        registry.register(
            "audit_export_failures",
            "Failed export requests (retried)",
            audit.export_failures.clone(),
        );
        registry.register(
            "audit_spans_in_export",
            "Spans in the export request in progress",
            audit.in_export.clone(),
        );
        registry.register(
            "audit_mode",
            "1 for the audit mode in force",
            audit.mode.clone(),
        );
        let policy_version = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "policy_version",
            "1 for the active policy version, with the file's digest (SHA-256, first 12 hex digits)",
            policy_version.clone(),
        );
        let shadow_policy_version = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "shadow_policy_version",
            "1 for the candidate (shadow) policy version, with the file's digest",
            shadow_policy_version.clone(),
        );
        registry.register(
            "audit_key",
            "The audit key in use (its fingerprint)",
            Info::new(vec![("key_id".to_owned(), audit_key_id.to_owned())]),
        );
        // Both results exist from the start, so `rate()` and alerts see a zero rather
        // than no series until the first reload.
        for result in ["applied", "rejected"] {
            policy_reloads
                .get_or_create(&ResultLabels { result })
                .inc_by(0);
            audit_header_reloads
                .get_or_create(&ResultLabels { result })
                .inc_by(0);
            for files in ["serving", "client_ca", "collector"] {
                tls_certificate_reloads
                    .get_or_create(&ReloadLabels { files, result })
                    .inc_by(0);
            }
        }
        GatewayMetrics {
            registry,
            calls,
            latency,
            fields_withheld,
            records_withheld,
            plan_cache,
            upstream_retries,
            policy_reloads,
            tls_certificate_reloads,
            audit_header_reloads,
            tls_certificate_expiry,
            key_source_age,
            key_source_max_staleness,
            key_source_failures,
            in_flight,
            concurrency_limit,
            shed,
            over_caller_share,
            connections_open,
            connections_refused,
            connections_idle_closed,
            connections_aged_out,
            audit_queue_depth,
            audit_queue_bytes,
            audit,
            policy_version,
            shadow_policy_version,
            current_policy: Mutex::new(None),
            current_shadow: Mutex::new(None),
        }
    }

    /// Marks `version` as the active policy (and the previous one as not).
    pub fn set_policy_version(&self, version: &Arc<str>, digest: &Arc<str>) {
        swap_version(&self.policy_version, &self.current_policy, version, digest);
    }

    /// Marks `version` (file digest `digest`) as the shadow policy.
    pub fn set_shadow_policy_version(&self, version: &Arc<str>, digest: &Arc<str>) {
        swap_version(
            &self.shadow_policy_version,
            &self.current_shadow,
            version,
            digest,
        );
    }

    /// The certificate in `file` serves new connections until `not_after` (Unix seconds).
    pub fn set_tls_certificate_expiry(&self, file: &std::path::Path, not_after: i64) {
        self.tls_certificate_expiry
            .get_or_create(&FileLabels {
                file: file.display().to_string(),
            })
            .set(not_after);
    }

    /// How a key or revocation source is doing (set at each scrape): seconds since its
    /// last good read (`None`: never), its `max_staleness`, and the failed reads since.
    pub fn set_key_source_health(
        &self,
        source: &'static str,
        age_seconds: Option<f64>,
        max_staleness_seconds: f64,
        consecutive_failures: u64,
    ) {
        let labels = SourceLabels { source };
        self.key_source_age
            .get_or_create(&labels)
            .set(age_seconds.unwrap_or(f64::INFINITY));
        self.key_source_max_staleness
            .get_or_create(&labels)
            .set(max_staleness_seconds);
        self.key_source_failures
            .get_or_create(&labels)
            .set(i64::try_from(consecutive_failures).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

fn swap_version(
    family: &Family<VersionLabels, Gauge>,
    current: &Mutex<Option<VersionLabels>>,
    version: &Arc<str>,
    digest: &Arc<str>,
) {
    let Ok(mut current) = current.lock() else {
        return;
    };
    if let Some(old) = current.take() {
        family.remove(&old);
    }
    let labels = VersionLabels {
        version: Arc::clone(version),
        digest: Arc::clone(digest),
    };
    family.get_or_create(&labels).set(1);
    *current = Some(labels);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_series_and_one_policy_version() {
        let m = GatewayMetrics::new("abcd1234");
        m.calls
            .get_or_create(&CallLabels {
                method: "/p.S/Get".into(),
                purpose: "personalize".into(),
                caller: "shop/recommender".into(),
                decision: "allowed",
            })
            .inc();
        m.set_policy_version(&Arc::from("1"), &Arc::from("aaaa"));
        m.set_policy_version(&Arc::from("2"), &Arc::from("bbbb"));
        m.audit.set_mode(AuditMode::Strict);
        let text = m.encode();
        assert!(text.contains(
            "discreet_calls_total{method=\"/p.S/Get\",purpose=\"personalize\",caller=\"shop/recommender\",decision=\"allowed\"} 1"
        ), "{text}");
        assert!(
            text.contains("discreet_policy_version{version=\"2\",digest=\"bbbb\"} 1"),
            "{text}"
        );
        assert!(!text.contains("version=\"1\""), "{text}");
        assert!(
            text.contains("discreet_audit_mode{mode=\"strict\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("discreet_audit_key_info{key_id=\"abcd1234\"} 1"),
            "{text}"
        );
    }
}
