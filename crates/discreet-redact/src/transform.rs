//! Value transforms: what a plan does to a field that is neither kept nor dropped.
//!
//! Every transform either produces a value of the field's own type or withholds the field
//! (a date that does not parse cannot be generalised, so it is not released at all).
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    RedactError, ScalarKind,
    date::{CivilDate, age_band},
    wire::{
        I32, I64, VARINT, read_fixed32, read_fixed64, read_varint, write_len_field, write_tag,
        write_varint,
    },
};

/// An HMAC-SHA256 key for one purpose. Two purposes get different keys from the same
/// secret, so their pseudonyms cannot be joined.
#[derive(Clone)]
pub struct PseudonymKey(Hmac<Sha256>);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

impl PseudonymKey {
    /// Derives the key of `purpose` from a secret: HMAC(secret, "discreet/pseudonym/v1/" + purpose).
    #[must_use]
    pub fn derive(secret: &[u8], purpose: &str) -> PseudonymKey {
        let derived = hmac_once(secret, &[b"discreet/pseudonym/v1/", purpose.as_bytes()]);
        PseudonymKey(keyed(&derived))
    }

    /// The first 128 bits of HMAC(key, value).
    #[must_use]
    pub fn digest16(&self, value: &[u8]) -> [u8; 16] {
        let mut mac = self.0.clone();
        mac.update(value);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// The pseudonym of a string: 32 lowercase hex digits.
    #[must_use]
    pub fn pseudonym(&self, value: &[u8]) -> String {
        let d = self.digest16(value);
        let mut s = String::with_capacity(32);
        for b in d {
            s.push(hex_digit(b >> 4));
            s.push(hex_digit(b & 0xf));
        }
        s
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; this cannot fail.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    }
}

#[allow(clippy::panic)]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 accepts keys of every length")
}

