//! Long streams stay bounded in memory; policy reloads land mid-traffic without failing
//! a call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{caller_for, get, meta};
use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, BatchGetProfilesResponse, GetProfileRequest, Profile,
    StreamProfilesRequest, UpdateProfileRequest,
    profile_service_server::{ProfileService, ProfileServiceServer},
};
use discreet_testkit::{Dataset, Harness};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

/// A store whose stream produces profiles only as fast as they are taken, and counts
/// them: how far it runs ahead of a stalled reader is what the gateway buffers.
#[derive(Clone)]
struct CountingStore {
    template: Profile,
    /// The metadata keys the store received.
    seen_metadata: Arc<std::sync::Mutex<Vec<String>>>,
    produced: Arc<AtomicU64>,
    total: u64,
}

#[tonic::async_trait]
impl ProfileService for CountingStore {
    async fn get_profile(
        &self,
        _: Request<GetProfileRequest>,
    ) -> Result<Response<Profile>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    async fn batch_get_profiles(
        &self,
        _: Request<BatchGetProfilesRequest>,
    ) -> Result<Response<BatchGetProfilesResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
    type StreamProfilesStream = Pin<Box<dyn Stream<Item = Result<Profile, Status>> + Send>>;
    async fn stream_profiles(
        &self,
        request: Request<StreamProfilesRequest>,
    ) -> Result<Response<Self::StreamProfilesStream>, Status> {
        *self.seen_metadata.lock().unwrap() = request
            .metadata()
            .keys()
            .map(|k| format!("{k:?}"))
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let store = self.clone();
        tokio::spawn(async move {
            for i in 0..store.total {
                let mut p = store.template.clone();
                p.subject_id = format!("s-{i:08}");
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
                store.produced.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
    async fn update_profile(
        &self,
        _: Request<UpdateProfileRequest>,
    ) -> Result<Response<Profile>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stream_is_bounded_by_the_reader() {
    const TOTAL: u64 = 20_000;
    let template = Dataset::generate(1)
        .profiles
        .get("u-000001")
        .unwrap()
        .clone();
    let produced = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = CountingStore {
        template,
        seen_metadata: Arc::clone(&seen),
        produced: Arc::clone(&produced),
        total: TOTAL,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ProfileServiceServer::new(store))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let h = Harness::start_with(|c| {
        c.upstream = discreet_config::Upstream::Remote {
            address: format!("http://{store_addr}"),
            connect_timeout: Duration::from_secs(2),
        };
    })
    .await
    .unwrap();
    // A reader that accepts 64 KiB in flight (tonic's default window is 2 MiB, which
    // would measure the client's buffer rather than the gateway's).
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.addr()))
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .connect()
        .await
        .unwrap();
    let mut client =
        discreet_proto::profile::v1::profile_service_client::ProfileServiceClient::new(channel);
    let purpose = "analytics.reporting";
    let mut request = h
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
    // Tokens and cookies stay at the gateway; trace context goes through.
    let consent = h.consent("s-00000001", &[purpose]).unwrap();
    let md = request.metadata_mut();
    md.insert("x-discreet-consent", consent.parse().unwrap());
    md.insert("cookie", "session=secret".parse().unwrap());
    md.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    let mut stream = client.stream_profiles(request).await.unwrap().into_inner();
    for _ in 0..10 {
        stream.message().await.unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    for secret in ["authorization", "x-discreet-consent", "cookie"] {
        assert!(
            !seen.iter().any(|k| k.contains(secret)),
            "{secret} reached the store: {seen:?}"
        );
    }
    assert!(seen.iter().any(|k| k.contains("traceparent")), "{seen:?}");
    // The reader stalls. The store may run ahead only by what flow control lets through:
    // the reader's 64 KiB window, the gateway's 128 KiB send buffer and 256 KiB upstream
    // window, and the store's own 400 KiB send buffer: about 850 profiles of ~1 KiB,
    // however long the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ahead = produced.load(Ordering::SeqCst);
    assert!(
        ahead < 1_500,
        "the store ran {ahead} of {TOTAL} profiles ahead of a stalled reader"
    );
    let mut n = 10;
    while let Some(p) = stream.message().await.unwrap() {
        assert_eq!(p.subject_id.len(), 32);
        n += 1;
    }
    assert_eq!(n, TOTAL);
    eprintln!("a stalled reader let the store run {ahead} profiles ahead (of {TOTAL})");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_lands_mid_traffic_without_failed_calls() {
    let h = Arc::new(Harness::start().await.unwrap());
    let purpose = "personalize";
    let before = get(&h, "persona-eu", purpose).await.unwrap();
    assert_eq!(meta(&before, "x-discreet-policy-version"), "2026-11-23.1");
    assert!(!before.into_inner().name.unwrap().last.is_empty());

    // Traffic runs throughout.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (h, stop) = (Arc::clone(&h), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut calls = 0u32;
            while !stop.load(Ordering::SeqCst) {
                get(&h, "persona-eu", purpose)
                    .await
                    .expect("a call failed during reload");
                calls += 1;
            }
            calls
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A valid new version: personalisation loses the name.
    let text = std::fs::read_to_string(h.policy_path()).unwrap();
    let next = text
        .replace("version: \"2026-11-23.1\"", "version: \"2026-11-23.2\"")
        .replacen(
            "- { category: user.name, action: keep }",
            "- { category: user.name, action: drop }",
            1,
        );
    assert_ne!(next, text);
    std::fs::write(h.policy_path(), &next).unwrap();
    let start = Instant::now();
    loop {
        let r = get(&h, "persona-eu", purpose).await.unwrap();
        if meta(&r, "x-discreet-policy-version") == "2026-11-23.2" {
            assert!(r.into_inner().name.is_none(), "new policy applied");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "reload not seen after 5s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A changed policy under the same version is applied (refusing it would leave this
    // replica on the old rules while a restarted one loads the new file), and the version
    // metric's digest shows that the file under that version changed.
    let digest_of = |metrics: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("discreet_policy_version{version=\"2026-11-23.2\",digest=\"")
                    .and_then(|rest| rest.split_once('"'))
                    .map(|(digest, _)| digest.to_owned())
            })
            .unwrap_or_default()
    };
    let metrics_addr = h.metrics_addr().unwrap();
    let before = digest_of(&common::http_get(metrics_addr, "/metrics").await);
    assert_eq!(before.len(), 12, "{before:?}");
    let same_version = next.replacen(
        "- { category: user.name, action: drop }",
        "- { category: user.name, action: keep }",
        1,
    );
    assert_ne!(same_version, next);
    std::fs::write(h.policy_path(), &same_version).unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), async || {
            let now = digest_of(&common::http_get(metrics_addr, "/metrics").await);
            !now.is_empty() && now != before
        })
        .await,
        "the same-version change was not applied"
    );
    let r = get(&h, "persona-eu", purpose).await.unwrap();
    assert_eq!(meta(&r, "x-discreet-policy-version"), "2026-11-23.2");
    assert!(r.into_inner().name.is_some(), "the changed rules apply");

    // An invalid version is rejected; the last good one stays.
    std::fs::write(
        h.policy_path(),
        "version: 3\npurposes: [this is not a policy",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = get(&h, "persona-eu", purpose).await.unwrap();
    assert_eq!(meta(&r, "x-discreet-policy-version"), "2026-11-23.2");

    stop.store(true, Ordering::SeqCst);
    let calls = traffic.await.unwrap();
    assert!(calls > 10, "only {calls} calls ran during the reloads");
    Arc::try_unwrap(h).unwrap().shutdown().await;
}
