"""Idempotency keys (issue 12, item 8): a POST with an Idempotency-Key runs on the upstream once,
whatever the number of repeats, their concurrency, a kill -9 of Ferry, or the Ferry node they reach
(two nodes on one Redis). The test upstream counts what reaches it."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import signal
import threading
import time

import pytest

from conftest import (basic_config, free_port, read_http_message, require_tool, wait_until)


class CountingUpstream:
    """Answers each request with the count of requests it has seen so far (a "charge id") after
    `delay` seconds; `stall` makes it never answer; `close_first` closes without answering the
    first request it sees; `big` makes the body that many bytes."""

    def __init__(self, py_upstream, delay=0.0):
        self.delay = delay
        self.stall = False
        self.close_first = False
        self.big = 0
        self.count = 0
        self.up = py_upstream(self._handler)
        self.address = self.up.address

    def _handler(self, conn, index, up):
        buf = bytearray()
        while True:
            msg = read_http_message(conn, buf)
            if msg is None:
                return
            with up.lock:
                self.count += 1
                n = self.count
            up.record(msg)
            if self.close_first and n == 1:
                return
            if self.stall:
                time.sleep(60)
                return
            time.sleep(self.delay)
            body = json.dumps({"charge": n, "pad": "x" * self.big}).encode()
            conn.sendall(b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n"
                         b"x-charge: " + str(n).encode() + b"\r\ncontent-length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)


def idem_config(upstream, store, *, workers=4, timeout=None, idempotency=None):
    route = {"name": "pay", "service": "svc", "idempotency": idempotency or {"ttl": "1h"}}
    if timeout:
        route["timeout"] = timeout
    config = basic_config([upstream.address], routes=[route], workers=workers)
    config["idempotency_store"] = store
    return config


def post(port, key, body=b'{"amount": 10}', path="/pay", timeout=20.0, extra=None):
    """One POST on a connection of its own: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/json", **(extra or {})}
        if key is not None:
            headers["Idempotency-Key"] = key
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def code_of(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


def concurrent_posts(ports, key, n=10):
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        results[i] = post(ports[i % len(ports)], key)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def check_once(results, upstream):
    """All answers are the one first response or 409s while it ran; the upstream ran once."""
    assert upstream.count == 1, results
    firsts = [r for r in results if r[0] == 201]
    conflicts = [r for r in results if r[0] == 409]
    assert len(firsts) + len(conflicts) == len(results), results
    assert firsts, results
    assert {r[2] for r in firsts} == {b'{"charge": 1, "pad": ""}'}
    for status, headers, body in conflicts:
        assert code_of(body) == "idempotency_key_in_use"
        assert headers.get("retry-after") == "1"


def test_concurrent_repeats_run_once_then_replay(start_ferry, py_upstream, tmp_path):
    upstream = CountingUpstream(py_upstream, delay=1.0)
    ferry = start_ferry(idem_config(upstream, {"data_dir": str(tmp_path / "idem")}))
    results = concurrent_posts([ferry.port()], "order-1")
    check_once(results, upstream)

    status, headers, body = post(ferry.port(), "order-1")
    assert status == 201
    assert body == b'{"charge": 1, "pad": ""}'
    assert headers["idempotency-replayed"] == "true"
    assert headers["x-charge"] == "1"
    assert headers["content-type"] == "application/json"
    assert upstream.count == 1
    assert ferry.metric("ferry_idempotency_replays_total", route="pay") >= 1
    in_use = sum(1 for r in results if r[0] == 409)
    assert ferry.metric("ferry_idempotency_conflicts_total", route="pay",
                        reason="in_use") == in_use


def test_repeats_after_kill9_and_restart_still_run_once(start_ferry, py_upstream, tmp_path):
    upstream = CountingUpstream(py_upstream, delay=0.3)
    config = idem_config(upstream, {"data_dir": str(tmp_path / "idem")})
    ferry = start_ferry(config)
    check_once(concurrent_posts([ferry.port()], "order-2"), upstream)
    ferry.process.signal(signal.SIGKILL)
    ferry.process.wait(10)

    ferry = start_ferry(config)
    results = concurrent_posts([ferry.port()], "order-2")
    assert upstream.count == 1
    for status, headers, body in results:
        assert status == 201 and body == b'{"charge": 1, "pad": ""}'
        assert headers["idempotency-replayed"] == "true"


def test_crash_mid_request_never_runs_twice(start_ferry, py_upstream, tmp_path):
    """The marker is durable before the request is forwarded: after kill -9 mid-request, a repeat
    gets 409 in_use until the lease ends (the route's timeout + 5 s), then 409
    idempotency_outcome_unknown, and the upstream never sees the request again."""
    upstream = CountingUpstream(py_upstream)
    upstream.stall = True
    config = idem_config(upstream, {"data_dir": str(tmp_path / "idem")}, timeout="1s")
    ferry = start_ferry(config)
    def first():
        try:
            post(ferry.port(), "order-3", timeout=5)
        except OSError:  # Ferry is killed under it
            pass

    t = threading.Thread(target=first, daemon=True)
    t.start()
    wait_until(lambda: upstream.count == 1, 10, what="the request to reach the upstream")
    ferry.process.signal(signal.SIGKILL)
    ferry.process.wait(10)

    upstream.stall = False
    ferry = start_ferry(config)
    status, headers, body = post(ferry.port(), "order-3")
    assert (status, code_of(body)) == (409, "idempotency_key_in_use")

    def unknown():
        s, _, b = post(ferry.port(), "order-3")
        return s == 409 and code_of(b) == "idempotency_outcome_unknown"

    wait_until(unknown, 30, interval=0.5, what="the lease to end")
    assert upstream.count == 1
    assert ferry.metric("ferry_idempotency_conflicts_total", route="pay",
                        reason="outcome_unknown") >= 1


def test_same_key_other_body_is_422(start_ferry, py_upstream, tmp_path):
    upstream = CountingUpstream(py_upstream)
    ferry = start_ferry(idem_config(upstream, {"data_dir": str(tmp_path / "idem")}, workers=1))
    assert post(ferry.port(), "order-4", b'{"amount": 10}')[0] == 201
    status, headers, body = post(ferry.port(), "order-4", b'{"amount": 99}')
    assert status == 422
    assert code_of(body) == "idempotency_key_mismatch"
    assert post(ferry.port(), "order-4", b'{"amount": 10}', path="/pay/other")[0] == 422
    assert upstream.count == 1
    assert ferry.metric("ferry_idempotency_conflicts_total", route="pay", reason="mismatch") == 2


def test_keys_are_scoped_by_the_authenticated_caller(start_ferry, py_upstream, tmp_path):
    # Two partners (API keys) that happen to send the same Idempotency-Key each get their own
    # charge; each one's repeat is a replay of its own.
    upstream = CountingUpstream(py_upstream)
    config = idem_config(upstream, {"data_dir": str(tmp_path / "idem")}, workers=1)
    config["listeners"][0]["routes"][0]["api_keys"] = {"keys": [
        {"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
        for name, key in (("acme", "acme-key-1"), ("globex", "globex-key-2"))]}
    ferry = start_ferry(config)
    acme = {"x-api-key": "acme-key-1"}
    globex = {"x-api-key": "globex-key-2"}
    first = post(ferry.port(), "order-9", extra=acme)
    other = post(ferry.port(), "order-9", extra=globex)
    assert (first[0], other[0]) == (201, 201)
    assert first[1]["x-charge"] != other[1]["x-charge"]
    assert upstream.count == 2
    again = post(ferry.port(), "order-9", extra=acme)
    assert again[1].get("idempotency-replayed") == "true"
    assert again[1]["x-charge"] == first[1]["x-charge"]
    assert upstream.count == 2


def test_requests_without_a_key_or_with_other_keys_run_each_time(start_ferry, py_upstream,
                                                                 tmp_path):
    upstream = CountingUpstream(py_upstream)
    ferry = start_ferry(idem_config(upstream, {"data_dir": str(tmp_path / "idem")}, workers=1))
    assert post(ferry.port(), None)[0] == 201
    assert post(ferry.port(), None)[0] == 201
    assert post(ferry.port(), "a")[0] == 201
    assert post(ferry.port(), '"b"')[0] == 201  # the draft's quoted form
    assert post(ferry.port(), "b")[0] == 201  # the same key as '"b"': a replay
    assert upstream.count == 4
    status, _, body = post(ferry.port(), "x" * 256)
    assert (status, code_of(body)) == (400, "idempotency_key_invalid")


def test_ferrys_own_errors_are_not_stored(start_ferry, py_upstream, tmp_path):
    """A 502 Ferry made itself (the upstream closed without answering) leaves the key free, so the
    client's retry runs; the upstream's own answer is then stored."""
    upstream = CountingUpstream(py_upstream)
    upstream.close_first = True
    ferry = start_ferry(idem_config(upstream, {"data_dir": str(tmp_path / "idem")}, workers=1))
    status, _, body = post(ferry.port(), "order-5")
    assert (status, code_of(body)) == (502, "bad_upstream_response")
    status, headers, body = post(ferry.port(), "order-5")
    assert status == 201 and body == b'{"charge": 2, "pad": ""}'
    assert "idempotency-replayed" not in headers
    status, headers, _ = post(ferry.port(), "order-5")
    assert status == 201 and headers["idempotency-replayed"] == "true"
    assert upstream.count == 2


def test_responses_over_the_cap_are_not_stored(start_ferry, py_upstream, tmp_path):
    upstream = CountingUpstream(py_upstream)
    upstream.big = 5000
    ferry = start_ferry(idem_config(upstream, {"data_dir": str(tmp_path / "idem")}, workers=1,
                                    idempotency={"ttl": "1h", "max_response_bytes": "4KiB"}))
    assert post(ferry.port(), "order-6")[0] == 201
    status, headers, _ = post(ferry.port(), "order-6")
    assert status == 201 and "idempotency-replayed" not in headers
    assert upstream.count == 2


@pytest.fixture
def redis_server(processes, tmp_path):
    """A redis-server on 127.0.0.1 (a free port), killed by PID at teardown."""
    binary = require_tool("redis-server")
    port = free_port()
    p = processes.start([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                         "--appendonly", "no", "--dir", str(tmp_path)], tmp_path / "redis.log")
    wait_until(lambda: re.search(r"Ready to accept connections", p.log_text()) or
               (not p.alive() and pytest.fail(p.log_text())), 10, what="redis-server")
    return f"127.0.0.1:{port}"


def test_two_nodes_share_keys_through_redis(start_ferry, py_upstream, redis_server):
    upstream = CountingUpstream(py_upstream, delay=1.0)
    config = idem_config(upstream, {"redis": redis_server}, workers=2)
    a = start_ferry(config)
    b = start_ferry(config)
    check_once(concurrent_posts([a.port(), b.port()], "order-7"), upstream)
    for node in (a, b):
        status, headers, body = post(node.port(), "order-7")
        assert status == 201 and headers["idempotency-replayed"] == "true"
        assert body == b'{"charge": 1, "pad": ""}'
    status, _, body = post(b.port(), "order-7", b"{}")
    assert (status, code_of(body)) == (422, "idempotency_key_mismatch")
    assert upstream.count == 1


def test_redis_gone_refuses_keyed_requests(start_ferry, py_upstream, redis_server, processes):
    upstream = CountingUpstream(py_upstream)
    ferry = start_ferry(idem_config(upstream, {"redis": redis_server}, workers=1))
    assert post(ferry.port(), "order-8")[0] == 201
    processes.processes[0].kill()  # the redis-server
    status, _, body = post(ferry.port(), "order-9")
    assert (status, code_of(body)) == (503, "idempotency_store_unavailable")
    assert post(ferry.port(), None)[0] == 201  # requests without a key go on
    assert upstream.count == 2


def test_keys_are_per_route_and_survive_a_reload(start_ferry, py_upstream, tmp_path):
    upstream = CountingUpstream(py_upstream)
    config = idem_config(upstream, {"data_dir": str(tmp_path / "idem")}, workers=2)
    config["listeners"][0]["routes"] = [
        {"name": "refund", "match": {"prefix": "/refund"}, "service": "svc",
         "idempotency": {"ttl": "1h"}},
        config["listeners"][0]["routes"][0],
    ]
    ferry = start_ferry(config)
    assert post(ferry.port(), "order-10")[0] == 201
    assert post(ferry.port(), "order-10", path="/refund")[0] == 201  # another route: another key
    assert upstream.count == 2

    config["listeners"][0]["routes"][1]["idempotency"] = {"ttl": "2h"}
    ferry.reload(config)
    assert ferry.metric("ferry_config_reload_failures_total") == 0
    status, headers, body = post(ferry.port(), "order-10")
    assert status == 201 and headers["idempotency-replayed"] == "true"
    assert body == b'{"charge": 1, "pad": ""}'
    assert upstream.count == 2
