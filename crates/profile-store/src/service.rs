//! The gRPC service over a [`Dataset`].
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
};

use discreet_proto::profile::v1::{
    BatchGetProfilesRequest, BatchGetProfilesResponse, GetProfileRequest, Profile,
    StreamProfilesRequest, UpdateProfileRequest,
    profile_service_server::{ProfileService, ProfileServiceServer},
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use crate::Dataset;

/// How many profiles a stream may run ahead of its reader: streams stay bounded in
/// memory however large the segment.
const STREAM_BUFFER: usize = 16;
/// The most subjects one batch may name.
const MAX_BATCH: usize = 1000;

/// The store. Cheap to clone: clones share the data.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    data: Arc<RwLock<Dataset>>,
}

impl ProfileStore {
    #[must_use]
    pub fn new(data: Dataset) -> Self {
        ProfileStore {
            data: Arc::new(RwLock::new(data)),
        }
    }

    /// The tonic service.
    #[must_use]
    pub fn into_service(self) -> ProfileServiceServer<ProfileStore> {
        ProfileServiceServer::new(self)
    }

    fn read<T>(&self, f: impl FnOnce(&Dataset) -> T) -> Result<T, Status> {
        let guard = self
            .data
            .read()
            .map_err(|_| Status::internal("profile data is unavailable"))?;
        Ok(f(&guard))
    }
}

/// Serves `store` on `listener` until `shutdown` completes.
pub async fn serve(
    store: ProfileStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    // TCP_NODELAY, as any gRPC server sets it: without it a response's header, message
    // and trailer frames wait on Nagle's algorithm and the peer's delayed ACK (~40 ms per
    // call), which would make every client of the store look slow.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(store.into_service())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

fn in_segment(segment: &str, p: &Profile) -> bool {
    match segment {
        "" | "all" => true,
        "eu" => matches!(p.jurisdiction.as_str(), "DE" | "FR" | "NL"),
        "us" => p.jurisdiction.starts_with("US"),
        "loyal" => p.loyalty_points >= 10_000,
        _ => false,
    }
}

type ProfileStream = Pin<Box<dyn Stream<Item = Result<Profile, Status>> + Send>>;

#[tonic::async_trait]
impl ProfileService for ProfileStore {
    async fn get_profile(
        &self,
        request: Request<GetProfileRequest>,
    ) -> Result<Response<Profile>, Status> {
        let id = request.into_inner().subject_id;
        self.read(|d| d.profiles.get(&id).cloned())?
            .map(Response::new)
            .ok_or_else(|| Status::not_found("no profile for that subject"))
    }

    async fn batch_get_profiles(
        &self,
        request: Request<BatchGetProfilesRequest>,
    ) -> Result<Response<BatchGetProfilesResponse>, Status> {
        let ids = request.into_inner().subject_ids;
        if ids.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_BATCH} subjects per batch"
            )));
        }
        let profiles = self.read(|d| {
            ids.iter()
                .filter_map(|id| d.profiles.get(id).cloned())
                .collect()
        })?;
        Ok(Response::new(BatchGetProfilesResponse { profiles }))
    }

    type StreamProfilesStream = ProfileStream;

    async fn stream_profiles(
        &self,
        request: Request<StreamProfilesRequest>,
    ) -> Result<Response<Self::StreamProfilesStream>, Status> {
        let StreamProfilesRequest { segment, limit } = request.into_inner();
        if !matches!(segment.as_str(), "" | "all" | "eu" | "us" | "loyal") {
            return Err(Status::invalid_argument(
                "unknown segment: use all, eu, us or loyal",
            ));
        }
        let limit = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let ids: Vec<String> = self.read(|d| {
            d.profiles
                .iter()
                .filter(|(_, p)| in_segment(&segment, p))
                .map(|(id, _)| id.clone())
                .take(limit)
                .collect()
        })?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let store = self.clone();
        tokio::spawn(async move {
            for id in ids {
                let Ok(Some(p)) = store.read(|d| d.profiles.get(&id).cloned()) else {
                    continue;
                };
                if tx.send(Ok(p)).await.is_err() {
                    return; // the reader went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<Response<Profile>, Status> {
        let Some(profile) = request.into_inner().profile else {
            return Err(Status::invalid_argument("profile is required"));
        };
        if profile.subject_id.is_empty() {
            return Err(Status::invalid_argument("profile.subject_id is required"));
        }
        let mut guard = self
            .data
            .write()
            .map_err(|_| Status::internal("profile data is unavailable"))?;
        guard
            .profiles
            .insert(profile.subject_id.clone(), profile.clone());
        Ok(Response::new(profile))
    }
}
