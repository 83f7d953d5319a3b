//! Step 3 of a read with `identity: spiffe`: the caller named by the client certificate it
//! proved it holds in the TLS handshake. A workload's certificate (an X.509 SVID, issued
//! by SPIRE, cert-manager's csi-driver-spiffe or a mesh CA) carries its SPIFFE ID as its
//! one URI subject alternative name; Kubernetes workloads are named
//! `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, which is the gateway's
//! `namespace/serviceaccount` caller name.
//!
//! Unlike a bearer token, the identity cannot be replayed from a log or a stolen header:
//! using it takes the private key. Plain data, no I/O; the certificate chain was verified
//! against `tls.client_ca_file` by rustls before any of this runs.
//!
//! Refusals are fixed texts: they reach the caller and the logs, and never quote the ID.

use discreet_config::is_kubernetes_name;

/// The caller name (`namespace/serviceaccount`) of a client certificate whose URI
/// subject alternative names are `uris`, for callers of `trust_domain`.
pub(crate) fn caller_name(uris: &[&str], trust_domain: &str) -> Result<String, &'static str> {
    let [uri] = uris else {
        return Err(if uris.is_empty() {
            "the client certificate has no SPIFFE ID (no URI subject alternative name)"
        } else {
            "the client certificate has more than one URI subject alternative name; an X.509 SVID has exactly one"
        });
    };
    let rest = uri
        .strip_prefix("spiffe://")
        .ok_or("the client certificate's URI name is not a SPIFFE ID (spiffe://...)")?;
    let (domain, path) = rest
        .split_once('/')
        .ok_or("the client certificate's SPIFFE ID names no workload")?;
    if domain != trust_domain {
        return Err(
            "the client certificate's SPIFFE ID is not of this gateway's trust domain (identity.spiffe.trust_domain)",
        );
    }
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        ["ns", namespace, "sa", account]
            if is_kubernetes_name(namespace) && is_kubernetes_name(account) =>
        {
            Ok(format!("{namespace}/{account}"))
        }
        _ => Err(
            "the client certificate's SPIFFE ID is not a Kubernetes workload's (/ns/<namespace>/sa/<service account>)",
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DOMAIN: &str = "cluster.local";

    #[test]
    fn a_kubernetes_workload_id_names_namespace_and_service_account() {
        assert_eq!(
            caller_name(&["spiffe://cluster.local/ns/shop/sa/recommender"], DOMAIN),
            Ok("shop/recommender".to_owned())
        );
        assert_eq!(
            caller_name(
                &["spiffe://cluster.local/ns/fraud-ops/sa/scorer.v2"],
                DOMAIN
            ),
            Ok("fraud-ops/scorer.v2".to_owned())
        );
    }

    #[test]
    fn anything_else_is_refused_without_quoting_it() {
        for uris in [
            &[][..],
            &[
                "spiffe://cluster.local/ns/shop/sa/a",
                "spiffe://cluster.local/ns/shop/sa/b",
            ],
            &["https://cluster.local/ns/shop/sa/recommender"],
            &["spiffe://cluster.local"],
            &["spiffe://other.example/ns/shop/sa/recommender"],
            &["spiffe://cluster.local.evil/ns/shop/sa/recommender"],
            &["spiffe://CLUSTER.LOCAL/ns/shop/sa/recommender"],
            &["spiffe://cluster.local/ns/shop/sa/recommender/"],
            &["spiffe://cluster.local/ns/shop/sa/"],
            &["spiffe://cluster.local/ns//sa/recommender"],
            &["spiffe://cluster.local/ns/shop/sa/recommender/extra"],
            &["spiffe://cluster.local/sa/recommender/ns/shop"],
            &["spiffe://cluster.local/ns/Shop/sa/recommender"],
            &["spiffe://cluster.local/ns/../sa/recommender"],
            &["spiffe://cluster.local/ns/shop%2F/sa/recommender"],
            &["spiffe://cluster.local/ns/shop/sa/recommender?x=1"],
        ] {
            let refusal = caller_name(uris, DOMAIN).unwrap_err();
            for uri in uris {
                assert!(!refusal.contains(uri), "{refusal}");
            }
        }
    }
}
