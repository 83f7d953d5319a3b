# Sourced by run.sh and overload.sh (which set root, out, work): installs h2load and
# nginx if missing, builds, starts the reference store, the span sink, Discreet as
# deployed and (unless RIG_NGINX=0) nginx, writes the request files, and defines the
# measurement helpers. Stops every process it started when the script exits.
# shellcheck shell=bash

# --- tools -------------------------------------------------------------------------------
if ! command -v h2load >/dev/null || ! command -v nginx >/dev/null; then
  echo "== installing nginx and h2load (Debian: nginx-light, nghttp2-client)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q </dev/null >"$out/apt.log" 2>&1
  apt-get install -y -q nginx-light nghttp2-client </dev/null >>"$out/apt.log" 2>&1
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

echo "== building (release)"
cargo build --release --quiet -p discreet-cli -p profile-store -p discreet-benches \
  --bin discreet --bin profile-store --bin discreet-load
bin=$root/target/release
# The gateway as the image ships it with PGO=1 (deploy/pgo-build.sh: two more release
# builds and a short training run), else the plain release build. DISCREET_BIN runs any
# other build (an older commit, say) in the same rig; the rest is built from this tree.
if [ -n "${DISCREET_BIN:-}" ]; then
  discreet_bin=$DISCREET_BIN
  gateway_build="DISCREET_BIN=$DISCREET_BIN"
elif [ "${PGO:-0}" = 1 ]; then
  echo "== building the gateway with profile-guided optimisation (deploy/pgo-build.sh)"
  "$root/deploy/pgo-build.sh" "$root/target/pgo" >"$out/pgo-build.log" 2>&1 \
    || { echo "error: PGO build failed (see $out/pgo-build.log)" >&2; exit 1; }
  discreet_bin=$root/target/pgo/discreet
  gateway_build="PGO (deploy/pgo-build.sh)"
else
  discreet_bin=$bin/discreet
  gateway_build="release (cargo build --release; PGO=1 for the image's build)"
fi
echo "$gateway_build" >"$out/gateway-build.txt"
echo "   gateway build: $gateway_build"

# --- processes ---------------------------------------------------------------------------
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # nginx removes its pid file as it exits (it may already be going): read it quietly.
  local nginx_pid
  nginx_pid=$(cat "$work/nginx.pid" 2>/dev/null) && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port, process name
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "error: $2 did not listen on 127.0.0.1:$1 (see $out/$2.log)" >&2
  exit 1
}

store_port=$(free_port); sink_port=$(free_port); discreet_port=$(free_port)
metrics_port=$(free_port); nginx_port=$(free_port)

"$bin/discreet-load" sink --listen "127.0.0.1:$sink_port" --count-file "$out/spans.count" \
  >"$out/sink.log" 2>&1 &
pids+=($!)
"$bin/profile-store" --listen "127.0.0.1:$store_port" >"$out/profile-store.log" 2>&1 &
pids+=($!)

# Discreet with the shipped configuration and policy, its keys made here.
cp config/discreet.yaml config/policy.yaml "$work/"
# RIG_CONFIG_SED: a sed script applied to that copy (overload.sh: ADAPTIVE=0, MIN_CALLS).
if [ -n "${RIG_CONFIG_SED:-}" ]; then sed -i -e "$RIG_CONFIG_SED" "$work/discreet.yaml"; fi
"$discreet_bin" keys dev --dir "$work/keys" 2>>"$out/discreet.log"
start_discreet() { # config port metrics-port: starts Discreet, sets discreet_pid
  RUST_LOG=warn "$discreet_bin" serve --config "$1" \
    --listen "127.0.0.1:$2" --upstream "http://127.0.0.1:$store_port" \
    --audit-endpoint "http://127.0.0.1:$sink_port" --metrics-listen "127.0.0.1:$3" \
    >>"$out/discreet.log" 2>&1 &
  discreet_pid=$!
  pids+=($discreet_pid)
}
start_discreet "$work/discreet.yaml" "$discreet_port" "$metrics_port"

if [ "${RIG_NGINX:-1}" = 1 ]; then
# nginx as a platform team would run it in front of a gRPC store: a worker per core,
# HTTP/2 to callers, pooled keepalive connections to the store, no access log, no
# per-connection request cap.
cat >"$work/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx.pid;
error_log $out/nginx.log warn;
user root;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  fastcgi_temp_path $work/nginx-fastcgi;
  uwsgi_temp_path $work/nginx-uwsgi;
  scgi_temp_path $work/nginx-scgi;
  # gRPC connections are long-lived: the 1000-request defaults would close each caller
  # and store connection after 1000 calls (h2load does not reconnect; real callers
  # would, paying a handshake).
  upstream store { server 127.0.0.1:$store_port; keepalive 128; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$nginx_port http2;
    keepalive_requests 100000000;
    http2_max_concurrent_streams 256;
    location / { grpc_pass grpc://store; }
  }
}
EOF
"$nginx" -p "$work" -c "$work/nginx.conf" -g 'daemon off;' >>"$out/nginx.log" 2>&1 &
nginx_master=$!
pids+=($nginx_master)
fi

wait_port "$sink_port" sink
wait_port "$store_port" profile-store
wait_port "$discreet_port" discreet
[ "${RIG_NGINX:-1}" = 1 ] && wait_port "$nginx_port" nginx

"$bin/discreet-load" prepare --keys "$work/keys" --out "$work" --stream-limit 1000
declare -A port=([direct]=$store_port [nginx]=$nginx_port [discreet]=$discreet_port)
svc=/profile.v1.ProfileService

# --- measurement helpers -------------------------------------------------------------------
# The intermediary's processes: Discreet's one, or nginx's master and workers.
procs_of() {
  case $1 in
    discreet) echo "$discreet_pid" ;;
    nginx) echo "$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')" ;;
    *) echo "" ;;
  esac
}
cpu_ticks() { # summed utime+stime of the processes
  local total=0 p
  for p in $(procs_of "$1"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
peak_rss_kib() { # summed VmHWM of the processes
  local total=0 p
  for p in $(procs_of "$1"); do
    total=$((total + $(awk '/^VmHWM/ {print $2}' "/proc/$p/status")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

h2load_args() { # body headers-file
  local args=(-d "$work/$1" -H 'content-type: application/grpc' -H 'te: trailers')
  while IFS= read -r line; do [ -n "$line" ] && args+=(-H "$line"); done <"$work/$2"
  printf '%s\0' "${args[@]}"
}
