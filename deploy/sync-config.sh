#!/usr/bin/env bash
# Refresh the configuration and policy shipped in the manifests from config/, the files the
# tests and the demo use. kustomize only reads files inside a kustomization's directory, so
# the manifests carry copies; tests/tests/deploy.rs fails whenever a copy has drifted.
#   deploy/kubernetes/base/{discreet,policy}.yaml   byte-identical to config/
#   deploy/kubernetes/overlays/dev/discreet.yaml     config/discreet.yaml, identity: static
set -euo pipefail
cd "$(dirname "$0")/.."

cp config/discreet.yaml config/policy.yaml deploy/kubernetes/base/

python3 - <<'PY'
src = open("config/discreet.yaml").read()
start = src.index("identity:\n")
end = src.index("\n# Consent token verification.")
head = src[: src.index("# Address the gRPC")]
banner = (
    "# Discreet gateway configuration for the dev overlay (deploy/kubernetes/overlays/dev).\n"
    "#\n"
    "# This is config/discreet.yaml with ONE change: `identity` is static, so calls need no\n"
    "# service-account token (development only). tests/tests/deploy.rs fails if anything else\n"
    "# differs from config/discreet.yaml; refresh it with deploy/sync-config.sh.\n"
    "#\n"
    "# --- config/discreet.yaml follows, with its own header: ---\n"
    "#\n"
)
identity = (
    "identity:\n"
    "  # Development only: every caller is shop/recommender (allowed `personalize` by the policy).\n"
    "  static: shop/recommender\n"
)
out = banner + src[:start] + identity + src[end:]
open("deploy/kubernetes/overlays/dev/discreet.yaml", "w").write(out)
PY
echo "deploy/: configuration and policy refreshed from config/"
