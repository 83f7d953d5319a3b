//! The one place where a failed call becomes a gRPC status. Every refusal in the gateway
//! is a [`CallError`]; its code and message are decided here and nowhere else, so the
//! mapping can be read (and reviewed) as one table.
//!
//! Messages never carry a field value, a token or a subject id: they go to the caller and
//! to logs.
use discreet_consent::{ConsentError, GrpcCode};
use discreet_policy::{AccessDenial, Refusal};
use discreet_redact::RedactError;
use http::{HeaderMap, HeaderValue};
use tonic::Code;

use crate::frame::FrameError;

/// Why a call ends without (more) data.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CallError {
    #[error("the gateway is at its concurrency limit; retry with backoff")]
    Overloaded,
    #[error(
        "this caller has limits.max_calls_per_caller calls in flight already; retry with backoff"
    )]
    CallerOverShare,
    #[error("method {0} is not served by this gateway")]
    UnknownMethod(String),
    #[error("caller not authenticated: {0}")]
    Caller(ConsentError),
    #[error("caller not authenticated: send `authorization: Bearer <service-account token>`")]
    NoCallerToken,
    #[error("caller not authenticated: {0}")]
    ClientCertificate(&'static str),
    #[error("declare exactly one purpose in the `x-discreet-purpose` metadata")]
    Purpose(&'static str),
    #[error("{0}")]
    Access(AccessDenial),
    #[error("consent token refused: {0}")]
    Consent(ConsentError),
    #[error("at most {0} consent tokens per call")]
    TooManyTokens(usize),
    #[error("at most {0} subjects per call")]
    TooManySubjects(usize),
    #[error("the request names no subject")]
    NoSubject,
    #[error("no consent token grants this purpose for the requested subject")]
    SubjectWithoutConsent,
    #[error("the response holds a record of a subject the call has no grant for")]
    UnexpectedSubject,
    #[error("record refused: {0}")]
    Refused(Refusal),
    #[error("request: {0}")]
    RequestFrame(FrameError),
    #[error(
        "request message has the compressed flag set, but no grpc-encoding other than identity was declared"
    )]
    CompressedWithoutEncoding,
    #[error("request must carry exactly one message for this method")]
    RequestCardinality,
    #[error("request message invalid: {0}")]
    RequestMessage(RedactError),
    #[error("request metadata invalid: {0}")]
    RequestMetadata(&'static str),
    #[error("request body could not be read")]
    RequestBody,
    #[error("deadline exceeded")]
    DeadlineExceeded,
    #[error("profile store unavailable")]
    UpstreamUnavailable,
    #[error("the profile store sent nothing within the idle limit (limits.default_timeout)")]
    UpstreamStalled,
    #[error("the profile store answered {}", .0.description())]
    UpstreamStatus(Code),
    #[error("the profile store's answer was not valid: {0}")]
    UpstreamProtocol(String),
    #[error("policy could not be applied: {0}")]
    Policy(String),
    #[error("the audit trail is not accepting accesses (export queue full); retry with backoff")]
    AuditUnavailable,
    #[error("the call was cancelled before it completed")]
    Cancelled,
}

impl CallError {
    /// The status code: see the table in the crate documentation.
    pub(crate) fn code(&self) -> Code {
        use CallError::*;
        match self {
            Overloaded | CallerOverShare | TooManyTokens(_) | TooManySubjects(_) => {
                Code::ResourceExhausted
            }
            UpstreamUnavailable | UpstreamStalled | AuditUnavailable => Code::Unavailable,
            Cancelled => Code::Cancelled,
            UnknownMethod(_) | RequestCardinality => Code::Unimplemented,
            Caller(e) | Consent(e) => consent_code(e),
            NoCallerToken | ClientCertificate(_) => Code::Unauthenticated,
            Purpose(_) | NoSubject | RequestMetadata(_) => Code::InvalidArgument,
            Access(_) | SubjectWithoutConsent | UnexpectedSubject | Refused(_) => {
                Code::PermissionDenied
            }
            RequestFrame(FrameError::Compressed) => Code::Unimplemented,
            RequestFrame(FrameError::TooLarge { .. }) => Code::ResourceExhausted,
            // gRPC's statuscodes.md: "Error parsing request proto" is INTERNAL, and so is a
            // compressed flag without an encoding (compression.md, test case 6).
            RequestFrame(_) | RequestMessage(_) | CompressedWithoutEncoding => Code::Internal,
            UpstreamProtocol(_) | Policy(_) => Code::Internal,
            RequestBody => Code::Cancelled,
            DeadlineExceeded => Code::DeadlineExceeded,
            // The store's own verdict (NOT_FOUND, INVALID_ARGUMENT, ...), without its
            // message: store messages may quote record contents.
            UpstreamStatus(code) => *code,
        }
    }

