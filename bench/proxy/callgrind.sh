#!/usr/bin/env bash
# Instructions Ferry spends on proxied keep-alive GETs, counted by callgrind: steadier than any
# timing on a shared machine, so it tells whether a change made the request path slower.
#
# usage: bench/proxy/callgrind.sh FERRY_BIN ECHO_BIN N [OUT]
#   Starts ECHO_BIN (examples/echo_service) as the upstream and FERRY_BIN under callgrind with
#   one worker and no access log, sends N GETs on one keep-alive connection, stops Ferry and
#   prints callgrind's total instruction count (the "summary:" line). OUT, if given, keeps the
#   callgrind file for callgrind_annotate.
#   The start-up and shutdown cost cancels out in the difference of two runs, so the cost of one
#   request is (Ir(N=2000) - Ir(N=1000)) / 1000:
#     bench/proxy/callgrind.sh build/rel/src/app/ferry build/rel/examples/echo_service 1000
#     bench/proxy/callgrind.sh build/rel/src/app/ferry build/rel/examples/echo_service 2000
#   Use a release build (-O2 -DNDEBUG). Ports: PORT_BASE (default 17311) .. PORT_BASE+2.
#   POLICY=standard gives the service the issue's standard resilience policy (timeouts, retries
#   under a budget, breaker, outlier detection, bulkhead, hedging); unset, the config has no
#   policy keys at all (the built-in default policy).
#   TLS=1 puts TLS on the listener (TLS 1.3, ECDSA P-256 certificate made here by openssl) and
#   the client speaks TLS: the handshake cancels out in the difference like start-up does.
#   PEER=haproxy runs HAProxy instead (bench/proxy/haproxy.cfg, or haproxy-tls.cfg with TLS=1:
#   one thread, the same headers added), to count a peer's instructions on the same requests;
#   FERRY_BIN is then not run (give any path).
#   TOOL=strace counts system calls instead (strace -f -c): prints strace's table, which
#   bench/proxy/syscalls.sh turns into calls per request.
set -euo pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,21p' "$0" >&2
  exit 2
fi
FERRY=$1
ECHO=$2
N=$3
OUT=${4:-}
BASE=${PORT_BASE:-17311}
ORIGIN=$BASE ADMIN=$((BASE + 1)) PROXY=$((BASE + 2))
if [[ ${TOOL:-callgrind} == strace ]]; then
  command -v strace >/dev/null || { echo "callgrind.sh: strace is not installed" >&2; exit 1; }
else
  command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
fi

DIR=$(mktemp -d)
EP= FP=
cleanup() {
  [[ -n $FP ]] && kill "$FP" 2>/dev/null || true
  [[ -n $EP ]] && kill "$EP" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

"$ECHO" --listen "127.0.0.1:$ORIGIN" >/dev/null 2>&1 &
EP=$!
cat >"$DIR/ferry.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$ADMIN}
access_log: {enabled: false}
listeners:
  - name: bench
    listen: 127.0.0.1:$PROXY
    routes:
      - match: {prefix: /}
        service: origin
services:
  origin:
    endpoints: [127.0.0.1:$ORIGIN]
YAML
if [[ ${TLS:-} == 1 ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/site.key" \
    -out "$DIR/site.pem" -subj /CN=localhost -days 2 2>/dev/null
  chmod 600 "$DIR/site.key"
  sed -i "s|    listen: 127.0.0.1:$PROXY|&\n    tls: {cert: $DIR/site.pem, key: $DIR/site.key}|" "$DIR/ferry.yaml"
fi
if [[ ${POLICY:-} == standard ]]; then
  cat >>"$DIR/ferry.yaml" <<'YAML'
    policy: standard
policies:
  standard:
    timeout: 2s
    try_timeout: 500ms
    retry:
      attempts: 3
      backoff: {initial: 25ms, max: 1s}
      on: [connect_failure, reset, try_timeout, 502, 503, 504]
      budget: {ratio: 20%, min_per_second: 10}
    circuit_breaker: {failure_ratio: 50%, min_requests: 20, window: 10s, open_for: 5s}
    outlier_detection: {consecutive_failures: 5, base_ejection: 30s, max_ejected: 50%}
    concurrency: {max: 1000, queue: 100}
    hedge: {after: 50ms, max_extra: 1}
YAML
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ ${TOOL:-callgrind} == strace ]]; then
  counter=(strace -f -c -o "$DIR/count.out")
else
  counter=(valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.out")
fi
if [[ ${PEER:-} == haproxy ]]; then
  template=$here/haproxy.cfg
  [[ ${TLS:-} == 1 ]] && template=$here/haproxy-tls.cfg
  cat "$DIR/site.pem" "$DIR/site.key" >"$DIR/site-combined.pem" 2>/dev/null || true
  sed -e "s|@LISTEN_PORT@|$PROXY|g" -e "s|@ORIGIN_PORT@|$ORIGIN|g" \
      -e "s|@COMBINED@|$DIR/site-combined.pem|g" "$template" >"$DIR/haproxy.cfg"
  "${counter[@]}" haproxy -db -f "$DIR/haproxy.cfg" >/dev/null 2>"$DIR/haproxy.err" &
  FP=$!
  for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PROXY), 1)" \
      2>/dev/null && break
    sleep 0.3
  done
else
  "${counter[@]}" "$FERRY" run -c "$DIR/ferry.yaml" >/dev/null 2>"$DIR/ferry.err" &
  FP=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$ADMIN/ready" && break
    sleep 0.3
  done
fi

python3 - "$N" "$PROXY" "${TLS:-}" <<'PY'
import re, socket, ssl, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
if sys.argv[3] == "1":
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    s = context.wrap_socket(s)
req = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
for _ in range(n):
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += s.recv(65536)
s.close()
PY

if [[ ${TOOL:-callgrind} == strace ]]; then
  # Stop the traced server, not strace (which would detach and leave it running).
  kill -TERM $(pgrep -P "$FP") 2>/dev/null || true
  wait "$FP" || true
  FP=
  cat "$DIR/count.out"
  exit 0
fi
kill -TERM "$FP"
wait "$FP" || true
FP=
grep -E "^summary|^totals" "$DIR/cg.out" | head -1
[[ -n $OUT ]] && cp "$DIR/cg.out" "$OUT"
exit 0
