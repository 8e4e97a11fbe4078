#!/usr/bin/env bash
# The `make demo` flow: Ferry in front of three instances of examples/echo_service, scripted
# traffic, and a plain-words account of what each step shows; then an ordering flow on Ferry's
# message bus (examples/order_service: an ordering service and a payment handler). Everything it
# starts, it stops. Last, security: a gateway on HTTPS checking JWTs, a mesh with mutual TLS
# between the services, and an authorization policy refusing a call.
#
#   FERRY_BIN [build/release/src/app/ferry]  ECHO_BIN [build/release/examples/echo_service]
#   ORDER_BIN [build/release/examples/order_service]
# Only 127.0.0.1 is used. Exits non-zero as soon as a step does not show what it should.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRY_BIN=${FERRY_BIN:-$repo/build/release/src/app/ferry}
ECHO_BIN=${ECHO_BIN:-$repo/build/release/examples/echo_service}
ORDER_BIN=${ORDER_BIN:-$repo/build/release/examples/order_service}

if [ -t 1 ]; then
  bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' cyan=$'\e[36m' reset=$'\e[0m'
else
  bold='' dim='' green='' red='' cyan='' reset=''
fi

work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
pids=()
ferry_pid=
ferry_log=$work/ferry.log  # the log of the Ferry currently running, shown when a step fails
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
  if [ -s "$ferry_log" ]; then
    printf '   last lines of Ferry'"'"'s log:\n' >&2
    tail -n 15 "$ferry_log" | sed 's/^/     /' >&2
  fi
  exit 1
}
indent() { sed 's/^/     /'; }
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')' 2>/dev/null; }

for bin in "$FERRY_BIN" "$ECHO_BIN" "$ORDER_BIN"; do
  [ -x "$bin" ] || fail "$bin is missing: build first (make demo does)"
done
command -v curl >/dev/null || fail "curl is missing (scripts/install-deps installs it)"

