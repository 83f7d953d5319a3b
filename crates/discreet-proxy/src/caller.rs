//! Step 3 of a read: who is calling. A Kubernetes projected service-account token in
//! `authorization: Bearer …`, the SPIFFE ID of the client certificate the connection was
//! made with (`spiffe.rs`), or one static name (development).
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
    /// Callers named by their client certificate, in this trust domain.
    Spiffe(String),
}

/// Who a connection's client certificate names, worked out once per connection at the
/// handshake and carried in each of its requests' extensions.
#[derive(Debug, Clone)]
pub(crate) struct ClientCertificateCaller(Result<Arc<str>, &'static str>);

impl CallerAuth {
    /// How the source of the callers' keys is doing (service-account identity only).
    pub(crate) fn source_health(&self) -> Option<(&'static str, discreet_consent::SourceHealth)> {
        match self {
            CallerAuth::ServiceAccount(service) => Some(service.source_health()),
            CallerAuth::Static(_) | CallerAuth::Spiffe(_) => None,
        }
    }

    pub(crate) async fn start(config: &IdentityConfig) -> Result<CallerAuth, String> {
        Ok(match config {
            IdentityConfig::Static(name) => CallerAuth::Static(Arc::from(name.as_str())),
            IdentityConfig::ServiceAccount(c) => CallerAuth::ServiceAccount(
                CallerService::start(c)
                    .await
                    .map_err(|e| format!("identity.service_account: {}", e.0))?,
            ),
            IdentityConfig::Spiffe(c) => CallerAuth::Spiffe(c.trust_domain.clone()),
        })
    }

    /// For `identity: spiffe`, the caller a connection's client certificate (its leaf,
    /// DER, already verified by the TLS handshake) names; `None` in the other modes.
    pub(crate) fn client_certificate_caller(
        &self,
        leaf: Option<&[u8]>,
    ) -> Option<ClientCertificateCaller> {
        let CallerAuth::Spiffe(trust_domain) = self else {
            return None;
        };
        let caller = leaf
            .ok_or("the connection presented no client certificate")
            .and_then(|der| {
                crate::x509::uri_names(der).map_err(|_| "the client certificate could not be read")
            })
            .and_then(|uris| crate::spiffe::caller_name(&uris, trust_domain))
            .map(Arc::from);
        Some(ClientCertificateCaller(caller))
    }

    /// The caller's name (`namespace/serviceaccount`).
    pub(crate) async fn identify(
        &self,
        request: &http::request::Parts,
    ) -> Result<Arc<str>, CallError> {
        match self {
            CallerAuth::Static(name) => Ok(Arc::clone(name)),
            CallerAuth::Spiffe(_) => match request.extensions.get::<ClientCertificateCaller>() {
                Some(ClientCertificateCaller(Ok(name))) => Ok(Arc::clone(name)),
                Some(ClientCertificateCaller(Err(reason))) => {
                    Err(CallError::ClientCertificate(reason))
                }
                // A connection without TLS cannot happen with `tls.client_ca_file` (the
                // configuration requires it); refused all the same.
                None => Err(CallError::ClientCertificate(
                    "the connection presented no client certificate",
                )),
            },
            CallerAuth::ServiceAccount(service) => {
                let token = bearer_token(&request.headers)?;
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
