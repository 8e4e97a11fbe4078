"""De-duplication by message id (ce-id or Idempotency-Key): answered duplicate:true and stored
once, within one run, across a clean restart and across kill -9."""

import json

import pytest

from bus_support import fast_queue, start_bus, stored_ever  # noqa: F401 - fixture


@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (the contract suite, docs/bus.md "Backends")."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")

Q = "queues/work"


@pytest.fixture
def bus(start_bus):
    return start_bus({"queues": {"work": fast_queue()},
                      "topics": {"events": {"subscriptions": {"all": {}}}}})


def binary(ce_id: str) -> dict:
    return {"ce-specversion": "1.0", "ce-id": ce_id, "ce-source": "/test", "ce-type": "t"}


def assert_stored_once(bus, inbox: str, ce_id: str, data: str):
    got = bus.client.drain(inbox, quiet="500ms")
    assert [m["id"] for m in got] == [ce_id], got
    assert got[0]["data"] == data


@pytest.mark.parametrize("headers", [binary("dup-1"), {"idempotency-key": "dup-1"}],
                         ids=["ce-id", "idempotency-key"])
def test_same_id_is_duplicate_and_stored_once(bus, headers):
    first = bus.client.publish("work", b"first", headers)
    assert first.status == 201, first
    assert first.json()["duplicate"] is False
    second = bus.client.publish("work", b"second", headers)
    assert second.status == 201, second
    assert second.json() == {"id": "dup-1", "sequence": first.json()["sequence"],
                             "duplicate": True}
    s = bus.client.stats("queues/work")
    assert stored_ever(s) == 1
    assert s["counts"]["duplicates"] == 1
    assert_stored_once(bus, Q, "dup-1", "first")


def test_structured_event_id_deduplicates_on_a_topic(bus):
    event = {"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "data": "one"}
    assert bus.client.publish_event("events", event).json()["duplicate"] is False
    assert bus.client.publish_event("events", event).json()["duplicate"] is True
    assert bus.client.stats("topics/events")["duplicates"] == 1
    got = bus.client.drain("topics/events/subscriptions/all", quiet="500ms")
    assert [m["id"] for m in got] == ["e-1"]


def test_duplicate_within_one_batch_is_stored_once(bus):
    batch = [{"specversion": "1.0", "id": "b-1", "source": "/s", "type": "t"}] * 2
    r = bus.client.request("POST", "/v1/queues/work/messages", json.dumps(batch),
                           {"content-type": "application/cloudevents-batch+json"})
    assert r.status == 201, r
    assert [x["duplicate"] for x in r.json()["results"]] == [False, True]
    assert [m["id"] for m in bus.client.drain(Q, quiet="500ms")] == ["b-1"]


def test_different_ids_are_not_duplicates(bus):
    assert bus.client.publish("work", b"a", {"idempotency-key": "a"}).json()["duplicate"] is False
    assert bus.client.publish("work", b"b", {"idempotency-key": "b"}).json()["duplicate"] is False
    assert len(bus.client.drain(Q, quiet="500ms")) == 2


def test_an_acked_message_is_still_a_duplicate(bus):
    bus.client.publish("work", b"x", {"idempotency-key": "gone"})
    assert len(bus.client.drain(Q, quiet="300ms")) == 1
    r = bus.client.publish("work", b"x", {"idempotency-key": "gone"})
    assert r.json()["duplicate"] is True
    assert bus.client.messages(Q, wait="500ms") == []


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill-9"])
def test_dedup_survives_a_restart(bus, kill):
    first = bus.client.publish("work", b"before", binary("survivor"))
    assert first.status == 201 and first.json()["duplicate"] is False
    bus.restart(kill=kill)
    again = bus.client.publish("work", b"after", binary("survivor"))
    assert again.status == 201, again
    assert again.json()["duplicate"] is True
    assert again.json()["sequence"] == first.json()["sequence"]
    # A new id after the restart is stored, after the old one.
    fresh = bus.client.publish("work", b"new", {"idempotency-key": "fresh"})
    assert fresh.json()["duplicate"] is False
    assert fresh.json()["sequence"] == first.json()["sequence"] + 1
    got = bus.client.drain(Q, quiet="500ms")
    assert [(m["id"], m["data"]) for m in got] == [("survivor", "before"), ("fresh", "new")]


def test_replayed_dead_letter_is_not_blocked_by_dedup(start_bus):
    bus = start_bus({"queues": {"work": fast_queue(max_deliveries=1)}})
    bus.client.publish("work", b"x", {"idempotency-key": "dl"})
    [m] = bus.client.messages(Q)
    bus.client.nack(Q, [m["receipt"]])
    r = bus.client.request("POST", "/v1/queues/work/dead-letters/replay", {"ids": ["dl"]})
    assert r.json() == {"replayed": 1}, r
    [back] = bus.client.messages(Q, wait="5s")
    assert back["id"] == "dl"
