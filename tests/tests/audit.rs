//! The audit trail end to end: store, gateway and a real OTLP/gRPC receiver on loopback
//! sockets. One access span per call whatever the caller's sampling flag, with the
//! documented attributes and no raw subject id or field value; strict and relaxed modes
//! with the collector away; a shadow policy's difference; the subject access report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{assert_refused, get, get_with, http_get, meta, metric, raw};
use discreet_proto::profile::v1::GetProfileRequest;
use discreet_telemetry::attr;
use discreet_testkit::{Harness, Span};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use tonic::{Code, metadata::MetadataValue};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn text(v: &Option<AnyValue>) -> Vec<String> {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => vec![s.clone()],
        Some(Value::IntValue(i)) => vec![i.to_string()],
        Some(Value::BoolValue(b)) => vec![b.to_string()],
        Some(Value::ArrayValue(a)) => a
            .values
            .iter()
            .flat_map(|v| text(&Some(v.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

fn attr_of(span: &Span, key: &str) -> Vec<String> {
    span.attributes
        .iter()
        .filter(|kv| kv.key == key)
        .flat_map(|kv| text(&kv.value))
        .collect()
}

fn one(span: &Span, key: &str) -> String {
    attr_of(span, key).into_iter().next().unwrap_or_default()
}

/// Every string a span carries: attribute and event values.
fn all_strings(span: &Span) -> Vec<String> {
    let mut out: Vec<String> = span
        .attributes
        .iter()
        .flat_map(|kv| text(&kv.value))
        .collect();
    for e in &span.events {
        out.extend(e.attributes.iter().flat_map(|kv| text(&kv.value)));
    }
    out.push(span.name.clone());
    out
}

/// The string values in a record (its `Debug` form's quoted strings), at least 5 long.
fn string_values(debug: &str) -> Vec<String> {
    debug
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.len() >= 5)
        .map(str::to_owned)
        .collect()
}

async fn get_traced(
    h: &Harness,
    subject: &str,
    purpose: &str,
    consents: &[String],
) -> Result<tonic::Response<discreet_proto::profile::v1::Profile>, tonic::Status> {
    let mut client = h.client().await.unwrap();
    let mut request = h
        .request(
            GetProfileRequest {
                subject_id: subject.into(),
            },
            common::caller_for(purpose),
            purpose,
            consents,
        )
        .unwrap();
    // The caller's sampler dropped this trace (flags 00): the access span is exported all
    // the same.
    request.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{TRACE_ID}-{PARENT}-00")).unwrap(),
    );
    client.get_profile(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_leaves_exactly_one_access_span() {
    let h = Harness::start().await.unwrap();
    let key = h.audit_key().unwrap();
    let personalize = "personalize";
    let consent = h.consent("persona-eu", &[personalize]).unwrap();
    // partial: the policy withholds fields from personalize.
    let partial = get_traced(&h, "persona-eu", personalize, &[consent])
        .await
        .unwrap();
    // allowed: fraud detection (legal basis: legitimate interests) releases all it asks.
    let support = "essential.fraud_detection";
    let second = get_traced(&h, "persona-california", support, &[])
        .await
        .unwrap();
    // denied: no consent token.
    let denied = assert_refused(
        get_traced(&h, "persona-eu", personalize, &[]).await,
        Code::PermissionDenied,
    );
    // denied by a guard: a minor for marketing.
    let marketing = "marketing.communications.email";
    let minor = assert_refused(
        get(&h, "persona-minor", marketing).await,
        Code::PermissionDenied,
    );

    let spans = h.wait_for_spans(4).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans_after = h.receiver.spans();
    assert_eq!(
        spans_after.len(),
        4,
        "exactly one span per call: {spans:#?}"
    );
    let by_decision_id = |id: &str| {
        spans_after
            .iter()
            .find(|s| one(s, attr::DECISION_ID) == id)
            .unwrap_or_else(|| panic!("no span for decision {id}"))
            .clone()
    };

    let s = by_decision_id(&meta(&partial, "x-discreet-decision-id"));
    assert_eq!(s.name, attr::ACCESS_SPAN);
    assert_eq!(hex(&s.trace_id), TRACE_ID, "a child of the caller's trace");
    assert_eq!(hex(&s.parent_span_id), PARENT);
    assert_eq!(
        one(&s, attr::DECISION),
        meta(&partial, "x-discreet-decision")
    );
    assert_eq!(one(&s, attr::DECISION), "partial");
    assert_eq!(one(&s, attr::CALLER), "shop/recommender");
    assert_eq!(one(&s, attr::PURPOSE), personalize);
    assert_eq!(one(&s, attr::LEGAL_BASIS), "consent");
    assert_eq!(
        one(&s, attr::POLICY_VERSION),
        meta(&partial, "x-discreet-policy-version")
    );
    // The file's digest, as the version metric shows it.
    let digest = one(&s, attr::POLICY_DIGEST);
    assert!(
        digest.len() == 12 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest}"
    );
    let exposition = http_get(h.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        exposition.contains(&format!("digest=\"{digest}\"")),
        "{exposition}"
    );
    assert_eq!(one(&s, attr::SUBJECT), key.pseudonym("persona-eu"));
    assert_eq!(one(&s, attr::AUDIT_KEY_ID), key.key_id());
    assert_eq!(one(&s, attr::RPC_METHOD), "GetProfile");
    assert_eq!(one(&s, attr::RPC_GRPC_STATUS_CODE), "0");
    assert_eq!(attr_of(&s, attr::CONSENT_TOKEN_IDS).len(), 1);
    assert!(attr_of(&s, attr::FIELDS_RELEASED).contains(&"demographics.language".to_owned()));
    assert!(!attr_of(&s, attr::FIELDS_WITHHELD).is_empty());
    assert!(attr_of(&s, attr::CATEGORIES_RELEASED).contains(&"user.name".to_owned()));
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].name, attr::SUBJECT_EVENT);

    let s = by_decision_id(&meta(&second, "x-discreet-decision-id"));
    assert_eq!(
        one(&s, attr::DECISION),
        meta(&second, "x-discreet-decision")
    );
    assert_eq!(one(&s, attr::LEGAL_BASIS), "legitimate_interests");

    let s = by_decision_id(
        denied
            .metadata()
            .get("x-discreet-decision-id")
            .unwrap()
            .to_str()
            .unwrap(),
    );
    assert_eq!(one(&s, attr::DECISION), "denied");
    assert_eq!(one(&s, attr::DENIAL_REASON), attr::reason::NO_CONSENT);
    assert_eq!(one(&s, attr::RPC_GRPC_STATUS_CODE), "7");
    assert_eq!(one(&s, attr::SUBJECT), key.pseudonym("persona-eu"));
    assert!(attr_of(&s, attr::FIELDS_RELEASED).is_empty());

    let s = by_decision_id(
        minor
            .metadata()
            .get("x-discreet-decision-id")
            .unwrap()
            .to_str()
            .unwrap(),
    );
    assert_eq!(one(&s, attr::DECISION), "denied");
    assert_eq!(one(&s, attr::DENIAL_REASON), attr::reason::GUARD);

    // Nothing personal in any span: no raw subject id, no field value of any persona.
    let mut values = Vec::new();
    for persona in profile_store::PERSONAS {
        values.push(persona.subject_id.to_owned());
        values.extend(string_values(&format!(
            "{:?}",
            raw(&h, persona.subject_id).await
        )));
    }
    for span in &spans_after {
        for s in all_strings(span) {
            for v in &values {
                assert!(!leaks(&s, v), "span {} carries {v:?} in {s:?}", span.name);
            }
        }
    }
    h.shutdown().await;
}

/// Whether span string `s` carries the record value `v`. A lowercase word that is one
/// segment of a dotted name (a map key such as `email` inside `user.contact.email`) is the
/// schema's vocabulary, not the record's data.
fn leaks(s: &str, v: &str) -> bool {
    if v.chars().all(|c| c.is_ascii_lowercase()) && s.contains('.') {
        return false;
    }
    s.contains(v)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_refuses_while_the_collector_is_away_and_recovers() {
    let mut h = Harness::start_with(|c| {
        c.limits.max_concurrent_calls = 4;
        c.audit.queue_capacity = 8;
        c.audit.max_batch = 2;
    })
    .await
    .unwrap();
    h.receiver.stop().await;
    let purpose = "essential.fraud_detection";
    let (mut served, mut refused) = (0usize, 0u64);
    for _ in 0..40 {
        match get_with(&h, "persona-eu", purpose, &[]).await {
            Ok(_) => served += 1,
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                assert!(s.message().contains("audit"), "{s:?}");
                refused += 1;
            }
        }
    }
    // The queue (8) and the batch being retried (2) hold what was served.
    assert!(
        served <= 10,
        "served {served} calls with the collector away"
    );
    assert_eq!(served as u64 + refused, 40);
    assert_eq!(
        metric(&h, "discreet_audit_calls_refused_total").await,
        refused
    );
    h.receiver.restart().await.unwrap();
    let mut back = false;
    for _ in 0..100 {
        if get_with(&h, "persona-eu", purpose, &[]).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "calls are served again once the collector is back");
    // Everything served was audited: the queued spans arrived.
    h.wait_for_spans(served + 1).await.unwrap();
    h.shutdown().await;
}

/// With the collector away, batch spans (one event per subject) stop the calls at
/// `audit.queue_bytes`, long before the queue's 8,192 places: otherwise the queue would
/// grow by ~170 KiB per call of 1,000 subjects until the container ran out of memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_stops_calls_when_the_queue_holds_its_bytes() {
    let mut h = Harness::start_with(|c| {
        c.limits.max_concurrent_calls = 4;
        c.audit.queue_bytes = 1 << 20;
    })
    .await
    .unwrap();
    h.receiver.stop().await;
    let purpose = "personalize";
    let consents = [h.consent("persona-eu", &[purpose]).unwrap()];
    let batch = |h: &Harness| {
        h.request(
            discreet_proto::profile::v1::BatchGetProfilesRequest {
                subject_ids: (0..1000).map(|i| format!("nobody-{i}")).collect(),
            },
            common::caller_for(purpose),
            purpose,
            &consents,
        )
        .unwrap()
    };
    let mut client = h.client().await.unwrap();
    let mut served = 0u64;
    let refusal = loop {
        match client.batch_get_profiles(batch(&h)).await {
            Err(s) if s.code() == Code::Unavailable => break s,
            _ => served += 1,
        }
        assert!(
            served < 50,
            "{served} batch calls queued with the collector away"
        );
    };
    assert!(refusal.message().contains("audit"), "{refusal:?}");
    let held = metric(&h, "discreet_audit_queue_bytes").await;
    assert!(
        (1 << 20..2 << 20).contains(&held),
        "{held} bytes held after {served} calls"
    );
    // ~170 KiB a call (1,000 subjects withheld for want of consent): six or seven fit
    // in 1 MiB.
    assert!((3..=10).contains(&served), "{served} calls before refusal");
    // The bytes stopped them, not the places (the harness's own start-up calls may
    // still hold a few).
    let depth = metric(&h, "discreet_audit_queue_depth").await;
    assert!(depth < 100, "{depth} places taken");
    h.receiver.restart().await.unwrap();
    let mut back = false;
    for _ in 0..100 {
        if client.batch_get_profiles(batch(&h)).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "calls are served again once the queue drained");
    h.wait_for_spans(served as usize + 1).await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_mode_serves_and_counts_what_it_lost() {
    let mut h = Harness::start_with(|c| {
        c.limits.max_concurrent_calls = 4;
        c.audit.queue_capacity = 8;
        c.audit.max_batch = 2;
        c.audit.mode = discreet_config::AuditModeConfig::Relaxed;
    })
    .await
    .unwrap();
    h.receiver.stop().await;
    for _ in 0..30 {
        get_with(&h, "persona-eu", "essential.fraud_detection", &[])
            .await
            .unwrap();
    }
    let dropped = metric(&h, "discreet_audit_spans_dropped_total").await;
    assert!(
        dropped >= 20,
        "30 served, at most 10 held, so at least 20 lost: {dropped}"
    );
    assert_eq!(metric(&h, "discreet_audit_mode{mode=\"relaxed\"}").await, 1);
    h.shutdown().await;
}

/// The shipped policy with one change: personalize loses `user.demographic.language`.
fn candidate_policy(h: &Harness) -> std::path::PathBuf {
    let text = std::fs::read_to_string(h.policy_path()).unwrap();
    let rule = "      - { category: user.demographic.language, action: keep }\n";
    let first = text
        .find(rule)
        .expect("the shipped policy keeps language for personalize");
    let mut candidate = text.clone();
    candidate.replace_range(first..first + rule.len(), "");
    let candidate = candidate.replacen("version:", "version: candidate #", 1);
    let path = h.dir().join("candidate.yaml");
    std::fs::write(&path, candidate).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_policy_shows_exactly_its_difference_and_changes_no_answer() {
    // Start once to get a directory with the shipped policy, write the candidate beside it.
    let probe = Harness::start().await.unwrap();
    let candidate = candidate_policy(&probe);
    let candidate_text = std::fs::read_to_string(&candidate).unwrap();
    probe.shutdown().await;
    let dir = discreet_testkit::TempDir::new("shadow").unwrap();
    let candidate = dir.path().join("candidate.yaml");
    std::fs::write(&candidate, candidate_text).unwrap();
    let h = Harness::start_with(|c| c.audit.shadow_policy = Some(candidate.clone()))
        .await
        .unwrap();

    let answer = get(&h, "persona-eu", "personalize").await.unwrap();
    let profile = answer.get_ref();
    // Served by the active policy: language is still released.
    assert!(!profile.demographics.as_ref().unwrap().language.is_empty());
    assert!(!meta(&answer, "x-discreet-withheld-fields").contains("language"));
    let other = get(&h, "persona-eu", "essential.fraud_detection")
        .await
        .unwrap();

    let spans = h.wait_for_spans(2).await.unwrap();
    let span = |r: &str| {
        spans
            .iter()
            .find(|s| one(s, attr::DECISION_ID) == r)
            .unwrap()
            .clone()
    };
    let s = span(&meta(&answer, "x-discreet-decision-id"));
    assert_eq!(
        attr_of(&s, attr::SHADOW_FIELDS_WITHHELD),
        ["demographics.language"]
    );
    assert!(attr_of(&s, attr::SHADOW_FIELDS_RELEASED).is_empty());
    assert_eq!(one(&s, attr::SHADOW_DIFFERS), "true");
    assert!(one(&s, attr::SHADOW_POLICY_VERSION).starts_with("candidate"));
    let s = span(&meta(&other, "x-discreet-decision-id"));
    assert_eq!(one(&s, attr::SHADOW_DIFFERS), "false");
    assert!(attr_of(&s, attr::SHADOW_FIELDS_WITHHELD).is_empty());

    // The audit summary reads the same difference from the OTLP JSON file.
    let file = h.dir().join("spans.json");
    h.receiver.write_otlp_json(&file).unwrap();
    let trail = read_trail(&file);
    let summary = discreet_audit::ShadowSummary::build(&trail, &discreet_audit::Filter::default());
    let text = discreet_audit::shadow_text(&summary);
    assert!(text.contains("demographics.language"), "{text}");
    assert!(text.contains("personalize"), "{text}");
    assert!(
        !text.contains("fraud_detection")
            || !text.contains("essential.fraud_detection  demographics"),
        "{text}"
    );
    h.shutdown().await;
}

fn read_trail(file: &std::path::Path) -> discreet_audit::AuditTrail {
    let mut spans = Vec::new();
    let input = std::io::BufReader::new(std::fs::File::open(file).unwrap());
    discreet_audit::SpanReader::default()
        .read(&file.display().to_string(), input, &mut spans)
        .unwrap();
    discreet_audit::AuditTrail::from_spans(spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subject_access_report_is_built_from_the_exported_spans() {
    let h = Harness::start().await.unwrap();
    let key = h.audit_key().unwrap();
    get(&h, "persona-eu", "personalize").await.unwrap();
    get(&h, "persona-eu", "personalize").await.unwrap();
    get(&h, "persona-eu", "essential.fraud_detection")
        .await
        .unwrap();
    assert_refused(
        get_with(&h, "persona-eu", "marketing.communications.email", &[]).await,
        Code::PermissionDenied,
    );
    // Someone else's read is not in persona-eu's report.
    get(&h, "persona-california", "personalize").await.unwrap();
    h.wait_for_spans(5).await.unwrap();
    let file = h.dir().join("spans.json");
    h.receiver.write_otlp_json(&file).unwrap();

    let trail = read_trail(&file);
    let report = discreet_audit::SubjectReport::build(
        &trail,
        "persona-eu",
        &key.pseudonym("persona-eu"),
        Some(key.key_id()),
        &discreet_audit::Filter::default(),
    );
    let text = discreet_audit::report_text(&report);
    assert!(text.contains("persona-eu"), "{text}");
    assert!(text.contains("shop/recommender"), "{text}");
    assert!(
        text.contains("read your data twice for personalize"),
        "{text}"
    );
    assert!(text.contains("refused your data once"), "{text}");
    assert!(text.contains("risk/scorer"), "{text}");
    assert!(text.contains("marketing/mailer"), "{text}");
    assert!(text.contains("user.name"), "categories received: {text}");
    assert!(!text.contains("persona-california"), "{text}");
    // And no field value of the person.
    for v in string_values(&format!("{:?}", raw(&h, "persona-eu").await)) {
        if v != "persona-eu" {
            let leaked = text
                .split(|c: char| c.is_whitespace() || c == ',' || c == ':')
                .any(|word| leaks(word, &v));
            assert!(!leaked, "report carries {v:?}");
        }
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_refusal_is_audited_with_its_own_reason() {
    let h = Harness::start().await.unwrap();
    // Fraud detection needs no consent: the call reaches the store, which has no such
    // subject and answers NOT_FOUND without a message.
    let status = assert_refused(
        get_with(&h, "nobody-here", "essential.fraud_detection", &[]).await,
        Code::NotFound,
    );
    let id = status
        .metadata()
        .get("x-discreet-decision-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let spans = h.wait_for_spans(1).await.unwrap();
    let s = spans
        .iter()
        .find(|s| one(s, attr::DECISION_ID) == id)
        .unwrap();
    assert_eq!(one(s, attr::DECISION), "denied");
    assert_eq!(
        one(s, attr::DENIAL_REASON),
        attr::reason::UPSTREAM,
        "not `cancelled`"
    );
    assert_eq!(one(s, attr::RPC_GRPC_STATUS_CODE), "5");
    assert_eq!(
        one(s, attr::SUBJECT),
        h.audit_key().unwrap().pseudonym("nobody-here")
    );
    h.shutdown().await;
}

/// Every metric the README's "Metrics" section names is exported (a counter's
/// `_total` and an info metric's `_info` are part of its samples' names, not its type line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_metrics_are_exported() {
    // A shadow policy (the shipped one under another version) and a batch with a subject
    // without consent, so that every family has a series.
    let dir = discreet_testkit::TempDir::new("metrics").unwrap();
    let candidate = dir.path().join("candidate.yaml");
    let shipped =
        std::fs::read_to_string(discreet_testkit::config_dir().join("policy.yaml")).unwrap();
    std::fs::write(
        &candidate,
        shipped.replacen("version:", "version: candidate #", 1),
    )
    .unwrap();
    let h = Harness::start_with(|c| c.audit.shadow_policy = Some(candidate.clone()))
        .await
        .unwrap();
    get(&h, "persona-eu", "personalize").await.unwrap();
    let purpose = "personalize";
    let consents = [h.consent("persona-eu", &[purpose]).unwrap()];
    let request = discreet_proto::profile::v1::BatchGetProfilesRequest {
        subject_ids: vec!["persona-eu".into(), "persona-california".into()],
    };
    h.client()
        .await
        .unwrap()
        .batch_get_profiles(
            h.request(request, common::caller_for(purpose), purpose, &consents)
                .unwrap(),
        )
        .await
        .unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("### Metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    let names: Vec<&str> = section
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("discreet_"))
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    let exposition = http_get(h.metrics_addr().unwrap(), "/metrics").await;
    for name in names {
        // Series only when serving TLS (`serving.rs`
        // `serves_a_renewed_certificate_without_a_restart` reads it), and once a caller
        // is over its share (`serving.rs` `a_caller_at_its_share_is_refused_while_others_are_served`).
        if [
            "discreet_tls_certificate_expiration_timestamp_seconds",
            "discreet_calls_over_caller_share_total",
        ]
        .contains(&name)
        {
            continue;
        }
        let base = name.trim_end_matches("_total").trim_end_matches("_info");
        assert!(
            exposition.contains(&format!("# TYPE {base} ")),
            "{name} is in the README but not exported:\n{exposition}"
        );
    }
    assert!(exposition.contains(
        "discreet_calls_total{method=\"/profile.v1.ProfileService/GetProfile\",purpose=\"personalize\",caller=\"shop/recommender\",decision=\"partial\"} 1"
    ), "{exposition}");

    // A caller the policy names, refused a purpose it may not declare, keeps its name.
    let refused = h
        .request(
            GetProfileRequest {
                subject_id: "persona-eu".into(),
            },
            common::caller_for("personalize"),
            "essential.fraud_detection",
            &[],
        )
        .unwrap();
    let s = h
        .client()
        .await
        .unwrap()
        .get_profile(refused)
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    let exposition = http_get(h.metrics_addr().unwrap(), "/metrics").await;
    assert!(exposition.contains(
        "discreet_calls_total{method=\"/profile.v1.ProfileService/GetProfile\",purpose=\"essential.fraud_detection\",caller=\"shop/recommender\",decision=\"denied\"} 1"
    ), "{exposition}");
    h.shutdown().await;
}

/// A stream touching more subjects than `audit.max_subject_events` continues its events on
/// child spans; the reader folds them back into one access with every subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stream_continues_its_subject_events_on_child_spans() {
    let h = Harness::start_with(|c| c.audit.max_subject_events = 50)
        .await
        .unwrap();
    let purpose = "analytics.reporting";
    let request = h
        .request(
            discreet_proto::profile::v1::StreamProfilesRequest {
                segment: "all".into(),
                limit: 0,
            },
            common::caller_for(purpose),
            purpose,
            &[],
        )
        .unwrap();
    let mut stream = h
        .client()
        .await
        .unwrap()
        .stream_profiles(request)
        .await
        .unwrap()
        .into_inner();
    let mut n = 0u64;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 306);
    // 306 events: six continuations of 50, and 6 left on the access span.
    let spans = h.wait_for_spans(7).await.unwrap();
    let access: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == attr::ACCESS_SPAN)
        .collect();
    let continued: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == attr::SUBJECTS_SPAN)
        .collect();
    assert_eq!((access.len(), continued.len()), (1, 6));
    let access = access[0];
    assert_eq!(access.events.len(), 6);
    assert_eq!(one(access, attr::SUBJECT_EVENTS_CONTINUED), "300");
    assert_eq!(one(access, attr::RECORDS_RELEASED), "306");
    for c in &continued {
        assert_eq!(c.parent_span_id, access.span_id);
        assert_eq!(c.trace_id, access.trace_id);
        assert_eq!(c.events.len(), 50);
        assert_eq!(one(c, attr::PURPOSE), purpose);
    }
    let file = h.dir().join("spans.json");
    h.receiver.write_otlp_json(&file).unwrap();
    let trail = read_trail(&file);
    assert_eq!(trail.accesses.len(), 1);
    assert_eq!(trail.accesses[0].subjects.len(), 306);
    h.shutdown().await;
}

/// Strict mode, collector away, a stream whose subject events overflow: the stream stops
/// `UNAVAILABLE` once a continuation cannot be queued, and every record the caller got is
/// still accounted for on the spans that do arrive when the collector returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stops_when_its_events_cannot_be_audited() {
    let mut h = Harness::start_with(|c| {
        c.limits.max_concurrent_calls = 4;
        c.audit.queue_capacity = 8;
        c.audit.max_batch = 2;
        c.audit.max_subject_events = 10;
    })
    .await
    .unwrap();
    h.receiver.stop().await;
    let purpose = "analytics.reporting";
    let request = h
        .request(
            discreet_proto::profile::v1::StreamProfilesRequest {
                segment: "all".into(),
                limit: 0,
            },
            common::caller_for(purpose),
            purpose,
            &[],
        )
        .unwrap();
    let mut stream = h
        .client()
        .await
        .unwrap()
        .stream_profiles(request)
        .await
        .unwrap()
        .into_inner();
    let mut received = 0u64;
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("the stream completed unaudited ({received} records)"),
            Err(s) => break s,
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(received < 306, "{received}");
    h.receiver.restart().await.unwrap();
    let mut access = None;
    for _ in 0..200 {
        access = h
            .receiver
            .spans()
            .into_iter()
            .find(|s| s.name == attr::ACCESS_SPAN);
        if access.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let access = access.expect("the access span arrives once the collector is back");
    assert_eq!(
        one(&access, attr::DENIAL_REASON),
        attr::reason::AUDIT_UNAVAILABLE
    );
    // Every queued span has arrived once the count stops growing.
    let mut spans = h.receiver.spans();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = h.receiver.spans();
        if now.len() == spans.len() {
            break;
        }
        spans = now;
    }
    // Events that arrived, on the access span and its continuations: not just counted.
    let arrived: u64 = spans.iter().map(|s| s.events.len() as u64).sum();
    assert!(
        arrived >= received,
        "{received} records reached the caller, {arrived} subject events arrived"
    );
    h.shutdown().await;
}

/// An `https://` collector that requires client certificates: the gateway verifies it
/// against `audit.tls.ca_file` and presents its client certificate. A CA bundle that
/// does not cover the collector's certificate lets nothing through (the span waits in the
/// queue); the right bundle put in its place, as trust-manager updates a mounted bundle,
/// applies to the next connection without a restart, and the waiting span arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_and_a_replaced_ca_bundle_applies_without_a_restart() {
    use discreet_telemetry::receiver::{OtlpReceiver, tls_server_config};
    let read = |name: &str| std::fs::read(common::fixture(name)).unwrap();
    let collector = OtlpReceiver::start_tls(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tls_server_config(
            &read("tls-cert.pem"),
            &read("tls-key.pem"),
            Some(&read("client-ca-cert.pem")),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = discreet_testkit::TempDir::new("collector-ca").unwrap();
    let ca_file = dir.path().join("ca.pem");
    // Another throwaway CA: the collector's certificate does not chain to it.
    std::fs::write(&ca_file, read("renewed-ca-cert.pem")).unwrap();
    let h = Harness::start_with(|c| {
        c.audit.endpoint = collector.endpoint();
        c.audit.tls = Some(discreet_config::CollectorTlsConfig {
            ca_file: Some(ca_file.clone()),
            server_name: None,
            cert_file: Some(common::fixture("client-recommender-cert.pem")),
            key_file: Some(common::fixture("client-recommender-key.pem")),
        });
    })
    .await
    .unwrap();
    let body = http_get(h.metrics_addr().unwrap(), "/metrics").await;
    let expiry = body
        .lines()
        .find(|l| {
            l.starts_with("discreet_tls_certificate_expiration_timestamp_seconds{")
                && l.contains("client-recommender-cert.pem")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        expiry.is_some_and(|t| t > 4e9),
        "the client certificate's expiry (2125) is not reported: {body}"
    );

    // Strict mode serves while the queue has room; the span cannot leave.
    get(&h, "persona-eu", "personalize").await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), async || {
            metric(&h, "discreet_audit_export_failures_total").await >= 2
        })
        .await,
        "export to the untrusted collector did not fail"
    );
    assert!(
        collector.spans().is_empty(),
        "a span reached an untrusted collector"
    );

    // The right bundle replaces the file atomically (a rename, as the kubelet swaps a
    // mounted ConfigMap).
    let staged = dir.path().join("ca.pem.new");
    std::fs::write(&staged, read("ca-cert.pem")).unwrap();
    std::fs::rename(&staged, &ca_file).unwrap();
    // The exporter backs off up to 5 s between attempts.
    assert!(
        common::eventually(Duration::from_secs(15), async || !collector
            .spans()
            .is_empty())
        .await,
        "the queued span did not arrive after the CA bundle was replaced"
    );
    let span = &collector.spans()[0];
    assert_eq!(span.name, attr::ACCESS_SPAN);
    assert_eq!(attr_of(span, attr::PURPOSE), ["personalize"]);
    assert!(
        metric(
            &h,
            "discreet_tls_certificate_reloads_total{files=\"collector\",result=\"applied\"}"
        )
        .await
            >= 1
    );
    // And new calls' spans follow over the new connection.
    get(&h, "persona-eu", "personalize").await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), async || collector.spans().len()
            >= 2)
        .await
    );
    assert_eq!(collector.spans().len(), 2);
    h.shutdown().await;
}

