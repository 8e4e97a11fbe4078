"""Circuit breakers and the concurrency limit (bulkhead), per service and node-wide: a failing
service's breaker opens and later calls fail fast without reaching it, the admin API forces
breakers open or closed, the concurrency limit queues and refuses, and bus pushes to a service
pause while its breaker is open."""

import json
import threading
import time
import urllib.request

import pytest

from bus_support import BusNode, fast_queue
from conftest import basic_config, curl, read_http_message, wait_until


class Upstream:
    """Answers 500 while `failing`, else 200, after `delay` seconds; counts the requests."""

    def __init__(self, failing=False, delay=0.0):
        self.failing = failing
        self.delay = delay
        self.lock = threading.Lock()
        self.count = 0

    def handler(self, conn, index, up):
        buf = bytearray()
        while True:
            msg = read_http_message(conn, buf)
            if msg is None:
                return
            with self.lock:
                self.count += 1
                failing = self.failing
            if self.delay:
                time.sleep(self.delay)
            status, reason = (500, "Internal Server Error") if failing else (200, "OK")
            body = json.dumps({"status": status}).encode()
            conn.sendall(f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                         f"content-length: {len(body)}\r\n\r\n".encode() + body)

    def requests(self) -> int:
        with self.lock:
            return self.count


def get(url: str, timeout: float = 10.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def admin_post(ferry, path: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{ferry.admin_port}{path}", data=body,
                                 method="POST", headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def breakers(ferry) -> dict:
    status, body = ferry.admin("/breakers")
    assert status == 200, body
    return json.loads(body)


def code_of(body: dict) -> str | None:
    return body.get("error", {}).get("code")


BREAKER = {"failure_ratio": "50%", "min_requests": 5, "window": "10s", "open_for": "1s"}


def breaker_config(address: str, *, breaker=None, concurrency=None, workers=2) -> dict:
    # No retries and no outlier ejection: each request is one try, and the one endpoint stays.
    policy = {"retry": {"attempts": 1}, "outlier_detection": False}
    if breaker is not None:
        policy["circuit_breaker"] = breaker
    if concurrency is not None:
        policy["concurrency"] = concurrency
    config = basic_config([address], service_extra={"policy": "guarded"}, workers=workers)
    config["policies"] = {"guarded": policy}
    return config


def test_breaker_opens_fails_fast_and_closes_once_the_upstream_heals(start_ferry, py_upstream):
    u = Upstream(failing=True)
    up = py_upstream(u.handler)
    ferry = start_ferry(breaker_config(up.address, breaker=BREAKER))
    for _ in range(5):
        assert get(ferry.url("/x"))[0] == 500
    assert u.requests() == 5
    # Open: fail fast, the upstream is not contacted.
    for _ in range(10):
        status, body = get(ferry.url("/x"))
        assert (status, code_of(body)) == (503, "circuit_open"), body
    assert u.requests() == 5
    assert ferry.metric("ferry_circuit_breaker_state", service="svc") == 1
    assert ferry.metric("ferry_circuit_breaker_transitions_total", service="svc", to="open") == 1
    assert ferry.metric("ferry_local_replies_total", code="circuit_open") == 10
    assert breakers(ferry)["svc"] == {"state": "open", "mode": "auto", "configured": True}
    assert ferry.stats()["circuit_breakers"]["svc"]["state"] == "open"
    assert "circuit breaker svc: closed -> open" in ferry.log_text()

    # Healed: after open_for a trial goes through, its success closes the breaker.
    u.failing = False
    time.sleep(1.2)
    assert get(ferry.url("/x"))[0] == 200
    for _ in range(5):
        assert get(ferry.url("/x"))[0] == 200
    assert u.requests() == 11
    assert ferry.metric("ferry_circuit_breaker_state", service="svc") == 0
    assert ferry.metric("ferry_circuit_breaker_transitions_total", service="svc",
                        to="half_open") == 1
    assert ferry.metric("ferry_circuit_breaker_transitions_total", service="svc",
                        to="closed") == 1
    assert breakers(ferry)["svc"]["state"] == "closed"
    assert ferry.stats()["circuit_breakers"]["svc"]["state"] == "closed"


def test_a_failed_trial_opens_it_again(start_ferry, py_upstream):
    u = Upstream(failing=True)
    up = py_upstream(u.handler)
    ferry = start_ferry(breaker_config(up.address, breaker=BREAKER))
    for _ in range(5):
        get(ferry.url("/x"))
    time.sleep(1.2)
    assert get(ferry.url("/x"))[0] == 500  # the trial, failed
    assert u.requests() == 6
    status, body = get(ferry.url("/x"))
    assert (status, code_of(body)) == (503, "circuit_open")
    assert u.requests() == 6
    assert ferry.metric("ferry_circuit_breaker_transitions_total", service="svc", to="open") == 2


def test_admin_forces_a_breaker_open_closed_and_back_to_auto(start_ferry, py_upstream):
    u = Upstream()
    up = py_upstream(u.handler)
    config = breaker_config(up.address, breaker=BREAKER)
    ferry = start_ferry(config)
    assert breakers(ferry) == {"svc": {"state": "closed", "mode": "auto", "configured": True}}

    status, body = admin_post(ferry, "/breakers/svc", b'{"mode": "open"}')
    assert status == 200, body
    assert body == {"service": "svc", "state": "open", "mode": "open", "configured": True}
    for _ in range(3):
        status, body = get(ferry.url("/x"))
        assert (status, code_of(body)) == (503, "circuit_open")
    assert u.requests() == 0
    time.sleep(1.2)  # open_for does not end a forced open
    assert get(ferry.url("/x"))[0] == 503
    # A reload keeps the breaker and its forced mode.
    ferry.reload(config)
    assert breakers(ferry)["svc"]["mode"] == "open"
    assert get(ferry.url("/x"))[0] == 503
    assert u.requests() == 0

    # Forced closed: failures open nothing.
    assert admin_post(ferry, "/breakers/svc", b'{"mode": "closed"}')[0] == 200
    u.failing = True
    for _ in range(12):
        assert get(ferry.url("/x"))[0] == 500
    assert breakers(ferry)["svc"] == {"state": "closed", "mode": "closed", "configured": True}

    # Back to automatic, from an empty window: five more failures open it.
    status, body = admin_post(ferry, "/breakers/svc", b'{"mode": "auto"}')
    assert (status, body["mode"], body["state"]) == (200, "auto", "closed")
    for _ in range(5):
        assert get(ferry.url("/x"))[0] == 500
    assert get(ferry.url("/x"))[0] == 503
    assert breakers(ferry)["svc"]["state"] == "open"

    # Errors.
    status, body = admin_post(ferry, "/breakers/nope", b'{"mode": "open"}')
    assert (status, code_of(body)) == (404, "not_found")
    for bad in (b"", b"{", b'{"mode": "half_open"}', b'{"mode": "open", "x": 1}', b"[]"):
        status, body = admin_post(ferry, "/breakers/svc", bad)
        assert (status, code_of(body)) == (400, "bad_request"), bad
    assert ferry.admin("/breakers/svc")[0] == 405
    req = urllib.request.Request(f"http://127.0.0.1:{ferry.admin_port}/breakers", data=b"{}",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405


def test_a_service_without_a_breaker_policy_never_opens_but_can_be_forced(start_ferry,
                                                                          py_upstream):
    u = Upstream(failing=True)
    up = py_upstream(u.handler)
    ferry = start_ferry(breaker_config(up.address))
    for _ in range(30):
        assert get(ferry.url("/x"))[0] == 500
    assert breakers(ferry)["svc"] == {"state": "closed", "mode": "auto", "configured": False}
    assert admin_post(ferry, "/breakers/svc", b'{"mode": "open"}')[0] == 200
    assert get(ferry.url("/x"))[0] == 503
    assert u.requests() == 30


def test_concurrency_limit_serves_max_queues_one_and_refuses_the_rest(start_ferry, py_upstream):
    u = Upstream(delay=1.0)
    up = py_upstream(u.handler)
    ferry = start_ferry(breaker_config(up.address, concurrency={"max": 2, "queue": 1}))
    results: list[tuple[int, str | None, float]] = []
    lock = threading.Lock()
    start = time.monotonic()

    def call():
        status, body = get(ferry.url("/slow"), timeout=20)
        with lock:
            results.append((status, code_of(body), time.monotonic() - start))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted((s, c) for s, c, _ in results)
    assert statuses == [(200, None)] * 3 + [(503, "upstream_overloaded")] * 2, results
    assert u.requests() == 3
    # The refused ones were answered at once; the queued one after a slot freed (~2 s).
    refused = [t for s, _, t in results if s == 503]
    served = sorted(t for s, _, t in results if s == 200)
    assert max(refused) < 0.9, results
    assert served[2] >= 1.9, results
    assert ferry.metric("ferry_upstream_concurrency_rejected_total", service="svc") == 2
    assert ferry.metric("ferry_upstream_concurrency_in_flight", service="svc") == 0
    assert ferry.metric("ferry_local_replies_total", code="upstream_overloaded") == 2


# --- bus push --------------------------------------------------------------------------------


def push_node(start_ferry, tmp_path, address: str, breaker: dict, max_deliveries: int = 5):
    push = {"service": "sub", "path": "/hook", "timeout": "1s", "concurrency": 2}
    config = {
        "admin": {"listen": "127.0.0.1:0"},
        "bus": {"listen": "127.0.0.1:0", "data_dir": str(tmp_path / "bus-data"),
                "queues": {"jobs": fast_queue(push=push, max_deliveries=max_deliveries)}},
        "policies": {"guarded": {"circuit_breaker": breaker, "outlier_detection": False}},
        "services": {"sub": {"endpoints": [address], "policy": "guarded"}},
    }
    return BusNode(start_ferry, config, start_ferry(config))


def test_pushes_pause_while_the_breaker_is_forced_open(start_ferry, py_upstream, tmp_path):
    u = Upstream()
    up = py_upstream(u.handler)
    bus = push_node(start_ferry, tmp_path, up.address, BREAKER)
    assert admin_post(bus.ferry, "/breakers/sub", b'{"mode": "open"}')[0] == 200
    for i in range(5):
        assert bus.client.publish("jobs", f"m{i}", {"idempotency-key": f"k{i}"}).status == 201
    time.sleep(1.5)  # several redelivery backoffs: nothing may be attempted meanwhile
    assert u.requests() == 0
    s = bus.client.stats("queues/jobs")
    assert (s["depth"], s["in_flight"], s["dead_letters"]) == (5, 0, 0), s
    assert "paused while the circuit breaker of service sub is open" in bus.ferry.log_text()

    assert admin_post(bus.ferry, "/breakers/sub", b'{"mode": "auto"}')[0] == 200
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == 5, 10, 0.1,
               "the paused messages to be pushed and acked")
    assert u.requests() == 5  # each once: no attempt was spent while paused
    s = bus.client.stats("queues/jobs")
    assert (s["depth"], s["dead_letters"]) == (0, 0), s


def test_pushes_open_the_breaker_pause_and_resume_after_a_trial(start_ferry, py_upstream,
                                                                tmp_path):
    u = Upstream(failing=True)
    up = py_upstream(u.handler)
    breaker = {"failure_ratio": "50%", "min_requests": 3, "window": "10s", "open_for": "2s"}
    bus = push_node(start_ferry, tmp_path, up.address, breaker, max_deliveries=10)
    for i in range(6):
        assert bus.client.publish("jobs", f"m{i}", {"idempotency-key": f"k{i}"}).status == 201
    wait_until(lambda: bus.ferry.metric("ferry_circuit_breaker_state", service="sub") == 1, 10,
               0.05, "the push failures to open the breaker")
    time.sleep(0.2)  # pushes in flight when it opened finish
    seen = u.requests()
    assert seen <= 4, seen  # concurrency 2: at most the ones in flight when it opened
    time.sleep(1.0)  # within open_for: paused
    assert u.requests() == seen
    assert bus.client.stats("queues/jobs")["dead_letters"] == 0

    u.failing = False
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == 6, 15, 0.1,
               "every message to be pushed once the breaker closed")
    s = bus.client.stats("queues/jobs")
    assert (s["depth"], s["dead_letters"]) == (0, 0), s
    assert breakers(bus.ferry)["sub"]["state"] == "closed"
    assert bus.ferry.metric("ferry_circuit_breaker_transitions_total", service="sub",
                            to="half_open") >= 1


def test_circuit_open_says_when_a_trial_will_go_through(start_ferry, py_upstream):
    u = Upstream(failing=True)
    up = py_upstream(u.handler)
    ferry = start_ferry(breaker_config(up.address, breaker=dict(BREAKER, open_for="30s")))
    for _ in range(5):
        assert get(ferry.url("/x"))[0] == 500
    r = curl(ferry.url("/x"))
    assert r.status == 503, r.body
    # The rest of open_for, in whole seconds rounded up: 30 unless the test was very slow.
    assert 20 <= int(r.headers["retry-after"]) <= 30, r.headers
    # Forced open has no end the breaker knows of: no Retry-After.
    assert admin_post(ferry, "/breakers/svc", b'{"mode": "open"}')[0] == 200
    r = curl(ferry.url("/x"))
    assert r.status == 503, r.body
    assert "retry-after" not in r.headers, r.headers
