#!/usr/bin/env bash
# Mesh hop latency: what two Ferry sidecars with mutual TLS between them add over a direct call.
#
#   client --HTTP--> caller sidecar --mTLS (tls: mesh)--> callee sidecar --HTTP--> nginx origin
#
# compared, in interleaved rounds, with the client calling the origin directly, and with one
# plain (no TLS) Ferry hop for context. One wrk connection sends requests back to back (closed
# loop), so a request's latency is the path's round trip; p50 and p99 come from wrk --latency.
# The hop's cost is p50(mesh) - p50(direct). Both sidecars run one worker, as sidecars do.
#
#   bench/mesh/run.sh                      # 5 rounds of 10 s
#   ROUNDS=3 DURATION=5s bench/mesh/run.sh
#
# Environment (defaults in brackets): FERRY_BIN [build/release/src/app/ferry], ROUNDS [5],
# DURATION [10s], WARMUP [2s], RESULTS_DIR [bench/results].
# Certificates come from `ferry ca` (init, then one workload certificate per sidecar).
# Only 127.0.0.1 is used; every process started here is stopped by PID on exit.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
FERRY_BIN=${FERRY_BIN:-$repo/build/release/src/app/ferry}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
RESULTS_DIR=${RESULTS_DIR:-$repo/bench/results}

say() { printf '%s\n' "$*" >&2; }
die() { say "mesh/run.sh: $*"; exit 1; }
for tool in wrk curl nginx python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps installs it)"
done
[ -x "$FERRY_BIN" ] || die "no Ferry executable at FERRY_BIN=$FERRY_BIN (make release builds it)"

source "$repo/bench/common/processes.sh"
bench_workdir mesh
source "$repo/bench/common/measure.sh"

start_origin

# The mesh CA and one workload certificate per sidecar.
"$FERRY_BIN" ca init --dir "$work/ca" --trust-domain bench.local >/dev/null
"$FERRY_BIN" ca issue --dir "$work/ca" --service caller >/dev/null
"$FERRY_BIN" ca issue --dir "$work/ca" --service origin >/dev/null

caller_port=$(free_port)
callee_port=$(free_port)
plain_port=$(free_port)
# The callee sidecar: a mesh listener in front of the origin.
cat >"$work/callee.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:0}
mesh: {cert: $work/ca/origin.pem, key: $work/ca/origin.key, ca: $work/ca/ca.pem}
listeners:
  - name: inbound
    listen: 127.0.0.1:$callee_port
    tls: mesh
    routes: [{match: {prefix: /}, service: local}]
services:
  local: {endpoints: [127.0.0.1:$origin_port]}
YAML
# The caller sidecar: the app's outbound listener; the origin service is called over the mesh.
cat >"$work/caller.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:0}
mesh: {cert: $work/ca/caller.pem, key: $work/ca/caller.key, ca: $work/ca/ca.pem}
listeners:
  - name: outbound
    listen: 127.0.0.1:$caller_port
    routes: [{match: {prefix: /}, service: origin}]
services:
  origin: {endpoints: [127.0.0.1:$callee_port], tls: mesh}
YAML
# One plain Ferry hop, for context.
cat >"$work/plain.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:0}
listeners:
  - name: plain
    listen: 127.0.0.1:$plain_port
    routes: [{match: {prefix: /}, service: origin}]
services:
  origin: {endpoints: [127.0.0.1:$origin_port]}
YAML
for side in callee caller plain; do
  "$FERRY_BIN" run --config "$work/$side.yaml" >"$work/$side.log" 2>&1 &
  pids+=($!)
done
for port in $callee_port $caller_port $plain_port; do
  wait_port "$port" || die "a sidecar did not start (logs in $work)"
done
wait_http "http://127.0.0.1:$caller_port/" || { cat "$work"/*.log >&2; die "the mesh path fails"; }
wait_http "http://127.0.0.1:$plain_port/" || die "the plain hop fails"

: >"$results"
declare -A url=([direct]="http://127.0.0.1:$origin_port/" [plain_hop]="http://127.0.0.1:$plain_port/"
                [mesh]="http://127.0.0.1:$caller_port/")
paths=(direct plain_hop mesh)
for round in $(seq "$ROUNDS"); do
  for path in "${paths[@]}"; do
    wrk -t1 -c1 -d "$WARMUP" "${url[$path]}" >/dev/null 2>&1
    out=$work/wrk-$path-$round.txt
    wrk -t1 -c1 -d "$DURATION" --latency "${url[$path]}" >"$out" 2>&1 || die "wrk failed"
    if grep -qE 'Non-2xx|Socket errors' "$out"; then cat "$out" >&2; die "errors on $path"; fi
    p50=$(awk '$1 == "50%" {print $2}' "$out"); p99=$(awk '$1 == "99%" {print $2}' "$out")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    printf '%s\t%s\t%s\t%s\t%s\n' "$path" "$round" "$(to_us "$p50")" "$(to_us "$p99")" "$rps" \
      >>"$results"
    say "round $round $path: p50 $p50 p99 $p99 ($rps req/s)"
  done
done

mkdir -p "$RESULTS_DIR"
stamp=$(date -u +%Y-%m-%d-%H%M)
report=$RESULTS_DIR/mesh-$stamp.md
python3 - "$results" "$ROUNDS" "$DURATION" >"$report" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
by = {}
for path, _round, p50, p99, rps in rows:
    by.setdefault(path, []).append((float(p50), float(p99), float(rps)))
med = {p: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs),
           statistics.median(v[2] for v in vs)) for p, vs in by.items()}
print(f"# Mesh hop latency, {sys.argv[2]} rounds of {sys.argv[3]}, one connection, unpinned\n")
print("| path | p50 µs | p99 µs | req/s | p50 added over direct, µs |")
print("|---|---:|---:|---:|---:|")
for p in ("direct", "plain_hop", "mesh"):
    if p in med:
        a, b, r = med[p]
        print(f"| {p} | {a:.1f} | {b:.1f} | {r:.0f} | {a - med['direct'][0]:.1f} |")
print("\nmesh = client -> caller sidecar -> mTLS -> callee sidecar -> origin; "
      "plain_hop = client -> one Ferry -> origin; medians over rounds.")
PY
cp "$report" "$RESULTS_DIR/mesh-latest.md"
cat "$report"
