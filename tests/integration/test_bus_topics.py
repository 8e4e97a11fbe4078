"""Bus topics: every subscription gets its own copy with its own acks; filters; subscriptions
made over the API (and kept across a restart); replay from a sequence; per-key order on a queue
with two consumers and nacks."""

import random
import threading
import time

import pytest

from bus_support import cloud_event, fast_queue, start_bus  # noqa: F401

A = "topics/orders/subscriptions/audit"
B = "topics/orders/subscriptions/billing"



@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (the contract suite, docs/bus.md "Backends")."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")


@pytest.fixture
def bus(start_bus):
    sub = fast_queue()
    return start_bus({"topics": {"orders": {"subscriptions": {
        "audit": dict(sub),
        "billing": dict(sub, filter={"type": "order.*"}),
    }}}})


def test_two_subscriptions_each_get_the_event_with_independent_acks(bus):
    r = bus.client.publish_event("orders", cloud_event("o-1", "order.created", {"total": 5}))
    assert r.status == 201, r
    assert r.json()["duplicate"] is False
    [a] = bus.client.messages(A, wait="5s")
    [b] = bus.client.messages(B, wait="5s")
    assert a["id"] == b["id"] == "o-1"
    assert a["data"] == b["data"] == {"total": 5}
    assert a["receipt"] != b["receipt"]
    # A receipt of one subscription means nothing to the other.
    assert bus.client.ack(B, [a["receipt"]]).status in (400, 409)
    assert bus.client.ack(A, [a["receipt"]]).status == 200
    # audit acked; billing still holds its delivery and a nack redelivers it there only.
    stats = bus.client.stats("topics/orders")["subscriptions"]
    assert (stats["audit"]["in_flight"], stats["audit"]["counts"]["acked"]) == (0, 1)
    assert (stats["billing"]["in_flight"], stats["billing"]["counts"]["acked"]) == (1, 0)
    assert bus.client.nack(B, [b["receipt"]]).status == 200
    [b2] = bus.client.messages(B, wait="5s")
    assert (b2["id"], b2["attempt"]) == ("o-1", 2)
    assert bus.client.messages(A, wait="300ms") == []


def test_filter_by_type_prefix(bus):
    for i, t in enumerate(["order.created", "user.created", "order.paid", "orders", "order"]):
        assert bus.client.publish_event("orders", cloud_event(f"e{i}", t)).status == 201
    audit = bus.client.drain(A, quiet="500ms")
    billing = bus.client.drain(B, quiet="500ms")
    assert [m["type"] for m in audit] == ["order.created", "user.created", "order.paid",
                                          "orders", "order"]
    assert [m["type"] for m in billing] == ["order.created", "order.paid"]


def test_plain_body_to_a_topic_is_an_event(bus):
    r = bus.client.request("POST", "/v1/topics/orders/events", b"raw",
                           {"content-type": "text/plain", "idempotency-key": "raw-1"})
    assert r.status == 201, r
    [m] = bus.client.messages(A, wait="5s")
    assert (m["id"], m["data"]) == ("raw-1", "raw")
    assert bus.client.messages(B, wait="300ms") == []  # no type: the filter does not match


def test_subscription_created_by_put_receives_and_persists(bus):
    bus.client.publish_event("orders", cloud_event("before", "ship.requested"))
    r = bus.client.request("PUT", "/v1/topics/orders/subscriptions/shipping",
                           {"filter": {"type": "ship.*"}, "lease": "5s", "max_deliveries": 3})
    assert r.status == 200, r
    assert r.json() == {"topic": "orders", "subscription": "shipping"}
    subs = bus.client.request("GET", "/v1/topics/orders/subscriptions").json()["subscriptions"]
    assert sorted(subs) == ["audit", "billing", "shipping"]
    bus.client.publish_event("orders", cloud_event("s-1", "ship.requested"))
    bus.client.publish_event("orders", cloud_event("o-9", "order.created"))
    S = "topics/orders/subscriptions/shipping"
    # Not from_beginning: the event published before the subscription existed is not seen.
    [m] = bus.client.messages(S, max=10, wait="5s")
    assert m["id"] == "s-1"
    bus.client.ack(S, [m["receipt"]])

    bus.restart()
    subs = bus.client.request("GET", "/v1/topics/orders/subscriptions").json()["subscriptions"]
    assert "shipping" in subs
    bus.client.publish_event("orders", cloud_event("s-2", "ship.requested"))
    assert [m["id"] for m in bus.client.drain(S, quiet="500ms")] == ["s-2"]


