//! Entry points for the request-path fuzz target (`crates/discreet-proxy/fuzz`): the
//! gateway's parsers of untrusted caller input, reachable without a server. Compiled only
//! with the `fuzzing` feature; not an API.
//!
//! Everything here calls the code the request path runs (`frame.rs`, `metadata.rs`,
//! `caller.rs`, `body.rs`, `route.rs`, `batch.rs`, `discreet-redact`'s extractors).
use std::{collections::BTreeMap, sync::LazyLock, time::Duration};

use bytes::Bytes;
use discreet_config::{Limits, MethodKind};
use discreet_redact::{extract_strings, last_string};
use discreet_schema::Schema;
use http::HeaderMap;

use crate::{frame::FrameDecoder, route::MethodTable};

/// The four methods of `config/discreet.yaml`, routed against the reference schema.
pub const METHODS: [&str; 4] = [
    "/profile.v1.ProfileService/GetProfile",
    "/profile.v1.ProfileService/BatchGetProfiles",
    "/profile.v1.ProfileService/StreamProfiles",
    "/profile.v1.ProfileService/UpdateProfile",
];

static ROUTES: LazyLock<Result<MethodTable, String>> = LazyLock::new(|| {
    let schema = Schema::from_descriptor_set(discreet_proto::FILE_DESCRIPTOR_SET)
        .map_err(|e| e.to_string())?;
    let methods: BTreeMap<String, MethodKind> = METHODS
        .iter()
        .map(|m| {
            let kind = if m.ends_with("UpdateProfile") {
                MethodKind::Write
            } else {
                MethodKind::Read
            };
            ((*m).to_owned(), kind)
        })
        .collect();
    MethodTable::build(&schema, &methods)
});

/// The gRPC message framing, as the request and response bodies are decoded.
#[derive(Debug)]
pub struct Frames(FrameDecoder);

impl Frames {
    /// A decoder refusing messages over `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Frames(FrameDecoder::new(limit))
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.0.push(data);
    }

    /// The next complete message, if one is buffered.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, String> {
        self.0.next_message().map_err(|e| e.to_string())
    }

    /// Whether the stream ended on a message boundary.
    pub fn finish(&self) -> Result<(), String> {
        self.0.finish().map_err(|e| e.to_string())
    }
}

/// Frames one message for sending.
#[must_use]
pub fn encode(message: &[u8]) -> Bytes {
    crate::frame::encode(message)
}

/// The caller's deadline from `grpc-timeout` under the default limits.
pub fn timeout(headers: &HeaderMap) -> Result<Duration, &'static str> {
    let limits = Limits::default();
    crate::metadata::timeout(headers, limits.default_timeout, limits.max_timeout)
}

/// The default `limits.max_timeout`.
#[must_use]
pub fn max_timeout() -> Duration {
    Limits::default().max_timeout
}

/// The one declared purpose.
pub fn purpose(headers: &HeaderMap) -> Result<&str, &'static str> {
    crate::metadata::purpose(headers)
}

/// The caller's bearer token.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, String> {
    crate::caller::bearer_token(headers).map_err(|e| e.to_string())
}

/// What of the caller's metadata reaches the store.
#[must_use]
pub fn upstream_headers(headers: &HeaderMap, caller: &str, timeout_ms: Option<u64>) -> HeaderMap {
    crate::metadata::upstream_headers(headers, caller, timeout_ms)
}

/// The store's `grpc-status`, as the response body reads it.
#[must_use]
pub fn upstream_code(headers: &HeaderMap) -> Option<tonic::Code> {
    crate::body::upstream_code(headers)
}

/// The subjects a request message names, read as the gateway reads them.
#[derive(Debug, PartialEq, Eq)]
pub enum Subjects<'a> {
    /// The method's request names no subject (a stream of a segment).
    None,
    /// One subject (`None`: absent or empty, refused as INVALID_ARGUMENT).
    Single(Option<&'a str>),
    /// A batch: top-level field `number`, every occurrence in wire order.
    Batch { number: u32, ids: Vec<&'a str> },
}

/// The subjects of `message` for `method` (one of [`METHODS`]).
pub fn request_subjects<'a>(method: &str, message: &'a [u8]) -> Result<Subjects<'a>, String> {
    let routes = ROUTES.as_ref().map_err(Clone::clone)?;
    let route = routes
        .get(method)
        .ok_or_else(|| format!("no route for {method}"))?;
    let Some(field) = &route.request_subjects else {
        return Ok(Subjects::None);
    };
    if !field.repeated {
        let subject = last_string(message, &field.path)
            .map_err(|e| e.to_string())?
            .filter(|s| !s.is_empty());
        return Ok(Subjects::Single(subject));
    }
    let mut ids = Vec::new();
    extract_strings(message, &field.path, &mut ids).map_err(|e| e.to_string())?;
    Ok(Subjects::Batch {
        number: field.path.first().copied().unwrap_or(0),
        ids,
    })
}

/// A batch request without the subjects `allows` refuses, and how many were taken out:
/// what `Core::admit_subjects` forwards to the store (the same function).
pub fn filter_batch(
    message: &[u8],
    number: u32,
    allows: impl Fn(&str) -> bool,
) -> Result<(Vec<u8>, u64), String> {
    crate::batch::filter_batch(message, number, |e| e.to_string(), |s| Ok(allows(s)))
}

/// The `notAfter` of a DER certificate, as the gateway reports the one it serves.
pub fn certificate_not_after(der: &[u8]) -> Result<i64, String> {
    crate::x509::not_after(der).map_err(|e| e.to_string())
}

/// The URI names of a DER certificate, and the caller they name in the `cluster.local`
/// trust domain (`identity: spiffe`).
pub fn certificate_caller(der: &[u8]) -> Result<(Vec<&str>, Result<String, &'static str>), String> {
    let uris = crate::x509::uri_names(der).map_err(|e| e.to_string())?;
    let caller = crate::spiffe::caller_name(&uris, "cluster.local");
    Ok((uris, caller))
}
