"""Listener limits: header bytes and count (431), body size (413), slow heads (408), idle and
request timeouts."""

import socket
import time

import pytest

from conftest import (assert_error_json, basic_config, body_of, curl, raw_exchange,
                      read_response, recording_handler, status_of)


@pytest.fixture
def limited(start_ferry, py_upstream):
    """Ferry with tight limits in front of an upstream that records what reaches it."""
    up = py_upstream(recording_handler)
    ferry = start_ferry(basic_config([up.address], limits={
        "max_headers": 10, "max_header_bytes": "2KiB", "max_body_bytes": "1KiB",
        "header_read_timeout": "1s", "idle_timeout": "1s", "request_timeout": "2s"}))
    ferry.upstream = up
    return ferry


def head_with(fields: int, body: bytes = b"") -> bytes:
    """A request whose head has exactly `fields` header fields (Host and Content-Length among
    them)."""
    lines = [b"POST /upload HTTP/1.1", b"Host: x", b"Content-Length: %d" % len(body)]
    lines += [b"X-H%d: v" % i for i in range(fields - 2)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_exactly_max_headers_is_proxied(limited):
    data, _ = raw_exchange(limited.port(), head_with(10), timeout=1.5)
    assert status_of(data) == 200, data
    assert len(limited.upstream.requests) == 1


def test_one_header_over_max_headers_is_431(limited):
    data, closed = raw_exchange(limited.port(), head_with(11))
    assert status_of(data) == 431, data
    assert_error_json(body_of(data), 431, "headers_too_large")
    assert closed
    assert limited.upstream.accepted == 0


def test_many_headers_is_431(limited):
    headers = [a for i in range(20) for a in ("-H", f"X-H{i}: v")]
    r = curl(limited.url("/"), *headers)
    assert r.status == 431
    assert_error_json(r.body, 431, "headers_too_large")
    assert limited.upstream.accepted == 0


def test_header_bytes_within_limit_is_proxied(limited):
    r = curl(limited.url("/"), "-H", "X-Big: " + "a" * 1500)
    assert r.status == 200
    assert len(limited.upstream.requests) == 1


def test_too_large_header_is_431(limited):
    r = curl(limited.url("/"), "-H", "X-Big: " + "a" * 4096)
    assert r.status == 431
    assert_error_json(r.body, 431, "headers_too_large")
    assert limited.upstream.accepted == 0


def test_huge_header_without_end_is_431_not_buffered(limited):
    # A head that never ends must be cut at the limit, not buffered until the timeout.
    payload = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
    started = time.monotonic()
    data, closed = raw_exchange(limited.port(), payload, timeout=5)
    assert status_of(data) == 431
    assert closed
    assert time.monotonic() - started < 0.9  # before header_read_timeout (1s) could fire


def test_body_at_limit_is_proxied(limited):
    data, _ = raw_exchange(limited.port(), head_with(3, b"x" * 1024), timeout=1.5)
    assert status_of(data) == 200, data
    assert len(limited.upstream.requests) == 1


def test_chunked_body_at_limit_is_proxied(limited):
    r = curl(limited.url("/upload"), "-H", "Transfer-Encoding: chunked",
             "--data-binary", "x" * 1024)
    assert r.status == 200
    assert len(limited.upstream.requests) == 1


def test_body_over_limit_by_content_length_is_413(limited):
    r = curl(limited.url("/upload"), "--data-binary", "x" * 1025)
    assert r.status == 413
    assert_error_json(r.body, 413, "body_too_large")
    assert limited.upstream.accepted == 0


def test_body_over_limit_chunked_is_413(limited):
    r = curl(limited.url("/upload"), "-H", "Transfer-Encoding: chunked",
             "--data-binary", "x" * 4000)
    assert r.status == 413
    assert_error_json(r.body, 413, "body_too_large")
    assert len(limited.upstream.requests) == 0


def test_slow_head_is_408(limited):
    with socket.create_connection(("127.0.0.1", limited.port()), timeout=10) as s:
        started = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        data = b""
        for i in range(30):  # one byte every 200ms: never completes within 1s
            try:
                s.sendall(b"X"[:1])
            except OSError:
                break
            s.settimeout(0.2)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            data += chunk
            break
        s.settimeout(5)
        while chunk := s.recv(65536):
            data += chunk
        elapsed = time.monotonic() - started
    assert status_of(data) == 408, data
    assert_error_json(body_of(data), 408, "request_timeout")
    assert 0.5 < elapsed < 5, elapsed
    assert limited.upstream.accepted == 0


def test_connection_without_request_closed_after_header_read_timeout(limited):
    with socket.create_connection(("127.0.0.1", limited.port()), timeout=10) as s:
        started = time.monotonic()
        assert s.recv(65536) == b""
        assert 0.5 < time.monotonic() - started < 5


def test_idle_keepalive_connection_closed_after_idle_timeout(limited):
    with socket.create_connection(("127.0.0.1", limited.port()), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_response(s)) == 200
        answered = time.monotonic()
        assert s.recv(65536) == b""  # EOF, not a timeout of the 10s socket timeout
        assert 0.5 < time.monotonic() - answered < 5


def test_slow_body_hits_request_timeout(limited):
    with socket.create_connection(("127.0.0.1", limited.port()), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nhello")
        started = time.monotonic()
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        elapsed = time.monotonic() - started
    assert 1 < elapsed < 10, elapsed
    assert status_of(data) == 408, data
    assert_error_json(body_of(data), 408, "request_timeout")
