//! The pure verifier against real keys and hand-crafted malicious tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use discreet_consent::{
    CallerVerifier, ConsentError, ConsentVerifier, RevocationList, SigningAlgorithm, TokenRules,
};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// Every algorithm the verifier supports: each is accepted when genuine and refused when
/// tampered with in every way the tests below know.
const ALGS: [SigningAlgorithm; 9] = SigningAlgorithm::ALL;

fn rules() -> TokenRules {
    TokenRules {
        issuer: ISS.into(),
        audience: AUD.into(),
        algorithms: ALGS.to_vec(),
        leeway_secs: 30,
        max_token_bytes: 8192,
    }
}

fn verifier() -> ConsentVerifier {
    ConsentVerifier::new(rules())
}

/// Header and payload of a genuine token, decoded, for tampering.
fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
    let mut it = token.split('.');
    let h = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let p = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&h).unwrap(),
        serde_json::from_slice(&p).unwrap(),
        it.next().unwrap().to_owned(),
    )
}

/// Signs an arbitrary JSON payload with a test key.
fn sign_json(k: &TestKey, payload: &serde_json::Value) -> String {
    let mut h = jsonwebtoken::Header::new(k.alg.as_str().parse().unwrap());
    h.kid = Some(k.kid.clone());
    let key = match k.alg {
        SigningAlgorithm::ES256 | SigningAlgorithm::ES384 => {
            jsonwebtoken::EncodingKey::from_ec_pem(k.pem.as_bytes())
        }
        SigningAlgorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(k.pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(k.pem.as_bytes()),
    }
    .unwrap();
    jsonwebtoken::encode(&h, payload, &key).unwrap()
}

fn refused(token: &str, keys: &discreet_consent::KeySet) -> ConsentError {
    verifier().verify(token, keys, now()).unwrap_err()
}

#[test]
fn valid_tokens_are_accepted_for_each_algorithm() {
    for alg in ALGS {
        let k = key(alg);
        let keys = keyset(&[&k]);
        let mut c = claims("subject-1");
        c.special_categories = vec!["user.health".into()];
        c.consent_version = Some(4);
        let v = verifier().verify(&mint(&k, &c), &keys, now()).unwrap();
        assert_eq!(v.subject, "subject-1", "{alg}");
        assert!(v.grant().permits_purpose("personalize"));
        assert!(v.grant().permits_special_category("user.health"));
        assert_eq!(v.consent_version, Some(4));
        assert_eq!(v.token_id, c.jti);
        assert_eq!(v.key_id, k.kid);
        // Debug output never shows the subject.
        assert!(!format!("{v:?}").contains("subject-1"));
    }
}

#[test]
fn malicious_and_invalid_tokens_are_refused_for_each_algorithm() {
    for alg in ALGS {
        let k = key(alg);
        let keys = keyset(&[&k]);
        let good = mint(&k, &claims("s"));
        let (header, payload, sig) = parts(&good);
        let sig_bytes = URL_SAFE_NO_PAD.decode(&sig).unwrap();
        let t = now();

        // alg: none, unsigned and "signed".
        let none = craft(json!({"alg": "none", "kid": k.kid}), payload.clone(), b"");
        assert_eq!(
            refused(&none, &keys),
            ConsentError::AlgorithmNotAllowed,
            "{alg} none"
        );
        let none = craft(
            json!({"alg": "none", "kid": k.kid}),
            payload.clone(),
            &sig_bytes,
        );
        assert_eq!(
            refused(&none, &keys),
            ConsentError::AlgorithmNotAllowed,
            "{alg} none+sig"
        );

        // Key confusion: HS256 keyed with the public key (the JWKS JSON and the raw key).
        for secret in [k.jwks.as_bytes().to_vec(), k.pem.as_bytes().to_vec()] {
            let h = json!({"alg": "HS256", "kid": k.kid, "typ": "JWT"});
            let signing_input = format!("{}.{}", b64json(&h), b64json(&payload));
            let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
            mac.update(signing_input.as_bytes());
            let forged = format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            );
            assert_eq!(
                refused(&forged, &keys),
                ConsentError::AlgorithmNotAllowed,
                "{alg} hs256"
            );
        }

        // Header alg that disagrees with the key's pinned algorithm.
        let other = if alg == SigningAlgorithm::ES256 {
            "EdDSA"
        } else {
            "ES256"
        };
        let mut h = header.clone();
        h["alg"] = other.into();
        let mismatched = craft(h, payload.clone(), &sig_bytes);
        assert_eq!(
            refused(&mismatched, &keys),
            ConsentError::AlgorithmNotAllowed,
            "{alg} mismatch"
        );

        // Unknown kid, and a kid naming a key set entry while the token embeds its own key.
        let mut h = header.clone();
        h["kid"] = "nope".into();
        assert_eq!(
            refused(&craft(h, payload.clone(), &sig_bytes), &keys),
            ConsentError::UnknownKey
        );
        let attacker = fresh_key(SigningAlgorithm::EdDSA, &k.kid);
        let mut ac = claims("s");
        ac.sub = "victim".into();
        let embedded = {
            let forged = mint(&attacker, &ac);
            let (mut h, p, s) = parts(&forged);
            h["jwk"] = serde_json::from_str::<serde_json::Value>(&attacker.jwks).unwrap()["keys"]
                [0]
            .clone();
            h["jku"] = "https://attacker.example/jwks".into();
            h["alg"] = alg.as_str().into();
            craft(h, p, &URL_SAFE_NO_PAD.decode(s).unwrap())
        };
        assert_eq!(
            refused(&embedded, &keys),
            ConsentError::BadSignature,
            "{alg} embedded jwk"
        );

        // Time: expired, not yet valid, issued in the future (each beyond the 30 s skew).
        let mut c = claims("s");
        c.exp = t - 31;
        c.iat = t - 600;
        c.nbf = t - 600;
        assert_eq!(
            refused(&mint(&k, &c), &keys),
            ConsentError::Expired,
            "{alg} exp"
        );
        let mut c = claims("s");
        c.exp = t - 10; // within skew: still accepted
        assert!(
            verifier().verify(&mint(&k, &c), &keys, t).is_ok(),
            "{alg} exp within skew"
        );
        let mut c = claims("s");
        c.nbf = t + 120;
        assert_eq!(
            refused(&mint(&k, &c), &keys),
            ConsentError::NotYetValid,
            "{alg} nbf"
        );
        let mut c = claims("s");
        c.iat = t + 120;
        assert_eq!(
            refused(&mint(&k, &c), &keys),
            ConsentError::NotYetValid,
            "{alg} iat"
        );
        let mut c = claims("s");
        c.nbf = t + 20; // within skew
        assert!(
            verifier().verify(&mint(&k, &c), &keys, t).is_ok(),
            "{alg} nbf within skew"
        );

        // Issuer, audience.
        let mut c = claims("s");
        c.iss = "https://evil.example".into();
        assert_eq!(refused(&mint(&k, &c), &keys), ConsentError::WrongIssuer);
        let mut c = claims("s");
        c.aud = "another-service".into();
        assert_eq!(refused(&mint(&k, &c), &keys), ConsentError::WrongAudience);

        // Missing claims, signed properly with this algorithm's key.
        for claim in ["sub", "exp", "iss", "aud", "jti", "purposes"] {
            let mut p = serde_json::to_value(claims("s")).unwrap();
            p.as_object_mut().unwrap().remove(claim);
            let err = verifier().verify(&sign_json(&k, &p), &keys, t).unwrap_err();
            let expected = match claim {
                "sub" => "sub",
                "exp" => "exp",
                "iss" => "iss",
                "aud" => "aud",
                "jti" => "jti",
                _ => "purposes",
            };
            assert_eq!(
                err,
                ConsentError::MissingClaim(expected),
                "{alg} missing {claim}"
            );
        }

        // Tampered payload (signature kept).
        let mut p = payload.clone();
        p["purposes"] = json!(["personalize", "marketing.communications.email"]);
        let tampered = format!(
            "{}.{}.{}",
            good.split('.').next().unwrap(),
            b64json(&p),
            sig
        );
        assert_eq!(
            refused(&tampered, &keys),
            ConsentError::BadSignature,
            "{alg} tampered"
        );

        // Stripped signature.
        let stripped = &good[..good.rfind('.').unwrap() + 1];
        assert_eq!(
            refused(stripped, &keys),
            ConsentError::BadSignature,
            "{alg} stripped"
        );

        // All-zero signature of the right length (for ECDSA, r = s = 0).
        let zeros = format!(
            "{}.{}",
            &good[..good.rfind('.').unwrap()],
            URL_SAFE_NO_PAD.encode(vec![0u8; sig_bytes.len()])
        );
        assert_eq!(
            refused(&zeros, &keys),
            ConsentError::BadSignature,
            "{alg} zero sig"
        );

        // Oversize: refused as TooLarge, even though it is otherwise genuine.
        let mut c = claims("s");
        c.purposes = (0..400).map(|i| format!("purpose.number.{i}")).collect();
        let big = mint(&k, &c);
        assert!(big.len() > 8192);
        assert_eq!(
            refused(&big, &keys),
            ConsentError::TooLarge,
            "{alg} oversize"
        );

        // Unknown crit extension.
        let mut h = header.clone();
        h["crit"] = json!(["http://example.com/ext"]);
        h["http://example.com/ext"] = json!(true);
        let crit = craft(h, payload.clone(), &sig_bytes);
        assert_eq!(
            refused(&crit, &keys),
            ConsentError::UnsupportedCritical,
            "{alg} crit"
        );
    }
}

