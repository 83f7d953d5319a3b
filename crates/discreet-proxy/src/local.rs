//! Services the gateway answers itself: gRPC health (for probes and load balancers) and
//! server reflection (so `grpcurl` and friends can list and call methods). Neither sees
//! personal data, so neither needs a caller identity.
use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc};

use crate::request_body::RequestBody;
use http::{Request, Response};
use tonic::body::Body;
use tonic_health::server::HealthReporter;
use tower_service::Service;

type BoxResponse = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// One local service, type-erased.
#[derive(Clone)]
pub(crate) struct LocalService(Arc<dyn Fn(Request<RequestBody>) -> BoxResponse + Send + Sync>);

impl LocalService {
    fn new<S>(service: S) -> Self
    where
        S: Service<Request<RequestBody>, Response = Response<Body>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        LocalService(Arc::new(move |request| {
            let mut s = service.clone();
            Box::pin(async move {
                match s.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            })
        }))
    }

    pub(crate) async fn call(&self, request: Request<RequestBody>) -> Response<Body> {
        (self.0)(request).await
    }
}

impl std::fmt::Debug for LocalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalService")
    }
}

/// Health and reflection, by path prefix.
#[derive(Debug)]
pub(crate) struct LocalServices {
    health: LocalService,
    reflection_v1: LocalService,
    reflection_v1alpha: LocalService,
    pub(crate) reporter: HealthReporter,
}

impl LocalServices {
    /// `descriptor_set` is the encoded schema the gateway serves (reflection answers
    /// with it).
    pub(crate) fn new(descriptor_set: &[u8]) -> Result<LocalServices, String> {
        let (reporter, health) = tonic_health::server::health_reporter();
        let v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptor_set)
            .build_v1()
            .map_err(|e| format!("reflection: {e}"))?;
        let v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptor_set)
            .build_v1alpha()
            .map_err(|e| format!("reflection: {e}"))?;
        Ok(LocalServices {
            health: LocalService::new(health),
            reflection_v1: LocalService::new(v1),
            reflection_v1alpha: LocalService::new(v1alpha),
            reporter,
        })
    }

    /// The local service for `path`, if it is one.
    pub(crate) fn route(&self, path: &str) -> Option<&LocalService> {
        if path.starts_with("/grpc.health.v1.Health/") {
            Some(&self.health)
        } else if path.starts_with("/grpc.reflection.v1.ServerReflection/") {
            Some(&self.reflection_v1)
        } else if path.starts_with("/grpc.reflection.v1alpha.ServerReflection/") {
            Some(&self.reflection_v1alpha)
        } else {
            None
        }
    }
}
