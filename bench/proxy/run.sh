#!/usr/bin/env bash
# HTTP/1.1 reverse proxy benchmark: Ferry, HAProxy and nginx, one worker each, in front of the
# same nginx origin, interleaved in one run (see docs/benchmarking.md and README.md here).
#
#   bench/proxy/run.sh                          # full run: 5 rounds, 10 s per load
#   ROUNDS=3 DURATION=5s bench/proxy/run.sh     # quicker
#   TARGETS="haproxy nginx" bench/proxy/run.sh  # peers only
#   TARGETS="ferry ferry-uring haproxy nginx" bench/proxy/run.sh   # two Ferry builds side by side
#
# Environment (defaults in brackets):
#   FERRY_BIN [build/release/src/app/ferry]  TARGETS [ferry haproxy nginx]  ROUNDS [5]
#   FERRY_URING_BIN [build/uring/src/app/ferry] the binary of target "ferry-uring" (any second
#                                   Ferry build; made for the -DFERRY_IO_URING=ON one)
#   DURATION [10s] throughput run   CONNS [50]   THREADS [1] wrk threads   WARMUP [2s]
#   LAT_CONNS [10] LAT_DELAY_MS [1] latency run: each connection waits LAT_DELAY_MS between
#                                   requests, which holds the rate well below saturation
#   IDLE_CONNS [1000] idle keep-alive connections for the memory figures
#   SYSCALLS [auto] 1: count each target's system calls (and io_uring submissions) per request
#                   with `perf stat` over an extra SYSCALL_DURATION [3s] load; auto: when perf
#                   can read the raw_syscalls tracepoint; 0: never
#   RESULTS_DIR [bench/results]
# CPU time per request: utime + stime of the target's processes (all threads; nginx: master +
# worker) from /proc/PID/stat right before and right after the throughput run, divided by the
# requests wrk completed in it.
# Only 127.0.0.1 is used. Every process started here is stopped by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
FERRY_BIN=${FERRY_BIN:-$repo/build/release/src/app/ferry}
FERRY_URING_BIN=${FERRY_URING_BIN:-$repo/build/uring/src/app/ferry}
TARGETS=${TARGETS:-ferry haproxy nginx}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2s}
LAT_CONNS=${LAT_CONNS:-10}
LAT_DELAY_MS=${LAT_DELAY_MS:-1}
IDLE_CONNS=${IDLE_CONNS:-1000}
SYSCALLS=${SYSCALLS:-auto}
SYSCALL_DURATION=${SYSCALL_DURATION:-3s}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}

say() { printf '%s\n' "$*" >&2; }
loud() {
  say ""
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  say "!!! $*"
  say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  say ""
}
die() { say "run.sh: $*"; exit 1; }

for tool in wrk curl python3 nginx; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps installs it)"
done

# haproxy.cfg (maxconn) and the nginx configs (worker_connections) have room for 4096.
[ "$IDLE_CONNS" -le 3500 ] || die "IDLE_CONNS above 3500 needs maxconn/worker_connections raised"
# Each target needs IDLE_CONNS client sockets plus its upstream ones, and so does the client.
want_fds=$((IDLE_CONNS * 2 + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
  ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" ||
    die "cannot raise ulimit -n to $want_fds (hard limit $(ulimit -Hn))"
fi
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE_CONNS + 64)) ] ||
  die "ulimit -n is $(ulimit -n): too low for IDLE_CONNS=$IDLE_CONNS"

source "$repo/bench/common/processes.sh"
bench_workdir proxy
source "$repo/bench/common/measure.sh"


# ---------------------------------------------------------------------------------------------
# Whether perf can count system calls (SYSCALLS=auto), and the events it counts.
syscall_events=raw_syscalls:sys_enter
if [ "$SYSCALLS" = auto ]; then
  if command -v perf >/dev/null &&
     perf stat -x, -e raw_syscalls:sys_enter -o /dev/null -- true >/dev/null 2>&1; then
    SYSCALLS=1
  else
    say "note: perf cannot count raw_syscalls:sys_enter here; no system call counts (SYSCALLS=0)"
    SYSCALLS=0
  fi
