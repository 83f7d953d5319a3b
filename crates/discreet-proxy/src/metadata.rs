//! Metadata names, and what of the caller's metadata reaches the store.
use http::{HeaderMap, HeaderName, HeaderValue};

/// The one purpose the call declares.
pub(crate) const PURPOSE: &str = "x-discreet-purpose";
/// Consent tokens (JWT), one per subject.
pub(crate) const CONSENT: &str = "x-discreet-consent";
/// Trailer: the id under which this decision is recorded.
pub(crate) const DECISION_ID: &str = "x-discreet-decision-id";
/// Trailer: `allowed`, `partial` or `denied`.
pub(crate) const DECISION: &str = "x-discreet-decision";
/// Trailer: the policy version that decided.
pub(crate) const POLICY_VERSION: &str = "x-discreet-policy-version";
/// Trailer: field paths withheld from the caller, comma-separated.
pub(crate) const WITHHELD_FIELDS: &str = "x-discreet-withheld-fields";
/// Trailer: how many records (of a batch or stream) were withheld whole.
pub(crate) const WITHHELD_RECORDS: &str = "x-discreet-withheld-records";
/// Sent to the store: the authenticated caller, for the store's own logs.
pub(crate) const CALLER: &str = "x-discreet-caller";

/// Caller metadata the store may see: trace context and request ids. Everything else
/// (tokens, cookies, anything an application might add) stays here: an allow-list fails
/// closed when a new header appears.
const FORWARDED: [&str; 4] = ["traceparent", "tracestate", "x-request-id", PURPOSE];

/// The headers of the upstream request. `timeout_ms` is the caller's remaining deadline;
/// `None` sends none (a stream without a deadline).
pub(crate) fn upstream_headers(
    from: &HeaderMap,
    caller: &str,
    timeout_ms: Option<u64>,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(8);
    out.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    out.insert(http::header::TE, HeaderValue::from_static("trailers"));
    // At most 8 digits on the wire; our caps are far below that.
    if let Some(ms) = timeout_ms
        && let Ok(mut v) = HeaderValue::from_str(&format!("{}m", ms.clamp(1, 99_999_999)))
    {
        // The time left, so different on nearly every call: kept out of the HPACK table.
        v.set_sensitive(true);
        out.insert(HeaderName::from_static("grpc-timeout"), v);
    }
    for name in FORWARDED {
        if let Some(v) = from.get(name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    if let Ok(v) = HeaderValue::from_str(caller) {
        out.insert(HeaderName::from_static(CALLER), v);
    }
    out
}

/// The caller's deadline from `grpc-timeout` (`1-8 digits` and a unit `HMSmun`), capped;
/// `default` when absent. A malformed value is refused rather than guessed at.
pub(crate) fn timeout(
    headers: &HeaderMap,
    default: std::time::Duration,
    max: std::time::Duration,
) -> Result<std::time::Duration, &'static str> {
    use std::time::Duration;
    let Some(value) = headers.get("grpc-timeout") else {
        return Ok(default.min(max));
    };
    let s = value.to_str().map_err(|_| "grpc-timeout is not ASCII")?;
    let (digits, unit) = s.split_at(s.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("grpc-timeout must be 1 to 8 digits and a unit");
    }
    let n: u64 = digits.parse().map_err(|_| "grpc-timeout is not a number")?;
    let d = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err("grpc-timeout unit must be one of H M S m u n"),
    };
    Ok(d.min(max))
}

/// The one declared purpose: exactly one `x-discreet-purpose` entry, one name, no list.
pub(crate) fn purpose(headers: &HeaderMap) -> Result<&str, &'static str> {
    let mut values = headers.get_all(PURPOSE).iter();
    let value = values.next().ok_or("no purpose declared")?;
    if values.next().is_some() {
        return Err("several purposes declared");
    }
    let p = value.to_str().map_err(|_| "purpose is not ASCII")?.trim();
    if p.is_empty() || p.contains([',', ' ']) {
        return Err("purpose must be one name");
    }
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn parses_and_caps_timeouts() {
        let d = Duration::from_secs(10);
        let max = Duration::from_secs(60);
        assert_eq!(timeout(&headers(&[]), d, max), Ok(d));
        assert_eq!(
            timeout(&headers(&[("grpc-timeout", "250m")]), d, max),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            timeout(&headers(&[("grpc-timeout", "2H")]), d, max),
            Ok(max)
        );
        for bad in ["", "m", "123456789S", "1x", "-1S", "1.5S"] {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::from_str(bad).unwrap());
            assert!(timeout(&h, d, max).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exactly_one_purpose() {
        assert_eq!(
            purpose(&headers(&[(PURPOSE, "personalize")])),
            Ok("personalize")
        );
        assert!(purpose(&headers(&[])).is_err());
        assert!(purpose(&headers(&[(PURPOSE, "a,b")])).is_err());
        assert!(purpose(&headers(&[(PURPOSE, "a"), (PURPOSE, "b")])).is_err());
    }

    #[test]
    fn tokens_never_reach_the_store() {
        let from = headers(&[
            ("authorization", "Bearer secret"),
            (CONSENT, "tok"),
            ("cookie", "c"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            (PURPOSE, "personalize"),
        ]);
        let out = upstream_headers(&from, "shop/web", Some(1500));
        assert!(out.get("authorization").is_none());
        assert!(out.get(CONSENT).is_none());
        assert!(out.get("cookie").is_none());
        assert!(out.get("traceparent").is_some());
        assert_eq!(out["grpc-timeout"], "1500m");
        assert_eq!(out[CALLER], "shop/web");
    }
}
