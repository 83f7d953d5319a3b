//! An `https://` key source signed by a private CA (`ca_file`) that asks for a bearer
//! token (`bearer_token_file`), as the Kubernetes API server's `/openid/v1/jwks` does: a
//! real TLS server on loopback with the test CA's certificate for `localhost`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use discreet_consent::{
    ConsentConfig, ConsentError, ConsentService, KeySourceConfig, SigningAlgorithm,
};
use http_body_util::Full;
use hyper::{Request, Response};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// Serves `jwks` over TLS to requests carrying `Authorization: Bearer <token>` (401
/// otherwise); records every Authorization header it saw.
struct KeyServer {
    port: u16,
    token: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn key_server(jwks: String, token: &str) -> KeyServer {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let chain = CertificateDer::pem_file_iter(fixture("tls-cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("tls-key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = Arc::new(Mutex::new(token.to_owned()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (want, log) = (Arc::clone(&expected), Arc::clone(&seen));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, want, log, jwks) = (
                acceptor.clone(),
                Arc::clone(&want),
                Arc::clone(&log),
                jwks.clone(),
            );
            tokio::spawn(async move {
                // A client that does not trust the certificate ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let sent = req
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default();
                    log.lock().unwrap().push(sent.clone());
                    let ok = sent == format!("Bearer {}", want.lock().unwrap());
                    let mut resp = Response::new(Full::new(Bytes::from(if ok {
                        jwks.clone()
                    } else {
                        String::new()
                    })));
                    if !ok {
                        *resp.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                    }
                    async move { Ok::<_, Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    KeyServer {
        port,
        token: expected,
        seen,
    }
}

fn config(port: u16, ca: Option<PathBuf>, token_file: &Path) -> ConsentConfig {
    let mut keys = KeySourceConfig::file("unused");
    keys.file = None;
    keys.url = Some(format!("https://localhost:{port}/openid/v1/jwks"));
    keys.ca_file = ca;
    keys.bearer_token_file = Some(token_file.to_owned());
    keys.refresh_interval = Duration::from_millis(200);
    keys.unknown_kid_min_interval = Duration::from_millis(100);
    ConsentConfig::new(ISS, AUD, keys)
}

/// Retries `check` every 50 ms for up to `limit`.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_an_https_source_a_private_ca_signs_with_a_rotating_bearer_token() {
    let k = fresh_key(SigningAlgorithm::ES256, "cluster");
    let server = key_server(jwks_of(&[&k]), "first-token").await;
    let dir = temp_dir("https-source");
    let token_file = dir.join("token");
    write_atomic(&token_file, "first-token\n");
    let token = mint(&k, &claims("s"));

    // The private CA's bundle: keys load, the token verifies; the bearer token went out,
    // trimmed.
    let service = ConsentService::start(&config(
        server.port,
        Some(fixture("ca-cert.pem")),
        &token_file,
    ))
    .await
    .unwrap();
    service.verify_cached(&token).await.unwrap();
    assert!(
        server
            .seen
            .lock()
            .unwrap()
            .iter()
            .all(|a| a == "Bearer first-token")
    );

    // The Mozilla roots do not vouch for the cluster's CA: no keys, so nothing verifies.
    let untrusting = ConsentService::start(&config(server.port, None, &token_file))
        .await
        .unwrap();
    assert_eq!(
        untrusting.verify_uncached(&token).await.unwrap_err(),
        ConsentError::KeysUnavailable
    );

    // The server moves to a new token (the kubelet renewed the projected one): refused
    // until the file holds it, then read again for the next request, without a restart.
    *server.token.lock().unwrap() = "second-token".into();
    let renewed = ConsentService::start(&config(
        server.port,
        Some(fixture("ca-cert.pem")),
        &token_file,
    ))
    .await
    .unwrap();
    assert_eq!(
        renewed.verify_uncached(&token).await.unwrap_err(),
        ConsentError::KeysUnavailable
    );
    write_atomic(&token_file, "second-token\n");
    assert!(
        within(Duration::from_secs(5), async || renewed
            .verify_uncached(&token)
            .await
            .is_ok())
        .await,
        "the renewed token file was not read again"
    );
    assert!(
        server
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|a| a == "Bearer second-token")
    );
}

#[tokio::test]
async fn a_ca_file_that_is_missing_or_holds_no_certificate_is_refused_at_start() {
    let dir = temp_dir("https-source-bad-ca");
    let token_file = dir.join("token");
    write_atomic(&token_file, "t");
    let e = ConsentService::start(&config(1, Some(dir.join("missing.pem")), &token_file))
        .await
        .unwrap_err();
    assert!(e.0.starts_with("keys: ca_file "), "{e:?}");
    // A key file has no CERTIFICATE block.
    let e = ConsentService::start(&config(1, Some(fixture("tls-key.pem")), &token_file))
        .await
        .unwrap_err();
    assert!(e.0.contains("no certificate"), "{e:?}");
}

/// A token path naming something that never ends is a failed read, not a read until
/// memory runs out.
#[tokio::test]
async fn a_bearer_token_file_that_never_ends_is_refused() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let endless = config(1, None, Path::new("/dev/zero"));
    let service = tokio::time::timeout(Duration::from_secs(10), ConsentService::start(&endless))
        .await
        .expect("reading the token file did not stop")
        .unwrap();
    let k = fresh_key(SigningAlgorithm::ES256, "k");
    assert_eq!(
        service
            .verify_uncached(&mint(&k, &claims("s")))
            .await
            .unwrap_err(),
        ConsentError::KeysUnavailable
    );
}

/// The cluster's CA is rotated by updating the mounted bundle: the source trusts what the
/// file holds now, without a restart, and a bundle replaced by something unusable is
/// trusted for nothing (reads fail, the health shows it) until it is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_ca_file_is_read_again_and_a_broken_one_trusts_nothing() {
    let k = fresh_key(SigningAlgorithm::ES256, "cluster");
    let server = key_server(jwks_of(&[&k]), "token").await;
    let dir = temp_dir("https-source-ca-rotation");
    let token_file = dir.join("token");
    write_atomic(&token_file, "token");
    let ca_file = dir.join("ca.crt");
    let pem = |name: &str| std::fs::read_to_string(fixture(name)).unwrap();
    // Before the rotation the bundle names a CA that did not sign the server's certificate.
    write_atomic(&ca_file, &pem("rogue-ca-cert.pem"));
    let service = ConsentService::start(&config(server.port, Some(ca_file.clone()), &token_file))
        .await
        .unwrap();
    let token = mint(&k, &claims("s"));
    assert_eq!(
        service.verify_uncached(&token).await.unwrap_err(),
        ConsentError::KeysUnavailable
    );
    let failures = |service: &ConsentService| service.source_health()[0].1.consecutive_failures;
    assert!(failures(&service) > 0);

    write_atomic(&ca_file, &pem("ca-cert.pem"));
    assert!(
        within(Duration::from_secs(5), async || service
            .verify_uncached(&token)
            .await
            .is_ok())
        .await,
        "the rotated ca_file was not read again"
    );
    assert_eq!(failures(&service), 0);

    // Replaced by something that is not a bundle: reads fail from the next one on (the
    // keys already read stay in use until max_staleness, as for any failing source).
    write_atomic(&ca_file, "not a certificate\n");
    assert!(
        within(Duration::from_secs(5), async || failures(&service) >= 2).await,
        "reads went on with a ca_file that holds no certificate"
    );
    // Removed: the same.
    std::fs::remove_file(&ca_file).unwrap();
    let before = failures(&service);
    assert!(
        within(Duration::from_secs(5), async || failures(&service) > before).await,
        "reads went on without a ca_file"
    );
    // Back: trusted again.
    write_atomic(&ca_file, &pem("ca-cert.pem"));
    assert!(
        within(Duration::from_secs(5), async || failures(&service) == 0).await,
        "the restored ca_file was not read again"
    );
}
