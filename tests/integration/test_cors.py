"""CORS on a route (`cors:`), through the binary with curl sending the headers a browser sends:
preflights answered by Ferry (allowed: 204 and the Access-Control-Allow-* headers; refused: 403
cors_rejected without them), actual requests' responses with Access-Control-Allow-Origin, local
replies (a 401) readable by the page, and other origins left alone."""

import hashlib

from conftest import assert_error_json, basic_config, curl, keepalive_handler

APP = "https://app.example.com"
KEY = "k-3b9e01d7"


def _config(upstream, cors, **route_extra):
    route = {"name": "api", "match": {"prefix": "/api/"}, "service": "svc", "cors": cors}
    route.update(route_extra)
    return basic_config([upstream.address], routes=[route])


def _preflight(ferry, path, origin, method, headers=None):
    args = ["-X", "OPTIONS", "-H", f"Origin: {origin}", "-H",
            f"Access-Control-Request-Method: {method}"]
    if headers:
        args += ["-H", f"Access-Control-Request-Headers: {headers}"]
    return curl(ferry.url(path), *args)


def test_an_allowed_preflight_is_answered_by_ferry(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {
        "allow_origins": [APP], "allow_headers": ["content-type", "x-api-key"],
        "allow_credentials": True, "max_age": "1h"}, match={"prefix": "/api/",
                                                           "methods": ["GET", "PUT"]}))
    r = _preflight(ferry, "/api/items/1", APP, "PUT", "content-type,x-api-key")
    assert r.status == 204, r.body
    assert r.body == b""
    assert r.headers["access-control-allow-origin"] == APP
    assert r.headers["access-control-allow-methods"] == "GET, PUT"
    assert r.headers["access-control-allow-headers"] == "content-type, x-api-key"
    assert r.headers["access-control-max-age"] == "3600"
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in r.headers["vary"]
    assert up.requests == []  # the route's methods do not include OPTIONS, and it never went up
    assert ferry.metric("ferry_local_replies_total", code="cors_preflight") == 1


def test_refused_preflights_are_403_without_cors_headers(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"allow_origins": [APP], "allow_headers": ["content-type"]}))
    for origin, method, headers in (("https://evil.example", "GET", None),  # origin
                                    (APP, "DELETE", None),                 # method
                                    (APP, "POST", "authorization")):       # header
        r = _preflight(ferry, "/api/items", origin, method, headers)
        assert r.status == 403, (origin, method, headers, r.body)
        assert_error_json(r.body, 403, "cors_rejected")
        assert "access-control-allow-origin" not in r.headers
    assert up.requests == []
    assert ferry.metric("ferry_local_replies_total", code="cors_rejected") == 3


def test_an_actual_request_from_an_allowed_origin_gets_the_headers(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"allow_origins": [APP, "http://localhost:3000"],
                                     "expose_headers": ["x-request-id"]}))
    r = curl(ferry.url("/api/items"), "-H", "Origin: http://localhost:3000")
    assert r.status == 200, r.body
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert r.headers["access-control-expose-headers"] == "x-request-id"
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in r.headers
    assert len(up.requests) == 1


def test_another_origin_goes_through_without_cors_headers(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"allow_origins": [APP]}))
    r = curl(ferry.url("/api/items"), "-H", "Origin: https://evil.example")
    assert r.status == 200, r.body  # CORS is for browsers: the response just is not readable
    assert "access-control-allow-origin" not in r.headers
    no_origin = curl(ferry.url("/api/items"))
    assert no_origin.status == 200
    assert "access-control-allow-origin" not in no_origin.headers
    # OPTIONS without Access-Control-Request-Method is no preflight: the upstream answers it.
    r = curl(ferry.url("/api/items"), "-X", "OPTIONS", "-H", f"Origin: {APP}")
    assert r.status == 200
    assert len(up.requests) == 3


def test_any_origin_with_star(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, {"allow_origins": ["*"]}))
    r = curl(ferry.url("/api/items"), "-H", "Origin: https://whoever.example")
    assert r.headers["access-control-allow-origin"] == "*"
    pre = _preflight(ferry, "/api/items", "https://whoever.example", "POST")
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == "*"


def test_preflight_needs_no_api_key_and_a_401_is_readable_by_the_page(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    keys = {"keys": [{"name": "app", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}]}
    ferry = start_ferry(_config(up, {"allow_origins": [APP], "allow_headers": ["x-api-key"]},
                                api_keys=keys))
    pre = _preflight(ferry, "/api/items", APP, "GET", "x-api-key")
    assert pre.status == 204, pre.body
    denied = curl(ferry.url("/api/items"), "-H", f"Origin: {APP}")
    assert denied.status == 401
    assert_error_json(denied.body, 401, "api_key_missing")
    assert denied.headers["access-control-allow-origin"] == APP
    ok = curl(ferry.url("/api/items"), "-H", f"Origin: {APP}", "-H", f"x-api-key: {KEY}")
    assert ok.status == 200
    assert ok.headers["access-control-allow-origin"] == APP
    assert len(up.requests) == 1


def test_an_upstream_failure_is_readable_by_the_page(start_ferry):
    # A service nobody listens on: Ferry's own 502 gets the CORS headers too.
    ferry = start_ferry(basic_config(["127.0.0.1:9"], routes=[
        {"name": "api", "service": "svc", "cors": {"allow_origins": [APP]}}]))
    r = curl(ferry.url("/x"), "-H", f"Origin: {APP}")
    assert r.status in (502, 503), r.body
    assert r.headers["access-control-allow-origin"] == APP
