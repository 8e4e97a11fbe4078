"""HTTP/2 downstream (docs/architecture.md, src/server/README.md): h2c by prior knowledge on plain
listeners, h2 by ALPN on TLS ones, `http2: false`, the h2c Upgrade served as HTTP/1.1, many
streams on a connection, large bodies both ways with flow control, the refused smuggling shapes
and the floods nghttp2 bounds. Real clients: curl, h2load, and hand-built frames (h2_frames.py)
where no client would send the shape."""

import json
import os
import signal
import subprocess
import zlib

import pytest

import h2_frames as h2
from conftest import basic_config, require_tool, wait_until
from test_tls_listener import Pki, tls_config


def run(args, timeout=60, **kw):
    return subprocess.run(args, capture_output=True, timeout=timeout, **kw)


def curl_h2(url: str, *args: str) -> subprocess.CompletedProcess:
    curl = require_tool("curl")
    return run([curl, "-sS", "-o", "-", "-w", "\\n%{http_version} %{http_code}", *args, url])


def split_result(r: subprocess.CompletedProcess) -> tuple[bytes, str, int]:
    body, _, tail = r.stdout.rpartition(b"\n")
    version, code = tail.decode().split()
    return body, version, int(code)


def test_prior_knowledge_h2c_reaches_the_echo_service(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    r = curl_h2(ferry.url("/hello?x=1"), "--http2-prior-knowledge", "-H", "x-test: yes")
    assert r.returncode == 0, r.stderr
    body, version, code = split_result(r)
    assert (version, code) == ("2", 200)
    assert ferry.metric("ferry_http2_connections_total") == 1
    assert ferry.metric("ferry_http2_streams_total") == 1
    echoed = json.loads(body)
    headers = {k.lower(): v for k, v in echoed["headers"].items()}
    assert echoed["path"] == "/hello?x=1"
    assert headers["x-test"] == "yes"
    assert headers["host"] == f"127.0.0.1:{ferry.port()}"  # :authority became Host
    # HTTP/1.1 still works on the same listener.
    r = curl_h2(ferry.url("/hello"))
    assert split_result(r)[1:] == ("1.1", 200)


def test_h2_over_tls_by_alpn(start_ferry, echo, tmp_path):
    pki = Pki(tmp_path / "pki", "site")
    cert, key = pki.issue("a.test", "DNS:a.test,DNS:localhost")
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    port = ferry.port()
    common = ["--cacert", str(pki.ca), "--resolve", f"a.test:{port}:127.0.0.1"]
    r = curl_h2(f"https://a.test:{port}/tls", "--http2", *common)
    assert r.returncode == 0, r.stderr
    assert split_result(r)[1:] == ("2", 200)
    r = curl_h2(f"https://a.test:{port}/tls", "--http1.1", *common)
    assert split_result(r)[1:] == ("1.1", 200)


def test_http2_false_keeps_a_listener_http1_only(start_ferry, echo, tmp_path):
    config = basic_config([f"127.0.0.1:{echo.port}"])
    config["listeners"][0]["http2"] = False
    ferry = start_ferry(config)
    r = curl_h2(ferry.url("/"), "--http2-prior-knowledge")
    assert r.returncode != 0 or split_result(r)[1] != "2"
    assert split_result(curl_h2(ferry.url("/")))[1:] == ("1.1", 200)
    # Over TLS, ALPN does not offer h2: curl --http2 falls back to HTTP/1.1.
    pki = Pki(tmp_path / "pki", "site")
    cert, key = pki.issue("a.test", "DNS:a.test,DNS:localhost")
    config = tls_config(echo.port, {"cert": str(cert), "key": str(key)})
    config["listeners"][0]["http2"] = False
    tls = start_ferry(config)
    port = tls.port()
    r = curl_h2(f"https://a.test:{port}/", "--http2", "--cacert", str(pki.ca), "--resolve",
                f"a.test:{port}:127.0.0.1")
    assert r.returncode == 0, r.stderr
    assert split_result(r)[1:] == ("1.1", 200)


def test_h2c_upgrade_is_served_as_http1_and_not_forwarded(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    # curl --http2 on http:// asks for h2c with Upgrade and HTTP2-Settings.
    r = curl_h2(ferry.url("/up"), "--http2", "-v")
    assert r.returncode == 0, r.stderr
    body, version, code = split_result(r)
    assert (version, code) == ("1.1", 200)
    assert b"Upgrade: h2c" in r.stderr  # curl did ask
    headers = {k.lower() for k in json.loads(body)["headers"]}
    assert "upgrade" not in headers and "http2-settings" not in headers
    assert "connection" not in headers


def test_many_concurrent_streams_on_one_connection_with_h2load(start_ferry, echo):
    h2load = require_tool("h2load")
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    r = run([h2load, "-n", "500", "-c", "1", "-m", "10", ferry.url("/bytes/100")], timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "500 succeeded, 0 failed, 0 errored" in out, out
    assert "status codes: 500 2xx" in out, out


def test_large_upload_and_download_with_flow_control(start_ferry, echo, tmp_path):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    payload = os.urandom(32 * 1024 * 1024)  # far past the 1 MiB connection window
    upload = tmp_path / "up.bin"
    upload.write_bytes(payload)
    r = curl_h2(ferry.url("/upload"), "--http2-prior-knowledge", "--data-binary", f"@{upload}")
    assert r.returncode == 0, r.stderr
    body, version, code = split_result(r)
    assert (version, code) == ("2", 200)
    echoed = json.loads(body)
    assert echoed["received"] == len(payload)
    assert echoed["crc32"] == zlib.crc32(payload)
    size = 64 * 1024 * 1024
    r = run([require_tool("curl"), "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
             "%{http_version} %{http_code} %{size_download}", ferry.url(f"/bytes/{size}")])
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["2", "200", str(size)]


# --- hand-built frames ---------------------------------------------------------------------


def h2_conn(ferry) -> h2.Conn:
    c = h2.Conn(ferry.port())
    c.start()
    return c


def outcome(conn: h2.Conn, stream: int = 1):
    """What came back for `stream`: ("status", N), ("reset", code) or ("goaway", code)."""
    def done(f):
        kind, _, sid, _ = f
        return (sid == stream and kind in (h2.HEADERS, h2.RST_STREAM)) or kind == h2.GOAWAY
    for kind, flags, sid, payload in conn.frames_until(done):
        if kind == h2.HEADERS and sid == stream:
            return ("status", h2.status_of(payload, flags))
        if kind == h2.RST_STREAM and sid == stream:
            return ("reset", int.from_bytes(payload[:4], "big"))
        if kind == h2.GOAWAY:
            return ("goaway", int.from_bytes(payload[4:8], "big"))
    return ("closed", None)


def send_request(conn, fields, body: bytes | None = None, stream: int = 1):
    flags = h2.END_HEADERS | (0 if body is not None else h2.END_STREAM)
    conn.send(h2.frame(h2.HEADERS, flags, stream, h2.hpack(fields)))
    if body is not None:
        conn.send(h2.frame(h2.DATA, h2.END_STREAM, stream, body))


@pytest.mark.parametrize("shape", ["content-length", "transfer-encoding", "crlf", "nul",
                                   "connection"])
def test_smuggling_shapes_are_refused(start_ferry, echo, shape):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    before = ferry.metric("ferry_requests_total")
    conn = h2_conn(ferry)
    post = h2.request_fields("/upload", "POST")
    if shape == "content-length":  # H2.CL: the declared length is not what DATA carries
        send_request(conn, post + [("content-length", "3")], b"0123456789")
    elif shape == "transfer-encoding":  # H2.TE
        send_request(conn, post + [("transfer-encoding", "chunked")], b"0\r\n\r\n")
    elif shape == "crlf":
        send_request(conn, h2.request_fields(extra=[("x-a", "1\r\nx-b: 2")]))
    elif shape == "nul":
        send_request(conn, h2.request_fields(extra=[("x-a", "1\x002")]))
    else:
        send_request(conn, h2.request_fields(extra=[("connection", "close")]))
    kind, code = outcome(conn)
    conn.close()
    assert kind in ("reset", "goaway"), (kind, code)
    assert code == h2.PROTOCOL_ERROR
    assert ferry.metric("ferry_requests_total") == before  # nothing was proxied


def test_host_differing_from_authority_is_400(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    conn = h2_conn(ferry)
    send_request(conn, h2.request_fields(authority="a.example", extra=[("host", "b.example")]))
    assert outcome(conn) == ("status", 400)
    # The same Host as :authority is fine.
    send_request(conn, h2.request_fields(authority="a.example", extra=[("host", "a.example")]),
                 stream=3)
    assert outcome(conn, 3) == ("status", 200)
    conn.close()


def test_hpack_bomb_header_list_limit_gives_431(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"],
                                     limits={"max_header_bytes": "8KiB"}))
    conn = h2_conn(ferry)
    # One 4000-byte field added to the dynamic table once, then referenced 100 times: a few
    # hundred bytes on the wire decode to ~400 KB.
    big = b"\x40" + h2._integer(5, 7) + b"x-big" + h2._integer(4000, 7) + b"v" * 4000
    block = h2.hpack(h2.request_fields()) + big + bytes([0x80 | 62]) * 100
    conn.send(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1, block))
    assert outcome(conn) in (("status", 431), ("reset", 0xB))  # ENHANCE_YOUR_CALM also fine
    conn.close()


def test_rapid_reset_flood_ends_the_connection(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    conn = h2_conn(ferry)
    burst = bytearray()
    for i in range(1500):  # past nghttp2's burst of 1000
        sid = 2 * i + 1
        burst += h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, sid,
                          h2.hpack(h2.request_fields("/delay/1000")))
        burst += h2.frame(h2.RST_STREAM, 0, sid, (h2.CANCEL).to_bytes(4, "big"))
    try:
        conn.send(bytes(burst))
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames = conn.frames_until(lambda f: f[0] == h2.GOAWAY, timeout=10)
    conn.close()
    goaways = [f for f in frames if f[0] == h2.GOAWAY]
    assert goaways, "no GOAWAY after 1500 resets"
    # nghttp2 1.52 ends a rapid reset with INTERNAL_ERROR (later versions: ENHANCE_YOUR_CALM).
    assert int.from_bytes(goaways[0][3][4:8], "big") in (0x2, 0xB)
    wait_until(lambda: ferry.metric("ferry_http2_flood_closes_total") == 1, 5,
               what="the flood close to be counted")


def test_a_larger_reset_burst_lets_the_same_resets_pass(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"],
                                     limits={"stream_reset_burst": 5000}))
    conn = h2_conn(ferry)
    burst = bytearray()
    for i in range(1500):
        sid = 2 * i + 1
        burst += h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, sid,
                          h2.hpack(h2.request_fields("/delay/1000")))
        burst += h2.frame(h2.RST_STREAM, 0, sid, (h2.CANCEL).to_bytes(4, "big"))
    conn.send(bytes(burst))
    # The connection still serves: a request after the resets is answered.
    send_request(conn, h2.request_fields("/after"), stream=3001)
    kind, code = outcome(conn, 3001)
    conn.close()
    assert (kind, code) == ("status", 200)
    assert ferry.metric("ferry_http2_flood_closes_total") == 0


