#!/usr/bin/env bash
# Builds the gateway with profile-guided optimisation (PGO), as the container image ships
# it: an instrumented build serves a training load, LLVM merges what it counted, and the
# release build is laid out and inlined by those counts. On the load benchmark's rig this
# takes 14-24% off the gateway's CPU per call (BENCHMARKS.md, session 13); the source and
# its behaviour are the same as `cargo build --release`.
#
#   deploy/pgo-build.sh [OUT]   # default OUT: target/pgo; writes OUT/discreet and
#                               # OUT/discreet.profdata (the merged counts)
#
# The training load is the shipped configuration and policy (config/) in front of the
# reference store, with access spans exported to a local span sink, driven by
# `discreet-load drive` (no h2load or nginx needed): GetProfile with a cached consent
# token (the hot path), a new consent token on every call, batches of 100 and long
# streams. Loopback only; every process started is stopped on exit. Needs cargo and the
# `llvm-tools` rustup component (added if missing). About two release builds of the
# gateway, one of the store and the load driver, and a minute of training.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# OUT relative to where the script was called from; the default inside the repository.
out=$(realpath -m "${1:-$root/target/pgo}")
cd "$root"
mkdir -p "$out"
work=$(mktemp -d)
# A fixed path: it is part of the instrumented build's flags, so a new path each run would
# rebuild everything.
profiles=$root/target/pgo-generate/profiles

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# llvm-profdata must come from the LLVM that rustc is built on (the raw profile format
# changes between LLVM versions), so the rustup component, not a system package.
host=$(rustc -vV | sed -n 's/^host: //p')
profdata=$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ]; then
  echo "== adding the llvm-tools rustup component (llvm-profdata)"
  rustup component add llvm-tools </dev/null
fi

echo "== building the reference store, the load driver and an instrumented gateway"
cargo build --release --locked --quiet -p profile-store -p discreet-benches \
  --bin profile-store --bin discreet-load
# Its own target directory: different flags would otherwise rebuild the plain one. Any
# RUSTFLAGS already set (a target CPU, say) are kept.
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$profiles" cargo build --release --locked --quiet \
  -p discreet-cli --bin discreet --target-dir target/pgo-generate
# Build scripts and proc macros of that build were instrumented too and wrote their
# counts while it ran; only the gateway's belong in the profile.
rm -rf "$profiles"
bin=target/release
gateway=target/pgo-generate/release/discreet

# A free loopback port (no python in a slim build image): a random high port nothing
# answers on.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "error: no free port found" >&2
  return 1
}
wait_port() { # port name
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "error: $2 did not listen on 127.0.0.1:$1; its log:" >&2
  cat "$work/$2.log" >&2 || true
  exit 1
}

echo "== training: the instrumented gateway under load"
store_port=$(free_port); sink_port=$(free_port); gateway_port=$(free_port)
metrics_port=$(free_port)
"$bin/discreet-load" sink --listen "127.0.0.1:$sink_port" --count-file "$work/spans.count" \
  >"$work/sink.log" 2>&1 &
pids+=($!)
"$bin/profile-store" --listen "127.0.0.1:$store_port" >"$work/profile-store.log" 2>&1 &
pids+=($!)
cp config/discreet.yaml config/policy.yaml "$work/"
# Instrumented too: its counts (key generation) go elsewhere, so that only the serving
# gateway's make the profile, and the check below sees whether that one wrote any.
LLVM_PROFILE_FILE="$work/keys-%p.profraw" "$gateway" keys dev --dir "$work/keys" \
  2>>"$work/discreet.log"
LLVM_PROFILE_FILE="$profiles/serve-%p-%m.profraw" RUST_LOG=warn "$gateway" serve \
  --config "$work/discreet.yaml" --listen "127.0.0.1:$gateway_port" \
  --upstream "http://127.0.0.1:$store_port" --audit-endpoint "http://127.0.0.1:$sink_port" \
  --metrics-listen "127.0.0.1:$metrics_port" >>"$work/discreet.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
wait_port "$sink_port" sink
wait_port "$store_port" profile-store
wait_port "$gateway_port" discreet
"$bin/discreet-load" prepare --keys "$work/keys" --out "$work" --stream-limit 1000

svc=/profile.v1.ProfileService
drive() { # method body headers requests [flags]
  local method=$1 body=$2 headers=$3 requests=$4 line
  shift 4
  line=$("$bin/discreet-load" drive --target "127.0.0.1:$gateway_port" --method "$svc/$method" \
    --body "$work/$body" --headers "$work/$headers" --requests "$requests" \
    --connections 8 --streams 16 "$@")
  echo "   $method: $line"
  # A training run whose calls fail would optimise the refusal path instead.
  if [[ "$line" != *" failed=0 "* ]]; then
    echo "error: training calls failed; the gateway's log:" >&2
    cat "$work/discreet.log" >&2
    exit 1
  fi
}
drive GetProfile get.bin headers-consented.txt 60000
drive GetProfile get.bin headers-consented.txt 5000 --fresh-consent "$work/keys"
drive BatchGetProfiles batch100.bin headers-legitimate.txt 1500
drive StreamProfiles stream.bin headers-legitimate.txt 60 --connections 2 --streams 2

# The counts are written when the process exits; SIGTERM lets it drain and exit normally.
kill -TERM "$gateway_pid"
wait "$gateway_pid" || true
if ! compgen -G "$profiles/serve-*.profraw" >/dev/null; then
  echo "error: the instrumented gateway wrote no profile; its log:" >&2
  cat "$work/discreet.log" >&2
  exit 1
fi
"$profdata" merge -o "$out/discreet.profdata" "$profiles"
# Cargo tracks the flags, not the profile's contents: a path named by the contents makes a
# new profile rebuild every crate with it.
digest=$(sha256sum "$out/discreet.profdata" | cut -c1-16)
profile=$root/target/pgo-use/discreet-$digest.profdata
mkdir -p "$root/target/pgo-use"
rm -f "$root"/target/pgo-use/discreet-*.profdata
cp "$out/discreet.profdata" "$profile"

echo "== building the gateway with the profile"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$profile" cargo build --release --locked --quiet \
  -p discreet-cli --bin discreet --target-dir target/pgo-use
install -m 0755 target/pgo-use/release/discreet "$out/discreet"
echo "PGO build: $out/discreet"
