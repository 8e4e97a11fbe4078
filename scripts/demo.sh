#!/usr/bin/env bash
# The `make demo` flow: Ferry in front of three instances of examples/echo_service, scripted
# traffic, and a plain-words account of what each step shows. Everything it starts, it stops.
#
#   FERRY_BIN [build/release/src/app/ferry]  ECHO_BIN [build/release/examples/echo_service]
# Only 127.0.0.1 is used. Exits non-zero as soon as a step does not show what it should.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRY_BIN=${FERRY_BIN:-$repo/build/release/src/app/ferry}
ECHO_BIN=${ECHO_BIN:-$repo/build/release/examples/echo_service}

if [ -t 1 ]; then
  bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' cyan=$'\e[36m' reset=$'\e[0m'
else
  bold='' dim='' green='' red='' cyan='' reset=''
fi

work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
pids=()
ferry_pid=
forget() {  # forget PID: it has been waited for, so cleanup must not signal it
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n%s%s%s\n' "$bold$cyan" "$*" "$reset"; }
say() { printf '   %s\n' "$*"; }
shown() { printf '   %s$ %s%s\n' "$dim" "$*" "$reset"; }
good() { printf '   %s✓ %s%s\n' "$green" "$*" "$reset"; }
fail() {
  printf '\n   %sFAILED: %s%s\n' "$bold$red" "$*" "$reset" >&2
  if [ -s "$work/ferry.log" ]; then
    printf '   last lines of Ferry'"'"'s log:\n' >&2
    tail -n 15 "$work/ferry.log" | sed 's/^/     /' >&2
  fi
  exit 1
}
indent() { sed 's/^/     /'; }
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')' 2>/dev/null; }

for bin in "$FERRY_BIN" "$ECHO_BIN"; do
  [ -x "$bin" ] || fail "$bin is missing: build first (make demo does)"
done
command -v curl >/dev/null || fail "curl is missing (scripts/install-deps installs it)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_echo NAME: starts an instance on a port the kernel picks; sets echo_address.
# (Not called in $(...): the PID must be recorded in this shell for cleanup.)
start_echo() {
  local name=$1 log=$work/$1.log
  "$ECHO_BIN" --listen 127.0.0.1:0 --name "$name" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    if grep -q 'listening on' "$log"; then
      echo_address=$(sed -n 's/.* listening on //p' "$log")
      return 0
    fi
    sleep 0.1
  done
  fail "echo_service $name did not start: $(cat "$log")"
}

start_echo catalog-1; catalog1=$echo_address
start_echo catalog-2; catalog2=$echo_address
start_echo orders-1; orders1=$echo_address
port=$(free_port)
admin=$(free_port)
base=http://127.0.0.1:$port
admin_url=http://127.0.0.1:$admin
config=$work/ferry.yaml

# write_config [EXTRA_ROUTE_YAML]: writes the config atomically (as editors and deploy tools do).
write_config() {
  cat >"$config.new" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$admin}
access_log: {enabled: true, path: $work/access.log}
listeners:
  - name: public
    listen: 127.0.0.1:$port
    routes:
${1:-}      - match: {prefix: /api/catalog/}
        service: catalog
        rewrite_prefix: /
      - match: {prefix: /api/orders/}
        service: orders
        rewrite_prefix: /
services:
  catalog:
    endpoints: [$catalog1, $catalog2]
    lb: round_robin
  orders:
    endpoints: [$orders1]
YAML
  mv "$config.new" "$config"
}
v2_route='      - match: {prefix: /api/v2/catalog/}
        service: catalog
        rewrite_prefix: /v2/
'

printf '%sFerry demo%s: one Ferry in front of three instances of a small echo service.\n' "$bold" "$reset"
say "catalog-1 on $catalog1, catalog-2 on $catalog2, orders-1 on $orders1"
write_config
"$FERRY_BIN" run -c "$config" >"$work/ferry.log" 2>&1 &
ferry_pid=$!
pids+=("$ferry_pid")
ready=
for _ in $(seq 100); do
  kill -0 "$ferry_pid" 2>/dev/null || fail "ferry exited at start"
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$admin_url/ready")" = 200 ]; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || fail "ferry's admin /ready did not answer 200 within 10 s"
say "Ferry listens on $base (admin API on $admin_url), config:"
sed 's/^/     /' "$config"

