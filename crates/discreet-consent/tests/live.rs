//! The async service: file and HTTP sources, rotation, revocation latency, lookup.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use discreet_consent::{
    ConsentConfig, ConsentError, ConsentService, DirectoryConsentLookup, HttpConsentLookup,
    KeySourceConfig, RevocationSourceConfig, SigningAlgorithm,
};
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::sync::RwLock;

fn config_with_files(dir: &std::path::Path) -> ConsentConfig {
    let mut cfg = ConsentConfig::new(ISS, AUD, KeySourceConfig::file(dir.join("jwks.json")));
    cfg.keys.refresh_interval = Duration::from_secs(1);
    cfg.keys.unknown_kid_min_interval = Duration::from_millis(200);
    cfg.revocation = Some(RevocationSourceConfig::file(dir.join("revocations.json")));
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_file_rotation_while_verifying() {
    let dir = temp_dir("rotate");
    let old = fresh_key(SigningAlgorithm::ES256, "old");
    let new = fresh_key(SigningAlgorithm::EdDSA, "new");
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&old]));
    write_atomic(&dir.join("revocations.json"), "{}");
    let service = Arc::new(
        ConsentService::start(&config_with_files(&dir))
            .await
            .unwrap(),
    );
    let old_token = mint(&old, &claims("s1"));
    let new_token = mint(&new, &claims("s2"));
    assert!(service.verify_cached(&old_token).await.is_ok());

    // A task verifying the old-key token continuously, recording when it stops working.
    let stop = Arc::new(AtomicBool::new(false));
    let ok_count = Arc::new(AtomicU64::new(0));
    let verifier = {
        let (service, stop, ok_count, token) = (
            Arc::clone(&service),
            Arc::clone(&stop),
            Arc::clone(&ok_count),
            old_token.clone(),
        );
        tokio::spawn(async move {
            let mut refused_at = None;
            while !stop.load(Ordering::Relaxed) {
                match service.verify_cached(&token).await {
                    Ok(_) if refused_at.is_none() => {
                        ok_count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => panic!("old-key token accepted again after being refused"),
                    Err(e) => {
                        assert_eq!(e, ConsentError::UnknownKey);
                        refused_at.get_or_insert_with(Instant::now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            refused_at
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Step 1: publish both keys. Both tokens work.
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&old, &new]));
    let t0 = Instant::now();
    while service.verify_cached(&new_token).await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "new key not picked up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(service.verify_cached(&old_token).await.is_ok());

    // Step 2: remove the old key. Old-key tokens (even cached ones) stop working.
    let removed_at = Instant::now();
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&new]));
    while service.verify_cached(&old_token).await.is_ok() {
        assert!(
            removed_at.elapsed() < Duration::from_secs(5),
            "old key still accepted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let refused_at = verifier
        .await
        .unwrap()
        .expect("the loop saw the old key refused");
    println!(
        "rotation: old key refused {:?} after removal; {} successful verifications before",
        refused_at.saturating_duration_since(removed_at),
        ok_count.load(Ordering::Relaxed)
    );
    assert!(service.verify_cached(&new_token).await.is_ok());
    assert_eq!(
        service.verify_cached(&old_token).await.unwrap_err(),
        ConsentError::UnknownKey
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_written_to_file_is_enforced_quickly() {
    revocation_delay(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_is_enforced_by_the_poll_alone_without_watcher() {
    revocation_delay(false).await;
}

async fn revocation_delay(watch: bool) {
    let dir = temp_dir("revoke");
    let k = fresh_key(SigningAlgorithm::EdDSA, "k");
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&k]));
    write_atomic(&dir.join("revocations.json"), r#"{"revoked_jti": []}"#);
    let mut cfg = config_with_files(&dir);
    cfg.revocation.as_mut().unwrap().watch = watch;
    let service = ConsentService::start(&cfg).await.unwrap();
    let mut delays = Vec::new();
    for round in 0..5 {
        let c = claims(&format!("subject-{round}"));
        let token = mint(&k, &c);
        // Warm the cache: the revocation must win over a cache hit.
        service.verify_cached(&token).await.unwrap();
        service.verify_cached(&token).await.unwrap();
        // Vary the phase against the poll so the figures spread over the interval.
        tokio::time::sleep(Duration::from_millis(50 + 37 * round)).await;
        let list = serde_json::json!({"revoked_jti": [c.jti]}).to_string();
        let written = Instant::now();
        write_atomic(&dir.join("revocations.json"), &list);
        loop {
            match service.verify_cached(&token).await {
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e, ConsentError::Revoked);
                    break;
                }
            }
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "revocation not enforced in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        delays.push(written.elapsed());
    }
    let how = if watch {
        "watcher + 250 ms poll (defaults)"
    } else {
        "250 ms poll only"
    };
    println!("revocation enforcement delay (file source, {how}): {delays:?}");
    let worst = delays.iter().max().unwrap();
    assert!(*worst < Duration::from_secs(5));

    // Outdated consent version, same path.
    let mut c = claims("versioned");
    c.consent_version = Some(1);
    let token = mint(&k, &c);
    service.verify_cached(&token).await.unwrap();
    write_atomic(
        &dir.join("revocations.json"),
        r#"{"min_consent_version": {"versioned": 2}}"#,
    );
    let t0 = Instant::now();
    while service.verify_cached(&token).await.is_ok() {
        assert!(t0.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        service.verify_cached(&token).await.unwrap_err(),
        ConsentError::Outdated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_revocation_source_fails_closed_after_staleness() {
    let dir = temp_dir("revstale");
    let k = fresh_key(SigningAlgorithm::EdDSA, "k");
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&k]));
    let mut cfg = config_with_files(&dir);
    // Never written: a file source that does not load at start refuses the start, naming
    // the field and the file (a mounted file is there before the container starts).
    let e = ConsentService::start(&cfg).await.unwrap_err();
    assert!(e.0.starts_with("revocation: "), "{e}");
    assert!(e.0.contains("revocations.json: entity not found"), "{e}");
    // Not a revocation list: the same.
    write_atomic(&dir.join("revocations.json"), "[not json");
    let e = ConsentService::start(&cfg).await.unwrap_err();
    assert!(
        e.0.contains("revocations.json: the document does not parse"),
        "{e}"
    );
    let token = mint(&k, &claims("s"));
    write_atomic(&dir.join("revocations.json"), "{}");
    cfg.revocation.as_mut().unwrap().max_staleness = Duration::from_millis(600);
    let service = ConsentService::start(&cfg).await.unwrap();
    assert!(service.verify_cached(&token).await.is_ok());
    std::fs::remove_file(dir.join("revocations.json")).unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        service.verify_cached(&token).await.unwrap_err(),
        ConsentError::RevocationUnavailable
    );
}

/// What the test HTTP server serves: `None` answers 503 (source down).
#[derive(Default)]
struct Served {
    jwks: Option<String>,
    tokens: std::collections::HashMap<String, String>,
}

async fn serve(state: Arc<RwLock<Served>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let state = Arc::clone(&state);
                    async move {
                        let s = state.read().await;
                        let path = req.uri().path().to_owned();
                        let (status, body) = if path == "/jwks.json" {
                            match &s.jwks {
                                Some(j) => (200, j.clone()),
                                None => (503, String::new()),
                            }
                        } else if let Some(subject) = path.strip_prefix("/consent/") {
                            match s.tokens.get(subject) {
                                Some(t) => (200, t.clone()),
                                None => (404, String::new()),
                            }
                        } else {
                            (404, String::new())
                        };
                        let mut resp = Response::new(Full::new(Bytes::from(body)));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_key_source_keeps_last_good_keys_then_fails_closed_and_recovers() {
    let k = fresh_key(SigningAlgorithm::ES256, "http-k");
    let state = Arc::new(RwLock::new(Served {
        jwks: Some(jwks_of(&[&k])),
        ..Default::default()
    }));
    let addr = serve(Arc::clone(&state)).await;
    let mut cfg = ConsentConfig::new(
        ISS,
        AUD,
        KeySourceConfig {
            file: None,
            url: Some(format!("http://{addr}/jwks.json")),
            ..KeySourceConfig::file("unused")
        },
    );
    cfg.keys.refresh_interval = Duration::from_millis(200);
    cfg.keys.max_staleness = Duration::from_millis(1200);
    cfg.keys.unknown_kid_min_interval = Duration::from_millis(100);
    let service = ConsentService::start(&cfg).await.unwrap();
    let token = mint(&k, &claims("s"));
    service.verify_cached(&token).await.unwrap();

    // Source down: last good keys still used, within max staleness.
    state.write().await.jwks = None;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        service.verify_cached(&token).await.is_ok(),
        "last good keys kept"
    );
    assert!(service.verify_uncached(&token).await.is_ok());
    // Past max staleness: fail closed, cached or not.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        service.verify_cached(&token).await.unwrap_err(),
        ConsentError::KeysUnavailable
    );
    // Back up: works again after the next refresh.
    state.write().await.jwks = Some(jwks_of(&[&k]));
    let t0 = Instant::now();
    while service.verify_cached(&token).await.is_err() {
        assert!(t0.elapsed() < Duration::from_secs(5), "did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A new kid is fetched on demand (rate-limited), before the next interval.
    let k2 = fresh_key(SigningAlgorithm::EdDSA, "http-k2");
    state.write().await.jwks = Some(jwks_of(&[&k, &k2]));
    let mut slow = cfg.clone();
    slow.keys.refresh_interval = Duration::from_secs(3600);
    slow.keys.max_staleness = Duration::from_secs(3600);
    state.write().await.jwks = Some(jwks_of(&[&k]));
    let service = ConsentService::start(&slow).await.unwrap();
    state.write().await.jwks = Some(jwks_of(&[&k, &k2]));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        service
            .verify_cached(&mint(&k2, &claims("s")))
            .await
            .is_ok(),
        "unknown kid refetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_lookup_over_http_and_directory() {
    let k = fresh_key(SigningAlgorithm::EdDSA, "lk");
    let alice = mint(&k, &claims("alice"));
    let state = Arc::new(RwLock::new(Served {
        jwks: Some(jwks_of(&[&k])),
        ..Default::default()
    }));
    state
        .write()
        .await
        .tokens
        .insert("alice".into(), alice.clone());
    state
        .write()
        .await
        .tokens
        .insert("mallory".into(), alice.clone());
    state
        .write()
        .await
        .tokens
        .insert("garbage".into(), "not.a.token".into());
    let addr = serve(Arc::clone(&state)).await;
    let cfg = ConsentConfig::new(
        ISS,
        AUD,
        KeySourceConfig {
            file: None,
            url: Some(format!("http://{addr}/jwks.json")),
            ..KeySourceConfig::file("x")
        },
    );
    let service = ConsentService::start(&cfg).await.unwrap();
    let lookup =
        HttpConsentLookup::new(&format!("http://{addr}/consent"), Duration::from_secs(2)).unwrap();
    let grant = service.grant_for_subject("alice", &lookup).await.unwrap();
    assert!(grant.grant().permits_purpose("personalize"));
    assert_eq!(
        service.grant_for_subject("bob", &lookup).await.unwrap_err(),
        ConsentError::NoConsent
    );
    assert_eq!(
        service
            .grant_for_subject("mallory", &lookup)
            .await
            .unwrap_err(),
        ConsentError::SubjectMismatch
    );
    assert_eq!(
        service
            .grant_for_subject("garbage", &lookup)
            .await
            .unwrap_err(),
        ConsentError::Malformed
    );
    let down =
        HttpConsentLookup::new("http://127.0.0.1:9/consent", Duration::from_millis(500)).unwrap();
    assert_eq!(
        service.grant_for_subject("alice", &down).await.unwrap_err(),
        ConsentError::LookupUnavailable
    );

    let dir = temp_dir("lookup");
    std::fs::write(dir.join("alice.jwt"), format!("{alice}\n")).unwrap();
    let files = DirectoryConsentLookup::new(&dir);
    assert!(service.grant_for_subject("alice", &files).await.is_ok());
    assert_eq!(
        service
            .grant_for_subject("../alice", &files)
            .await
            .unwrap_err(),
        ConsentError::NoConsent
    );
    assert_eq!(
        service
            .grant_for_subject("carol", &files)
            .await
            .unwrap_err(),
        ConsentError::NoConsent
    );
}

#[test]
fn yaml_configuration_shape() {
    let yaml = r#"
issuer: https://cmp.example
audience: discreet
algorithms: [ES256, EdDSA]
leeway: 30s
max_token_bytes: 8192
keys:
  url: https://cmp.example/.well-known/jwks.json
  refresh_interval: 5m
  unknown_kid_min_interval: 10s
  max_staleness: 1h
revocation:
  file: /var/run/discreet/revocations.json
  poll_interval: 250ms
  max_staleness: 60s
cache:
  verified_tokens: 100000
  max_ttl: 10m
"#;
    let cfg: ConsentConfig = serde_saphyr::from_str(yaml).unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        cfg.revocation.unwrap().poll_interval,
        Duration::from_millis(250)
    );
    let typo = yaml.replace("max_token_bytes", "max_token_byte");
    assert!(serde_saphyr::from_str::<ConsentConfig>(&typo).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hit_still_honours_expiry() {
    let dir = temp_dir("expiry");
    let k = fresh_key(SigningAlgorithm::EdDSA, "k");
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&k]));
    write_atomic(&dir.join("revocations.json"), "{}");
    let mut cfg = config_with_files(&dir);
    cfg.leeway = Duration::ZERO;
    cfg.cache.max_ttl = Duration::from_secs(3600);
    let service = ConsentService::start(&cfg).await.unwrap();
    let mut c = claims("s");
    c.exp = now() + 2;
    let token = mint(&k, &c);
    service.verify_cached(&token).await.unwrap();
    service.verify_cached(&token).await.unwrap(); // served from the cache
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        service.verify_cached(&token).await.unwrap_err(),
        ConsentError::Expired
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_service_names_service_accounts() {
    let dir = temp_dir("caller");
    let k = fresh_key(SigningAlgorithm::ES256, "sa-key");
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&k]));
    let cfg: discreet_consent::CallerConfig = serde_saphyr::from_str(&format!(
        "issuer: https://kubernetes.default.svc\naudience: discreet\nkeys:\n  file: {}\n",
        dir.join("jwks.json").display()
    ))
    .unwrap();
    let service = discreet_consent::CallerService::start(&cfg).await.unwrap();
    let t = now();
    let payload = serde_json::json!({"iss": "https://kubernetes.default.svc", "aud": ["discreet"],
        "exp": t + 600, "iat": t, "sub": "system:serviceaccount:shop:recommender"});
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some("sa-key".into());
    let token = jsonwebtoken::encode(
        &h,
        &payload,
        &jsonwebtoken::EncodingKey::from_ec_pem(k.pem.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        service.authenticate(&token).await.unwrap().name,
        "shop/recommender"
    );
    assert_eq!(
        service.authenticate("x.y.z").await.unwrap_err(),
        ConsentError::Malformed
    );
}

/// A service-account token signed by `k`, for `shop/recommender`, expiring at `exp`.
fn caller_token(k: &TestKey, exp: u64) -> String {
    let payload = serde_json::json!({"iss": "https://kubernetes.default.svc", "aud": ["discreet"],
        "exp": exp, "iat": now(), "sub": "system:serviceaccount:shop:recommender"});
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    h.kid = Some(k.kid.clone());
    jsonwebtoken::encode(
        &h,
        &payload,
        &jsonwebtoken::EncodingKey::from_ec_pem(k.pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Caller verifications are cached (the same projected token comes on every call), but a
/// cached verification never outlives the token's `exp` nor the signing key's removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_cache_honours_expiry_and_key_removal() {
    let dir = temp_dir("caller-cache");
    let k = fresh_key(SigningAlgorithm::ES256, "sa-key");
    let other = fresh_key(SigningAlgorithm::ES256, "sa-key-2");
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&k]));
    let cfg: discreet_consent::CallerConfig = serde_saphyr::from_str(&format!(
        "issuer: https://kubernetes.default.svc\naudience: discreet\nleeway: 0s\nkeys:\n  file: {}\n",
        dir.join("jwks.json").display()
    ))
    .unwrap();
    let service = discreet_consent::CallerService::start(&cfg).await.unwrap();

    // Expiry: accepted twice (the second from the cache), refused once `exp` passes.
    let short = caller_token(&k, now() + 2);
    for _ in 0..2 {
        assert_eq!(
            &*service.authenticate_name(&short).await.unwrap(),
            "shop/recommender"
        );
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        service.authenticate_name(&short).await.unwrap_err(),
        ConsentError::Expired
    );

    // Key removal: a cached token is refused once its key leaves the JWKS.
    let long = caller_token(&k, now() + 600);
    service.authenticate_name(&long).await.unwrap();
    service.authenticate_name(&long).await.unwrap();
    write_atomic(&dir.join("jwks.json"), &jwks_of(&[&other]));
    let t0 = Instant::now();
    loop {
        match service.authenticate_name(&long).await {
            Ok(_) => assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the removed key's token is still accepted"
            ),
            Err(e) => {
                assert_eq!(e, ConsentError::UnknownKey);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And stays refused: the stale entry is gone, not merely skipped once.
    assert_eq!(
        service.authenticate_name(&long).await.unwrap_err(),
        ConsentError::UnknownKey
    );
    let fresh = caller_token(&other, now() + 600);
    assert_eq!(
        &*service.authenticate_name(&fresh).await.unwrap(),
        "shop/recommender"
    );
}
