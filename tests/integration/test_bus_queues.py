"""Bus queues over the HTTP API: publish, long-poll pull, ack, nack (with and without delay),
lease expiry, dead letters and replay, receipts (stale 409, malformed 400), delayed delivery,
stats and metrics. Real binary, real sockets; timing bounds are coarse (5x margins)."""

import datetime
import json
import time

import pytest

from bus_support import (elapsed_since, fast_queue, nats_difference, start_bus,  # noqa: F401
                         stored_ever)
from conftest import assert_error_json, wait_until

Q = "queues/work"



@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (the contract suite, docs/bus.md "Backends")."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")


@pytest.fixture
def bus(start_bus):
    return start_bus({"queues": {"work": fast_queue()}})


def test_publish_answers_201_with_id_and_duplicate_false(bus):
    r = bus.client.publish("work", b"hello", {"idempotency-key": "order-1"})
    assert r.status == 201, r
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["id"] == "order-1"
    assert doc["duplicate"] is False
    assert doc["sequence"] == 1


def test_publish_answer_escapes_the_id_as_json(bus):
    """The single-publish answer is written by hand on the hot path: ids with quotes,
    backslashes and non-ASCII still come back as valid JSON, unchanged."""
    for key in ['say "hi"', "back\\slash", "caf\u00e9-\u2713", "tab\there"]:
        r = bus.client.publish("work", b"x", {"idempotency-key": key.encode().decode("latin-1")})
        assert r.status == 201, r
        doc = r.json()
        assert doc["id"] == key and doc["duplicate"] is False, doc


def test_publish_without_id_gets_a_generated_one(bus):
    a = bus.client.publish("work", b"a").json()["id"]
    b = bus.client.publish("work", b"b").json()["id"]
    assert a and b and a != b


def test_pull_returns_the_message_with_receipt_and_attempt(bus):
    bus.client.publish("work", b"payload-1", {"idempotency-key": "m1"})
    r = bus.client.receive(Q, max=10, wait="1s")
    assert r.status == 200, r
    [m] = r.json()["messages"]
    assert m["id"] == "m1"
    assert m["data"] == "payload-1"
    assert m["attempt"] == 1
    assert m["receipt"]
    assert m["specversion"] == "1.0"
    assert m["sequence"] == 1


def test_pull_respects_max(bus):
    for i in range(5):
        assert bus.client.publish("work", f"m{i}").status == 201
    first = bus.client.messages(Q, max=3)
    assert len(first) == 3
    rest = bus.client.messages(Q, max=10)
    assert len(rest) == 2
    assert [m["data"] for m in first + rest] == [f"m{i}" for i in range(5)]


def test_empty_pull_waits_then_answers_204(bus):
    start = time.monotonic()
    r = bus.client.receive(Q, max=1, wait="1s")
    took = elapsed_since(start)
    assert r.status == 204, r
    assert r.body == b""
    assert 0.9 <= took < 5.0, took


def test_long_poll_is_answered_as_soon_as_a_message_arrives(bus):
    import threading

    result = {}

    def poll():
        start = time.monotonic()
        result["reply"] = bus.client.receive(Q, max=1, wait="20s")
        result["took"] = elapsed_since(start)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    assert bus.client.publish("work", b"wake").status == 201
    t.join(25)
    assert result["reply"].status == 200, result["reply"]
    assert result["reply"].json()["messages"][0]["data"] == "wake"
    assert result["took"] < 10, result["took"]


