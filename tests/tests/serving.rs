//! Serving basics: load shedding, graceful drain, TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::time::{Duration, Instant};

use common::{assert_refused, caller_for, fixture, get, metric};
use discreet_proto::profile::v1::{
    StreamProfilesRequest, profile_service_client::ProfileServiceClient,
};
use discreet_testkit::{Harness, PERSONAS};
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig},
};

const PROFILES: usize = 3000;

/// A client that takes at most 64 KiB in flight, so a long stream stays open while it
/// does not read.
async fn slow_client(h: &Harness) -> ProfileServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .connect()
        .await
        .unwrap();
    ProfileServiceClient::new(channel)
}

/// A long stream on a [`slow_client`], its first record read: it stays open while it is
/// not read.
async fn slow_stream(h: &Harness) -> tonic::Streaming<discreet_proto::profile::v1::Profile> {
    let mut stream = slow_client(h)
        .await
        .stream_profiles(stream_request(h))
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    stream
}

fn stream_request(h: &Harness) -> tonic::Request<StreamProfilesRequest> {
    let purpose = "analytics.reporting";
    h.request(
        StreamProfilesRequest {
            segment: "all".into(),
            limit: 0,
        },
        caller_for(purpose),
        purpose,
        &[],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_limit_are_shed_at_once() {
    let h = Harness::start_with(|c| {
        c.limits.max_concurrent_calls = 1;
        c.upstream = discreet_config::Upstream::Embedded { profiles: PROFILES };
    })
    .await
    .unwrap();
    let stream = slow_stream(&h).await;
    // The stream holds the only slot: the next call is refused, not queued.
    let start = Instant::now();
    let s = assert_refused(
        get(&h, "persona-eu", "personalize").await,
        Code::ResourceExhausted,
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "shedding took {:?}",
        start.elapsed()
    );
    assert!(s.message().contains("concurrency limit"), "{}", s.message());
    // When the stream goes away, the slot comes back.
    drop(stream);
    let start = Instant::now();
    while get(&h, "persona-eu", "personalize").await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "slot not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_limit_counts_work_not_streams() {
    let h = Harness::start_with(|c| {
        c.limits.max_concurrent_calls = 2;
        c.limits.adaptive_concurrency.enabled = true;
        c.limits.adaptive_concurrency.min_calls = 1;
        c.upstream = discreet_config::Upstream::Embedded { profiles: PROFILES };
    })
    .await
    .unwrap();
    assert_eq!(metric(&h, "discreet_concurrency_limit").await, 1);
    // A long stream nobody reads: it counts against the ceiling (2), not against the
    // adaptive limit (1), which would otherwise refuse every other call while it lasts.
    let first = slow_stream(&h).await;
    for _ in 0..5 {
        get(&h, "persona-eu", "personalize").await.unwrap();
    }
    // A second stream fills the ceiling: the next call is refused, and leaves no span.
    let second = slow_stream(&h).await;
    assert_refused(
        get(&h, "persona-eu", "personalize").await,
        Code::ResourceExhausted,
    );
    assert_eq!(metric(&h, "discreet_calls_shed_total").await, 1);
    drop((first, second));
    // Two streams and five reads were admitted: seven spans, and no eighth for the shed call.
    h.wait_for_spans(7).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.wait_for_spans(0).await.unwrap().len(), 7);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_calls_in_flight() {
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Embedded { profiles: PROFILES }
    })
    .await
    .unwrap();
    let mut stream = slow_stream(&h).await;
    let addr = h.addr();
    let shutdown = tokio::spawn(h.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are no longer accepted...
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect(),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "a new connection was accepted during shutdown"
    );
    // ...but the call in flight runs to its end.
    let mut n = 1;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, PROFILES + PERSONAS.len());
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
}

/// Serving TLS with the fixture server certificate and, for mutual TLS, `client_ca`.
fn fixture_tls(client_ca: Option<&str>) -> Option<discreet_config::TlsConfig> {
    Some(discreet_config::TlsConfig {
        cert_file: fixture("tls-cert.pem"),
        key_file: fixture("tls-key.pem"),
        client_ca_file: client_ca.map(fixture),
    })
}

