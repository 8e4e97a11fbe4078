"""Push delivery: the bus POSTs each message (CloudEvents binary mode) to a service; a 2xx acks
it, anything else or a timeout is a failed delivery that only redelivery retries."""

import json
import re
import threading
import time

import pytest

from bus_support import fast_queue, start_bus  # noqa: F401 - fixture
from conftest import py_upstream, read_http_message, wait_until  # noqa: F401 - fixture


@pytest.fixture(params=["embedded", "nats"])
def bus_backend(request):
    """Every test runs on both backends (the contract suite, docs/bus.md "Backends")."""
    return request.param


pytestmark = pytest.mark.usefixtures("bus_backend")


class Subscriber:
    """Answers each push by a rule: status_for(ce_id, attempt_seen) -> HTTP status, or None
    to never answer (the push times out). Records (ce-id, header attempt, status, headers)."""

    def __init__(self, status_for):
        self.status_for = status_for
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}
        self.log: list[tuple[str, int, int | None, bytes]] = []

    def handler(self, conn, index, up):
        buf = bytearray()
        msg = read_http_message(conn, buf)
        if msg is None:
            return
        head, _, body = msg.partition(b"\r\n\r\n")
        ce_id = re.search(rb"(?im)^ce-id:\s*(\S+)", head).group(1).decode()
        attempt = int(re.search(rb"(?im)^x-ferry-delivery-attempt:\s*(\d+)", head).group(1))
        with self.lock:
            self.seen[ce_id] = self.seen.get(ce_id, 0) + 1
            status = self.status_for(ce_id, self.seen[ce_id])
            self.log.append((ce_id, attempt, status, msg))
        if status is None:
            time.sleep(3)  # longer than the push timeout
            return
        reason = "OK" if status < 300 else "Server Error"
        conn.sendall(f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n"
                     "connection: close\r\n\r\n".encode())

    def acked_ids(self) -> set[str]:
        with self.lock:
            return {i for i, _, s, _ in self.log if s is not None and 200 <= s < 300}


def push_config(address: str, queue_overrides: dict, push_overrides: dict | None = None):
    push = {"service": "sub", "path": "/hook", "timeout": "1s", "concurrency": 4}
    push.update(push_overrides or {})
    bus = {"queues": {"jobs": fast_queue(push=push, **queue_overrides)}}
    return bus, {"sub": {"endpoints": [address]}}


def test_flaky_subscriber_gets_every_message_at_least_once(start_bus, py_upstream):
    # Fails the first two attempts of each message with 500, then answers 204.
    sub = Subscriber(lambda ce_id, n: 500 if n <= 2 else 204)
    up = py_upstream(sub.handler)
    bus_block, services = push_config(up.address, {"max_deliveries": 5})
    bus = start_bus(bus_block, services)
    ids = [f"job-{i}" for i in range(10)]
    for i in ids:
        r = bus.client.publish("jobs", f"data-{i}", {
            "ce-specversion": "1.0", "ce-id": i, "ce-source": "/t", "ce-type": "job.run",
            "ce-tenant": "acme", "content-type": "text/plain"})
        assert r.status == 201, r
    wait_until(lambda: sub.acked_ids() == set(ids), 30, 0.1, "every message to be acked by push")
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == len(ids), 10, 0.1,
               "the bus to record the acks")
    s = bus.client.stats("queues/jobs")
    assert (s["depth"], s["in_flight"], s["dead_letters"]) == (0, 0, 0), s
    assert s["counts"]["redelivered"] >= 2 * len(ids)
    # Each message: attempts 1, 2 failed, 3 acked; the attempt header counts up.
    for i in ids:
        attempts = [a for cid, a, _, _ in sub.log if cid == i]
        assert attempts == [1, 2, 3], (i, attempts)
    # Binary mode, data untouched.
    msg = next(m for cid, _, s, m in sub.log if cid == "job-3" and s == 204)
    head, _, body = msg.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /hook HTTP/1.1\r\n")
    assert body == b"data-job-3"
    for header in (b"ce-specversion: 1.0", b"ce-type: job.run", b"ce-source: /t",
                   b"ce-tenant: acme"):
        assert header in head.lower(), head
    f = bus.ferry
    assert f.metric("ferry_bus_push_total", inbox="jobs", result="acked") == len(ids)
    assert f.metric("ferry_bus_push_total", inbox="jobs", result="failed") == 2 * len(ids)
    assert f.metric("ferry_bus_deliveries_total", inbox="jobs", mode="push") == 3 * len(ids)
    time.sleep(0.5)
    assert len(sub.log) == 3 * len(ids)  # nothing delivered after its ack


