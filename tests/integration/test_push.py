"""Topic routes: a bus topic's events streamed to clients as Server-Sent Events and over a
WebSocket (docs/realtime.md). Real clients over real sockets: curl -N, Python's http.client
(HTTP/1.1, chunked), curl --http2-prior-knowledge, python3-websockets, headless Chromium with an
EventSource page. The bus is the embedded one on the same node; events are published through
the bus API."""

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import websockets
import websockets.exceptions
import websockets.legacy.client

from bus_support import start_bus  # noqa: F401
from conftest import free_port, wait_until
from jwt_support import ISSUER, JwksServer, Key, jwks

ROOT = Path(__file__).resolve().parents[2]
PATH = "/events/orders"


def push_config(route_extra=None, bus_extra=None, limits=None, extra=None) -> tuple[dict, dict]:
    """(bus block, extra top-level blocks): topic `orders` and a listener "pub" streaming it."""
    route = {"name": "orders-stream", "match": {"path": PATH}, "topic": "orders"}
    route.update(route_extra or {})
    listener = {"name": "pub", "listen": "127.0.0.1:0", "routes": [route]}
    if limits:
        listener["limits"] = limits
    bus = {"topics": {"orders": {}}}
    bus.update(bus_extra or {})
    top = {"workers": 2, "listeners": [listener]}
    top.update(extra or {})
    return bus, top


@pytest.fixture
def node(start_bus):
    def start(**kwargs):
        bus, top = push_config(**kwargs)
        return start_bus(bus, extra=top)
    return start


def publish(node, i: int, data=None):
    event = {"specversion": "1.0", "id": f"o-{i}", "source": "/shop", "type": "order.created",
             "datacontenttype": "application/json", "data": data if data is not None else {"n": i}}
    r = node.client.publish_event("orders", event)
    assert r.status == 201, (r.status, r.body)
    return r.json()["sequence"]


