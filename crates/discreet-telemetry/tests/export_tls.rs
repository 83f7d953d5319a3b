//! Export to an `https://` collector over real TLS on a real socket: spans reach a
//! collector whose certificate the configuration trusts, and nothing reaches one it does
//! not; a collector that requires client certificates gets spans only from an exporter
//! that presents one it accepts. The certificates are the test fixtures in
//! `tests/fixtures` (see its README).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::{path::PathBuf, sync::Arc, time::Duration};

use discreet_telemetry::{
    AccessRecord, AuditMode, AuditTrail, CollectorTls, ExportSettings, SpanIds, TraceContext, attr,
    metrics::GatewayMetrics,
    receiver::{OtlpReceiver, tls_server_config},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An exporter's TLS trusting the CA in fixture `ca`, presenting `<client>-cert.pem` and
/// `<client>-key.pem` if given, verifying the name `localhost`.
fn exporter_tls(ca: &str, client: Option<&str>) -> CollectorTls {
    exporter_tls_for("localhost", ca, client)
}

fn exporter_tls_for(server_name: &str, ca: &str, client: Option<&str>) -> CollectorTls {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&fixture(ca)) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = CertificateDer::pem_slice_iter(&fixture(&format!("{client}-cert.pem")))
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                PrivateKeyDer::from_pem_slice(&fixture(&format!("{client}-key.pem"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let config = Arc::new(config);
    CollectorTls {
        server_name: ServerName::try_from(server_name.to_owned()).unwrap(),
        config: Arc::new(move || Arc::clone(&config)),
    }
}

async fn tls_receiver(client_ca: Option<&str>) -> OtlpReceiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ca = client_ca.map(fixture);
    let config = tls_server_config(
        &fixture("tls-cert.pem"),
        &fixture("tls-key.pem"),
        ca.as_deref(),
    )
    .unwrap();
    OtlpReceiver::start_tls(listener, config).unwrap()
}

fn settings(endpoint: String, tls: CollectorTls) -> ExportSettings {
    ExportSettings {
        endpoint,
        mode: AuditMode::Strict,
        queue_capacity: 16,
        queue_bytes: 64 << 20,
        max_batch: 1,
        export_timeout: Duration::from_secs(1),
        batch_delay: Duration::ZERO,
        service_name: "discreet".into(),
        service_instance: "test".into(),
        tls: Some(tls),
        headers: None,
    }
}

/// Exports one access span through a new trail; returns the trail's metrics and the trail
/// (kept open for the test's length).
async fn export_one(receiver: &OtlpReceiver, tls: CollectorTls) -> (GatewayMetrics, AuditTrail) {
    export_one_to(receiver.endpoint(), tls).await
}

async fn export_one_to(endpoint: String, tls: CollectorTls) -> (GatewayMetrics, AuditTrail) {
    let metrics = GatewayMetrics::new("k1");
    let (trail, _task) =
        AuditTrail::start(&settings(endpoint, tls), Arc::clone(&metrics.audit)).unwrap();
    let ids = SpanIds::new(7);
    let mut record = AccessRecord::begin(
        TraceContext::for_call(None, &ids),
        "/profile.v1.ProfileService/GetProfile".into(),
        "d-1".into(),
        "k1".into(),
    );
    record.decision = attr::decision::ALLOWED;
    trail.reserve().unwrap().record(&record);
    (metrics, trail)
}

fn counter(metrics: &GatewayMetrics, name: &str) -> u64 {
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not exported"))
}

async fn wait_for(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// The exporter has failed (and retried) at least twice and exported nothing.
async fn assert_export_keeps_failing(metrics: &GatewayMetrics) {
    assert!(
        wait_for(|| counter(metrics, "discreet_audit_export_failures_total") >= 2).await,
        "export did not fail: {}",
        metrics.encode()
    );
    assert_eq!(
        counter(metrics, "discreet_audit_spans_exported_total"),
        0,
        "{}",
        metrics.encode()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_tls_collector_the_configuration_trusts() {
    let receiver = tls_receiver(None).await;
    assert!(receiver.endpoint().starts_with("https://localhost:"));
    let (metrics, _trail) = export_one(&receiver, exporter_tls("ca-cert.pem", None)).await;
    assert!(
        wait_for(|| receiver.spans().len() == 1).await,
        "the span did not arrive"
    );
    assert_eq!(receiver.spans()[0].name, attr::ACCESS_SPAN);
    assert!(wait_for(|| counter(&metrics, "discreet_audit_spans_exported_total") == 1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_whose_certificate_is_not_trusted_gets_nothing() {
    let receiver = tls_receiver(None).await;
    // Trusts only the other throwaway CA: the receiver's certificate does not chain to it.
    let (metrics, _trail) = export_one(&receiver, exporter_tls("renewed-ca-cert.pem", None)).await;
    assert_export_keeps_failing(&metrics).await;
    assert!(
        receiver.spans().is_empty(),
        "a span crossed an untrusted connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_requires_client_certificates_gets_spans_only_from_one_it_accepts() {
    let receiver = tls_receiver(Some("client-ca-cert.pem")).await;
    let (without, _t1) = export_one(&receiver, exporter_tls("ca-cert.pem", None)).await;
    // Signed by a CA the receiver does not accept.
    let (rogue, _t2) =
        export_one(&receiver, exporter_tls("ca-cert.pem", Some("client-rogue"))).await;
    for metrics in [&without, &rogue] {
        assert_export_keeps_failing(metrics).await;
    }
    assert!(receiver.spans().is_empty());
    let (with, _t3) = export_one(
        &receiver,
        exporter_tls("ca-cert.pem", Some("client-recommender")),
    )
    .await;
    assert!(
        wait_for(|| receiver.spans().len() == 1).await,
        "the span from the accepted client certificate did not arrive: {}",
        with.encode()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_certificate_for_another_name_gets_nothing() {
    let receiver = tls_receiver(None).await;
    // Issued by the trusted CA, for localhost and 127.0.0.1 only.
    let (metrics, _trail) = export_one(
        &receiver,
        exporter_tls_for("collector.example", "ca-cert.pem", None),
    )
    .await;
    assert_export_keeps_failing(&metrics).await;
    assert!(
        receiver.spans().is_empty(),
        "a span crossed to a misnamed collector"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_endpoint_verifies_against_the_name_it_is_given() {
    let receiver = tls_receiver(None).await;
    let endpoint = format!("https://{}", receiver.local_addr());
    assert!(endpoint.starts_with("https://127.0.0.1:"));
    let (_metrics, _trail) =
        export_one_to(endpoint, exporter_tls_for("localhost", "ca-cert.pem", None)).await;
    assert!(
        wait_for(|| receiver.spans().len() == 1).await,
        "the span did not arrive"
    );
}
