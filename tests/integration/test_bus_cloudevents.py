"""What real CloudEvents clients found (issue 11, the bus half): Expect: 100-continue, the
producer's `time`, default source and type for plain bodies, byte-exact data, refusal of invalid
events, 405/400 statuses, and the clean `event` of a pulled message. The official JavaScript SDK
(npm `cloudevents`, see ce_support.py) parses every event Ferry delivers, pull and push, in every
publish mode."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import threading
import time

import pytest

from bus_support import start_bus  # noqa: F401 - fixture
from ce_support import binary_problems, js_sdk, structured_problems  # noqa: F401 - fixture
from conftest import FERRY_BIN, py_upstream, read_http_message, wait_until  # noqa: F401


@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (the contract suite, docs/bus.md "Backends")."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")

EXACT_JSON = b'{"big":12345678901234567890123,"tiny":1e-400, "s":"caf\\u00e9"}'
PRODUCER_TIME = "2020-01-02T03:04:05.678+02:00"


def raw_connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    return s


def read_until(s: socket.socket, marker: bytes, limit: float) -> bytes:
    s.settimeout(limit)
    buf = b""
    while marker not in buf:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf


# --- 9. Expect: 100-continue ---------------------------------------------------------------------


def test_expect_continue_is_answered_100_before_the_body(start_bus):
    bus = start_bus({"queues": {"q": {}}})
    s = raw_connect(bus.address)
    s.sendall(b"POST /v1/queues/q/messages HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\n"
              b"expect: 100-continue\r\ncontent-length: 5\r\n\r\n")
    interim = read_until(s, b"\r\n\r\n", 0.5)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
    s.sendall(b"hello")
    final = read_until(s, b"}\n", 5)
    assert final.startswith(b"HTTP/1.1 201 "), final
    s.close()
    assert bus.client.messages("queues/q")[0]["data"] == "hello"


def test_expect_continue_with_an_oversized_body_gets_413_at_once(start_bus):
    bus = start_bus({"queues": {"q": {}}})
    s = raw_connect(bus.address)
    s.sendall(b"POST /v1/queues/q/messages HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
              b"content-length: 73400320\r\n\r\n")
    answer = read_until(s, b"}\n", 0.5)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"body_too_large" in answer
    s.close()


@pytest.mark.parametrize("head,status", [
    (b"POST /v1/queues/nope/messages HTTP/1.1", b"404"),
    (b"PUT /v1/queues/q/messages HTTP/1.1", b"405"),
    (b"POST /v1/queues/b@d/messages HTTP/1.1", b"400"),
])
def test_expect_continue_that_the_body_cannot_save_gets_its_final_status_at_once(
        start_bus, head, status):
    bus = start_bus({"queues": {"q": {}}})
    s = raw_connect(bus.address)
    s.sendall(head + b"\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n")
    answer = read_until(s, b"}\n", 0.5)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer
    s.close()


def test_oversized_content_length_is_refused_before_the_body_is_read(start_bus):
    bus = start_bus({"queues": {"q": {}}})
    s = raw_connect(bus.address)
    s.sendall(b"POST /v1/queues/q/messages HTTP/1.1\r\nhost: x\r\n"
              b"content-length: 73400320\r\n\r\n" + b"x" * 65536)
    answer = read_until(s, b"}\n", 1.0)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"connection: close" in answer.lower()
    s.close()


def test_curl_publishing_a_large_body_does_not_wait_for_its_expect_timeout(start_bus, tmp_path):
    # curl sends Expect: 100-continue with a body over 1 MB and waits 1 s for an answer to it.
    bus = start_bus({"queues": {"q": {"max_message_bytes": "4MiB"}}})
    body = tmp_path / "body.bin"
    body.write_bytes(b"x" * (1536 * 1024))
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-v",
         "-H", "content-type: application/octet-stream", "--data-binary", f"@{body}",
         f"http://{bus.address}/v1/queues/q/messages"], capture_output=True, timeout=30)
    status, seconds = out.stdout.decode().split()
    assert status == "201", out
    assert b"expect: 100-continue" in out.stderr.lower(), out.stderr  # curl did send it
    assert float(seconds) < 0.8, out


# --- 10. the producer's time ---------------------------------------------------------------------


def test_the_producers_time_is_kept_in_every_mode(start_bus):
    bus = start_bus({"queues": {"q": {}}})
    c = bus.client
    assert c.publish("q", "b", {"ce-specversion": "1.0", "ce-id": "b1", "ce-source": "/s",
                                "ce-type": "t", "ce-time": PRODUCER_TIME}).status == 201
    assert c.request("POST", "/v1/queues/q/messages", json.dumps(
        {"specversion": "1.0", "id": "s1", "source": "/s", "type": "t", "time": PRODUCER_TIME}),
        {"content-type": "application/cloudevents+json"}).status == 201
    assert c.publish("q", "plain").status == 201
    got = {m["id"]: m for m in c.messages("queues/q", max=10)}
    assert got["b1"]["time"] == PRODUCER_TIME and got["b1"]["event"]["time"] == PRODUCER_TIME
    assert got["s1"]["time"] == PRODUCER_TIME and got["s1"]["event"]["time"] == PRODUCER_TIME
    plain = [m for k, m in got.items() if k not in ("b1", "s1")][0]
    # No time given: the bus fills it in, and its own storage time is a field of its own.
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", plain["event"]["time"])
    for m in got.values():
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", m["stored_at"])
        assert "stored_at" not in m["event"]


# --- 11. plain bodies: source and type -----------------------------------------------------------


def test_a_plain_body_gets_the_default_source_and_type(start_bus):
    bus = start_bus({"queues": {"q": {}}, "topics": {"t": {"subscriptions": {"s": {}}}}})
    c = bus.client
    assert c.publish("q", "a").status == 201
    assert c.request("POST", "/v1/topics/t/events", b"c",
                     {"content-type": "text/plain"}).status == 201
    q = c.messages("queues/q")[0]
    assert (q["source"], q["type"]) == ("/v1/queues/q", "ferry.message")
    t = c.messages("topics/t/subscriptions/s")[0]
    assert (t["source"], t["type"]) == ("/v1/topics/t", "ferry.message")
    for m in (q, t):
        assert structured_problems({k: v for k, v in m.items() if k in (
            "specversion", "id", "source", "type", "time", "datacontenttype", "data")}) == []


def test_the_default_source_and_type_come_from_the_config(start_bus):
    bus = start_bus({"queues": {"custom": {"default_source": "https://shop.example/x",
                                           "default_type": "com.example.thing"}},
                     "topics": {"t": {"default_source": "urn:t", "default_type": "t.thing",
                                      "subscriptions": {"s": {}}}}})
    c = bus.client
    assert c.publish("custom", "b").status == 201
    assert c.request("POST", "/v1/topics/t/events", b"c",
                     {"content-type": "text/plain"}).status == 201
    custom = c.messages("queues/custom")[0]["event"]
    assert (custom["source"], custom["type"]) == ("https://shop.example/x", "com.example.thing")
    t = c.messages("topics/t/subscriptions/s")[0]["event"]
    assert (t["source"], t["type"]) == ("urn:t", "t.thing")


# --- 12. byte-exact data -------------------------------------------------------------------------


def test_json_data_is_stored_and_delivered_byte_exact(start_bus):
    bus = start_bus({"queues": {"q": {}}})
    c = bus.client
    structured = (b'{"specversion":"1.0","id":"s","source":"/s","type":"t",'
                  b'"data":' + EXACT_JSON + b'}')
    assert c.request("POST", "/v1/queues/q/messages", structured,
                     {"content-type": "application/cloudevents+json"}).status == 201
    assert c.request("POST", "/v1/queues/q/messages", EXACT_JSON,
                     {"content-type": "application/json", "ce-specversion": "1.0",
                      "ce-id": "b", "ce-source": "/s", "ce-type": "t"}).status == 201
    assert c.request("POST", "/v1/queues/q/messages", EXACT_JSON,
                     {"content-type": "application/json", "idempotency-key": "p"}).status == 201
    r = c.receive("queues/q", max=10)
    assert r.status == 200
    # Both the message's `data` and its event's: six copies of the exact bytes.
    assert r.body.count(b'"data":' + EXACT_JSON) == 6, r.body
    assert len(r.json()["messages"]) == 3


# --- 13. invalid events --------------------------------------------------------------------------

STRUCTURED = {"content-type": "application/cloudevents+json"}
BINARY = {"ce-specversion": "1.0", "ce-id": "i", "ce-source": "/s", "ce-type": "t"}


@pytest.mark.parametrize("headers,body,why", [
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t","data":1,'
                 '"data_base64":"AA=="}', "both data and data_base64"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t","MyExt":"x"}', "MyExt"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t","my-ext":"x"}', "my-ext"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t",'
                 '"abcdefghijklmnopqrstu":"x"}', "abcdefghijklmnopqrstu"),
    ({**BINARY, "ce-my-ext": "x"}, "d", "my-ext"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t","time":"yesterday"}',
     "RFC 3339"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t",'
                 '"time":"2020-13-01T00:00:00Z"}', "RFC 3339"),
    ({**BINARY, "ce-time": "2020-01-01 00:00:00"}, "d", "RFC 3339"),
    ({"ce-id": "i", "ce-source": "/s", "ce-type": "t"}, "d", "ce-specversion"),
    ({"content-type": "application/json"}, '{"a":', "not valid JSON"),
    ({**BINARY, "content-type": "application/json"}, "nope", "not valid JSON"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t","id":"j"}', "twice"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"not a uri","type":"t"}',
     "URI-reference"),
    ({**BINARY, "ce-source": "a b"}, "d", "URI-reference"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t",'
                 '"dataschema":"schema.json"}', "absolute URI"),
    # A CR LF would become a header of its own when the event is pushed in binary mode.
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t",'
                 '"subject":"a\\r\\nx-evil: 1"}', "control character"),
    (STRUCTURED, '{"specversion":"1.0","id":"i","source":"/s","type":"t","ext":"a\\u0085"}',
     "control character"),
])
def test_an_invalid_event_is_refused_with_400(start_bus, headers, body, why):
    bus = start_bus({"queues": {"q": {}}})
    r = bus.client.request("POST", "/v1/queues/q/messages", body, dict(headers))
    assert r.status == 400, r
    assert why in r.json()["error"]["message"], r
    assert bus.client.messages("queues/q") == []


# --- 14. status codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/v1/queues/q/messages", "GET, POST"),
    ("PUT", "/v1/queues/q", "GET"),
    ("GET", "/v1/queues/q/ack", "POST"),
    ("GET", "/v1/topics/t/events", "POST"),
    ("POST", "/v1/topics/t/subscriptions/s", "GET, PUT, DELETE"),
    ("POST", "/v1/queues", "GET"),
])
def test_a_method_the_path_does_not_support_is_405_with_allow(start_bus, method, path, allow):
    bus = start_bus({"queues": {"q": {}}, "topics": {"t": {"subscriptions": {"s": {}}}}})
    r = bus.client.request(method, path, b"{}")
    assert r.status == 405, r
    assert r.headers["allow"] == allow
    assert r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/queues/bad%20name/messages"),
    ("GET", "/v1/queues/" + "a" * 129),
    ("GET", "/v1/topics/t/subscriptions/s*/messages"),
    ("POST", "/v1/topics/t$/events"),
])
def test_an_invalid_name_is_400(start_bus, method, path):
    bus = start_bus({"queues": {"q": {}}, "topics": {"t": {"subscriptions": {"s": {}}}}})
    r = bus.client.request(method, path, b"x", {"content-type": "text/plain"})
    assert r.status == 400, r
    assert "name" in r.json()["error"]["message"]


# --- 15 and the SDK: every delivered event parses ------------------------------------------------


def publish_every_mode(c, path: str, tag: str):
    """Binary, structured (JSON, text and base64 data), batch and plain publishes to path."""
    rs = [
        c.request("POST", path, EXACT_JSON, {"content-type": "application/json",
                                             "ce-specversion": "1.0", "ce-id": f"{tag}-bin",
                                             "ce-source": "/shop", "ce-type": "order.created",
                                             "ce-time": PRODUCER_TIME, "ce-myext": "v"}),
        c.request("POST", path, b'{"specversion":"1.0","id":"' + tag.encode() + b'-st",'
                  b'"source":"urn:shop","type":"t","data":' + EXACT_JSON + b'}', STRUCTURED),
        c.request("POST", path, json.dumps({"specversion": "1.0", "id": f"{tag}-txt",
                                            "source": "/s", "type": "t",
                                            "datacontenttype": "text/plain", "data": "hi"}),
                  STRUCTURED),
        c.request("POST", path, json.dumps({"specversion": "1.0", "id": f"{tag}-b64",
                                            "source": "/s", "type": "t",
                                            "data_base64": base64.b64encode(b"\0\xff").decode()}),
                  STRUCTURED),
        c.request("POST", path, json.dumps([{"specversion": "1.0", "id": f"{tag}-batch",
                                             "source": "/s", "type": "t", "data": [1, 2]}]),
                  {"content-type": "application/cloudevents-batch+json"}),
        c.request("POST", path, EXACT_JSON, {"content-type": "application/json",
                                             "idempotency-key": f"{tag}-plain"}),
        c.request("POST", path, b"plain text", {"content-type": "text/plain",
                                                "idempotency-key": f"{tag}-ptxt"}),
        c.request("POST", path, b"\0\x01\x02", {"content-type": "application/octet-stream",
                                                "idempotency-key": f"{tag}-pbin"}),
    ]
    for r in rs:
        assert r.status == 201, r
    return len(rs)


def test_every_pulled_event_passes_the_sdk(start_bus, js_sdk):
    bus = start_bus({"queues": {"q": {}}, "topics": {"t": {"subscriptions": {"s": {}}}}})
    c = bus.client
    n = publish_every_mode(c, "/v1/queues/q/messages", "q")
    publish_every_mode(c, "/v1/topics/t/events", "t")
    pulled = []
    for inbox in ("queues/q", "topics/t/subscriptions/s"):
        r = c.receive(inbox, max=100)
        assert r.status == 200
        pulled.extend(r.json()["messages"])
        # The event's data is the publisher's bytes, in every mode that sent EXACT_JSON.
        assert r.body.count(b'"data":' + EXACT_JSON) == 2 * 3, r.body
    assert len(pulled) == 2 * n
    for m in pulled:
        assert structured_problems(m["event"]) == [], m
        # Ferry's own fields stay beside the event, not in it.
        for field in ("receipt", "attempt", "sequence", "lease_expires", "stored_at"):
            assert field in m and field not in m["event"]
    results = js_sdk.parse([{"headers": {"content-type": "application/cloudevents+json"},
                             "body": json.dumps(m["event"])} for m in pulled])
    for m, res in zip(pulled, results):
        assert res["ok"], (m, res)
        assert res["event"]["id"] == m["id"]
    by_id = {m["id"]: res["event"] for m, res in zip(pulled, results)}
    assert by_id["q-bin"]["time"] == "2020-01-02T01:04:05.678Z"  # the SDK writes it in UTC
    assert by_id["q-bin"]["myext"] == "v"
    assert by_id["q-txt"]["data"] == "hi"


def test_every_pushed_event_passes_the_sdk(start_bus, py_upstream, js_sdk):
    pushes: list[bytes] = []
    lock = threading.Lock()

    def handler(conn, index, up):
        buf = bytearray()
        while (msg := read_http_message(conn, buf)) is not None:
            with lock:
                pushes.append(msg)
            conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    up = py_upstream(handler)
    push = {"service": "sub", "path": "/hook", "timeout": "2s"}
    bus = start_bus({"queues": {"q": {"push": push}},
                     "topics": {"t": {"subscriptions": {"s": {"push": push}}}}},
                    {"sub": {"endpoints": [up.address]}})
    n = publish_every_mode(bus.client, "/v1/queues/q/messages", "q")
    publish_every_mode(bus.client, "/v1/topics/t/events", "t")
    assert wait_until(lambda: len(pushes) >= 2 * n, timeout=15), len(pushes)
    messages = []
    for raw in pushes:
        head, _, body = raw.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n")[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        assert binary_problems(headers) == [], headers
        if headers["ce-id"].endswith(("-bin", "-st", "-plain")):
            assert body == EXACT_JSON, (headers, body)
        messages.append({"headers": headers, "body": body.decode("latin-1")})
    results = js_sdk.parse(messages)
    for m, res in zip(messages, results):
        assert res["ok"], (m, res)
    times = {m["headers"]["ce-id"]: m["headers"]["ce-time"] for m in messages}
    assert times["q-bin"] == PRODUCER_TIME and times["t-bin"] == PRODUCER_TIME


def test_ferrys_fields_in_a_pulled_message_are_not_event_attributes(start_bus, js_sdk):
    bus = start_bus({"queues": {"q": {}}})
    assert bus.client.publish("q", "x", BINARY).status == 201
    m = bus.client.messages("queues/q")[0]
    # The message as a whole is not a CloudEvent (lease_expires is no legal attribute name) ...
    legacy, clean = js_sdk.parse([
        {"headers": {"content-type": "application/cloudevents+json"}, "body": json.dumps(m)},
        {"headers": {"content-type": "application/cloudevents+json"},
         "body": json.dumps(m["event"])}])
    assert not legacy["ok"]
    # ... its `event` is, with exactly the event's attributes.
    assert clean["ok"], clean
    assert set(m["event"]) == {"specversion", "id", "source", "type", "time",
                               "datacontenttype", "data"}


def test_dead_letters_carry_the_event_too(start_bus):
    bus = start_bus({"queues": {"q": {"max_deliveries": 1}}})
    c = bus.client
    assert c.request("POST", "/v1/queues/q/messages", EXACT_JSON,
                     {"content-type": "application/json", "idempotency-key": "d"}).status == 201
    m = c.messages("queues/q")[0]
    assert c.nack("queues/q", [m["receipt"]]).status == 200
    r = c.request("GET", "/v1/queues/q/dead-letters")
    assert r.status == 200 and r.body.count(b'"data":' + EXACT_JSON) == 2, r.body
    assert structured_problems(r.json()["dead_letters"][0]["event"]) == []


def test_format_event_gives_ferrys_fields_and_the_event_alone(start_bus, js_sdk):
    bus = start_bus({"queues": {"q": {"max_deliveries": 1}}})
    c = bus.client
    assert c.request("POST", "/v1/queues/q/messages", EXACT_JSON,
                     {"content-type": "application/json", "idempotency-key": "e"}).status == 201
    r = c.request("GET", "/v1/queues/q/messages?format=event")
    assert r.status == 200 and r.body.count(b'"data":' + EXACT_JSON) == 1, r.body
    m = r.json()["messages"][0]
    assert set(m) == {"id", "receipt", "attempt", "sequence", "lease_expires", "stored_at",
                      "event"}
    [parsed] = js_sdk.parse([{"headers": {"content-type": "application/cloudevents+json"},
                              "body": json.dumps(m["event"])}])
    assert parsed["ok"], parsed
    assert c.nack("queues/q", [m["receipt"]]).status == 200
    r = c.request("GET", "/v1/queues/q/dead-letters?format=event")
    assert r.status == 200 and r.body.count(b'"data":' + EXACT_JSON) == 1, r.body
    assert set(r.json()["dead_letters"][0]) == {"id", "sequence", "stored_at", "attempts",
                                                "reason", "dead_lettered_at", "event"}
    assert c.request("GET", "/v1/queues/q/messages?format=xml").status == 400


def test_the_readmes_cli_publish_is_consumed_as_a_valid_cloudevent(start_bus, js_sdk):
    # README.md: ferry publish --queue payments --id order-1001 --data '{"amount": 25}'
    bus = start_bus({"queues": {"payments": {}}})
    url = f"http://{bus.address}"
    run = [str(FERRY_BIN)]
    published = subprocess.run(run + ["publish", "--queue", "payments", "--id", "order-1001",
                                      "--data", '{"amount": 25}', "--url", url],
                               capture_output=True, text=True, timeout=30)
    assert published.returncode == 0, published
    consumed = subprocess.run(run + ["consume", "--queue", "payments", "--wait", "5s", "--ack",
                                     "--url", url], capture_output=True, text=True, timeout=30)
    assert consumed.returncode == 0, consumed
    [message] = [json.loads(line) for line in consumed.stdout.splitlines() if line.strip()]
    assert structured_problems(message["event"]) == [], message
    [parsed] = js_sdk.parse([{"headers": {"content-type": "application/cloudevents+json"},
                              "body": json.dumps(message["event"])}])
    assert parsed["ok"], parsed
    # The CLI sends no content-type unless told (--content-type): the data is text.
    assert parsed["event"]["id"] == "order-1001" and parsed["event"]["data"] == '{"amount": 25}'
    assert parsed["event"]["source"] == "/v1/queues/payments"