class SseClient:
    """An EventSource-like reader over http.client (HTTP/1.1, chunked)."""

    def __init__(self, port: int, last_event_id=None, headers=None, path=PATH, timeout=10.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        h = {"accept": "text/event-stream"}
        if last_event_id is not None:
            h["last-event-id"] = str(last_event_id)
        h.update(headers or {})
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        self.retry = None
        self.comments = 0
        self.buffer = b""

    def readline(self) -> bytes:
        # read1: whatever the chunked body has, not a byte at a time (readline's way).
        while b"\n" not in self.buffer:
            try:
                more = self.resp.read1(65536)
            except http.client.IncompleteRead:
                more = b""  # cut by the server
            if not more:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += more
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def event(self) -> dict | None:
        """The next event as {"id", "event", "data"}; None at the end of the stream."""
        fields = {"data": []}
        while True:
            line = self.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                if fields["data"] or "id" in fields:
                    return {"id": fields.get("id"), "event": fields.get("event", "message"),
                            "data": "\n".join(fields["data"])}
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                fields["data"].append(value)
            elif name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value

    def events(self, n: int) -> list[dict]:
        out = []
        while len(out) < n:
            e = self.event()
            assert e is not None, f"stream ended after {len(out)} of {n} events"
            out.append(e)
        return out

    def close(self):
        self.conn.close()


def test_sse_head_retry_and_live_events_with_curl(node):
    n = node(route_extra={"push": {"retry": "1500ms", "heartbeat": "10s"}})
    port = n.ferry.port()
    curl = subprocess.Popen(["curl", "-sS", "-N", "-D", "-", "--max-time", "6",
                             f"http://127.0.0.1:{port}{PATH}"], stdout=subprocess.PIPE)
    try:
        # The head comes at once, before any event.
        head = b""
        deadline = time.time() + 5
        while b"\r\n\r\n" not in head and time.time() < deadline:
            head += os.read(curl.stdout.fileno(), 4096)
        assert head.startswith(b"HTTP/1.1 200"), head
        lower = head.lower()
        assert b"content-type: text/event-stream" in lower
        assert b"cache-control: no-cache" in lower
        seqs = [publish(n, i, data={"n": i, "text": "line one\nline two"}) for i in range(3)]
        out, _ = curl.communicate(timeout=15)
    finally:
        if curl.poll() is None:
            curl.kill()
    text = (head + out).decode()
    assert "retry: 1500\n" in text
    for i, seq in enumerate(seqs):
        assert f"id: {seq}\n" in text, text
    # Each event's data is the event as a pull renders it, JSON data as JSON.
    blocks = [b for b in text.split("\n\n") if b.startswith("id: ")]
    assert len(blocks) == 3, text
    first = json.loads("\n".join(line[6:] for line in blocks[0].split("\n")
                                 if line.startswith("data: ")))
    assert first["id"] == "o-0" and first["sequence"] == seqs[0]
    assert first["data"] == {"n": 0, "text": "line one\nline two"}
    assert first["event"]["type"] == "order.created"


def test_multiline_json_data_is_split_into_data_lines(node):
    n = node()
    c = SseClient(n.ferry.port())
    try:
        # Pretty-printed JSON is stored as sent: its lines become several data: lines.
        body = '{\n  "a": 1,\n  "b": [1, 2]\n}'
        r = n.client.request("POST", "/v1/topics/orders/events", body,
                             {"content-type": "application/json", "ce-specversion": "1.0",
                              "ce-id": "pretty", "ce-source": "/s", "ce-type": "t"})
        assert r.status == 201, r.body
        [e] = c.events(1)
        assert e["data"].count("\n") >= 3
        assert json.loads(e["data"])["data"] == {"a": 1, "b": [1, 2]}
    finally:
        c.close()


def test_100_publishes_between_disconnect_and_resume_arrive_once_in_order(node):
    n = node(route_extra={"push": {"buffer_bytes": "4MiB"}})
    port = n.ferry.port()
    c = SseClient(port)
    first = publish(n, 0)
    [e] = c.events(1)
    assert int(e["id"]) == first
    c.close()
    seqs = [publish(n, i) for i in range(1, 101)]
    c = SseClient(port, last_event_id=e["id"])
    got = c.events(100)
    c.close()
    assert [int(x["id"]) for x in got] == seqs
    assert [json.loads(x["data"])["id"] for x in got] == [f"o-{i}" for i in range(1, 101)]
    # And on: live events follow the catch-up with no gap or duplicate.
    c = SseClient(port, last_event_id=seqs[49])
    more = [publish(n, i) for i in range(101, 111)]
    got = c.events(60)
    c.close()
    assert [int(x["id"]) for x in got] == seqs[50:] + more


def test_catch_up_larger_than_the_buffer_comes_in_rounds(node):
    n = node(route_extra={"push": {"buffer_bytes": "16KiB"}})
    payload = "x" * 1000
    seqs = [publish(n, i, data={"pad": payload}) for i in range(60)]  # ~70 KiB of events
    c = SseClient(n.ferry.port(), last_event_id=0)
    got = c.events(60)
    c.close()
    assert [int(x["id"]) for x in got] == seqs


def test_resume_before_retention_gets_a_gap_event(node):
    n = node(bus_extra={"segment_bytes": "64KiB"})
    pad = "y" * 2000
    seqs = [publish(n, i, data={"pad": pad}) for i in range(150)]  # ~5 segments
    # A topic without subscriptions has consumed everything: retention deletes the old
    # segments (it runs every few seconds).
    def gap():
        c = SseClient(n.ferry.port(), last_event_id=0)
        try:
            e = c.event()
            return (e, c.event()) if e and e["event"] == "gap" else None
        finally:
            c.close()
    got = wait_until(gap, 30, interval=0.5, what="retention to delete a segment")
    notice, next_event = got
    info = json.loads(notice["data"])
    assert info["after"] == 0 and info["first"] > 1
    assert int(notice["id"]) == info["first"] - 1
    assert int(next_event["id"]) == info["first"]
    assert info["first"] in seqs


def test_slow_client_is_cut_and_counted_while_a_normal_client_gets_everything(node):
    n = node(route_extra={"push": {"buffer_bytes": "256KiB"}})
    port = n.ferry.port()
    # The slow one: a small receive buffer, and it never reads past the head.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(f"GET {PATH} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    fast = SseClient(port, timeout=30)
    wait_until(lambda: n.ferry.metric("ferry_push_connections_active",
                                      listener="pub", route="orders-stream") == 2,
               5, what="both streams open")
    pad = "z" * 8000
    count = 600  # ~10 MB (the data is in each event twice): far past what the kernel's socket
    # buffers and 256 KiB hold for the slow one
    got = []

    def read_all():
        while len(got) < count:
            e = fast.event()
            if e is None:
                return
            got.append(e)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    seqs = []
    for i in range(count):
        # The publisher keeps pace with the normal client (a few events ahead), never with the
        # slow one, which Ferry must cut rather than let it hold anything up.
        wait_until(lambda: len(got) >= i - 8 or not reader.is_alive(), 20, interval=0.002,
                   what="the normal client to keep up")
        seqs.append(publish(n, i, data={"pad": pad}))
    reader.join(60)
    assert [int(x["id"]) for x in got] == seqs
    wait_until(lambda: n.ferry.metric("ferry_push_slow_disconnects_total",
                                      listener="pub", route="orders-stream") == 1,
               10, what="the slow client to be cut")
    # The slow client's connection was closed by Ferry: reading drains to EOF.
    slow.settimeout(10)
    total = 0
    while True:
        chunk = slow.recv(65536)
        if not chunk:
            break
        total += len(chunk)
    assert total < count * 16000
    slow.close()
    fast.close()
    assert n.ferry.metric("ferry_push_events_total", listener="pub",
                          route="orders-stream") >= count


def test_slow_http2_stream_is_reset_and_counted(node):
    import h2_frames as h2
    n = node(route_extra={"push": {"buffer_bytes": "64KiB"}})
    port = n.ferry.port()
    fast = SseClient(port, timeout=20)
    slow = h2.Conn(port, timeout=10)
    # A window of 0: the server may send no DATA on the stream until the client opens it.
    slow.start(settings=struct.pack(">HI", 0x4, 0))
    slow.send(h2.frame(h2.HEADERS, h2.END_HEADERS | h2.END_STREAM, 1,
                       h2.hpack(h2.request_fields(PATH))))
    wait_until(lambda: n.ferry.metric("ferry_push_connections_active", listener="pub",
                                      route="orders-stream") == 2, 5, what="both streams open")
    pad = "w" * 4000
    seqs = [publish(n, i, data={"pad": pad}) for i in range(40)]  # ~330 KB
    assert [int(e["id"]) for e in fast.events(40)] == seqs
    frames = slow.frames_until(lambda f: f[0] == h2.RST_STREAM and f[2] == 1, timeout=10)
    assert any(f[0] == h2.RST_STREAM and f[2] == 1 for f in frames), frames
    wait_until(lambda: n.ferry.metric("ferry_push_slow_disconnects_total", listener="pub",
                                      route="orders-stream") == 1, 5, what="the cut counted")
    slow.close()
    fast.close()


def test_request_timeout_does_not_cut_a_stream_max_stream_duration_does(node):
    n = node(route_extra={"max_stream_duration": "3s", "push": {"heartbeat": "300ms"}},
             limits={"request_timeout": "1s"})
    c = SseClient(n.ferry.port(), timeout=10)
    start = time.time()
    e = c.event()  # heartbeats only, then the end
    elapsed = time.time() - start
    assert e is None
    assert 2.5 <= elapsed < 8, elapsed
    assert c.comments >= 3  # heartbeats kept coming past request_timeout
    c.close()


def test_sse_over_http2_prior_knowledge(node):
    n = node()
    port = n.ferry.port()
    curl = subprocess.Popen(["curl", "-sS", "-N", "--http2-prior-knowledge", "-i", "--max-time",
                             "4", f"http://127.0.0.1:{port}{PATH}"], stdout=subprocess.PIPE)
    try:
        time.sleep(0.7)
        seqs = [publish(n, i) for i in range(2)]
        out, _ = curl.communicate(timeout=10)
    finally:
        if curl.poll() is None:
            curl.kill()
    text = out.decode()
    assert text.startswith("HTTP/2 200"), text
    assert "content-type: text/event-stream" in text
    for seq in seqs:
        assert f"id: {seq}\n" in text


def test_websocket_gets_one_text_frame_per_event_and_close_1001(node):
    n = node(route_extra={"max_stream_duration": "2s"})
    port = n.ferry.port()

    async def talk():
        async with websockets.legacy.client.connect(f"ws://127.0.0.1:{port}{PATH}",
                                                    ping_interval=None, compression=None) as ws:
            await asyncio.sleep(0.3)
            seqs = [publish(n, i) for i in range(3)]
            frames = [json.loads(await ws.recv()) for _ in range(3)]
            assert [f["id"] for f in frames] == seqs
            assert all(f["type"] == "event" for f in frames)
            assert frames[0]["data"]["data"] == {"n": 0}
            pong = await ws.ping(b"hi")
            await asyncio.wait_for(pong, 3)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(asyncio.wait_for(talk(), 20)) == 1001


def test_drain_ends_streams_at_once_websocket_with_1001(node):
    n = node(extra={"drain_time": "10s"})
    port = n.ferry.port()
    sse = SseClient(port, timeout=15)

    async def talk():
        async with websockets.legacy.client.connect(f"ws://127.0.0.1:{port}{PATH}",
                                                    ping_interval=None, compression=None) as ws:
            await asyncio.sleep(0.3)
            start = time.time()
            n.ferry.process.signal(signal.SIGTERM)
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 8)
            return closed.value.rcvd.code if closed.value.rcvd else None, time.time() - start

    code, took = asyncio.run(asyncio.wait_for(talk(), 20))
    assert code == 1001
    assert took < 5  # not drain_time: a stream would never end on its own
    assert sse.event() is None  # the SSE stream ended too (its client reconnects elsewhere)
    sse.close()


