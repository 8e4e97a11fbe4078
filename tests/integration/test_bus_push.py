"""Push delivery: the bus POSTs each message (CloudEvents binary mode) to a service; a 2xx acks
it, anything else or a timeout is a failed delivery that only redelivery retries."""

import re
import threading
import time

from bus_support import fast_queue, start_bus  # noqa: F401 - fixture
from conftest import py_upstream, read_http_message, wait_until  # noqa: F401 - fixture


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
