"""What real clients found (issue 11): the gateway's wire behaviour checked with the clients
that found each problem -- curl, http.client, raw sockets and Node's keep-alive agent -- in
front of a scripted Python upstream. docs/conformance.md lists the rules and their RFC sections.
"""

import http.client
import json
import re
import shutil
import socket
import subprocess

import pytest

from conftest import (assert_error_json, basic_config, body_of, curl, raw_exchange,
                      read_http_message, require_tool, status_of, wait_until)

# The upstream's answers, by request path. Each ends its body in a different way.
FRAMED = {
    "/length": b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    "/chunked": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "/204": b"HTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n",
    "/304": b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\n\r\n",
    # A 304 may carry the Content-Length of the representation (RFC 9110 8.6): still no body.
    "/304-length": b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 120\r\n\r\n",
    "/early-hints": b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n"
                    b"link: </app.js>; rel=preload\r\n\r\n"
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    "/hop-cl": b"HTTP/1.1 200 OK\r\nconnection: content-length\r\ncontent-length: 5\r\n\r\nhello",
}
# Bodies that end when the upstream closes the connection.
CLOSING = {
    "/close10": b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello",
    "/close11": b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello",
    "/cut": b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello",  # 95 bytes short
}


def scripted_handler(conn, index, up):
    """Records each request and answers it as FRAMED/CLOSING say; HEAD gets /length's head."""
    buf = bytearray()
    while True:
        msg = read_http_message(conn, buf)
        if msg is None:
            return
        up.record(msg)
        method, target = msg.split(b" ", 2)[:2]
        path = target.decode("latin-1").split("?")[0]
        if method == b"HEAD":
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
        elif path in CLOSING:
            conn.sendall(CLOSING[path])
            return
        else:
            conn.sendall(FRAMED.get(path, FRAMED["/length"]))


def seen(up, n=1) -> list[bytes]:
    """The request heads the upstream received (waits for n)."""
    wait_until(lambda: len(up.requests) >= n, 5, what=f"{n} upstream request(s)")
    return [m.partition(b"\r\n\r\n")[0] for m in up.requests]


def header_lines(head: bytes, name: str) -> list[str]:
    return [v.strip() for v in re.findall(rb"(?im)^" + name.encode() + rb":(.*)$", head)
            for v in [v.decode("latin-1")]]


@pytest.fixture
def gw(start_ferry, py_upstream, tmp_path):
    up = py_upstream(scripted_handler)
    log = tmp_path / "access.log"
    ferry = start_ferry(basic_config([up.address], routes=[
        {"name": "api", "match": {"prefix": "/api/"}, "service": "svc", "rewrite_prefix": "/"},
        {"name": "all", "service": "svc"}],
        access_log={"enabled": True, "path": str(log)}))
    ferry.upstream = up
    ferry.access_log = log
    return ferry


# --- 1. one last chunk, whatever framing the upstream used ---------------------------------

FIRST_REQUESTS = [("GET", "/length"), ("GET", "/chunked"), ("GET", "/close10"),
                  ("GET", "/close11"), ("HEAD", "/length"), ("GET", "/204"), ("GET", "/304"),
                  ("GET", "/304-length")]


def read_one_response(sock: socket.socket, buf: bytearray, method: str) -> tuple[int, bytes]:
    """Reads exactly one response (its framing as an HTTP/1.1 client reads it) off sock; bytes
    after it stay in buf, where a second response must start."""
    def fill():
        chunk = sock.recv(65536)
        assert chunk, f"connection closed; have {bytes(buf)!r}"
        buf.extend(chunk)

    while b"\r\n\r\n" not in buf:
        fill()
    head_end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:head_end])
    del buf[:head_end]
    status = status_of(head)
    body = bytearray()
    if method == "HEAD" or status in (204, 304):
        pass
    elif re.search(rb"(?im)^transfer-encoding: chunked", head):
        while True:
            while b"\r\n" not in buf:
                fill()
            line_end = buf.index(b"\r\n")
            size = int(bytes(buf[:line_end]), 16)
            while len(buf) < line_end + 2 + size + 2:
                fill()
            body += buf[line_end + 2:line_end + 2 + size]
            assert buf[line_end + 2 + size:line_end + 4 + size] == b"\r\n"
            del buf[:line_end + 4 + size]
            if size == 0:
                break
    else:
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        assert m, f"a keep-alive response without framing: {head!r}"
        while len(buf) < int(m.group(1)):
            fill()
        body += buf[:int(m.group(1))]
        del buf[:int(m.group(1))]
    return status, bytes(body)


