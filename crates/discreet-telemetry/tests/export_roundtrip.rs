//! The export pipeline against a real OTLP/gRPC receiver on a real socket: spans arrive
//! with the contract's names, strict mode refuses once the queue is full while the
//! receiver is down and serves again when it is back, relaxed mode counts its losses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::{sync::Arc, time::Duration};

use discreet_telemetry::{
    AccessRecord, AuditMode, AuditTrail, ExportSettings, FieldLists, SpanIds, SubjectEvent,
    TraceContext, attr, metrics::GatewayMetrics, receiver::OtlpReceiver,
};

fn settings(endpoint: String, mode: AuditMode, queue: usize) -> ExportSettings {
    ExportSettings {
        endpoint,
        mode,
        queue_capacity: queue,
        queue_bytes: 64 << 20,
        max_batch: 8,
        export_timeout: Duration::from_secs(1),
        batch_delay: Duration::from_millis(5),
        service_name: "discreet".into(),
        service_instance: "test".into(),
        tls: None,
        headers: None,
    }
}

fn record(ids: &SpanIds) -> AccessRecord {
    let trace = TraceContext::for_call(
        Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        ids,
    );
    let mut r = AccessRecord::begin(
        trace,
        "/profile.v1.ProfileService/GetProfile".into(),
        "d-1".into(),
        "k1".into(),
    );
    r.decision = attr::decision::ALLOWED;
    r.grpc_status = 0;
    r.purpose = Some("personalize".into());
    r.subject = Some("0123456789abcdef0123456789abcdef".into());
    r.events.push(SubjectEvent {
        time: r.start,
        pseudonym: "0123456789abcdef0123456789abcdef".into(),
        outcome: attr::outcome::RELEASED,
        reason: None,
        token_id: Some("jti-1".into()),
        consent_version: Some(3),
    });
    r.fields = Arc::new(FieldLists::new(
        vec!["contact.email".into()],
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    ));
    r
}

