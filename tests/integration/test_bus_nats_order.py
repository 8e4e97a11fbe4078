"""Per-key order (`partitionkey`) on the NATS backend (docs/bus.md "Ordering" and "Backends"):
JetStream hands a pull consumer's messages out in parallel, so Ferry holds a fetched message
whose key has one out, keeping its JetStream lease alive, and hands it out when the key's head
is settled. The contract tests of order (test_bus_topics.py) run on both backends; these test
what is particular to JetStream: pulls racing on one key, a nack's redelivery coming before the
key's next message, held messages outliving AckWait, and a head taken by another Ferry node."""

import threading
import time

import pytest

from bus_support import fast_queue, start_bus  # noqa: F401 - fixture
from conftest import wait_until

Q = "queues/orders"


@pytest.fixture
def bus_backend():
    return "nats"


def keyed(bus, ce_id: str, key: str):
    r = bus.client.publish("orders", ce_id, {"ce-specversion": "1.0", "ce-id": ce_id,
                                             "ce-source": "/t", "ce-type": "cmd",
                                             "ce-partitionkey": key})
    assert r.status == 201, r


def test_racing_pulls_get_one_message_of_a_key_and_a_nack_comes_back_first(start_bus):
    bus = start_bus({"queues": {"orders": fast_queue(
        max_deliveries=0, backoff={"initial": "200ms", "max": "200ms", "multiplier": 1})}})
    for i in range(3):
        keyed(bus, f"k{i}", "k")
    got: list[dict] = []
    lock = threading.Lock()

    def pull():
        batch = bus.client.messages(Q, max=10, wait="1s")
        with lock:
            got.extend(batch)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Four pulls at once, each asking for ten: one message of the key is out, two wait.
    assert [(m["id"], m["attempt"]) for m in got] == [("k0", 1)]
    assert bus.client.stats(Q)["blocked"] == 2
    # Nacked: it comes back (after its 200 ms backoff) before the key's next message.
    assert bus.client.nack(Q, [got[0]["receipt"]]).status == 200
    order = []
    deadline = time.monotonic() + 20
    while len(order) < 3 and time.monotonic() < deadline:
        batch = bus.client.messages(Q, max=10, wait="2s")
        assert len(batch) <= 1, batch  # never two of the key out at once
        for m in batch:
            order.append((m["id"], m["attempt"]))
            assert bus.client.ack(Q, [m["receipt"]]).status == 200
    assert order == [("k0", 2), ("k1", 1), ("k2", 1)], order
    s = bus.client.stats(Q)
    assert (s["blocked"], s["in_flight"], s["counts"]["acked"]) == (0, 0, 3), s


def test_held_messages_outlive_ack_wait_and_keep_their_first_attempt(start_bus):
    # lease 1s = JetStream's AckWait: the held message stays leased to this node (InProgress)
    # for three leases, so JetStream neither redelivers it nor counts another delivery.
    bus = start_bus({"queues": {"orders": fast_queue(lease="1s", max_deliveries=2)}})
    keyed(bus, "a0", "a")
    keyed(bus, "a1", "a")
    [head] = bus.client.messages(Q, max=10, wait="2s")
    assert head["id"] == "a0"
    r = bus.client.request("POST", f"/v1/{Q}/extend", {"receipts": [head["receipt"]],
                                                        "lease": "10s"})
    assert r.status == 200, r
    time.sleep(3)
    assert bus.client.messages(Q, max=10) == []
    assert bus.client.stats(Q)["blocked"] == 1
    assert bus.client.ack(Q, [head["receipt"]]).status == 200
    [nxt] = bus.client.messages(Q, max=10, wait="2s")
    assert (nxt["id"], nxt["attempt"]) == ("a1", 1)
    assert bus.client.ack(Q, [nxt["receipt"]]).status == 200


def test_a_lease_that_runs_out_redelivers_the_head_before_the_next(start_bus):
    bus = start_bus({"queues": {"orders": fast_queue(lease="1s", max_deliveries=0)}})
    for i in range(2):
        keyed(bus, f"b{i}", "b")
    [first] = bus.client.messages(Q, max=10, wait="2s")
    assert first["id"] == "b0"
    time.sleep(1.5)  # its lease runs out, unsettled
    [again] = bus.client.messages(Q, max=10, wait="3s")
    assert (again["id"], again["attempt"]) == ("b0", 2)
    assert bus.client.ack(Q, [again["receipt"]]).status == 200
    [nxt] = bus.client.messages(Q, max=10, wait="2s")
    assert (nxt["id"], nxt["attempt"]) == ("b1", 1)


def test_a_head_redelivered_to_another_node_lets_the_key_go_on(start_bus):
    """Two Ferry nodes on one queue: node A holds c1 behind c0; c0's lease runs out on A and
    node B pulls JetStream's redelivery and acks it. A never sees c0 again, and must not hold c1
    forever: a pull on A that drained the consumer well after c0 was due lets c1 go."""
    queue = {"queues": {"orders": fast_queue(lease="1s", max_deliveries=0)}}
    a = start_bus(queue)
    b = start_bus(queue)
    keyed(a, "c0", "c")
    keyed(a, "c1", "c")
    [head] = a.client.messages(Q, max=10, wait="2s")
    assert head["id"] == "c0"
    assert a.client.messages(Q, max=10) == []  # c1 fetched and held on A
    assert a.client.stats(Q)["blocked"] == 1
    # c0 is left unsettled on A: after its lease JetStream redelivers it, to B.
    [taken] = wait_until(lambda: b.client.messages(Q, max=10, wait="1s"), 15, 0.05,
                         "B to pull c0's redelivery")
    assert (taken["id"], taken["attempt"]) == ("c0", 2)
    assert b.client.ack(Q, [taken["receipt"]]).status == 200
    start = time.monotonic()
    [nxt] = wait_until(lambda: a.client.messages(Q, max=10, wait="1s"), 20, 0.1,
                       "A to let c1 go")
    assert (nxt["id"], nxt["attempt"]) == ("c1", 1)
    assert time.monotonic() - start < 15  # the 2 s grace, with margin