def test_websocket_resumes_with_last_event_id_query(node):
    n = node()
    seqs = [publish(n, i) for i in range(5)]

    async def talk():
        async with websockets.legacy.client.connect(
                f"ws://127.0.0.1:{n.ferry.port()}{PATH}?last_event_id={seqs[1]}",
                ping_interval=None, compression=None) as ws:
            return [json.loads(await ws.recv())["id"] for _ in range(3)]

    assert asyncio.run(asyncio.wait_for(talk(), 10)) == seqs[2:]


@pytest.fixture
def jwks_server():
    server = JwksServer()
    yield server
    server.close()


def test_cookie_auth_with_origin_allow_list_and_stream_ends_at_exp(node, jwks_server):
    key = Key("k1")
    jwks_server.body = jwks(key)
    provider = {"issuer": ISSUER, "audiences": ["api"], "jwks": jwks_server.url,
                "cookie": "session"}
    n = node(route_extra={"auth": {"jwt": "idp"},
                          "cors": {"allow_origins": ["https://shop.example"],
                                   "allow_credentials": True}},
             extra={"auth": {"jwt": {"idp": provider}}})
    port = n.ferry.port()
    # No cookie: 401, never a stream.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", PATH)
    assert c.getresponse().status == 401
    c.close()
    # A token in the query string is not looked at.
    token = key.token(exp=int(time.time()) + 3)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", f"{PATH}?access_token={token}")
    assert c.getresponse().status == 401
    c.close()
    # The cookie from an allowed origin: the stream opens with CORS headers, and ends at exp.
    s = SseClient(port, headers={"cookie": f"session={token}",
                                 "origin": "https://shop.example"}, timeout=15)
    assert s.resp.status == 200
    assert s.resp.getheader("access-control-allow-origin") == "https://shop.example"
    assert s.resp.getheader("access-control-allow-credentials") == "true"
    start = time.time()
    while s.event() is not None:
        pass
    assert time.time() - start < 8
    s.close()