/// A new TLS connection to the gateway trusting only the CA in fixture `ca`, presenting
/// the client certificate and key `<client>-cert.pem`, `<client>-key.pem` if given.
async fn tls_channel(h: &Harness, ca: &str, client: Option<&str>) -> Result<Channel, String> {
    let read = |name: &str| std::fs::read(fixture(name)).unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)))
        .domain_name("localhost");
    if let Some(client) = client {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read(&format!("{client}-cert.pem")),
            read(&format!("{client}-key.pem")),
        ));
    }
    Channel::from_shared(format!("https://{}", h.addr()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls() {
    let h = Harness::start_with(|c| c.tls = fixture_tls(None))
        .await
        .unwrap();
    let channel = tls_channel(&h, "ca-cert.pem", None).await.unwrap();
    let p = get_on(&mut ProfileServiceClient::new(channel), &h)
        .await
        .unwrap();
    assert!(p.contact.is_none() && p.subject_id.len() == 32);
    // Plain h2c to a TLS port gets nowhere.
    let plain = Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert!(
            get_on(&mut ProfileServiceClient::new(channel), &h)
                .await
                .is_err()
        );
    }
    h.shutdown().await;
}

/// Without a caller deadline a stream runs as long as it keeps moving (the default
/// timeout bounds each wait for the store, not the whole stream); with one, it ends there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_a_deadline_outlives_the_default_timeout() {
    let h = Harness::start_with(|c| {
        c.limits.default_timeout = Duration::from_millis(500);
        c.upstream = discreet_config::Upstream::Embedded { profiles: PROFILES };
    })
    .await
    .unwrap();
    let mut client = slow_client(&h).await;
    let mut stream = client
        .stream_profiles(stream_request(&h))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
        if n % 1000 == 0 {
            tokio::time::sleep(Duration::from_millis(400)).await; // 1.2 s in all
        }
    }
    assert_eq!(n, PROFILES + PERSONAS.len());

    let mut request = stream_request(&h);
    request.set_timeout(Duration::from_millis(300));
    let mut stream = client.stream_profiles(request).await.unwrap().into_inner();
    stream.message().await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ended = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => break None,
            Err(s) => break Some(s.code()),
        }
    };
    assert_eq!(ended, Some(Code::DeadlineExceeded));
    h.shutdown().await;
}

/// A `GetProfile` for a persona on this connection.
async fn get_on(
    client: &mut ProfileServiceClient<Channel>,
    h: &Harness,
) -> Result<discreet_proto::profile::v1::Profile, tonic::Status> {
    get_as(client, h, caller_for("personalize")).await
}

