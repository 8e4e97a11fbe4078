#!/usr/bin/env bash
# Message-bus benchmark: Ferry `durability: interval` vs NATS JetStream (file storage, acks before
# fsync) and Ferry `durability: batch` vs Redis streams (appendonly + appendfsync always),
# interleaved in one run (Ferry interval, NATS, Ferry batch, Redis; every round), see
# docs/benchmarking.md and README.md here.
#
#   bench/bus/run.sh                              # full run: 3 rounds, 10 s per load
#   ROUNDS=5 DURATION=20 bench/bus/run.sh         # longer
#   PAIRS=interval bench/bus/run.sh               # Ferry interval vs NATS only
#   PAIRS=nats bench/bus/run.sh                   # Ferry on NATS (bus.backend: nats) vs NATS
#
# Each round starts every system afresh (empty data directory) and runs, in order:
#   pub   acknowledged-publish throughput of SIZE-byte messages from 1 and from 16 sync
#         publishers (each waits for its ack before sending the next), DURATION s each after
#         WARMUP s;
#   lat   publish-to-delivery latency: LAT_RATE msg/s in total from LAT_PUBLISHERS paced sync
#         publishers, one consumer (Ferry: long-poll GET ?max=100&wait=1s + ack; NATS: ephemeral
#         push consumer, explicit acks; Redis: XREAD BLOCK), time from the send timestamp in the
#         payload to the consumer's receive, same process and clock.
# The load tool is bench/bus/bus_load.cpp, compiled here with g++ into the temp dir.
#
# Environment (defaults in brackets):
#   FERRY_BIN [build/release/src/app/ferry]  PAIRS [interval batch]  ROUNDS [3]
#   DURATION [10] seconds per load   WARMUP [1] seconds, not counted   SIZE [1024] bytes
#   PUBLISHERS [1 16] publisher counts for the throughput loads
#   LAT_RATE [1000] msg/s   LAT_PUBLISHERS [8]
#   SYNC_INTERVAL [1s] Ferry interval mode's fsync period (NATS 2.9: 2 min, not settable)
#   NATS_GOMAXPROCS [1] Go threads running NATS code at once, to match Ferry's one bus thread
#   PIN [both] load: the load tool runs on CPU 0 only (taskset), the system under test wherever
#       the scheduler puts it; both: and the system under test on CPU 1 only; off: no pinning
#   RESULTS_DIR [bench/results]
# Only 127.0.0.1 is used. Every process started here is stopped by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
FERRY_BIN=${FERRY_BIN:-$repo/build/release/src/app/ferry}
PAIRS=${PAIRS:-interval batch}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-1}
WARMUP=${WARMUP%s}
SIZE=${SIZE:-1024}
PUBLISHERS=${PUBLISHERS:-1 16}
LAT_RATE=${LAT_RATE:-1000}
LAT_PUBLISHERS=${LAT_PUBLISHERS:-8}
SYNC_INTERVAL=${SYNC_INTERVAL:-1s}
NATS_GOMAXPROCS=${NATS_GOMAXPROCS:-1}
PIN=${PIN:-both}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

for tool in g++ curl python3 nats-server redis-server redis-cli taskset; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps installs it)"
done
[ -x "$FERRY_BIN" ] || die "no Ferry executable at FERRY_BIN=$FERRY_BIN (cmake --preset release && cmake --build --preset release --target ferry)"
{ [[ $ROUNDS =~ ^[0-9]+$ ]] && [ "$ROUNDS" -ge 1 ]; } || die "ROUNDS must be a positive integer"
for p in $PAIRS; do
  case $p in interval | batch | nats) ;; *) die "unknown pair '$p' (known: interval batch nats)" ;; esac
done

source "$repo/bench/common/processes.sh"
# on_server / on_load COMMAND...: runs it on the server's / the load tool's CPUs (see PIN).
# on_server execs, so `on_server CMD &` makes $! the server's own PID: use it only with `&`.
case $PIN in
  load | both) if [ "$(nproc)" -lt 2 ]; then say "PIN=$PIN needs 2 CPUs; not pinning"; PIN=off; fi ;;
  off) ;;
  *) die "PIN must be load, both or off" ;;
