//! The OTLP/gRPC client of the export task: `TraceService/Export` over one lazily
//! connected tonic channel, carrying request bytes `otlp.rs` already encoded.
//!
//! The request body passes through a bytes codec (as tonic's custom-codec example does);
//! the response is decoded with `opentelemetry-proto`'s type, so a collector's
//! `partial_success` is read, not ignored.
//!
//! An `https://` collector is reached through [`TlsConnector`]: TCP, then a rustls
//! handshake with the client configuration current at that moment, so a renewed client
//! certificate or CA bundle applies from the next connection without a restart.
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, BufMut};
use http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tokio::net::TcpStream;
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::{Channel, Endpoint},
};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// TLS to an `https://` collector.
#[derive(Clone)]
pub struct CollectorTls {
    /// The name the collector's certificate must carry.
    pub server_name: rustls_pki_types::ServerName<'static>,
    /// The client configuration for the next connection (the files behind it may have
    /// been renewed since the last one). It should offer ALPN `h2`: gRPC servers such as
    /// the OpenTelemetry Collector refuse TLS connections that do not.
    pub config: Arc<dyn Fn() -> Arc<rustls::ClientConfig> + Send + Sync>,
}

impl std::fmt::Debug for CollectorTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectorTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Metadata sent with every export request (`audit.headers`): credentials a collector
/// checks, a tenant id. Looked up for each request, so a rotated token applies from the
/// next one. Values that are credentials should be marked sensitive
/// (`HeaderValue::set_sensitive`): h2 then never enters them in its HPACK table.
#[derive(Clone)]
pub struct CollectorHeaders(pub Arc<dyn Fn() -> Arc<http::HeaderMap> + Send + Sync>);

impl std::fmt::Debug for CollectorHeaders {
    // Never the values: they are credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries((self.0)().keys()).finish()
    }
}

/// A connection to the collector (re-established by tonic when it drops).
#[derive(Debug, Clone)]
pub(crate) struct CollectorClient {
    grpc: tonic::client::Grpc<Channel>,
    headers: Option<CollectorHeaders>,
}

/// What the collector said of one export request that it answered.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// Spans the collector received but refused to keep (`partial_success`).
    pub(crate) rejected_spans: i64,
    pub(crate) message: String,
}