fi
if [ "$SYSCALLS" = 1 ]; then
  command -v perf >/dev/null || die "SYSCALLS=1 needs perf (Debian: linux-perf)"
  # Operations submitted through io_uring are not system calls: count them beside.
  if perf stat -x, -e io_uring:io_uring_submit_req -o /dev/null -- true >/dev/null 2>&1; then
    syscall_events+=,io_uring:io_uring_submit_req
  fi
fi

# ---------------------------------------------------------------------------------------------
# The origin, up for the whole run.
start_origin
say "origin: nginx on 127.0.0.1:$origin_port"

# Which targets can run.
runnable=()
for target in $TARGETS; do
  case $target in
    ferry)
      if [ -x "$FERRY_BIN" ]; then runnable+=(ferry)
      else loud "SKIPPING FERRY: no executable at FERRY_BIN=$FERRY_BIN — the table will have no Ferry row"; fi ;;
    ferry-uring)
      if [ -x "$FERRY_URING_BIN" ]; then runnable+=(ferry-uring)
      else loud "SKIPPING FERRY-URING: no executable at FERRY_URING_BIN=$FERRY_URING_BIN"; fi ;;
    haproxy)
      if command -v haproxy >/dev/null; then runnable+=(haproxy)
      else loud "SKIPPING HAPROXY: haproxy is not installed"; fi ;;
    nginx) runnable+=(nginx) ;;
    *) die "unknown target '$target' (known: ferry ferry-uring haproxy nginx)" ;;
  esac
done
[ ${#runnable[@]} -gt 0 ] || die "nothing to measure"

target_pid=
# start_target NAME: starts it on a fresh port; sets target_pid and listen_port.
start_target() {
  case $1 in
    ferry) start_peer ferry "$here/ferry.yaml" ;;
    ferry-uring) BIN=$FERRY_URING_BIN start_peer ferry-uring "$here/ferry.yaml" ;;
    haproxy) start_peer haproxy "$here/haproxy.cfg" ;;
    nginx) start_peer nginx "$here/nginx-proxy.conf" ;;
  esac
  local name=$1 dir=$work/$1
  if ! wait_http "http://127.0.0.1:$listen_port/"; then
    cat "$dir/out.log" >&2 || true
    die "$name did not start or does not proxy to the origin"
  fi
  if [[ $name == ferry* ]]; then
    wait_http "http://127.0.0.1:$admin_port/ready" || die "ferry's admin /ready is not 200"
  fi
}

# Checks once per target that it adds the same headers as the others.
declare -A checked=()
check_headers() {
  local name=$1 seen
  [ -n "${checked[$name]:-}" ] && return 0
  checked[$name]=1
  seen=$(curl -s "http://127.0.0.1:$listen_port/headers")
  say "  $name adds: $seen"
  [[ $seen == *"x-forwarded-for=127.0.0.1"* && $seen == *"x-forwarded-proto=http"* &&
     $seen =~ x-request-id=[^[:space:]]+ ]] ||
    say "  warning: $name does not add all of x-forwarded-for, x-forwarded-proto, x-request-id"
  seen=$(curl -s -H 'X-Request-ID: keep-me' "http://127.0.0.1:$listen_port/headers")
  [[ $seen == *"x-request-id=keep-me"* ]] ||
    say "  warning: $name does not keep the client's x-request-id: $seen"
}

latency_script=$work/delay.lua
printf 'function delay() return %d end\n' "$LAT_DELAY_MS" >"$latency_script"