# ---------------------------------------------------------------------------------------------
step "1. Requests spread across instances"
say "Six requests to /api/catalog/items go to the catalog service, which has two instances."
say "Ferry takes turns (round_robin) and strips /api/catalog from the path (rewrite_prefix: /)."
shown "curl $base/api/catalog/items?page=N"
seen_instances=()
for i in 1 2 3 4 5 6; do
  body=$(curl -s --fail "$base/api/catalog/items?page=$i") || fail "request $i did not get a 2xx"
  instance=$(json_field '["instance"]' <<<"$body") || fail "not the echo service's JSON: $body"
  path=$(json_field '["path"]' <<<"$body")
  say "request $i -> answered by $bold$instance$reset (the service saw path $path)"
  seen_instances+=("$instance")
done
[[ " ${seen_instances[*]} " == *" catalog-1 "* && " ${seen_instances[*]} " == *" catalog-2 "* ]] ||
  fail "the requests did not reach both catalog instances"
good "both catalog instances answered"

# ---------------------------------------------------------------------------------------------
step "2. Ferry adds x-forwarded-for and a request id"
say "The echo service answers with the headers it received. Ferry added these:"
shown "curl $base/api/orders/whoami"
body=$(curl -s --fail "$base/api/orders/whoami") || fail "the orders route did not answer 2xx"
python3 -c 'import json,sys
h = json.load(sys.stdin)["headers"]
for k in ("x-forwarded-for", "x-forwarded-proto", "x-request-id"):
    print(k + ": " + h.get(k, "(missing)"))' <<<"$body" | indent
xff=$(json_field '["headers"].get("x-forwarded-for","")' <<<"$body")
rid=$(json_field '["headers"].get("x-request-id","")' <<<"$body")
[ -n "$xff" ] && [ -n "$rid" ] || fail "x-forwarded-for or x-request-id is missing: $body"
say "A request id sent by the client is kept, so one id follows a call through every hop:"
shown "curl -H 'x-request-id: demo-42' $base/api/orders/whoami"
rid=$(curl -s -H 'x-request-id: demo-42' "$base/api/orders/whoami" | json_field '["headers"].get("x-request-id","")')
say "x-request-id: $rid"
[ "$rid" = demo-42 ] || fail "the client's x-request-id was not kept"
good "headers added, client's request id kept"

# ---------------------------------------------------------------------------------------------
step "3. An unknown path gets a JSON 404 from Ferry"
say "No route matches /nowhere, so Ferry answers itself, with a stable error code:"
shown "curl -i $base/nowhere"
status=$(curl -s -o "$work/404.json" -w '%{http_code}' "$base/nowhere")
say "status $status"
indent <"$work/404.json"
[ "$status" = 404 ] || fail "expected 404, got $status"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$work/404.json" 2>/dev/null ||
  fail "the 404 body is not JSON"
good "404 with a JSON body"

# ---------------------------------------------------------------------------------------------
step "4. Metrics"
say "The admin API serves Prometheus metrics: requests per route and service, latencies, connections."
shown "curl -s $admin_url/metrics | grep ^ferry_ | head"
metrics=$(curl -s --fail "$admin_url/metrics") || fail "GET /metrics failed"
{ grep '^ferry_' <<<"$metrics" | grep -v '_bucket{' | head -n 8 | indent; } || true
grep -q '^ferry_' <<<"$metrics" || fail "no ferry_ metric in /metrics"
say "And one JSON line per request in the access log ($work/access.log):"
for _ in $(seq 20); do [ -s "$work/access.log" ] && break; sleep 0.1; done
if [ -s "$work/access.log" ]; then tail -n 2 "$work/access.log" | indent
else say "(the access log is still empty: it may be written in batches)"; fi
good "metrics served"