# Waits up to 10 s for a node's admin /ready on 127.0.0.1:PORT to answer 200; fails with MESSAGE.
wait_ready() {
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/ready" && return 0
    sleep 0.1
  done
  fail "$2"
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_service NAME COMMAND...: starts a service that prints "... listening on ADDR" (or, for a
# puller, "... pulling ...") to $work/NAME.log; sets service_address and service_pid. (Not
# called in $(...): the PID must be recorded in this shell for cleanup.)
start_service() {
  local name=$1 log=$work/$1.log
  shift
  "$@" >"$log" 2>&1 &
  service_pid=$!
  pids+=("$service_pid")
  for _ in $(seq 50); do
    if grep -qE 'listening on|pulling' "$log"; then
      service_address=$(sed -n 's/.*listening on //p' "$log")
      return 0
    fi
    sleep 0.1
  done
  fail "$name did not start: $(cat "$log")"
}

# start_echo NAME: an echo_service instance on a port the kernel picks; sets echo_address.
# start_echo NAME [ADDRESS]: ADDRESS defaults to 127.0.0.1:0.
start_echo() {
  start_service "$1" "$ECHO_BIN" --listen "${2:-127.0.0.1:0}" --name "$1"
  echo_address=$service_address
}

# stop_pid PID: SIGTERM, wait for the exit (up to 5 s, then SIGKILL), and forget it.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget "$1"
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
step "4. Requests that two servers could read differently are refused"
say "A Connection header may name headers to drop at the next hop, but naming Content-Length"
say "would make the service read the body as a second request (request smuggling):"
shown "curl -i -H 'Connection: content-length' --data 'GET /admin HTTP/1.1' $base/api/orders/x"
status=$(curl -s -o "$work/smuggle.json" -w '%{http_code}' -H 'Connection: content-length' \
  --data 'GET /admin HTTP/1.1' "$base/api/orders/x")
say "status $status"
indent <"$work/smuggle.json"
[ "$status" = 400 ] || fail "expected 400 for Connection: content-length, got $status"
say "A forward-proxy client sends the absolute URL as the target; Ferry routes it by its path:"
shown "curl -x $base http://shop.example/api/catalog/items"
status=$(curl -s -o "$work/absolute.json" -w '%{http_code}' -x "$base" http://shop.example/api/catalog/items)
say "status $status, the service saw path $(json_field '["path"]' <"$work/absolute.json") and host $(json_field '["headers"]["host"]' <"$work/absolute.json")"
[ "$status" = 200 ] || fail "expected 200 for an absolute-form target, got $status"
good "refused with 400 before anything reached a service; absolute-form targets routed (docs/conformance.md)"

# ---------------------------------------------------------------------------------------------
step "5. Metrics"
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
step "6. Reload"
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
step "7. A bad config is rejected and the old one keeps serving"
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
step "8. Graceful shutdown"
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

# =============================================================================================
# Part 2: the ordering flow on Ferry's message bus. A new Ferry runs the gateway and a bus; the
# ordering service (examples/order_service) takes orders through the gateway, queues a payment
# command and publishes an order.created event; a payment handler (order_service --role payment
# --pull) receives the commands from the queue, and the bus keeps the events for two
# subscriptions.

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds; false on timeout.
wait_for() {
  local tenths=$(($1 * 10))
  shift
  for _ in $(seq "$tenths"); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}
# payments_stat EXPR: a field of GET /v1/queues/payments, like '["counts"]["acked"]'.
payments_stat() { curl -s "$bus_url/v1/queues/payments" | json_field "$1"; }
# log_count NAME PATTERN: how many lines of $work/NAME.log match.
log_count() { grep -c -- "$2" "$work/$1.log" || true; }
# Conditions for wait_for, evaluated afresh on every poll.
log_has() { [ "$(log_count "$1" "$2")" -ge "$3" ]; }  # log_has NAME PATTERN COUNT
payments_is() { [ "$(payments_stat "$1")" = "$2" ]; }  # payments_is EXPR VALUE
# place_order ID AMOUNT: POSTs an order through the gateway; sets order_status, order_body.
place_order() {
  order_body=$(curl -s -o - -w '\n%{http_code}' -X POST -H 'content-type: application/json' \
    -d "{\"order_id\":\"$1\",\"amount\":$2}" "$base/api/orders")
  order_status=${order_body##*$'\n'}
  order_body=${order_body%$'\n'*}
  order_body=${order_body%$'\n'}
}
# events_of SUBSCRIPTION: pulls and acks order.created events with the CLI until two have come
# (or 5 s pass); prints them in short and stores the ids in event_ids.
events_of() {
  local out=$work/$1.jsonl
  : >"$out"
  for _ in $(seq 5); do
    "$FERRY_BIN" consume --topic orders --subscription "$1" --max 10 --wait 1s --ack \
      >>"$out" 2>"$work/consume.err" || fail "ferry consume failed: $(cat "$work/consume.err")"
    [ "$(wc -l <"$out")" -ge 2 ] && break
  done
  python3 -c 'import json,sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    print("%s received %s  id=%s  data=%s" % (sys.argv[2], e["type"], e["id"], json.dumps(e["data"])))' \
    "$out" "$1" | indent
  event_ids=$(python3 -c 'import json,sys; print(" ".join(sorted(json.loads(l)["id"] for l in open(sys.argv[1]))))' "$out")
}

printf '\n%sPart 2: an ordering flow on the message bus%s\n' "$bold" "$reset"
say "Ferry also runs a durable message bus. A second Ferry now routes /api/orders to an ordering"
say "service and runs a bus with a queue for payment commands and a topic for order events."
port=$(free_port)
admin=$(free_port)
bus_port=$(free_port)
base=http://127.0.0.1:$port
admin_url=http://127.0.0.1:$admin
bus_url=http://127.0.0.1:$bus_port
start_service ordering-1 "$ORDER_BIN" --listen 127.0.0.1:0 --name ordering-1 --bus "$bus_url"
order_address=$service_address
config=$work/ferry-bus.yaml
cat >"$config" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$admin}
listeners:
  - name: public
    listen: 127.0.0.1:$port
    routes:
      - match: {prefix: /api/orders}
        service: orders
        rewrite_prefix: /orders
services:
  orders:
    endpoints: [$order_address]
bus:
  listen: 127.0.0.1:$bus_port
  data_dir: $work/bus-data
  queues:
    payments:                 # commands: each one handled once, by the payment handler
      max_deliveries: 3
      backoff: {initial: 100ms, max: 1s}
  topics:
    orders:                   # events: every subscription gets its own copy
      subscriptions:
        billing: {filter: {type: order.created}}
        shipping: {filter: {type: order.created}}
YAML
ferry_log=$work/ferry-bus.log
"$FERRY_BIN" run -c "$config" >"$ferry_log" 2>&1 &
ferry_pid=$!
pids+=("$ferry_pid")
ready=
for _ in $(seq 100); do
  kill -0 "$ferry_pid" 2>/dev/null || fail "ferry exited at start"
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$admin_url/ready")" = 200 ]; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || fail "ferry's admin /ready did not answer 200 within 10 s"
start_service payments-v1 "$ORDER_BIN" --role payment --pull --bus "$bus_url" \
  --name payments-v1 --max-amount 1000
payment_pid=$service_pid
say "ordering-1 on $order_address is the ordering service; payments-v1, the payment handler,"
say "takes payment commands from the queue (it pulls them over the bus API, and acks or nacks)."
say "Ferry listens on $base, bus API on $bus_url (data in a temp dir), config:"
indent <"$config"
export FERRY_BUS_URL=$bus_url  # the ferry CLI commands below talk to this bus

# ---------------------------------------------------------------------------------------------
step "9. An order goes through the gateway to the ordering service"
say "The client POSTs an order. The ordering service puts a payment command on the queue"
say "'payments' and publishes an 'order.created' event to the topic 'orders', then answers 201."
shown "curl -X POST $base/api/orders -d '{\"order_id\":\"o-1001\",\"amount\":25}'"
place_order o-1001 25
say "status $order_status"
indent <<<"$order_body"
[ "$order_status" = 201 ] || fail "the order was not accepted: $order_status $order_body"
place_order o-1002 40
say "and a second order, o-1002 for 40.00: status $order_status"
[ "$order_status" = 201 ] || fail "order o-1002 was not accepted: $order_status $order_body"
good "orders accepted"

# ---------------------------------------------------------------------------------------------
step "10. The payment command travels on the queue to the payment handler"
say "The payment handler receives each command (a long poll of the bus API), charges the order"
say "and acknowledges the command. The payment handler's log:"
wait_for 10 log_has payments-v1 charged 2 ||
  fail "the payment handler did not charge both orders: $(cat "$work/payments-v1.log")"
grep -- 'charged' "$work/payments-v1.log" | indent
say "The client retries o-1001 (say its first answer was lost). The command's id is the order id,"
say "so the bus recognises the duplicate and the payment is not charged twice:"
place_order o-1001 25
say "status $order_status, payment command duplicate: $(json_field '["payment_command"]["duplicate"]' <<<"$order_body")"
[ "$order_status" = 201 ] || fail "the retried order was not answered 201: $order_body"
[ "$(json_field '["payment_command"]["duplicate"]' <<<"$order_body")" = True ] ||
  fail "the retried order was not recognised as a duplicate: $order_body"
sleep 0.5
[ "$(log_count payments-v1 'o-1001.*charged')" = 1 ] || fail "o-1001 was charged more than once"
shown "curl $bus_url/v1/queues/payments"
say "acked: $(payments_stat '["counts"]["acked"]'), duplicates: $(payments_stat '["counts"]["duplicates"]'), waiting: $(payments_stat '["depth"]')"
good "each payment handled once"

# ---------------------------------------------------------------------------------------------
step "11. The order.created event reaches both subscribers"
say "Each subscription of the topic gets its own copy of every event: billing and shipping read"
say "theirs with the ferry CLI, which prints one JSON line per message and acks them (--ack)."
shown "ferry consume --topic orders --subscription billing --max 10 --wait 1s --ack"
events_of billing
[ "$event_ids" = "o-1001 o-1002" ] || fail "billing got [$event_ids], not o-1001 and o-1002"
shown "ferry consume --topic orders --subscription shipping --max 10 --wait 1s --ack"
events_of shipping
[ "$event_ids" = "o-1001 o-1002" ] || fail "shipping got [$event_ids], not o-1001 and o-1002"
good "both subscribers received both events (the retried order was not published twice)"

# ---------------------------------------------------------------------------------------------
step "12. A payment that keeps failing ends in the dead letters"
say "payments-v1 has a bug: it fails on amounts over 1000. An order for 2500.00 comes in;"
say "the client still gets 201 at once, as the payment happens later, on the queue."
shown "curl -X POST $base/api/orders -d '{\"order_id\":\"o-1003\",\"amount\":2500}'"
place_order o-1003 2500
say "status $order_status"
[ "$order_status" = 201 ] || fail "order o-1003 was not accepted: $order_body"
say "The handler fails and nacks the command; the bus waits its backoff (100 ms, then 200 ms) and"
say "delivers it again; after 3 deliveries (max_deliveries: 3) it moves it to the dead letters."
wait_for 15 payments_is '["dead_letters"]' 1 ||
  fail "o-1003 did not reach the dead letters: $(cat "$work/payments-v1.log")"
grep -- 'o-1003' "$work/payments-v1.log" | indent
shown "ferry dlq list --queue payments"
"$FERRY_BIN" dlq list --queue payments >"$work/dlq.jsonl" 2>"$work/dlq.err" ||
  fail "ferry dlq list failed: $(cat "$work/dlq.err")"
indent <"$work/dlq.jsonl"
[ "$(json_field '["id"]' <"$work/dlq.jsonl")" = o-1003 ] || fail "o-1003 is not the dead letter"
good "the failing payment is parked in the dead letters, not retried forever"

# ---------------------------------------------------------------------------------------------
step "13. Fix the handler, replay the dead letter, and the payment goes through"
say "Deploy the fixed release: stop payments-v1 and start payments-v2."
stop_pid "$payment_pid"
start_service payments-v2 "$ORDER_BIN" --role payment --pull --bus "$bus_url" --name payments-v2
say "Now put the dead letter back on the queue:"
shown "ferry dlq replay --queue payments"
"$FERRY_BIN" dlq replay --queue payments >"$work/replay.json" 2>"$work/replay.err" ||
  fail "ferry dlq replay failed: $(cat "$work/replay.err")"
indent <"$work/replay.json"
[ "$(json_field '["replayed"]' <"$work/replay.json")" = 1 ] || fail "nothing was replayed"
wait_for 10 log_has payments-v2 'o-1003.*charged' 1 ||
  fail "payments-v2 did not charge o-1003: $(cat "$work/payments-v2.log")"
grep -- 'o-1003' "$work/payments-v2.log" | indent
shown "ferry dlq list --queue payments"
"$FERRY_BIN" dlq list --queue payments 2>&1 | indent
wait_for 5 payments_is '["counts"]["acked"]' 3 || fail "o-1003 was not acked"
say "acked: $(payments_stat '["counts"]["acked"]'), dead letters: $(payments_stat '["dead_letters"]'), waiting: $(payments_stat '["depth"]')"
[ "$(payments_stat '["dead_letters"]')" = 0 ] || fail "the dead letter is still there"
good "replayed and delivered: every order is paid exactly once"

# ---------------------------------------------------------------------------------------------
step "14. What the queue holds and how fast it moves"
say "GET /v1/queues/payments answers depth, in flight, dead letters, counters since the start,"
say "and rates: per second, averaged over the last minute (as RabbitMQ's management API shows):"
shown "curl $bus_url/v1/queues/payments"
curl -s "$bus_url/v1/queues/payments" >"$work/payments-stats.json" ||
  fail "could not read the payments queue's stats"
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
c = s["counts"]
print("   depth {}, in flight {}, dead letters {}".format(s["depth"], s["in_flight"], s["dead_letters"]))
print("   published {}, delivered {} (redelivered {}), acked {}, nacked {}, dead-lettered {}, replayed {}".format(
    c["published"], c["delivered"], c["redelivered"], c["acked"], c["nacked"], c["dead_lettered"], c["replayed"]))
print("   rates/s:", json.dumps(s["rates"]))' "$work/payments-stats.json" ||
  fail "unexpected stats: $(cat "$work/payments-stats.json")"
[ "$(json_field '["counts"]["dead_lettered"]' <"$work/payments-stats.json")" = 1 ] ||
  fail "the stats do not count the dead-lettered payment"
python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["rates"]; sys.exit(0 if r["publish"] > 0 and r["ack"] > 0 else 1)' \
  "$work/payments-stats.json" || fail "the rates do not show the traffic of the last minute"
good "three orders, one dead letter, one replay: the counters and the last minute's rates agree"

# ---------------------------------------------------------------------------------------------
step "15. A new subscription arrives with a config reload"
say "An analytics team wants every order event. Add a subscription to the config file and send"
say "SIGHUP: the bus declares it at once; the queue, the other subscriptions and their"
say "messages are untouched."
# (counted before the edit: the 1 s file watch may load the file before the SIGHUP does)
reloads_before=$(curl -s "$admin_url/metrics" | awk '$1 == "ferry_config_reloads_total" {print $2}')
python3 - "$config" <<'PY' || fail "could not edit the config"
import os, sys
path = sys.argv[1]
text = open(path).read()
line = "        shipping: {filter: {type: order.created}}\n"
assert line in text
text = text.replace(line, line + "        analytics: {filter: {type: order.*}}   # added by the reload\n")
open(path + ".new", "w").write(text)
os.replace(path + ".new", path)
PY
shown "kill -HUP $ferry_pid"
kill -HUP "$ferry_pid"
reloaded() {
  [ "$(curl -s "$admin_url/metrics" | awk '$1 == "ferry_config_reloads_total" {print $2}')" != "$reloads_before" ]
}
wait_for 5 reloaded || fail "ferry did not count the reload"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$bus_url/v1/topics/orders/subscriptions/analytics")" = 200 ] ||
  fail "the analytics subscription was not declared by the reload: $(tail -n 5 "$ferry_log")"
place_order o-1004 60
[ "$order_status" = 201 ] || fail "order o-1004 was not accepted: $order_status $order_body"
say "A new order, o-1004, goes through the gateway: status $order_status"
shown "ferry consume --topic orders --subscription analytics --max 10 --wait 1s --ack"
"$FERRY_BIN" consume --topic orders --subscription analytics --max 10 --wait 1s --ack \
  >"$work/analytics.jsonl" 2>"$work/consume.err" || fail "ferry consume failed: $(cat "$work/consume.err")"
python3 -c 'import json,sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    print("analytics received %s  id=%s  data=%s" % (e["type"], e["id"], json.dumps(e["data"])))' \
  "$work/analytics.jsonl" | indent
python3 -c 'import json,sys; ids=[json.loads(l)["data"]["order_id"] for l in open(sys.argv[1])]; sys.exit(0 if ids == ["o-1004"] else 1)' \
  "$work/analytics.jsonl" || fail "analytics did not get exactly o-1004: $(cat "$work/analytics.jsonl")"
good "declared by a reload, no restart: the new subscription gets the events from then on"

# ---------------------------------------------------------------------------------------------
step "16. An event arrives as its producer wrote it"
say "A producer publishes a CloudEvent in structured mode, with its own time and JSON data that"
say "no double can hold. The bus keeps both as sent: time is when it happened, not when it was"
say "stored (that is Ferry's stored_at), and the data's bytes are not re-encoded."
event='{"specversion":"1.0","id":"audit-1","source":"/audit","type":"order.audited","time":"2020-01-02T03:04:05Z","datacontenttype":"application/json","data":{"order_id":"o-1004","ledger_ref":12345678901234567890123}}'
shown "curl -X POST $bus_url/v1/topics/orders/events -H 'content-type: application/cloudevents+json' -d '$event'"
status=$(curl -s -o "$work/audit.json" -w '%{http_code}' -X POST "$bus_url/v1/topics/orders/events" \
  -H 'content-type: application/cloudevents+json' -d "$event")
say "status $status"
[ "$status" = 201 ] || fail "the structured event was not accepted: $(cat "$work/audit.json")"
shown "ferry consume --topic orders --subscription analytics --max 10 --wait 1s --ack"
"$FERRY_BIN" consume --topic orders --subscription analytics --max 10 --wait 1s --ack \
  >"$work/audit.jsonl" 2>"$work/consume.err" || fail "ferry consume failed: $(cat "$work/consume.err")"
python3 -c 'import json,sys
m = json.loads(open(sys.argv[1]).readline())
e = m["event"]
print("time %s (stored_at %s)" % (e["time"], m["stored_at"]))
print("data %s" % json.dumps(e["data"]))' "$work/audit.jsonl" | indent
grep -q '"time":"2020-01-02T03:04:05Z"' "$work/audit.jsonl" || fail "the producer's time was not kept"
grep -q '"ledger_ref":12345678901234567890123' "$work/audit.jsonl" ||
  fail "the data was not delivered byte for byte: $(cat "$work/audit.jsonl")"
good "the producer's time and data arrive unchanged; the 'event' member is the clean CloudEvent"

stop_pid "$ferry_pid"

# ---------------------------------------------------------------------------------------------
# Resilience: a second Ferry with policies, in front of its own instances.
start_echo shop-1; shop1=$echo_address
start_echo shop-2; shop2=$echo_address; shop2_pid=$service_pid
start_echo shop-3; shop3=$echo_address
stock_port=$(free_port)
start_echo stock-1 "127.0.0.1:$stock_port"; stock1=$echo_address; stock_pid=$service_pid
pay_port=$(free_port)
start_service payments-http "$ORDER_BIN" --role payment --listen "127.0.0.1:$pay_port" \
  --name payments-http
r_port=$(free_port)
r_admin=$(free_port)
r_base=http://127.0.0.1:$r_port
r_admin_url=http://127.0.0.1:$r_admin
r_config=$work/ferry-resilience.yaml
cat >"$r_config" <<YAML
workers: 2
admin: {listen: 127.0.0.1:$r_admin}
policies:
  shop:
    retry: {attempts: 3, on: [connect_failure, reset, 502, 503]}
  stock:
    circuit_breaker: {failure_ratio: 50%, min_requests: 5, window: 10s, open_for: 2s}
    retry: {attempts: 1}
idempotency_store: {data_dir: $work/idempotency}
listeners:
  - name: public
    listen: 127.0.0.1:$r_port
    routes:
      - {match: {prefix: /shop/}, service: shop, rewrite_prefix: /}
      - {match: {prefix: /stock/}, service: stock, rewrite_prefix: /}
      - match: {prefix: /payments}
        service: payments
        idempotency: {ttl: 1h}
services:
  shop: {endpoints: [$shop1, $shop2, $shop3], policy: shop}
  stock: {endpoints: [$stock1], policy: stock}
  payments: {endpoints: [127.0.0.1:$pay_port]}
YAML
"$FERRY_BIN" run -c "$r_config" >"$work/ferry-resilience.log" 2>&1 &
ferry_pid=$!
pids+=("$ferry_pid")
ferry_log=$work/ferry-resilience.log
ready=
for _ in $(seq 100); do
  kill -0 "$ferry_pid" 2>/dev/null || fail "ferry exited at start"
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$r_admin_url/ready")" = 200 ]; then ready=1; break; fi
  sleep 0.1
