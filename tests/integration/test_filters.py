"""Per-route filters as the binary runs them: forwarding headers on every route (the one
built-in filter; the chain itself, waiting filters, local replies with headers and bodies and
body-reading filters are covered in src/proxy/exchange_test.cpp), and local replies that frame
right."""

import re

from conftest import assert_error_json, basic_config, body_of, curl, raw_exchange


def test_every_route_gets_forwarding_headers(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/a/"}, "service": "svc", "rewrite_prefix": "/"},
        {"match": {"methods": ["POST"]}, "service": "svc"},
        {"match": {"prefix": "/"}, "service": "svc"}]))
    for path, args in (("/a/x", []), ("/p", ["-X", "POST", "--data", "x"]), ("/b", [])):
        r = curl(ferry.url(path), "-H", "X-Ferry-Hop: 1", "-H", "X-Request-Id: rid-7", *args)
        assert r.status == 200, (path, r.body)
        seen = r.json()["headers"]
        assert seen["x-forwarded-for"] == "127.0.0.1", path
        assert seen["x-forwarded-proto"] == "http", path
        assert seen["x-request-id"] == "rid-7", path
        assert "x-ferry-hop" not in seen, path


def test_local_reply_to_head_has_no_body_and_the_connection_goes_on(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/"}, "service": "svc"}]))
    data, _ = raw_exchange(ferry.port(), b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 404 "), data
    assert int(re.search(rb"(?im)^content-length: (\d+)", first).group(1)) > 0
    assert rest.startswith(b"HTTP/1.1 200 "), data  # no body bytes between the two
    assert b'"path":"/api/x"' in body_of(rest)


def test_error_replies_keep_their_json_shape(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/"}, "service": "svc"}]))
    r = curl(ferry.url("/nowhere"))
    assert r.status == 404
    assert r.headers["content-type"] == "application/json"
    doc = assert_error_json(r.body, 404, "no_route")
    assert doc["request_id"] == r.headers["x-request-id"]