def test_always_failing_subscriber_ends_in_dead_letters(start_bus, py_upstream):
    sub = Subscriber(lambda ce_id, n: 503)
    up = py_upstream(sub.handler)
    bus_block, services = push_config(up.address, {"max_deliveries": 3})
    bus = start_bus(bus_block, services)
    for i in range(3):
        bus.client.publish("jobs", b"x", {"idempotency-key": f"bad-{i}"})
    dead = wait_until(
        lambda: (d := bus.client.request("GET", "/v1/queues/jobs/dead-letters")
                 .json()["dead_letters"]) and len(d) == 3 and d,
        30, 0.1, "three dead letters")
    assert sorted(d["id"] for d in dead) == ["bad-0", "bad-1", "bad-2"]
    assert all(d["attempts"] == 3 and "max deliveries (3)" in d["reason"] for d in dead), dead
    with sub.lock:
        assert sorted(sub.seen.values()) == [3, 3, 3]  # no HTTP-level retries on top
    s = bus.client.stats("queues/jobs")
    assert (s["dead_letters"], s["depth"], s["in_flight"]) == (3, 0, 0)


def test_push_timeout_is_a_failed_delivery(start_bus, py_upstream):
    # The first attempt never gets an answer (times out after 500ms); the second is acked.
    sub = Subscriber(lambda ce_id, n: None if n == 1 else 200)
    up = py_upstream(sub.handler)
    bus_block, services = push_config(up.address, {"max_deliveries": 3},
                                      {"timeout": "500ms", "concurrency": 1})
    bus = start_bus(bus_block, services)
    start = time.monotonic()
    bus.client.publish("jobs", b"x", {"idempotency-key": "slow"})
    wait_until(lambda: sub.acked_ids() == {"slow"}, 20, 0.1, "the retried push to be acked")
    assert time.monotonic() - start >= 0.45  # not before the timeout
    wait_until(lambda: bus.ferry.metric("ferry_bus_push_total", inbox="jobs",
                                        result="timeout") == 1, 10, 0.1, "a counted timeout")
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == 1, 10, 0.1,
               "the ack")


class KeepAliveSubscriber:
    """Answers 200 to every push on the same connection (a body of `body_bytes`, sent with
    content-length or, every other answer, chunked), unless close_after says to close: then
    "connection: close" (close_after="announce") or a silent close a moment after the answer
    (close_after="silent"). Records the ce-ids it acknowledged and the ce-partitionkey of each."""

    def __init__(self, close_after: str | None = None, body_bytes: int = 20):
        self.close_after = close_after
        self.body = b"k" * body_bytes
        self.lock = threading.Lock()
        self.acked: list[str] = []
        self.keys: list[str] = []
        self.answers = 0

    def handler(self, conn, index, up):
        buf = bytearray()
        while True:
            msg = read_http_message(conn, buf)
            if msg is None:
                return
            head = msg.partition(b"\r\n\r\n")[0]
            ce_id = re.search(rb"(?im)^ce-id:\s*(\S+)", head).group(1).decode()
            key = re.search(rb"(?im)^ce-partitionkey:\s*(\S+)", head)
            with self.lock:
                self.answers += 1
                chunked = self.answers % 2 == 0
                self.acked.append(ce_id)
                if key:
                    self.keys.append(key.group(1).decode())
            extra = "connection: close\r\n" if self.close_after == "announce" else ""
            if chunked:
                conn.sendall(f"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{extra}\r\n"
                             f"{len(self.body):x}\r\n".encode() + self.body + b"\r\n0\r\n\r\n")
            else:
                conn.sendall(f"HTTP/1.1 200 OK\r\ncontent-length: {len(self.body)}\r\n"
                             f"{extra}\r\n".encode() + self.body)
            if self.close_after == "announce":
                return
            if self.close_after == "silent":
                time.sleep(0.05)  # idle in Ferry's pool when the close comes
                return

    def acked_ids(self) -> set[str]:
        with self.lock:
            return set(self.acked)


def publish_batch(bus, queue: str, ids: list[str], key=lambda i: None):
    events = []
    for n, i in enumerate(ids):
        e = {"specversion": "1.0", "id": i, "source": "/t", "type": "job.run", "data": n}
        if key(n) is not None:
            e["partitionkey"] = key(n)
        events.append(e)
    r = bus.client.request("POST", f"/v1/queues/{queue}/messages", json.dumps(events),
                           {"content-type": "application/cloudevents-batch+json"})
    assert r.status == 201, r


def test_push_reuses_keep_alive_connections(start_bus, py_upstream):
    sub = KeepAliveSubscriber()
    up = py_upstream(sub.handler)
    bus_block, services = push_config(up.address, {"max_deliveries": 5}, {"concurrency": 4})
    bus = start_bus(bus_block, services)
    ids = [f"ka-{i}" for i in range(200)]
    publish_batch(bus, "jobs", ids)
    wait_until(lambda: sub.acked_ids() == set(ids), 30, 0.1, "every message to be pushed")
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == len(ids), 10, 0.1,
               "the bus to record the acks")
    # One connection per concurrent delivery at most, kept open between deliveries (a new
    # connection per delivery would be 200).
    with up.lock:
        assert 1 <= up.accepted <= 8, up.accepted
    assert bus.ferry.metric("ferry_bus_push_total", inbox="jobs", result="failed") == 0
    s = bus.client.stats("queues/jobs")
    assert (s["depth"], s["in_flight"], s["counts"]["redelivered"]) == (0, 0, 0), s


