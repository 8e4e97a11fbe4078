"""WebSocket over HTTP/1.1 through the proxy (docs/operations.md, WebSocket).

Client and upstream are python3-websockets: the upstream is
examples/chat_service/ws_echo_server.py, its own process, and the client connects through Ferry. A misbehaving upstream (a wrong Sec-WebSocket-Accept) is
a small Python server on a thread.
"""
import asyncio
import base64
import hashlib
import os
import re
import socket
import sys
import time
from pathlib import Path

import pytest
import websockets
import websockets.exceptions
import websockets.legacy.client

from conftest import assert_error_json, basic_config, read_response, status_of, wait_until, body_of

HERE = Path(__file__).resolve().parent
API_KEY = "ws-secret-key"


@pytest.fixture
def ws_echo(processes, tmp_path):
    """The WebSocket echo upstream: (process, "127.0.0.1:PORT")."""
    p = processes.start([sys.executable, str(HERE.parents[1] / "examples" / "chat_service" / "ws_echo_server.py")], tmp_path / "ws.log")

    def bound():
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", p.log_text())
        if not m and not p.alive():
            raise AssertionError(f"ws_echo_server exited: {p.log_text()}")
        return m

    m = wait_until(bound, 10, what="the WebSocket echo server to listen")
    return p, f"127.0.0.1:{m.group(1)}"


def ws_config(upstream: str, *, route_extra=None, limits=None) -> dict:
    route = {"name": "ws", "match": {"prefix": "/"}, "service": "svc"}
    route.update(route_extra or {})
    locked = {
        "name": "locked", "match": {"prefix": "/locked/"}, "service": "svc",
        "api_keys": {"header": "x-api-key", "keys": [
            {"name": "tester", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]},
    }
    return basic_config([upstream], routes=[locked, route], limits=limits)


def connect(ferry, path="/chat", **kwargs):
    return websockets.legacy.client.connect(f"ws://127.0.0.1:{ferry.port()}{path}",
                                            ping_interval=None, compression=None,
                                            max_size=4 * 1024 * 1024, **kwargs)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def upgrade_request(path: str, extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"{extra}\r\n").encode()


def test_text_binary_and_large_messages_echo(ws_echo, start_ferry):
    _, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream))

    async def talk():
        async with connect(ferry) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01\xfe\xff")
            assert await ws.recv() == b"\x00\x01\xfe\xff"
            big = os.urandom(1024 * 1024)
            await ws.send(big)
            assert await ws.recv() == big
            assert ferry.metric("ferry_websocket_connections_active", route="ws") == 1

    run(talk())
    assert ferry.metric("ferry_websocket_connections_total", listener="pub", route="ws") == 1
    wait_until(lambda: ferry.metric("ferry_websocket_connections_active", route="ws") == 0, 5,
               what="the tunnel gauge to drop")


def test_ping_pong_both_ways(ws_echo, start_ferry):
    _, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream))

    async def talk():
        async with connect(ferry) as ws:
            pong = await ws.ping(b"from-client")  # the upstream's pong comes back through Ferry
            await asyncio.wait_for(pong, 5)
            await ws.send("ping-me")  # the upstream pings; the client's pong goes back
            assert await ws.recv() == "pong-received"

    run(talk())


def test_client_close_reaches_the_upstream_and_back(ws_echo, start_ferry):
    process, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream))

    async def talk():
        ws = await connect(ferry)
        await ws.send("x")
        assert await ws.recv() == "x"
        await ws.close(code=4001, reason="done here")
        return ws.close_code, ws.close_reason

    code, reason = run(talk())
    assert (code, reason) == (4001, "done here")  # the upstream's echo of our close frame
    wait_until(lambda: "closed 4001 done here" in process.log_text(), 5,
               what="the upstream to see the client's close")


def test_bad_accept_from_upstream_is_502(py_upstream, start_ferry):
    def wrong_accept(conn, index, up):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        up.record(data)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n")
        conn.recv(1)  # until Ferry closes the connection

    up = py_upstream(wrong_accept)
    ferry = start_ferry(ws_config(up.address))
    with socket.create_connection(("127.0.0.1", ferry.port()), timeout=10) as s:
        s.sendall(upgrade_request("/chat"))
        response = read_response(s)
    assert status_of(response) == 502, response
    assert_error_json(body_of(response), 502, "bad_upstream_response")
    # The upgrade went upstream with its hop-by-hop fields, as a new pair for that hop.
    sent = up.requests[0].lower()
    assert b"upgrade: websocket\r\n" in sent and b"connection: upgrade\r\n" in sent, sent
    assert b"sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n" in sent, sent


def test_plain_get_on_the_same_route_still_works(ws_echo, start_ferry):
    _, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream))
    with socket.create_connection(("127.0.0.1", ferry.port()), timeout=10) as s:
        s.sendall(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_response(s)
        assert status_of(response) == 200 and body_of(response) == b"plain", response
        # An upgrade the upstream declines (200 to a non-WebSocket upgrade) is a normal answer,
        # and the connection goes on.
        s.sendall(b"GET /plain HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
        response = read_response(s)
        assert status_of(response) == 200 and body_of(response) == b"plain", response
    assert ferry.metric("ferry_websocket_connections_total") == 0


def test_api_keys_refuse_an_upgrade_without_touching_the_upstream(ws_echo, start_ferry):
    process, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream))
    with socket.create_connection(("127.0.0.1", ferry.port()), timeout=10) as s:
        s.sendall(upgrade_request("/locked/chat"))
        response = read_response(s)
    assert status_of(response) == 401, response
    time.sleep(0.2)
    assert "request /locked/chat" not in process.log_text()

    async def with_key():
        async with connect(ferry, "/locked/chat", extra_headers={"x-api-key": API_KEY}) as ws:
            await ws.send("let in")
            return await ws.recv()

    assert run(with_key()) == "let in"
    assert "request /locked/chat" in process.log_text()


def test_route_timeout_and_request_timeout_do_not_cut_a_tunnel(ws_echo, start_ferry):
    _, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream, route_extra={"timeout": "500ms"},
                                  limits={"request_timeout": "500ms"}))

    async def talk():
        async with connect(ferry) as ws:
            for i in range(8):  # 2 s: four times each timeout
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
                await asyncio.sleep(0.25)

    run(talk())


def test_stream_idle_timeout_ends_a_quiet_tunnel(ws_echo, start_ferry):
    _, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream, route_extra={"stream_idle_timeout": "1s"}))

    async def talk():
        async with connect(ferry) as ws:
            await ws.send("a")
            assert await ws.recv() == "a"
            start = time.monotonic()
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await ws.recv()  # nothing comes: Ferry closes the quiet tunnel
            return time.monotonic() - start

    waited = run(talk())
    assert 0.8 <= waited <= 5, waited
    wait_until(lambda: ferry.metric("ferry_websocket_connections_active") == 0, 5,
               what="the tunnel gauge to drop")


def test_max_stream_duration_ends_a_busy_tunnel(ws_echo, start_ferry):
    _, upstream = ws_echo
    ferry = start_ferry(ws_config(upstream, route_extra={"stream_idle_timeout": "10s",
                                                         "max_stream_duration": "1500ms"}))

    async def talk():
        start = time.monotonic()
        async with connect(ferry) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                for i in range(100):  # 20 s at most; busy all along
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
                    await asyncio.sleep(0.2)
        return time.monotonic() - start

    lasted = run(talk())
    assert 1.2 <= lasted <= 7.5, lasted