done
[ -n "$ready" ] || fail "ferry's admin /ready did not answer 200 within 10 s"
say ""
say "A second Ferry ($r_base) with resilience policies:"
sed -n '/^policies:/,/^idempotency_store/p' "$r_config" | indent

# ---------------------------------------------------------------------------------------------
step "17. An instance dies mid-traffic, and the clients see no error"
say "600 GETs go to the shop service (three instances) from 4 clients; after about a third of"
say "them, shop-2 is killed. A request that meets the dead instance (connection refused or"
say "reset) is retried on another one; outlier detection then takes shop-2 out of rotation."
cat >"$work/traffic.py" <<'PY'
# GETs URL COUNT times from CLIENTS threads, each a keep-alive connection; prints the statuses.
import collections, http.client, sys, threading, urllib.parse
url, count, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
u = urllib.parse.urlsplit(url)
statuses = collections.Counter()
lock = threading.Lock()
def client(n):
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    for _ in range(n):
        try:
            conn.request("GET", u.path)
            r = conn.getresponse()
            r.read()
            status = r.status
        except OSError as e:
            status = type(e).__name__
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        with lock:
            statuses[status] += 1
threads = [threading.Thread(target=client, args=(count // clients,)) for _ in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print("statuses", dict(statuses))
PY
python3 "$work/traffic.py" "$r_base/shop/items" 600 4 >"$work/traffic.txt" 2>&1 &
traffic_pid=$!
pids+=("$traffic_pid")
sleep 0.3
shown "kill -9 <shop-2>"
kill -9 "$shop2_pid"
wait "$shop2_pid" 2>/dev/null || true
forget "$shop2_pid"
wait "$traffic_pid" || true
forget "$traffic_pid"
indent <"$work/traffic.txt"
grep -q '^statuses {200: 600}$' "$work/traffic.txt" || fail "clients saw errors: $(cat "$work/traffic.txt")"
retries=$(curl -s "$r_admin_url/metrics" | awk '/^ferry_upstream_retries_total/ {s += $2} END {print s + 0}')
say "ferry_upstream_retries_total: $retries"
[ "$retries" -gt 0 ] || fail "no request was retried: shop-2 died after the traffic, not during it"
good "600 of 600 answered 200 although an instance died under them"

# ---------------------------------------------------------------------------------------------
step "18. A circuit breaker opens, fails fast, and closes when the service heals"
say "The stock service has one instance. It is stopped: after 5 failed calls its breaker opens,"
say "and Ferry answers 503 circuit_open at once, without calling it."
stop_pid "$stock_pid"
codes=()
for _ in $(seq 8); do
  codes+=("$(curl -s -o "$work/stock.json" -w '%{http_code}' "$r_base/stock/items")")
done
say "statuses: ${codes[*]}"
grep -q '"circuit_open"' "$work/stock.json" || fail "the breaker did not open: $(cat "$work/stock.json")"
shown "curl $r_admin_url/breakers"
curl -s "$r_admin_url/breakers" | indent
say "stock-1 starts again; after open_for (2s) a trial call goes through and closes the breaker."
start_echo stock-1 "127.0.0.1:$stock_port"
sleep 2.5
status=$(curl -s -o /dev/null -w '%{http_code}' "$r_base/stock/items")
say "status $status"
[ "$status" = 200 ] || fail "the breaker did not close"
curl -s "$r_admin_url/breakers" | indent
good "open while the service was down, closed again once it answered"

# ---------------------------------------------------------------------------------------------
step "19. A payment retried by its client is charged once"
say "The client sends a payment with an Idempotency-Key, loses the answer, and sends it again."
say "Ferry stored the first answer (durably, before the payment ran) and replays it."
body='{"order_id": "o-2001", "amount": 42}'
for attempt in 1 2; do
  shown "curl -X POST $r_base/payments -H 'Idempotency-Key: pay-o-2001' -d '$body'"
  curl -s -D "$work/pay-$attempt.head" -o "$work/pay-$attempt.json" -X POST "$r_base/payments" \
    -H 'Idempotency-Key: pay-o-2001' -H 'content-type: application/json' -d "$body"
  say "$(head -1 "$work/pay-$attempt.head" | tr -d '\r')  $(cat "$work/pay-$attempt.json")"
  { grep -i '^idempotency-replayed' "$work/pay-$attempt.head" || true; } | tr -d '\r' | indent
done
grep -qi '^idempotency-replayed: true' "$work/pay-2.head" || fail "the second answer was not a replay"
charged=$(grep -c 'o-2001.*charged' "$work/payments-http.log" || true)
say "payments-http charged o-2001 $charged time(s):"
grep 'o-2001' "$work/payments-http.log" | indent
[ "$charged" = 1 ] || fail "charged $charged times"
good "two requests, one charge: the repeat got the stored answer"

stop_pid "$ferry_pid"

# ---------------------------------------------------------------------------------------------
# Security: a gateway on HTTPS that checks the user's token, and a mesh between the services.
command -v openssl >/dev/null || fail "openssl is missing (scripts/install-deps installs it)"
step "20. The gateway speaks HTTPS and checks the user's token"
say "The mesh CA and a certificate for each service (their URI SAN is the SPIFFE ID):"
mesh=$work/mesh
shown "ferry ca init --dir mesh --trust-domain shop.local; ferry ca issue --service gateway|orders"
"$FERRY_BIN" ca init --dir "$mesh" --trust-domain shop.local >/dev/null || fail "ferry ca init failed"
for svc in gateway orders; do
  "$FERRY_BIN" ca issue --dir "$mesh" --service "$svc" >/dev/null || fail "ferry ca issue $svc failed"
done
# The gateway's public certificate (self-signed here; a real one comes from your public CA).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$work/edge.key" -out "$work/edge.pem" 2>/dev/null ||
  fail "openssl could not make the gateway's certificate"
chmod 600 "$work/edge.key"
# The identity provider: an RSA key, its JWKS (what Ferry reads), and a user's token.
cat >"$work/idp.py" <<'PY'
# Makes DIR/jwks.json and DIR/token (RS256, kid idp-1, sub alice, aud shop, valid 1 h).
import json, sys, time, jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
out = sys.argv[1]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
jwk.update(kid="idp-1", alg="RS256", use="sig")
json.dump({"keys": [jwk]}, open(f"{out}/jwks.json", "w"))
now = int(time.time())
claims = {"iss": "https://login.shop.local/", "aud": "shop", "sub": "alice", "iat": now,
          "exp": now + 3600}
open(f"{out}/token", "w").write(jwt.encode(claims, key, algorithm="RS256",
                                           headers={"kid": "idp-1"}))
PY
/usr/bin/python3 "$work/idp.py" "$work" || fail "could not make the identity provider's key and token"
token=$(cat "$work/token")

start_echo orders-app; orders_app=$echo_address
sc_port=$(free_port)
gw_port=$(free_port)
cat >"$work/ferry-orders-sidecar.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:0}
mesh: {cert: $mesh/orders.pem, key: $mesh/orders.key, ca: $mesh/ca.pem}
listeners:
  - name: orders-inbound
    listen: 127.0.0.1:$sc_port
    tls: mesh
    routes:
      - {name: orders-admin, match: {prefix: /orders/admin}, service: orders-app}
      - {name: orders-api, match: {prefix: /orders}, service: orders-app}
services:
  orders-app: {endpoints: [$orders_app]}
authorization:
  default: deny
  rules:
    - allow: {routes: [orders-api], callers: [spiffe://shop.local/service/gateway]}
    - allow: {routes: [orders-admin], callers: [spiffe://shop.local/service/ops]}
YAML
cat >"$work/ferry-gateway.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:0}
mesh: {cert: $mesh/gateway.pem, key: $mesh/gateway.key, ca: $mesh/ca.pem}
auth:
  jwt:
    shop-users:
      issuer: https://login.shop.local/
      audiences: [shop]
      jwks: $work/jwks.json
      forward_claims: {sub: x-user}
listeners:
  - name: edge
    listen: 127.0.0.1:$gw_port
    tls: {cert: $work/edge.pem, key: $work/edge.key}
    routes:
      - {name: orders, match: {prefix: /orders}, service: orders, auth: {jwt: shop-users}}
services:
  orders: {endpoints: [127.0.0.1:$sc_port], tls: mesh}
YAML
for node in orders-sidecar gateway; do
  "$FERRY_BIN" run -c "$work/ferry-$node.yaml" >"$work/ferry-$node.log" 2>&1 &
  pids+=($!)
done
ferry_log=$work/ferry-gateway.log
gw=https://localhost:$gw_port
tls_curl() { curl -s --cacert "$work/edge.pem" --resolve "localhost:$gw_port:127.0.0.1" "$@"; }
up=
for _ in $(seq 100); do
  [ "$(tls_curl -o /dev/null -w '%{http_code}' "$gw/orders/1")" = 401 ] && { up=1; break; }
  sleep 0.1
done
[ -n "$up" ] || fail "the gateway did not answer on HTTPS within 10 s"

say "A gateway Ferry terminates TLS for the outside world; its orders route needs a JWT from the"
say "shop's identity provider (RS256, keys from a JWKS file). Without a token:"
shown "curl --cacert edge.pem $gw/orders/1"
status=$(tls_curl -D "$work/noauth.head" -o "$work/noauth.json" -w '%{http_code}' "$gw/orders/1")
say "$status  $(cat "$work/noauth.json")"
grep -i '^www-authenticate' "$work/noauth.head" | tr -d '\r' | indent
[ "$status" = 401 ] || fail "a request without a token got $status"
say "With alice's token the request goes through; the user reaches the service as x-user:"
shown "curl --cacert edge.pem -H 'Authorization: Bearer <alice>' $gw/orders/1"
body=$(tls_curl --fail -H "Authorization: Bearer $token" "$gw/orders/1") ||
  fail "a valid token was refused"
python3 -c 'import json,sys
h = json.load(sys.stdin)["headers"]
for k in ("x-user", "x-forwarded-proto", "x-ferry-caller"):
    print(k + ": " + h.get(k, "(missing)"))' <<<"$body" | indent
[ "$(json_field '["headers"].get("x-user","")' <<<"$body")" = alice ] || fail "no x-user: $body"
say "A token signed by anyone else is refused:"
forged="${token%.*}.$(printf 'forged' | base64 | tr -d '=')"
status=$(tls_curl -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $forged" "$gw/orders/1")
say "forged signature: $status"
[ "$status" = 401 ] || fail "a forged token got $status"
good "no token or a forged one: 401; a valid token: through, with the user's identity"

step "21. Services call each other over mutual TLS, and the callee knows who called"
say "The gateway reaches the orders service through the orders sidecar, over mutual TLS with"
say "certificates from Ferry's own CA. The sidecar checked the gateway's certificate and told"
say "the app who called (above: x-ferry-caller). A client without a mesh certificate gets no"
say "connection at all:"
shown "curl -k https://127.0.0.1:$sc_port/orders/1"
rc=0
curl -s -k -o /dev/null "https://127.0.0.1:$sc_port/orders/1" || rc=$?
[ "$rc" != 0 ] || fail "the mesh listener served a client without a certificate"
say "refused in the TLS handshake (curl exit $rc)"
caller=$(json_field '["headers"].get("x-ferry-caller","")' <<<"$body")
[ "$caller" = spiffe://shop.local/service/gateway ] || fail "x-ferry-caller is '$caller'"
good "mTLS between the services; the caller's identity is verified, not claimed"

step "22. A call the policy forbids is refused"
say "The sidecar's authorization block lets the gateway call orders-api, and only the ops"
say "service call orders-admin:"
sed -n '/^authorization:/,$p' "$work/ferry-orders-sidecar.yaml" | indent
shown "curl --cacert edge.pem -H 'Authorization: Bearer <alice>' $gw/orders/admin/ledger"
status=$(tls_curl -o "$work/forbidden.json" -w '%{http_code}' -H "Authorization: Bearer $token" \
  "$gw/orders/admin/ledger")
say "$status  $(cat "$work/forbidden.json")"
[ "$status" = 403 ] || fail "the forbidden call got $status"
good "the gateway may place orders, not read the ledger: 403 from the orders sidecar"

step "23. A new service joins the mesh with a one-time token, and renews its certificate itself"
say "The CA runs as a service (ferry ca serve). A one-time token lets the new payments sidecar"
say "get its first certificate; from then on it renews with its current one, at 2/3 of its life"
say "(12 s certificates here, to see it happen), and swaps it in without a restart."
ca_port=$(free_port)
shown "ferry ca serve --dir mesh --listen 127.0.0.1:$ca_port --ttl 12s"
"$FERRY_BIN" ca serve --dir "$mesh" --listen "127.0.0.1:$ca_port" --ttl 12s \
  >"$work/ca-serve.log" 2>&1 &
pids+=($!)
shown "ferry ca token --dir mesh --service payments > payments.token"
"$FERRY_BIN" ca token --dir "$mesh" --service payments >"$work/payments.token" 2>/dev/null ||
  fail "ferry ca token failed"
chmod 600 "$work/payments.token"
start_echo payments-app; payments_app=$echo_address
pay_port=$(free_port)
pay_admin=$(free_port)
cat >"$work/ferry-payments-sidecar.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$pay_admin}
mesh:
  cert: $work/payments.pem
  key: $work/payments.key
  ca: $mesh/ca.pem
  renew: {url: https://127.0.0.1:$ca_port, service: payments, token_file: $work/payments.token}
listeners:
  - {name: payments-inbound, listen: 127.0.0.1:$pay_port, tls: mesh,
     routes: [{match: {prefix: /}, service: payments-app}]}
services:
  payments-app: {endpoints: [$payments_app]}
YAML
sed -n '/^mesh:/,/renew/p' "$work/ferry-payments-sidecar.yaml" | indent
up=
for _ in $(seq 100); do  # (the CA may still be starting: the node retries it for 30 s)
  grep -q "listening on" "$work/ca-serve.log" && { up=1; break; }
  sleep 0.1
done
[ -n "$up" ] || fail "ferry ca serve did not start: $(cat "$work/ca-serve.log")"
"$FERRY_BIN" run -c "$work/ferry-payments-sidecar.yaml" >"$work/ferry-payments.log" 2>&1 &
pids+=($!)
ferry_log=$work/ferry-payments.log
up=
for _ in $(seq 150); do
  curl -sf -o /dev/null "http://127.0.0.1:$pay_admin/ready" && { up=1; break; }
  sleep 0.1
done
[ -n "$up" ] || fail "the payments sidecar did not start"
cert_line() { openssl x509 -in "$work/payments.pem" -noout -serial -enddate | tr '\n' ' '; }
say "its first certificate, from the token: $(cert_line)"
openssl x509 -in "$work/payments.pem" -noout -ext subjectAltName | tail -1 | indent
first=$(openssl x509 -in "$work/payments.pem" -noout -serial)
say "The token was spent: a second use is refused."
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/thief.key" \
  -out "$work/thief.csr" -subj /CN=payments \
  -addext subjectAltName=URI:spiffe://shop.local/service/payments 2>/dev/null
shown "curl --cacert ca.pem https://127.0.0.1:$ca_port/v1/sign -H 'Authorization: Bearer <token>' --data-binary @csr"
status=$(curl -s --cacert "$mesh/ca.pem" -o "$work/thief.json" -w '%{http_code}' \
  -H "Authorization: Bearer $(cat "$work/payments.token")" --data-binary @"$work/thief.csr" \
  "https://127.0.0.1:$ca_port/v1/sign")
say "$status  $(tr -d '\n' <"$work/thief.json")"
[ "$status" = 401 ] || fail "a spent token got $status: $(cat "$work/thief.json")"
say "Waiting for the sidecar to renew (about 7 s)..."
renewed=
for _ in $(seq 300); do
  [ "$(openssl x509 -in "$work/payments.pem" -noout -serial 2>/dev/null)" != "$first" ] &&
    { renewed=1; break; }
  sleep 0.1
done
[ -n "$renewed" ] || fail "the certificate was not renewed within 30 s"
say "renewed:                                $(cert_line)"
renewals=$(curl -s "http://127.0.0.1:$pay_admin/metrics" | awk '/^ferry_mesh_renewals_total/ {print $2}')
say "ferry_mesh_renewals_total $renewals"
# (-k: the sidecar's certificate names a SPIFFE ID, not a host name, which curl cannot check)
status=$(curl -s -k -o /dev/null -w '%{http_code}' --cert "$mesh/gateway.pem" \
  --key "$mesh/gateway.key" "https://127.0.0.1:$pay_port/pay" || true)
say "a mesh call to the sidecar after the swap: $status"
[ "$status" = 200 ] || fail "the sidecar did not serve after the renewal: $status"
good "first certificate from a one-time token, renewed before expiry, swapped in while serving"

# ---------------------------------------------------------------------------------------------
step "24. A WebSocket conversation passes through the gateway"
start_service chat-app /usr/bin/python3 "$repo/examples/chat_service/ws_echo_server.py"
chat_app=$service_address
ws_port=$(free_port)
ws_admin=$(free_port)
cat >"$work/ferry-ws.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$ws_admin}
listeners:
  - name: web
    listen: 127.0.0.1:$ws_port
    routes:
      # An upgraded connection is bounded by its idle time, not by the route's request timeout.
      - {name: chat, match: {prefix: /chat}, service: chat-app, stream_idle_timeout: 60s}
services:
  chat-app: {endpoints: [$chat_app]}
YAML
"$FERRY_BIN" run -c "$work/ferry-ws.yaml" >"$work/ferry-ws.log" 2>&1 &
pids+=($!)
ferry_log=$work/ferry-ws.log
wait_ready "$ws_admin" "the WebSocket gateway did not start"
shown "a client opens ws://127.0.0.1:$ws_port/chat through Ferry and talks to the chat service"
/usr/bin/python3 - "$ws_port" <<'PY' | indent || fail "the WebSocket conversation failed"
import asyncio, sys
import websockets.legacy.client as client

async def main():
    url = f"ws://127.0.0.1:{sys.argv[1]}/chat"
    async with client.connect(url, ping_interval=None, compression=None) as ws:
        for text in ["hello", "how are the orders today?"]:
            await ws.send(text)
            print(f"sent {text!r:30} got back {await ws.recv()!r}")
        await ws.send(bytes([0, 1, 2, 255]))
        print(f"sent {'4 binary bytes':30} got back {await ws.recv()!r}")
        await asyncio.wait_for(await ws.ping(), 5)
        print("a ping went through and its pong came back")

asyncio.run(main())
PY
relayed=$(curl -s "http://127.0.0.1:$ws_admin/metrics" |
  awk '/^ferry_websocket_connections_total\{/ {s += $2} END {print s + 0}')
say "ferry_websocket_connections_total $relayed"
[ "$relayed" = 1 ] || fail "the WebSocket was not counted: $relayed"
good "a WebSocket upgraded through the gateway: text, binary and ping/pong relayed both ways"

# ---------------------------------------------------------------------------------------------
step "25. HTTP/2 from the client to the gateway, and from the gateway to the service's sidecar"
command -v h2load >/dev/null || fail "h2load is missing (scripts/install-deps installs nghttp2-client)"
start_echo inventory-app; inventory_app=$echo_address
h2_sidecar=$(free_port)
h2_sidecar_admin=$(free_port)
h2_gateway=$(free_port)
h2_gateway_admin=$(free_port)
# The service's sidecar: plain listeners speak HTTP/1.1 and HTTP/2 (h2c) alike.
cat >"$work/ferry-inventory-sidecar.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$h2_sidecar_admin}
listeners:
  - {name: inventory-inbound, listen: 127.0.0.1:$h2_sidecar, routes: [{service: inventory-app}]}
services:
  inventory-app: {endpoints: [$inventory_app]}
YAML
# The gateway calls the sidecar over HTTP/2: many requests share one connection.
cat >"$work/ferry-h2-gateway.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$h2_gateway_admin}
listeners:
  - {name: web, listen: 127.0.0.1:$h2_gateway, routes: [{match: {prefix: /inventory}, service: inventory}]}
services:
  inventory:
    endpoints: [127.0.0.1:$h2_sidecar]
    protocol: http2
YAML
for node in inventory-sidecar h2-gateway; do
  "$FERRY_BIN" run -c "$work/ferry-$node.yaml" >"$work/ferry-$node.log" 2>&1 &
  pids+=($!)
done
ferry_log=$work/ferry-h2-gateway.log
for admin_port in $h2_sidecar_admin $h2_gateway_admin; do wait_ready "$admin_port" "an HTTP/2 node did not start"; done
shown "curl --http2-prior-knowledge http://127.0.0.1:$h2_gateway/inventory/widgets"
curl -s --http2-prior-knowledge -o "$work/h2.json" -w '%{http_version} %{http_code}\n' \
  "http://127.0.0.1:$h2_gateway/inventory/widgets" >"$work/h2.status" ||
  fail "curl over HTTP/2 failed"
say "HTTP/$(cat "$work/h2.status")  $(head -c 100 "$work/h2.json")"
grep -q '^2 200$' "$work/h2.status" || fail "expected HTTP/2 200, got $(cat "$work/h2.status")"
shown "h2load -n 400 -c 2 -m 20 http://127.0.0.1:$h2_gateway/inventory/widgets   (2 connections x 20 streams)"
h2load -n 400 -c 2 -m 20 "http://127.0.0.1:$h2_gateway/inventory/widgets" >"$work/h2load.txt" 2>&1 ||
  fail "h2load failed: $(tail -5 "$work/h2load.txt")"
grep -E '^requests:|^status codes:' "$work/h2load.txt" | indent
grep -q '400 succeeded' "$work/h2load.txt" || fail "not every h2load request succeeded"
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" {s += $2} END {print s + 0}'; }
streams_in=$(metric "$h2_gateway_admin" ferry_http2_streams_total)
streams_up=$(metric "$h2_gateway_admin" ferry_upstream_http2_streams_total)
conns_up=$(metric "$h2_gateway_admin" ferry_upstream_connections)
say "gateway: $streams_in HTTP/2 streams from clients, $streams_up HTTP/2 streams to the sidecar over $conns_up connection(s)"
[ "$streams_up" -ge 400 ] || fail "the gateway did not call the sidecar over HTTP/2 ($streams_up streams)"
good "HTTP/2 both ways: the client's streams and the gateway's calls multiplexed, routing and metrics unchanged"

# ---------------------------------------------------------------------------------------------
step "26. Order events arrive live in the browser (Server-Sent Events from a bus topic)"
rt_port=$(free_port)
rt_admin=$(free_port)
rt_bus=$(free_port)
cat >"$work/ferry-realtime.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$rt_admin}
listeners:
  - name: web
    listen: 127.0.0.1:$rt_port
    routes:
      # A route names a topic instead of a service: its events stream to whoever opens it.
      - name: orders-live
        match: {path: /events/orders}
        topic: orders
        cors: {allow_origins: ["http://127.0.0.1:$rt_port"], allow_credentials: true}
        push: {heartbeat: 15s, retry: 2s}
bus:
  listen: 127.0.0.1:$rt_bus
  data_dir: $work/realtime-bus
  topics:
    orders: {}
YAML
"$FERRY_BIN" run -c "$work/ferry-realtime.yaml" >"$work/ferry-realtime.log" 2>&1 &
pids+=($!)
ferry_log=$work/ferry-realtime.log
wait_ready "$rt_admin" "the real-time gateway did not start"
shown "curl -N http://127.0.0.1:$rt_port/events/orders   (a browser: new EventSource(...), examples/web/orders.html)"
curl -sN --max-time 4 "http://127.0.0.1:$rt_port/events/orders" >"$work/sse.txt" 2>/dev/null &
sse_pid=$!
pids+=($sse_pid)
sleep 0.5
for n in 1 2 3; do
  event="{\"specversion\":\"1.0\",\"id\":\"live-$n\",\"source\":\"/shop\",\"type\":\"order.created\",\"data\":{\"order\":$n,\"total\":$((n * 10))}}"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$rt_bus/v1/topics/orders/events" \
    -H 'content-type: application/cloudevents+json' -d "$event" || fail "publish $n failed"
done
say "three orders published to the topic; what the stream received:"
wait "$sse_pid" 2>/dev/null || true
grep -E '^(id|retry):' "$work/sse.txt" | indent
received=$(grep -c '^id: ' "$work/sse.txt" || true)
[ "$received" = 3 ] || fail "expected 3 events on the stream, got $received: $(head -c 500 "$work/sse.txt")"
grep -q '"order":2' "$work/sse.txt" || fail "the event data did not arrive as JSON"
say "reconnecting after id 1 (what a browser does with Last-Event-ID) replays what it missed:"
curl -sN --max-time 1 -H 'Last-Event-ID: 1' "http://127.0.0.1:$rt_port/events/orders" 2>/dev/null |
  grep '^id: ' | indent || true
say "in a browser: examples/web/orders.html?stream=http://127.0.0.1:$rt_port/events/orders, served from an origin the route's cors allows"
good "bus events streamed to HTTP clients as they were published, with ids to resume from"

# ---------------------------------------------------------------------------------------------
step "27. A gRPC call between two services, each through its own sidecar"
for tool in protoc grpc_python_plugin; do
  command -v $tool >/dev/null || fail "$tool is missing (scripts/install-deps installs protobuf-compiler and protobuf-compiler-grpc)"
done
/usr/bin/python3 -c 'import grpc' 2>/dev/null || fail "python3-grpcio is missing (scripts/install-deps)"
mkdir -p "$work/grpc-stubs"
protoc -I "$repo/examples/grpc" --python_out="$work/grpc-stubs" --grpc_out="$work/grpc-stubs" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" greeter.proto health.proto ||
  fail "protoc could not make the Python stubs"
greeter_app=$(free_port)
greeter_sidecar=$(free_port)
greeter_sidecar_admin=$(free_port)
frontend_sidecar=$(free_port)
frontend_sidecar_admin=$(free_port)
/usr/bin/python3 "$repo/examples/grpc/greeter_server.py" "$greeter_app" "$work/grpc-stubs" \
  >"$work/greeter.log" 2>&1 &
pids+=($!)
# The Greeter's sidecar takes calls in and hands them to the app over h2c.
cat >"$work/ferry-greeter-sidecar.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$greeter_sidecar_admin}
listeners:
  - name: greeter-inbound
    listen: 127.0.0.1:$greeter_sidecar
    routes: [{match: {prefix: /ferry.example.Greeter/}, service: greeter-app}]
services:
  greeter-app: {endpoints: [127.0.0.1:$greeter_app], protocol: http2}
YAML
# The frontend's sidecar: the app calls it on loopback; it routes by the gRPC method's path.
cat >"$work/ferry-frontend-sidecar.yaml" <<YAML
workers: 1
admin: {listen: 127.0.0.1:$frontend_sidecar_admin}
listeners:
  - name: frontend-outbound
    listen: 127.0.0.1:$frontend_sidecar
    routes:
      - match: {prefix: /ferry.example.Greeter/}
        service: greeter
        timeout: 30s
        grpc: {idempotent: [/ferry.example.Greeter/SayHello]}
services:
  greeter:
    endpoints: [127.0.0.1:$greeter_sidecar]
    protocol: http2
    health: {grpc: {service: ferry.example.Greeter}}
YAML
for node in greeter-sidecar frontend-sidecar; do
  "$FERRY_BIN" run -c "$work/ferry-$node.yaml" >"$work/ferry-$node.log" 2>&1 &
  pids+=($!)
done
ferry_log=$work/ferry-frontend-sidecar.log
for admin_port in $greeter_sidecar_admin $frontend_sidecar_admin; do wait_ready "$admin_port" "a gRPC sidecar did not start"; done
for _ in $(seq 100); do grep -q listening "$work/greeter.log" && break; sleep 0.1; done
grep -q listening "$work/greeter.log" || fail "the Greeter did not start: $(tail -3 "$work/greeter.log")"
shown "python3 examples/grpc/greeter_client.py 127.0.0.1:$frontend_sidecar   (grpcio, h2c to its sidecar)"
/usr/bin/python3 "$repo/examples/grpc/greeter_client.py" "127.0.0.1:$frontend_sidecar" "$work/grpc-stubs" \
  >"$work/grpc-client.txt" 2>&1 || fail "the gRPC calls did not end as expected: $(cat "$work/grpc-client.txt")"
indent <"$work/grpc-client.txt"
calls=$(curl -s "http://127.0.0.1:$frontend_sidecar_admin/metrics" |
  awk '$1 ~ /^ferry_grpc_calls_total\{/ && /SayHello/ && /grpc_status="0"/ {s += $2} END {print s + 0}')
say "ferry_grpc_calls_total for SayHello with status 0 on the frontend's sidecar: $calls"
[ "$calls" -ge 2 ] || fail "the sidecar did not count the gRPC calls ($calls)"
good "gRPC through two sidecars: statuses and trailers intact, the deadline carried, Ferry's own answer a gRPC status"

printf '\n%sDemo done.%s Stopping the services; nothing started by the demo is left running.\n' \
  "$bold$green" "$reset"