@pytest.mark.parametrize("body", [{"filter": {"colour": "x"}}, {"lease": "0s"}, {"nope": 1},
                                  {"max_deliveries": -1}, "not json"])
def test_bad_subscription_put_is_400(bus, body):
    r = bus.client.request("PUT", "/v1/topics/orders/subscriptions/bad", body)
    assert r.status == 400, r
    subs = bus.client.request("GET", "/v1/topics/orders/subscriptions").json()["subscriptions"]
    assert "bad" not in subs


def test_put_subscription_on_unknown_topic_is_404(bus):
    r = bus.client.request("PUT", "/v1/topics/nope/subscriptions/s", {})
    assert r.status == 404, r


def test_subscription_stats_are_that_subscriptions_own(bus):
    for i, t in enumerate(["order.created", "user.created", "order.paid"]):
        assert bus.client.publish_event("orders", cloud_event(f"s{i}", t)).status == 201
    [b] = bus.client.messages(B, wait="5s")
    assert bus.client.ack(B, [b["receipt"]]).status == 200
    [b2] = bus.client.messages(B, wait="5s")
    assert bus.client.nack(B, [b2["receipt"]], delay="1m").status == 200
    billing = bus.client.stats("topics/orders/subscriptions/billing")
    audit = bus.client.stats("topics/orders/subscriptions/audit")
    # Only this subscription's numbers: billing matched 2 of the 3 events, audit all 3.
    assert (billing["topic"], billing["name"]) == ("orders", "billing")
    assert "subscriptions" not in billing and "messages_log" not in billing
    assert billing["counts"]["delivered"] == 2 and billing["counts"]["acked"] == 1
    assert billing["counts"]["nacked"] == 1 and billing["delayed"] == 1
    assert (billing["in_flight"], billing["dead_letters"]) == (0, 0)
    assert (audit["depth"], audit["counts"]["delivered"], audit["counts"]["acked"]) == (3, 0, 0)
    assert billing["filter"] == {"type": "order.*"} and audit["filter"] == {}
    assert (billing["lease"], billing["max_deliveries"]) == ("30s", 5)
    assert billing["backoff"] == {"initial": "100ms", "max": "500ms", "multiplier": 2.0}
    if bus.config["bus"].get("backend") != "nats":  # NATS has no state log (docs/bus.md)
        assert "appends" in billing["state_log"]
    # The same entry as the topic's stats show for it (counts have not moved since; rates
    # are per second until now, so they may have moved).
    topic = bus.client.stats("topics/orders")["subscriptions"]
    moving = ("state_log", "rates")
    assert {k: v for k, v in billing.items() if k not in ("topic", "name") + moving} == \
        {k: v for k, v in topic["billing"].items() if k not in moving}
    assert set(billing["rates"]) == set(topic["billing"]["rates"])


def test_subscription_stats_follow_a_put(bus):
    r = bus.client.request("PUT", "/v1/topics/orders/subscriptions/late",
                           {"filter": {"source": "/shop", "subject": "s-1"}, "lease": "2m",
                            "max_deliveries": 0})
    assert r.status == 200, r
    late = bus.client.stats("topics/orders/subscriptions/late")
    assert late["filter"] == {"source": "/shop", "subject": "s-1"}
    assert (late["lease"], late["max_deliveries"], late["depth"]) == ("2m", 0, 0)


