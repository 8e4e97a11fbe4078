"""The bus on a real 3-node NATS JetStream cluster on loopback (routes between the nodes,
replicas 3), with two Ferry nodes sharing one queue (competing consumers across nodes). While
producers publish and consumers ack, one NATS node is killed and later restarted: no
acknowledged publish is lost, none is stored twice, every message is delivered at least once,
and Ferry reconnects by itself. Bounds are coarse (a leader election takes seconds)."""

import json
import threading
import time

import pytest

from bus_support import BusClient, NatsServer
from conftest import free_port, wait_until
from test_bus_nats import nats_request

Q = "queues/work"
MESSAGES = 600


@pytest.fixture
def cluster(processes, tmp_path):
    cluster_ports = [free_port() for _ in range(3)]
    servers = []
    for i in range(3):
        routes = [p for j, p in enumerate(cluster_ports) if j != i]
        servers.append(NatsServer(processes, tmp_path, name=f"n{i + 1}",
                                  cluster_port=cluster_ports[i], routes=routes))

    # Ready for Ferry's replicas-3 streams: a meta leader that knows all three peers. A leader
    # alone is not enough (a stream created before the peers are current fails with "no
    # suitable peers", 10005), so the check is a probe stream with three replicas.
    probe = json.dumps({"name": "PROBE", "subjects": ["probe.>"], "num_replicas": 3}).encode()

    def jetstream_ready():
        try:
            made = json.loads(nats_request(servers[0].port, "$JS.API.STREAM.CREATE.PROBE", probe,
                                           timeout=5))
        except (OSError, AssertionError, ValueError):
            return False
        return "error" not in made

    wait_until(jetstream_ready, 60, 0.5, "the JetStream cluster to place a stream on 3 peers")
    nats_request(servers[0].port, "$JS.API.STREAM.DELETE.PROBE", timeout=5)
    return servers


def start_node(start_ferry, servers: list[NatsServer]):
    config = {"admin": {"listen": "127.0.0.1:0"},
              "bus": {"backend": "nats", "listen": "127.0.0.1:0",
                      "nats": {"servers": [s.url for s in servers], "replicas": 3},
                      "queues": {"work": {"lease": "10s", "max_deliveries": 0}}}}
    ferry = start_ferry(config)
    return ferry, BusClient(ferry.stats()["bus"])


def publish_until_stored(client: BusClient, ids: list[str], acked: list[str], stop: float):
    """Publishes each id until it is answered 201 (a failure is retried with the same id: the
    stream's de-duplication keeps it from being stored twice)."""
    for mid in ids:
        while time.monotonic() < stop:
            try:
                r = client.publish("work", mid.encode(), {"idempotency-key": mid}, )
            except OSError:
                time.sleep(0.2)
                continue
            if r.status == 201:
                acked.append(mid)
                break
            time.sleep(0.2)


def consume(client: BusClient, got: list[str], done: threading.Event, stop: float):
    while time.monotonic() < stop and not done.is_set():
        try:
            r = client.receive(Q, max=20, wait="1s", timeout=10)
        except OSError:
            time.sleep(0.2)
            continue
        if r.status != 200:
            time.sleep(0.1)
            continue
        batch = r.json()["messages"]
        try:
            if client.ack(Q, [m["receipt"] for m in batch]).status != 200:
                continue  # not acked: they come again after their lease
        except OSError:
            continue
        got.extend(m["id"] for m in batch)


def test_a_node_dies_and_returns_while_two_ferry_nodes_publish_and_consume(
        cluster, start_ferry, tmp_path, processes):
    n1, n2, n3 = cluster
    # Node A knows only n1 (it learns the others from the cluster); B knows n2 and n3.
    ferry_a, a = start_node(start_ferry, [n1])
    ferry_b, b = start_node(start_ferry, [n2, n3])
    stop = time.monotonic() + 240
    acked: list[str] = []
    got_a: list[str] = []
    got_b: list[str] = []
    done = threading.Event()
    ids = [f"m{i:04d}" for i in range(MESSAGES)]
    publishers = [threading.Thread(target=publish_until_stored, args=(c, part, acked, stop))
                  for c, part in ((a, ids[0::2]), (b, ids[1::2]))]
    consumers = [threading.Thread(target=consume, args=(c, got, done, stop))
                 for c, got in ((a, got_a), (b, got_b))]
    for t in publishers + consumers:
        t.start()
    wait_until(lambda: len(acked) >= MESSAGES // 3, 120, 0.1, "a third of the publishes")
    n1.kill()  # the only server node A was given
    wait_until(lambda: len(acked) >= 2 * MESSAGES // 3, 120, 0.1,
               "two thirds of the publishes, with n1 down")
    n1.start()
    for t in publishers:
        t.join(max(1, stop - time.monotonic()))
    assert sorted(acked) == ids, "every publish was answered 201 in the end"
    wait_until(lambda: set(got_a) | set(got_b) >= set(ids), 120, 0.2,
               "every acknowledged publish to be delivered")
    done.set()
    for t in consumers:
        t.join(30)
    # Competing consumers: both nodes took messages of the one queue.
    assert got_a and got_b, (len(got_a), len(got_b))
    # None stored twice: the stream took exactly one message per id (a publish retried after a
    # lost PubAck was answered as a duplicate).
    info = json.loads(nats_request(n2.port, "$JS.API.STREAM.INFO.FERRY_Q_work"))
    assert info["state"]["last_seq"] == MESSAGES, info["state"]
    assert info["config"]["num_replicas"] == 3
    # Node A lost its server and reconnected by itself; its /ready is 200 again.
    assert ferry_a.metric("ferry_bus_nats_reconnects_total") >= 1
    assert ferry_a.metric("ferry_bus_nats_connected") == 1
    assert ferry_a.admin("/ready")[0] == 200
    del tmp_path, processes, ferry_b
