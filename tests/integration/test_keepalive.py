"""Keep-alive on both sides: client connection reuse, upstream pooling, the keep-alive race,
HTTP/1.0 clients."""

import http.client
import json
import socket
import time

from conftest import (basic_config, ok_response, raw_exchange, read_http_message, status_of,
                      wait_until)


def test_client_connection_reused_for_two_requests(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    before = ferry.metric("ferry_downstream_connections_total")
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("GET", "/one")
    first = conn.getresponse()
    assert first.status == 200 and json.loads(first.read())["path"] == "/one"
    local = conn.sock.getsockname()
    conn.request("GET", "/two")
    second = conn.getresponse()
    assert second.status == 200 and json.loads(second.read())["path"] == "/two"
    assert conn.sock.getsockname() == local
    conn.close()
    assert ferry.metric("ferry_downstream_connections_total") - before == 1


def test_pipelined_requests_answered_in_order(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    data, _ = raw_exchange(ferry.port(), b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 ") == 2, data
    assert data.index(b'"path":"/a"') < data.index(b'"path":"/b"')


def test_upstream_connection_reused(start_ferry, py_upstream):
    up = py_upstream()  # keep-alive upstream counting accepted connections
    ferry = start_ferry(basic_config([up.address]))
    for i in range(10):
        conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
        conn.request("GET", f"/{i}")
        assert conn.getresponse().status == 200
        conn.close()
    assert len(up.requests) == 10
    assert up.accepted == 1


def test_upstream_connections_gauge(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    for _ in range(5):
        conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
    # The gauge is sampled by each worker every 100ms.
    wait_until(lambda: ferry.metric("ferry_upstream_connections", service="svc") == 1, 3,
               what="ferry_upstream_connections{service=svc} == 1")


def closes_after_answer(conn, index, up):
    """Answers one request with keep-alive, then closes the connection 50ms later."""
    buf = bytearray()
    msg = read_http_message(conn, buf)
    if msg is None:
        return
    up.record(msg)
    conn.sendall(ok_response(json.dumps({"conn": index}).encode()))
    time.sleep(0.05)


def test_upstream_closing_idle_connection_does_not_fail_next_request(start_ferry, py_upstream):
    up = py_upstream(closes_after_answer)
    ferry = start_ferry(basic_config([up.address]))
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("GET", "/first")
    assert conn.getresponse().status == 200
    conn.close()
    time.sleep(0.2)
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("GET", "/second")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, body
    assert up.accepted == 2  # the second request went over a fresh connection


def closes_on_reuse(conn, index, up):
    """Answers the first request with keep-alive; closes without answering the second (the
    request arrived just as the upstream gave up on the idle connection)."""
    buf = bytearray()
    msg = read_http_message(conn, buf)
    if msg is None:
        return
    up.record(msg)
    conn.sendall(ok_response())
    read_http_message(conn, buf)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def test_keepalive_race_retried_on_fresh_connection(start_ferry, py_upstream):
    up = py_upstream(closes_on_reuse)
    ferry = start_ferry(basic_config([up.address]))
    statuses = []
    for path in ("/first", "/second"):
        conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
        conn.request("GET", path)
        statuses.append(conn.getresponse().status)
        conn.close()
    assert statuses == [200, 200]
    assert up.accepted == 2
    assert ferry.metric("ferry_upstream_keepalive_retries_total", service="svc") == 1


def test_request_with_body_not_replayed_after_keepalive_race(start_ferry, py_upstream):
    # Only a request without a body is safe to send twice; a POST gets a 502 instead.
    up = py_upstream(closes_on_reuse)
    ferry = start_ferry(basic_config([up.address]))
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("GET", "/first")
    assert conn.getresponse().status == 200
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("POST", "/second", body=b"pay once")
    assert conn.getresponse().status == 502
    conn.close()
    assert up.accepted == 1


def test_http10_client_connection_closed_after_response(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    data, closed = raw_exchange(ferry.port(), b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    assert status_of(data) == 200
    assert closed


def test_http10_keepalive_client_kept_open(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    with socket.create_connection(("127.0.0.1", ferry.port()), timeout=10) as s:
        for path in (b"/a", b"/b"):
            s.sendall(b"GET " + path + b" HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            assert b"connection: keep-alive" in head.lower(), head
            length = int(next(l.split(b":")[1] for l in head.lower().split(b"\r\n")
                              if l.startswith(b"content-length")))
            while len(body) < length:
                body += s.recv(65536)
            assert json.loads(body)["path"] == path.decode()


def test_client_connection_close_honoured(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    data, closed = raw_exchange(ferry.port(),
                                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(data) == 200
    assert closed
