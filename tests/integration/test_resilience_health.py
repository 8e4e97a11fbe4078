"""Endpoint health: outlier ejection (an endpoint failing every request is taken out of load
balancing for its ejection time, then comes back) and active health checks (an endpoint whose
health path fails is skipped until it passes again; none left is 503 no_healthy_endpoint).

The upstreams are Python servers that count the requests they get, apart from health checks.
"""

import threading
import time

from bus_support import fast_queue, start_bus  # noqa: F401 - fixture
from conftest import (assert_error_json, basic_config, http_get, ok_response,
                      read_http_message, wait_until)


class CountingUpstream:
    """An upstream that answers `status` to requests and `health_status` to GET /healthz."""

    def __init__(self, py_upstream, status=200, health_status=200):
        self.status = status
        self.health_status = health_status
        self.lock = threading.Lock()
        self.requests = 0  # health checks not included
        self.health_checks = 0
        self.up = py_upstream(self._handle)
        self.address = self.up.address

    def count(self) -> int:
        with self.lock:
            return self.requests

    def checks(self) -> int:
        with self.lock:
            return self.health_checks

    def _handle(self, conn, index, up):
        buf = bytearray()
        while True:
            msg = read_http_message(conn, buf)
            if msg is None:
                return
            is_check = msg.startswith(b"GET /healthz ")
            with self.lock:
                if is_check:
                    self.health_checks += 1
                else:
                    self.requests += 1
                status = self.health_status if is_check else self.status
            if status == 200:
                conn.sendall(ok_response())
            else:
                conn.sendall(f"HTTP/1.1 {status} Failing\r\ncontent-length: 0\r\n\r\n".encode())


def get(ferry, path="/"):
    return http_get(ferry.url(path), timeout=10)


def config_with(upstreams, **service_extra):
    return basic_config([u.address for u in upstreams], workers=2, service_extra=service_extra)


def test_a_failing_endpoint_is_ejected_for_its_ejection_time_and_then_gets_traffic_again(
        start_ferry, py_upstream):
    good = [CountingUpstream(py_upstream), CountingUpstream(py_upstream)]
    bad = CountingUpstream(py_upstream, status=500)
    ejection = 3.0
    config = config_with(good + [bad], policy="flaky")
    config["policies"] = {"flaky": {"outlier_detection": {
        "consecutive_failures": 3, "base_ejection": f"{int(ejection)}s", "max_ejection": "30s",
        "max_ejected": "50%"}}}
    ferry = start_ferry(config)

    # Round robin on two workers: the bad endpoint's failures add up node-wide, and the third
    # in a row ejects it before its answer reaches the client.
    def three_failures():
        get(ferry)
        return bad.count() >= 3
    wait_until(three_failures, 15, what="three requests to the failing endpoint")
    ejected_at = time.monotonic()
    seen_by_bad = bad.count()
    assert seen_by_bad == 3

    # While it is out, every request goes to the others and succeeds.
    sent = 0
    while time.monotonic() - ejected_at < ejection * 0.6:
        status, _ = get(ferry)
        assert status == 200
        sent += 1
    assert sent >= 10
    assert bad.count() == seen_by_bad
    assert ferry.metric("ferry_upstream_ejections_total", service="svc") == 1
    assert ferry.metric("ferry_upstream_endpoints_ejected", service="svc") == 1
    assert "ejected for 3s after 3 failures in a row" in ferry.log_text()
    view = ferry.stats()["endpoint_health"]["svc"]
    assert not view[bad.address]["usable"]
    assert 0 < view[bad.address]["ejected_for_ms"] <= 3000
    assert all(view[u.address]["usable"] for u in good)

    # When its time is over it gets traffic again (and is ejected again, for longer).
    def back():
        get(ferry)
        return bad.count() > seen_by_bad
    wait_until(back, ejection * 5, what="the ejected endpoint to get traffic again")
    assert time.monotonic() - ejected_at >= ejection * 0.9

    def ejected_again():
        get(ferry)
        return ferry.metric("ferry_upstream_ejections_total", service="svc") >= 2
    wait_until(ejected_again, 15, what="a second ejection")
    wait_until(lambda: "ejected for 6s" in ferry.log_text(), 5, what="the longer ejection's log")
    assert "back after its ejection" in ferry.log_text()


def test_an_endpoint_failing_its_health_check_is_skipped_until_it_passes_again(
        start_ferry, py_upstream):
    ups = [CountingUpstream(py_upstream) for _ in range(3)]
    interval, unhealthy_after = 0.2, 2
    ferry = start_ferry(config_with(ups, health={
        "path": "/healthz", "interval": "200ms", "timeout": "150ms",
        "unhealthy_after": unhealthy_after, "healthy_after": 2}))
    wait_until(lambda: all(u.checks() >= 1 for u in ups), 10, what="the first health checks")
    for _ in range(6):
        assert get(ferry)[0] == 200
    assert all(u.count() >= 1 for u in ups)  # all three in use

    sick = ups[0]
    sick.health_status = 503
    started = time.monotonic()
    wait_until(lambda: ferry.metric("ferry_upstream_endpoints_healthy", service="svc") == 2,
               interval * unhealthy_after * 5 + 1, what="the endpoint to be marked unhealthy")
    # (+1: the metrics are published once a second.)
    assert time.monotonic() - started < interval * unhealthy_after * 5 + 1
    before = sick.count()
    for _ in range(20):
        assert get(ferry)[0] == 200
    assert sick.count() == before
    assert ferry.metric("ferry_upstream_health_checks_total", service="svc", result="fail") >= 2
    view = ferry.stats()["endpoint_health"]["svc"]
    assert view[sick.address]["health_check"] == "fail" and not view[sick.address]["usable"]
    assert view[ups[1].address] == {"usable": True, "ejected_for_ms": 0, "times_ejected": 0,
                                     "health_check": "pass"}
    assert "is unhealthy" in ferry.log_text()

    sick.health_status = 200

    def back():
        get(ferry)
        return sick.count() > before
    wait_until(back, interval * 2 * 5 + 1, what="the endpoint to be healthy again")
    assert "is healthy" in ferry.log_text()