/// A `GetProfile` of a persona for `personalize` with a bearer token naming `caller`.
async fn get_as(
    client: &mut ProfileServiceClient<Channel>,
    h: &Harness,
    caller: &str,
) -> Result<discreet_proto::profile::v1::Profile, tonic::Status> {
    let purpose = "personalize";
    let consent = h.consent("persona-eu", &[purpose]).unwrap();
    let request = h
        .request(
            discreet_proto::profile::v1::GetProfileRequest {
                subject_id: "persona-eu".into(),
            },
            caller,
            purpose,
            &[consent],
        )
        .unwrap();
    client
        .get_profile(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_at_once_and_places_come_back() {
    const MAX: usize = 4;
    let h = Harness::start_with(|c| c.limits.max_connections = MAX)
        .await
        .unwrap();
    let connect = || async {
        let channel = Channel::from_shared(format!("http://{}", h.addr()))
            .unwrap()
            .connect()
            .await?;
        Ok::<_, tonic::transport::Error>(ProfileServiceClient::new(channel))
    };
    let mut held = Vec::new();
    for _ in 0..MAX {
        let mut client = connect().await.unwrap();
        get_on(&mut client, &h).await.unwrap();
        held.push(client);
    }
    assert_eq!(metric(&h, "discreet_connections_open ").await, MAX as u64);
    // One more is closed as soon as it is accepted, before a byte is read: its call
    // fails as on any connection the server closed (tonic says UNKNOWN "transport
    // error" or CANCELLED "connection closed", by when it notices; grpc-go says
    // UNAVAILABLE), and nothing else happens to it.
    let refused = match connect().await {
        Err(_) => None,
        Ok(mut client) => Some(get_on(&mut client, &h).await.unwrap_err()),
    };
    if let Some(status) = refused {
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "{status:?}"
        );
    }
    assert!(metric(&h, "discreet_connections_refused_total").await >= 1);
    // The connections open are served as before.
    for client in &mut held {
        get_on(client, &h).await.unwrap();
    }
    // One leaves: its place goes to the next caller.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let served = match connect().await {
            Ok(mut client) => get_on(&mut client, &h).await.is_ok(),
            Err(_) => false,
        };
        if served {
            break;
        }
        assert!(Instant::now() < deadline, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_connections_with_a_call_open_are_not() {
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Embedded { profiles: PROFILES };
        c.limits.connection_idle_timeout = Duration::from_secs(1);
    })
    .await
    .unwrap();
    // A connection that never calls.
    let tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let (_idle, connection) = h2::client::handshake(tcp).await.unwrap();
    let idle_ended = tokio::spawn(connection);
    // A connection with one long call open, read slowly.
    let opened = Instant::now();
    let mut stream = slow_stream(&h).await;
    // The idle one is closed (GOAWAY, then close) after 1 to 1.25 s; 10 s is patience.
    tokio::time::timeout(Duration::from_secs(10), idle_ended)
        .await
        .expect("the idle connection was not closed")
        .unwrap()
        .ok();
    assert!(metric(&h, "discreet_connections_idle_closed_total").await >= 1);
    // The other has been open past the timeout, its call waiting on its reader, and is
    // still served to the end.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(opened.elapsed())).await;
    let mut n = 1;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, PROFILES + PERSONAS.len());
    // Only the idle connection was closed for idleness (this one's turn would come a
    // second after its call ended).
    assert_eq!(
        metric(&h, "discreet_connections_idle_closed_total").await,
        1,
        "a connection with a call open was closed as idle"
    );
}

/// `limits.max_connection_age`: a connection goes at its age (GOAWAY) whether or not it
/// is busy; a call still open past `shutdown_grace` after that is cut, and the caller's
/// next call, on a new connection, is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_older_than_the_max_age_are_asked_to_go() {
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Embedded { profiles: PROFILES };
        // The shortest age validation accepts (the gateway validates its configuration
        // however it was made), so this test takes about 25 s.
        c.limits.max_connection_age = Duration::from_secs(10);
        c.limits.shutdown_grace = Duration::from_secs(1);
    })
    .await
    .unwrap();
    // A connection without calls goes at its age (9 to 11 s), long before the idle
    // timeout (5 m).
    let opened = Instant::now();
    let tcp = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    let (_client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), connection)
        .await
        .expect("the connection was not closed at its age")
        .ok();
    let lived = opened.elapsed();
    assert!(lived >= Duration::from_secs(9), "closed after {lived:?}");

    // A long stream, not read (its window full) past the age and the grace: cut. Read
    // afterwards, it yields what had reached the client, then the error, not all records.
    let mut stream = slow_stream(&h).await;
    // Its connection is the second to age out; then the grace (1 s), and a margin.
    let aged_by = Instant::now() + Duration::from_secs(20);
    while metric(&h, "discreet_connections_aged_out_total").await < 2 {
        assert!(
            Instant::now() < aged_by,
            "the stream's connection did not age out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut n = 1;
    let ended = loop {
        match stream.message().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert!(
        ended.is_some() && n < PROFILES + PERSONAS.len(),
        "the aged connection's stream ran to its end ({n} records)"
    );
    assert!(metric(&h, "discreet_connections_aged_out_total").await >= 2);
    get(&h, "persona-eu", "personalize").await.unwrap();
    h.shutdown().await;
}

/// A Kubernetes TLS Secret as the kubelet mounts it: `tls.crt` and `tls.key` are links
/// through `..data` to a versioned directory, and an update swaps `..data` in one rename.
struct MountedSecret {
    dir: discreet_testkit::TempDir,
    versions: usize,
}

impl MountedSecret {
    fn new(cert: &[u8], key: &[u8]) -> MountedSecret {
        let mut s = MountedSecret {
            dir: discreet_testkit::TempDir::new("tls-secret").unwrap(),
            versions: 0,
        };
        s.update(cert, key);
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), s.dir.path().join(file)).unwrap();
        }
        s
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.dir.path().join(file)
    }

    fn update(&mut self, cert: &[u8], key: &[u8]) {
        self.versions += 1;
        let version = format!("..v{}", self.versions);
        let dir = self.dir.path();
        std::fs::create_dir(dir.join(&version)).unwrap();
        std::fs::write(dir.join(&version).join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join(&version).join("tls.key"), key).unwrap();
        std::os::unix::fs::symlink(&version, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    }
}