@pytest.mark.parametrize("method,path", FIRST_REQUESTS)
def test_keepalive_second_request_after_each_framing(gw, method, path):
    with socket.create_connection(("127.0.0.1", gw.port()), timeout=5) as s:
        buf = bytearray()
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, body = read_one_response(s, buf, method)
        assert status in (200, 204, 304)
        if method == "GET" and status == 200:
            assert body == b"hello"
        s.sendall(b"GET /length HTTP/1.1\r\nHost: x\r\n\r\n")
        # Leftover bytes of the first response would be read here as a status line.
        assert read_one_response(s, buf, "GET") == (200, b"hello"), bytes(buf)
        assert buf == b""


@pytest.mark.parametrize("path", ["/close10", "/close11", "/chunked"])
def test_close_delimited_body_has_one_last_chunk_raw(gw, path):
    data, _ = raw_exchange(gw.port(), f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
                           timeout=1.0)
    head, _, body = data.partition(b"\r\n\r\n")
    assert re.search(rb"(?im)^transfer-encoding: chunked", head), head
    assert body == b"5\r\nhello\r\n0\r\n\r\n", body


def test_keepalive_after_close_delimited_curl(gw):
    r = subprocess.run(["curl", "-sS", "-v", "-o", "/dev/null", "-o", "/dev/null",
                        gw.url("/close10"), gw.url("/length")], capture_output=True, timeout=20)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert "Leftovers after chunking" not in err
    assert "Re-using existing connection" in err  # the second request did share the connection


NODE_KEEPALIVE = r"""
const http = require('http');
const agent = new http.Agent({keepAlive: true, maxSockets: 1});
const port = Number(process.argv[2]);
const paths = process.argv.slice(3);
const out = [];
function next(i) {
  if (i === paths.length) { console.log(JSON.stringify(out)); agent.destroy(); return; }
  http.get({host: '127.0.0.1', port, path: paths[i], agent}, res => {
    let body = '';
    res.on('data', d => body += d);
    res.on('end', () => { out.push([res.statusCode, body, res.req.reusedSocket]); setImmediate(next, i + 1); });
  }).on('error', e => { out.push(['error', e.code || e.message]); console.log(JSON.stringify(out)); process.exit(0); });
}
next(0);
"""


def test_keepalive_after_close_delimited_node_agent(gw, tmp_path):
    node = require_tool("node")
    script = tmp_path / "keepalive.js"
    script.write_text(NODE_KEEPALIVE)
    r = subprocess.run([node, str(script), str(gw.port()), "/close10", "/length", "/close11",
                        "/chunked"], capture_output=True, timeout=20)
    got = json.loads(r.stdout)
    assert got == [[200, "hello", False], [200, "hello", True], [200, "hello", True],
                   [200, "hello", True]], got


# --- 2. repeated list header lines are one list --------------------------------------------


def test_x_forwarded_for_lines_joined_with_client_appended(gw):
    data, _ = raw_exchange(gw.port(), b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4"
                           b"\r\nX-Forwarded-For: 5.6.7.8\r\nConnection: close\r\n\r\n")
    assert status_of(data) == 200, data
    assert header_lines(seen(gw.upstream)[0], "x-forwarded-for") == [
        "1.2.3.4, 5.6.7.8, 127.0.0.1"]


def test_x_forwarded_for_lines_joined_curl(gw):
    r = curl(gw.url("/"), "-H", "X-Forwarded-For: 1.2.3.4", "-H", "X-Forwarded-For: 5.6.7.8")
    assert r.status == 200
    # curl sends the two -H lines as two header lines.
    assert header_lines(seen(gw.upstream)[0], "x-forwarded-for") == [
        "1.2.3.4, 5.6.7.8, 127.0.0.1"]


def test_connection_options_on_every_line_are_removed(gw):
    data, _ = raw_exchange(gw.port(), b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                           b"Connection: X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\n\r\n", timeout=1.0)
    assert status_of(data) == 200, data
    head = seen(gw.upstream)[0]
    assert header_lines(head, "x-foo") == [], head
    assert header_lines(head, "x-bar") == ["2"], head


# --- 3. absolute-form targets --------------------------------------------------------------


def test_absolute_form_through_curl_proxy(gw):
    r = curl("http://api.example/api/items?page=2", "-x", f"http://127.0.0.1:{gw.port()}")
    assert r.status == 200, (r.status, r.body, r.stderr)
    head = seen(gw.upstream)[0]
    assert head.startswith(b"GET /items?page=2 HTTP/1.1\r\n"), head  # routed by path, rewritten
    assert header_lines(head, "host") == ["api.example"], head


def test_absolute_form_authority_replaces_host(gw):
    data, _ = raw_exchange(gw.port(), b"GET http://a.example:8080 HTTP/1.1\r\nHost: other\r\n"
                           b"Connection: close\r\n\r\n")
    assert status_of(data) == 200, data
    head = seen(gw.upstream)[0]
    assert head.startswith(b"GET / HTTP/1.1\r\n"), head
    assert header_lines(head, "host") == ["a.example:8080"], head


@pytest.mark.parametrize("target", [b"ftp://a.example/x", b"http://user@a.example/x",
                                    b"http:///x"])
