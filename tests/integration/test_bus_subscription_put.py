"""PUT of a subscription's backoff and push: what it sets is what runs (a nack waits the new
backoff; a push goes to the new service), a partial object changes only its fields, both
survive kill -9, and a bad body is a 400 that changes nothing. Timings are coarse (5x margins)."""

import time

import pytest

from bus_support import start_bus  # noqa: F401 - fixture

SUB = "/v1/topics/orders/subscriptions/work"
INBOX = "topics/orders/subscriptions/work"


def event(ce_id: str, type_: str = "order.created") -> dict:
    return {"specversion": "1.0", "id": ce_id, "source": "/shop", "type": type_}


@pytest.fixture
def bus(start_bus):
    return start_bus({"topics": {"orders": {}}})


def put(bus, body, path=SUB):
    return bus.client.request("PUT", path, body)


def redelivery_wait(bus, ce_id: str, wait: str = "10s") -> float:
    """Publishes ce_id, pulls and nacks it (no delay: the backoff applies), and returns how long
    the redelivery took to arrive."""
    assert bus.client.publish_event("orders", event(ce_id)).status == 201
    [m] = bus.client.messages(INBOX, wait="5s")
    assert m["id"] == ce_id
    assert bus.client.nack(INBOX, [m["receipt"]]).status == 200
    start = time.monotonic()
    [again] = bus.client.messages(INBOX, wait=wait)
    elapsed = time.monotonic() - start
    assert (again["id"], again["attempt"]) == (ce_id, 2)
    assert bus.client.ack(INBOX, [again["receipt"]]).status == 200
    return elapsed


def test_put_backoff_sets_the_redelivery_wait(bus):
    r = put(bus, {"backoff": {"initial": "2s", "max": "2s", "multiplier": 1}})
    assert r.status == 200, r
    s = bus.client.stats(INBOX)
    assert s["backoff"] == {"initial": "2s", "max": "2s", "multiplier": 1.0}
    assert redelivery_wait(bus, "slow") > 2 / 5
    # A partial backoff changes only its fields; the rest stays as it runs now.
    r = put(bus, {"backoff": {"initial": "100ms"}})
    assert r.status == 200, r
    s = bus.client.stats(INBOX)
    assert s["backoff"] == {"initial": "100ms", "max": "2s", "multiplier": 1.0}
    assert redelivery_wait(bus, "fast") < 0.1 * 5


def test_put_backoff_survives_kill_9(bus):
    backoff = {"initial": "150ms", "max": "700ms", "multiplier": 3.0}
    assert put(bus, {"filter": {"type": "order.*"}, "backoff": backoff}).status == 200
    bus.restart(kill=True)
    s = bus.client.stats(INBOX)
    assert s["backoff"] == backoff and s["filter"] == {"type": "order.*"}
    # The restored backoff is in force: ~150ms, where the default would wait 1s.
    assert redelivery_wait(bus, "after-restart") < 0.75
    # A later partial PUT changes only the multiplier, and that survives too.
    assert put(bus, {"backoff": {"multiplier": 1.5}}).status == 200
    bus.restart(kill=True)
    assert bus.client.stats(INBOX)["backoff"] == dict(backoff, multiplier=1.5)


@pytest.mark.parametrize("body, message", [
    ({"backoff": {"initial": "soon"}}, "'backoff.initial' must be a positive duration"),
    ({"backoff": {"initial": "0s"}}, "'backoff.initial' must be a positive duration"),
    ({"backoff": {"max": "10ms"}}, "'backoff.max' (10ms) must be at least 'backoff.initial'"),
    ({"backoff": {"multiplier": 0.5}}, "'backoff.multiplier' must be a number >= 1"),
    ({"backoff": {"jitter": "1s"}}, "unknown backoff key 'jitter'"),
    ({"backoff": "1s"}, "'backoff' must be an object"),
    ({"lease": "1m", "backoff": {"initial": "x"}}, "'backoff.initial'"),
])
def test_bad_backoff_is_400_and_changes_nothing(bus, body, message):
    assert put(bus, {"lease": "20s", "backoff": {"initial": "200ms", "max": "1s"}}).status == 200
    before = bus.client.stats(INBOX)
    r = put(bus, body)
    assert r.status == 400, r
    error = r.json()["error"]
    assert (error["code"], error["status"]) == ("bad_request", 400)
    assert message in error["message"], error
    after = bus.client.stats(INBOX)
    assert {k: after[k] for k in ("lease", "backoff", "filter", "max_deliveries")} == \
        {k: before[k] for k in ("lease", "backoff", "filter", "max_deliveries")}
    # A bad body never creates the subscription it names.
    r = put(bus, body, "/v1/topics/orders/subscriptions/never")
    assert r.status == 400, r
    subs = bus.client.request("GET", "/v1/topics/orders/subscriptions").json()["subscriptions"]
    assert subs == ["work"]
