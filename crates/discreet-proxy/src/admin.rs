//! The Prometheus endpoint: `GET /metrics` in the text exposition format, over HTTP/1.1
//! on its own listener, so scraping never competes with the gRPC port's limits and the
//! port can be exposed to the monitoring network only.
use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch};

use crate::service::Core;

/// Serves until `stop` turns true.
pub(crate) async fn serve_metrics(
    listener: TcpListener,
    core: Arc<Core>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let core = Arc::clone(&core);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let response = respond(&core, &request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

fn respond(core: &Core, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != http::Method::GET || request.uri().path() != "/metrics" {
        let mut not_found = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return not_found;
    }
    core.metrics
        .audit_queue_depth
        .set(i64::try_from(core.audit.trail.queue_depth()).unwrap_or(i64::MAX));
    core.metrics
        .audit_queue_bytes
        .set(i64::try_from(core.audit.trail.queue_bytes()).unwrap_or(i64::MAX));
    // Read now rather than on every reload: the age is what an alert needs, and it grows
    // between reloads.
    for (source, health) in crate::gateway::sources(core) {
        core.metrics.set_key_source_health(
            source,
            health.age_seconds,
            health.max_staleness_seconds,
            health.consecutive_failures,
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(core.metrics.encode())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