/// A new TLS connection trusting only `ca`, and one call on it.
async fn call_over_tls(h: &Harness, ca: &str) -> Result<(), String> {
    let channel = tls_channel(h, ca, None).await?;
    get_on(&mut ProfileServiceClient::new(channel), h)
        .await
        .map(drop)
        .map_err(|s| s.to_string())
}

/// The value of the first series of `name` (any labels), if there is one.
async fn gauge(h: &Harness, name: &str) -> Option<i64> {
    let body = common::http_get(h.metrics_addr().unwrap(), "/metrics").await;
    body.lines()
        .filter(|l| l.starts_with(name))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Certificates are renewed while pods run (cert-manager, a mesh CA): a renewed Secret
/// reaches new connections without a restart, connections already open keep working,
/// and a broken update leaves the last good certificate serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_renewed_certificate_without_a_restart() {
    let read = |name: &str| std::fs::read(fixture(name)).unwrap();
    let mut secret = MountedSecret::new(&read("tls-cert.pem"), &read("tls-key.pem"));
    let h = Harness::start_with(|c| {
        c.tls = Some(discreet_config::TlsConfig {
            cert_file: secret.path("tls.crt"),
            key_file: secret.path("tls.key"),
            client_ca_file: None,
        });
    })
    .await
    .unwrap();
    let expiry = "discreet_tls_certificate_expiration_timestamp_seconds";
    // 2126-10-30T14:05:33Z, `openssl x509 -enddate` of tls-cert.pem.
    assert_eq!(gauge(&h, expiry).await, Some(4_949_042_733));
    call_over_tls(&h, "ca-cert.pem").await.unwrap();
    assert!(
        call_over_tls(&h, "renewed-ca-cert.pem").await.is_err(),
        "a client trusting only the renewed CA refuses the first certificate"
    );
    // A connection opened before the renewal.
    let mut before = ProfileServiceClient::new(tls_channel(&h, "ca-cert.pem", None).await.unwrap());
    get_on(&mut before, &h).await.unwrap();

    secret.update(&read("renewed-cert.pem"), &read("renewed-key.pem"));
    let renewed_by = Instant::now() + Duration::from_secs(10);
    while let Err(e) = call_over_tls(&h, "renewed-ca-cert.pem").await {
        assert!(Instant::now() < renewed_by, "renewal not served: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        call_over_tls(&h, "ca-cert.pem").await.is_err(),
        "new connections no longer get the old certificate"
    );
    get_on(&mut before, &h)
        .await
        .expect("a connection made before the renewal keeps working");
    assert_eq!(
        metric(
            &h,
            "discreet_tls_certificate_reloads_total{files=\"serving\",result=\"applied\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &h,
            "discreet_tls_certificate_reloads_total{files=\"serving\",result=\"rejected\"}"
        )
        .await,
        0
    );
    // 2125-06-18T17:55:22Z, renewed-cert.pem.
    assert_eq!(gauge(&h, expiry).await, Some(4_905_942_922));

    // A broken update (a certificate without its key) is refused; the renewed pair serves.
    secret.update(&read("tls-cert.pem"), &read("renewed-key.pem"));
    let refused_by = Instant::now() + Duration::from_secs(10);
    while metric(
        &h,
        "discreet_tls_certificate_reloads_total{files=\"serving\",result=\"rejected\"}",
    )
    .await
        == 0
    {
        assert!(
            Instant::now() < refused_by,
            "the broken update was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call_over_tls(&h, "renewed-ca-cert.pem").await.unwrap();
    assert!(call_over_tls(&h, "ca-cert.pem").await.is_err());
    assert_eq!(gauge(&h, expiry).await, Some(4_905_942_922));
    h.shutdown().await;
}

/// `GetProfile` of a persona for `personalize` over a new mutual-TLS connection made with
/// the client certificate `client` (fixture name prefix; none: no certificate). The
/// bearer token names `risk/scorer`, a caller `personalize` does not allow: a call that
/// is served was named by its certificate, not by the token.
async fn call_with_client_certificate(h: &Harness, client: Option<&str>) -> Result<(), String> {
    let channel = tls_channel(h, "ca-cert.pem", client).await?;
    get_as(&mut ProfileServiceClient::new(channel), h, "risk/scorer")
        .await
        .map(drop)
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// `identity: spiffe`: the caller is the SPIFFE ID of the client certificate the
/// connection was made with, verified against `tls.client_ca_file`; a bearer token
/// cannot override it, and a connection without a certificate from those CAs gets nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_named_by_their_client_certificate() {
    let h = Harness::start_with(|c| {
        c.tls = fixture_tls(Some("client-ca-cert.pem"));
        c.identity = discreet_config::IdentityConfig::Spiffe(discreet_config::SpiffeConfig {
            trust_domain: "cluster.local".into(),
        });
    })
    .await
    .unwrap();
    // spiffe://cluster.local/ns/shop/sa/recommender: served as shop/recommender.
    call_with_client_certificate(&h, Some("client-recommender"))
        .await
        .unwrap();
    let spans = h.wait_for_spans(1).await.unwrap();
    let caller = spans[0]
        .attributes
        .iter()
        .find(|a| a.key == "discreet.caller")
        .and_then(|a| a.value.as_ref()?.value.clone());
    assert_eq!(
        caller,
        Some(
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                "shop/recommender".into()
            )
        )
    );
    for (client, expected) in [
        (
            "client-other-domain",
            "Unauthenticated: caller not authenticated: the client certificate's SPIFFE ID is not of this gateway's trust domain",
        ),
        (
            "client-no-spiffe",
            "Unauthenticated: caller not authenticated: the client certificate has no SPIFFE ID",
        ),
    ] {
        let refused = call_with_client_certificate(&h, Some(client))
            .await
            .unwrap_err();
        assert!(refused.starts_with(expected), "{client}: {refused}");
        assert!(
            !refused.contains("spiffe://"),
            "{client}: quotes the ID: {refused}"
        );
    }
    // No certificate, or one from another CA: the handshake fails; no call is made.
    for client in [None, Some("client-rogue")] {
        let refused = call_with_client_certificate(&h, client).await.unwrap_err();
        assert!(
            !refused.starts_with("Unauthenticated") && !refused.starts_with("PermissionDenied"),
            "{client:?} reached a call: {refused}"
        );
    }
    h.shutdown().await;
}

/// The client CA bundle is reloaded like the certificate (trust-manager updates bundles in
/// place): a CA added to it is trusted by new connections without a restart, and a bundle
/// that does not load leaves the CAs in force unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_client_ca_bundle_applies_without_a_restart() {
    let read = |name: &str| std::fs::read(fixture(name)).unwrap();
    let dir = discreet_testkit::TempDir::new("client-cas").unwrap();
    let bundle = dir.path().join("ca.crt");
    // Replaced as a whole (write aside, rename over), as a ConfigMap update is.
    let replace = |contents: &[u8]| {
        let aside = dir.path().join("ca.crt.new");
        std::fs::write(&aside, contents).unwrap();
        std::fs::rename(&aside, &bundle).unwrap();
    };
    replace(&read("client-ca-cert.pem"));
    let h = Harness::start_with(|c| {
        c.tls = fixture_tls(None).map(|t| discreet_config::TlsConfig {
            client_ca_file: Some(bundle.clone()),
            ..t
        });
        c.identity = discreet_config::IdentityConfig::Spiffe(discreet_config::SpiffeConfig {
            trust_domain: "cluster.local".into(),
        });
    })
    .await
    .unwrap();
    let reloads = |result: &str| {
        format!("discreet_tls_certificate_reloads_total{{files=\"client_ca\",result=\"{result}\"}}")
    };
    call_with_client_certificate(&h, Some("client-recommender"))
        .await
        .unwrap();
    assert!(
        call_with_client_certificate(&h, Some("client-rogue"))
            .await
            .is_err(),
        "a certificate from a CA not in the bundle"
    );

    replace(&[read("client-ca-cert.pem"), read("rogue-ca-cert.pem")].concat());
    let trusted_by = Instant::now() + Duration::from_secs(10);
    while let Err(e) = call_with_client_certificate(&h, Some("client-rogue")).await {
        assert!(
            Instant::now() < trusted_by,
            "the added CA was not trusted: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call_with_client_certificate(&h, Some("client-recommender"))
        .await
        .unwrap();
    assert_eq!(metric(&h, &reloads("applied")).await, 1);

    replace(b"not a bundle");
    let refused_by = Instant::now() + Duration::from_secs(10);
    while metric(&h, &reloads("rejected")).await == 0 {
        assert!(
            Instant::now() < refused_by,
            "the broken bundle was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for client in ["client-recommender", "client-rogue"] {
        call_with_client_certificate(&h, Some(client))
            .await
            .unwrap_or_else(|e| panic!("{client}: {e}"));
    }

    // A CA removed from the bundle is no longer trusted by new connections.
    replace(&read("client-ca-cert.pem"));
    let removed_by = Instant::now() + Duration::from_secs(10);
    while call_with_client_certificate(&h, Some("client-rogue"))
        .await
        .is_ok()
    {
        assert!(
            Instant::now() < removed_by,
            "the removed CA is still trusted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call_with_client_certificate(&h, Some("client-recommender"))
        .await
        .unwrap();
    assert_eq!(metric(&h, &reloads("applied")).await, 2);
    h.shutdown().await;
}

/// `limits.max_calls_per_caller`: a caller at its share is refused `RESOURCE_EXHAUSTED`
/// while another caller is served, and gets its place back when one of its calls ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_at_its_share_is_refused_while_others_are_served() {
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Embedded { profiles: PROFILES };
        c.limits.max_calls_per_caller = 2;
    })
    .await
    .unwrap();
    // analytics/warehouse holds two long streams, unread.
    let first = slow_stream(&h).await;
    let second = slow_stream(&h).await;
    let third = slow_client(&h)
        .await
        .stream_profiles(stream_request(&h))
        .await;
    let Err(refused) = third else {
        panic!("a third call of the same caller was served");
    };
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("max_calls_per_caller"),
        "{refused:?}"
    );
    assert_eq!(
        metric(
            &h,
            "discreet_calls_over_caller_share_total{caller=\"analytics/warehouse\"}"
        )
        .await,
        1
    );
    // Another caller is not affected.
    get(&h, "persona-eu", "personalize").await.unwrap();
    // One stream ends (the client goes away): its caller's place comes back.
    drop(first);
    let back_by = Instant::now() + Duration::from_secs(5);
    loop {
        let again = slow_client(&h)
            .await
            .stream_profiles(stream_request(&h))
            .await;
        match again {
            Ok(_) => break,
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < back_by => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => panic!("the place did not come back: {s:?}"),
        }
    }
    drop(second);
    h.shutdown().await;
}
