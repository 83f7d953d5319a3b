#!/usr/bin/env bash
# The end-to-end load benchmark: the reference store, reached directly, through nginx
# `grpc_pass` (a proxy that does no policy work) and through Discreet as deployed (policy
# from config/policy.yaml, strict audit, every access span exported over OTLP/gRPC to a
# collector on loopback), all driven by h2load over h2c on loopback, in one run.
#
#   benches/load/run.sh            the full run: a few minutes
#   benches/load/run.sh --smoke    tiny counts, to check the rig works
#
# Environment: PGO=1 (the gateway built as the image builds it, deploy/pgo-build.sh; the
# plain release build otherwise), DISCREET_BIN (any other gateway binary), SCENARIOS (a subset, see below), PERF=1 (profile Discreet with perf during PERF_SCENARIO, default get-saturation; PERF_CALL_GRAPH=dwarf for whole stacks), DURATION (seconds per saturation run, default 10), CLIENTS and STREAMS
# (h2load -c and -m, default 8 and 16), RATE_SHARE (fixed rate as a share of nginx's
# saturation, default 0.3), OUT (raw output directory, default target/load/<time>).
#
# Prints one table with ratios to nginx and to direct, and writes every tool's raw output,
# the configurations and results.tsv under OUT. Stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
duration=${DURATION:-10}
clients=${CLIENTS:-8}
streams=${STREAMS:-16}
rate_share=${RATE_SHARE:-0.3}
out=${OUT:-target/load/$(date +%Y%m%dT%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
mkdir -p "$work"

# The processes under test and the measurement helpers, shared with overload.sh.
source "$root/benches/load/rig.sh"

results=$out/results.tsv
printf 'scenario\ttarget\trps\tp50_us\tp99_us\tp999_us\tcpu_us_per_req\tpeak_rss_kib\trequests\tfailed\n' >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }


# PERF=1: sample Discreet's stacks during one scenario's run (PERF_SCENARIO, default
# get-saturation; get-new-token and the other drive scenarios work too) with perf record;
# `perf report -i OUT/discreet.perf.data` or a flame graph from `perf script`.
# PERF_CALL_GRAPH=dwarf gives whole stacks from a release build without frame pointers.
perf_pid=
perf_start() { # scenario
  if [ "${PERF:-0}" = 1 ] && [ "$1" = "${PERF_SCENARIO:-get-saturation}" ]; then
    perf record -F 999 --call-graph "${PERF_CALL_GRAPH:-fp}" -p "$discreet_pid" -o "$out/discreet.perf.data" >"$out/perf.log" 2>&1 &
    perf_pid=$!
  fi
}
perf_stop() {
  if [ -n "$perf_pid" ]; then
    # perf may have exited already (not installed, or refused by perf_event_paranoid).
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true
    perf_pid=
    [ -s "$out/discreet.perf.data" ] \
      || echo "warning: perf wrote no profile; see $out/perf.log" >&2
  fi
}

# Saturation: fixed concurrency for DURATION seconds (smoke: 200 requests).
saturate() { # scenario target method body headers
  local scenario=$1 target=$2 method=$3 raw="$out/$1.$2.h2load.txt"
  local -a args
  mapfile -d '' args < <(h2load_args "$4" "$5")
  local before after
  before=$(cpu_ticks "$target")
  if $smoke; then
    if [ "$target" = discreet ]; then perf_start "$scenario"; fi
    h2load -n 200 -c 2 -m 4 "${args[@]}" "http://127.0.0.1:${port[$target]}$svc/$method" >"$raw"
  else
    # Warm-up first, outside the CPU and request counts (and the profile): connections,
    # caches, allocator.
    h2load -n 2000 -c "$clients" -m "$streams" "${args[@]}" \
      "http://127.0.0.1:${port[$target]}$svc/$method" >"$out/$1.$2.warm-up.txt"
    if [ "$target" = discreet ]; then perf_start "$scenario"; fi
    before=$(cpu_ticks "$target")
    h2load -D "$duration" -c "$clients" -m "$streams" "${args[@]}" \
      "http://127.0.0.1:${port[$target]}$svc/$method" >"$raw"
  fi
  after=$(cpu_ticks "$target")
  perf_stop
  local rps done failed
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$raw")
  done=$(awk '/^requests:/ {print $8}' "$raw")
  failed=$(awk '/^requests:/ {print $12 + $14 + $16}' "$raw")
  local cpu=- rss=-
  if [ "$target" != direct ] && [ "${done:-0}" -gt 0 ]; then
    cpu=$(( (after - before) * 1000000 / hz / done ))
    rss=$(peak_rss_kib "$target")
  fi
  record "$scenario" "$target" "$rps" - - - "$cpu" "$rss" "$done" "$failed"
  echo "   $scenario via $target: $rps req/s ($done done, $failed failed)"
}

# Fixed rate: RATE req/s spread over the clients, one stream each; per-request latency
# from h2load's log.
fixed_rate() { # scenario target method body headers rate
  local scenario=$1 target=$2 method=$3 raw="$out/$1.$2.h2load.txt" log="$out/$1.$2.requests.tsv"
  local -a args
  mapfile -d '' args < <(h2load_args "$4" "$5")
  local per_client=$(( ($6 + clients - 1) / clients ))
  local n=$(( per_client * clients * duration ))
  $smoke && n=$((clients * 20))
  h2load -n "$n" -c "$clients" -m 1 --rps "$per_client" --log-file "$log" "${args[@]}" \
    "http://127.0.0.1:${port[$target]}$svc/$method" >"$raw"
  local p50 p99 p999
  read -r p50 p99 p999 < <(cut -f3 "$log" | sort -n | awk '{v[NR]=$1}
    END {n=NR; i50=int(n*0.5+0.999); i99=int(n*0.99+0.999); i999=int(n*0.999+0.999);
         print v[i50], v[i99], v[i999]}')
  local done failed
  done=$(awk '/^requests:/ {print $8}' "$raw")
  failed=$(awk '/^requests:/ {print $12 + $14 + $16}' "$raw")
  record "$scenario" "$target" "$6" "$p50" "$p99" "$p999" - - "$done" "$failed"
  echo "   $scenario via $target at $6 req/s: p50 ${p50}us p99 ${p99}us p99.9 ${p999}us"
}

# discreet-load drive: checks grpc-status of every call (h2load reads HTTP status only).
drive() { # scenario method body headers [--fresh-consent keys]
  local scenario=$1 method=$2 body=$3 headers=$4 raw="$out/$1.discreet.drive.txt"
  shift 4
  local n=$(( ${DRIVE_REQUESTS:-20000} ))
  $smoke && n=200
  local before after
  before=$(cpu_ticks discreet)
  perf_start "$scenario"
  "$bin/discreet-load" drive --target "127.0.0.1:$discreet_port" --method "$svc/$method" \
    --body "$work/$body" --headers "$work/$headers" --requests "$n" \
    --connections "$clients" --streams "$streams" "$@" >"$raw"
  perf_stop
  after=$(cpu_ticks discreet)
  local line rps ok failed
  line=$(cat "$raw")
  rps=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
  ok=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")
  failed=$(sed -E 's/.* failed=([0-9]+).*/\1/' <<<"$line")
  record "$scenario" discreet "$rps" - - - $(( (after - before) * 1000000 / hz / n )) \
    "$(peak_rss_kib discreet)" "$ok" "$failed"
  echo "   $scenario via discreet (discreet-load): $rps req/s, $ok ok, $failed failed"
  if [ "$failed" != 0 ]; then
    echo "error: $scenario: calls failed: $line" >&2
    exit 1
  fi
}

# --- the run -------------------------------------------------------------------------------
# SCENARIOS picks a subset (GetProfile saturation always runs: the other figures are
# relative to it): any of fixed tokens batch stream. Default: all.
scenarios=" ${SCENARIOS:-fixed tokens batch stream} "
want() { [[ "$scenarios" == *" $1 "* ]]; }
echo "== checking every scenario's calls succeed through Discreet (grpc-status 0)"
for s in "GetProfile get.bin headers-consented.txt" \
         "BatchGetProfiles batch100.bin headers-legitimate.txt" \
         "StreamProfiles stream.bin headers-legitimate.txt"; do
  read -r method body headers <<<"$s"
  "$bin/discreet-load" drive --target "127.0.0.1:$discreet_port" --method "$svc/$method" \
    --body "$work/$body" --headers "$work/$headers" --requests 20 --connections 1 \
    --streams 2 | tee "$out/check.$method.txt" | grep -q ' failed=0 ' \
    || { echo "error: $method through Discreet failed: $(cat "$out/check.$method.txt")" >&2; exit 1; }
done

echo "== GetProfile at saturation (h2load -c $clients -m $streams, ${duration}s)"
for t in direct nginx discreet; do
  saturate get-saturation "$t" GetProfile get.bin headers-consented.txt
done
discreet_rss_get=$(peak_rss_kib discreet)

nginx_rps=$(awk -F'\t' '$1=="get-saturation" && $2=="nginx" {print int($3)}' "$results")
rate=$(python3 -c "print(max(100, int($nginx_rps * $rate_share) // 100 * 100))")
$smoke && rate=100
if want fixed; then
echo "== GetProfile at a fixed $rate req/s (${rate_share} of nginx's saturation)"
for t in direct nginx discreet; do
  fixed_rate get-fixed-rate "$t" GetProfile get.bin headers-consented.txt "$rate"
done
fi

if want tokens; then
echo "== consent verification: the same token on every call vs a new one on every call"
drive get-cached-token GetProfile get.bin headers-consented.txt
drive get-new-token GetProfile get.bin headers-consented.txt --fresh-consent "$work/keys"
fi

if want batch; then
echo "== BatchGetProfiles of 100 at saturation"
for t in direct nginx discreet; do
  saturate batch100-saturation "$t" BatchGetProfiles batch100.bin headers-legitimate.txt
done
fi

if want stream; then
echo "== StreamProfiles of 1000 profiles at saturation"
for t in direct nginx discreet; do
  saturate stream1000-saturation "$t" StreamProfiles stream.bin headers-legitimate.txt
done
fi

# Every call Discreet served left exactly one span at the collector (strict mode).
sleep 1.5
curl_metrics() { python3 - "$metrics_port" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode())
PY
}
curl_metrics >"$out/discreet.metrics.txt"
calls=$(awk '/^discreet_calls_total/ {s += $NF} END {print s + 0}' "$out/discreet.metrics.txt")
# Denied calls, not counting those h2load itself reset when a timed run ended.
read -r spans denied <"$out/spans.count"

echo
python3 "$root/benches/load/table.py" "$results" "$discreet_rss_get" "$calls" "$spans" "$denied" \
  | tee "$out/table.md"
echo
echo "gateway build: $gateway_build"
echo "raw output: $out"
if [ "${PERF:-0}" = 1 ] && [ ! -s "$out/discreet.perf.data" ]; then
  echo "warning: PERF=1 but no profile: PERF_SCENARIO=${PERF_SCENARIO:-get-saturation} names no row that ran" >&2
fi
if [ "$spans" -lt "$calls" ] || [ "$denied" != 0 ]; then
  echo "error: $calls calls, $spans spans exported, $denied refused" >&2
  exit 1
fi
