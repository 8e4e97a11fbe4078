"""Crash safety: kill -9 Ferry again and again while a producer publishes (retrying with the
same id after connection errors) and a consumer acks; restart it each time on the same
data_dir. At the end every publish that got a 201 is present, and no message id is stored
twice (every delivery of an id carries the same log sequence)."""

import threading
import time

import pytest

from bus_support import BusClient, fast_queue, free_port, start_bus  # noqa: F401 - fixture

ROUNDS = 5


@pytest.mark.parametrize("durability", ["batch", "interval"])
def test_kill_9_loses_no_acknowledged_publish_and_stores_none_twice(start_bus, durability):
    port = free_port()  # one address across restarts, so clients just retry
    block = {"listen": f"127.0.0.1:{port}", "durability": durability,
             "queues": {"work": fast_queue(
                 lease="2s", max_deliveries=0,
                 backoff={"initial": "50ms", "max": "200ms", "multiplier": 2})}}
    if durability == "interval":
        block["sync_interval"] = "50ms"
    bus = start_bus(block)
    client = BusClient(f"127.0.0.1:{port}")

    lock = threading.Lock()
    acknowledged: dict[str, int] = {}        # id -> sequence from its 201
    deliveries: list[tuple[str, int]] = []   # (id, sequence) of every delivery seen
    stop = threading.Event()
    errors: list[str] = []

    def produce():
        n = 0
        while not stop.is_set():
            ce_id = f"m-{n:06d}"
            while not stop.is_set():
                try:
                    r = client.request("POST", "/v1/queues/work/messages", f"payload {ce_id}",
                                       {"content-type": "text/plain", "idempotency-key": ce_id},
                                       timeout=5)
                except OSError:
                    time.sleep(0.02)
                    continue  # the same id again
                if r.status == 201:
                    doc = r.json()
                    with lock:
                        if ce_id in acknowledged and acknowledged[ce_id] != doc["sequence"]:
                            errors.append(f"{ce_id}: sequence {acknowledged[ce_id]} then {doc}")
                        acknowledged[ce_id] = doc["sequence"]
                    break
                errors.append(f"publish {ce_id}: {r}")
                return
            n += 1

    def consume():
        while not stop.is_set():
            try:
                r = client.request("GET", "/v1/queues/work/messages?max=20&wait=200ms", timeout=5)
                if r.status != 200:
                    continue
                batch = r.json()["messages"]
                with lock:
                    deliveries.extend((m["id"], m["sequence"]) for m in batch)
                client.request("POST", "/v1/queues/work/ack",
                               {"receipts": [m["receipt"] for m in batch]}, timeout=5)
            except OSError:
                time.sleep(0.02)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    try:
        for _ in range(ROUNDS):
            time.sleep(0.8)
            bus.restart(kill=True)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    assert not errors, errors[:5]

    # Whatever is left (unacked, or acked just before a kill and not yet durable) comes back.
    rest = client.drain("queues/work", quiet="3s", limit=60)
    deliveries.extend((m["id"], m["sequence"]) for m in rest)

    assert len(acknowledged) > 20, "too few publishes to mean anything"
    by_id: dict[str, set[int]] = {}
    by_seq: dict[int, set[str]] = {}
    for ce_id, seq in deliveries:
        by_id.setdefault(ce_id, set()).add(seq)
        by_seq.setdefault(seq, set()).add(ce_id)
    missing = sorted(set(acknowledged) - set(by_id))
    assert not missing, f"{len(missing)} acknowledged publishes lost, e.g. {missing[:5]}"
    twice = {i: s for i, s in by_id.items() if len(s) > 1}
    assert not twice, f"stored more than once: {list(twice.items())[:5]}"
    assert all(len(ids) == 1 for ids in by_seq.values())
    for ce_id, seqs in by_id.items():
        if ce_id in acknowledged:
            assert seqs == {acknowledged[ce_id]}, (ce_id, seqs, acknowledged[ce_id])
    # Nothing appeared that the producer did not send.
    sent_max = max(int(i.split("-")[1]) for i in acknowledged)
    assert all(int(i.split("-")[1]) <= sent_max + 1 for i in by_id)
    s = client.stats("queues/work")
    assert (s["depth"], s["in_flight"]) == (0, 0), s
