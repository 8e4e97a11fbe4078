"""The retry pipeline (src/resilience/client.hpp) on the real binary: retries to another
endpoint, the retry budget, the idempotency rule for POST, and deadlines across two Ferry hops.
Test upstreams are small Python servers that fail, reset or stall on command."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time

from conftest import (basic_config, free_port, keepalive_handler, ok_response,
                      read_http_message, wait_until)


def get_within(ferry, seconds: float, times: int = 4) -> None:
    """GETs / `times` times on fresh connections, each answered 200 within `seconds`."""
    for _ in range(times):
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        assert time.monotonic() - started < seconds
        conn.close()


def status_handler(status: int, extra: str = ""):
    """Answers every request with `status` (keep-alive), recording each one."""

    def handler(conn, index, up):
        buf = bytearray()
        while True:
            msg = read_http_message(conn, buf)
            if msg is None:
                return
            up.record(msg)
            body = json.dumps({"status": status}).encode()
            conn.sendall((f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                          f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body)

    return handler


def reset_handler(conn, index, up):
    """Reads a request, records it and resets the connection without answering."""
    buf = bytearray()
    msg = read_http_message(conn, buf)
    if msg is None:
        return
    up.record(msg)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def closed_port() -> str:
    """An address nothing listens on (connect refused)."""
    return f"127.0.0.1:{free_port()}"


def with_policy(config: dict, policy: dict, name: str = "p") -> dict:
    config["policies"] = {name: policy}
    config["services"]["svc"]["policy"] = name
    return config


def get_many(port: int, count: int, threads: int = 4, method: str = "GET") -> dict[int, int]:
    """`count` requests over `threads` keep-alive connections; statuses counted."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def run(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        mine: dict[int, int] = {}
        for _ in range(n):
            conn.request(method, "/r", body=b"" if method == "POST" else None)
            resp = conn.getresponse()
            resp.read()
            mine[resp.status] = mine.get(resp.status, 0) + 1
            if resp.getheader("connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.close()
        with lock:
            for k, v in mine.items():
                statuses[k] = statuses.get(k, 0) + v

    per = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    ts = [threading.Thread(target=run, args=(n,)) for n in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return statuses


def test_one_failing_endpoint_of_three_is_retried_away(start_ferry, py_upstream):
    good = [py_upstream(keepalive_handler), py_upstream(keepalive_handler)]
    bad = py_upstream(status_handler(503))
    # Round robin sends a third of the first tries to the failing endpoint: a budget of 50%
    # covers them (outlier detection, once on, takes it out of the rotation instead).
    config = with_policy(basic_config([good[0].address, bad.address, good[1].address]),
                         {"retry": {"attempts": 3, "budget": {"ratio": "50%"}}})
    ferry = start_ferry(config)
    statuses = get_many(ferry.port(), 10_000)
    assert sum(statuses.values()) == 10_000
    assert statuses.get(200, 0) >= 9_990, statuses
    assert len(bad.requests) > 0
    assert ferry.metric("ferry_upstream_retries_total", service="svc", reason="503") >= 1
    assert ferry.metric("ferry_upstream_tries_total", service="svc") >= 10_000 + len(bad.requests)


def test_reset_endpoint_is_retried_away(start_ferry, py_upstream):
    good = py_upstream(keepalive_handler)
    bad = py_upstream(reset_handler)
    ferry = start_ferry(basic_config([good.address, bad.address]))
    statuses = get_many(ferry.port(), 200, threads=2)
    assert statuses == {200: 200}, statuses
    assert len(bad.requests) > 0
    assert ferry.metric("ferry_upstream_retries_total", service="svc", reason="reset") == len(
        bad.requests)


def test_budget_caps_the_load_on_a_failing_service(start_ferry, py_upstream):
    bad = py_upstream(status_handler(503))
    # The default policy: 2 attempts, 503 retried, budget 20% of recent requests + 10/s.
    ferry = start_ferry(basic_config([bad.address]))
    client_requests = 1_000
    statuses = get_many(ferry.port(), client_requests)
    assert statuses == {503: client_requests}, statuses
    floor = 10 * 10  # min_per_second over the 10 s window
    assert len(bad.requests) <= int(1.2 * client_requests) + floor, len(bad.requests)
    # Without the budget every request would have been tried twice.
    assert len(bad.requests) < 2 * client_requests
    assert ferry.metric("ferry_upstream_retry_budget_exhausted_total", service="svc") >= 1


def test_post_is_not_retried_after_it_reached_the_upstream(start_ferry, py_upstream):
    bad = py_upstream(status_handler(503))
    ferry = start_ferry(basic_config([bad.address]))
    statuses = get_many(ferry.port(), 20, threads=1, method="POST")
    assert statuses == {503: 20}
    assert len(bad.requests) == 20
    # A GET to the same upstream is retried (2 attempts by default).
    before = len(bad.requests)
    assert get_many(ferry.port(), 5, threads=1) == {503: 5}
    assert len(bad.requests) - before == 10


def test_post_is_not_retried_after_a_reset(start_ferry, py_upstream):
    bad = py_upstream(reset_handler)
    ferry = start_ferry(basic_config([bad.address]))
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("POST", "/pay", body=b'{"amount": 5}',
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 502
    time.sleep(0.2)
    assert len(bad.requests) == 1


def test_post_is_retried_after_connect_refused(start_ferry, py_upstream):
    good = py_upstream(keepalive_handler)
    ferry = start_ferry(basic_config([closed_port(), good.address]))
    statuses = get_many(ferry.port(), 20, threads=1, method="POST")
    assert statuses == {200: 20}, statuses
    assert len(good.requests) == 20
    assert ferry.metric("ferry_upstream_retries_total", service="svc",
                        reason="connect_failure") >= 1


def test_post_with_body_is_replayed_after_connect_refused(start_ferry, py_upstream):
    good = py_upstream(keepalive_handler)
    ferry = start_ferry(basic_config([closed_port(), good.address]))
    body = b"x" * 5000
    for _ in range(4):
        conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
        conn.request("POST", "/upload", body=body)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        conn.close()
    assert len(good.requests) == 4
    assert all(m.endswith(body) for m in good.requests)


def slow_handler(delay: float, seen: list):
    """Reads a request, then waits `delay` s for the connection to close; records when the
    request came, its x-ferry-deadline-ms and when the connection was closed (or answers)."""

    def handler(conn, index, up):
        buf = bytearray()
        msg = read_http_message(conn, buf)
        if msg is None:
            return
        up.record(msg)
        came = time.monotonic()
        conn.settimeout(delay)
        try:
            closed = conn.recv(1) == b""
        except socket.timeout:
            closed = False
        seen.append({"came": came, "closed": closed, "after": time.monotonic() - came,
                     "head": msg.split(b"\r\n\r\n")[0].decode()})
        if not closed:
            conn.sendall(ok_response())

    return handler


def header_of(head: str, name: str) -> str | None:
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def test_deadline_of_the_first_hop_ends_the_second_hops_work(start_ferry, py_upstream):
    seen: list = []
    slow = py_upstream(slow_handler(10, seen))
    second = basic_config([slow.address])  # route timeout 15 s
    second["listeners"][0]["trust_deadline_from"] = ["127.0.0.1/32"]
    hop2 = start_ferry(second)
    first = basic_config([f"127.0.0.1:{hop2.port()}"],
                         routes=[{"service": "svc", "timeout": "400ms"}])
    hop1 = start_ferry(first)
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", hop1.port(), timeout=10)
    conn.request("GET", "/slow")
    resp = conn.getresponse()
    body = resp.read()
    took = time.monotonic() - started
    assert resp.status == 504, body
    assert json.loads(body)["error"]["code"] == "upstream_timeout"
    assert took < 0.4 * 5
    # The second hop got the first hop's remaining time and gave up within it: it answered
    # 504 and closed its connection to the slow upstream.
    wait_until(lambda: seen, 2, what="the slow upstream to see its connection end")
    assert seen[0]["closed"], seen
    assert seen[0]["after"] < 0.4 * 5, seen
    deadline_ms = int(header_of(seen[0]["head"], "x-ferry-deadline-ms"))
    assert 0 < deadline_ms <= 400
    wait_until(lambda: hop2.metric("ferry_local_replies_total", code="upstream_timeout") >= 1, 2,
               what="the second hop to answer 504")


def test_deadline_header_from_an_untrusted_client_is_stripped(start_ferry, py_upstream):
    seen: list = []
    slow = py_upstream(slow_handler(0.3, seen))
    ferry = start_ferry(basic_config([slow.address]))
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("GET", "/", headers={"x-ferry-deadline-ms": "50"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200  # the 50 ms were not honoured
    # Ferry sends its own remaining time (the route's 15 s timeout) instead.
    assert int(header_of(seen[0]["head"], "x-ferry-deadline-ms")) > 10_000


def test_try_timeout_moves_to_another_endpoint(start_ferry, py_upstream):
    seen: list = []
    slow = py_upstream(slow_handler(5, seen))
    good = py_upstream(keepalive_handler)
    config = with_policy(basic_config([slow.address, good.address]),
                         {"try_timeout": "200ms",
                          "retry": {"attempts": 2, "on": ["try_timeout", "connect_failure"]}})
    ferry = start_ferry(config)
    get_within(ferry, 0.2 * 5 + 0.5)
    assert ferry.metric("ferry_upstream_retries_total", service="svc", reason="try_timeout") >= 1
    wait_until(lambda: seen and all(s["closed"] for s in seen), 3,
               what="the timed-out tries' connections to be closed")


def test_hedge_answers_from_the_fast_endpoint_and_cancels_the_slow_try(start_ferry, py_upstream):
    seen: list = []
    slow = py_upstream(slow_handler(5, seen))
    fast = py_upstream(keepalive_handler)
    config = with_policy(basic_config([slow.address, fast.address]),
                         {"hedge": {"after": "100ms", "max_extra": 1}})
    ferry = start_ferry(config)
    get_within(ferry, 0.1 * 5 + 0.5)
    assert ferry.metric("ferry_upstream_hedges_total", service="svc") >= 1
    # The losing tries were cancelled: the slow upstream saw their connections close.
    wait_until(lambda: seen and all(s["closed"] for s in seen), 3,
               what="the slow tries' connections to be closed")
    assert all(s["after"] < 1.0 for s in seen), seen
    # A POST is never hedged: it waits for the slow endpoint when it lands there.
    posts = len(fast.requests)
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    for _ in range(2):
        conn.request("POST", "/", body=b"{}")
        resp = conn.getresponse()
        resp.read()
    assert len(fast.requests) - posts <= 1