esac
on_server() { if [ "$PIN" = both ]; then exec taskset -c 1 "$@"; else exec "$@"; fi; }
on_load() { if [ "$PIN" != off ]; then taskset -c 0 "$@"; else "$@"; fi; }
bench_workdir bus
WAIT_S=10  # stop_pid: TERM, then KILL after this many seconds

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

results=$work/results.tsv  # system round metric value
: >"$results"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }

# field LINE KEY: the value of key=value in a "result ..." line of bus_load.
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

# ---------------------------------------------------------------------------------------------
say "building bus_load"
load=$work/bus_load
g++ -std=c++20 -O2 -pthread -Wall -Wextra "$here/bus_load.cpp" -lfmt -o "$load" ||
  die "could not build bench/bus/bus_load.cpp (needs g++ 12 and libfmt-dev)"

target_pid=
helper_pid=  # ferry-nats: the nats-server beside Ferry
port=
# start_system NAME DIR: starts it on a fresh port with an empty data dir; sets target_pid, port.
start_system() {
  local name=$1 dir=$2
  port=$(free_port)
  rm -rf "$dir"; mkdir -p "$dir/data"
  case $name in
    ferry-interval | ferry-batch)
      local admin_port; admin_port=$(free_port)
      sed -e "s/@BUS_PORT@/$port/g" -e "s/@ADMIN_PORT@/$admin_port/g" \
          -e "s#@DATA_DIR@#$dir/data#g" -e "s/@SYNC_INTERVAL@/$SYNC_INTERVAL/g" \
          "$here/$name.yaml" >"$dir/ferry.yaml"
      on_server "$FERRY_BIN" run -c "$dir/ferry.yaml" >"$dir/out.log" 2>&1 &
      target_pid=$!; pids+=("$target_pid")
      local ok=0
      for _ in $(seq 100); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/queues")" = 200 ] &&
           [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/ready")" = 200 ]; then
          ok=1; break
        fi
        sleep 0.1
      done
      [ $ok = 1 ] || { cat "$dir/out.log" >&2; die "$name did not start"; } ;;
    ferry-nats)
      local admin_port nats_port; admin_port=$(free_port); nats_port=$(free_port)
      sed -e "s/@PORT@/$nats_port/g" -e "s#@STORE_DIR@#$dir/data#g" -e "s/^max_payload: 1MB/max_payload: 8MB/" \
        "$here/nats.conf" >"$dir/nats.conf"
      # NATS on the load's CPU: the system under test's CPU is Ferry's. (taskset and env exec,
      # so $! is nats-server's own PID.)
      if [ "$PIN" != off ]; then
        taskset -c 0 env GOMAXPROCS="$NATS_GOMAXPROCS" nats-server -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
      else
        env GOMAXPROCS="$NATS_GOMAXPROCS" nats-server -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
      fi
      helper_pid=$!; pids+=("$helper_pid")
      wait_port "$nats_port" || { cat "$dir/nats.log" >&2; die "nats-server did not start"; }
      sed -e "s/@BUS_PORT@/$port/g" -e "s/@ADMIN_PORT@/$admin_port/g" -e "s/@NATS_PORT@/$nats_port/g" \
          "$here/$name.yaml" >"$dir/ferry.yaml"
      on_server "$FERRY_BIN" run -c "$dir/ferry.yaml" >"$dir/out.log" 2>&1 &
      target_pid=$!; pids+=("$target_pid")
      local ok=0
      for _ in $(seq 100); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/ready")" = 200 ]; then
          ok=1; break
        fi
        sleep 0.1
      done
      [ $ok = 1 ] || { cat "$dir/out.log" >&2; die "$name did not start"; } ;;
    nats)
      sed -e "s/@PORT@/$port/g" -e "s#@STORE_DIR@#$dir/data#g" "$here/nats.conf" >"$dir/nats.conf"
      on_server env GOMAXPROCS="$NATS_GOMAXPROCS" nats-server -c "$dir/nats.conf" >"$dir/out.log" 2>&1 &
      target_pid=$!; pids+=("$target_pid")
      wait_port "$port" || { cat "$dir/out.log" >&2; die "nats-server did not start"; }
      "$load" nats setup --port "$port" --name PUB --subject pub >/dev/null &&
        "$load" nats setup --port "$port" --name LAT --subject lat >/dev/null ||
        { cat "$dir/out.log" >&2; die "could not create the JetStream streams"; } ;;
    redis)
      sed -e "s/@PORT@/$port/g" -e "s#@DIR@#$dir/data#g" "$here/redis.conf" >"$dir/redis.conf"
      on_server redis-server "$dir/redis.conf" >"$dir/out.log" 2>&1 &
      target_pid=$!; pids+=("$target_pid")
      local ok=0
      for _ in $(seq 100); do
        [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ] && { ok=1; break; }
        sleep 0.1
      done
      [ $ok = 1 ] || { cat "$dir/out.log" >&2; die "redis-server did not start"; }
      [ "$(redis-cli -h 127.0.0.1 -p "$port" config get appendfsync | tail -1)" = always ] ||
        die "redis is not running with appendfsync always" ;;
  esac
}