def test_push_to_a_subscriber_that_answers_connection_close(start_bus, py_upstream):
    sub = KeepAliveSubscriber(close_after="announce")
    up = py_upstream(sub.handler)
    bus_block, services = push_config(up.address, {"max_deliveries": 5}, {"concurrency": 4})
    bus = start_bus(bus_block, services)
    ids = [f"cc-{i}" for i in range(50)]
    publish_batch(bus, "jobs", ids)
    wait_until(lambda: sub.acked_ids() == set(ids), 30, 0.1, "every message to be pushed")
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == len(ids), 10, 0.1,
               "the bus to record the acks")
    # A closed connection is never used again: one connection per push, none failed.
    with up.lock, sub.lock:
        assert up.accepted == sub.answers == len(ids), (up.accepted, sub.answers)
    assert bus.ferry.metric("ferry_bus_push_total", inbox="jobs", result="failed") == 0


def test_subscriber_closing_idle_connections_loses_nothing(start_bus, py_upstream):
    # Answers keep-alive, then closes the connection while it is idle in Ferry's pool.
    sub = KeepAliveSubscriber(close_after="silent")
    up = py_upstream(sub.handler)
    bus_block, services = push_config(up.address, {"max_deliveries": 20}, {"concurrency": 2})
    bus = start_bus(bus_block, services)
    ids = [f"si-{i}" for i in range(30)]
    for i in ids:
        assert bus.client.publish("jobs", b"x", {"idempotency-key": i}).status == 201
        time.sleep(0.02)
    wait_until(lambda: sub.acked_ids() == set(ids), 30, 0.1, "every message to be pushed")
    wait_until(lambda: bus.client.stats("queues/jobs")["counts"]["acked"] == len(ids), 10, 0.1,
               "the bus to record the acks")
    s = bus.client.stats("queues/jobs")
    assert (s["depth"], s["in_flight"], s["dead_letters"]) == (0, 0, 0), s


def test_push_follows_the_services_hash_policy(start_bus, py_upstream):
    subs = [KeepAliveSubscriber(), KeepAliveSubscriber()]
    ups = [py_upstream(s.handler) for s in subs]
    bus_block = {"queues": {"jobs": fast_queue(push={
        "service": "sub", "path": "/hook", "timeout": "1s", "concurrency": 4})}}
    services = {"sub": {"endpoints": [u.address for u in ups], "lb": "hash",
                        "hash_on": {"header": "ce-partitionkey"}}}
    bus = start_bus(bus_block, services)
    # The ring depends on the endpoints' (random) ports: with 7 keys all of them landed on one
    # endpoint in about 1 run in 60; with 40 keys that is about 2 in a trillion.
    ids = [f"h-{i}" for i in range(120)]
    publish_batch(bus, "jobs", ids, key=lambda n: f"key-{n % 40}")
    wait_until(lambda: subs[0].acked_ids() | subs[1].acked_ids() == set(ids), 30, 0.1,
               "every message to be pushed")
    keys = [set(s.keys) for s in subs]
    assert keys[0] and keys[1], keys  # 40 keys over 2 endpoints: both used
    assert not keys[0] & keys[1], keys  # each key always to the same endpoint


def test_re_resolution_keeps_the_pooled_connection(start_bus, py_upstream):
    # The service names its endpoint by host name, re-resolved every second: rounds that give
    # the same address keep its pool, so pushes before and after them share one connection.
    sub = KeepAliveSubscriber()
    up = py_upstream(sub.handler)
    bus_block = {"queues": {"jobs": fast_queue(push={
        "service": "sub", "path": "/hook", "timeout": "1s", "concurrency": 1})}}
    services = {"sub": {"endpoints": [f"localhost:{up.port}"], "resolve_interval": "1s"}}
    bus = start_bus(bus_block, services)
    assert bus.client.publish("jobs", b"x", {"idempotency-key": "before"}).status == 201
    wait_until(lambda: sub.acked_ids() == {"before"}, 10, 0.05, "the first push")
    time.sleep(2.5)  # two or three resolution rounds
    assert bus.client.publish("jobs", b"x", {"idempotency-key": "after"}).status == 201
    wait_until(lambda: sub.acked_ids() == {"before", "after"}, 10, 0.05, "the second push")
    with up.lock:
        assert up.accepted == 1, up.accepted
    assert bus.ferry.metric("ferry_bus_push_total", inbox="jobs", result="failed") == 0
