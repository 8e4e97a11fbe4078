"""PUT of a subscription's backoff and push: what it sets is what runs (a nack waits the new
backoff; a push goes to the new service), a partial object changes only its fields, both
survive kill -9, and a bad body is a 400 that changes nothing. Timings are coarse (5x margins)."""

import re
import threading
import time

import pytest

from bus_support import cloud_event, nats_difference, start_bus  # noqa: F401 - fixture
from conftest import py_upstream, read_http_message, wait_until  # noqa: F401 - fixture


@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (the contract suite, docs/bus.md "Backends")."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")

SUB = "/v1/topics/orders/subscriptions/work"
INBOX = "topics/orders/subscriptions/work"


@pytest.fixture
def bus(start_bus):
    return start_bus({"topics": {"orders": {}}})


def put(bus, body, path=SUB):
    return bus.client.request("PUT", path, body)


def redelivery_wait(bus, ce_id: str, wait: str = "10s") -> float:
    """Publishes ce_id, pulls and nacks it (no delay: the backoff applies), and returns how long
    the redelivery took to arrive."""
    assert bus.client.publish_event("orders", cloud_event(ce_id)).status == 201
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


# --- push


class Hook:
    """A subscriber that answers every push 204 (or, with hang, never: the push times out) and
    records (path, ce-id) of each."""

    def __init__(self, py_upstream, hang: float = 0):
        self.lock = threading.Lock()
        self.got: list[tuple[str, str]] = []
        self.hang = hang
        self.up = py_upstream(self.handler)

    def handler(self, conn, index, up):
        msg = read_http_message(conn, bytearray())
        if msg is None:
            return
        head = msg.partition(b"\r\n\r\n")[0]
        path = head.split(b" ", 2)[1].decode()
        ce_id = re.search(rb"(?im)^ce-id:\s*(\S+)", head).group(1).decode()
        with self.lock:
            self.got.append((path, ce_id))
        if self.hang:
            time.sleep(self.hang)
            return
        conn.sendall(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")

    def ids(self) -> list[str]:
        with self.lock:
            return [i for _, i in self.got]

    def paths(self) -> set[str]:
        with self.lock:
            return {p for p, _ in self.got}


@pytest.fixture
def hooks(start_bus, py_upstream):
    """(bus, a, b): a topic `orders` and services `a` and `b`, each a Hook."""
    a, b = Hook(py_upstream), Hook(py_upstream)
    bus = start_bus({"topics": {"orders": {}}},
                    {"a": {"endpoints": [a.up.address]}, "b": {"endpoints": [b.up.address]}})
    return bus, a, b


def publish(bus, *ids):
    for i in ids:
        assert bus.client.publish_event("orders", cloud_event(i)).status == 201


def acked(bus) -> int:
    return bus.client.stats(INBOX)["counts"]["acked"]


def test_put_push_delivers_a_change_moves_it_and_null_returns_to_pull(hooks, bus_backend):
    nats_difference(bus_backend, "Backends (push changes)")
    bus, a, b = hooks
    r = put(bus, {"push": {"service": "a", "path": "/hook", "timeout": "2s", "concurrency": 2}})
    assert r.status == 200, r
    assert bus.client.stats(INBOX)["push"] == {"service": "a", "path": "/hook", "timeout": "2s",
                                              "concurrency": 2}
    publish(bus, "e1", "e2", "e3")
    wait_until(lambda: sorted(a.ids()) == ["e1", "e2", "e3"], 10, 0.05, "pushes to a")
    wait_until(lambda: acked(bus) == 3, 10, 0.05, "the pushes to be acked")
    assert a.paths() == {"/hook"}

    # A partial push changes the service only; the path stays.
    assert put(bus, {"push": {"service": "b"}}).status == 200
    assert bus.client.stats(INBOX)["push"]["service"] == "b"
    publish(bus, "e4", "e5")
    wait_until(lambda: sorted(b.ids()) == ["e4", "e5"], 10, 0.05, "pushes to b")
    assert b.paths() == {"/hook"}
    wait_until(lambda: acked(bus) == 5, 10, 0.05, "the pushes to be acked")
    assert a.ids() == ["e1", "e2", "e3"]  # the replaced push sends nothing more

    # null: back to pull; nothing is pushed any more.
    assert put(bus, {"push": None}).status == 200
    assert bus.client.stats(INBOX)["push"] is None
    publish(bus, "e6")
    [m] = bus.client.messages(INBOX, wait="5s")
    assert m["id"] == "e6"
    assert bus.client.ack(INBOX, [m["receipt"]]).status == 200
    time.sleep(0.5)
    assert a.ids() == ["e1", "e2", "e3"] and sorted(b.ids()) == ["e4", "e5"]


def test_put_push_survives_kill_9_and_so_does_turning_it_off(hooks):
    bus, a, b = hooks
    assert put(bus, {"push": {"service": "a", "path": "/in"}}).status == 200
    bus.restart(kill=True)
    assert bus.client.stats(INBOX)["push"] == {"service": "a", "path": "/in", "timeout": "10s",
                                              "concurrency": 1}
    publish(bus, "after-kill")
    wait_until(lambda: a.ids() == ["after-kill"], 10, 0.05, "a push after the restart")
    wait_until(lambda: acked(bus) == 1, 10, 0.05, "the push to be acked")

    assert put(bus, {"push": None}).status == 200
    bus.restart(kill=True)
    assert bus.client.stats(INBOX)["push"] is None
    publish(bus, "pulled")
    [m] = bus.client.messages(INBOX, wait="5s")
    assert m["id"] == "pulled"
    time.sleep(0.5)
    assert a.ids() == ["after-kill"] and b.ids() == []


def test_delete_stops_the_push_and_a_new_put_starts_fresh(hooks):
    bus, a, b = hooks
    assert put(bus, {"push": {"service": "a"}}).status == 200
    publish(bus, "x1")
    wait_until(lambda: a.ids() == ["x1"], 10, 0.05, "the push")
    assert bus.client.request("DELETE", SUB).status == 204
    assert put(bus, {}).status == 200  # the same name again: pull, nothing of the old one
    assert bus.client.stats(INBOX)["push"] is None
    publish(bus, "x2")
    [m] = bus.client.messages(INBOX, wait="5s")
    assert m["id"] == "x2"
    time.sleep(0.5)
    assert a.ids() == ["x1"]


@pytest.mark.parametrize("body, message", [
    ({"push": {"service": "nope"}},
     "'push.service': unknown service 'nope' (the config's services: a, b)"),
    ({"push": {"service": "b", "retries": 3}}, "unknown push key 'retries'"),
    ({"push": {"service": "b", "timeout": "soon"}}, "'push.timeout' must be a positive duration"),
    ({"push": {"service": "b", "path": "hook"}}, "'push.path' must be a path starting with '/'"),
    ({"push": {"service": "b", "concurrency": 0}}, "'push.concurrency' must be an integer"),
    ({"push": "b"}, "'push' must be an object, or null to turn push off"),
    ({"backoff": {"initial": "1s"}, "push": {"service": "nope"}}, "unknown service 'nope'"),
])
def test_bad_push_is_400_and_changes_nothing(hooks, body, message):
    bus, a, b = hooks
    assert put(bus, {"push": {"service": "a", "path": "/a"}}).status == 200
    before = bus.client.stats(INBOX)
    r = put(bus, body)
    assert r.status == 400, r
    error = r.json()["error"]
    assert (error["code"], error["status"]) == ("bad_request", 400)
    assert message in error["message"], error
    after = bus.client.stats(INBOX)
    assert (after["push"], after["backoff"]) == (before["push"], before["backoff"])
    # Still pushing to a, as before.
    publish(bus, "still-a")
    wait_until(lambda: a.ids() == ["still-a"], 10, 0.05, "the push to a")
    assert b.ids() == []
    # A new subscription needs a service to push to.
    r = put(bus, {"push": {"path": "/x"}}, "/v1/topics/orders/subscriptions/new")
    assert r.status == 400 and "'push' needs 'service'" in r.json()["error"]["message"], r


def test_declared_push_can_be_changed_by_put_until_the_next_start(start_bus, py_upstream,
                                                                  bus_backend):
    nats_difference(bus_backend, "Backends (push changes)")
    """A subscription declared with push in the config pushes; a PUT changes it while the node
    runs; the next start declares the config's push again."""
    a, b = Hook(py_upstream), Hook(py_upstream)
    bus = start_bus({"topics": {"orders": {"subscriptions": {"work": {
                        "push": {"service": "a", "path": "/declared"}}}}}},
                    {"a": {"endpoints": [a.up.address]}, "b": {"endpoints": [b.up.address]}})
    assert bus.client.stats(INBOX)["push"] == {"service": "a", "path": "/declared",
                                              "timeout": "10s", "concurrency": 1}
    publish(bus, "d1")
    wait_until(lambda: a.ids() == ["d1"], 10, 0.05, "the declared push")
    assert put(bus, {"push": {"service": "b"}}).status == 200
    publish(bus, "d2")
    wait_until(lambda: b.ids() == ["d2"], 10, 0.05, "the push set by PUT")
    assert b.paths() == {"/declared"}
    bus.restart(kill=True)
    assert bus.client.stats(INBOX)["push"]["service"] == "a"
    publish(bus, "d3")
    wait_until(lambda: a.ids() == ["d1", "d3"], 10, 0.05, "the declared push again")
    assert b.ids() == ["d2"]


def test_a_replaced_push_finishes_its_deliveries_before_the_new_one_starts(start_bus,
                                                                           py_upstream, bus_backend):
    nats_difference(bus_backend, "Backends (push changes)")
    """concurrency holds across a change: with concurrency 1, the new push sends nothing while
    the old one's delivery is still in flight (here: until its 3s timeout)."""
    a, b = Hook(py_upstream, hang=6), Hook(py_upstream)
    bus = start_bus({"topics": {"orders": {}}},
                    {"a": {"endpoints": [a.up.address]}, "b": {"endpoints": [b.up.address]}})
    assert put(bus, {"backoff": {"initial": "100ms", "max": "100ms"},
                     "push": {"service": "a", "timeout": "3s"}}).status == 200
    publish(bus, "h1")
    wait_until(lambda: a.ids() == ["h1"], 10, 0.05, "the push to a")
    start = time.monotonic()
    assert put(bus, {"push": {"service": "b", "timeout": "1s"}}).status == 200
    publish(bus, "h2")
    time.sleep(0.5)
    assert b.ids() == [], "the new push started while the old one had a delivery in flight"
    # Once a's push timed out (a failed delivery: nacked), b gets both.
    wait_until(lambda: sorted(b.ids()) == ["h1", "h2"], 15, 0.05, "both pushes to b")
    assert time.monotonic() - start > 3 / 5
    wait_until(lambda: acked(bus) == 2, 10, 0.05, "the pushes to be acked")
    assert a.ids() == ["h1"]
