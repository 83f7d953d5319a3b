//! A minimal valid configuration shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

pub const MINIMAL: &str = "\
upstream: embedded
policy: { file: policy.yaml }
methods:
  /profile.v1.ProfileService/GetProfile: read
identity: { static: shop/recommender }
consent:
  issuer: https://consent.example.com
  audience: discreet
  keys: { file: keys/consent-jwks.json }
pseudonym: { secret_file: keys/pseudonym.key }
audit: { endpoint: \"http://127.0.0.1:4317\", key_file: keys/audit.key }
";

/// `MINIMAL` with `extra` lines appended (top-level sections not in `MINIMAL`).
pub fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// `MINIMAL` with one line replaced.
pub fn replacing(line_start: &str, new_line: &str) -> String {
    MINIMAL
        .lines()
        .map(|l| {
            if l.starts_with(line_start) {
                new_line
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
