#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use discreet_proto::profile::v1::GetProfileRequest;
use discreet_testkit::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let h = Harness::start().await.unwrap();
    let mut client = h.client().await.unwrap();
    let consent = h.consent("persona-eu", &["personalize"]).unwrap();
    let req = h
        .request(
            GetProfileRequest {
                subject_id: "persona-eu".into(),
            },
            "shop/recommender",
            "personalize",
            &[consent],
        )
        .unwrap();
    let resp = client.get_profile(req).await;
    println!("{resp:#?}");
    let p = resp.unwrap().into_inner();
    assert!(!p.subject_id.is_empty());
    h.shutdown().await;
}