def test_abandoned_long_poll_does_not_take_the_message(bus, bus_backend):
    # A consumer starts a long-poll and goes away before anything arrives. The message published
    # next must not be leased to that gone client (it would sit in flight until the lease ran
    # out): the next consumer gets it at once.
    nats_difference(bus_backend, "Backends (abandoned long polls)")
    import socket

    host, port = bus.client.address.rsplit(":", 1)
    gone = socket.create_connection((host, int(port)), timeout=5)
    gone.sendall(f"GET /v1/{Q}/messages?wait=20s HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(0.5)
    gone.close()
    time.sleep(0.3)
    assert bus.client.publish("work", b"for-the-living").status == 201
    messages = bus.client.messages(Q, wait="3s")
    assert [m["data"] for m in messages] == ["for-the-living"]
    assert messages[0]["attempt"] == 1
    assert bus.client.stats("queues/work")["in_flight"] == 1  # only the live consumer's lease


def _raw_answers(sock, count: int) -> list[bytes]:
    """Reads `count` HTTP answers (each with a Content-Length body) off a raw socket."""
    buf, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "the bus closed the connection"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            rest += sock.recv(65536)
        answers.append(head.split(b"\r\n")[0] + b" " + rest[:length])
        buf = rest[length:]
    return answers


def test_publish_bytes_as_they_come_off_the_wire(bus):
    """Requests read from the socket in every shape: a head and a body cut across writes, two
    publishes pipelined in one write, and a body bigger than one read buffer. Each is stored
    once with its exact bytes, and the connection stays usable."""
    import socket

    host, port = bus.client.address.rsplit(":", 1)
    big = b"".join(b"line %06d\n" % i for i in range(9000))  # 108 KiB: several reads

    def request(key: str, body: bytes) -> bytes:
        return (f"POST /v1/{Q}/messages HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    with socket.create_connection((host, int(port)), timeout=10) as s:
        cut = request("cut", b"0123456789" * 10)
        for piece in (cut[:7], cut[7:60], cut[60:len(cut) - 30], cut[len(cut) - 30:]):
            s.sendall(piece)
            time.sleep(0.05)
        s.sendall(request("pipelined-1", b"first") + request("pipelined-2", b"second"))
        s.sendall(request("big", big))
        answers = _raw_answers(s, 4)
    assert all(a.startswith(b"HTTP/1.1 201") for a in answers), answers
    assert [json.loads(a.split(b" ", 3)[3])["id"] for a in answers] == \
        ["cut", "pipelined-1", "pipelined-2", "big"]
    r = bus.client.receive(Q, max=10, wait="1s")
    assert r.status == 200, r
    got = {m["id"]: m["data"] for m in r.json()["messages"]}
    assert got.keys() == {"cut", "pipelined-1", "pipelined-2", "big"}
    assert got["cut"] == "0123456789" * 10
    assert (got["pipelined-1"], got["pipelined-2"]) == ("first", "second")
    assert got["big"] == big.decode()


def test_ack_removes_the_message(bus):
    bus.client.publish("work", b"x")
    [m] = bus.client.messages(Q)
    r = bus.client.ack(Q, [m["receipt"]])
    assert r.status == 200, r
    assert r.json()["results"] == ["ok"]
    s = bus.client.stats("queues/work")
    assert (s["depth"], s["in_flight"], s["counts"]["acked"]) == (0, 0, 1)
    assert bus.client.messages(Q, wait="500ms") == []


def test_nack_without_delay_redelivers_after_backoff_with_attempt_plus_one(bus):
    bus.client.publish("work", b"x", {"idempotency-key": "n1"})
    [m] = bus.client.messages(Q)
    r = bus.client.nack(Q, [m["receipt"]])
    assert r.status == 200, r
    assert r.json()["results"] == ["ok"]
    start = time.monotonic()
    [again] = bus.client.messages(Q, wait="10s")
    assert again["id"] == "n1"
    assert again["attempt"] == 2
    assert again["receipt"] != m["receipt"]
    assert elapsed_since(start) < 5  # backoff.initial is 100ms


def test_nack_with_delay_is_not_redelivered_before_the_delay(bus):
    bus.client.publish("work", b"x", {"idempotency-key": "d1"})
    [m] = bus.client.messages(Q)
    start = time.monotonic()
    assert bus.client.nack(Q, [m["receipt"]], delay="2s").status == 200
    assert bus.client.messages(Q, wait="1s") == []  # still inside the delay
    [again] = bus.client.messages(Q, wait="10s")
    took = elapsed_since(start)
    assert again["id"] == "d1" and again["attempt"] == 2
    assert 1.9 <= took < 10, took
    s = bus.client.stats("queues/work")
    assert s["counts"]["nacked"] == 1


def test_lease_expiry_redelivers(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(lease="1s")}})
    bus.client.publish("work", b"x", {"idempotency-key": "l1"})
    start = time.monotonic()
    [m] = bus.client.messages(Q)
    assert m["attempt"] == 1
    [again] = bus.client.messages(Q, wait="15s")
    took = elapsed_since(start)
    assert again["id"] == "l1" and again["attempt"] == 2
    assert 0.9 <= took < 8, took
    assert bus.client.stats("queues/work")["counts"]["lease_expired"] == 1
    # The first delivery's receipt is stale now.
    r = bus.client.ack(Q, [m["receipt"]])
    assert r.status == 409, r
    assert bus.client.ack(Q, [again["receipt"]]).status == 200


