//! The two things the gateway reads from an X.509 certificate's DER bytes: when it stops
//! being valid (`notAfter`: reported for the certificate it serves, so an operator can
//! alert days before clients refuse it) and its URI subject alternative names (a caller's
//! SPIFFE ID, `spiffe.rs`).
//!
//! Only the path to those is walked (RFC 5280 4.1: `Certificate` -> `tbsCertificate` ->
//! optional version, serial, signature algorithm, issuer, `validity`, subject, public key,
//! optional unique ids, `[3] extensions`); nothing is verified here: rustls has verified
//! the chain (a client's) or the key pair (ours) before these are read. Plain data, no I/O;
//! fuzzed by `fuzz/fuzz_targets/certificate.rs`.

/// Why a certificate's expiry could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertificateError {
    #[error("truncated or malformed DER")]
    Malformed,
    #[error("unexpected structure: expected {0}")]
    Unexpected(&'static str),
    #[error("validity time is not UTCTime or GeneralizedTime in RFC 5280 form")]
    BadTime,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0; // [0] EXPLICIT
const UTC_TIME: u8 = 0x17;
const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const URI_NAME: u8 = 0x86; // GeneralName uniformResourceIdentifier [6] IMPLICIT IA5String
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const GENERALIZED_TIME: u8 = 0x18;

/// The parts of `tbsCertificate` read here.
struct Tbs<'a> {
    validity: &'a [u8],
    /// The contents of `[3] extensions` (a SEQUENCE OF Extension), if present.
    extensions: Option<&'a [u8]>,
}

fn tbs(der: &[u8]) -> Result<Tbs<'_>, CertificateError> {
    let (certificate, _) = expect(der, SEQUENCE, "Certificate SEQUENCE")?;
    let (tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate SEQUENCE")?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION) {
        rest = element(rest)?.2;
    }
    rest = expect(rest, INTEGER, "serialNumber INTEGER")?.1;
    rest = expect(rest, SEQUENCE, "signature AlgorithmIdentifier")?.1;
    rest = expect(rest, SEQUENCE, "issuer Name")?.1;
    let (validity, mut rest) = expect(rest, SEQUENCE, "validity SEQUENCE")?;
    rest = expect(rest, SEQUENCE, "subject Name")?.1;
    rest = expect(rest, SEQUENCE, "subjectPublicKeyInfo")?.1;
    // Then optional issuerUniqueID [1] and subjectUniqueID [2], then extensions [3].
    let mut extensions = None;
    while !rest.is_empty() {
        let (tag, contents, after) = element(rest)?;
        if tag == EXTENSIONS {
            extensions = Some(expect(contents, SEQUENCE, "Extensions SEQUENCE")?.0);
        }
        rest = after;
    }
    Ok(Tbs {
        validity,
        extensions,
    })
}

/// The certificate's `notAfter`, in seconds since the Unix epoch (UTC).
pub(crate) fn not_after(der: &[u8]) -> Result<i64, CertificateError> {
    let validity = tbs(der)?.validity;
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    match tag {
        UTC_TIME => utc_time(time),
        GENERALIZED_TIME => generalized_time(time),
        _ => Err(CertificateError::BadTime),
    }
}

/// The URIs among the certificate's subject alternative names, in order (none without
/// the extension). A URI that is not ASCII (IA5String) makes the certificate malformed.
pub(crate) fn uri_names(der: &[u8]) -> Result<Vec<&str>, CertificateError> {
    let mut names = Vec::new();
    let Some(mut extensions) = tbs(der)?.extensions else {
        return Ok(names);
    };
    while !extensions.is_empty() {
        let (extension, rest) = expect(extensions, SEQUENCE, "Extension SEQUENCE")?;
        extensions = rest;
        let (id, mut fields) = expect(extension, OID, "extnID OBJECT IDENTIFIER")?;
        if id != SUBJECT_ALT_NAME {
            continue;
        }
        if fields.first() == Some(&BOOLEAN) {
            fields = element(fields)?.2; // critical
        }
        let (value, _) = expect(fields, OCTET_STRING, "extnValue OCTET STRING")?;
        let (mut general_names, _) = expect(value, SEQUENCE, "GeneralNames SEQUENCE")?;
        while !general_names.is_empty() {
            let (tag, name, rest) = element(general_names)?;
            general_names = rest;
            if tag == URI_NAME {
                let uri = std::str::from_utf8(name)
                    .ok()
                    .filter(|u| u.is_ascii())
                    .ok_or(CertificateError::Malformed)?;
                names.push(uri);
            }
        }
    }
    Ok(names)
}