def test_websocket_with_a_cookie_token_closes_1008_at_exp(node, jwks_server):
    key = Key("k1")
    jwks_server.body = jwks(key)
    provider = {"issuer": ISSUER, "audiences": ["api"], "jwks": jwks_server.url,
                "cookie": "session"}
    n = node(route_extra={"auth": {"jwt": "idp"}}, extra={"auth": {"jwt": {"idp": provider}}})
    token = key.token(exp=int(time.time()) + 2)

    async def talk():
        async with websockets.legacy.client.connect(
                f"ws://127.0.0.1:{n.ferry.port()}{PATH}", ping_interval=None, compression=None,
                extra_headers={"cookie": f"session={token}"}) as ws:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            return closed.value.rcvd.code if closed.value.rcvd else None

    start = time.time()
    assert asyncio.run(asyncio.wait_for(talk(), 20)) == 1008
    assert time.time() - start < 8


FANOUT_CLIENT = r'''
import socket, sys
port, path, conns, want = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
socks = []
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.0\r\nhost: x\r\n\r\n".encode())  # HTTP/1.0: no chunks
    socks.append(s)
print("open", flush=True)
for s in socks:
    s.settimeout(20)
    got, buf = [], b""
    while len(got) < want:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        got = [l for l in buf.split(b"\n") if l.startswith(b"id: ")]
    print(b",".join(l[4:] for l in got).decode(), flush=True)
'''


