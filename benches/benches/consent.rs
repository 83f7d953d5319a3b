//! Consent verification: cold (signature checked, cache bypassed) against a cache hit, per
//! algorithm, in one run so the ratios can be read directly. "pure" is the I/O-free
//! verifier alone (no runtime, no revocation lookup), the floor for "cold".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use discreet_consent::dev::{MintClaims, generate_keys, mint_token};
use discreet_consent::{
    ConsentConfig, ConsentService, ConsentVerifier, KeySet, KeySourceConfig,
    RevocationSourceConfig, SigningAlgorithm,
};

fn bench_consent(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("discreet-consent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for alg in [
        SigningAlgorithm::RS256,
        SigningAlgorithm::PS256,
        SigningAlgorithm::ES256,
        SigningAlgorithm::EdDSA,
    ] {
        let kid = format!("bench-{alg}");
        let (pem, jwks) = generate_keys(alg, &kid).unwrap();
        let jwks_path = dir.join(format!("{alg}-jwks.json"));
        let revocations = dir.join(format!("{alg}-revocations.json"));
        std::fs::write(&jwks_path, &jwks).unwrap();
        // A realistic list: the hit path looks the jti up in it.
        let revoked: Vec<String> = (0..1000).map(|i| format!("\"revoked-{i}\"")).collect();
        std::fs::write(
            &revocations,
            format!("{{\"revoked_jti\": [{}]}}", revoked.join(",")),
        )
        .unwrap();
        let mut cfg = ConsentConfig::new(
            "https://cmp.example",
            "discreet",
            KeySourceConfig::file(&jwks_path),
        );
        cfg.algorithms = SigningAlgorithm::ALL.to_vec();
        cfg.revocation = Some(RevocationSourceConfig::file(&revocations));
        let service = rt.block_on(ConsentService::start(&cfg)).unwrap();
        let mut claims = MintClaims::new(
            "https://cmp.example",
            "discreet",
            "subject-1234",
            &["personalize", "marketing.communications.email"],
            Duration::from_secs(3600),
        );
        claims.special_categories = vec!["user.health".into()];
        claims.consent_version = Some(3);
        let token = mint_token(&pem, &kid, alg, &claims).unwrap();
        rt.block_on(service.verify_cached(&token)).unwrap();
        let keys = KeySet::from_jwks(jwks.as_bytes(), &SigningAlgorithm::ALL).unwrap();
        let verifier = ConsentVerifier::new(cfg.token_rules());
        let now = discreet_consent::unix_now();

        let mut group = c.benchmark_group(format!("consent/{alg}"));
        group.bench_function("pure", |b| {
            b.iter(|| verifier.verify(black_box(&token), &keys, now).unwrap())
        });
        group.bench_function("cold", |b| {
            b.iter(|| {
                rt.block_on(service.verify_uncached(black_box(&token)))
                    .unwrap()
            })
        });
        group.bench_function("cached", |b| {
            b.iter(|| {
                rt.block_on(service.verify_cached(black_box(&token)))
                    .unwrap()
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench_consent
}
criterion_main!(benches);
