//! W3C trace context: the caller's `traceparent`, parsed, and the ids of our own span.
//!
//! The access span is a child of the caller's span when the caller sends a valid
//! `traceparent`, and the root of a new trace otherwise. Its sampled flag is always set:
//! access spans are exported whatever the caller's sampler decided.
use std::sync::atomic::{AtomicU64, Ordering};

/// The trace an access span belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The caller's span, when the caller sent a valid `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    /// The caller's flags (bit 0: sampled), kept for what we forward upstream.
    pub caller_flags: u8,
    /// Our access span's id.
    pub span_id: [u8; 8],
}

impl TraceContext {
    /// The context of a call that sent `traceparent` (or none). An invalid header starts
    /// a new trace, as the W3C recommendation says, rather than failing the call.
    #[must_use]
    pub fn for_call(traceparent: Option<&[u8]>, ids: &SpanIds) -> Self {
        match traceparent.and_then(parse_traceparent) {
            Some((trace_id, parent, flags)) => TraceContext {
                trace_id,
                parent_span_id: Some(parent),
                caller_flags: flags,
                span_id: ids.span_id(),
            },
            None => TraceContext {
                trace_id: ids.trace_id(),
                parent_span_id: None,
                caller_flags: 0,
                span_id: ids.span_id(),
            },
        }
    }

    /// The `traceparent` to forward upstream: same trace, our span as the parent, the
    /// caller's sampled flag (we do not force the store to sample).
    #[must_use]
    pub fn upstream_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            self.caller_flags & 1
        )
    }
}

/// `00-<32 hex>-<16 hex>-<2 hex>`, neither id all zero. Later versions may append
/// fields after a `-`; version `ff` is invalid.
fn parse_traceparent(value: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version.eq_ignore_ascii_case("ff")
        || (version == "00" && parts.next().is_some())
    {
        return None;
    }
    if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut parent_id = [0u8; 8];
    let mut flag = [0u8; 1];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    hex::decode_to_slice(parent, &mut parent_id).ok()?;
    hex::decode_to_slice(flags, &mut flag).ok()?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some((trace_id, parent_id, flag[0]))
}

/// Span and trace ids: a random per-process seed and a counter through SplitMix64, a
/// bijection, so ids never repeat within a process and a call costs no random draw.
#[derive(Debug)]
pub struct SpanIds {
    seed: u64,
    counter: AtomicU64,
}

impl SpanIds {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        SpanIds {
            seed,
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A non-zero span id.
    #[must_use]
    pub fn span_id(&self) -> [u8; 8] {
        loop {
            let v = self.next();
            if v != 0 {
                return v.to_be_bytes();
            }
        }
    }

    /// A non-zero trace id.
    #[must_use]
    pub fn trace_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.span_id());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_makes_the_span_a_child() {
        let ids = SpanIds::new(42);
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let ctx = TraceContext::for_call(Some(tp), &ids);
        assert_eq!(
            hex::encode(ctx.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(hex::encode(ctx.parent_span_id.unwrap()), "00f067aa0ba902b7");
        let up = ctx.upstream_traceparent();
        assert!(up.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(
            up.ends_with("-00"),
            "the caller's unsampled flag is kept: {up}"
        );
        assert!(!up.contains("00f067aa0ba902b7"));
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        let ids = SpanIds::new(7);
        for bad in [
            &b"garbage"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let ctx = TraceContext::for_call(Some(bad), &ids);
            assert!(
                ctx.parent_span_id.is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert_ne!(ctx.trace_id, [0; 16]);
        }
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids = SpanIds::new(0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(ids.span_id()));
        }
    }
}