def test_fan_out_to_clients_in_several_processes(node, tmp_path):
    n = node()
    port = n.ferry.port()
    script = tmp_path / "fanout.py"
    script.write_text(FANOUT_CLIENT)
    procs = [subprocess.Popen([sys.executable, str(script), str(port), PATH, "50", "20"],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "open"
        wait_until(lambda: n.ferry.metric("ferry_push_connections_active", listener="pub",
                                          route="orders-stream") == 200,
                   10, what="200 streams open")
        seqs = [str(publish(n, i)) for i in range(20)]
        outputs = [p.communicate(timeout=60)[0].split() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    lines = [line for out in outputs for line in out]
    assert len(lines) == 200
    assert all(line.split(",") == seqs for line in lines)
    assert n.ferry.metric("ferry_push_events_total", listener="pub",
                          route="orders-stream") >= 200 * 20


def test_topic_route_config_errors_are_reported(start_ferry, tmp_path):
    from conftest import FERRY_BIN
    config = tmp_path / "bad.yaml"
    config.write_text("listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    routes:\n"
                      "      - topic: nope\nbus:\n  data_dir: " + str(tmp_path / "d") +
                      "\n  topics:\n    orders: {}\n")
    out = subprocess.run([str(FERRY_BIN), "validate", "-c", str(config)], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode != 0
    assert "unknown topic 'nope' (bus topics: orders)" in out.stdout + out.stderr


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (scripts/install-deps)")
def test_headless_chromium_eventsource_page_shows_events(start_bus, processes, tmp_path):
    # The page comes from a tiny server on its own port: its EventSource is cross-origin, with
    # credentials, so the route's CORS allow-list must name the page's origin.
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(ROOT / "examples" / "web" / "orders.html", site / "orders.html")
    page_port = free_port()
    processes.start([sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1",
                     "--directory", str(site)], tmp_path / "site.log")
    origin = f"http://127.0.0.1:{page_port}"
    bus, top = push_config(route_extra={"cors": {"allow_origins": [origin],
                                                 "allow_credentials": True}})
    n = start_bus(bus, extra=top)
    port = n.ferry.port()
    wait_until(lambda: http_ok(f"{origin}/orders.html"), 10, what="the page server")
    seqs = [publish(n, i) for i in range(3)]
    profile = tmp_path / "chromium-profile"
    # The page opens ?stream=URL&from=0: the stream resumes from 0, so the three are there.
    # close_after: with the stream closed the page has no request pending, so headless
    # Chromium's virtual time runs out and it dumps the DOM.
    url = f"{origin}/orders.html?stream=http://127.0.0.1:{port}{PATH}&from=0&close_after=3"
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=8000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90)
    dom = out.stdout
    for seq in seqs:
        assert f'data-id="{seq}"' in dom, (dom[-2000:], out.stderr[-2000:])
    assert n.ferry.metric("ferry_push_connections_total", listener="pub",
                          route="orders-stream") >= 1


def http_ok(url: str) -> bool:
    try:
        import urllib.request
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