def test_max_deliveries_dead_letters_then_replay_delivers_again(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(max_deliveries=2)}})
    bus.client.publish("work", b"poison", {"idempotency-key": "p1"})
    for attempt in (1, 2):
        [m] = bus.client.messages(Q, wait="10s")
        assert m["attempt"] == attempt
        assert bus.client.nack(Q, [m["receipt"]]).status == 200
    assert bus.client.messages(Q, wait="1s") == []  # dead, not redelivered

    r = bus.client.request("GET", "/v1/queues/work/dead-letters")
    assert r.status == 200, r
    [dead] = r.json()["dead_letters"]
    assert dead["id"] == "p1"
    assert dead["attempts"] == 2
    assert "max deliveries (2)" in dead["reason"], dead
    assert dead["data"] == "poison"
    s = bus.client.stats("queues/work")
    assert (s["dead_letters"], s["depth"], s["in_flight"]) == (1, 0, 0)

    r = bus.client.request("POST", "/v1/queues/work/dead-letters/replay", {})
    assert r.status == 200, r
    assert r.json() == {"replayed": 1}
    [back] = bus.client.messages(Q, wait="10s")
    assert back["id"] == "p1" and back["data"] == "poison"
    assert back["attempt"] == 1
    assert bus.client.ack(Q, [back["receipt"]]).status == 200
    assert bus.client.request("GET", "/v1/queues/work/dead-letters").json()["dead_letters"] == []


def test_lease_expiry_counts_toward_max_deliveries(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(lease="1s", max_deliveries=1)}})
    bus.client.publish("work", b"x", {"idempotency-key": "e1"})
    assert len(bus.client.messages(Q)) == 1
    dead = wait_until(
        lambda: bus.client.request("GET", "/v1/queues/work/dead-letters").json()["dead_letters"],
        10, 0.1, "the expired message to be dead-lettered")
    assert dead[0]["id"] == "e1"
    assert "lease expiry" in dead[0]["reason"], dead


def test_stale_receipt_is_409_and_changes_nothing(bus):
    bus.client.publish("work", b"x", {"idempotency-key": "s1"})
    [first] = bus.client.messages(Q)
    assert bus.client.nack(Q, [first["receipt"]]).status == 200
    [second] = bus.client.messages(Q, wait="10s")
    assert second["attempt"] == 2

    for verb in ("ack", "nack"):
        r = bus.client.request("POST", f"/v1/queues/work/{verb}", {"receipts": [first["receipt"]]})
        assert r.status == 409, r
        doc = r.json()
        assert doc["results"] == ["stale"]
        assert doc["error"]["code"] == "stale_receipt"
    s = bus.client.stats("queues/work")
    assert (s["in_flight"], s["counts"]["acked"], s["counts"]["nacked"]) == (1, 0, 1)
    # The current delivery is untouched: its receipt still works.
    r = bus.client.ack(Q, [second["receipt"]])
    assert r.status == 200, r
    assert r.json()["results"] == ["ok"]


def test_ack_twice_is_409(bus):
    bus.client.publish("work", b"x")
    [m] = bus.client.messages(Q)
    assert bus.client.ack(Q, [m["receipt"]]).status == 200
    assert bus.client.ack(Q, [m["receipt"]]).status == 409


@pytest.mark.parametrize("receipt", ["garbage", "1.1.zz", "", "999.1.0123456789abcdef"])
def test_malformed_or_unknown_receipt_is_400_and_changes_nothing(bus, receipt):
    bus.client.publish("work", b"x")
    [m] = bus.client.messages(Q)
    r = bus.client.ack(Q, [receipt])
    assert r.status == 400, r
    assert r.json()["error"]["status"] == 400
    s = bus.client.stats("queues/work")
    assert (s["in_flight"], s["counts"]["acked"]) == (1, 0)
    assert bus.client.ack(Q, [m["receipt"]]).status == 200


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"receipts": "x"}', b'{"receipts": []}',
                                  b"{}"])
