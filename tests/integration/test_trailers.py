"""Trailers end to end (issue 14 item 1), on the raw bytes: an HTTP/1.1 client sends a chunked
request with trailers through Ferry to a raw-socket HTTP/1.1 origin, which answers chunked with
trailers; an HTTP/2 client (hand-built frames) sends a trailing HEADERS, and nghttp sees the
origin's trailers arrive as the HEADERS frame that ends the stream. Fields that may not be
trailers (content-length, host, transfer-encoding, ...) are dropped on the way; a response
with a Content-Length has no room for trailers and ends as it is."""

import re
import socket
import subprocess

from conftest import basic_config, require_tool
import h2_frames as h2

TRAILERS = ("x-checksum: abc123\r\ngrpc-status: 0\r\ncontent-length: 99\r\nhost: evil\r\n"
            "transfer-encoding: chunked\r\n")


def read_chunked_request(conn) -> bytes | None:
    """One request whose body is chunked or empty, trailers included (the body's last chunk
    "0" and the trailer section up to its blank line); None on EOF."""
    data = b""
    while True:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            if not re.search(rb"(?i)transfer-encoding: chunked", data[:head_end]):
                return data
            last = data.find(b"\r\n0\r\n", head_end)
            if last >= 0 and data.find(b"\r\n\r\n", last + 2) >= 0:
                return data
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk


def chunked_origin(length_framed=False):
    """A handler answering each request chunked, with TRAILERS after the last chunk (or with a
    Content-Length, and no trailers, when length_framed)."""

    def handler(conn, index, up):
        while True:
            msg = read_chunked_request(conn)
            if msg is None:
                return
            up.record(msg)
            if length_framed:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n0\r\n" + TRAILERS.encode() + b"\r\n")

    return handler


def raw_exchange(port, request: bytes) -> bytes:
    """Sends request on a new connection and reads one chunked response to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = b""
        while not data.endswith(b"\r\n\r\n") or b"\r\n0\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_h1_chunked_trailers_both_ways_on_the_raw_bytes(start_ferry, py_upstream):
    up = py_upstream(chunked_origin())
    ferry = start_ferry(basic_config([up.address]))
    request = (b"POST /t HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\nx-request-sum: 42\r\ncontent-length: 7\r\n\r\n")
    got = raw_exchange(ferry.port(), request)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), got
    assert re.search(rb"(?i)transfer-encoding: chunked", head)
    # One last chunk, with the allowed trailers after it; the forbidden ones are gone.
    assert body == b"5\r\nhello\r\n0\r\nx-checksum: abc123\r\ngrpc-status: 0\r\n\r\n", got
    sent = up.requests[0]
    assert sent.endswith(b"3\r\nabc\r\n0\r\nx-request-sum: 42\r\n\r\n"), sent
    # One last chunk in the body (the head is left out: its random x-request-id may end in 0).
    assert sent.partition(b"\r\n\r\n")[2].count(b"0\r\n") == 1, sent


def test_trailers_are_dropped_for_a_length_framed_response(start_ferry, py_upstream):
    up = py_upstream(chunked_origin(length_framed=True))
    ferry = start_ferry(basic_config([up.address]))
    with socket.create_connection(("127.0.0.1", ferry.port()), timeout=5) as s:
        s.sendall(b"GET /t HTTP/1.1\r\nhost: a.test\r\n\r\n")
        data = b""
        while not data.endswith(b"hello"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert re.search(rb"(?i)content-length: 5\r\n", data), data
    assert data.endswith(b"\r\n\r\nhello")


def test_h2_client_trailers_reach_an_h1_origin_and_back(start_ferry, py_upstream):
    nghttp = require_tool("nghttp")
    up = py_upstream(chunked_origin())
    ferry = start_ferry(basic_config([up.address]))
    # Request trailers: HEADERS, DATA, HEADERS(END_STREAM) by hand.
    c = h2.Conn(ferry.port())
    c.start()
    fields = h2.request_fields("/up", method="POST")
    c.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, h2.hpack(fields)))
    c.send(h2.frame(h2.DATA, 0, 1, b"abc"))
    c.send(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1,
                    h2.hpack([("x-request-sum", "42"), ("host", "evil")])))
    seen = c.frames_until(lambda f: f[0] in (h2.HEADERS, h2.DATA, h2.RST_STREAM)
                          and f[2] == 1 and f[1] & h2.END_STREAM)
    c.close()
    assert seen and seen[-1][1] & h2.END_STREAM, seen
    # The response's trailers ended the stream in a HEADERS frame of their own.
    assert seen[-1][0] == h2.HEADERS, seen
    sent = up.requests[0]
    assert re.search(rb"(?i)transfer-encoding: chunked", sent), sent
    assert sent.endswith(b"0\r\nx-request-sum: 42\r\n\r\n"), sent
    assert b"evil" not in sent

    # The response's trailers as nghttp decodes them.
    out = subprocess.run([nghttp, "-v", ferry.url("/down")], capture_output=True, text=True,
                         timeout=20).stdout
    tail = out[out.index("hello"):]
    assert re.search(r"recv \(stream_id=\d+\) x-checksum: abc123", tail), out
    assert re.search(r"recv \(stream_id=\d+\) grpc-status: 0", tail), out
    assert "content-length: 99" not in tail and "host: evil" not in tail, out
    assert re.search(r"recv HEADERS frame <[^>]*flags=0x05", tail), out