/// `audit.headers`: a collector that checks a bearer token (as the Collector's
/// `bearertokenauth` does) gets it from the file the configuration names. When the
/// collector moves to a new token, exports fail and the span waits in the queue; the new
/// token written to the file, as the kubelet renews a mounted Secret or projected token,
/// applies to the next export without a restart, and the waiting span arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_token_from_a_file_is_sent_and_a_rotated_one_applies_without_a_restart() {
    let dir = discreet_testkit::TempDir::new("collector-token").unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "Bearer first-collector-token\n").unwrap();
    let h = Harness::start_with(|c| {
        c.audit.headers.insert(
            "authorization".into(),
            discreet_config::CollectorHeaderConfig {
                file: Some(token_file.clone()),
                value: None,
            },
        );
        c.audit.headers.insert(
            "x-scope-orgid".into(),
            discreet_config::CollectorHeaderConfig {
                file: None,
                value: Some("tenant-a".into()),
            },
        );
    })
    .await
    .unwrap();
    h.receiver.require_metadata(&[
        ("authorization", "Bearer first-collector-token"),
        ("x-scope-orgid", "tenant-a"),
    ]);
    get(&h, "persona-eu", "personalize").await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), async || h.receiver.spans().len()
            == 1)
        .await,
        "the span did not reach the collector with the configured token"
    );

    // The collector now wants another token: the next span cannot get in.
    h.receiver.require_metadata(&[
        ("authorization", "Bearer second-collector-token"),
        ("x-scope-orgid", "tenant-a"),
    ]);
    get(&h, "persona-eu", "personalize").await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), async || {
            metric(&h, "discreet_audit_export_failures_total").await >= 1
        })
        .await,
        "export with the old token did not fail"
    );
    assert_eq!(h.receiver.spans().len(), 1);

    // The renewed token replaces the file atomically, as the kubelet swaps a Secret.
    let staged = dir.path().join("token.new");
    std::fs::write(&staged, "Bearer second-collector-token\n").unwrap();
    std::fs::rename(&staged, &token_file).unwrap();
    // The exporter backs off up to 5 s between attempts.
    assert!(
        common::eventually(Duration::from_secs(15), async || h.receiver.spans().len()
            == 2)
        .await,
        "the queued span did not arrive after the token file was renewed"
    );
    assert!(
        metric(
            &h,
            "discreet_audit_header_reloads_total{result=\"applied\"}"
        )
        .await
            >= 1
    );

    // A file whose value gRPC cannot carry is refused, counted, and the token in use kept.
    std::fs::write(&staged, "Bearer third\u{1}token\n").unwrap();
    std::fs::rename(&staged, &token_file).unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), async || {
            metric(
                &h,
                "discreet_audit_header_reloads_total{result=\"rejected\"}",
            )
            .await
                == 1
        })
        .await,
        "the unusable token file was not counted as rejected"
    );
    get(&h, "persona-eu", "personalize").await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), async || h.receiver.spans().len()
            == 3)
        .await,
        "a rejected token file stopped the export"
    );
    let body = http_get(h.metrics_addr().unwrap(), "/metrics").await;
    assert!(
        !body.contains("collector-token"),
        "a collector token reached /metrics"
    );
    h.shutdown().await;
}