def test_malformed_settle_body_is_400(bus, body):
    r = bus.client.request("POST", "/v1/queues/work/ack", body,
                           {"content-type": "application/json"})
    assert r.status == 400, r
    assert_error_json(r.body, 400, "bad_request")


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v1/queues/nope/messages", b"x"),
    ("GET", "/v1/queues/nope/messages", None),
    ("POST", "/v1/queues/nope/ack", b'{"receipts": ["1.1.0123456789abcdef"]}'),
    ("GET", "/v1/queues/nope", None),
    ("GET", "/v1/queues/nope/dead-letters", None),
    ("POST", "/v1/topics/nope/events", b"x"),
    ("GET", "/v1/topics/nope/subscriptions/s/messages", None),
    ("GET", "/v1/nothing", None),
])
def test_unknown_queue_topic_or_path_is_404_json(bus, method, path, body):
    r = bus.client.request(method, path, body, {"content-type": "text/plain"})
    assert r.status == 404, r
    assert r.headers["content-type"] == "application/json"
    assert_error_json(r.body, 404, "not_found")


@pytest.mark.parametrize("headers,body", [
    ({"content-type": "application/cloudevents+json"},
     {"specversion": "1.0", "source": "/s", "type": "t"}),                  # no id
    ({"content-type": "application/cloudevents+json"},
     {"specversion": "1.0", "id": "1", "type": "t"}),                       # no source
    ({"content-type": "application/cloudevents+json"},
     {"specversion": "1.0", "id": "1", "source": "/s"}),                    # no type
    ({"content-type": "application/cloudevents+json"},
     {"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}),       # old spec
    ({"content-type": "application/cloudevents+json"}, "{not json"),
    ({"content-type": "application/cloudevents-batch+json"}, "[]"),
    ({"content-type": "application/cloudevents-batch+json"},
     [{"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}, {"specversion": "1.0"}]),
    ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"}, "data"),  # binary, no ce-type
])
def test_malformed_cloudevent_is_400_and_stores_nothing(bus, headers, body):
    if not isinstance(body, str):
        body = json.dumps(body)
    r = bus.client.request("POST", "/v1/queues/work/messages", body, headers)
    assert r.status == 400, r
    doc = assert_error_json(r.body, 400, "bad_request")
    assert "CloudEvent" in doc["error"]["message"], doc
    s = bus.client.stats("queues/work")
    assert s["counts"]["published"] == 0 and stored_ever(s) == 0
    assert bus.client.messages(Q) == []


def test_structured_and_binary_modes_keep_attributes(bus):
    event = {"specversion": "1.0", "id": "ev-1", "source": "/shop", "type": "order.created",
             "subject": "o-7", "datacontenttype": "application/json", "data": {"n": 7},
             "tenant": "acme"}
    r = bus.client.request("POST", "/v1/queues/work/messages", json.dumps(event),
                           {"content-type": "application/cloudevents+json"})
    assert r.status == 201, r
    assert r.json()["id"] == "ev-1"
    r = bus.client.publish("work", b"\x00\x01binary", {
        "ce-specversion": "1.0", "ce-id": "ev-2", "ce-source": "/shop", "ce-type": "t.b",
        "ce-tenant": "acme", "content-type": "application/octet-stream"})
    assert r.status == 201, r
    a, b = bus.client.messages(Q, max=2)
    assert (a["id"], a["source"], a["type"], a["subject"]) == ("ev-1", "/shop", "order.created",
                                                                 "o-7")
    assert a["data"] == {"n": 7} and a["tenant"] == "acme"
    assert (b["id"], b["type"], b["tenant"]) == ("ev-2", "t.b", "acme")
    import base64
    assert base64.b64decode(b["data_base64"]) == b"\x00\x01binary"


def test_batch_publish_stores_each_event(bus):
    batch = [{"specversion": "1.0", "id": f"b{i}", "source": "/s", "type": "t", "data": i}
             for i in range(3)]
    r = bus.client.request("POST", "/v1/queues/work/messages", json.dumps(batch),
                           {"content-type": "application/cloudevents-batch+json"})
    assert r.status == 201, r
    results = r.json()["results"]
    assert [x["id"] for x in results] == ["b0", "b1", "b2"]
    assert all(x["duplicate"] is False for x in results)
    assert [m["id"] for m in bus.client.messages(Q, max=10)] == ["b0", "b1", "b2"]


def post_batch(bus, events: list[dict]):
    return bus.client.request("POST", "/v1/queues/work/messages", json.dumps(events),
                              {"content-type": "application/cloudevents-batch+json"})


def batch_event(ce_id: str, data: str) -> dict:
    return {"specversion": "1.0", "id": ce_id, "source": "/s", "type": "t", "data": data}


def test_batch_that_fails_part_way_says_which_events_are_stored(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(max_message_bytes="1KiB")}})
    events = [batch_event("p1", "a"), batch_event("p2", "b"), batch_event("p3", "L" * 2048),
              batch_event("p4", "d")]
    r = post_batch(bus, events)
    # The status and error of the failure, so a client that reads only those sees a failure.
    assert r.status == 413, r
    doc = r.json()
    assert (doc["error"]["code"], doc["error"]["status"]) == ("too_large", 413), doc
    assert doc["error"]["message"].startswith("event 3 of 4 (id p3): "), doc
    assert doc["stored"] == 2
    ok1, ok2, failed, skipped = doc["results"]
    assert (ok1["id"], ok1["sequence"], ok1["duplicate"]) == ("p1", 1, False)
    assert (ok2["id"], ok2["sequence"], ok2["duplicate"]) == ("p2", 2, False)
    assert failed["id"] == "p3" and "sequence" not in failed
    assert (failed["error"]["code"], failed["error"]["status"]) == ("too_large", 413)
    assert skipped["id"] == "p4"
    assert (skipped["error"]["code"], skipped["error"]["status"]) == ("not_attempted", 424)
    # Exactly the first two are in the queue.
    assert [m["id"] for m in bus.client.drain(Q, quiet="500ms")] == ["p1", "p2"]
    # Sending the batch again, fixed, stores the rest once: the first two are duplicates.
    events[2]["data"] = "c"
    r = post_batch(bus, events)
    assert r.status == 201, r
    assert r.json()["stored"] == 4
    assert [x["duplicate"] for x in r.json()["results"]] == [True, True, False, False]
    assert [m["id"] for m in bus.client.drain(Q, quiet="500ms")] == ["p3", "p4"]


def test_batch_whose_first_event_fails_stores_nothing(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(max_message_bytes="1KiB")}})
    r = post_batch(bus, [batch_event("f1", "L" * 2048), batch_event("f2", "b")])
    assert r.status == 413, r
    doc = r.json()
    assert doc["stored"] == 0
    assert [x["error"]["code"] for x in doc["results"]] == ["too_large", "not_attempted"]
    assert bus.client.messages(Q, max=10) == []


def test_batch_of_one_answers_a_result_list(bus):
    r = post_batch(bus, [batch_event("one", "x")])
    assert r.status == 201, r
    assert r.json() == {"stored": 1, "results": [{"id": "one", "sequence": 1,
                                                  "duplicate": False}]}


def test_oversized_message_is_413_and_stores_nothing(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(max_message_bytes="1KiB")}})
    assert bus.client.publish("work", b"s" * 200).status == 201  # small ones still pass
    r = bus.client.publish("work", b"L" * 2048, {"idempotency-key": "big"})
    assert r.status == 413, r
    assert_error_json(r.body, 413, "too_large")
    s = bus.client.stats("queues/work")
    assert s["counts"]["published"] == 1
    assert stored_ever(s) == 1
    got = bus.client.messages(Q, max=10)
    assert [m["data"] for m in got] == ["s" * 200]
    # The refused id was not recorded for de-duplication either.
    r = bus.client.publish("work", b"small now", {"idempotency-key": "big"})
    assert r.status == 201 and r.json()["duplicate"] is False, r


