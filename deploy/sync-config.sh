#!/usr/bin/env bash
# Refresh the configuration, policy and collector configuration shipped in the manifests
# from the files the tests and the demo use. kustomize only reads files inside a
# kustomization's directory, so the manifests carry copies; tests/tests/deploy.rs fails
# whenever a copy has drifted.
#   deploy/kubernetes/base/{discreet,policy}.yaml     byte-identical to config/
#   deploy/kubernetes/overlays/dev/discreet.yaml       config/discreet.yaml, identity: static
#   deploy/kubernetes/overlays/dev/collector.yaml      byte-identical to deploy/otel-collector/
#   deploy/kubernetes/overlays/production/discreet.yaml
#                                                      config/discreet.yaml, consent keys,
#                                                      revocation list and caller keys from URLs
set -euo pipefail
cd "$(dirname "$0")/.."

cp config/discreet.yaml config/policy.yaml deploy/kubernetes/base/
cp deploy/otel-collector/collector.yaml deploy/kubernetes/overlays/dev/collector.yaml

python3 - <<'PY'
import re

src = open("config/discreet.yaml").read()
head_end = src.index("# Address the gRPC")


def banner(overlay, change):
    return (
        f"# Discreet gateway configuration for the {overlay} overlay"
        f" (deploy/kubernetes/overlays/{overlay}).\n"
        "#\n"
        f"# This is config/discreet.yaml with ONE change: {change}\n"
        "#\n"
        "# --- config/discreet.yaml follows, with its own header: ---\n"
        "#\n"
    )


def replace_once(text, pattern, replacement, what):
    out, n = re.subn(pattern, lambda _: replacement, text, flags=re.M)
    if n != 1:
        raise SystemExit(f"sync-config: expected one {what} in config/discreet.yaml, found {n}")
    return out


# dev: a static caller identity.
start = src.index("identity:\n")
end = src.index("\n# Consent token verification.")
identity = (
    "identity:\n"
    "  # Development only: every caller is shop/recommender (allowed `personalize` by the policy).\n"
    "  static: shop/recommender\n"
)
dev = banner(
    "dev",
    "`identity` is static, so calls need no\n"
    "# service-account token (development only). tests/tests/deploy.rs fails if anything else\n"
    "# differs from config/discreet.yaml; refresh it with deploy/sync-config.sh.",
) + src[:start] + identity + src[end:]
open("deploy/kubernetes/overlays/dev/discreet.yaml", "w").write(dev)

# production: the consent issuer's keys and the revocation list over HTTPS.
prod = replace_once(
    src,
    r"^    file: keys/consent-jwks\.json.*$",
    "    # Production: the consent issuer's JWKS over HTTPS (placeholder: your issuer's).\n"
    "    url: https://consent.example.com/.well-known/jwks.json   # refreshed every 5m (refresh_interval), and on an unknown kid",
    "consent.keys.file line",
)
prod = replace_once(
    prod,
    r"^    file: keys/revocations\.json.*$",
    "    # Production: the revocation list over HTTPS, so a revocation applies within about\n"
    "    # a second in every replica (a Secret-mounted file waits for the kubelet, up to a\n"
    "    # minute). After max_staleness (60s) without a good read, consent checks fail closed.\n"
    "    url: https://consent.example.com/revocations.json        # polled every 1s (refresh_interval)",
    "consent.revocation.file line",
)
prod = replace_once(
    prod,
    r"^      file: keys/caller-jwks\.json.*$",
    "      # Production: straight from the API server, verified against the cluster CA, with\n"
    "      # the pod's own projected token (deployment-patch.yaml mounts both into this\n"
    "      # container only); its rotations apply without anyone copying keys.\n"
    "      url: https://kubernetes.default.svc/openid/v1/jwks\n"
    "      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n"
    "      bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token",
    "identity.service_account.keys.file line",
)
prod = banner(
    "production",
    "the key and revocation sources are fetched\n"
    "# from URLs, not read from files in the keys Secret: the consent issuer's keys\n"
    "# (`consent.keys`) and revocation list (`consent.revocation`), whose URLs are placeholders\n"
    "# for your consent issuer's, and the API server's keys (`identity.service_account.keys`).\n"
    "# tests/tests/deploy.rs fails if anything else differs from config/discreet.yaml; refresh\n"
    "# it with deploy/sync-config.sh.",
) + prod
open("deploy/kubernetes/overlays/production/discreet.yaml", "w").write(prod)
PY
echo "deploy/: configuration, policy and collector configuration refreshed"