fn hmac_once(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed(key);
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn hex_digit(n: u8) -> char {
    char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
}

/// A transform of one value.
#[derive(Clone, Debug)]
pub enum Transform {
    /// `***` followed by the last N characters (all masked when the value is that short).
    MaskShowLast(u32),
    /// `***@domain`: the local part of an e-mail address masked.
    MaskEmail,
    /// A fixed replacement string.
    MaskFixed(Box<str>),
    /// HMAC-SHA256 with the purpose's key: 32 hex digits for strings, 16 bytes for bytes,
    /// the first 8 bytes for 64-bit integers.
    Pseudonymize(PseudonymKey),
    /// An ISO date reduced to its year.
    DateYear,
    /// An ISO birth date replaced by the subject's age band ("25-34") on the day of the call.
    DateAgeBand,
    /// A coordinate snapped to a grid of this many degrees (0.1 city, 1 region, 10 country).
    CoordinateGrid(f64),
    /// A number rounded down to a multiple of this.
    NumberBucket(u64),
    /// The first N characters (strings) or bytes.
    Truncate(u32),
}

impl Transform {
    /// Whether this transform can produce a value of `kind`.
    #[must_use]
    pub fn fits(&self, kind: ScalarKind) -> bool {
        use ScalarKind as K;
        match self {
            Transform::MaskShowLast(_) | Transform::MaskEmail | Transform::MaskFixed(_) => {
                kind == K::String
            }
            Transform::DateYear | Transform::DateAgeBand => kind == K::String,
            Transform::Truncate(_) => matches!(kind, K::String | K::Bytes),
            Transform::Pseudonymize(_) => {
                matches!(
                    kind,
                    K::String
                        | K::Bytes
                        | K::Int64
                        | K::Uint64
                        | K::Sint64
                        | K::Fixed64
                        | K::Sfixed64
                )
            }
            Transform::CoordinateGrid(_) => matches!(kind, K::Double | K::Float),
            Transform::NumberBucket(_) => {
                !matches!(kind, K::String | K::Bytes | K::Message | K::Bool | K::Enum)
            }
        }
    }

    /// Transforms a string; `None` withholds it.
    #[must_use]
    pub fn apply_str(&self, s: &str, now_unix: i64) -> Option<String> {
        Some(match self {
            // The last N letters or digits, with the separators between them: a phone
            // number written `+33 1 99 00 24 70` shows `***24 70`, four digits, as
            // `show_last: 4` means (counting spaces it showed three).
            Transform::MaskShowLast(n) => {
                let n = *n as usize;
                let significant = s.chars().filter(|c| c.is_alphanumeric()).count();
                if significant <= n {
                    "***".to_owned()
                } else {
                    let mut seen = 0;
                    let start = s
                        .char_indices()
                        .rev()
                        .find(|(_, c)| {
                            seen += usize::from(c.is_alphanumeric());
                            seen == n && c.is_alphanumeric()
                        })
                        .map_or(s.len(), |(i, _)| i);
                    format!("***{}", &s[start..])
                }
            }
            Transform::MaskEmail => match s.rsplit_once('@') {
                Some((local, domain)) if !local.is_empty() => format!("***@{domain}"),
                _ => "***".to_owned(),
            },
            Transform::MaskFixed(text) => text.to_string(),
            Transform::Pseudonymize(key) => key.pseudonym(s.as_bytes()),
            Transform::DateYear => format!("{:04}", CivilDate::parse(s)?.year),
            Transform::DateAgeBand => {
                age_band(CivilDate::parse(s)?.age_on(CivilDate::from_unix(now_unix))).to_owned()
            }
            Transform::Truncate(n) => s.chars().take(*n as usize).collect(),
            Transform::CoordinateGrid(_) | Transform::NumberBucket(_) => return None,
        })
    }

    fn apply_bytes(&self, b: &[u8]) -> Option<Vec<u8>> {
        match self {
            Transform::Pseudonymize(key) => Some(key.digest16(b).to_vec()),
            Transform::Truncate(n) => Some(b[..b.len().min(*n as usize)].to_vec()),
            _ => None,
        }
    }

    fn apply_number(&self, v: Number) -> Option<Number> {
        match (self, v) {
            (Transform::NumberBucket(b), Number::Signed(x)) => {
                let b = i64::try_from(*b).ok()?.max(1);
                Some(Number::Signed(x.div_euclid(b).checked_mul(b)?))
            }
            (Transform::NumberBucket(b), Number::Unsigned(x)) => {
                Some(Number::Unsigned(x / (*b).max(1) * (*b).max(1)))
            }
            #[allow(clippy::cast_precision_loss)]
            (Transform::NumberBucket(b), Number::Float(x)) => {
                let b = (*b).max(1) as f64;
                Some(Number::Float((x / b).floor() * b))
            }
            (Transform::CoordinateGrid(g), Number::Float(x)) if *g > 0.0 => {
                Some(Number::Float(snap_to_grid(x, *g)))
            }
            (Transform::Pseudonymize(key), Number::Signed(x)) => {
                let d = key.digest16(x.to_string().as_bytes());
                let mut b = [0u8; 8];
                b.copy_from_slice(&d[..8]);
                Some(Number::Signed(i64::from_le_bytes(b)))
            }
            (Transform::Pseudonymize(key), Number::Unsigned(x)) => {
                let d = key.digest16(x.to_string().as_bytes());
                let mut b = [0u8; 8];
                b.copy_from_slice(&d[..8]);
                Some(Number::Unsigned(u64::from_le_bytes(b)))
            }
            _ => None,
        }
    }

    /// Transforms one value of field `field` (its payload for strings and bytes, its raw
    /// bytes otherwise) and writes the whole field. `Ok(false)`: withheld.
    pub(crate) fn write_field(
        &self,
        field: u32,
        kind: ScalarKind,
        value: &[u8],
        now_unix: i64,
        out: &mut Vec<u8>,
    ) -> Result<bool, RedactError> {
        match kind {
            ScalarKind::String => {
                let s =
                    std::str::from_utf8(value).map_err(|_| RedactError::InvalidUtf8 { field })?;
                Ok(self.apply_str(s, now_unix).is_some_and(|t| {
                    write_len_field(out, field, t.as_bytes());
                    true
                }))
            }
            ScalarKind::Bytes => Ok(self.apply_bytes(value).is_some_and(|t| {
                write_len_field(out, field, &t);
                true
            })),
            _ => {
                let Some(n) = decode_number(kind, value)?.and_then(|n| self.apply_number(n)) else {
                    return Ok(false);
                };
                let mark = out.len();
                write_tag(out, field, kind.wire_type());
                if encode_number(kind, n, out) {
                    Ok(true)
                } else {
                    out.truncate(mark);
                    Ok(false)
                }
            }
        }
    }

    /// Transforms every element of a packed run and writes the re-packed field.
    pub(crate) fn write_packed(
        &self,
        field: u32,
        kind: ScalarKind,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, RedactError> {
        let mut body = Vec::with_capacity(payload.len());
        let mut pos = 0;
        while pos < payload.len() {
            let end = match kind.wire_type() {
                I64 => pos + 8,
                I32 => pos + 4,
                _ => read_varint(payload, pos)?.1,
            };
            let raw = payload
                .get(pos..end)
                .ok_or(RedactError::BadPacked { field })?;
            let Some(n) = decode_number(kind, raw)?.and_then(|n| self.apply_number(n)) else {
                return Ok(false);
            };
            if !encode_number(kind, n, &mut body) {
                return Ok(false);
            }
            pos = end;
        }
        write_len_field(out, field, &body);
        Ok(true)
    }
}

/// A decoded number, widened.
#[derive(Clone, Copy, Debug)]
enum Number {
    Signed(i64),
    Unsigned(u64),
    Float(f64),
}

fn decode_number(kind: ScalarKind, raw: &[u8]) -> Result<Option<Number>, RedactError> {
    use ScalarKind as K;
    Ok(match kind.wire_type() {
        VARINT => {
            let (v, _) = read_varint(raw, 0)?;
            #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
            match kind {
                K::Int32 => Some(Number::Signed(i64::from(v as i32))),
                K::Int64 => Some(Number::Signed(v as i64)),
                K::Uint32 => Some(Number::Unsigned(u64::from(v as u32))),
                K::Uint64 => Some(Number::Unsigned(v)),
                K::Sint32 | K::Sint64 => {
                    Some(Number::Signed(((v >> 1) as i64) ^ -((v & 1) as i64)))
                }
                _ => None,
            }
        }
        I64 => {
            let v = read_fixed64(raw);
            #[allow(clippy::cast_possible_wrap)]
            match kind {
                K::Fixed64 => Some(Number::Unsigned(v)),
                K::Sfixed64 => Some(Number::Signed(v as i64)),
                K::Double => Some(Number::Float(f64::from_bits(v))),
                _ => None,
            }
        }
        I32 => {
            let v = read_fixed32(raw);
            #[allow(clippy::cast_possible_wrap)]
            match kind {
                K::Fixed32 => Some(Number::Unsigned(u64::from(v))),
                K::Sfixed32 => Some(Number::Signed(i64::from(v as i32))),
                K::Float => Some(Number::Float(f64::from(f32::from_bits(v)))),
                _ => None,
            }
        }
        _ => None,
    })
}

/// Encodes `n` as `kind`; false if it does not fit (a bucket below `i32::MIN`, say).
fn encode_number(kind: ScalarKind, n: Number, out: &mut Vec<u8>) -> bool {
    use ScalarKind as K;
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    match (kind, n) {
        (K::Int32, Number::Signed(v)) if i32::try_from(v).is_ok() => write_varint(out, v as u64),
        (K::Int64, Number::Signed(v)) => write_varint(out, v as u64),
        (K::Uint32, Number::Unsigned(v)) if u32::try_from(v).is_ok() => write_varint(out, v),
        (K::Uint64, Number::Unsigned(v)) => write_varint(out, v),
        (K::Sint32, Number::Signed(v)) if i32::try_from(v).is_ok() => {
            write_varint(out, ((v << 1) ^ (v >> 63)) as u64)
        }
        (K::Sint64, Number::Signed(v)) => write_varint(out, ((v << 1) ^ (v >> 63)) as u64),
        (K::Fixed64, Number::Unsigned(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (K::Sfixed64, Number::Signed(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (K::Double, Number::Float(v)) => out.extend_from_slice(&v.to_le_bytes()),
        (K::Fixed32, Number::Unsigned(v)) if u32::try_from(v).is_ok() => {
            out.extend_from_slice(&(v as u32).to_le_bytes())
        }
        (K::Sfixed32, Number::Signed(v)) if i32::try_from(v).is_ok() => {
            out.extend_from_slice(&(v as i32).to_le_bytes())
        }
        (K::Float, Number::Float(v)) => out.extend_from_slice(&(v as f32).to_le_bytes()),
        _ => return false,
    }
    true
}

/// `x` snapped down to a grid of `g` degrees. Sub-degree grids divide by a whole number of
/// cells per degree, so 52.37 on a 0.1° grid is 52.3 exactly, not 52.300000000000004
/// (what `floor(x / 0.1) * 0.1` gives, since 0.1 has no exact binary form).
#[must_use]
pub fn snap_to_grid(x: f64, g: f64) -> f64 {
    if g < 1.0 {
        let cells = (1.0 / g).round();
        (x * cells).floor() / cells
    } else {
        (x / g).floor() * g
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: i64 = 1_795_000_000; // 2026-11-18

    #[test]
    fn string_transforms() {
        assert_eq!(
            Transform::MaskShowLast(4)
                .apply_str("+49 30 1234567", NOW)
                .unwrap(),
            "***4567"
        );
        assert_eq!(
            Transform::MaskShowLast(4).apply_str("123", NOW).unwrap(),
            "***"
        );
        // Separators are shown but not counted: four digits, not three.
        assert_eq!(
            Transform::MaskShowLast(4)
                .apply_str("+33 1 99 00 24 70", NOW)
                .unwrap(),
            "***24 70"
        );
        assert_eq!(
            Transform::MaskShowLast(4).apply_str("12-34", NOW).unwrap(),
            "***"
        );
        assert_eq!(
            Transform::MaskShowLast(0).apply_str("12-34", NOW).unwrap(),
            "***"
        );
        assert_eq!(
            Transform::MaskEmail
                .apply_str("ada@example.org", NOW)
                .unwrap(),
            "***@example.org"
        );
        assert_eq!(
            Transform::MaskEmail
                .apply_str("not-an-address", NOW)
                .unwrap(),
            "***"
        );
        assert_eq!(
            Transform::DateYear.apply_str("1990-04-12", NOW).unwrap(),
            "1990"
        );
        assert_eq!(
            Transform::DateAgeBand.apply_str("1990-04-12", NOW).unwrap(),
            "35-44"
        );
        assert_eq!(Transform::DateAgeBand.apply_str("last tuesday", NOW), None);
        assert_eq!(
            Transform::Truncate(2).apply_str("10115", NOW).unwrap(),
            "10"
        );
        assert_eq!(Transform::Truncate(2).apply_str("żółw", NOW).unwrap(), "żó");
    }

    #[test]
    fn pseudonyms_are_stable_per_purpose_and_differ_across_purposes() {
        let a = PseudonymKey::derive(b"secret", "personalize");
        let b = PseudonymKey::derive(b"secret", "marketing.communications.email");
        assert_eq!(a.pseudonym(b"u-1"), a.pseudonym(b"u-1"));
        assert_ne!(a.pseudonym(b"u-1"), b.pseudonym(b"u-1"));
        assert_eq!(a.pseudonym(b"u-1").len(), 32);
        assert_eq!(format!("{a:?}"), "PseudonymKey(..)");
    }

    #[test]
    fn numbers_bucket_and_snap() {
        let mut out = Vec::new();
        // int64 field 3 = -1234 bucketed by 1000 -> -2000
        let mut raw = Vec::new();
        write_varint(&mut raw, (-1234i64) as u64);
        assert!(
            Transform::NumberBucket(1000)
                .write_field(3, ScalarKind::Int64, &raw, NOW, &mut out)
                .unwrap()
        );
        let (v, _) = read_varint(&out, 1).unwrap();
        assert_eq!(v as i64, -2000);
        out.clear();
        let lat = 52.520_008f64.to_le_bytes();
        assert!(
            Transform::CoordinateGrid(0.1)
                .write_field(1, ScalarKind::Double, &lat, NOW, &mut out)
                .unwrap()
        );
        let snapped = f64::from_bits(read_fixed64(&out[1..]));
        assert_eq!(snapped, 52.5);
        assert_eq!(snap_to_grid(52.37, 0.1), 52.3, "no 52.300000000000004");
        assert_eq!(snap_to_grid(-4.91, 0.1), -5.0);
        assert_eq!(snap_to_grid(47.0, 10.0), 40.0);
    }

    #[test]
    fn an_int32_bucket_that_overflows_is_withheld() {
        let mut raw = Vec::new();
        write_varint(&mut raw, i64::from(i32::MIN) as u64);
        let mut out = Vec::new();
        assert!(
            !Transform::NumberBucket(1000)
                .write_field(1, ScalarKind::Int32, &raw, NOW, &mut out)
                .unwrap()
        );
    }
}
