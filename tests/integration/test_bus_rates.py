"""Rates in the bus stats API: per second, averaged over the last minute (or over the time since
the node started, at least 1 s). Bounds are coarse: N events since the node started must show a
rate between N / (seconds since before the start) and N / 1 s. That catches a rate in the wrong
unit (per minute, per millisecond) or one that never moves, and asserts no speed. On both
backends (on NATS from the node's own counters, docs/bus.md "Backends").

The fall back to zero a minute after the traffic stops is tested on a fake clock
(src/bus/engine/stats_rates_test.cpp, rate_meter_test.cpp): here it would cost a minute."""

import re
import time

import pytest

from bus_support import fast_queue, start_bus, wait_until  # noqa: F401 - fixture

Q = "queues/jobs"
SLACK = 0.002  # rates are rounded to a thousandth


@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (on NATS the rates are the node's own counters')."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")


def within(rate: float, count: int, since: float) -> bool:
    """A rate of `count` events counted over at most `since` seconds (and at least 1)."""
    return count / max(1.0, time.monotonic() - since) - SLACK <= rate <= count + SLACK


def test_queue_stats_show_publish_deliver_ack_and_nack_rates(start_bus):
    before = time.monotonic()
    bus = start_bus({"queues": {"jobs": fast_queue()}})
    idle = bus.client.stats(Q)["rates"]
    assert idle == {"publish": 0, "deliver": 0, "redeliver": 0, "ack": 0, "nack": 0,
                    "dead_letter": 0}

    for i in range(20):
        assert bus.client.publish("jobs", f"m{i}").status == 201
    got = bus.client.messages(Q, max=10, wait="5s")
    assert len(got) == 10
    assert bus.client.ack(Q, [m["receipt"] for m in got[:6]]).status == 200
    assert bus.client.nack(Q, [m["receipt"] for m in got[6:]], delay="1m").status == 200

    raw = bus.client.request("GET", f"/v1/{Q}").body.decode()
    # Fractions are written as people write them (0.667), not as Boost.JSON does (6.67E-1).
    assert not re.search(r"\d[eE][-+]?\d", raw), raw
    r = bus.client.stats(Q)["rates"]
    assert within(r["publish"], 20, before), r
    assert within(r["deliver"], 10, before), r
    assert within(r["ack"], 6, before), r
    assert within(r["nack"], 4, before), r
    assert (r["redeliver"], r["dead_letter"]) == (0, 0), r


def test_redeliveries_and_dead_letters_have_rates(start_bus):
    before = time.monotonic()
    bus = start_bus({"queues": {"jobs": fast_queue(max_deliveries=2)}})
    assert bus.client.publish("jobs", "poison").status == 201
    [m] = bus.client.messages(Q, wait="5s")
    assert bus.client.nack(Q, [m["receipt"]], delay="0s").status == 200
    [m2] = bus.client.messages(Q, wait="5s")
    assert m2["attempt"] == 2
    assert bus.client.nack(Q, [m2["receipt"]]).status == 200  # the 2nd delivery: dead
    # On NATS the dead letter counts once its copy is stored, a moment after the nack's answer.
    r = wait_until(lambda: (r := bus.client.stats(Q)["rates"])["dead_letter"] > 0 and r, 10, 0.05,
                   "the dead letter")
    assert within(r["deliver"], 2, before), r
    assert within(r["redeliver"], 1, before), r
    assert within(r["nack"], 2, before), r
    assert within(r["dead_letter"], 1, before), r


def test_topic_has_a_publish_rate_and_each_subscription_its_own_rates(start_bus):
    before = time.monotonic()
    sub = fast_queue()
    bus = start_bus({"topics": {"orders": {"subscriptions": {"audit": dict(sub),
                                                             "billing": dict(sub)}}}})
    for i in range(12):
        r = bus.client.publish_event("orders", {"specversion": "1.0", "id": f"o-{i}",
                                                "source": "/shop", "type": "order.created"})
        assert r.status == 201, r
    audit = "topics/orders/subscriptions/audit"
    got = bus.client.messages(audit, max=100, wait="5s")
    assert len(got) == 12
    assert bus.client.ack(audit, [m["receipt"] for m in got]).status == 200

    topic = bus.client.stats("topics/orders")
    assert set(topic["rates"]) == {"publish"}
    assert within(topic["rates"]["publish"], 12, before), topic["rates"]
    a = topic["subscriptions"]["audit"]["rates"]
    b = topic["subscriptions"]["billing"]["rates"]
    # A subscription publishes nothing itself: its rates are its consumers'.
    assert set(a) == {"deliver", "redeliver", "ack", "nack", "dead_letter"}
    assert within(a["deliver"], 12, before) and within(a["ack"], 12, before), a
    assert b == {"deliver": 0, "redeliver": 0, "ack": 0, "nack": 0, "dead_letter": 0}
    one = bus.client.stats(audit)["rates"]
    assert within(one["ack"], 12, before), one
