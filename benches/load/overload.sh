#!/usr/bin/env bash
# The overload benchmark (issue 8, item 5): Discreet as deployed (the shipped
# configuration with limits.adaptive_concurrency turned on, strict audit, spans exported to
# a collector) is flooded at 2x and then 5x its measured saturation rate, while one light
# open-loop caller (`discreet-load probe`) records what a well-behaved client sees.
#
#   benches/load/overload.sh           the full run: about two minutes
#   benches/load/overload.sh --smoke   short phases, to check the rig works
#
# Timeline, PHASE seconds each (default 10): quiet, flood at 2x, quiet, flood at 5x, quiet
# (the last one longer: a flood client that fell behind still reads its answers after its
# schedule ends). The flood runs on the same cores at idle priority, and a second probe
# calls the store directly, as the machine's floor under the same flood.
# Reports, per phase: the flood's offered, sent and answered rates, the probe's admitted and shed
# calls, admitted p50/p99 against the unloaded p99 (first quiet phase), how fast shed calls
# are answered, Discreet's peak memory against idle, and the recovery time after each flood
# (until the probe's calls are all admitted again at the unloaded latency).
#
# Environment: PHASE, CLIENTS (flood connections, default 8), PROBE_RATE (default 200),
# ADAPTIVE=0 (the fixed limit, to compare), MIN_CALLS and LATENCY_BUFFER
# (adaptive_concurrency.min_calls and .latency_buffer_percent),
# PERF=1 (profile Discreet during the 5x flood),
# OUT (raw output directory, default target/load/overload-<time>).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
phase=${PHASE:-10}
$smoke && phase=2
clients=${CLIENTS:-8}
streams=16
probe_rate=${PROBE_RATE:-200}
out=${OUT:-target/load/overload-$(date +%Y%m%dT%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
mkdir -p "$work"

RIG_NGINX=0
# The shipped configuration with adaptive_concurrency turned on (it is opt-in); ADAPTIVE=0
# keeps the fixed limit (max_concurrent_calls), to compare.
RIG_CONFIG_SED=""
if [ "${ADAPTIVE:-1}" = 1 ]; then RIG_CONFIG_SED+='s/^    enabled: false /    enabled: true  /;'; fi
if [ -n "${LATENCY_BUFFER:-}" ]; then
  RIG_CONFIG_SED+="s/^    latency_buffer_percent: [0-9]* /    latency_buffer_percent: $LATENCY_BUFFER /;"
fi
if [ -n "${MIN_CALLS:-}" ]; then RIG_CONFIG_SED+="s/^    min_calls: [0-9]* /    min_calls: $MIN_CALLS /;"; fi
# shellcheck source=benches/load/rig.sh
source "$root/benches/load/rig.sh"
now_us() { echo $(($(date +%s%N) / 1000)); }

# Saturation: the most calls a second Discreet serves, measured on a second Discreet with
# the same configuration but a fixed limit (adaptive_concurrency off), closed loop at the load
# benchmark's concurrency, then stopped. (With the adaptive limit a closed-loop client
# turns into a flood of its own: every shed call is retried at once.) Counted by
# discreet-load, which reads every grpc-status.
echo "== saturation rate (fixed limit, closed loop, $clients connections x $streams streams)"
sed -e 's/^    enabled: true  /    enabled: false /' "$work/discreet.yaml" >"$work/discreet-fixed.yaml"
under_test_pid=$discreet_pid
fixed_port=$(free_port)
start_discreet "$work/discreet-fixed.yaml" "$fixed_port" "$(free_port)"
fixed_pid=$discreet_pid
discreet_pid=$under_test_pid
wait_port "$fixed_port" discreet-fixed
drive_args=(--target "127.0.0.1:$fixed_port" --method "$svc/GetProfile" --body "$work/get.bin"
  --headers "$work/headers-consented.txt" --connections "$clients" --streams "$streams")
"$bin/discreet-load" drive "${drive_args[@]}" --requests 5000 >"$out/warm-up.txt"
"$bin/discreet-load" drive "${drive_args[@]}" --requests $((phase * 4000)) >"$out/saturation.txt"
kill "$fixed_pid"
saturation=$(sed -E 's/.* rps=([0-9]+).*/\1/' "$out/saturation.txt")
grep -q ' failed=0 ' "$out/saturation.txt" \
  || { echo "error: calls failed at saturation: $(cat "$out/saturation.txt")" >&2; exit 1; }
echo "   $saturation calls/s"
# Warm the gateway under test (connections, caches, its first no-load latency measurement).
"$bin/discreet-load" drive "${drive_args[@]/$fixed_port/$discreet_port}" --connections 1 \
  --streams 2 --requests 2000 >"$out/warm-up-under-test.txt"
idle_rss=$(awk '/^VmRSS/ {print $2}' "/proc/$discreet_pid/status")

# Discreet's resident memory every 100 ms, for the whole timeline, and its admission
# metrics (the limit in force, calls in flight, calls shed so far) beside it.
admission_metrics() {
  exec 3<>"/dev/tcp/127.0.0.1/$metrics_port" || return 0
  printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
  awk '/^discreet_(concurrency_limit|calls_in_flight|calls_shed_total) / {printf "\t%s=%s", $1, $2}' <&3
  exec 3<&-
}
(
  while kill -0 "$discreet_pid" 2>/dev/null; do
    printf '%s\t%s%s\n' "$(now_us)" "$(awk '/^VmRSS/ {print $2}' "/proc/$discreet_pid/status")" \
      "$(admission_metrics)"
    sleep 0.1
  done
) >"$out/rss.tsv" 2>/dev/null &
pids+=($!)

echo "== timeline: ${phase}s each of quiet, 2x flood, quiet, 5x flood, quiet; probe at $probe_rate req/s"
"$bin/discreet-load" probe --target "127.0.0.1:$discreet_port" --method "$svc/GetProfile" \
  --body "$work/get.bin" --headers "$work/headers-consented.txt" --rate "$probe_rate" \
  --seconds $((phase * 6)) --log "$out/probe.tsv" >"$out/probe.txt" &
probe_pid=$!
pids+=($probe_pid)
# The same probe straight to the store: what a call that does not pass through the gateway
# sees on this machine under the same flood (the rig's floor, for the table).
"$bin/discreet-load" probe --target "127.0.0.1:$store_port" --method "$svc/GetProfile" \
  --body "$work/get.bin" --headers "$work/headers-consented.txt" --rate "$probe_rate" \
  --seconds $((phase * 6)) --log "$out/probe-store.tsv" >"$out/probe-store.txt" &
store_probe_pid=$!
pids+=($store_probe_pid)
: >"$out/floods.tsv"
flood() { # factor
  local rate=$(( saturation * $1 )) start perf_pid=
  # PERF=1: sample Discreet's stacks during the 5x flood (perf report -i OUT/flood.perf.data).
  if [ "${PERF:-0}" = 1 ] && [ "$1" = 5 ]; then
    perf record -F 999 -g -p "$discreet_pid" -o "$out/flood.perf.data" >"$out/perf.log" 2>&1 &
    perf_pid=$!
  fi
  start=$(now_us)
  # Open loop over CLIENTS connections (discreet-load probe without a log: smoother than
  # h2load --rps, and it reads every grpc-status). On a shared machine it stands in for
  # clients on other machines and must not take the CPU the gateway under test needs, so
  # it runs as SCHED_IDLE: only on CPU time nothing else wants. (At nice 19 it did not:
  # the kernel left it running on one core while the gateway's threads waited up to
  # 10 ms in the other core's run queue, `perf sched latency`.) The table shows the rate
  # it managed.
  chrt --idle 0 "$bin/discreet-load" probe --target "127.0.0.1:$discreet_port" \
    --method "$svc/GetProfile" --body "$work/get.bin" --headers "$work/headers-consented.txt" \
    --rate "$rate" --seconds "$phase" --connections "$clients" >"$out/flood-$1x.txt" || true
  printf '%sx\t%s\t%s\t%s\n' "$1" "$rate" "$start" "$(now_us)" >>"$out/floods.tsv"
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  echo "   ${1}x: offered $rate calls/s: $(cat "$out/flood-$1x.txt")"
}
sleep "$phase"
flood 2
sleep "$phase"
flood 5
wait "$probe_pid" "$store_probe_pid"
cat "$out/probe.txt"

echo
python3 "$root/benches/load/overload.py" "$out" "$saturation" "$idle_rss" | tee "$out/table.md"
echo
echo "raw output: $out"
