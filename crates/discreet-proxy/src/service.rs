//! One call, step by step (DESIGN.md, "One read"). The order is the point:
//!
//! 1. local services (health, reflection) first: probes must answer under any load and
//!    need no identity;
//! 2. admission next: a call over the concurrency limit is refused before it costs a
//!    token verification, an access span or a log line (`admission.rs`);
//! 3. protocol and route before identity: an unknown method is refused without doing
//!    work for it;
//! 4. caller, then purpose, then consent: each needs the one before (the purpose must be
//!    allowed for *this* caller; consent is checked for *this* purpose);
//! 5. the request body is read only after all of that: an unauthenticated caller cannot
//!    make us buffer megabytes;
//! 6. subjects, then forward, then the response is rewritten as it streams back.
//!
//! Every step returns a [`CallError`] on failure, and `status.rs` turns it into the
//! gRPC status; nothing here writes a status by hand.
use std::{sync::Arc, time::Duration};

use crate::request_body::RequestBody;
use bytes::Bytes;
use discreet_config::Limits;
use discreet_consent::ConsentService;
use discreet_policy::LegalBasis;
use discreet_redact::{extract_strings, last_string};
use discreet_telemetry::metrics::CallerLabels;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tonic::body::Body;

use crate::{
    Clock, DecisionIds,
    access::{AccessLog, AuditState},
    admission::{Admission, AdmissionPermit},
    body::{RewriteBody, upstream_code},
    caller::CallerAuth,
    enforce::ResponseEnforcer,
    frame::{FrameDecoder, encode},
    grants,
    idle::CallInFlight,
    local::LocalServices,
    metadata,
    plans::PlanCache,
    policy_state::PolicyState,
    route::{MethodTable, SubjectField},
    shadow::{ShadowPolicy, ShadowTally},
    status::CallError,
    upstream::UpstreamClient,
};

/// How long a caller may take to send its one request message once its headers are in.
/// The call holds an admission slot meanwhile, so a caller that starts a body and never
/// finishes it must not keep the slot until its deadline (up to `limits.max_timeout`).
const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes of request bodies all calls together may hold while they arrive (at least one
/// largest message). Each call may buffer up to `limits.max_message_bytes`; without a
/// shared budget, unfinished bodies could hold that times `limits.max_concurrent_calls`.
pub(crate) const REQUEST_BUFFER_BUDGET: usize = 32 * 1024 * 1024;

/// Everything a call needs, shared by all calls.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) routes: MethodTable,
    pub(crate) policy: Arc<PolicyState>,
    pub(crate) plans: Arc<PlanCache>,
    pub(crate) callers: CallerAuth,
    pub(crate) consent: ConsentService,
    pub(crate) upstream: UpstreamClient,
    pub(crate) limits: Limits,
    pub(crate) admission: Arc<Admission>,
    /// `limits.max_calls_per_caller`, when set.
    pub(crate) caller_shares: Option<Arc<crate::caller_share::CallerShares>>,
    /// Bytes of request bodies being received, across calls (see [`REQUEST_BUFFER_BUDGET`]).
    pub(crate) request_buffer: Arc<Semaphore>,
    pub(crate) clock: Clock,
    pub(crate) local: LocalServices,
    pub(crate) decision_ids: DecisionIds,
    pub(crate) audit: AuditState,
    pub(crate) metrics: Arc<discreet_telemetry::metrics::GatewayMetrics>,
    pub(crate) shadow: Option<Arc<ShadowPolicy>>,
}

