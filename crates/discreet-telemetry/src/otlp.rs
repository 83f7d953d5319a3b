//! OTLP trace messages written straight as protobuf bytes.
//!
//! An access span is encoded once, on the call that made it, into the bytes of an OTLP
//! `Span`; the export task then only splices queued spans into an
//! `ExportTraceServiceRequest`. Going through the SDK's `SpanData` and
//! `opentelemetry-proto`'s structs instead meant three copies of every attribute (ours,
//! the SDK's, the proto's) and a deep clone of each batch: a quarter of the gateway's CPU
//! per call, and queued spans several times their wire size.
//!
//! Field numbers are those of `opentelemetry/proto/{trace,common,resource}/v1` and
//! `collector/trace/v1`; `tests` decodes the output with `opentelemetry-proto`'s own types.

/// Protobuf wire types used here.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// A protobuf message being written.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    fn tag(&mut self, field: u32, wire: u32) {
        put_varint(&mut self.buf, u64::from(field << 3 | wire));
    }

    pub(crate) fn bytes(&mut self, field: u32, value: &[u8]) {
        self.tag(field, LEN);
        put_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(value);
    }

    pub(crate) fn string(&mut self, field: u32, value: &str) {
        self.bytes(field, value.as_bytes());
    }

    pub(crate) fn varint(&mut self, field: u32, value: u64) {
        self.tag(field, VARINT);
        put_varint(&mut self.buf, value);
    }

    pub(crate) fn fixed64(&mut self, field: u32, value: u64) {
        self.tag(field, FIXED64);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn fixed32(&mut self, field: u32, value: u32) {
        self.tag(field, FIXED32);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// A nested message: written in place, its length put in front afterwards (one byte
    /// reserved; the rare longer length shifts the body).
    pub(crate) fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer)) {
        self.tag(field, LEN);
        let at = self.buf.len();
        self.buf.push(0);
        body(self);
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
        } else {
            let mut prefix = [0u8; 10];
            let n = varint_into(&mut prefix, len as u64);
            self.buf.splice(at..=at, prefix[..n].iter().copied());
        }
    }

    /// A nested message whose encoded length is known beforehand: no shifting.
    fn message_of_len(&mut self, field: u32, len: usize, body: impl FnOnce(&mut Writer)) {
        self.tag(field, LEN);
        put_varint(&mut self.buf, len as u64);
        let start = self.buf.len();
        body(self);
        debug_assert_eq!(
            self.buf.len() - start,
            len,
            "precomputed length of field {field}"
        );
    }

    // --- opentelemetry.proto.common.v1 -------------------------------------------------

    /// `KeyValue { key, value: AnyValue { string_value } }`.
    pub(crate) fn attr_str(&mut self, field: u32, key: &str, value: &str) {
        self.message(field, |w| {
            w.string(1, key);
            w.message(2, |v| v.string(1, value));
        });
    }

    /// `KeyValue { key, value: AnyValue { bool_value } }`.
    pub(crate) fn attr_bool(&mut self, field: u32, key: &str, value: bool) {
        self.message(field, |w| {
            w.string(1, key);
            w.message(2, |v| v.varint(2, u64::from(value)));
        });
    }

    /// `KeyValue { key, value: AnyValue { int_value } }` (int64: two's complement).
    pub(crate) fn attr_int(&mut self, field: u32, key: &str, value: i64) {
        self.message(field, |w| {
            w.string(1, key);
            w.message(2, |v| v.varint(3, value as u64));
        });
    }

    /// `KeyValue { key, value: AnyValue { array_value: [string_value...] } }`. The lists of
    /// field and category names are most of an access span, so their lengths are worked
    /// out first and nothing is shifted.
    pub(crate) fn attr_strs<S: AsRef<str>>(&mut self, field: u32, key: &str, values: &[S]) {
        // ArrayValue.values[] = AnyValue { string_value = 1 }.
        let array: usize = values
            .iter()
            .map(|s| delimited(delimited(s.as_ref().len())))
            .sum();
        let any_value = delimited(array);
        let key_value = delimited(key.len()) + delimited(any_value);
        self.message_of_len(field, key_value, |w| {
            w.string(1, key);
            w.message_of_len(2, any_value, |v| {
                v.message_of_len(5, array, |a| {
                    for s in values {
                        let s = s.as_ref();
                        a.message_of_len(1, delimited(s.len()), |item| item.string(1, s));
                    }
                });
            });
        });
    }
}

