//! Step 3 of a read: who is calling. A Kubernetes projected service-account token in
//! `authorization: Bearer …` (production), or one static name (development).
use std::sync::Arc;

use discreet_config::IdentityConfig;
use discreet_consent::{CallerService, ConsentError};
use http::HeaderMap;

use crate::status::CallError;

/// The configured way to identify callers.
#[derive(Debug)]
pub(crate) enum CallerAuth {
    Static(Arc<str>),
    ServiceAccount(CallerService),
}

impl CallerAuth {
    pub(crate) async fn start(config: &IdentityConfig) -> Result<CallerAuth, String> {
        Ok(match config {
            IdentityConfig::Static(name) => CallerAuth::Static(Arc::from(name.as_str())),
            IdentityConfig::ServiceAccount(c) => CallerAuth::ServiceAccount(
                CallerService::start(c)
                    .await
                    .map_err(|e| format!("identity: {e}"))?,
            ),
        })
    }

    /// The caller's name (`namespace/serviceaccount`).
    pub(crate) async fn identify(&self, headers: &HeaderMap) -> Result<Arc<str>, CallError> {
        match self {
            CallerAuth::Static(name) => Ok(Arc::clone(name)),
            CallerAuth::ServiceAccount(service) => {
                let token = bearer_token(headers)?;
                service
                    .authenticate_name(token)
                    .await
                    .map_err(CallError::Caller)
            }
        }
    }
}

pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, CallError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(CallError::NoCallerToken);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(CallError::Caller(ConsentError::Malformed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn takes_exactly_one_bearer_token() {
        let mut h = HeaderMap::new();
        assert!(bearer_token(&h).is_err());
        h.insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer_token(&h).unwrap(), "abc.def.ghi");
        h.append("authorization", "Bearer other".parse().unwrap());
        assert!(bearer_token(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert!(bearer_token(&h).is_err());
    }
}
