"""DELETE /v1/topics/{topic}/subscriptions/{sub}: a subscription made by PUT goes with its
cursor, messages not yet acked and dead letters, and stays gone across kill -9; a PUT of the
same name afterwards starts a fresh one. One declared in the config is 409, an unknown one 404;
a long-poll waiting on it ends."""

import json
import threading
import time

import pytest

from bus_support import cloud_event, fast_queue, nats_difference, start_bus  # noqa: F401
from test_bus_nats import nats_request


@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (the contract suite, docs/bus.md "Backends")."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")

TOPIC = "/v1/topics/orders/subscriptions"
S = "topics/orders/subscriptions/shipping"


@pytest.fixture
def bus(start_bus):
    return start_bus({"topics": {"orders": {"subscriptions": {"audit": fast_queue()}}}})


def put_shipping(bus, **body):
    r = bus.client.request("PUT", f"{TOPIC}/shipping", {"max_deliveries": 1, **body})
    assert r.status == 200, r


def subscriptions(bus) -> list[str]:
    r = bus.client.request("GET", TOPIC)
    assert r.status == 200, r
    return sorted(r.json()["subscriptions"])


def test_delete_is_204_and_the_subscription_is_gone_with_its_directory(bus):
    put_shipping(bus)
    for i in range(3):
        r = bus.client.publish_event("orders", cloud_event(f"s-{i}", "ship.requested"))
        assert r.status == 201, r
    [held] = bus.client.messages(S, wait="5s")
    [dead] = bus.client.messages(S, wait="5s")
    assert bus.client.nack(S, [dead["receipt"]]).status == 200  # max_deliveries 1
    assert bus.client.stats(S)["dead_letters"] == 1

    r = bus.client.request("DELETE", f"{TOPIC}/shipping")
    assert (r.status, r.body) == (204, b""), r
    assert subscriptions(bus) == ["audit"]
    for method, path, body in [("GET", f"{TOPIC}/shipping", None),
                               ("GET", f"/v1/{S}/messages", None),
                               ("GET", f"/v1/{S}/dead-letters", None),
                               ("POST", f"/v1/{S}/ack", {"receipts": [held["receipt"]]})]:
        r = bus.client.request(method, path, body)
        assert r.status == 404, (method, path, r)
        assert r.json()["error"]["code"] == "not_found"
    if bus.config["bus"].get("backend") != "nats":  # NATS: the consumer is gone (below)
        subs_dir = bus.data_dir / "topics" / "orders" / "subscriptions"
        assert sorted(p.name for p in subs_dir.iterdir()) == ["audit"]
    else:
        port = int(bus.config["bus"]["nats"]["servers"][0].rsplit(":", 1)[1])
        names = json.loads(nats_request(port, "$JS.API.CONSUMER.NAMES.FERRY_T_orders"))
        assert sorted(names["consumers"]) == ["audit"], names
    # The other subscription keeps every event.
    assert [m["id"] for m in bus.client.drain("topics/orders/subscriptions/audit",
                                              quiet="300ms")] == ["s-0", "s-1", "s-2"]


def test_delete_survives_kill_9_and_a_new_put_starts_fresh(bus, bus_backend):
    put_shipping(bus)
    assert bus.client.publish_event("orders", cloud_event("old-1", "ship.requested")).status == 201
    assert bus.client.publish_event("orders", cloud_event("old-2", "ship.requested")).status == 201
    [m] = bus.client.messages(S, wait="5s")
    assert bus.client.nack(S, [m["receipt"]]).status == 200  # a dead letter
    assert bus.client.request("DELETE", f"{TOPIC}/shipping").status == 204

    bus.restart(kill=True)
    assert subscriptions(bus) == ["audit"]
    assert bus.client.request("GET", f"{TOPIC}/shipping").status == 404

    put_shipping(bus, max_deliveries=5)
    fresh = bus.client.stats(S)
    assert (fresh["depth"], fresh["in_flight"], fresh["dead_letters"]) == (0, 0, 0), fresh
    assert bus.client.request("GET", f"/v1/{S}/dead-letters").json() == {"dead_letters": []}
    assert bus.client.publish_event("orders", cloud_event("new-1", "ship.requested")).status == 201
    got = bus.client.messages(S, max=10, wait="5s")
    assert [(m["id"], m["attempt"]) for m in got] == [("new-1", 1)]

    # The new one is an ordinary subscription: it persists across kill -9.
    bus.restart(kill=True)
    assert subscriptions(bus) == ["audit", "shipping"]
    nats_difference(bus_backend, "Backends (deliveries in flight at a crash)")
    assert subscriptions(bus) == ["audit", "shipping"]
    # Its unacked delivery comes back (its lease died with the process), the old events never
    # do.
    got = bus.client.messages(S, max=10, wait="5s")
    assert [(m["id"], m["attempt"]) for m in got] == [("new-1", 2)]


def test_a_subscription_from_the_config_is_409_and_stays(bus):
    r = bus.client.request("DELETE", f"{TOPIC}/audit")
    assert r.status == 409, r
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert (error["code"], error["status"]) == ("conflict", 409)
    assert "config" in error["message"]
    assert subscriptions(bus) == ["audit"]


def test_a_subscription_taken_out_of_the_config_can_be_deleted_after_a_restart(bus):
    assert bus.client.publish_event("orders", cloud_event("a-1", "ship.requested")).status == 201
    del bus.config["bus"]["topics"]["orders"]["subscriptions"]["audit"]
    bus.restart()
    # It lives on in data_dir, events and all, as one made by PUT would.
    assert subscriptions(bus) == ["audit"]
    assert bus.client.stats("topics/orders/subscriptions/audit")["depth"] == 1
    assert bus.client.request("DELETE", f"{TOPIC}/audit").status == 204
    bus.restart()
    assert subscriptions(bus) == []


@pytest.mark.parametrize("path", [f"{TOPIC}/nobody", "/v1/topics/nothing/subscriptions/audit"])
def test_deleting_an_unknown_subscription_is_404(bus, path):
    r = bus.client.request("DELETE", path)
    assert r.status == 404, r
    assert r.json()["error"]["code"] == "not_found"


def test_deleting_twice_is_404_the_second_time(bus):
    put_shipping(bus)
    assert bus.client.request("DELETE", f"{TOPIC}/shipping").status == 204
    r = bus.client.request("DELETE", f"{TOPIC}/shipping")
    assert r.status == 404, r


def test_a_long_poll_on_a_deleted_subscription_ends(bus):
    put_shipping(bus)
    answer = {}

    def poll():
        start = time.monotonic()
        answer["reply"] = bus.client.receive(S, wait="30s", timeout=40)
        answer["took"] = time.monotonic() - start

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)  # let it wait
    assert bus.client.request("DELETE", f"{TOPIC}/shipping").status == 204
    t.join(timeout=10)
    assert not t.is_alive(), "the long-poll outlived its subscription"
    r = answer["reply"]
    assert r.status == 404, r
    assert r.json()["error"]["code"] == "not_found"
    assert answer["took"] < 10
