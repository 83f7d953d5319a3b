//! The OTLP/gRPC client of the export task: `TraceService/Export` over one lazily
//! connected tonic channel, carrying request bytes `otlp.rs` already encoded.
//!
//! The request body passes through a bytes codec (as tonic's custom-codec example does);
//! the response is decoded with `opentelemetry-proto`'s type, so a collector's
//! `partial_success` is read, not ignored.
use std::time::Duration;

use bytes::{Buf, BufMut};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A connection to the collector (re-established by tonic when it drops).
#[derive(Debug, Clone)]
pub(crate) struct CollectorClient {
    grpc: tonic::client::Grpc<Channel>,
}

/// What the collector said of one export request that it answered.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Spans the collector received but refused to keep (`partial_success`).
    pub(crate) rejected_spans: i64,
    pub(crate) message: String,
}

impl CollectorClient {
    /// `endpoint` is `http://host:port`. Connects on first use, so a collector that is
    /// down at start is retried like one that goes down later.
    pub(crate) fn new(endpoint: &str, timeout: Duration) -> Result<Self, String> {
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("audit endpoint {endpoint}: {e}"))?
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(CollectorClient {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    pub(crate) async fn export(&mut self, request: bytes::Bytes) -> Result<Accepted, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("collector not reachable: {e}")))?;
        let response = self
            .grpc
            .unary(
                tonic::Request::new(request),
                http::uri::PathAndQuery::from_static(EXPORT_PATH),
                ExportCodec,
            )
            .await?
            .into_inner();
        Ok(response
            .partial_success
            .map_or_else(Accepted::default, |p| Accepted {
                rejected_spans: p.rejected_spans,
                message: p.error_message,
            }))
    }
}

/// Encodes pre-encoded bytes as they are; decodes the collector's response.
#[derive(Debug, Clone, Copy)]
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = bytes::Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = ExportCodec;
    type Decoder = ExportCodec;

    fn encoder(&mut self) -> Self::Encoder {
        ExportCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        ExportCodec
    }
}

impl Encoder for ExportCodec {
    type Item = bytes::Bytes;
    type Error = Status;

    fn encode(&mut self, item: bytes::Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ExportCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let response = ExportTraceServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| Status::internal(format!("collector response: {e}")))?;
        Ok(Some(response))
    }
}