/// The encoded size of a length-delimited field with a one-byte tag (field numbers below
/// 16) and a body of `len` bytes.
fn delimited(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn varint_len(v: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes `v` as a varint at the start of `out`; returns its length.
fn varint_into(out: &mut [u8; 10], mut v: u64) -> usize {
    let mut n = 0;
    while v >= 0x80 {
        out[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    out[n] = v as u8;
    n + 1
}

/// `Span.kind`.
pub(crate) const SPAN_KIND_INTERNAL: u64 = 1;
pub(crate) const SPAN_KIND_SERVER: u64 = 2;
/// `Status.code`.
pub(crate) const STATUS_CODE_ERROR: u64 = 2;
/// `Span.flags`: the W3C trace flags, plus whether the parent's remoteness is known and is
/// remote (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`, `SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`).
pub(crate) const FLAGS_SAMPLED: u32 = 0x01;
pub(crate) const FLAGS_HAS_IS_REMOTE: u32 = 0x100;
pub(crate) const FLAGS_IS_REMOTE: u32 = 0x200;

/// What is the same in every export request: the resource (`service.*`) and the
/// instrumentation scope, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct ExportPrefix {
    /// `ResourceSpans.resource` (field 1), tag and length included.
    resource: Vec<u8>,
    /// `ScopeSpans.scope` (field 1), tag and length included.
    scope: Vec<u8>,
}

impl ExportPrefix {
    pub(crate) fn new(resource: &[(&str, &str)], scope_name: &str, scope_version: &str) -> Self {
        let mut r = Writer::default();
        r.message(1, |w| {
            for (key, value) in resource {
                w.attr_str(1, key, value);
            }
        });
        let mut s = Writer::default();
        s.message(1, |w| {
            w.string(1, scope_name);
            w.string(2, scope_version);
        });
        ExportPrefix {
            resource: r.buf,
            scope: s.buf,
        }
    }

    /// `ExportTraceServiceRequest { resource_spans: [{ resource, scope_spans: [{ scope,
    /// spans }] }] }`, each of `spans` an encoded `Span` (without tag or length).
    pub(crate) fn request<S: AsRef<[u8]>>(&self, spans: &[S]) -> Vec<u8> {
        // Lengths worked out first: a request is up to a few hundred KiB, and a nested
        // message whose length prefix outgrows its byte would shift all of it, twice.
        let scope_spans = self.scope.len()
            + spans
                .iter()
                .map(|s| delimited(s.as_ref().len()))
                .sum::<usize>();
        let resource_spans = self.resource.len() + delimited(scope_spans);
        let mut w = Writer::with_capacity(delimited(resource_spans));
        w.message_of_len(1, resource_spans, |resource_spans| {
            resource_spans.buf.extend_from_slice(&self.resource);
            resource_spans.message_of_len(2, scope_spans, |scope_spans| {
                scope_spans.buf.extend_from_slice(&self.scope);
                for span in spans {
                    scope_spans.bytes(2, span.as_ref());
                }
            });
        });
        w.buf
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use opentelemetry_proto::tonic::{
        collector::trace::v1::ExportTraceServiceRequest,
        common::v1::{AnyValue, any_value::Value},
    };
    use prost::Message;

    use super::*;

    #[test]
    fn lengths_of_every_size_round_trip() {
        // One-byte lengths are patched in place; longer ones shift the body.
        for n in [0usize, 1, 120, 127, 128, 300, 16_383, 16_384, 70_000] {
            let text = "x".repeat(n);
            let mut any = Writer::default();
            any.message(5, |array| array.message(1, |v| v.string(1, &text)));
            let value = AnyValue::decode(any.buf.as_slice()).unwrap();
            let Some(Value::ArrayValue(array)) = value.value else {
                panic!("not an array for {n}");
            };
            assert_eq!(array.values[0].value, Some(Value::StringValue(text)), "{n}");
        }
    }

    #[test]
    fn string_lists_of_every_size_round_trip() {
        // attr_strs writes precomputed lengths: check them across the varint boundaries of
        // the items, the array, the value and the key-value.
        use opentelemetry_proto::tonic::common::v1::KeyValue;
        for (count, n) in [
            (0, 0),
            (1, 0),
            (1, 124),
            (1, 125),
            (2, 63),
            (3, 200),
            (200, 80),
            (1, 16_380),
            (2, 16_380),
        ] {
            let values: Vec<String> = (0..count)
                .map(|i| format!("{i}").repeat(n.max(1))[..n].to_owned())
                .collect();
            let mut w = Writer::default();
            w.attr_strs(9, "discreet.fields.released", &values);
            // Skip the outer tag and length: what follows is the KeyValue.
            let mut body = &w.buf[1..];
            let len = prost::encoding::decode_varint(&mut body).unwrap();
            assert_eq!(len as usize, body.len(), "{count} x {n}");
            let kv = KeyValue::decode(body).unwrap();
            assert_eq!(kv.key, "discreet.fields.released");
            let Some(Value::ArrayValue(array)) = kv.value.unwrap().value else {
                panic!("not an array for {count} x {n}");
            };
            let got: Vec<_> = array
                .values
                .into_iter()
                .map(|v| match v.value {
                    Some(Value::StringValue(s)) => s,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(got, values, "{count} x {n}");
        }
        for (v, len) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(v), len, "{v}");
        }
    }

    /// Requests of every size class: the lengths at both levels are worked out before the
    /// bytes are written, and must be exact at one, two and three length bytes.
    #[test]
    fn export_requests_of_any_size_decode_whole() {
        let prefix = ExportPrefix::new(&[("service.name", "discreet")], "discreet.audit", "1");
        for (count, text) in [
            (0, 0),
            (1, 10),
            (1, 200),
            (3, 5_000),
            (40, 3_000),
            (300, 3_000),
        ] {
            let mut span = Writer::default();
            span.string(5, &"s".repeat(text));
            let spans = vec![span.buf; count];
            let bytes = prefix.request(&spans);
            let request = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
            let got = &request.resource_spans[0].scope_spans[0].spans;
            assert_eq!(got.len(), count, "{count} x {text}");
            assert!(got.iter().all(|s| s.name.len() == text), "{count} x {text}");
        }
    }

    #[test]
    fn an_export_request_decodes_with_the_official_types() {
        let prefix = ExportPrefix::new(&[("service.name", "discreet")], "discreet.audit", "1.2.3");
        let mut span = Writer::default();
        span.bytes(1, &[7; 16]);
        span.string(5, "discreet.access");
        span.attr_int(9, "n", -5);
        span.attr_bool(9, "b", true);
        span.attr_strs(9, "list", &["a", "b"]);
        let request = ExportTraceServiceRequest::decode(
            prefix.request(&[span.buf.clone(), span.buf]).as_slice(),
        )
        .unwrap();
        let rs = &request.resource_spans[0];
        let resource = rs.resource.as_ref().unwrap();
        assert_eq!(resource.attributes[0].key, "service.name");
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "discreet.audit");
        assert_eq!(ss.scope.as_ref().unwrap().version, "1.2.3");
        assert_eq!(ss.spans.len(), 2);
        let s = &ss.spans[0];
        assert_eq!(s.trace_id, vec![7; 16]);
        assert_eq!(s.name, "discreet.access");
        let values: Vec<_> = s
            .attributes
            .iter()
            .map(|kv| kv.value.clone().unwrap().value.unwrap())
            .collect();
        assert_eq!(values[0], Value::IntValue(-5));
        assert_eq!(values[1], Value::BoolValue(true));
        let Value::ArrayValue(list) = &values[2] else {
            panic!("not an array");
        };
        assert_eq!(list.values.len(), 2);
    }
}