impl CollectorClient {
    /// `endpoint` is `http://host:port`, or `https://host:port` with `tls`. Connects on
    /// first use, so a collector that is down at start is retried like one that goes
    /// down later.
    pub(crate) fn new(
        endpoint: &str,
        timeout: Duration,
        tls: Option<CollectorTls>,
        headers: Option<CollectorHeaders>,
    ) -> Result<Self, String> {
        let https = endpoint.strip_prefix("https://");
        let invalid = |e: &dyn std::fmt::Display| format!("audit endpoint {endpoint}: {e}");
        // tonic, when built with its own TLS (as the test crate builds it), refuses an
        // https URI it has no TLS settings for, even behind a custom connector. So the
        // connector gets the address as http:// and does the TLS itself; requests still
        // name the https origin.
        let address = match https {
            Some(rest) => format!("http://{rest}"),
            None => endpoint.to_owned(),
        };
        let mut builder = Endpoint::from_shared(address)
            .map_err(|e| invalid(&e))?
            .timeout(timeout)
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        if https.is_some() {
            builder = builder.origin(endpoint.parse().map_err(|e| invalid(&e))?);
        }
        let https = https.is_some();
        let channel = match tls {
            Some(tls) if https => builder.connect_with_connector_lazy(TlsConnector(tls)),
            // Either would send the trail somewhere other than the operator meant: in
            // cleartext, or to a TLS port that can never answer.
            Some(_) => {
                return Err(format!(
                    "audit endpoint {endpoint}: TLS settings given for a cleartext endpoint"
                ));
            }
            None if https => {
                return Err(format!(
                    "audit endpoint {endpoint}: an https endpoint needs TLS settings"
                ));
            }
            None => builder.connect_lazy(),
        };
        Ok(CollectorClient {
            grpc: tonic::client::Grpc::new(channel),
            headers,
        })
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    pub(crate) async fn export(&mut self, request: bytes::Bytes) -> Result<Accepted, Status> {
        self.grpc.ready().await.map_err(|e| {
            Status::unavailable(format!("collector not reachable: {}", error_chain(&e)))
        })?;
        let mut request = tonic::Request::new(request);
        if let Some(headers) = &self.headers {
            // tonic leaves out names it sets itself (`te`, `content-type`...); validation
            // refuses them before they get here.
            *request.metadata_mut() =
                tonic::metadata::MetadataMap::from_headers(HeaderMap::clone(&(headers.0)()));
        }
        let response = self
            .grpc
            .unary(
                request,
                http::uri::PathAndQuery::from_static(EXPORT_PATH),
                ExportCodec,
            )
            .await
            .map_err(with_causes)?
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

/// `status` with its causes in the message: a connection that failed (TLS above all)
/// otherwise reads only "transport error".
fn with_causes(status: Status) -> Status {
    use std::error::Error;
    match status.source() {
        Some(cause) => {
            let message = format!("{}: {}", status.message(), error_chain(cause));
            Status::new(status.code(), message)
        }
        None => status,
    }
}

/// `error` and its sources, so a failed TLS handshake says why (tonic's transport error
/// alone reads "transport error").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Opens a TLS connection to an `https://` collector for tonic's channel.
#[derive(Clone)]
struct TlsConnector(CollectorTls);

type TlsConnection = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

impl tower_service::Service<http::Uri> for TlsConnector {
    type Response = TlsConnection;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TlsConnection>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let tls = self.0.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
                .ok_or_else(|| std::io::Error::other("the endpoint has no host"))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            // As for a cleartext collector: export responses are small and not to wait.
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from((tls.config)())
                .connect(tls.server_name.clone(), tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::path::Path;

    use rustls_pki_types::{CertificateDer, pem::PemObject};

    use super::*;
    use crate::receiver::{OtlpReceiver, tls_server_config};

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    fn trusting(ca: &str) -> CollectorTls {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&fixture(ca)) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let config = Arc::new(config);
        CollectorTls {
            server_name: rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            config: Arc::new(move || Arc::clone(&config)),
        }
    }

    #[tokio::test]
    async fn a_failed_handshake_says_why() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config =
            tls_server_config(&fixture("tls-cert.pem"), &fixture("tls-key.pem"), None).unwrap();
        let receiver = OtlpReceiver::start_tls(listener, config).unwrap();
        let mut client = CollectorClient::new(
            &receiver.endpoint(),
            Duration::from_secs(2),
            Some(trusting("renewed-ca-cert.pem")),
            None,
        )
        .unwrap();
        let status = client.export(bytes::Bytes::new()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(
            status
                .message()
                .contains("invalid peer certificate: UnknownIssuer"),
            "{}",
            status.message()
        );
        // The same exporter trusting the right CA is answered.
        let mut client = CollectorClient::new(
            &receiver.endpoint(),
            Duration::from_secs(2),
            Some(trusting("ca-cert.pem")),
            None,
        )
        .unwrap();
        client.export(bytes::Bytes::new()).await.unwrap();
    }

    fn bearer(token: &str) -> Arc<HeaderMap> {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("authorization", value);
        headers.insert("x-scope-orgid", http::HeaderValue::from_static("tenant-a"));
        Arc::new(headers)
    }

    #[tokio::test]
    async fn every_request_carries_the_headers_as_they_are_at_that_moment() {
        let receiver =
            OtlpReceiver::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
                .unwrap();
        receiver.require_metadata(&[
            ("authorization", "Bearer one"),
            ("x-scope-orgid", "tenant-a"),
        ]);
        let current = Arc::new(std::sync::Mutex::new(bearer("one")));
        let source = Arc::clone(&current);
        let headers = CollectorHeaders(Arc::new(move || Arc::clone(&source.lock().unwrap())));
        assert_eq!(
            format!("{headers:?}"),
            r#"["authorization", "x-scope-orgid"]"#,
            "Debug must name the headers, never their values"
        );
        let mut client = CollectorClient::new(
            &receiver.endpoint(),
            Duration::from_secs(2),
            None,
            Some(headers),
        )
        .unwrap();
        client.export(bytes::Bytes::new()).await.unwrap();
        assert_eq!(receiver.requests().len(), 1);

        // The collector moves to a new token: refused until the exporter has it too.
        receiver.require_metadata(&[("authorization", "Bearer two")]);
        let status = client.export(bytes::Bytes::new()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        *current.lock().unwrap() = bearer("two");
        client.export(bytes::Bytes::new()).await.unwrap();
        assert_eq!(receiver.requests().len(), 2);

        // Without headers, nothing gets in.
        let mut bare =
            CollectorClient::new(&receiver.endpoint(), Duration::from_secs(2), None, None).unwrap();
        let status = bare.export(bytes::Bytes::new()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert_eq!(receiver.requests().len(), 2);
    }

    #[test]
    fn tls_settings_must_match_the_scheme() {
        let e = CollectorClient::new(
            "https://collector.example:4317",
            Duration::from_secs(1),
            None,
            None,
        )
        .unwrap_err();
        assert!(e.contains("needs TLS settings"), "{e}");
        let e = CollectorClient::new(
            "http://collector.example:4317",
            Duration::from_secs(1),
            Some(trusting("ca-cert.pem")),
            None,
        )
        .unwrap_err();
        assert!(e.contains("cleartext"), "{e}");
    }
}
