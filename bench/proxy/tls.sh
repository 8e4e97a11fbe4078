#!/usr/bin/env bash
# TLS-terminating reverse proxy benchmark: Ferry, HAProxy and nginx, one worker each, each
# terminating TLS (TLS 1.3, ECDSA P-256 certificate, ALPN http/1.1) in front of the same plain
# HTTP nginx origin, interleaved in one run (see docs/benchmarking.md).
#
#   bench/proxy/tls.sh                            # 3 rounds, 10 s per load
#   ROUNDS=1 DURATION=5s bench/proxy/tls.sh       # quicker
#
# Environment (defaults in brackets):
#   FERRY_BIN [build/release/src/app/ferry]  TARGETS [ferry haproxy nginx]  ROUNDS [3]
#   DURATION [10s]  CONNS [50]  THREADS [1]  WARMUP [2s]
#   LAT_CONNS [10] LAT_DELAY_MS [1]   the latency run, as in run.sh
#   NEW_CONNS [20]                    the handshake run: wrk with "Connection: close", so every
#                                     request is a new TCP connection and a full TLS handshake
# Measured per target: keep-alive requests/s over https, CPU µs per request (utime + stime from
# /proc/PID/stat), p50/p99 latency below saturation, and new TLS connections per second (one
# request each). Only 127.0.0.1. Every process started here is stopped by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
FERRY_BIN=${FERRY_BIN:-$repo/build/release/src/app/ferry}
TARGETS=${TARGETS:-ferry haproxy nginx}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2s}
LAT_CONNS=${LAT_CONNS:-10}
LAT_DELAY_MS=${LAT_DELAY_MS:-1}
NEW_CONNS=${NEW_CONNS:-20}

say() { printf '%s\n' "$*" >&2; }
die() { say "tls.sh: $*"; exit 1; }
for tool in wrk curl openssl nginx python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps installs it)"
done

source "$repo/bench/common/processes.sh"
bench_workdir proxy-tls
source "$repo/bench/common/measure.sh"

# One certificate for every target: ECDSA P-256, SAN localhost, key mode 600.
cert=$work/site.pem key=$work/site.key combined=$work/site-combined.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$key" \
  -out "$cert" -subj /CN=localhost -days 2 -addext subjectAltName=DNS:localhost 2>/dev/null
chmod 600 "$key"
cat "$cert" "$key" >"$combined"
chmod 600 "$combined"

start_origin

target_pid=
start_target() {
  local name=$1 dir=$work/$1
  case $name in
    ferry) start_peer ferry "$here/ferry-tls.yaml" ;;
    haproxy) start_peer haproxy "$here/haproxy-tls.cfg" ;;
    nginx) start_peer nginx "$here/nginx-proxy-tls.conf" ;;
    *) die "unknown target $name" ;;
  esac
  wait_http "https://localhost:$listen_port/" -k ||
    { cat "$dir/out.log" >&2 || true; die "$name did not start or does not proxy over TLS"; }
  local proto
  proto=$(curl -sk "https://localhost:$listen_port/headers")
  [[ $proto == *"x-forwarded-proto=https"* ]] || say "  warning: $name: $proto"
}

latency_script=$work/delay.lua
printf 'function delay() return %d end\n' "$LAT_DELAY_MS" >"$latency_script"

measure() {
  local name=$1 round=$2 out=$work/$1-r$2 url c0 c1 requests
  start_target "$name"
  url="https://localhost:$listen_port/"
  wrk_run "$out.warmup" -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$url"
  c0=$(cpu_ticks "$target_pid")
  wrk_run "$out.rps" -t"$THREADS" -c"$CONNS" -d"$DURATION" "$url"
  c1=$(cpu_ticks "$target_pid")
  record "$name" "$round" rps "$(awk '/^Requests\/sec:/ {print $2}' "$out.rps")"
  record_cpu "$name" "$round" "$c0" "$c1" "$out.rps"
  wrk_run "$out.lat" -t"$THREADS" -c"$LAT_CONNS" -d"$DURATION" --latency -s "$latency_script" "$url"
  record "$name" "$round" p50_ms "$(to_ms "$(awk '$1 == "50%" {print $2}' "$out.lat")")"
  record "$name" "$round" p99_ms "$(to_ms "$(awk '$1 == "99%" {print $2}' "$out.lat")")"
  c0=$(cpu_ticks "$target_pid")
  wrk_run "$out.new" -t"$THREADS" -c"$NEW_CONNS" -d"$DURATION" -H "Connection: close" "$url"
  c1=$(cpu_ticks "$target_pid")
  requests=$(awk '/ requests in / {print $1}' "$out.new")
  record "$name" "$round" new_conns_per_s "$(awk '/^Requests\/sec:/ {print $2}' "$out.new")"
  record "$name" "$round" cpu_us_per_handshake "$(awk -v c0="$c0" -v c1="$c1" -v r="$requests" \
    -v hz="$clk_tck" 'BEGIN { split(c0, a, " "); split(c1, b, " ");
                              printf "%.1f", (b[1] + b[2] - a[1] - a[2]) * 1e6 / hz / r }')"
  stop_pid "$target_pid"
  say "  $name round $round: $(awk -v n="$name" -v r="$round" '$1 == n && $2 == r {printf "%s=%s ", $3, $4}' "$results")"
}

say "targets: $TARGETS; $ROUNDS rounds; wrk -t$THREADS -c$CONNS -d$DURATION over https;" \
    "latency -c$LAT_CONNS with ${LAT_DELAY_MS}ms pauses; new connections -c$NEW_CONNS"
for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS"
  for name in $TARGETS; do measure "$name" "$round"; done
done

# Median of the rounds per target and metric, as a markdown table.
python3 - "$results" "$TARGETS" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines() if l]
targets = sys.argv[2].split()
metrics = [("rps", "keep-alive req/s"), ("cpu_us_per_req", "CPU µs/req"),
           ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
           ("new_conns_per_s", "new TLS conns/s"), ("cpu_us_per_handshake", "CPU µs/new conn")]
print("| target | " + " | ".join(label for _, label in metrics) + " |")
print("|---|" + "---|" * len(metrics))
for t in targets:
    cells = []
    for m, _ in metrics:
        values = [float(v) for n, _, k, v in rows if n == t and k == m]
        cells.append(f"{statistics.median(values):g}" if values else "-")
    print(f"| {t} | " + " | ".join(cells) + " |")
PY