#[test]
fn ecdsa_all_zero_signature_is_refused() {
    let k = key(SigningAlgorithm::ES256);
    let good = mint(&k, &claims("s"));
    let zero = format!(
        "{}.{}",
        &good[..good.rfind('.').unwrap()],
        URL_SAFE_NO_PAD.encode([0u8; 64])
    );
    assert_eq!(refused(&zero, &keyset(&[&k])), ConsentError::BadSignature);
}

#[test]
fn revoked_and_outdated_tokens_are_refused() {
    let k = key(SigningAlgorithm::ES256);
    let keys = keyset(&[&k]);
    let mut c = claims("subject-9");
    c.consent_version = Some(2);
    let v = verifier().verify(&mint(&k, &c), &keys, now()).unwrap();
    let list = RevocationList::from_json(
        json!({"revoked_jti": [c.jti.clone()]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(list.check(&v), Err(ConsentError::Revoked));
    let list = RevocationList::from_json(
        json!({"min_consent_version": {"subject-9": 3}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(list.check(&v), Err(ConsentError::Outdated));
}

#[test]
fn errors_never_echo_the_token_or_subject() {
    let k = key(SigningAlgorithm::EdDSA);
    let keys = keyset(&[&k]);
    let mut c = claims("very-secret-subject");
    c.iss = "wrong".into();
    let token = mint(&k, &c);
    let err = verifier().verify(&token, &keys, now()).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("very-secret-subject") && !msg.contains(&token[..20]));
}

#[test]
fn kubernetes_service_account_tokens_name_the_caller() {
    let k = key(SigningAlgorithm::ES256);
    let keys = keyset(&[&k]);
    let caller = CallerVerifier::new(TokenRules {
        issuer: "https://kubernetes.default.svc".into(),
        audience: "discreet".into(),
        ..rules()
    });
    let sign = |payload: serde_json::Value| sign_json(&k, &payload);
    let t = now();
    let base = json!({"iss": "https://kubernetes.default.svc", "aud": ["discreet"], "exp": t + 600, "iat": t, "nbf": t,
        "sub": "system:serviceaccount:shop:recommender"});
    let id = caller.verify(&sign(base.clone()), &keys, t).unwrap();
    assert_eq!(id.name, "shop/recommender");
    let mut with_claim = base.clone();
    with_claim["kubernetes.io"] =
        json!({"namespace": "ads", "serviceaccount": {"name": "bidder", "uid": "x"}});
    assert_eq!(
        caller.verify(&sign(with_claim), &keys, t).unwrap().name,
        "ads/bidder"
    );
    let mut wrong_aud = base.clone();
    wrong_aud["aud"] = json!(["https://kubernetes.default.svc"]);
    assert_eq!(
        caller.verify(&sign(wrong_aud), &keys, t).unwrap_err(),
        ConsentError::WrongAudience
    );
    let mut user = base;
    user["sub"] = "alice".into();
    assert_eq!(
        caller.verify(&sign(user), &keys, t).unwrap_err(),
        ConsentError::MissingClaim("kubernetes.io")
    );
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary strings and near-JWS shapes never panic, never verify, never echo.
        #[test]
        fn arbitrary_tokens_are_refused_without_echo(
            s in "\\PC{0,300}",
            a in "[A-Za-z0-9_-]{0,60}",
            b in "[A-Za-z0-9_-]{0,60}",
            c in "[A-Za-z0-9_-]{0,90}",
        ) {
            let keys = keyset(&[&key(SigningAlgorithm::EdDSA)]);
            for token in [s, format!("{a}.{b}.{c}"), format!("eyJhbGciOiJFZERTQSIsImtpZCI6ImVkZHNhLTEifQ.{b}.{c}")] {
                let err = verifier().verify(&token, &keys, now()).unwrap_err();
                prop_assert!(token.len() < 8 || !err.to_string().contains(&token));
            }
        }
    }
}

#[test]
fn ecdsa_signatures_in_der_form_are_refused() {
    use ring::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let curves: [(
        SigningAlgorithm,
        &EcdsaSigningAlgorithm,
        &EcdsaSigningAlgorithm,
        &str,
        usize,
    ); 2] = [
        (
            SigningAlgorithm::ES256,
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            "P-256",
            32,
        ),
        (
            SigningAlgorithm::ES384,
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            "P-384",
            48,
        ),
    ];
    for (alg, fixed, der, crv, n) in curves {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(fixed, &rng).unwrap();
        let pair = |form| EcdsaKeyPair::from_pkcs8(form, pkcs8.as_ref(), &rng).unwrap();
        let point = pair(fixed).public_key().as_ref().to_vec();
        let kid = format!("der-{alg}");
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": crv, "kid": kid, "alg": alg.as_str(), "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..=n]),
            "y": URL_SAFE_NO_PAD.encode(&point[n + 1..]),
        }]});
        let keys = discreet_consent::KeySet::from_jwks(jwks.to_string().as_bytes(), &ALGS).unwrap();
        let header = json!({"alg": alg.as_str(), "typ": "JWT", "kid": kid});
        let payload = serde_json::to_value(claims("s")).unwrap();
        let input = format!("{}.{}", b64json(&header), b64json(&payload));
        let sign = |form| pair(form).sign(&rng, input.as_bytes()).unwrap();
        // The same key and signing input: the JWS form (r || s, RFC 7518 3.4) verifies...
        let genuine = craft(header.clone(), payload.clone(), sign(fixed).as_ref());
        assert!(
            verifier().verify(&genuine, &keys, now()).is_ok(),
            "{alg} r || s"
        );
        // ...and the DER (ASN.1) encoding of a valid signature does not.
        let der_signed = craft(header, payload, sign(der).as_ref());
        assert_eq!(
            refused(&der_signed, &keys),
            ConsentError::BadSignature,
            "{alg} DER"
        );
    }
}