def test_delayed_delivery_by_query_delay(bus):
    start = time.monotonic()
    r = bus.client.publish("work", b"later", {"idempotency-key": "late"}, query="?delay=2s")
    assert r.status == 201, r
    assert bus.client.messages(Q) == []
    assert bus.client.stats("queues/work")["delayed"] == 1
    [m] = bus.client.messages(Q, wait="15s")
    took = elapsed_since(start)
    assert m["id"] == "late"
    assert 1.95 <= took < 10, took


def test_delayed_delivery_by_deliver_at(bus):
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    start = time.monotonic()
    r = bus.client.publish("work", b"at", query=f"?deliver_at={stamp}")
    assert r.status == 201, r
    [m] = bus.client.messages(Q, wait="15s")
    took = elapsed_since(start)
    assert m["data"] == "at"
    assert 1.5 <= took < 10, took


@pytest.mark.parametrize("query", ["?delay=soon", "?deliver_at=tomorrow"])
def test_bad_delay_is_400(bus, query):
    r = bus.client.publish("work", b"x", query=query)
    assert r.status == 400, r
    assert bus.client.stats("queues/work")["counts"]["published"] == 0


@pytest.mark.parametrize("query", ["max=0", "max=1001", "max=x", "wait=61s", "wait=soon"])
def test_bad_pull_parameters_are_400(bus, query):
    r = bus.client.request("GET", f"/v1/queues/work/messages?{query}")
    assert r.status == 400, r
    assert_error_json(r.body, 400, "bad_request")