async fn wait_for(mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached in 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_with_the_contract_names() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = OtlpReceiver::start(listener).unwrap();
    let metrics = GatewayMetrics::new("k1");
    let (trail, _task) = AuditTrail::start(
        &settings(receiver.endpoint(), AuditMode::Strict, 16),
        Arc::clone(&metrics.audit),
    )
    .unwrap();
    let ids = SpanIds::new(1);
    trail.reserve().unwrap().record(&record(&ids));
    wait_for(|| receiver.spans().len() == 1).await;
    let span = &receiver.spans()[0];
    assert_eq!(span.name, attr::ACCESS_SPAN);
    assert_eq!(
        hex::encode(&span.trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(hex::encode(&span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(
        span.flags & 0x1,
        1,
        "exported as sampled although the caller's flag was 00"
    );
    let keys: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
    for key in [
        attr::PURPOSE,
        attr::DECISION,
        attr::SUBJECT,
        attr::FIELDS_RELEASED,
        attr::RPC_METHOD,
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, attr::SUBJECT_EVENT);
    let dir = std::env::temp_dir().join(format!("otlp-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("spans.json");
    receiver.write_otlp_json(&file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"resourceSpans\""), "{text}");
    assert!(
        text.contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "trace ids are hex in OTLP JSON: {text}"
    );
    wait_for(|| {
        metrics
            .encode()
            .contains("discreet_audit_spans_exported_total 1")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_while_the_collector_is_away_and_recovers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut receiver = OtlpReceiver::start(listener).unwrap();
    let metrics = GatewayMetrics::new("k1");
    let (trail, _task) = AuditTrail::start(
        &settings(receiver.endpoint(), AuditMode::Strict, 4),
        Arc::clone(&metrics.audit),
    )
    .unwrap();
    let ids = SpanIds::new(2);
    receiver.stop().await;
    // Queue (4) plus the batch in retry (what the queue held) may absorb some; the rest
    // are refused.
    let mut refused = 0;
    for _ in 0..64 {
        match trail.reserve() {
            Ok(slot) => slot.record(&record(&ids)),
            Err(_) => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        refused >= 50,
        "only {refused} of 64 refused while the collector was down"
    );
    assert!(
        metrics
            .encode()
            .contains(&format!("discreet_audit_calls_refused_total {refused}"))
    );
    receiver.restart().await.unwrap();
    wait_for(|| trail.reserve().is_ok()).await;
    wait_for(|| receiver.spans().len() == 64 - refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_bounds_the_queue_in_bytes_while_the_collector_is_away() {
    // Spans of a batch of 1,000 subjects, a place for 1,000 of them, and 1 MiB for their
    // bytes: with the collector away, the bytes and not the places must stop the calls.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut receiver = OtlpReceiver::start(listener).unwrap();
    let metrics = GatewayMetrics::new("k1");
    let mut s = settings(receiver.endpoint(), AuditMode::Strict, 1000);
    s.queue_bytes = 1 << 20;
    let (trail, _task) = AuditTrail::start(&s, Arc::clone(&metrics.audit)).unwrap();
    let ids = SpanIds::new(4);
    let batch = {
        let mut r = record(&ids);
        r.subject = None;
        r.events = (0..1000)
            .map(|i| SubjectEvent {
                pseudonym: format!("{i:032x}"),
                token_id: Some(format!("jti-{i:08}").into()),
                ..r.events[0].clone()
            })
            .collect();
        r
    };
    let one = {
        let before = trail.queue_bytes();
        receiver.stop().await;
        trail.reserve().unwrap().record(&batch);
        trail.queue_bytes() - before
    };
    let per_subject = one / 1000;
    assert!(
        (150..300).contains(&per_subject),
        "a subject event costs {per_subject} bytes: the configuration's documentation says about 200"
    );
    let mut served = 1usize;
    while trail.reserve().map(|slot| slot.record(&batch)).is_ok() {
        served += 1;
        assert!(served < 1000, "the byte bound never stopped the calls");
    }
    let held = trail.queue_bytes();
    assert!(
        held >= 1 << 20 && held < (1 << 20) + one,
        "held {held} bytes for a bound of 1 MiB and spans of {one}"
    );
    assert_eq!(served, (1usize << 20).div_ceil(one));
    receiver.restart().await.unwrap();
    wait_for(|| receiver.spans().len() == served).await;
    wait_for(|| trail.queue_bytes() == 0).await;
    assert!(trail.reserve().is_ok(), "calls start again once it drained");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_serves_and_counts_what_it_lost() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut receiver = OtlpReceiver::start(listener).unwrap();
    receiver.stop().await;
    let metrics = GatewayMetrics::new("k1");
    let (trail, _task) = AuditTrail::start(
        &settings(receiver.endpoint(), AuditMode::Relaxed, 4),
        Arc::clone(&metrics.audit),
    )
    .unwrap();
    let ids = SpanIds::new(3);
    for _ in 0..64 {
        trail
            .reserve()
            .expect("relaxed never refuses")
            .record(&record(&ids));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let text = metrics.encode();
    let dropped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("discreet_audit_spans_dropped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 50, "{text}");
    assert!(text.contains("discreet_audit_mode{mode=\"relaxed\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_too_large_for_the_collector_are_split_not_retried_forever() {
    // A collector that takes at most 16 KiB per request (an OpenTelemetry Collector with
    // a small max_recv_msg_size), and spans of about 6 KiB each.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut receiver = OtlpReceiver::start_with_limit(listener, 16 * 1024).unwrap();
    let metrics = GatewayMetrics::new("k1");
    let (trail, _task) = AuditTrail::start(
        &settings(receiver.endpoint(), AuditMode::Strict, 16),
        Arc::clone(&metrics.audit),
    )
    .unwrap();
    let ids = SpanIds::new(3);
    let big = || {
        let mut r = record(&ids);
        let event = r.events[0].clone();
        r.events = vec![event; 60];
        r
    };
    // Queued while the collector is away, so that they leave in one batch.
    receiver.stop().await;
    for _ in 0..8 {
        trail.reserve().unwrap().record(&big());
    }
    receiver.restart().await.unwrap();
    wait_for(|| receiver.spans().len() == 8).await;
    assert!(
        receiver.requests().len() >= 3,
        "8 spans of ~6 KiB cannot fit in fewer than 3 requests of 16 KiB"
    );
}

/// A receiver on a real socket, and a strict trail (max_batch 8) exporting to it with
/// `batch_delay`.
async fn trail_with_delay(
    batch_delay: Duration,
) -> (OtlpReceiver, AuditTrail, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = OtlpReceiver::start(listener).unwrap();
    let mut s = settings(receiver.endpoint(), AuditMode::Strict, 64);
    s.batch_delay = batch_delay;
    let (trail, task) =
        AuditTrail::start(&s, Arc::clone(&GatewayMetrics::new("k1").audit)).unwrap();
    (receiver, trail, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_finished_within_the_batch_delay_share_a_request() {
    let (receiver, trail, _task) = trail_with_delay(Duration::from_millis(1500)).await;
    let ids = SpanIds::new(5);
    // Three calls finishing 20 ms apart, within one delay: one request. Without the delay
    // the exporter would send the first at once, alone.
    for _ in 0..3 {
        trail.reserve().unwrap().record(&record(&ids));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for(|| receiver.spans().len() == 3).await;
    assert_eq!(receiver.requests().len(), 1, "one request for the three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_does_not_wait_for_the_delay() {
    // Far longer than wait_for's 5 s: only a full batch (max_batch 8) can arrive in time.
    let (receiver, trail, _task) = trail_with_delay(Duration::from_secs(600)).await;
    let ids = SpanIds::new(6);
    for _ in 0..8 {
        trail.reserve().unwrap().record(&record(&ids));
    }
    wait_for(|| receiver.spans().len() == 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_leaves_in_requests_of_several_batches() {
    let (mut receiver, trail, _task) = trail_with_delay(Duration::ZERO).await;
    let ids = SpanIds::new(7);
    // 40 spans queued while the collector is away (max_batch 8). Once it is back, the
    // exporter catches up in requests of up to 8 batches: the one it was retrying, then
    // one for the rest. Eight spans at a time would take six requests.
    receiver.stop().await;
    for _ in 0..40 {
        trail.reserve().unwrap().record(&record(&ids));
    }
    receiver.restart().await.unwrap();
    wait_for(|| receiver.spans().len() == 40).await;
    let requests = receiver.requests().len();
    assert!(
        requests <= 2,
        "{requests} requests for a backlog of 40 spans"
    );
}
