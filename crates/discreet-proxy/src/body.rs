//! The response body: the store's messages, rewritten one at a time as the caller reads
//! them. It pulls from the store only when the caller's connection takes data, so a stream
//! of any length holds at most one message (plus HTTP/2 window) in memory.
use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame};
use tokio::time::Sleep;

use crate::{
    admission::AdmissionPermit, enforce::ResponseEnforcer, frame::FrameDecoder, idle::CallInFlight,
    metadata, status::CallError,
};

/// Rewrites the store's response stream.
#[derive(Debug)]
pub(crate) struct RewriteBody {
    upstream: RecvStream,
    /// The store's DATA has ended: next come its trailers.
    data_ended: bool,
    /// The response head, when it carried the status itself (trailers-only).
    trailers_only: Option<HeaderMap>,
    decoder: FrameDecoder,
    enforcer: ResponseEnforcer,
    deadline: Pin<Box<Sleep>>,
    /// For a stream without a caller deadline: the longest wait for the store's next
    /// bytes. Restarted whenever a wait begins, so a caller that reads slowly is not
    /// blamed on the store.
    idle_limit: Option<Duration>,
    waiting: bool,
    unary: bool,
    messages: u64,
    decision_id: HeaderValue,
    done: bool,
    /// Held until the body is finished or dropped: a stream counts against the
    /// concurrency limit for as long as it runs.
    permit: AdmissionPermit,
    /// Held as long as the body: the call keeps its connection from counting as idle.
    _call: CallInFlight,
}

impl RewriteBody {
    pub(crate) fn new(
        upstream: RecvStream,
        max_message_bytes: usize,
        enforcer: ResponseEnforcer,
        (deadline, idle_limit): (Pin<Box<Sleep>>, Option<Duration>),
        unary: bool,
        decision_id: HeaderValue,
        (permit, call): (AdmissionPermit, CallInFlight),
    ) -> Self {
        RewriteBody {
            upstream,
            data_ended: false,
            trailers_only: None,
            decoder: FrameDecoder::new(max_message_bytes),
            enforcer,
            deadline,
            idle_limit,
            waiting: false,
            unary,
            messages: 0,
            decision_id,
            done: false,
            permit,
            _call: call,
        }
    }

    /// The store answered trailers-only: `head` holds its `grpc-status`.
    pub(crate) fn with_trailers_only(mut self, head: HeaderMap) -> Self {
        self.trailers_only = Some(head);
        self
    }

    fn fail(&mut self, error: &CallError) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.done = true;
        self.enforcer.access.finish_err(error);
        let mut trailers = error.trailers();
        trailers.insert(metadata::DECISION_ID, self.decision_id.clone());
        // `partial` when records went out before the failure, as the access span says.
        trailers.insert(
            metadata::DECISION,
            HeaderValue::from_static(self.enforcer.access.decision()),
        );
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    /// The store sent its trailers: pass on its verdict (code only), or ours when OK.
    fn finish(&mut self, upstream: &HeaderMap) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Err(e) = self.decoder.finish() {
            return self.fail(&CallError::UpstreamProtocol(e.to_string()));
        }
        match upstream_code(upstream) {
            Some(tonic::Code::Ok) if self.unary && self.messages == 0 => self.fail(
                &CallError::UpstreamProtocol("no message for a unary method".into()),
            ),
            Some(tonic::Code::Ok) => {
                self.done = true;
                if self.unary {
                    // A whole unary call served: its latency measures the gateway's load.
                    self.permit.completed();
                }
                let trailers = self.enforcer.finish_ok(&self.decision_id);
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Some(code) => self.fail(&CallError::UpstreamStatus(code)),
            None => self.fail(&CallError::UpstreamProtocol("no grpc-status".into())),
        }
    }
}

/// The `grpc-status` of a header block.
pub(crate) fn upstream_code(headers: &HeaderMap) -> Option<tonic::Code> {
    let v = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(tonic::Code::from_i32(v))
}

impl Body for RewriteBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.decoder.next_message() {
                Ok(Some(message)) => {
                    this.messages += 1;
                    if this.unary && this.messages > 1 {
                        return this.fail(&CallError::UpstreamProtocol(
                            "more than one message for a unary method".into(),
                        ));
                    }
                    match this.enforcer.message(&message) {
                        // (a message handed to the caller ends this wait for the store)
                        Ok(Some(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                        Ok(None) => continue,
                        Err(e) => return this.fail(&e),
                    }
                }
                Ok(None) => {}
                Err(e) => return this.fail(&CallError::UpstreamProtocol(e.to_string())),
            }
            if let Some(idle) = this.idle_limit
                && !this.waiting
            {
                this.deadline
                    .as_mut()
                    .reset(tokio::time::Instant::now() + idle);
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                return this.fail(&match this.idle_limit {
                    Some(_) => CallError::UpstreamStalled,
                    None => CallError::DeadlineExceeded,
                });
            }
            this.waiting = true;
            if !this.data_ended {
                let Poll::Ready(polled) = this.upstream.poll_data(cx) else {
                    return Poll::Pending;
                };
                this.waiting = false;
                match polled {
                    Some(Ok(data)) => {
                        // What the decoder holds is ours now: the store may send more
                        // (hyper's body did this for us; with h2 it is the reader's job).
                        let _ = this.upstream.flow_control().release_capacity(data.len());
                        this.decoder.push(data);
                    }
                    // Reset or connection lost mid-response.
                    Some(Err(_)) => return this.fail(&CallError::UpstreamUnavailable),
                    None => this.data_ended = true,
                }
                continue;
            }
            let Poll::Ready(polled) = this.upstream.poll_trailers(cx) else {
                return Poll::Pending;
            };
            this.waiting = false;
            return match polled {
                Ok(Some(trailers)) => this.finish(&trailers),
                Ok(None) if let Some(head) = this.trailers_only.take() => this.finish(&head),
                Ok(None) => this.fail(&CallError::UpstreamProtocol(
                    "the response ended without a status".into(),
                )),
                Err(_) => this.fail(&CallError::UpstreamUnavailable),
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
