//! Top-level fields of a message, for callers that route whole sub-messages (the gateway
//! splits a batch response into its records and filters subject ids out of a request)
//! without a plan.
use crate::{
    RedactError,
    wire::{LEN, read_tag, value_end, write_len_field},
};

/// One top-level field occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireField<'a> {
    /// The field number.
    pub number: u32,
    /// Whether it is length-delimited (a string, bytes, message or packed run).
    pub length_delimited: bool,
    /// The payload of a length-delimited field; the raw value bytes otherwise.
    pub payload: &'a [u8],
    /// The whole occurrence, tag included: copy this to keep the field as it was.
    pub raw: &'a [u8],
}

/// The top-level fields of `input`, in wire order. A malformed field yields one error and
/// ends the iteration.
pub fn fields(input: &[u8]) -> impl Iterator<Item = Result<WireField<'_>, RedactError>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= input.len() {
            return None;
        }
        let start = pos;
        let step = read_tag(input, pos).and_then(|(number, wire_type, after_tag)| {
            value_end(input, after_tag, wire_type, number)
                .map(|(payload_start, end)| (number, wire_type, payload_start, end))
        });
        match step {
            Ok((number, wire_type, payload_start, end)) => {
                pos = end;
                Some(Ok(WireField {
                    number,
                    length_delimited: wire_type == LEN,
                    payload: input.get(payload_start..end).unwrap_or_default(),
                    raw: input.get(start..end).unwrap_or_default(),
                }))
            }
            Err(e) => {
                pos = input.len();
                Some(Err(e))
            }
        }
    })
}

/// Appends field `number` with a length-delimited `payload` (a string or a message).
pub fn append_length_delimited(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    write_len_field(out, number, payload);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_rebuilds() {
        let mut msg = Vec::new();
        append_length_delimited(&mut msg, 1, b"alpha");
        msg.extend_from_slice(&[0x10, 0x96, 0x01]); // field 2 varint 150
        append_length_delimited(&mut msg, 1, b"");
        let got: Vec<_> = fields(&msg).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].number, got[0].payload), (1, &b"alpha"[..]));
        assert!(!got[1].length_delimited);
        assert_eq!(got[1].raw, &[0x10, 0x96, 0x01]);
        assert_eq!(got[2].payload, b"");
        let rebuilt: Vec<u8> = got.iter().flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(rebuilt, msg);
    }

    #[test]
    fn malformed_input_ends_with_one_error() {
        let msg = [0x0a, 0x05, b'a']; // length 5, one byte present
        let got: Vec<_> = fields(&msg).collect();
        assert_eq!(got.len(), 1);
        assert!(got[0].is_err());
        assert!(fields(&[0x00]).next().unwrap().is_err()); // field number 0
    }
}
