#!/usr/bin/env bash
# Instructions two mesh sidecars spend on one request, counted by callgrind: steadier than any
# timing on a shared machine (bench/proxy/callgrind.sh does the same for one plain hop).
#
#   client --HTTP--> caller sidecar --mTLS (tls: mesh)--> callee sidecar --HTTP--> echo_service
#
# usage: bench/mesh/callgrind.sh FERRY_BIN ECHO_BIN N
#   Starts ECHO_BIN (examples/echo_service) as the origin and both sidecars under callgrind (one
#   worker each, no access log; certificates from `ferry ca`), sends N GETs on one keep-alive
#   connection to the caller sidecar, stops both and prints each one's instruction count and
#   their sum, then the callee's count of accepted connections (ferry_downstream_connections_total
#   on its /metrics, the readiness probes excluded as they go to the admin port): 1 means the
#   caller kept one mutual-TLS connection alive for all N requests.
#   Per request: (sum(N=2000) - sum(N=1000)) / 1000 (start-up, handshake and shutdown cancel).
#   Use a release build. Ports: PORT_BASE (default 17331) .. PORT_BASE+4. 127.0.0.1 only.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
FERRY=$1
ECHO=$2
N=$3
BASE=${PORT_BASE:-17331}
ORIGIN=$BASE CALLEE=$((BASE + 1)) CALLER=$((BASE + 2))
CALLEE_ADMIN=$((BASE + 3)) CALLER_ADMIN=$((BASE + 4))
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }

DIR=$(mktemp -d)
EP= CEP= CRP=
cleanup() {
  [[ -n $CRP ]] && kill "$CRP" 2>/dev/null || true
  [[ -n $CEP ]] && kill "$CEP" 2>/dev/null || true
  [[ -n $EP ]] && kill "$EP" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

"$ECHO" --listen "127.0.0.1:$ORIGIN" >/dev/null 2>&1 &
EP=$!
"$FERRY" ca init --dir "$DIR/ca" --trust-domain bench.local >/dev/null
"$FERRY" ca issue --dir "$DIR/ca" --service caller >/dev/null
"$FERRY" ca issue --dir "$DIR/ca" --service origin >/dev/null
cat >"$DIR/callee.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$CALLEE_ADMIN}
access_log: {enabled: false}
mesh: {cert: $DIR/ca/origin.pem, key: $DIR/ca/origin.key, ca: $DIR/ca/ca.pem}
listeners:
  - name: inbound
    listen: 127.0.0.1:$CALLEE
    tls: mesh
    routes: [{match: {prefix: /}, service: local}]
services:
  local: {endpoints: [127.0.0.1:$ORIGIN]}
YAML
cat >"$DIR/caller.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$CALLER_ADMIN}
access_log: {enabled: false}
mesh: {cert: $DIR/ca/caller.pem, key: $DIR/ca/caller.key, ca: $DIR/ca/ca.pem}
listeners:
  - name: outbound
    listen: 127.0.0.1:$CALLER
    routes: [{match: {prefix: /}, service: origin}]
services:
  origin: {endpoints: [127.0.0.1:$CALLEE], tls: mesh}
YAML
valgrind --tool=callgrind --callgrind-out-file="$DIR/callee.out" \
  "$FERRY" run -c "$DIR/callee.yaml" >/dev/null 2>"$DIR/callee.err" &
CEP=$!
valgrind --tool=callgrind --callgrind-out-file="$DIR/caller.out" \
  "$FERRY" run -c "$DIR/caller.yaml" >/dev/null 2>"$DIR/caller.err" &
CRP=$!
for admin in $CALLEE_ADMIN $CALLER_ADMIN; do
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$admin/ready" && break
    sleep 0.3
  done
done

python3 - "$N" "$CALLER" <<'PY'
import re, socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
for _ in range(n):
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit("callgrind.sh: " + head.decode(errors="replace").splitlines()[0])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(65536)
s.close()
PY
accepted=$(curl -s "http://127.0.0.1:$CALLEE_ADMIN/metrics" |
  awk '/^ferry_downstream_connections_total/ {sum += $2} END {print sum + 0}')

kill -TERM "$CRP" "$CEP"
wait "$CRP" || true
wait "$CEP" || true
CRP= CEP=
caller=$(awk '/^summary:|^totals:/ {print $2; exit}' "$DIR/caller.out")
callee=$(awk '/^summary:|^totals:/ {print $2; exit}' "$DIR/callee.out")
echo "caller $caller"
echo "callee $callee"
echo "sum $((caller + callee))"
echo "connections the callee accepted $accepted"
