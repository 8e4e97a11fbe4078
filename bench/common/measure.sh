# Measurement helpers shared by the bench/*/ scripts (sourced after processes.sh, once $work is
# made; the script defines say and die).
#
#   proc_tree PID        the process and its children (nginx: master + worker)
#   rss_kib PID          VmRSS in KiB of the process and its children
#   cpu_ticks PID        "UTIME STIME": clock ticks used so far by the process and its children,
#                        all threads ($clk_tck per second)
#   to_ms VALUE, to_us VALUE   a wrk latency (812.00us, 1.23ms, 1.01s, 1.5m) in ms or µs
#   wait_http URL [CURL_ARGS...]   until URL answers 200 (at most 10 s)
#   record TARGET ROUND METRIC VALUE   one line of $results (tab-separated)
#   record_cpu TARGET ROUND "BEFORE" "AFTER" WRK_OUTPUT   CPU µs per request: total, user, system
#   wrk_run OUT ARGS...  runs wrk, keeps its output, warns about errors in it
#   render TEMPLATE OUT  fills in @ORIGIN_PORT@ @LISTEN_PORT@ @ADMIN_PORT@ @CERT@ @KEY@ @COMBINED@
#                        from $origin_port $listen_port $admin_port $cert $key $combined
#   start_origin         the nginx origin (bench/proxy/nginx-origin.conf) on a free port: sets
#                        origin_port and origin_pid
#   start_peer NAME TEMPLATE   starts ferry (FERRY_BIN, or BIN=...), haproxy or nginx with the
#                        rendered TEMPLATE in $work/NAME, on listen_port/admin_port picked here:
#                        sets target_pid (added to $pids); the caller waits for it to answer

proc_tree() { echo "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); }

rss_kib() {
  local total=0 pid kib
  for pid in $(proc_tree "$1"); do
    kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

cpu_ticks() {
  local user=0 sys=0 pid u s
  for pid in $(proc_tree "$1"); do
    # The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    read -r u s < <(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$pid/stat" 2>/dev/null ||
                    echo 0 0)
    user=$((user + ${u:-0})); sys=$((sys + ${s:-0}))
  done
  echo "$user $sys"
}
clk_tck=$(getconf CLK_TCK)

to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
    else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
    else print v }'
}
to_us() { awk -v ms="$(to_ms "$1")" 'BEGIN { print ms * 1000 }'; }

wait_http() {
  local url=$1; shift
  for _ in $(seq 100); do
    [ "$(curl -s "$@" -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

results=$work/results.tsv  # target round metric value
: >"$results"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }

record_cpu() {
  local name=$1 round=$2 u0 s0 u1 s1 requests
  read -r u0 s0 <<<"$3"; read -r u1 s1 <<<"$4"
  requests=$(awk '/ requests in / {print $1}' "$5")
  [ "${requests:-0}" -gt 0 ] || { say "  warning: no request count in $5"; return 0; }
  record "$name" "$round" requests "$requests"
  record "$name" "$round" cpu_us_per_req "$(awk -v t=$((u1 - u0 + s1 - s0)) -v r="$requests" \
    -v hz="$clk_tck" 'BEGIN {printf "%.3f", t * 1e6 / hz / r}')"
  record "$name" "$round" cpu_user_us_per_req "$(awk -v t=$((u1 - u0)) -v r="$requests" \
    -v hz="$clk_tck" 'BEGIN {printf "%.3f", t * 1e6 / hz / r}')"
  record "$name" "$round" cpu_sys_us_per_req "$(awk -v t=$((s1 - s0)) -v r="$requests" \
    -v hz="$clk_tck" 'BEGIN {printf "%.3f", t * 1e6 / hz / r}')"
}

wrk_run() {
  local out=$1; shift
  wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    say "  warning: wrk reported errors:"; grep -E 'Non-2xx|Socket errors' "$out" >&2
  fi
}

render() {
  sed -e "s|@ORIGIN_PORT@|${origin_port:-0}|g" -e "s|@LISTEN_PORT@|${listen_port:-0}|g" \
      -e "s|@ADMIN_PORT@|${admin_port:-0}|g" -e "s|@CERT@|${cert:-}|g" -e "s|@KEY@|${key:-}|g" \
      -e "s|@COMBINED@|${combined:-}|g" "$1" >"$2"
}

start_origin() {
  origin_port=$(free_port)
  mkdir -p "$work/origin/origin-tmp"
  render "$repo/bench/proxy/nginx-origin.conf" "$work/origin/nginx.conf"
  nginx -p "$work/origin/" -e "$work/origin/startup-error.log" -c "$work/origin/nginx.conf" \
    -g 'daemon off;' &
  origin_pid=$!
  pids+=("$origin_pid")
  wait_http "http://127.0.0.1:$origin_port/" || die "the nginx origin did not start"
}

start_peer() {
  local name=$1 template=$2 dir=$work/$1
  listen_port=$(free_port)
  admin_port=$(free_port)
  rm -rf "$dir"; mkdir -p "$dir/proxy-tmp"
  case $name in
    ferry*)
      local bin=${BIN:-$FERRY_BIN}
      [ -x "$bin" ] || die "no ferry at $bin"
      render "$template" "$dir/ferry.yaml"
      "$bin" run -c "$dir/ferry.yaml" >"$dir/out.log" 2>&1 &
      target_pid=$! ;;
    haproxy)
      render "$template" "$dir/haproxy.cfg"
      haproxy -db -f "$dir/haproxy.cfg" >"$dir/out.log" 2>&1 &
      target_pid=$! ;;
    nginx)
      render "$template" "$dir/nginx.conf"
      nginx -p "$dir/" -e "$dir/startup-error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
        >"$dir/out.log" 2>&1 &
      target_pid=$! ;;
    *) die "unknown target $name" ;;
  esac
  pids+=("$target_pid")
}
