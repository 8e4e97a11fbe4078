# Process and port plumbing shared by the bench/*/run.sh scripts (sourced, not run).
#
#   bench_workdir NAME   makes $work (a temp dir), starts the $pids list and installs the traps
#                        that stop every process in it (TERM, then KILL after 5 s) and remove
#                        $work on exit.
#   free_port            prints a free TCP port on 127.0.0.1.
#   wait_port PORT       waits (at most 10 s) until something accepts on 127.0.0.1:PORT.
#   stop_pid PID         stops one process started by the script (TERM, KILL after WAIT_S
#                        seconds, default 5) and forgets it.
# A script adds every process it starts to $pids ("cmd & pids+=($!)").

bench_cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}

bench_workdir() {
  work=$(mktemp -d "/tmp/ferry-bench-$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

stop_pid() {
  local pid=$1 wait_s=${WAIT_S:-5} keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((wait_s * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