/// A collector that refuses every export at shutdown: the gateway waits for it (at least
/// 5 s, or what is left of `shutdown_grace`), then gives up and says how many access
/// spans of served calls are lost, instead of ending as if the trail were complete. A
/// collector that takes them all leaves nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_a_shutdown_cannot_export_are_counted_as_lost() {
    let h = Harness::start_with(|c| c.limits.shutdown_grace = Duration::from_secs(1))
        .await
        .unwrap();
    h.receiver
        .require_metadata(&[("authorization", "Bearer never-sent")]);
    for _ in 0..3 {
        get(&h, "persona-eu", "personalize").await.unwrap();
    }
    let started = std::time::Instant::now();
    let report = h.shutdown().await;
    assert_eq!(report.audit_spans_lost, 3);
    assert!(started.elapsed() >= Duration::from_secs(5));

    // A collector that takes them: nothing lost, and no wait, even while a metrics
    // scraper keeps its connection (and with it the gateway's state) open.
    let h = Harness::start().await.unwrap();
    get(&h, "persona-eu", "personalize").await.unwrap();
    let scraper = keep_alive_scrape(h.metrics_addr().unwrap()).await;
    let started = std::time::Instant::now();
    assert_eq!(h.shutdown().await.audit_spans_lost, 0);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "shutdown waited {:?} for the export",
        started.elapsed()
    );
    drop(scraper);
}

/// A connection to `/metrics` that has been answered once and stays open.
async fn keep_alive_scrape(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n.min(64)])
    );
    stream
}
