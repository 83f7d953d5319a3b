//! The caller's request body, closed cleanly when the gateway answers before reading it.
//!
//! A refusal (a call shed for load, a missing token, an unknown method) is often sent
//! before the request's DATA frame has been read. Dropping the unread body makes h2 reset
//! the stream (RST_STREAM NO_ERROR), and h2 remembers a reset stream only briefly and only
//! a few at a time (50 per connection). A DATA frame that arrives for a stream it has
//! forgotten is answered with RST_STREAM(STREAM_CLOSED), and each of those counts toward
//! `max_local_error_reset_streams` (256 per connection, for the connection's whole life:
//! the guard against resets provoked by a hostile peer). On the overload benchmark every
//! flooding connection reached it within a fraction of a second of a 5x flood and was
//! closed with GOAWAY(ENHANCE_YOUR_CALM): its callers lost every call in flight, admitted
//! ones too, and the shed calls failed as transport errors instead of
//! `RESOURCE_EXHAUSTED`.
//!
//! So an unread body is read to its end and discarded, within [`DRAIN_MAX_BYTES`] and
//! [`DRAIN_MAX_WAIT`], and the stream ends as HTTP/2 intends: the response went out
//! first, the request's end follows. What has already arrived (the usual case: a unary
//! call's HEADERS and DATA travel together) is read on the spot, without a task; only a
//! body still on its way gets a task. Past the bounds the body is dropped and the stream
//! reset as before: a caller that keeps sending to a refused call is not served for free.
//! A draining stream still counts against its connection's stream limit, and a graceful
//! drain waits for it (at most [`DRAIN_MAX_WAIT`] more).
use std::{
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The most of an unread body read and discarded after the gateway has answered.
const DRAIN_MAX_BYTES: usize = 64 * 1024;
/// The longest an unread body is waited for after the gateway has answered. About as long
/// as h2 remembers a reset stream: a body later than that would be refused anyway.
const DRAIN_MAX_WAIT: Duration = Duration::from_secs(1);

/// A request body that, when dropped unfinished, drains the rest (module documentation).
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming) -> Self {
        RequestBody { inner: Some(inner) }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut().inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        // What has arrived already is taken now: no task, no timer.
        let mut left = DRAIN_MAX_BYTES;
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if !take(&mut left, &frame) {
                        return;
                    }
                }
                // Ended, or failed (the caller reset the stream): nothing to wait for.
                Poll::Ready(_) => return,
                Poll::Pending => break,
            }
        }
        // The rest is still on its way. Outside a runtime (never on the serving threads)
        // the body is dropped and the stream reset.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body, left));
        }
    }
}

/// Counts `frame` against `left`; false once the bound is passed.
fn take(left: &mut usize, frame: &Frame<Bytes>) -> bool {
    let n = frame.data_ref().map_or(0, Bytes::len);
    match left.checked_sub(n) {
        Some(rest) => {
            *left = rest;
            true
        }
        None => false,
    }
}

/// Reads `body` to its end and discards it, within `left` bytes and [`DRAIN_MAX_WAIT`].
async fn drain(mut body: Incoming, mut left: usize) {
    let _ = tokio::time::timeout(DRAIN_MAX_WAIT, async {
        while let Some(Ok(frame)) = body.frame().await {
            if !take(&mut left, &frame) {
                return;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_bound_counts_data_and_stops_past_it() {
        let mut left = 10;
        assert!(take(&mut left, &Frame::data(Bytes::from_static(b"12345"))));
        assert!(take(&mut left, &Frame::trailers(http::HeaderMap::new())));
        assert!(take(&mut left, &Frame::data(Bytes::from_static(b"12345"))));
        assert_eq!(left, 0);
        assert!(!take(&mut left, &Frame::data(Bytes::from_static(b"1"))));
    }
}
