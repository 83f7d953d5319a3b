//! Protobuf wire-format primitives: varints, tags and value boundaries.
use crate::RedactError;

/// How deep messages may nest before the input is refused (protobuf's own default).
pub const MAX_DEPTH: u32 = 100;

pub(crate) const VARINT: u8 = 0;
pub(crate) const I64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const I32: u8 = 5;

const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Reads a varint at `buf[pos..]`, returning it and the position after it.
#[inline]
pub(crate) fn read_varint(buf: &[u8], pos: usize) -> Result<(u64, usize), RedactError> {
    let mut value: u64 = 0;
    let mut i = pos;
    for shift in (0..70).step_by(7) {
        let Some(&b) = buf.get(i) else {
            return Err(RedactError::Truncated);
        };
        i += 1;
        if shift == 63 && b > 1 {
            return Err(RedactError::VarintOverflow);
        }
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok((value, i));
        }
    }
    Err(RedactError::VarintOverflow)
}

/// Reads a tag: field number and wire type.
#[inline]
pub(crate) fn read_tag(buf: &[u8], pos: usize) -> Result<(u32, u8, usize), RedactError> {
    let (tag, next) = read_varint(buf, pos)?;
    let number = tag >> 3;
    if number == 0 || number > MAX_FIELD_NUMBER {
        return Err(RedactError::BadFieldNumber);
    }
    #[allow(clippy::cast_possible_truncation)] // bounded by MAX_FIELD_NUMBER and 0..8
    Ok((number as u32, (tag & 7) as u8, next))
}

/// Where the value that starts at `pos` ends, and for length-delimited values where its
/// payload starts. Groups are refused: proto3 has none, and skipping them safely would
/// need a second parser.
#[inline]
pub(crate) fn value_end(
    buf: &[u8],
    pos: usize,
    wire_type: u8,
    field: u32,
) -> Result<(usize, usize), RedactError> {
    match wire_type {
        VARINT => read_varint(buf, pos).map(|(_, end)| (pos, end)),
        I64 => fixed_end(buf, pos, 8),
        I32 => fixed_end(buf, pos, 4),
        LEN => {
            let (len, start) = read_varint(buf, pos)?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= buf.len())
                .ok_or(RedactError::LengthOverrun { field })?;
            Ok((start, end))
        }
        other => Err(RedactError::UnsupportedWireType(other)),
    }
}

fn fixed_end(buf: &[u8], pos: usize, n: usize) -> Result<(usize, usize), RedactError> {
    let end = pos + n;
    if end > buf.len() {
        Err(RedactError::Truncated)
    } else {
        Ok((pos, end))
    }
}

#[inline]
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        #[allow(clippy::cast_possible_truncation)]
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(v as u8);
}

#[inline]
pub(crate) fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
pub(crate) fn write_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    write_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// Writes `payload` as a length-delimited field.
pub(crate) fn write_len_field(out: &mut Vec<u8>, field: u32, payload: &[u8]) {
    write_tag(out, field, LEN);
    write_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

pub(crate) fn read_fixed64(buf: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[..8]);
    u64::from_le_bytes(b)
}

pub(crate) fn read_fixed32(buf: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[..4]);
    u32::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn varints_round_trip_and_lengths_agree() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            assert_eq!(read_varint(&out, 0).unwrap(), (v, out.len()));
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_errors() {
        assert_eq!(
            read_varint(&[0x80; 11], 0),
            Err(RedactError::VarintOverflow)
        );
        assert_eq!(
            read_varint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                0
            ),
            Err(RedactError::VarintOverflow)
        );
        assert_eq!(read_varint(&[0x80, 0x80], 0), Err(RedactError::Truncated));
    }

    #[test]
    fn field_number_zero_and_groups_are_refused() {
        assert_eq!(read_tag(&[0x02], 0), Err(RedactError::BadFieldNumber));
        assert_eq!(
            value_end(&[], 0, 3, 1),
            Err(RedactError::UnsupportedWireType(3))
        );
    }

    #[test]
    fn a_length_past_the_end_is_an_overrun() {
        // declared length 4 GiB - 1 with 1 byte present
        let mut buf = Vec::new();
        write_varint(&mut buf, u64::from(u32::MAX));
        buf.push(1);
        assert_eq!(
            value_end(&buf, 0, LEN, 7),
            Err(RedactError::LengthOverrun { field: 7 })
        );
    }
}