# ---------------------------------------------------------------------------------------------
step "5. Reload"
say "/api/v2/catalog/ has no route yet:"
shown "curl $base/api/v2/catalog/items"
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v2/catalog/items")
say "status $status"
say "Add a route for it to the config file and send SIGHUP: no restart, no dropped connection."
write_config "$v2_route"
shown "kill -HUP $ferry_pid"
kill -HUP "$ferry_pid"
status=
for _ in $(seq 50); do
  status=$(curl -s -o "$work/v2.json" -w '%{http_code}' "$base/api/v2/catalog/items")
  [ "$status" = 200 ] && break
  sleep 0.1
done
[ "$status" = 200 ] || fail "after the reload /api/v2/catalog/items answered $status"
say "status $status, answered by $(json_field '["instance"]' <"$work/v2.json"), which saw path $(json_field '["path"]' <"$work/v2.json")"
grep -iE '^ferry_[a-z_]*reload' <<<"$(curl -s "$admin_url/metrics")" | head -n 3 | indent || true
good "the new route serves"

# ---------------------------------------------------------------------------------------------
step "6. A bad config is rejected and the old one keeps serving"
say "Now a config whose route names a service that does not exist. ferry validate says why:"
bad=$work/bad.yaml
sed 's/service: orders$/service: payments/' "$config" >"$bad"
shown "ferry validate -c bad.yaml"
if "$FERRY_BIN" validate -c "$bad" >"$work/validate.out" 2>&1; then
  fail "ferry validate accepted a config with an unknown service"
fi
indent <"$work/validate.out"
say "Installed anyway and signalled, it is refused; the running config stays:"
cp "$config" "$work/good.yaml"
cp "$bad" "$config.new" && mv "$config.new" "$config"
log_lines=$(wc -l <"$work/ferry.log")
shown "kill -HUP $ferry_pid"
kill -HUP "$ferry_pid"
sleep 1
kill -0 "$ferry_pid" 2>/dev/null || fail "ferry exited on a bad config"
{ tail -n +"$((log_lines + 1))" "$work/ferry.log" | grep -iE -A2 'reject|reload.*(fail|error)' |
    head -n 3 | indent; } || true
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/v2/catalog/items")
say "GET /api/v2/catalog/items -> $status (still the old config)"
[ "$status" = 200 ] || fail "after a rejected reload the old routes should still serve, got $status"
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/api/orders/whoami")
say "GET /api/orders/whoami    -> $status"
[ "$status" = 200 ] || fail "after a rejected reload /api/orders/ answered $status"
mv "$work/good.yaml" "$config"
good "bad config rejected, traffic unaffected"

# ---------------------------------------------------------------------------------------------
step "7. Graceful shutdown"
say "SIGTERM: /ready turns 503, Ferry stops accepting, finishes in-flight requests, exits 0."
say "A slow request (the service waits 1 s) is in flight when the signal arrives:"
curl -s -o "$work/slow.json" -w '%{http_code}' "$base/api/catalog/delay/1000" >"$work/slow.status" &
slow_pid=$!
pids+=("$slow_pid")
sleep 0.3
shown "kill -TERM $ferry_pid"
kill -TERM "$ferry_pid"
rc=
for _ in $(seq 150); do
  if ! kill -0 "$ferry_pid" 2>/dev/null; then
    rc=0; wait "$ferry_pid" || rc=$?
    forget "$ferry_pid"
    break
  fi
  sleep 0.1
done
[ -n "$rc" ] || fail "ferry did not exit within 15 s of SIGTERM"
wait "$slow_pid" 2>/dev/null || true
forget "$slow_pid"
say "the in-flight request finished with status $(cat "$work/slow.status")"
say "ferry exited with code $rc"
[ "$rc" = 0 ] || fail "expected exit code 0"
[ "$(cat "$work/slow.status")" = 200 ] || fail "the in-flight request was not drained"
good "drained and exited 0"

printf '\n%sDemo done.%s Stopping the echo services; nothing started by the demo is left running.\n' \
  "$bold$green" "$reset"