# Ferry's log counters for a queue: "appends fsync_batches fsync_records".
ferry_log_stats() {
  curl -s "http://127.0.0.1:$port/v1/queues/$1" | python3 -c '
import json, sys
m = json.load(sys.stdin)["messages_log"]
print(m["appends"], m["fsync_batches"], m["fsync_records"])'
}

# run_load OUT ARGS...: runs bus_load, keeps its output, returns its result line.
run_load() {
  local out=$1; shift
  if ! on_load "$load" "$@" >"$out" 2>"$out.err"; then
    cat "$out.err" >&2; die "bus_load $* failed"
  fi
  [ -s "$out.err" ] && { say "  bus_load said:"; sed 's/^/    /' "$out.err" >&2; }
  grep '^result ' "$out"
}

measure() {  # measure SYSTEM ROUND
  local sys=$1 round=$2 dir=$work/$1 kind queue_pub queue_lat line p before after
  start_system "$sys" "$dir"
  case $sys in
    ferry-*) kind=ferry; queue_pub=(--name pub); queue_lat=(--name lat) ;;
    nats) kind=nats; queue_pub=(--name PUB --subject pub); queue_lat=(--name LAT --subject lat) ;;
    redis) kind=redis; queue_pub=(--name pub); queue_lat=(--name lat) ;;
  esac
  local summary="$sys round $round:"
  for p in $PUBLISHERS; do
    [ $kind = ferry ] && [ "$sys" != ferry-nats ] && before=$(ferry_log_stats pub)
    line=$(run_load "$dir/pub$p-r$round" "$kind" pub --port "$port" "${queue_pub[@]}" \
      --publishers "$p" --duration "$DURATION" --warmup "$WARMUP" --size "$SIZE")
    record "$sys" "$round" "pub${p}_rps" "$(field "$line" msgs_per_s)"
    record "$sys" "$round" "pub${p}_ack_p50_ms" "$(field "$line" ack_p50_ms)"
    record "$sys" "$round" "pub${p}_ack_p99_ms" "$(field "$line" ack_p99_ms)"
    record "$sys" "$round" "pub${p}_errors" "$(field "$line" errors)"
    if [ $kind = ferry ] && [ "$sys" != ferry-nats ]; then
      after=$(ferry_log_stats pub)
      read -r _ b0 r0 <<<"$before"; read -r _ b1 r1 <<<"$after"
      # fsyncs of the messages log during the load (warmup included) and records per fsync
      record "$sys" "$round" "pub${p}_fsyncs_per_s" \
        "$(awk -v b=$((b1 - b0)) -v d="$DURATION" -v w="$WARMUP" 'BEGIN {printf "%.1f", b / (d + w)}')"
      record "$sys" "$round" "pub${p}_records_per_fsync" \
        "$(awk -v b=$((b1 - b0)) -v r=$((r1 - r0)) 'BEGIN {printf "%.1f", b ? r / b : 0}')"
    fi
    summary+=" pub$p $(field "$line" msgs_per_s)/s (ack p99 $(field "$line" ack_p99_ms) ms);"
  done
  line=$(run_load "$dir/lat-r$round" "$kind" lat --port "$port" "${queue_lat[@]}" \
    --publishers "$LAT_PUBLISHERS" --rate "$LAT_RATE" --duration "$DURATION" \
    --warmup "$WARMUP" --size "$SIZE")
  record "$sys" "$round" lat_p50_ms "$(field "$line" p50_ms)"
  record "$sys" "$round" lat_p99_ms "$(field "$line" p99_ms)"
  record "$sys" "$round" lat_rate "$(field "$line" sent_per_s)"
  record "$sys" "$round" lat_missing "$(field "$line" missing)"
  record "$sys" "$round" rss_kib "$(rss_kib "$target_pid")"
  summary+=" latency at $(field "$line" sent_per_s)/s p50 $(field "$line" p50_ms) ms p99 $(field "$line" p99_ms) ms"
  [ "$(field "$line" missing)" = 0 ] || summary+=" ($(field "$line" missing) not delivered!)"
  stop_pid "$target_pid"
  if [ -n "$helper_pid" ]; then stop_pid "$helper_pid"; helper_pid=; fi
  rm -rf "$dir/data"
  say "  $summary"
}