measure() {  # measure NAME ROUND
  local name=$1 round=$2 out=$work/$1-r$2 url
  start_target "$name"
  url="http://127.0.0.1:$listen_port/"
  check_headers "$name"
  sleep 1
  record "$name" "$round" rss_idle_kib "$(rss_kib "$target_pid")"

  wrk_run "$out.warmup" -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$url"
  local cpu_before cpu_after
  cpu_before=$(cpu_ticks "$target_pid")
  wrk_run "$out.rps" -t"$THREADS" -c"$CONNS" -d"$DURATION" "$url"
  cpu_after=$(cpu_ticks "$target_pid")
  record "$name" "$round" rps "$(awk '/^Requests\/sec:/ {print $2}' "$out.rps")"
  record_cpu "$name" "$round" "$cpu_before" "$cpu_after" "$out.rps"
  if [ "$SYSCALLS" = 1 ]; then count_syscalls "$name" "$round" "$url"; fi

  wrk_run "$out.lat" -t"$THREADS" -c"$LAT_CONNS" -d"$DURATION" --latency -s "$latency_script" "$url"
  record "$name" "$round" lat_rps "$(awk '/^Requests\/sec:/ {print $2}' "$out.lat")"
  record "$name" "$round" p50_ms "$(to_ms "$(awk '$1 == "50%" {print $2}' "$out.lat")")"
  record "$name" "$round" p99_ms "$(to_ms "$(awk '$1 == "99%" {print $2}' "$out.lat")")"

  # Memory held by idle keep-alive client connections, and whether it is given back.
  sleep 1
  local before with after idle_pid line held failed
  before=$(rss_kib "$target_pid")
  python3 "$here/idle_conns.py" "$listen_port" "$IDLE_CONNS" >"$out.idle" 2>&1 &
  idle_pid=$!
  pids+=("$idle_pid")
  for _ in $(seq 600); do
    grep -q '^ready' "$out.idle" 2>/dev/null && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  line=$(grep '^ready' "$out.idle" || true)
  [ -n "$line" ] || { cat "$out.idle" >&2; die "idle connections to $name failed"; }
  read -r _ held failed <<<"$line"
  [ "$failed" = 0 ] || say "  warning: $failed of $IDLE_CONNS idle connections to $name failed"
  sleep 1
  with=$(rss_kib "$target_pid")
  stop_pid "$idle_pid"
  sleep 2
  after=$(rss_kib "$target_pid")
  record "$name" "$round" rss_per_1k_kib "$(( (with - before) * 1000 / (held > 0 ? held : 1) ))"
  record "$name" "$round" rss_before_idle_kib "$before"
  record "$name" "$round" rss_after_close_kib "$after"
  record "$name" "$round" kept_after_close_kib "$((after - before))"

  stop_pid "$target_pid"
  say "  $name round $round: $(awk '/^Requests\/sec:/ {print $2}' "$out.rps") req/s," \
      "$(awk -v n="$name" -v r="$round" '$1 == n && $2 == r && $3 == "cpu_us_per_req" {print $4}' \
         "$results") CPU µs/req," \
      "p50 $(awk '$1 == "50%" {print $2}' "$out.lat") p99 $(awk '$1 == "99%" {print $2}' "$out.lat")," \
      "idle conns +$(( (with - before) )) KiB, after close $((after - before)) KiB"
}

# count_syscalls NAME ROUND URL: system calls (and io_uring submissions) of the target's
# processes per request, over an extra load of SYSCALL_DURATION. perf counts from just before
# the load until just after it, so a few idle calls are included.
count_syscalls() {
  local name=$1 round=$2 url=$3 out=$work/$1-r$2 secs perf_pid requests calls sqes
  secs=$(awk -v d="$SYSCALL_DURATION" 'BEGIN {sub(/s$/, "", d); print d + 1}')
  perf stat -x, -e "$syscall_events" -p "$(proc_tree "$target_pid" | tr ' ' ',')" \
    -o "$out.perf" -- sleep "$secs" >/dev/null 2>&1 &
  perf_pid=$!
  pids+=("$perf_pid")
  sleep 0.5
  wrk_run "$out.sys" -t"$THREADS" -c"$CONNS" -d"$SYSCALL_DURATION" "$url"
  wait "$perf_pid" || say "  warning: perf stat failed for $name"
  stop_pid "$perf_pid"
  requests=$(awk '/ requests in / {print $1}' "$out.sys")
  calls=$(awk -F, '$3 ~ /^raw_syscalls:sys_enter/ {print $1}' "$out.perf" 2>/dev/null)
  sqes=$(awk -F, '$3 ~ /^io_uring:io_uring_submit_req/ {print $1}' "$out.perf" 2>/dev/null)
  if [[ ${requests:-0} -gt 0 && ${calls:-x} =~ ^[0-9]+$ ]]; then
    record "$name" "$round" syscalls_per_req "$(awk -v c="$calls" -v r="$requests" \
      'BEGIN {printf "%.3f", c / r}')"
    [[ ${sqes:-x} =~ ^[0-9]+$ ]] && record "$name" "$round" uring_ops_per_req \
      "$(awk -v c="$sqes" -v r="$requests" 'BEGIN {printf "%.3f", c / r}')"
  else
    say "  warning: no system call count for $name round $round"
  fi
  return 0
}

