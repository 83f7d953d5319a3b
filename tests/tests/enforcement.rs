//! What each purpose receives, through the real gateway and the real store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{PURPOSES, assert_refused, caller_for, get, get_with, meta, raw};
use discreet_policy::{ConsentGrant, Policy, PurposePlan, RecordOutcome};
use discreet_proto::profile::v1::{BatchGetProfilesRequest, Profile, StreamProfilesRequest};
use discreet_redact::RewriteReport;
use discreet_schema::Schema;
use discreet_testkit::{Harness, PERSONAS, REFERENCE_NOW};
use prost::Message;
use tonic::Code;

/// Every purpose of `config/policy.yaml`, for every persona: the gateway's answer is
/// exactly the policy's plan applied to the store's record (or the same refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_purpose_gets_exactly_what_the_policy_gives() {
    let h = Harness::start().await.unwrap();
    let schema = Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET).unwrap();
    let text = std::fs::read_to_string(h.policy_path()).unwrap();
    let policy = Policy::parse(&h.policy_path(), &text, &schema).unwrap();
    let secret = discreet_config::load_pseudonym_secret(&h.config.pseudonym.secret_file).unwrap();
    let mut compared = 0;
    for (purpose, _) in PURPOSES {
        let grant = ConsentGrant {
            purposes: [purpose.to_owned()].into(),
            special_categories: Default::default(),
        };
        let plan = PurposePlan::compile(
            &policy,
            &schema,
            "profile.v1.Profile",
            purpose,
            &grant,
            &secret,
        )
        .unwrap();
        for persona in PERSONAS {
            let record = raw(&h, persona.subject_id).await.encode_to_vec();
            let mut expected = Vec::new();
            let outcome = plan
                .apply(
                    &record,
                    REFERENCE_NOW,
                    &mut expected,
                    &mut RewriteReport::default(),
                )
                .unwrap();
            let got = get(&h, persona.subject_id, purpose).await;
            match outcome {
                RecordOutcome::Released => {
                    let got = got
                        .unwrap_or_else(|s| panic!("{purpose} / {}: {s:?}", persona.subject_id))
                        .into_inner();
                    assert_eq!(
                        got,
                        Profile::decode(&expected[..]).unwrap(),
                        "{purpose} / {}",
                        persona.subject_id
                    );
                    compared += 1;
                }
                RecordOutcome::Refused(_) => {
                    assert_refused(got, Code::PermissionDenied);
                }
            }
        }
    }
    assert!(compared >= 20, "only {compared} releases compared");
    h.shutdown().await;
}