def test_extend_keeps_a_lease_alive(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(lease="1s")}})
    bus.client.publish("work", b"x")
    [m] = bus.client.messages(Q)
    r = bus.client.request("POST", "/v1/queues/work/extend",
                           {"receipts": [m["receipt"]], "lease": "10s"})
    assert r.status == 200, r
    assert bus.client.messages(Q, wait="2s") == []  # past the 1s lease, still leased
    assert bus.client.ack(Q, [m["receipt"]]).status == 200


def test_queue_stats_show_depth_in_flight_and_dead_letters(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(max_deliveries=1)}})
    for i in range(4):
        bus.client.publish("work", f"m{i}", {"idempotency-key": f"k{i}"})
    s = bus.client.stats("queues/work")
    assert s["name"] == "work"
    assert (s["depth"], s["in_flight"], s["dead_letters"]) == (4, 0, 0)
    a, b = bus.client.messages(Q, max=2)
    s = bus.client.stats("queues/work")
    assert (s["depth"], s["in_flight"]) == (2, 2)
    assert bus.client.nack(Q, [a["receipt"]]).status == 200  # max_deliveries 1: dead
    s = bus.client.stats("queues/work")
    assert (s["depth"], s["in_flight"], s["dead_letters"]) == (2, 1, 1)
    assert s["counts"]["published"] == 4 and s["counts"]["delivered"] == 2
    assert stored_ever(s) == 4
    r = bus.client.request("GET", "/v1/queues")
    assert r.status == 200 and r.json() == {"queues": ["work"]}


def test_metrics_have_bus_series(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(max_deliveries=1)}})
    for i in range(3):
        assert bus.client.publish("work", f"m{i}", {"idempotency-key": f"k{i}"}).status == 201
    assert bus.client.publish("work", b"again", {"idempotency-key": "k0"}).json()["duplicate"]
    a, b = bus.client.messages(Q, max=2)
    bus.client.nack(Q, [a["receipt"]])
    f = bus.ferry
    assert f.metric("ferry_bus_published_total", destination="queue/work", result="stored") == 3
    assert f.metric("ferry_bus_published_total", destination="queue/work",
                    result="duplicate") == 1
    assert f.metric("ferry_bus_deliveries_total", inbox="work", mode="pull") == 2
    assert f.metric("ferry_bus_publish_duration_seconds_count", destination="queue/work") == 4
    # Gauges are refreshed about once a second.
    wait_until(lambda: f.metric("ferry_bus_depth", inbox="work") == 1
               and f.metric("ferry_bus_in_flight", inbox="work") == 1
               and f.metric("ferry_bus_dead_letters", inbox="work") == 1,
               10, 0.2, "bus gauges to show depth 1, in flight 1, dead letters 1")
    if bus.config["bus"].get("backend") == "nats":
        return  # no fsync series: the embedded log's (docs/bus.md, Metrics)
    wait_until(lambda: f.metric("ferry_bus_fsync_batches", log="queues/work/messages") >= 1,
               10, 0.2, "fsync batches of the message log")
    text = f.metrics_text()
    assert "ferry_bus_end_to_end_seconds_bucket" in text
    # Every fsync round of the message log is in the histograms: its three stored records (the
    # duplicate stored nothing) in as many rounds as the gauge counts.
    log = "queues/work/messages"
    rounds = f.metric("ferry_bus_fsync_duration_seconds_count", log=log)
    assert rounds == f.metric("ferry_bus_fsync_batches", log=log) >= 1
    assert f.metric("ferry_bus_fsync_batch_records_count", log=log) == rounds
    assert f.metric("ferry_bus_fsync_batch_records_sum", log=log) == 3
    assert f.metric("ferry_bus_fsync_duration_seconds_sum", log=log) > 0
    assert f.metric("ferry_bus_fsync_duration_seconds_count", log="queues/work/state") >= 1