direct_rps() {  # the origin alone, for scale
  local before after
  before=$(cpu_ticks "$origin_pid")
  wrk_run "$work/direct-r$1" -t"$THREADS" -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$origin_port/"
  after=$(cpu_ticks "$origin_pid")
  record direct "$1" rps "$(awk '/^Requests\/sec:/ {print $2}' "$work/direct-r$1")"
  record_cpu direct "$1" "$before" "$after" "$work/direct-r$1"
}

say "targets: ${runnable[*]}; $ROUNDS rounds; wrk -t$THREADS -c$CONNS -d$DURATION;" \
    "latency -c$LAT_CONNS with ${LAT_DELAY_MS}ms between requests; $IDLE_CONNS idle connections"
for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS"
  direct_rps "$round"
  for name in "${runnable[@]}"; do
    measure "$name" "$round"
  done
done

# ---------------------------------------------------------------------------------------------
stamp=$(date +%Y-%m-%d-%H%M)
mkdir -p "$RESULTS_DIR"
report=$RESULTS_DIR/proxy-$stamp.md
command_line="$(printf '%q ' env ROUNDS="$ROUNDS" DURATION="$DURATION" CONNS="$CONNS" \
  THREADS="$THREADS" LAT_CONNS="$LAT_CONNS" LAT_DELAY_MS="$LAT_DELAY_MS" \
  IDLE_CONNS="$IDLE_CONNS" SYSCALLS="$SYSCALLS" TARGETS="$TARGETS")bench/proxy/run.sh"
versions() {
  { [ -x "$FERRY_BIN" ] && "$FERRY_BIN" version 2>&1 | head -1; } || true
  if [[ " ${runnable[*]} " == *" ferry-uring "* ]]; then
    { printf 'ferry-uring: '; "$FERRY_URING_BIN" version 2>&1 | head -1; } || true
  fi
  { haproxy -v 2>/dev/null | head -1 | cut -d' ' -f1-3; } || true
  nginx -v 2>&1 || true
  { wrk -v 2>&1 | head -1 | cut -d' ' -f1-2; } || true
}
versions=$(versions | paste -sd ';' | sed 's/;/; /g')
python3 "$here/report.py" "$results" \
  --targets "${runnable[*]}" --requested "$TARGETS" --command "$command_line" \
  --machine "$(nproc) cores, $(uname -sr), $(date -u '+%Y-%m-%d %H:%M UTC')" \
  --versions "$versions" \
  --params "wrk -t$THREADS -c$CONNS -d$DURATION; CPU time from /proc/PID/stat (utime + stime, all threads) over that run, per request completed; $( [ "$SYSCALLS" = 1 ] && echo "system calls: perf stat -e $syscall_events over an extra wrk -d$SYSCALL_DURATION; ")latency: wrk -t$THREADS -c$LAT_CONNS -d$DURATION --latency, ${LAT_DELAY_MS} ms pause per connection between requests; $IDLE_CONNS idle connections; $ROUNDS rounds" \
  >"$report"
cat "$report"
if [[ " ${runnable[*]} " == *" ferry"* ]]; then
  cp "$report" "$RESULTS_DIR/proxy-latest.md"
  say "wrote $report and $RESULTS_DIR/proxy-latest.md"
else
  loud "Ferry was not measured: wrote $report only; proxy-latest.md is left as it was"
fi
