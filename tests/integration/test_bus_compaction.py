"""State log compaction against the real binary: with a small bus.state_checkpoint_bytes,
thousands of deliveries, nacks and acks leave a queue's state log small (it is checkpointed and
its older segments deleted); after kill -9 the queue's state is intact: what was acked stays
acked, nack delays and dead letters survive."""

import json
from pathlib import Path

from bus_support import fast_queue, start_bus  # noqa: F401 - fixture

MESSAGES = 400
POISON = 10    # m-0000..m-0009: nacked until dead-lettered
DELAYED = 10   # m-0010..m-0019: nacked once with an hour's delay


def state_dir_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in (data_dir / "queues" / "work" / "state").glob("*.seg"))


def test_state_log_stays_small_and_survives_kill_9(start_bus):
    bus = start_bus({"state_checkpoint_bytes": "4KiB",
                     "queues": {"work": fast_queue(max_deliveries=3)}})
    c = bus.client
    for first in range(0, MESSAGES, 100):
        batch = [{"specversion": "1.0", "id": f"m-{n:04d}", "source": "/test", "type": "t",
                  "data": "x"} for n in range(first, first + 100)]
        r = c.request("POST", "/v1/queues/work/messages", json.dumps(batch),
                      {"content-type": "application/cloudevents-batch+json"})
        assert r.status == 201, r

    # Everything but the delayed ones is delivered three times: poison is nacked each time
    # (dead on the third), the rest nacked twice and acked on the third delivery.
    deliveries = 0
    while True:
        batch = c.messages("queues/work", max=100, wait="1s")
        if not batch:
            break
        deliveries += len(batch)
        ack, nack, delay = [], [], []
        for m in batch:
            n = int(m["id"].split("-")[1])
            if n < POISON or (n >= POISON + DELAYED and m["attempt"] < 3):
                nack.append(m["receipt"])
            elif n < POISON + DELAYED:
                delay.append(m["receipt"])
            else:
                ack.append(m["receipt"])
        for receipts, call in ((nack, lambda r: c.nack("queues/work", r, "0s")),
                               (delay, lambda r: c.nack("queues/work", r, "1h")),
                               (ack, lambda r: c.ack("queues/work", r))):
            if receipts:
                reply = call(receipts)
                assert reply.status == 200, reply
    assert deliveries == (MESSAGES - DELAYED) * 3 + DELAYED

    before = c.stats("queues/work")
    assert before["dead_letters"] == POISON and before["delayed"] == DELAYED, before
    assert before["counts"]["checkpoints"] >= 5, before
    state = before["state_log"]
    # ~2400 records of ~50 bytes were written; checkpoints keep a few KiB of them.
    assert state["appends"] > 2000, state
    assert state["bytes"] < 24 * 1024, state
    # On disk: those records, and the zeros written ahead of them in the open segment (the
    # first step is 64 KiB, plus the write it was made for).
    assert state["bytes"] <= state_dir_bytes(bus.data_dir) <= state["bytes"] + 80 * 1024

    bus.restart(kill=True)
    c = bus.client
    after = c.stats("queues/work")
    assert after["dead_letters"] == POISON and after["delayed"] == DELAYED, after
    assert after["ready"] == 0 and after["in_flight"] == 0, after
    assert c.messages("queues/work", max=100, wait="1s") == []  # nothing acked comes back
    r = c.request("GET", "/v1/queues/work/dead-letters?max=100")
    assert r.status == 200, r
    dead = sorted(d["id"] for d in r.json()["dead_letters"])
    assert dead == [f"m-{n:04d}" for n in range(POISON)]
    assert state_dir_bytes(bus.data_dir) < 24 * 1024
