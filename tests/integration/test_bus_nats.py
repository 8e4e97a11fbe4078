"""The bus on NATS JetStream (bus.backend: nats) against a real nats-server: what is particular
to the backend — the streams and consumers Ferry makes, the Nats-Msg-Id de-duplication, dead
letters copied to FERRY_DLQ and replayed, filters applied by Ferry, reconnection after the
server restarts. The shared behaviour runs on both backends in test_bus_queues.py and
test_bus_topics.py (bus_support.bus_backend_both)."""

import json
import socket
import threading
import time

import pytest

from bus_support import NatsServer, cloud_event, fast_queue, start_bus  # noqa: F401 - fixture
from conftest import wait_until

Q = "queues/work"


@pytest.fixture
def bus_backend():
    return "nats"


@pytest.fixture
def bus(start_bus):
    return start_bus({"queues": {"work": fast_queue(max_deliveries=2)},
                      "topics": {"orders": {"subscriptions": {
                          "all": {"from_beginning": True},
                          "created": {"filter": {"type": "order.created"}, "from_beginning": True},
                      }}}})


def nats_request(port: int, subject: str, payload: bytes = b"", timeout: float = 5.0) -> bytes:
    """One request over the NATS text protocol (CONNECT, SUB to an inbox, PUB with reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"INFO ")
        s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _INBOX.t 1\r\n')
        s.sendall(b"PUB %s _INBOX.t %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(payload),
                                                              payload))
        while True:
            line = f.readline()
            assert line, "connection closed"
            if line.startswith(b"MSG ") or line.startswith(b"HMSG "):
                size = int(line.split()[-1])
                body = f.read(size + 2)[:-2]
                if line.startswith(b"HMSG "):
                    header_len = int(line.split()[-2])
                    body = body[header_len:]
                return body


def stream_info(server: NatsServer, stream: str) -> dict:
    return json.loads(nats_request(server.port, f"$JS.API.STREAM.INFO.{stream}"))


def test_queue_publish_receive_ack_through_jetstream(bus):
    r = bus.client.publish("work", b"hello", {"idempotency-key": "m1"})
    assert r.status == 201, r
    doc = r.json()
    assert doc == {"id": "m1", "sequence": 1, "duplicate": False}
    [m] = bus.client.messages(Q, max=10, wait="2s")
    assert m["id"] == "m1" and m["data"] == "hello" and m["attempt"] == 1 and m["sequence"] == 1
    assert bus.client.ack(Q, [m["receipt"]]).status == 200
    # Work-queue retention: the acked message leaves the stream.
    server_port = int(bus.config["bus"]["nats"]["servers"][0].rsplit(":", 1)[1])
    info = json.loads(nats_request(server_port, "$JS.API.STREAM.INFO.FERRY_Q_work"))
    wait_until(lambda: json.loads(nats_request(server_port, "$JS.API.STREAM.INFO.FERRY_Q_work"))
               ["state"]["messages"] == 0, 5, what="the acked message to leave the stream")
    assert info["config"]["retention"] == "workqueue"
    assert info["config"]["duplicate_window"] == 600 * 10**9


def test_duplicate_id_is_answered_as_a_duplicate_and_stored_once(bus):
    first = bus.client.publish("work", b"a", {"idempotency-key": "dup-1"}).json()
    again = bus.client.publish("work", b"a", {"idempotency-key": "dup-1"}).json()
    assert first["duplicate"] is False
    assert again == {"id": "dup-1", "sequence": first["sequence"], "duplicate": True}
    got = bus.client.drain(Q, quiet="1s")
    assert [m["id"] for m in got] == ["dup-1"]


def test_generated_ids_are_distinct_and_stored(bus):
    ids = {bus.client.publish("work", f"m{i}").json()["id"] for i in range(5)}
    assert len(ids) == 5
    assert len(bus.client.drain(Q, quiet="1s")) == 5


def test_ack_after_ack_is_stale_and_unknown_receipt_is_invalid(bus):
    bus.client.publish("work", b"x")
    [m] = bus.client.messages(Q, wait="2s")
    assert bus.client.ack(Q, [m["receipt"]]).json()["results"] == ["ok"]
    r = bus.client.ack(Q, [m["receipt"]])
    assert r.status == 409, r
    r = bus.client.ack(Q, ["not-a-receipt"])
    assert r.status == 400, r


def test_nack_redelivers_after_backoff_then_dead_letters_and_replays(bus):
    bus.client.publish("work", b"poison", {"idempotency-key": "p1"})
    [m] = bus.client.messages(Q, wait="2s")
    assert bus.client.nack(Q, [m["receipt"]]).status == 200
    start = time.monotonic()
    [m2] = bus.client.messages(Q, wait="5s")
    assert m2["id"] == "p1" and m2["attempt"] == 2
    assert time.monotonic() - start < 5
    assert bus.client.nack(Q, [m2["receipt"]]).status == 200  # the last delivery: dead letter
    assert bus.client.messages(Q, wait="1s") == []

    def listed():
        r = bus.client.request("GET", f"/v1/{Q}/dead-letters")
        assert r.status == 200, r
        return r.json()["dead_letters"]

    dead = wait_until(listed, 5, what="the dead letter")
    assert len(dead) == 1
    assert dead[0]["id"] == "p1"
    assert dead[0]["attempts"] == 2
    assert dead[0]["reason"] == "max deliveries (2) exceeded: nacked 2 times"
    r = bus.client.request("POST", f"/v1/{Q}/dead-letters/replay", {})
    assert r.status == 200, r
    assert r.json()["replayed"] == 1
    [again] = bus.client.messages(Q, wait="3s")
    assert again["id"] == "p1" and again["data"] == "poison" and again["attempt"] == 1
    assert listed() == []


def test_lease_expiry_redelivers_and_the_last_one_dead_letters(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(lease="1s", max_deliveries=1)}})
    bus.client.publish("work", b"slow", {"idempotency-key": "s1"})
    [m] = bus.client.messages(Q, wait="2s")
    time.sleep(1.5)
    assert bus.client.ack(Q, [m["receipt"]]).status == 409  # the lease is gone
    # JetStream delivers it again after AckWait; Ferry sees the delivery past max_deliveries
    # and moves it to the dead letters instead of handing it out.
    assert bus.client.messages(Q, wait="2s") == []

    def dead():
        return bus.client.request("GET", f"/v1/{Q}/dead-letters").json()["dead_letters"]

    [d] = wait_until(dead, 10, what="the dead letter")
    assert d["id"] == "s1"
    assert d["reason"] == "max deliveries (1) exceeded after lease expiry"


def test_topic_subscriptions_each_get_events_and_filters_apply(bus):
    for i, t in enumerate(["order.created", "order.paid", "order.created"]):
        r = bus.client.publish_event("orders", cloud_event(f"e{i}", t, data={"n": i}))
        assert r.status == 201, r
    everything = bus.client.drain("topics/orders/subscriptions/all", quiet="1s")
    created = bus.client.drain("topics/orders/subscriptions/created", quiet="1s")
    assert [e["id"] for e in everything] == ["e0", "e1", "e2"]
    assert [e["id"] for e in created] == ["e0", "e2"]
    assert created[0]["data"] == {"n": 0}


def test_subscription_put_lives_on_as_a_durable_consumer(bus):
    r = bus.client.request("PUT", "/v1/topics/orders/subscriptions/late",
                           {"from_beginning": True, "lease": "10s"})
    assert r.status in (200, 201), r
    bus.client.publish_event("orders", cloud_event("x1"))
    got = bus.client.drain("topics/orders/subscriptions/late", quiet="1s")
    assert [e["id"] for e in got] == ["x1"]
    bus.restart()
    subs = bus.client.stats("topics/orders")["subscriptions"]
    assert "late" in [s["name"] for s in subs] if isinstance(subs, list) else "late" in subs
    r = bus.client.request("DELETE", "/v1/topics/orders/subscriptions/late")
    assert r.status in (200, 204), r


def test_ferry_reconnects_after_the_server_restarts(bus, processes, tmp_path):
    bus.client.publish("work", b"before", {"idempotency-key": "b1"})
    [server] = [p for p in processes.processes if "nats-server" in p.argv[0]]
    server.stop()
    # A publish while the server is gone waits: Ferry retries it (same Nats-Msg-Id) until the
    # server is back, within its retry budget (20 s).
    answer = {}
    publisher = threading.Thread(target=lambda: answer.update(
        r=bus.client.publish("work", b"during", {"idempotency-key": "d1"})))
    publisher.start()
    time.sleep(1.0)
    processes.start(server.argv, tmp_path / "nats-restarted.log")
    publisher.join(40)
    assert answer["r"].status == 201, answer["r"]
    assert answer["r"].json()["duplicate"] is False
    got = bus.client.drain(Q, quiet="2s")
    assert sorted(m["id"] for m in got) == ["b1", "d1"]
    reconnects = [line for line in bus.ferry.metrics_text().splitlines()
                  if line.startswith("ferry_bus_nats_reconnects_total")]
    assert reconnects and float(reconnects[0].split()[-1]) >= 1, reconnects


def test_ready_and_metrics_show_the_connection(bus):
    status, _ = bus.ferry.admin("/ready")
    assert status == 200
    bus.client.publish("work", b"x")
    text = bus.ferry.metrics_text()
    assert "ferry_bus_nats_connected 1" in text
    assert "ferry_bus_nats_publish_acks_total" in text


def test_ready_is_503_while_the_cluster_is_unreachable(bus, processes, tmp_path):
    [server] = [p for p in processes.processes if "nats-server" in p.argv[0]]
    server.stop()
    wait_until(lambda: bus.ferry.admin("/ready")[0] == 503, 10, 0.1, "/ready to answer 503")
    assert bus.ferry.metric("ferry_ready") == 0
    assert bus.ferry.metric("ferry_bus_nats_connected") == 0
    processes.start(server.argv, tmp_path / "nats-restarted.log")
    wait_until(lambda: bus.ferry.admin("/ready")[0] == 200, 15, 0.1, "/ready to answer 200 again")
    assert bus.ferry.metric("ferry_bus_nats_connected") == 1
