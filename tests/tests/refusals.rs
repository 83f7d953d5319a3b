//! Everything that must fail, fails closed, with the right status and no message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::time::{Duration, Instant};

use common::{assert_refused, caller_for, get, get_with};
use discreet_consent::keyring::DevKeyring;
use discreet_proto::profile::v1::{GetProfileRequest, Profile};
use discreet_testkit::{Harness, TempDir};
use tonic::{Code, codegen::http::uri::PathAndQuery, transport::Channel};

const SUBJECT: &str = "persona-eu";
const PURPOSE: &str = "personalize";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_problems_release_nothing() {
    let h = Harness::start().await.unwrap();
    // No consent token at all.
    assert_refused(
        get_with(&h, SUBJECT, PURPOSE, &[]).await,
        Code::PermissionDenied,
    );
    // A token for another subject.
    let other = h.consent("u-000001", &[PURPOSE]).unwrap();
    assert_refused(
        get_with(&h, SUBJECT, PURPOSE, &[other]).await,
        Code::PermissionDenied,
    );
    // A token for another purpose.
    let wrong = h
        .consent(SUBJECT, &["marketing.communications.email"])
        .unwrap();
    assert_refused(
        get_with(&h, SUBJECT, PURPOSE, &[wrong]).await,
        Code::PermissionDenied,
    );
    // Expired.
    let expired = h
        .keys
        .expired_consent_token(SUBJECT, &[PURPOSE], Duration::from_secs(600))
        .unwrap();
    assert_refused(
        get_with(&h, SUBJECT, PURPOSE, &[expired]).await,
        Code::Unauthenticated,
    );
    // Signed by a key the gateway does not trust.
    let stranger_dir = TempDir::new("stranger").unwrap();
    let stranger = DevKeyring::open_or_create(stranger_dir.path()).unwrap();
    let (forged, _) = stranger
        .consent_token(SUBJECT, &[PURPOSE], &[], Duration::from_secs(60))
        .unwrap();
    assert_refused(
        get_with(&h, SUBJECT, PURPOSE, &[forged]).await,
        Code::Unauthenticated,
    );
    // Garbage.
    assert_refused(
        get_with(&h, SUBJECT, PURPOSE, &["not.a.jwt".into()]).await,
        Code::Unauthenticated,
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_within_seconds() {
    let h = Harness::start().await.unwrap();
    let (token, jti) = h
        .keys
        .consent_token(SUBJECT, &[PURPOSE], &[], Duration::from_secs(600))
        .unwrap();
    get_with(&h, SUBJECT, PURPOSE, std::slice::from_ref(&token))
        .await
        .unwrap();
    h.keys.revoke(&[jti].into()).unwrap();
    let start = Instant::now();
    loop {
        match get_with(&h, SUBJECT, PURPOSE, std::slice::from_ref(&token)).await {
            Err(s) if s.code() == Code::PermissionDenied => break,
            Err(s) => panic!("unexpected {s:?}"),
            Ok(_) => assert!(
                start.elapsed() < Duration::from_secs(5),
                "revocation not enforced after 5s"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_and_purposes_are_checked() {
    let h = Harness::start().await.unwrap();
    let mut client = h.client().await.unwrap();
    let consent = h.consent(SUBJECT, &[PURPOSE]).unwrap();
    // A caller the policy does not allow for the purpose.
    let r = h
        .request(
            GetProfileRequest {
                subject_id: SUBJECT.into(),
            },
            "marketing/mailer",
            PURPOSE,
            std::slice::from_ref(&consent),
        )
        .unwrap();
    assert_refused(client.get_profile(r).await, Code::PermissionDenied);
    // No caller token.
    let mut r = h
        .request(
            GetProfileRequest {
                subject_id: SUBJECT.into(),
            },
            caller_for(PURPOSE),
            PURPOSE,
            std::slice::from_ref(&consent),
        )
        .unwrap();
    r.metadata_mut().remove("authorization");
    assert_refused(client.get_profile(r).await, Code::Unauthenticated);
    // A purpose the policy does not define; two purposes.
    for purpose in ["sell.to.brokers", "personalize,analytics.reporting"] {
        let mut r = h
            .request(
                GetProfileRequest {
                    subject_id: SUBJECT.into(),
                },
                caller_for(PURPOSE),
                PURPOSE,
                std::slice::from_ref(&consent),
            )
            .unwrap();
        r.metadata_mut()
            .insert("x-discreet-purpose", purpose.parse().unwrap());
        let s = client.get_profile(r).await.unwrap_err();
        assert!(
            matches!(s.code(), Code::PermissionDenied | Code::InvalidArgument),
            "{purpose}: {s:?}"
        );
    }
    let mut r = h
        .request(
            GetProfileRequest {
                subject_id: SUBJECT.into(),
            },
            caller_for(PURPOSE),
            PURPOSE,
            std::slice::from_ref(&consent),
        )
        .unwrap();
    r.metadata_mut().remove("x-discreet-purpose");
    assert_refused(client.get_profile(r).await, Code::InvalidArgument);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_is_refused() {
    let h = Harness::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    for path in [
        "/profile.v1.ProfileService/DeleteEverything",
        "/admin.v1.Admin/Dump",
        "/",
    ] {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let request = h
            .request(
                GetProfileRequest {
                    subject_id: SUBJECT.into(),
                },
                caller_for(PURPOSE),
                PURPOSE,
                &[h.consent(SUBJECT, &[PURPOSE]).unwrap()],
            )
            .unwrap();
        let result: Result<tonic::Response<Profile>, _> = grpc
            .unary(
                request,
                PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        assert_refused(result, Code::Unimplemented);
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_gives_unavailable() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Remote {
            address: format!("http://127.0.0.1:{port}"),
            connect_timeout: Duration::from_millis(500),
        };
    })
    .await
    .unwrap();
    assert_refused(get(&h, SUBJECT, PURPOSE).await, Code::Unavailable);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_answered_locally() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let h = Harness::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in ["", "profile.v1.ProfileService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_served_schema() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let h = Harness::start().await.unwrap();
    let channel = Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected {response:?}");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "profile.v1.ProfileService"),
        "{list:?}"
    );
    h.shutdown().await;
}