def test_put_keeps_the_options_it_does_not_set(start_bus):
    """A PUT on a declared subscription changes only what its body gives: the configured
    backoff, lease and max_deliveries survive a PUT of a filter alone."""
    backoff = {"initial": "150ms", "max": "700ms", "multiplier": 3}
    bus = start_bus({"topics": {"orders": {"subscriptions": {
        "billing": {"lease": "7s", "max_deliveries": 9, "backoff": backoff,
                    "filter": {"type": "order.*", "source": "/shop"}}}}}})
    path = "/v1/topics/orders/subscriptions/billing"
    assert bus.client.request("PUT", path, {"filter": {"type": "invoice.*"}}).status == 200
    s = bus.client.stats("topics/orders/subscriptions/billing")
    # The filter is one value: the one given replaces the whole filter.
    assert s["filter"] == {"type": "invoice.*"}
    assert (s["lease"], s["max_deliveries"]) == ("7s", 9)
    assert s["backoff"] == {"initial": "150ms", "max": "700ms", "multiplier": 3.0}
    # A field in the body overrides; the others, the filter included, stay.
    assert bus.client.request("PUT", path, {"lease": "1m"}).status == 200
    s = bus.client.stats("topics/orders/subscriptions/billing")
    assert (s["filter"], s["lease"], s["max_deliveries"]) == ({"type": "invoice.*"}, "1m", 9)
    assert s["backoff"] == {"initial": "150ms", "max": "700ms", "multiplier": 3.0}
    # The backoff in force is the configured one: a nack is redelivered after ~150ms, not 1s.
    assert bus.client.publish_event("orders", cloud_event("i-1", "invoice.sent")).status == 201
    S = "topics/orders/subscriptions/billing"
    [m] = bus.client.messages(S, wait="5s")
    assert bus.client.nack(S, [m["receipt"]]).status == 200
    start = time.monotonic()
    [m2] = bus.client.messages(S, wait="5s")
    assert (m2["id"], m2["attempt"]) == ("i-1", 2)
    assert time.monotonic() - start < 0.75  # 5x the backoff; the default would wait 1s


@pytest.mark.parametrize("path", ["/v1/topics/orders/subscriptions/nobody",
                                  "/v1/topics/nothing/subscriptions/audit"])
def test_stats_of_an_unknown_subscription_is_404(bus, path):
    r = bus.client.request("GET", path)
    assert r.status == 404, r
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "not_found"


def test_replay_subscription_from_sequence(bus):
    seqs = []
    for i in range(3):
        r = bus.client.publish_event("orders", cloud_event(f"r{i}", "order.x"))
        seqs.append(r.json()["sequence"])
    assert [m["id"] for m in bus.client.drain(A, quiet="500ms")] == ["r0", "r1", "r2"]
    billing_before = bus.client.stats("topics/orders")["subscriptions"]["billing"]["depth"]
    r = bus.client.request("POST", f"/v1/{A}/replay", {"from_sequence": seqs[1]})
    assert r.status == 200, r
    assert r.json() == {"replayed": True}
    again = bus.client.drain(A, quiet="500ms")
    assert [(m["id"], m["sequence"], m["attempt"]) for m in again] == [
        ("r1", seqs[1], 1), ("r2", seqs[2], 1)]
    # The other subscription's position did not move.
    assert bus.client.stats("topics/orders")["subscriptions"]["billing"]["depth"] == billing_before


def test_replay_needs_a_start(bus):
    r = bus.client.request("POST", f"/v1/{A}/replay", {})
    assert r.status == 400, r


def test_topic_dead_letters_and_replay_under_a_subscription(start_bus):
    bus = start_bus({"topics": {"orders": {"subscriptions": {
        "audit": fast_queue(max_deliveries=1)}}}})
    bus.client.publish_event("orders", cloud_event("x-1", "order.created"))
    [m] = bus.client.messages(A, wait="5s")
    bus.client.nack(A, [m["receipt"]])
    dead = bus.client.request("GET", f"/v1/{A}/dead-letters").json()["dead_letters"]
    assert [d["id"] for d in dead] == ["x-1"]
    assert bus.client.stats("topics/orders")["subscriptions"]["audit"]["dead_letters"] == 1
    r = bus.client.request("POST", f"/v1/{A}/dead-letters/replay", {})
    assert r.json() == {"replayed": 1}, r
    [back] = bus.client.messages(A, wait="5s")
    assert back["id"] == "x-1"