def test_all_endpoints_unhealthy_is_503_no_healthy_endpoint(start_ferry, py_upstream):
    ups = [CountingUpstream(py_upstream, health_status=500) for _ in range(2)]
    ferry = start_ferry(config_with(ups, health={
        "path": "/healthz", "interval": "200ms", "timeout": "150ms", "unhealthy_after": 1,
        "healthy_after": 1}))

    def refused():
        status, body = get(ferry)
        return (status, body) if status == 503 else None
    status, body = wait_until(refused, 5, what="503 once no endpoint is healthy")
    assert_error_json(body, 503, "no_healthy_endpoint")
    before = sum(u.count() for u in ups)
    for _ in range(5):
        assert get(ferry)[0] == 503
    assert sum(u.count() for u in ups) == before  # no upstream was contacted

    for u in ups:
        u.health_status = 200
    wait_until(lambda: get(ferry)[0] == 200, 5, what="traffic once they are healthy again")


def test_health_checks_follow_a_reload(start_ferry, py_upstream):
    a, b = CountingUpstream(py_upstream, health_status=503), CountingUpstream(py_upstream)
    ferry = start_ferry(config_with([a, b]))
    time.sleep(0.5)
    assert a.checks() == 0  # no health block: no checks

    config = config_with([a, b], health={"path": "/healthz", "interval": "200ms",
                                         "timeout": "150ms", "unhealthy_after": 1,
                                         "healthy_after": 1})
    ferry.reload(config)
    wait_until(lambda: ferry.metric("ferry_upstream_endpoints_healthy", service="svc") == 1, 5,
               what="a to be marked unhealthy after the reload")
    before = a.count()
    for _ in range(6):
        assert get(ferry)[0] == 200
    assert a.count() == before

    # Without the health block again, a's verdict is forgotten and it gets traffic.
    ferry.reload(config_with([a, b]))
    wait_until(lambda: (get(ferry), a.count() > before)[1], 5, what="a to get traffic again")


def test_bus_pushes_skip_an_endpoint_the_node_found_unhealthy(start_bus, py_upstream):
    good = CountingUpstream(py_upstream)
    sick = CountingUpstream(py_upstream, health_status=503)
    push = {"service": "sub", "path": "/hook", "timeout": "1s", "concurrency": 1}
    services = {"sub": {"endpoints": [good.address, sick.address], "health": {
        "path": "/healthz", "interval": "200ms", "timeout": "150ms", "unhealthy_after": 1,
        "healthy_after": 1}}}
    bus = start_bus({"queues": {"jobs": fast_queue(push=push)}}, services)
    wait_until(lambda: sick.checks() >= 1 and bus.ferry.metric(
        "ferry_upstream_endpoints_healthy", service="sub") == 1, 10,
        what="the sick endpoint to be marked unhealthy")
    before = sick.count()
    for i in range(10):
        r = bus.client.publish("jobs", f"data-{i}", {
            "ce-specversion": "1.0", "ce-id": f"job-{i}", "ce-source": "/t", "ce-type": "job.run",
            "content-type": "text/plain"})
        assert r.status == 201, r
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == 10, 20, 0.1,
               "every message to be acked by push")
    assert sick.count() == before
    assert good.count() >= 10


def test_health_checks_follow_endpoints_added_and_removed_by_a_reload(start_ferry, py_upstream):
    a, b = CountingUpstream(py_upstream), CountingUpstream(py_upstream)
    c = CountingUpstream(py_upstream, health_status=503)
    health = {"path": "/healthz", "interval": "200ms", "timeout": "150ms", "unhealthy_after": 1,
              "healthy_after": 1}
    ferry = start_ferry(config_with([a, b], health=health))
    wait_until(lambda: a.checks() >= 1 and b.checks() >= 1, 10, what="the first health checks")

    ferry.reload(config_with([a, c], health=health))
    wait_until(lambda: c.checks() >= 1 and not ferry.stats()["endpoint_health"]["svc"].get(
        c.address, {}).get("usable", True), 10, what="the new endpoint to be checked and found out")
    assert set(ferry.stats()["endpoint_health"]["svc"]) == {a.address, c.address}
    for _ in range(6):
        assert get(ferry)[0] == 200
    assert c.count() == 0
    b_checks = b.checks()
    time.sleep(0.6)  # three intervals
    assert b.checks() <= b_checks + 1  # (one may have been in flight)