def test_interval_mode_fsync_rounds_reach_the_histograms(start_bus, bus_backend):
    nats_difference(bus_backend, "Backends (the embedded log's durability and segments)")
    bus = start_bus({"durability": "interval", "sync_interval": "200ms",
                     "queues": {"work": fast_queue()}})
    for i in range(5):
        assert bus.client.publish("work", f"m{i}").status == 201
    f = bus.ferry
    log = "queues/work/messages"
    wait_until(lambda: f.metric("ferry_bus_fsync_batch_records_sum", log=log) == 5,
               10, 0.2, "the timed fsync to report the five records")
    assert f.metric("ferry_bus_fsync_duration_seconds_count", log=log) >= 1


def test_consumed_segments_are_deleted_so_a_full_queue_accepts_again(start_bus, bus_backend):
    """max_bytes refuses publishes (429 `full`: it passes) while the log is full; once everything is acked,
    retention (every few seconds) deletes the consumed segments and publishing works again."""
    nats_difference(bus_backend, "Backends (the embedded log's durability and segments)")
    bus = start_bus({"segment_bytes": "64KiB", "queues": {"work": fast_queue(
        max_message_bytes="1KiB", max_bytes="160KiB")}})
    data = "d" * 800
    full = None
    for b in range(20):
        batch = [{"specversion": "1.0", "id": f"f{b}-{i}", "source": "/s", "type": "t",
                  "datacontenttype": "text/plain", "data": data} for i in range(40)]
        r = bus.client.request("POST", "/v1/queues/work/messages", json.dumps(batch),
                               {"content-type": "application/cloudevents-batch+json"})
        if r.status == 429:
            full = r
            break
        assert r.status == 201, r
    assert full is not None, "max_bytes never refused a publish"
    failed = [x for x in full.json()["results"] if x.get("error", {}).get("code") == "full"]
    assert failed and failed[0]["error"]["status"] == 429, full.json()
    r = bus.client.publish("work", data)
    assert r.status == 429, r
    assert_error_json(r.body, 429, "full")
    assert "max_bytes" in r.json()["error"]["message"], r.json()
    drained = bus.client.drain(Q, quiet="300ms")
    s = bus.client.stats("queues/work")
    assert len(drained) == s["counts"]["published"] and s["depth"] == 0
    segments_before = s["messages_log"]["segments"]
    assert segments_before >= 2
    wait_until(lambda: bus.client.publish("work", data).status == 201, 15, 0.5,
               "a publish to be accepted once every message was acked (retention of consumed "
               f"segments; the log had {segments_before} segments)")
    assert bus.client.stats("queues/work")["messages_log"]["segments"] < segments_before


def test_max_age_drops_of_unconsumed_messages_are_counted(start_bus, bus_backend):
    """max_age deletes old segments even with nobody having consumed them: each record so lost
    is counted in the stats and the metric."""
    nats_difference(bus_backend, "Backends (the embedded log's durability and segments)")
    bus = start_bus({"segment_bytes": "64KiB", "queues": {"work": fast_queue(max_age="1s")}})
    data = "d" * 800
    batch = [{"specversion": "1.0", "id": f"a{i}", "source": "/s", "type": "t",
              "datacontenttype": "text/plain", "data": data} for i in range(120)]
    r = bus.client.request("POST", "/v1/queues/work/messages", json.dumps(batch),
                           {"content-type": "application/cloudevents-batch+json"})
    assert r.status == 201, r
    s = bus.client.stats("queues/work")["messages_log"]
    assert s["segments"] >= 2 and s["retention_dropped_unconsumed"] == 0, s
    # Retention runs every 5 s; the first segment is over max_age a second after it was written.
    log = "queues/work/messages"
    wait_until(lambda: bus.client.stats("queues/work")["messages_log"]
               ["retention_dropped_unconsumed"] > 0, 30, 0.2, "retention to drop by max_age")
    dropped = bus.client.stats("queues/work")["messages_log"]["retention_dropped_unconsumed"]
    assert 0 < dropped < 120, dropped  # whole segments, never the active (last) one
    wait_until(lambda: bus.ferry.metric("ferry_bus_retention_dropped_unconsumed", log=log)
               == dropped, 10, 0.2, "the gauge to follow (refreshed each second)")
    # What is left is still delivered.
    assert len(bus.client.drain(Q, quiet="300ms")) == 120 - dropped
