"""Ferry's own errors: 502, 503, 504, and the JSON shape every local reply shares."""

import json
import threading
import time

from conftest import assert_error_json, basic_config, curl, free_port


def test_502_when_endpoint_refuses_connection(start_ferry):
    ferry = start_ferry(basic_config([f"127.0.0.1:{free_port()}"]))
    r = curl(ferry.url("/"))
    assert r.status == 502
    assert_error_json(r.body, 502, "upstream_connect_failed")


def test_502_when_upstream_sends_garbage(start_ferry, py_upstream):
    def garbage(conn, index, up):
        conn.recv(65536)
        conn.sendall(b"this is not http\r\n\r\n")

    up = py_upstream(garbage)
    ferry = start_ferry(basic_config([up.address]))
    r = curl(ferry.url("/"))
    assert r.status == 502
    assert_error_json(r.body, 502, "bad_upstream_response")


def test_502_when_upstream_closes_without_answering(start_ferry, py_upstream):
    def hang_up(conn, index, up):
        conn.recv(65536)

    ferry = start_ferry(basic_config([py_upstream(hang_up).address]))
    r = curl(ferry.url("/"))
    assert r.status == 502
    assert_error_json(r.body, 502, "bad_upstream_response")


def test_503_when_no_endpoint_resolves(start_ferry):
    ferry = start_ferry(basic_config(["no-such-host.invalid:80"]))
    r = curl(ferry.url("/"))
    assert r.status == 503
    assert_error_json(r.body, 503, "no_healthy_endpoint")


def test_503_when_connection_limit_reached(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address],
                                     service_extra={"max_connections_per_endpoint": 1}))
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=curl(ferry.url("/delay/1500"))))
    t.start()
    try:
        time.sleep(0.4)
        r = curl(ferry.url("/"))
    finally:
        t.join(15)
    assert slow["r"].status == 200
    assert r.status == 503
    assert_error_json(r.body, 503, "upstream_overloaded")


def test_504_when_upstream_slower_than_route_timeout(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[{"service": "svc",
                                                               "timeout": "500ms"}]))
    started = time.monotonic()
    r = curl(ferry.url("/delay/4000"))
    elapsed = time.monotonic() - started
    assert r.status == 504, r.body
    assert_error_json(r.body, 504, "upstream_timeout")
    assert elapsed < 2.5, elapsed


def test_upstream_timeout_counted(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[{"service": "svc",
                                                               "timeout": "300ms"}]))
    curl(ferry.url("/delay/2000"))
    assert ferry.metric("ferry_upstream_timeouts_total", service="svc") == 1


def test_error_json_shape(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/"}, "service": "svc"}]))
    r = curl(ferry.url("/nope"))
    doc = json.loads(r.body)
    assert set(doc) == {"error", "request_id"}
    assert set(doc["error"]) == {"code", "status", "message"}
    assert doc["error"]["status"] == r.status == 404
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    assert r.headers["content-type"].startswith("application/json")
    assert int(r.headers["content-length"]) == len(r.body)
    assert doc["request_id"] and doc["request_id"] == r.headers.get("x-request-id")


def test_error_json_carries_client_request_id(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/"}, "service": "svc"}]))
    r = curl(ferry.url("/nope"), "-H", "X-Request-Id: trace-42")
    assert json.loads(r.body)["request_id"] == "trace-42"


def test_local_replies_counted_by_code(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/"}, "service": "svc"}]))
    for _ in range(3):
        curl(ferry.url("/nope"))
    assert ferry.metric("ferry_local_replies_total", code="no_route") == 3
