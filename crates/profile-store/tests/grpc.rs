//! The store over a real socket with a real tonic client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, GetProfileRequest, Profile, StreamProfilesRequest,
    UpdateProfileRequest, profile_service_client::ProfileServiceClient,
};
use profile_store::{Dataset, ProfileStore, serve};
use tonic::Code;

async fn start(count: usize) -> ProfileServiceClient<tonic::transport::Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        ProfileStore::new(Dataset::generate(count)),
        listener,
        std::future::pending(),
    ));
    ProfileServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn reads_batches_streams_and_writes() {
    let mut client = start(3000).await;
    let minor = client
        .get_profile(GetProfileRequest {
            subject_id: "persona-minor".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(minor.demographics.unwrap().birth_date, "2011-05-20");
    let missing = client
        .get_profile(GetProfileRequest {
            subject_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let batch = BatchGetProfilesRequest {
        subject_ids: vec!["u-000001".into(), "nobody".into(), "persona-eu".into()],
    };
    let got = client
        .batch_get_profiles(batch)
        .await
        .unwrap()
        .into_inner()
        .profiles;
    assert_eq!(
        got.iter()
            .map(|p| p.subject_id.as_str())
            .collect::<Vec<_>>(),
        ["u-000001", "persona-eu"]
    );

    let mut stream = client
        .stream_profiles(StreamProfilesRequest {
            segment: "all".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(p) = stream.message().await.unwrap() {
        assert!(!p.subject_id.is_empty());
        n += 1;
    }
    assert_eq!(n, 3006);

    let mut changed: Profile = client
        .get_profile(GetProfileRequest {
            subject_id: "u-000002".into(),
        })
        .await
        .unwrap()
        .into_inner();
    changed.username = "renamed".into();
    client
        .update_profile(UpdateProfileRequest {
            profile: Some(changed),
        })
        .await
        .unwrap();
    let after = client
        .get_profile(GetProfileRequest {
            subject_id: "u-000002".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.username, "renamed");
}
