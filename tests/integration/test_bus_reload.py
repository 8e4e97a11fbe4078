"""A config reload (SIGHUP) reaches the bus: new queues, topics and subscriptions are declared,
the others take their new options, and pushes follow their new settings and their service's.
What only a restart changes is logged and runs on unchanged."""

import copy

from bus_support import cloud_event, fast_queue, start_bus  # noqa: F401 - fixture
from conftest import py_upstream, read_http_message, wait_until  # noqa: F401 - fixture


def recording_subscriber(seen: list):
    """A push subscriber that records each body and answers 204."""

    def handler(conn, index, up):
        buf = bytearray()
        msg = read_http_message(conn, buf)
        if msg is None:
            return
        seen.append(msg.partition(b"\r\n\r\n")[2])
        conn.sendall(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    return handler


def test_reload_declares_new_queues_topics_and_subscriptions(start_bus):
    bus = start_bus({"queues": {"a": fast_queue()},
                     "topics": {"t": {"subscriptions": {"s1": {}}}}})
    c = bus.client
    assert c.publish("b", "x").status == 404
    assert c.publish_event("u", cloud_event("e-0", data={"n": 0})).status == 404

    config = copy.deepcopy(bus.config)
    config["bus"]["queues"]["b"] = fast_queue()
    config["bus"]["topics"]["t"]["subscriptions"]["s2"] = {"lease": "20s"}
    config["bus"]["topics"]["u"] = {}
    bus.ferry.reload(config)
    assert bus.ferry.metric("ferry_config_reload_failures_total") == 0

    r = c.publish("b", "for-b")
    assert r.status == 201, r
    assert [m["data"] for m in c.messages("queues/b")] == ["for-b"]
    assert c.publish_event("u", cloud_event("e-1", data={"n": 1})).status == 201
    assert c.publish_event("t", cloud_event("e-2", data={"n": 2})).status == 201
    for sub in ("s1", "s2"):
        got = c.messages(f"topics/t/subscriptions/{sub}", max=10)
        assert [m["id"] for m in got] == ["e-2"], (sub, got)
    assert c.stats("topics/t/subscriptions/s2")["lease"] == "20s"
    # What was there before the reload is untouched.
    assert c.publish("a", "still").status == 201


def test_reload_updates_options_in_force(start_bus):
    bus = start_bus({"queues": {"a": fast_queue(lease="30s")},
                     "topics": {"t": {"subscriptions": {"s": {"lease": "30s"}}}}})
    c = bus.client
    config = copy.deepcopy(bus.config)
    config["bus"]["queues"]["a"]["lease"] = "1s"
    config["bus"]["topics"]["t"]["subscriptions"]["s"]["lease"] = "2s"
    config["bus"]["topics"]["t"]["subscriptions"]["s"]["filter"] = {"type": "order.*"}
    bus.ferry.reload(config)

    s = c.stats("topics/t/subscriptions/s")
    assert (s["lease"], s["filter"]) == ("2s", {"type": "order.*"}), s
    # The queue's new lease (1s, was 30s) is in force: an unsettled delivery comes back soon.
    assert c.publish("a", "x").status == 201
    first = c.messages("queues/a")
    assert len(first) == 1
    again = wait_until(lambda: c.messages("queues/a", wait="1s"), 10, 0.1,
                       "the message to come back after the reloaded 1s lease")
    assert again[0]["id"] == first[0]["id"] and again[0]["attempt"] == 2, again


def test_reload_starts_moves_and_stops_a_queue_push(start_bus, py_upstream):
    seen_one: list = []
    seen_two: list = []
    one = py_upstream(recording_subscriber(seen_one))
    two = py_upstream(recording_subscriber(seen_two))
    services = {"sub": {"endpoints": [one.address]}}
    bus = start_bus({"queues": {"jobs": fast_queue()}}, services)
    c = bus.client
    push = {"service": "sub", "path": "/hook", "timeout": "2s"}

    # Push turned on by a reload.
    config = copy.deepcopy(bus.config)
    config["bus"]["queues"]["jobs"]["push"] = push
    bus.ferry.reload(config)
    assert c.publish("jobs", "first").status == 201
    wait_until(lambda: seen_one == [b"first"], 10, 0.05, "the push to the first endpoint")

    # The service moves to another endpoint: the push follows it.
    config = copy.deepcopy(config)
    config["services"]["sub"]["endpoints"] = [two.address]
    bus.ferry.reload(config)
    assert c.publish("jobs", "second").status == 201
    wait_until(lambda: seen_two == [b"second"], 10, 0.05, "the push to the new endpoint")
    assert seen_one == [b"first"]

    # Push removed from the config: consumers pull again.
    config = copy.deepcopy(config)
    del config["bus"]["queues"]["jobs"]["push"]
    bus.ferry.reload(config)
    assert c.publish("jobs", "third").status == 201
    got = c.messages("queues/jobs", wait="1s")
    assert [m["data"] for m in got] == ["third"], got
    assert seen_two == [b"second"]


def test_reload_logs_what_only_a_restart_changes(start_bus):
    bus = start_bus({"queues": {"a": fast_queue(), "gone": fast_queue()},
                     "topics": {"old": {}}})
    c = bus.client
    config = copy.deepcopy(bus.config)
    config["bus"]["durability"] = "interval"
    config["bus"]["dedupe_window"] = "1m"
    del config["bus"]["queues"]["gone"]
    del config["bus"]["topics"]["old"]
    bus.ferry.reload(config)
    log = bus.ferry.log_text()
    assert ("reload: bus.durability, bus.dedupe_window change only on restart; the bus runs on "
            "with the old values") in log, log
    assert "reload: queue gone left the config; it runs on until the next restart" in log
    assert "reload: topic old left the config; it runs on until the next restart" in log
    assert bus.ferry.metric("ferry_config_reload_failures_total") == 0
    # Both run on until the restart.
    assert c.publish("gone", "x").status == 201
    assert c.publish_event("old", cloud_event("e-1", data={"n": 1})).status == 201
    bus.config = config
    bus.restart()
    assert bus.client.publish("gone", "x").status == 404
    assert bus.client.publish("a", "x").status == 201


def test_reload_leaves_api_subscriptions_and_their_push_alone(start_bus, py_upstream):
    seen: list = []
    up = py_upstream(recording_subscriber(seen))
    bus = start_bus({"topics": {"t": {}}}, {"sub": {"endpoints": [up.address]}})
    c = bus.client
    r = c.request("PUT", "/v1/topics/t/subscriptions/api",
                  {"push": {"service": "sub", "timeout": "2s"}})
    assert r.status in (200, 201), r
    config = copy.deepcopy(bus.config)
    config["bus"]["queues"] = {"extra": fast_queue()}
    bus.ferry.reload(config)
    assert c.publish_event("t", cloud_event("e-7", data={"n": 7})).status == 201
    wait_until(lambda: len(seen) == 1, 10, 0.05, "the API subscription's push after the reload")
    assert c.stats("topics/t/subscriptions/api")["push"]["service"] == "sub"
