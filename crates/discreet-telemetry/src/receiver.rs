//! A small in-process OTLP/gRPC trace receiver: what the tests, the demo and the load
//! benchmark export to when no OpenTelemetry Collector runs. It keeps every request it
//! receives and can write them as OTLP JSON lines, the format of the Collector's `file`
//! exporter, which `discreet audit` reads.
//!
//! It can be stopped and started again on the same address, to show what the gateway
//! does while its collector is away.
use std::{
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    trace::v1::Span,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// What the receiver has been sent.
#[derive(Debug, Default, Clone)]
struct Received {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut requests = self
            .requests
            .lock()
            .map_err(|_| tonic::Status::internal("receiver state poisoned"))?;
        requests.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running (or stopped) receiver.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Received,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    max_request_bytes: usize,
}

impl OtlpReceiver {
    /// Starts on `listener` (bind `127.0.0.1:0` for a free port).
    pub fn start(listener: TcpListener) -> std::io::Result<Self> {
        Self::start_with_limit(listener, 4 * 1024 * 1024)
    }

    /// Starts on `listener`, refusing requests over `max_request_bytes` as a collector
    /// with a smaller `max_recv_msg_size` does.
    pub fn start_with_limit(
        listener: TcpListener,
        max_request_bytes: usize,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let mut receiver = OtlpReceiver {
            addr,
            received: Received::default(),
            running: None,
            max_request_bytes,
        };
        receiver.serve(listener);
        Ok(receiver)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let service = TraceServiceServer::new(self.received.clone())
            .max_decoding_message_size(self.max_request_bytes);
        let task = tokio::spawn(async move {
            let serving = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    // No Nagle delay on export responses, as a collector answers.
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async {
                        let _ = stop_rx.await;
                    },
                );
            if let Err(e) = serving.await {
                tracing::warn!("OTLP receiver stopped: {e}");
            }
        });
        self.running = Some((stop_tx, task));
    }

    /// `http://127.0.0.1:<port>`: the endpoint to configure as `audit.endpoint`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and closes the port: exporters see connection refused.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Serves again on the same address.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    /// Every export request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.received
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Every span received so far, in arrival order.
    #[must_use]
    pub fn spans(&self) -> Vec<Span> {
        self.requests()
            .into_iter()
            .flat_map(|r| r.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        if let Ok(mut r) = self.received.requests.lock() {
            r.clear();
        }
    }

    /// Writes every request received as OTLP JSON, one request per line, as the
    /// OpenTelemetry Collector's `file` exporter does.
    pub fn write_otlp_json(&self, path: &Path) -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
        for request in self.requests() {
            serde_json::to_writer(&mut file, &request)?;
            file.write_all(b"\n")?;
        }
        file.flush()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}