impl Core {
    /// Serves one HTTP/2 request. Never fails: every failure is a gRPC status.
    /// One call. `call` counts it on its connection (for the idle timeout) until its
    /// response is done: for an answer streamed from the store, with the response body.
    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request<RequestBody>,
        call: CallInFlight,
    ) -> Response<Body> {
        let path = request.uri().path();
        if let Some(local) = self.local.route(path) {
            // Boxed for the same reason as the admitted call below.
            return Box::pin(local.call(request)).await;
        }
        if request.method() != http::Method::POST {
            return http_error(StatusCode::METHOD_NOT_ALLOWED);
        }
        // gRPC over HTTP/2: anything but application/grpc[+proto|;...] is not for us,
        // and the protocol says to answer 415 rather than a gRPC status.
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct == "application/grpc"
                    || ct.starts_with("application/grpc+proto")
                    || ct.starts_with("application/grpc;")
            });
        if !grpc {
            return http_error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        // Admission before the access log: a call refused for load reads nothing and names
        // no one (its headers are not even looked at), so it gets no access span and no log
        // line, only `discreet_calls_shed_total`. Under a flood, refusals stay cheap and do
        // not crowd the audit queue or the collector with spans about nothing.
        let Some(permit) = self.admission.admit().await else {
            self.metrics.shed.inc();
            return shed();
        };
        // Boxed: the admitted call's state machine is several KiB, and this future is
        // moved into every request's stream task when hyper spawns it. Unboxed, each
        // refusal above (the bulk of a flood) would pay for copying it.
        Box::pin(self.admitted(request, (permit, call))).await
    }

    /// An admitted call: its decision, its access span and its response.
    async fn admitted(
        self: Arc<Self>,
        request: Request<RequestBody>,
        permit: (AdmissionPermit, CallInFlight),
    ) -> Response<Body> {
        let path = request.uri().path();
        let decision_id = self.decision_ids.next();
        let mut access = Some(AccessLog::begin(
            &self,
            path,
            request
                .headers()
                .get("traceparent")
                .map(HeaderValue::as_bytes),
            decision_id.to_str().unwrap_or("unknown"),
        ));
        match self
            .enforce(request, permit, &decision_id, &mut access)
            .await
        {
            Ok(response) => response,
            Err(e) => {
                if let Some(mut access) = access.take() {
                    access.finish_err(&e);
                }
                tracing::info!(decision.id = decision_id.to_str().unwrap_or("unknown"), grpc.code = ?e.code(), "call refused: {e}");
                trailers_only(&e, &decision_id)
            }
        }
    }

    async fn enforce(
        self: &Arc<Self>,
        request: Request<RequestBody>,
        (permit, call): (AdmissionPermit, CallInFlight),
        decision_id: &HeaderValue,
        access_slot: &mut Option<AccessLog>,
    ) -> Result<Response<Body>, CallError> {
        // Before any work for the call: strict audit mode refuses a call whose span would
        // have no place in the export queue.
        if let Some(access) = access_slot.as_mut() {
            access.reserve(&self.audit.trail)?;
        }
        let route = self
            .routes
            .get(request.uri().path())
            .cloned()
            .ok_or_else(|| CallError::UnknownMethod(request.uri().path().to_owned()))?;
        tracing::debug!(method = %route.path, kind = ?route.kind, decision.id = decision_id.to_str().unwrap_or("unknown"), "routed");
        if let Some(access) = access_slot.as_mut() {
            access.method_kind(match route.kind {
                discreet_config::MethodKind::Read => "read",
                discreet_config::MethodKind::Write => "write",
            });
        }
        let timeout = metadata::timeout(
            request.headers(),
            self.limits.default_timeout,
            self.limits.max_timeout,
        )
        .map_err(CallError::RequestMetadata)?;
        let deadline = Instant::now() + timeout;
        // A stream the caller set no deadline for may run as long as it keeps moving: the
        // default timeout bounds the wait for the store's answer and every wait for its
        // next message, not the whole stream.
        let idle_limit = (route.server_streaming
            && !request.headers().contains_key("grpc-timeout"))
        .then_some(timeout);
        let (parts, body) = request.into_parts();

        let before_response = async {
            let access = access_slot.as_mut().ok_or(CallError::Cancelled)?;
            let caller = self.callers.identify(&parts).await?;
            access.caller(&caller);
            if let Some(shares) = &self.caller_shares {
                let Some(share) = shares.take(&caller) else {
                    let label = if self.policy.current().policy.names_caller(&caller) {
                        Arc::clone(&caller)
                    } else {
                        Arc::clone(&self.audit.other_label)
                    };
                    self.metrics
                        .over_caller_share
                        .get_or_create(&CallerLabels { caller: label })
                        .inc();
                    return Err(CallError::CallerOverShare);
                };
                permit.hold_caller_share(share);
            }
            let purpose = metadata::purpose(&parts.headers).map_err(CallError::Purpose)?;
            let active = self.policy.current();
            access.purpose(purpose, active.policy.purposes.contains_key(purpose));
            access.policy_version(&active.version, &active.digest_hex);
            if let Some(shadow) = &self.shadow {
                let candidate = shadow.state.current();
                let denied = candidate.policy.check_caller(&caller, purpose).is_err();
                *access.shadow() = Some(ShadowTally::new(candidate, denied));
            }
            let allowed = active
                .policy
                .check_caller(&caller, purpose)
                .map_err(CallError::Access)?;
            access.allowed(allowed.legal_basis.as_str());
            let consent_required = allowed.legal_basis == LegalBasis::Consent;
            let purpose: Arc<str> = Arc::from(purpose);
            let grants = grants::verify(
                &self.consent,
                &parts.headers,
                self.limits.max_consent_tokens,
            )
            .await?;
            access.grants(&grants);
            // A compressed message is UNIMPLEMENTED when the caller declared an encoding we
            // do not support, and a protocol violation (INTERNAL) when it declared none.
            let encoded = parts
                .headers
                .get("grpc-encoding")
                .is_some_and(|e| e.as_bytes() != b"identity");
            // The caller's pace, not our load: the wait does not count as work.
            let waiting = permit.waiting_on_caller();
            let message = tokio::time::timeout(
                REQUEST_BODY_TIMEOUT,
                read_one_message(
                    body,
                    self.limits.max_message_bytes,
                    encoded,
                    &self.request_buffer,
                ),
            )
            .await
            .map_err(|_| CallError::RequestBody)??;
            drop(waiting);
            // The budget is held until the store has the message.
            let (message, _buffered) = message;
            let (message, withheld_before) = match &route.request_subjects {
                Some(field) => self.admit_subjects(
                    field,
                    message,
                    &grants,
                    &purpose,
                    consent_required,
                    access,
                )?,
                None => (message, 0),
            };
            // Made again only if the store provably did not take the first (`upstream.rs`):
            // a copy kept for that would cost every call.
            let upstream_head = || {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let mut head = Request::new(());
                *head.method_mut() = http::Method::POST;
                *head.uri_mut() = self.upstream.uri(&route.path)?;
                *head.headers_mut() = metadata::upstream_headers(
                    &parts.headers,
                    &caller,
                    idle_limit
                        .is_none()
                        .then(|| u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX)),
                );
                // The store's spans become children of the access span, in the same trace.
                if let Ok(mut v) = HeaderValue::from_str(&access.trace().upstream_traceparent()) {
                    // New on every call: not worth a place in the store connection's HPACK
                    // table.
                    v.set_sensitive(true);
                    head.headers_mut().insert("traceparent", v);
                }
                Ok(head.into_parts().0)
            };
            let response = self.upstream.send(upstream_head, encode(&message)).await?;
            let access = access_slot.take().ok_or(CallError::Cancelled)?;
            let enforcer = ResponseEnforcer::new(
                Arc::clone(&route),
                active,
                Arc::clone(&self.plans),
                purpose,
                consent_required,
                grants,
                self.clock.now(),
                withheld_before,
                (access, self.shadow.clone()),
            );
            Ok::<_, CallError>((response, enforcer))
        };
        let (response, enforcer) = tokio::time::timeout_at(deadline, before_response)
            .await
            .map_err(|_| CallError::DeadlineExceeded)??;

        let (head, upstream_body) = response.into_parts();
        if let Err(e) = check_response_head(&head, route.server_streaming) {
            // The access log is the enforcer's now: close it with the real reason, not
            // the `cancelled` its drop would record.
            let mut enforcer = enforcer;
            enforcer.access.finish_err(&e);
            return Err(e);
        }
        // Trailers-only: the status in a head that ends the stream. A status in a head
        // that does not is no gRPC answer at all.
        let trailers_only = upstream_code(&head.headers).is_some();
        if trailers_only && !upstream_body.is_end_stream() {
            let e = CallError::UpstreamProtocol(
                "grpc-status in response headers that did not end the stream".into(),
            );
            let mut enforcer = enforcer;
            enforcer.access.finish_err(&e);
            return Err(e);
        }
        if route.server_streaming {
            // A stream lasts as long as its segment and its reader: bounded by the
            // ceiling, not by the adaptive limit.
            permit.streaming();
        }
        let body = RewriteBody::new(
            upstream_body,
            self.limits.max_message_bytes,
            enforcer,
            (Box::pin(tokio::time::sleep_until(deadline)), idle_limit),
            !route.server_streaming,
            decision_id.clone(),
            (permit, call),
        );
        let body = if trailers_only {
            body.with_trailers_only(head.headers)
        } else {
            body
        };
        // The store's response headers are not passed on: only what we set here.
        let mut response = Response::new(Body::new(body));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        Ok(response)
    }

    /// Step 6: the subjects the request names. A single subject without a grant refuses
    /// the call; a batch loses the subjects without one (the store never sees them) and
    /// the count is reported in the trailers.
    fn admit_subjects(
        &self,
        field: &SubjectField,
        message: Bytes,
        grants: &grants::Grants,
        purpose: &str,
        consent_required: bool,
        access: &mut AccessLog,
    ) -> Result<(Bytes, u64), CallError> {
        use discreet_telemetry::attr::{outcome, reason};
        if !field.repeated {
            let subject = last_string(&message, &field.path)
                .map_err(CallError::RequestMessage)?
                .filter(|s| !s.is_empty())
                .ok_or(CallError::NoSubject)?;
            access.single_subject(subject);
            if consent_required && !grants.allows(subject, purpose) {
                return Err(CallError::SubjectWithoutConsent);
            }
            return Ok((message, 0));
        }
        let mut subjects = Vec::new();
        extract_strings(&message, &field.path, &mut subjects).map_err(CallError::RequestMessage)?;
        if subjects.len() > self.limits.max_batch_subjects {
            return Err(CallError::TooManySubjects(self.limits.max_batch_subjects));
        }
        if !consent_required || subjects.iter().all(|s| grants.allows(s, purpose)) {
            return Ok((message, 0));
        }
        let number = field.path.first().copied().unwrap_or(0);
        let (kept, withheld) =
            crate::batch::filter_batch(&message, number, CallError::RequestMessage, |subject| {
                if grants.allows(subject, purpose) {
                    return Ok(true);
                }
                access.subject(subject, outcome::WITHHELD, Some(reason::NO_CONSENT), grants)?;
                Ok(false)
            })?;
        if let Some(tally) = access.shadow().as_mut() {
            tally.withheld_before(withheld);
        }
        Ok((Bytes::from(kept), withheld))
    }
}

