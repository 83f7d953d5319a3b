//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use discreet_proto::profile::v1::{
    GetProfileRequest, Profile, profile_service_client::ProfileServiceClient,
};
use discreet_testkit::Harness;
use tonic::{Code, transport::Channel};

/// A file of test TLS material in `tests/fixtures` (see its README).
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// Polls `check` every 25 ms until it holds (true) or `limit` passes (false).
pub async fn eventually(limit: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Each purpose of the shipped policy and a caller allowed to declare it.
pub const PURPOSES: [(&str, &str); 5] = [
    ("personalize", "shop/recommender"),
    ("marketing.communications.email", "marketing/mailer"),
    ("essential.fraud_detection", "risk/scorer"),
    ("essential.service.operations.support", "support/desk"),
    ("analytics.reporting", "analytics/warehouse"),
];

/// The caller for `purpose`.
pub fn caller_for(purpose: &str) -> &'static str {
    PURPOSES
        .iter()
        .find(|(p, _)| *p == purpose)
        .map(|(_, c)| *c)
        .unwrap()
}

/// `GetProfile` for `subject` as `purpose`'s caller with a consent token granting it.
pub async fn get(
    h: &Harness,
    subject: &str,
    purpose: &str,
) -> Result<tonic::Response<Profile>, tonic::Status> {
    let consent = h.consent(subject, &[purpose]).unwrap();
    get_with(h, subject, purpose, &[consent]).await
}

/// `GetProfile` with these consent tokens.
pub async fn get_with(
    h: &Harness,
    subject: &str,
    purpose: &str,
    consents: &[String],
) -> Result<tonic::Response<Profile>, tonic::Status> {
    let mut client = h.client().await.unwrap();
    let request = h
        .request(
            GetProfileRequest {
                subject_id: subject.into(),
            },
            caller_for(purpose),
            purpose,
            consents,
        )
        .unwrap();
    client.get_profile(request).await
}

/// The record as the store holds it, read directly (no enforcement).
pub async fn raw(h: &Harness, subject: &str) -> Profile {
    let channel = Channel::from_shared(format!("http://{}", h.upstream_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ProfileServiceClient::new(channel)
        .get_profile(GetProfileRequest {
            subject_id: subject.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Asserts a refusal with `code`.
pub fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
) -> tonic::Status {
    match result {
        Ok(r) => panic!("expected {code:?}, got a response: {r:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "{s:?}");
            s
        }
    }
}

/// A trailer (tonic merges trailers into the response metadata for unary calls).
pub fn meta<T>(r: &tonic::Response<T>, key: &str) -> String {
    r.metadata()
        .get(key)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A `grpc-message` as sent (percent-encoded, gRPC over HTTP/2), decoded for reading.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Prometheus series from the gateway's metrics endpoint (0 when absent).
pub async fn metric(h: &Harness, name: &str) -> u64 {
    let addr = h.metrics_addr().unwrap();
    let body = http_get(addr, "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0)
}

/// A plain HTTP/1.1 GET over a TCP socket.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}