/// The same facts, stated independently of the policy engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purposes_differ_as_the_policy_says() {
    let h = Harness::start().await.unwrap();
    let original = raw(&h, "persona-eu").await;
    let marketing = get(&h, "persona-eu", "marketing.communications.email")
        .await
        .unwrap();
    assert_eq!(meta(&marketing, "x-discreet-decision"), "partial");
    assert!(!meta(&marketing, "x-discreet-decision-id").is_empty());
    assert!(meta(&marketing, "x-discreet-withheld-fields").contains("inferences"));
    let m = marketing.into_inner();
    assert_eq!(
        m.contact.as_ref().unwrap().email,
        original.contact.as_ref().unwrap().email
    );
    assert!(
        m.name.as_ref().unwrap().last.is_empty(),
        "last name is not for marketing"
    );
    assert!(m.inferences.is_none(), "marketing denies inferred data");
    assert!(m.orders.is_empty());
    assert_eq!(m.subject_id.len(), 32, "pseudonym expected");

    let p = get(&h, "persona-eu", "personalize")
        .await
        .unwrap()
        .into_inner();
    assert!(
        p.contact.is_none(),
        "no contact details for personalisation"
    );
    assert_eq!(
        p.demographics.unwrap().birth_date,
        "35-44",
        "age band, not the date"
    );
    assert_ne!(
        p.subject_id, m.subject_id,
        "pseudonyms are keyed per purpose"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_is_refused_for_marketing() {
    let h = Harness::start().await.unwrap();
    let s = assert_refused(
        get(&h, "persona-minor", "marketing.communications.email").await,
        Code::PermissionDenied,
    );
    assert!(s.message().contains("minimum age"), "{}", s.message());
    assert!(
        !s.metadata()
            .get("x-discreet-decision-id")
            .unwrap()
            .is_empty()
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_data_is_withheld() {
    let h = Harness::start().await.unwrap();
    let fresh = get(&h, "persona-eu", "personalize")
        .await
        .unwrap()
        .into_inner();
    assert!(
        !fresh.inferences.unwrap().interests.is_empty(),
        "control: fresh interests are released"
    );
    let stale = get(&h, "persona-stale", "personalize").await.unwrap();
    assert!(meta(&stale, "x-discreet-withheld-fields").contains("inferences.interests"));
    let inferences = stale.into_inner().inferences.unwrap_or_default();
    assert!(inferences.interests.is_empty() && inferences.life_events.is_empty());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inferred_special_data_never_reaches_marketing() {
    let h = Harness::start().await.unwrap();
    assert!(
        raw(&h, "persona-pregnancy")
            .await
            .inferences
            .unwrap()
            .pregnancy_likelihood
            > 0.5
    );
    // Even a consent that names the special category does not open it to marketing.
    let (consent, _) = h
        .keys
        .consent_token(
            "persona-pregnancy",
            &["marketing.communications.email", "personalize"],
            &["user.health.reproductive_or_sexual"],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    for purpose in ["marketing.communications.email", "personalize"] {
        let p = get_with(
            &h,
            "persona-pregnancy",
            purpose,
            std::slice::from_ref(&consent),
        )
        .await
        .unwrap()
        .into_inner();
        assert_eq!(
            p.inferences.unwrap_or_default().pregnancy_likelihood,
            0.0,
            "{purpose}"
        );
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_withholds_subjects_without_consent() {
    let h = Harness::start().await.unwrap();
    let mut client = h.client().await.unwrap();
    let purpose = "personalize";
    let consents = vec![
        h.consent("persona-eu", &[purpose]).unwrap(),
        h.consent("u-000001", &[purpose]).unwrap(),
    ];
    let request = BatchGetProfilesRequest {
        subject_ids: vec![
            "persona-eu".into(),
            "persona-california".into(),
            "u-000001".into(),
        ],
    };
    let r = client
        .batch_get_profiles(
            h.request(request, caller_for(purpose), purpose, &consents)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(meta(&r, "x-discreet-withheld-records"), "1");
    let profiles = r.into_inner().profiles;
    assert_eq!(profiles.len(), 2);
    assert!(
        profiles
            .iter()
            .all(|p| p.subject_id.len() == 32 && p.contact.is_none())
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_rewritten_record_by_record() {
    let h = Harness::start().await.unwrap();
    let mut client = h.client().await.unwrap();
    let purpose = "analytics.reporting"; // legitimate interests: no consent token needed
    let request = h
        .request(
            StreamProfilesRequest {
                segment: "all".into(),
                limit: 0,
            },
            caller_for(purpose),
            purpose,
            &[],
        )
        .unwrap();
    let mut stream = client.stream_profiles(request).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(p) = stream.message().await.unwrap() {
        assert_eq!(p.subject_id.len(), 32, "pseudonymised");
        assert!(p.contact.as_ref().is_none_or(|c| c.email.is_empty()));
        n += 1;
    }
    assert_eq!(n, 300 + PERSONAS.len());
    let trailers = stream.trailers().await.unwrap().unwrap();
    assert_eq!(trailers.get("x-discreet-withheld-records").unwrap(), "0");

    // Consent-based purpose, consent for one subject only: the others are withheld.
    let purpose = "personalize";
    let consent = h.consent("persona-eu", &[purpose]).unwrap();
    let request = h
        .request(
            StreamProfilesRequest {
                segment: "eu".into(),
                limit: 0,
            },
            caller_for(purpose),
            purpose,
            &[consent],
        )
        .unwrap();
    let mut stream = client.stream_profiles(request).await.unwrap().into_inner();
    let mut released = 0;
    while stream.message().await.unwrap().is_some() {
        released += 1;
    }
    assert_eq!(released, 1);
    let withheld: u64 = stream
        .trailers()
        .await
        .unwrap()
        .unwrap()
        .get("x-discreet-withheld-records")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(withheld > 10, "{withheld}");
    h.shutdown().await;
}

/// A special category is released only under a token that names both the category and
/// this purpose; analytics needs no consent for the rest of the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_categories_need_a_grant_for_this_purpose() {
    let h = Harness::start().await.unwrap();
    let subject = "persona-ethnicity";
    let purpose = "analytics.reporting";
    let ethnicity = "user.demographic.race_ethnicity";
    let token = |purposes: &[&str], special: &[&str]| {
        h.keys
            .consent_token(
                subject,
                purposes,
                special,
                std::time::Duration::from_secs(60),
            )
            .unwrap()
            .0
    };
    let ethnicity_of = |p: Profile| p.demographics.unwrap_or_default().ethnicity;
    let none = get_with(&h, subject, purpose, &[])
        .await
        .unwrap()
        .into_inner();
    assert!(
        ethnicity_of(none).is_empty(),
        "no token: no special category"
    );
    let other_purpose = get_with(
        &h,
        subject,
        purpose,
        &[token(&["personalize"], &[ethnicity])],
    )
    .await
    .unwrap()
    .into_inner();
    assert!(
        ethnicity_of(other_purpose).is_empty(),
        "granted for another purpose only"
    );
    let granted = get_with(&h, subject, purpose, &[token(&[purpose], &[ethnicity])])
        .await
        .unwrap()
        .into_inner();
    assert!(
        !ethnicity_of(granted).is_empty(),
        "granted for this purpose"
    );
    h.shutdown().await;
}

/// A write: caller, purpose and the subject's consent are checked, the payload reaches the
/// store unchanged, and the store's answer is enforced like a read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_checked_and_its_answer_enforced() {
    use discreet_proto::profile::v1::UpdateProfileRequest;
    let h = Harness::start().await.unwrap();
    let mut client = h.client().await.unwrap();
    let mut profile = raw(&h, "persona-eu").await;
    profile.username = "radia-renamed".into();

    // Without consent for a consent-based purpose: refused, the store untouched.
    let purpose = "personalize";
    let request = h
        .request(
            UpdateProfileRequest {
                profile: Some(profile.clone()),
            },
            caller_for(purpose),
            purpose,
            &[],
        )
        .unwrap();
    assert_refused(client.update_profile(request).await, Code::PermissionDenied);
    assert_ne!(raw(&h, "persona-eu").await.username, "radia-renamed");

    // Support (contract basis) may write; its answer is minimised by the support plan.
    let purpose = "essential.service.operations.support";
    let request = h
        .request(
            UpdateProfileRequest {
                profile: Some(profile),
            },
            caller_for(purpose),
            purpose,
            &[],
        )
        .unwrap();
    let answer = client.update_profile(request).await.unwrap().into_inner();
    assert_eq!(answer.username, "radia-renamed");
    let inferences = answer.inferences.clone().unwrap_or_default();
    assert!(
        inferences.interests.is_empty()
            && answer.national_id.is_empty()
            && answer.search_terms.is_empty(),
        "the answer is enforced"
    );
    assert_eq!(
        raw(&h, "persona-eu").await.username,
        "radia-renamed",
        "the write reached the store"
    );
    h.shutdown().await;
}