/// The store's response head: an HTTP error, or a trailers-only gRPC status, ends the call.
fn check_response_head(
    head: &http::response::Parts,
    server_streaming: bool,
) -> Result<(), CallError> {
    if head.status != StatusCode::OK {
        return Err(match head.status {
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS => CallError::UpstreamUnavailable,
            other => CallError::UpstreamProtocol(format!("HTTP status {}", other.as_u16())),
        });
    }
    // Trailers-only: the store answered with a status and no messages.
    if let Some(code) = upstream_code(&head.headers) {
        if code != tonic::Code::Ok {
            return Err(CallError::UpstreamStatus(code));
        }
        if !server_streaming {
            return Err(CallError::UpstreamProtocol(
                "no message for a unary method".into(),
            ));
        }
    }
    Ok(())
}

/// Reads the request body: exactly one message, no larger than the limit. Every byte
/// buffered takes a permit of the shared `budget`, held by the returned permit.
async fn read_one_message(
    mut body: RequestBody,
    max_message_bytes: usize,
    encoded: bool,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), CallError> {
    // A little over one frame: a second frame is a cardinality error, not an overflow.
    let limit = max_message_bytes.saturating_add(2 * crate::frame::HEADER_LEN);
    let mut decoder = FrameDecoder::new(max_message_bytes);
    let mut received = 0usize;
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| CallError::RequestBody)?.into_data() else {
            continue;
        };
        received = received.saturating_add(data.len());
        if received > limit {
            return Err(CallError::RequestFrame(
                crate::frame::FrameError::TooLarge {
                    declared: u64::try_from(limit).unwrap_or(u64::MAX),
                    limit: max_message_bytes,
                },
            ));
        }
        let n = u32::try_from(data.len()).map_err(|_| CallError::Overloaded)?;
        let permit = Arc::clone(budget)
            .try_acquire_many_owned(n)
            .map_err(|_| CallError::Overloaded)?;
        match &mut held {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        decoder.push(data);
    }
    let first = decoder.next_message().map_err(|e| match e {
        crate::frame::FrameError::Compressed if !encoded => CallError::CompressedWithoutEncoding,
        e => CallError::RequestFrame(e),
    })?;
    let Some(message) = first else {
        // No complete frame: an empty body is a cardinality error, a partial one a
        // malformed frame.
        decoder.finish().map_err(CallError::RequestFrame)?;
        return Err(CallError::RequestCardinality);
    };
    match decoder.next_message() {
        Ok(None) => {}
        Ok(Some(_)) | Err(crate::frame::FrameError::TooLarge { .. }) => {
            return Err(CallError::RequestCardinality);
        }
        Err(e) => return Err(CallError::RequestFrame(e)),
    }
    decoder
        .finish()
        .map_err(|_| CallError::RequestCardinality)?;
    Ok((message, held))
}

/// A gRPC error with no body: status in the headers (the protocol's "Trailers-Only").
fn trailers_only(error: &CallError, decision_id: &HeaderValue) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.extend(error.trailers());
    headers.insert(metadata::DECISION_ID, decision_id.clone());
    headers.insert(metadata::DECISION, HeaderValue::from_static("denied"));
    response
}

/// The refusal of a call over the concurrency limit: no decision was made, so no
/// decision headers, only the status.
fn shed() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.extend(CallError::Overloaded.trailers());
    response
}

fn http_error(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