def test_absolute_form_refused(gw, target):
    data, closed = raw_exchange(gw.port(), b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(data) == 400, data
    assert gw.upstream.requests == []


# --- 4, 5. names that are not tokens; Connection naming a framing header ------------------

REFUSED = {
    "space_in_name": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer Encoding: chunked\r\n"
                     b"Content-Length: 5\r\n\r\nhello",
    "empty_name": b"GET / HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n",
    "connection_content_length": b"POST / HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n"
                                 b"Content-Length: 43\r\n\r\n"
                                 b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "connection_transfer_encoding": b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close, "
                                    b"Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"0\r\n\r\n",
    "connection_host_second_line": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                                   b"Connection: host\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_with_400(gw, name):
    data, closed = raw_exchange(gw.port(), REFUSED[name] + b"GET /follow HTTP/1.1\r\nHost: x"
                                b"\r\n\r\n")
    assert status_of(data) == 400, data
    assert_error_json(body_of(data).split(b"\n")[0], 400, "bad_request")
    assert data.count(b"HTTP/1.") == 1, data
    assert closed
    assert gw.upstream.requests == []


def test_response_connection_naming_content_length_keeps_it(gw):
    c = http.client.HTTPConnection("127.0.0.1", gw.port(), timeout=5)
    try:
        c.request("GET", "/hop-cl")
        r = c.getresponse()
        assert (r.status, r.getheader("content-length"), r.read()) == (200, "5", b"hello")
        c.request("GET", "/length")
        r2 = c.getresponse()
        assert (r2.status, r2.read()) == (200, b"hello")
    finally:
        c.close()


# --- 6. tolerated: tabs as optional white space, one empty line before a request -----------


def test_tabs_around_transfer_encoding_value_accepted(gw):
    data, _ = raw_exchange(gw.port(), b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked"
                           b"\t\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert status_of(data) == 200, data
    msg = seen(gw.upstream)[0]
    assert header_lines(msg, "transfer-encoding") == ["chunked"], msg


def test_tabs_around_value_not_forwarded(gw):
    data, _ = raw_exchange(gw.port(), b"GET / HTTP/1.1\r\nHost: x\r\nX-A:\ta\tb\t\r\n"
                           b"Connection: close\r\n\r\n")
    assert status_of(data) == 200, data
    assert re.search(rb"(?im)^x-a: a\tb\r$", seen(gw.upstream)[0]), seen(gw.upstream)[0]


def test_one_empty_line_before_request_line_ignored(gw):
    data, _ = raw_exchange(gw.port(), b"\r\nGET /length HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1.0)
    assert status_of(data) == 200, data


def test_empty_line_after_a_body_ignored(gw):
    # Old clients end a POST body with an extra CRLF before the next request.
    data, _ = raw_exchange(gw.port(), b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
                           b"hello\r\nGET /length HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1.0)
    assert data.count(b"HTTP/1.1 200 ") == 2, data


def test_two_empty_lines_before_request_line_refused(gw):
    data, closed = raw_exchange(gw.port(), b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(data) == 400, data
    assert closed


# --- 7. 1xx responses ----------------------------------------------------------------------


def test_early_hints_forwarded_to_http11_client(gw):
    r = curl(gw.url("/early-hints"), "-v")
    assert r.status == 200 and r.body == b"hello"
    assert "< HTTP/1.1 103 Early Hints" in r.stderr, r.stderr
    assert "< link: </style.css>; rel=preload" in r.stderr, r.stderr
    assert "< link: </app.js>; rel=preload" in r.stderr, r.stderr


def test_early_hints_not_sent_to_http10_client(gw):
    data, _ = raw_exchange(gw.port(), b"GET /early-hints HTTP/1.0\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert b"103" not in data


# --- 8. a response cut short by the upstream -----------------------------------------------


def test_cut_response_logged_as_error_and_marked(gw):
    r = curl(gw.url("/cut"))
    assert r.returncode == 18  # curl: partial file
    wait_until(lambda: gw.access_log.exists() and gw.access_log.read_text().strip(), 5,
               what="an access log line")
    entry = json.loads(gw.access_log.read_text().splitlines()[0])
    assert entry["status"] == 200 and entry["bytes_sent"] == 5
    assert entry["error"] == "upstream_closed", entry
    wait_until(lambda: "upstream prematurely closed connection" in gw.log_text(), 5,
               what="the error log line")
    line = next(l for l in gw.log_text().splitlines() if "prematurely" in l)
    assert " error " in line and "GET /cut" in line, line


def test_complete_response_has_no_error_mark(gw):
    assert curl(gw.url("/length")).status == 200
    wait_until(lambda: gw.access_log.exists() and gw.access_log.read_text().strip(), 5,
               what="an access log line")
    assert "error" not in json.loads(gw.access_log.read_text().splitlines()[0])