/// The contents of the element at the start of `input` if its tag is `tag`, and what
/// follows it.
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), CertificateError> {
    let (found, contents, rest) = element(input)?;
    if found == tag {
        Ok((contents, rest))
    } else {
        Err(CertificateError::Unexpected(what))
    }
}

/// One DER element: its tag (single-byte tags only, all RFC 5280 needs on this path),
/// its contents and what follows it.
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), CertificateError> {
    let (&tag, rest) = input.split_first().ok_or(CertificateError::Malformed)?;
    if tag & 0x1f == 0x1f {
        return Err(CertificateError::Malformed); // multi-byte tag
    }
    let (&first, mut rest) = rest.split_first().ok_or(CertificateError::Malformed)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        // Long form: 1-4 length bytes (0x80 alone is BER's indefinite length, not DER).
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err(CertificateError::Malformed);
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    if rest.len() < len {
        return Err(CertificateError::Malformed);
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

/// `YYMMDDHHMMSSZ`; years 50-99 are 19xx, 00-49 are 20xx (RFC 5280 4.1.2.5.1).
fn utc_time(text: &[u8]) -> Result<i64, CertificateError> {
    let [y1, y2, rest @ ..] = text else {
        return Err(CertificateError::BadTime);
    };
    let yy = digits(&[*y1, *y2])?;
    let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
    seconds(year, rest)
}

/// `YYYYMMDDHHMMSSZ` (RFC 5280 4.1.2.5.2: no fractions, always UTC).
fn generalized_time(text: &[u8]) -> Result<i64, CertificateError> {
    let [y1, y2, y3, y4, rest @ ..] = text else {
        return Err(CertificateError::BadTime);
    };
    seconds(digits(&[*y1, *y2, *y3, *y4])?, rest)
}

/// `MMDDHHMMSSZ` of `year`, as seconds since the epoch.
fn seconds(year: i64, text: &[u8]) -> Result<i64, CertificateError> {
    let [m1, m2, d1, d2, h1, h2, n1, n2, s1, s2, b'Z'] = text else {
        return Err(CertificateError::BadTime);
    };
    let month = digits(&[*m1, *m2])?;
    let day = digits(&[*d1, *d2])?;
    let (hour, minute, second) = (
        digits(&[*h1, *h2])?,
        digits(&[*n1, *n2])?,
        digits(&[*s1, *s2])?,
    );
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(CertificateError::BadTime);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(text: &[u8]) -> Result<i64, CertificateError> {
    text.iter().try_fold(0i64, |n, &c| {
        if c.is_ascii_digit() {
            Ok(n * 10 + i64::from(c - b'0'))
        } else {
            Err(CertificateError::BadTime)
        }
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rustls_pki_types::{CertificateDer, pem::PemObject};

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name);
        CertificateDer::from_pem_file(path).unwrap().to_vec()
    }

    /// A certificate whose validity holds `not_after` (tag and text), the rest minimal.
    fn certificate(tag: u8, not_after: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if contents.len() < 0x80 {
                out.push(u8::try_from(contents.len()).unwrap());
            } else {
                out.push(0x82);
                out.extend_from_slice(&u16::try_from(contents.len()).unwrap().to_be_bytes());
            }
            out.extend_from_slice(contents);
            out
        }
        let validity = [tlv(UTC_TIME, b"700101000000Z"), tlv(tag, not_after)].concat();
        let tbs = [
            tlv(VERSION, &tlv(INTEGER, &[2])),
            tlv(INTEGER, &[1, 2, 3]),
            tlv(SEQUENCE, &[]),
            tlv(SEQUENCE, &[0; 200]), // a long-form length on the way
            tlv(SEQUENCE, &validity),
            tlv(SEQUENCE, &[]), // subject
            tlv(SEQUENCE, &[]), // subjectPublicKeyInfo
        ]
        .concat();
        tlv(SEQUENCE, &tlv(SEQUENCE, &tbs))
    }

    #[test]
    fn reads_the_fixture_certificates_as_openssl_does() {
        // `openssl x509 -enddate`: Oct 30 14:05:33 2126 GMT (a GeneralizedTime, past 2049).
        assert_eq!(not_after(&fixture("tls-cert.pem")), Ok(4_949_042_733));
        assert_eq!(not_after(&fixture("ca-cert.pem")), Ok(4_949_042_733));
    }

    #[test]
    fn utc_time_years_wrap_at_1950() {
        assert_eq!(
            not_after(&certificate(UTC_TIME, b"500101000000Z")),
            Ok(-631_152_000)
        );
        assert_eq!(
            not_after(&certificate(UTC_TIME, b"491231235959Z")),
            Ok(2_524_607_999)
        );
        assert_eq!(
            not_after(&certificate(GENERALIZED_TIME, b"20491231235959Z")),
            Ok(2_524_607_999)
        );
        assert_eq!(
            not_after(&certificate(UTC_TIME, b"240229120000Z")),
            Ok(1_709_208_000),
            "a leap day"
        );
    }

    #[test]
    fn refuses_times_outside_rfc_5280() {
        for (tag, text) in [
            (UTC_TIME, &b"250230000000Z"[..]),        // 30 February
            (UTC_TIME, b"251301000000Z"),             // month 13
            (UTC_TIME, b"250101240000Z"),             // hour 24
            (UTC_TIME, b"2501010000Z"),               // no seconds
            (UTC_TIME, b"250101000000+0100"),         // not UTC
            (UTC_TIME, b"25010100000aZ"),             // not a digit
            (GENERALIZED_TIME, b"20250101000000.5Z"), // fractions
            (GENERALIZED_TIME, b"21000229000000Z"),   // 2100 is no leap year
            (INTEGER, b"250101000000Z"),
        ] {
            assert_eq!(
                not_after(&certificate(tag, text)),
                Err(CertificateError::BadTime),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn refuses_malformed_der() {
        let good = certificate(UTC_TIME, b"300101000000Z");
        assert!(not_after(&good).is_ok());
        for cut in 0..good.len() {
            assert!(not_after(&good[..cut]).is_err(), "truncated at {cut}");
        }
        // Indefinite length, a length wider than four bytes, a multi-byte tag.
        assert_eq!(
            not_after(&[0x30, 0x80, 0, 0]),
            Err(CertificateError::Malformed)
        );
        assert_eq!(
            not_after(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]),
            Err(CertificateError::Malformed)
        );
        assert_eq!(
            not_after(&[0x1f, 0x01, 0]),
            Err(CertificateError::Malformed)
        );
        assert_eq!(
            not_after(&[0x02, 0x01, 0]),
            Err(CertificateError::Unexpected("Certificate SEQUENCE"))
        );
        // A PEM file's text is not DER.
        assert!(not_after(b"-----BEGIN CERTIFICATE-----").is_err());
    }

    #[test]
    fn reads_uri_names_as_openssl_prints_them() {
        assert_eq!(
            uri_names(&fixture("client-recommender-cert.pem")),
            Ok(vec!["spiffe://cluster.local/ns/shop/sa/recommender"])
        );
        // A DNS name only, and no SAN extension at all.
        assert_eq!(uri_names(&fixture("client-no-spiffe-cert.pem")), Ok(vec![]));
        assert_eq!(uri_names(&fixture("ca-cert.pem")), Ok(vec![]));
        // The server certificate: a DNS name and an IP address, no URI.
        assert_eq!(uri_names(&fixture("tls-cert.pem")), Ok(vec![]));
    }

    #[test]
    fn a_uri_name_that_is_not_ascii_is_malformed() {
        let mut der = fixture("client-recommender-cert.pem");
        let at = der.windows(9).position(|w| w == b"spiffe://").unwrap();
        der[at + 9] = 0xc3;
        assert_eq!(uri_names(&der), Err(CertificateError::Malformed));
    }
}