def test_continuation_flood_ends_the_connection(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    conn = h2_conn(ferry)
    conn.send(h2.frame(h2.HEADERS, 0, 1, h2.hpack(h2.request_fields())))
    flood = b"".join(h2.frame(h2.CONTINUATION, 0, 1, h2.hpack([("x-c", "1")]))
                     for _ in range(50))
    try:
        conn.send(flood)
    except (BrokenPipeError, ConnectionResetError):
        pass
    kind, code = outcome(conn)
    conn.close()
    assert kind in ("goaway", "closed"), (kind, code)


def test_settings_flood_ends_the_connection(start_ferry, echo):
    ferry = start_ferry(basic_config([f"127.0.0.1:{echo.port}"]))
    conn = h2.Conn(ferry.port())
    # 100 entries in one SETTINGS frame: past max_settings (32).
    entries = b"".join((0x3).to_bytes(2, "big") + (100).to_bytes(4, "big") for _ in range(100))
    conn.start(entries)
    frames = conn.frames_until(lambda f: f[0] == h2.GOAWAY)
    conn.close()
    assert any(f[0] == h2.GOAWAY for f in frames) or conn.closed


def test_drain_sends_two_goaways_around_a_ping_and_finishes_the_stream(start_ferry, echo):
    config = basic_config([f"127.0.0.1:{echo.port}"], drain_time="10s")
    ferry = start_ferry(config)
    conn = h2_conn(ferry)
    send_request(conn, h2.request_fields("/delay/1500"))
    conn.frames_until(lambda f: f[0] == h2.SETTINGS and f[1] & h2.ACK)
    ferry.process.signal(signal.SIGTERM)
    first = conn.frames_until(lambda f: f[0] == h2.GOAWAY)
    assert first and first[-1][0] == h2.GOAWAY
    assert int.from_bytes(first[-1][3][:4], "big") == 2**31 - 1  # the notice
    ping = conn.frames_until(lambda f: f[0] == h2.PING and not f[1] & h2.ACK)
    assert ping and ping[-1][0] == h2.PING
    conn.send(h2.frame(h2.PING, h2.ACK, 0, ping[-1][3]))
    final = conn.frames_until(lambda f: f[0] == h2.GOAWAY)
    assert final and final[-1][0] == h2.GOAWAY
    assert int.from_bytes(final[-1][3][:4], "big") == 1  # the last stream taken
    rest = conn.frames_until(lambda f: f[0] == h2.DATA and f[1] & h2.END_STREAM and f[2] == 1)
    statuses = [h2.status_of(p, fl) for k, fl, s, p in final + rest if k == h2.HEADERS and s == 1]
    assert statuses == [200]
    assert rest and rest[-1][0] == h2.DATA  # the stream in flight finished
    conn.close()
    wait_until(lambda: not ferry.process.alive(), 15, what="ferry to exit after the drain")