systems=()
for p in $PAIRS; do
  case $p in
    interval) systems+=(ferry-interval nats) ;;
    batch) systems+=(ferry-batch redis) ;;
    nats) [[ " ${systems[*]} " == *" nats "* ]] && systems+=(ferry-nats) || systems+=(ferry-nats nats) ;;
  esac
done
say "systems: ${systems[*]}; $ROUNDS rounds; $DURATION s per load after $WARMUP s warmup;" \
    "${SIZE}-byte messages; publishers: $PUBLISHERS; latency at $LAT_RATE msg/s from" \
    "$LAT_PUBLISHERS publishers"
for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS"
  for sys in "${systems[@]}"; do
    measure "$sys" "$round"
  done
done

# ---------------------------------------------------------------------------------------------
stamp=$(date +%Y-%m-%d-%H%M)
mkdir -p "$RESULTS_DIR"
report=$RESULTS_DIR/bus-$stamp.md
command_line="$(printf '%q ' env ROUNDS="$ROUNDS" DURATION="$DURATION" WARMUP="$WARMUP" \
  SIZE="$SIZE" PUBLISHERS="$PUBLISHERS" LAT_RATE="$LAT_RATE" LAT_PUBLISHERS="$LAT_PUBLISHERS" \
  SYNC_INTERVAL="$SYNC_INTERVAL" NATS_GOMAXPROCS="$NATS_GOMAXPROCS" PIN="$PIN" PAIRS="$PAIRS")bench/bus/run.sh"
versions="$("$FERRY_BIN" version 2>&1 | head -1 || true); $(nats-server --version 2>&1 | head -1);"
versions+=" $(redis-server --version | cut -d' ' -f1-3)"
disk=$(df -P "$work" | awk 'NR == 2 {print $1}')
python3 "$here/report.py" "$results" --systems "${systems[*]}" --publishers "$PUBLISHERS" \
  --command "$command_line" \
  --machine "$(nproc) cores, $(uname -sr), data on $disk ($(findmnt -no FSTYPE -T "$work" 2>/dev/null || echo ?)), $(date -u '+%Y-%m-%d %H:%M UTC')" \
  --versions "$versions" \
  --params "${SIZE}-byte messages; $DURATION s per load after $WARMUP s warmup; $ROUNDS rounds; sync publishers (one in flight each); latency: $LAT_RATE msg/s from $LAT_PUBLISHERS paced publishers, one consumer; Ferry sync_interval $SYNC_INTERVAL; NATS GOMAXPROCS=$NATS_GOMAXPROCS; $(case $PIN in load) echo "load tool pinned to CPU 0";; both) echo "load tool pinned to CPU 0, system under test to CPU 1";; *) echo "no CPU pinning";; esac)" \
  >"$report"
cat "$report"
cp "$report" "$RESULTS_DIR/bus-latest.md"
say "wrote $report and $RESULTS_DIR/bus-latest.md"