def test_per_key_order_with_two_consumers_and_nacks(start_bus):
    """Three keys, eight messages each, two competing consumers that nack about a third of
    first deliveries: each key's messages must be delivered one at a time and in order."""
    bus = start_bus({"queues": {"orders": fast_queue(
        max_deliveries=0, backoff={"initial": "20ms", "max": "100ms", "multiplier": 2})}})
    keys = ["k1", "k2", "k3"]
    per_key = 8
    for i in range(per_key):
        for k in keys:
            r = bus.client.publish("orders", f"{k}:{i}", {
                "ce-specversion": "1.0", "ce-id": f"{k}-{i}", "ce-source": "/t",
                "ce-type": "cmd", "ce-partitionkey": k})
            assert r.status == 201, r

    lock = threading.Lock()
    held: dict[str, str] = {}         # key -> consumer holding a delivery of it
    acked: dict[str, list[int]] = {k: [] for k in keys}
    violations: list[str] = []
    done = threading.Event()
    rng = random.Random(7)

    def consume(name: str):
        deadline = time.monotonic() + 40
        while not done.is_set() and time.monotonic() < deadline:
            batch = bus.client.messages("queues/orders", max=3, wait="200ms")
            for m in batch:
                k, i = m["partitionkey"], int(m["data"].split(":")[1])
                with lock:
                    if k in held:
                        violations.append(f"{name} got {m['id']} while {held[k]} held key {k}")
                    held[k] = name
                    if i != len(acked[k]):
                        violations.append(f"{name} got {m['id']} but {k} had {acked[k]} acked")
                    nack = m["attempt"] == 1 and rng.random() < 0.35
                    # Released before settling: the next delivery of the key can only come
                    # after the bus has processed this settle.
                    del held[k]
                    if not nack:
                        acked[k].append(i)
                if nack:
                    r = bus.client.nack("queues/orders", [m["receipt"]])
                else:
                    r = bus.client.ack("queues/orders", [m["receipt"]])
                assert r.status == 200, r
            with lock:
                if all(len(v) == per_key for v in acked.values()):
                    done.set()

    threads = [threading.Thread(target=consume, args=(n,)) for n in ("c1", "c2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not violations, violations[:5]
    assert acked == {k: list(range(per_key)) for k in keys}
    s = bus.client.stats("queues/orders")
    assert s["counts"]["nacked"] > 0, "no nacks happened: the test did not test what it says"
    assert s["counts"]["acked"] == per_key * len(keys)


def test_one_message_per_key_out_at_a_time_and_a_poison_key_blocks_only_itself(start_bus):
    bus = start_bus({"queues": {"orders": fast_queue()}})
    for i in range(3):
        for k in ("a", "b"):
            bus.client.publish("orders", f"{k}{i}", {"ce-specversion": "1.0", "ce-id": f"{k}{i}",
                                                     "ce-source": "/t", "ce-type": "c",
                                                     "ce-partitionkey": k})
    bus.client.publish("orders", b"free", {"idempotency-key": "nokey"})
    first = bus.client.messages("queues/orders", max=10)
    assert sorted(m["id"] for m in first) == ["a0", "b0", "nokey"]
    assert bus.client.stats("queues/orders")["blocked"] == 4
    # Key a's head stays out (a slow or poison message); key b moves on in order.
    by_id = {m["id"]: m for m in first}
    for expect in ("b1", "b2"):
        bus.client.ack("queues/orders", [by_id.pop("b0" if expect == "b1" else "b1")["receipt"]])
        [m] = bus.client.messages("queues/orders", max=10)
        assert m["id"] == expect
        by_id[m["id"]] = m
    assert bus.client.messages("queues/orders", max=10) == []
