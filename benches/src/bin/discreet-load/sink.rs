//! `discreet-load sink --listen ADDR --count-file PATH`: an OTLP/gRPC trace collector that
//! counts the spans it accepts and keeps none of them.
//!
//! The gateway under load exports for real (protobuf over HTTP/2, batches, retries); the
//! sink decodes each batch as a collector does, so its CPU counts against the run, and
//! writes after every batch, for the script to read, the running totals: spans, and
//! access spans of calls refused for any reason but the caller going away (`h2load`
//! resets the calls in flight when a timed run ends).
use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use discreet_telemetry::attr;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};

use crate::{Error, Flags};

#[derive(Debug)]
struct Totals {
    spans: AtomicU64,
    refused: AtomicU64,
    count_file: PathBuf,
}

#[derive(Debug, Clone)]
struct SpanCounter(Arc<Totals>);

#[tonic::async_trait]
impl TraceService for SpanCounter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: Vec<_> = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        let refused = spans.iter().filter(|s| refused(s)).count() as u64;
        let n = spans.len() as u64;
        let total = self.0.spans.fetch_add(n, Ordering::Relaxed) + n;
        let refused = self.0.refused.fetch_add(refused, Ordering::Relaxed) + refused;
        std::fs::write(&self.0.count_file, format!("{total} {refused}\n"))
            .map_err(|e| tonic::Status::internal(format!("count file: {e}")))?;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An access span whose call was denied, except calls the caller cancelled.
fn refused(span: &Span) -> bool {
    let text = |key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            })
    };
    span.name == attr::ACCESS_SPAN
        && text(attr::DECISION) == Some(attr::decision::DENIED)
        && text(attr::DENIAL_REASON) != Some(attr::reason::CANCELLED)
}

pub(crate) fn run(args: &[String]) -> Result<(), Error> {
    let flags = Flags::parse(args)?;
    let listen: std::net::SocketAddr = flags.req("listen")?.parse()?;
    let counter = SpanCounter(Arc::new(Totals {
        spans: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        count_file: PathBuf::from(flags.req("count-file")?),
    }));
    std::fs::write(&counter.0.count_file, "0 0\n")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(counter))
            .serve_with_incoming_shutdown(
                // No Nagle delay on export responses, as a collector answers.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            )
            .await?;
        Ok(())
    })
}
