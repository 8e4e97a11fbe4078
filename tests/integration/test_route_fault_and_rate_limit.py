"""Per-route fault injection (`fault:`) and rate limits (`rate_limit:`), through the binary:
what the client gets, what never reaches the upstream, the per-node sharing of a limit across
workers, and the metrics that count them."""

import concurrent.futures
import time

from conftest import assert_error_json, basic_config, curl, keepalive_handler


def _config(upstream, route_extra, workers=1):
    return basic_config([upstream.address], workers=workers, routes=[
        {"name": "limited", "match": {"prefix": "/"}, "service": "svc", **route_extra}])


def test_abort_fault_answers_without_reaching_the_upstream(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"fault": {"abort": {"status": 503, "percent": 100}}}))
    for _ in range(5):
        r = curl(ferry.url("/x"))
        assert r.status == 503, r.body
        assert_error_json(r.body, 503, "fault_abort")
    assert up.requests == []
    assert ferry.metric("ferry_local_replies_total", code="fault_abort") == 5


def test_abort_fault_hits_about_its_share(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"fault": {"abort": {"status": 500, "percent": 30}}}))
    statuses = [curl(ferry.url("/x")).status for _ in range(200)]
    aborted = statuses.count(500)
    assert statuses.count(200) + aborted == 200
    # 30% of 200 is 60; binomial sd ~6.5: a 5x margin is wide of any honest draw.
    assert 20 <= aborted <= 110, aborted
    assert len(up.requests) == 200 - aborted


def test_delay_fault_holds_requests_then_forwards_them(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"fault": {"delay": {"duration": "300ms", "percent": 100}}}))
    start = time.monotonic()
    r = curl(ferry.url("/x"))
    elapsed = time.monotonic() - start
    assert r.status == 200, r.body
    assert elapsed >= 0.3, elapsed
    assert elapsed < 0.3 * 5 + 1, elapsed
    assert len(up.requests) == 1


def test_delay_is_not_charged_to_other_requests(start_ferry, py_upstream):
    """A delayed request waits on a timer: ten at once finish together, not one after another."""
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"fault": {"delay": {"duration": "500ms", "percent": 100}}}))
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(lambda _: curl(ferry.url("/x")).status, range(10)))
    elapsed = time.monotonic() - start
    assert statuses == [200] * 10
    assert elapsed < 2.5, elapsed  # 10 x 500ms in series would be 5s


def test_rate_limit_answers_429_with_retry_after(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"rate_limit": {"rps": 1, "burst": 3}}))
    statuses = []
    for _ in range(6):
        r = curl(ferry.url("/x"))
        statuses.append(r.status)
        if r.status == 429:
            assert_error_json(r.body, 429, "rate_limited")
            assert 1 <= int(r.headers["retry-after"]) <= 2, r.headers
    # Six requests in well under a second: the burst of 3, then refusals (a 4th may pass if a
    # second went by; allow one).
    assert statuses[:3] == [200] * 3, statuses
    assert statuses.count(429) >= 2, statuses
    assert len(up.requests) == statuses.count(200)
    assert ferry.metric("ferry_local_replies_total", code="rate_limited") == statuses.count(429)
    time.sleep(1.2)
    assert curl(ferry.url("/x")).status == 200  # refilled


def test_rate_limit_is_per_node_across_workers(start_ferry, py_upstream):
    """Two workers, many connections: the node admits the burst, not a burst per worker."""
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"rate_limit": {"rps": 0.5, "burst": 10}}, workers=2))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: curl(ferry.url("/x")).status, range(40)))
    assert statuses.count(200) <= 11, statuses  # 10, plus at most one refill in the run
    assert statuses.count(200) >= 10, statuses
    assert statuses.count(429) == 40 - statuses.count(200)


def test_rate_limit_by_header_keeps_callers_apart(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"rate_limit": {"rps": 0.1, "burst": 2,
                                                     "by": {"header": "x-tenant"}}}))
    a = [curl(ferry.url("/x"), "-H", "X-Tenant: a").status for _ in range(4)]
    b = [curl(ferry.url("/x"), "-H", "X-Tenant: b").status for _ in range(4)]
    assert a == [200, 200, 429, 429], a
    assert b == [200, 200, 429, 429], b


def test_rate_limit_by_client_address(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"rate_limit": {"rps": 0.1, "burst": 1,
                                                     "by": "client_address"}}))
    assert curl(ferry.url("/x")).status == 200
    assert curl(ferry.url("/x")).status == 429


def test_rate_limit_state_survives_a_reload_that_keeps_it(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    config = _config(up, {"rate_limit": {"rps": 0.1, "burst": 2}})
    ferry = start_ferry(config)
    assert [curl(ferry.url("/x")).status for _ in range(3)] == [200, 200, 429]
    config["drain_time"] = "1s"  # a change elsewhere
    reloads = ferry.metric("ferry_config_reloads_total")
    ferry.reload(config)
    assert ferry.metric("ferry_config_reloads_total") == reloads + 1
    assert curl(ferry.url("/x")).status == 429  # the bucket is still empty
    config["listeners"][0]["routes"][0]["rate_limit"]["burst"] = 3
    ferry.reload(config)
    assert curl(ferry.url("/x")).status == 200  # a changed limit starts a new bucket