    /// The stable reason code recorded on the access span (`attr::reason`).
    pub(crate) fn reason(&self) -> &'static str {
        use CallError::*;
        use discreet_telemetry::attr::reason as r;
        match self {
            Overloaded | CallerOverShare => r::OVERLOADED,
            AuditUnavailable => r::AUDIT_UNAVAILABLE,
            UnknownMethod(_) => r::UNKNOWN_METHOD,
            Caller(e) | Consent(e) if consent_code(e) == Code::Unavailable => {
                r::DEPENDENCY_UNAVAILABLE
            }
            Caller(_) | NoCallerToken | ClientCertificate(_) => r::UNAUTHENTICATED_CALLER,
            Purpose(_) => r::INVALID_PURPOSE,
            Access(_) => r::CALLER_NOT_ALLOWED,
            Consent(ConsentError::Revoked) => r::CONSENT_REVOKED,
            Consent(e) if consent_code(e) == Code::PermissionDenied => r::NO_CONSENT,
            Consent(_) => r::INVALID_CONSENT_TOKEN,
            SubjectWithoutConsent | UnexpectedSubject => r::NO_CONSENT,
            Refused(_) => r::GUARD,
            TooManyTokens(_)
            | TooManySubjects(_)
            | NoSubject
            | RequestFrame(_)
            | CompressedWithoutEncoding
            | RequestCardinality
            | RequestMessage(_)
            | RequestMetadata(_) => r::INVALID_REQUEST,
            RequestBody | Cancelled => r::CANCELLED,
            DeadlineExceeded => r::DEADLINE_EXCEEDED,
            UpstreamUnavailable | UpstreamStalled | UpstreamStatus(_) | UpstreamProtocol(_) => {
                r::UPSTREAM
            }
            Policy(_) => r::INTERNAL,
        }
    }

    /// Trailers that end a call with this error (also usable as trailers-only headers).
    pub(crate) fn trailers(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(2);
        map.insert("grpc-status", status_value(self.code()));
        if let Ok(v) = HeaderValue::from_str(&percent_encode(&self.to_string())) {
            map.insert("grpc-message", v);
        }
        // compression.md: an UNIMPLEMENTED for an unsupported encoding names the ones the
        // server accepts.
        if matches!(self, CallError::RequestFrame(FrameError::Compressed)) {
            map.insert("grpc-accept-encoding", HeaderValue::from_static("identity"));
        }
        map
    }
}

/// Consent failures: untrustworthy tokens are UNAUTHENTICATED, genuine tokens that do not
/// allow the access are PERMISSION_DENIED, and a key set, revocation list or lookup that
/// cannot be read right now is UNAVAILABLE: the caller did nothing wrong and should retry.
fn consent_code(e: &ConsentError) -> Code {
    match e {
        ConsentError::KeysUnavailable
        | ConsentError::RevocationUnavailable
        | ConsentError::LookupUnavailable => Code::Unavailable,
        other => match other.grpc_code() {
            GrpcCode::Unauthenticated => Code::Unauthenticated,
            GrpcCode::PermissionDenied => Code::PermissionDenied,
        },
    }
}

/// `grpc-status` for `code`.
pub(crate) fn status_value(code: Code) -> HeaderValue {
    // Static text: `HeaderValue::from(i32)` allocates, and every call sends one.
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    usize::try_from(code as i32)
        .ok()
        .and_then(|i| CODES.get(i))
        .map_or_else(
            || HeaderValue::from(code as i32),
            |s| HeaderValue::from_static(s),
        )
}

/// Percent-encodes a `grpc-message` as the gRPC HTTP/2 protocol asks: every byte outside
/// printable ASCII, and `%` itself.
pub(crate) fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        assert_eq!(CallError::Overloaded.code(), Code::ResourceExhausted);
        assert_eq!(
            CallError::UnknownMethod("/x.Y/Z".into()).code(),
            Code::Unimplemented
        );
        assert_eq!(
            CallError::Consent(ConsentError::Expired).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            CallError::Consent(ConsentError::Revoked).code(),
            Code::PermissionDenied
        );
        assert_eq!(
            CallError::Consent(ConsentError::KeysUnavailable).code(),
            Code::Unavailable
        );
        assert_eq!(
            CallError::RequestFrame(FrameError::Compressed).code(),
            Code::Unimplemented
        );
        assert_eq!(CallError::RequestCardinality.code(), Code::Unimplemented);
        assert_eq!(CallError::CompressedWithoutEncoding.code(), Code::Internal);
        assert_eq!(
            CallError::RequestMessage(RedactError::Truncated).code(),
            Code::Internal
        );
        assert_eq!(
            CallError::RequestFrame(FrameError::Compressed).trailers()["grpc-accept-encoding"],
            "identity"
        );
        assert_eq!(CallError::UpstreamUnavailable.code(), Code::Unavailable);
        assert_eq!(
            CallError::UpstreamStatus(Code::NotFound).code(),
            Code::NotFound
        );
    }

    #[test]
    fn every_status_code_is_its_decimal_text() {
        for n in 0..=16 {
            assert_eq!(status_value(Code::from_i32(n)), n.to_string().as_str());
        }
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode("50% off: ä"), "50%25 off: %C3%A4");
        let t = CallError::UpstreamStatus(Code::NotFound).trailers();
        assert_eq!(t["grpc-status"], "5");
        assert!(t["grpc-message"].to_str().is_ok());
    }
}
