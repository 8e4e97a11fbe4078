"""Helpers for the message bus tests (test_bus_*.py): a Ferry node running a `bus:` block, and a
small client for the bus API over http.client (a new connection per request, so a client keeps
working across a restart of Ferry on the same port).

Import the fixture into a test module with `from bus_support import start_bus`.

Backends: `start_bus` runs the bus on the backend a module's `bus_backend` fixture names
("embedded" without one). A module that runs on both defines it with
`params=["embedded", "nats"]`: each of its tests then runs once per backend; with "nats" a
JetStream nats-server of its own is started for the test (loopback port, temp store dir, stopped
by its PID). A test that cannot pass
on NATS calls `nats_difference(bus_backend, "<docs/bus.md section>")`, which skips it there with
the reason: a documented difference, not a missing tool.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import time
from pathlib import Path

import pytest

from conftest import Ferry, free_port, wait_until  # noqa: F401 - re-exported for the tests

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


class BusClient:
    """The bus API at host:port. Every call opens its own connection."""

    def __init__(self, address: str):
        self.address = address

    def request(self, method: str, path: str, body: bytes | str | dict | list | None = None,
                headers: dict[str, str] | None = None, timeout: float = 30.0) -> Reply:
        host, port = self.address.rsplit(":", 1)
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault("content-type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    # --- publishing
    def publish(self, queue: str, data: bytes | str = b"x", headers: dict | None = None,
                query: str = "") -> Reply:
        headers = {"content-type": "text/plain", **(headers or {})}
        return self.request("POST", f"/v1/queues/{queue}/messages{query}", data, headers)

    def publish_event(self, topic: str, event: dict) -> Reply:
        """Structured mode: the whole event as application/cloudevents+json."""
        return self.request("POST", f"/v1/topics/{topic}/events", json.dumps(event),
                            {"content-type": "application/cloudevents+json"})

    # --- consuming; `inbox` is "queues/NAME" or "topics/T/subscriptions/S"
    def receive(self, inbox: str, max: int = 1, wait: str = "0s", timeout: float = 70) -> Reply:
        return self.request("GET", f"/v1/{inbox}/messages?max={max}&wait={wait}",
                            timeout=timeout)

    def messages(self, inbox: str, max: int = 1, wait: str = "0s") -> list[dict]:
        """The messages of one pull ([] on 204); fails the test on any other status."""
        r = self.receive(inbox, max, wait)
        if r.status == 204:
            assert r.body == b"", r
            return []
        assert r.status == 200, r
        return r.json()["messages"]

    def ack(self, inbox: str, receipts: list[str]) -> Reply:
        return self.request("POST", f"/v1/{inbox}/ack", {"receipts": receipts})

    def nack(self, inbox: str, receipts: list[str], delay: str | None = None) -> Reply:
        body = {"receipts": receipts}
        if delay is not None:
            body["delay"] = delay
        return self.request("POST", f"/v1/{inbox}/nack", body)

    def stats(self, path: str) -> dict:
        """GET /v1/queues/NAME or /v1/topics/NAME."""
        r = self.request("GET", f"/v1/{path}")
        assert r.status == 200, r
        return r.json()

    def drain(self, inbox: str, quiet: str = "1s", limit: float = 30.0) -> list[dict]:
        """Pulls and acks until a pull of `quiet` comes back empty; returns what it got."""
        got: list[dict] = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            batch = self.messages(inbox, max=100, wait=quiet)
            if not batch:
                return got
            got.extend(batch)
            r = self.ack(inbox, [m["receipt"] for m in batch])
            assert r.status == 200, r
        raise AssertionError(f"{inbox} still had messages after {limit}s")


class BusNode:
    """One running Ferry with a bus, and how to start it again on the same data_dir."""

    def __init__(self, starter, config: dict, ferry: Ferry):
        self._starter = starter
        self.config = config
        self.ferry = ferry
        self.address = ferry.stats()["bus"]
        self.client = BusClient(self.address)

    @property
    def data_dir(self) -> Path:
        return Path(self.config["bus"]["data_dir"])

    def restart(self, *, kill: bool = False) -> "BusNode":
        """Stops Ferry (SIGTERM, or SIGKILL with kill=True) and starts it on the same config."""
        if kill:
            self.ferry.process.kill()
        else:
            self.ferry.process.stop()
        self.ferry = self._starter(self.config)
        self.address = self.ferry.stats()["bus"]
        self.client = BusClient(self.address)
        return self


class NatsServer:
    """One nats-server with JetStream on loopback, its store in its own directory. Cluster
    members name each other's route ports."""

    def __init__(self, processes, tmp_path: Path, name: str = "n1", port: int | None = None,
                 cluster_port: int | None = None, routes: list[int] | None = None):
        self.name = name
        self.port = port or free_port()
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.store = tmp_path / f"nats-{name}"
        self.config_path = tmp_path / f"nats-{name}.conf"
        lines = [f'server_name: "{name}"', "listen: 127.0.0.1:%d" % self.port,
                 "max_payload: 8MB",
                 f'jetstream {{ store_dir: "{self.store}" }}']
        if cluster_port:
            route_list = ", ".join(f'"nats-route://127.0.0.1:{r}"' for r in self.routes)
            lines += ["cluster {", '  name: "ferry-test"', f"  listen: 127.0.0.1:{cluster_port}",
                      f"  routes: [{route_list}]", "}"]
        self.config_path.write_text("\n".join(lines) + "\n")
        self._processes = processes
        self._tmp = tmp_path
        self.process = None
        self.start()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "NatsServer":
        self.process = self._processes.start([NATS_SERVER, "-c", str(self.config_path)],
                                             self._tmp / f"nats-{self.name}.log")

        def accepting():
            if not self.process.alive():
                raise AssertionError(f"nats-server exited: {self.process.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_until(accepting, 15, what=f"nats-server {self.name} to accept")
        return self

    def kill(self) -> None:
        self.process.kill()


def nats_difference(backend: str, section: str) -> None:
    """Skips a test on NATS: its behaviour differs there, as docs/bus.md `section` says."""
    if backend == "nats":
        pytest.skip(f"documented difference on NATS: docs/bus.md, {section}")


@pytest.fixture
def start_bus(start_ferry, tmp_path, processes, request):
    """start_bus(bus_block, services=None) -> BusNode: Ferry with admin and bus on loopback.

    bus_block is the `bus:` map without listen/data_dir (port 0 and a temp dir are filled in
    unless given); extra: more top-level blocks of the config (e.g. mesh). On the nats backend
    (bus_backend) a nats-server is started first (once per test) and the `nats:` block filled in.
    """
    try:
        bus_backend = request.getfixturevalue("bus_backend")
    except pytest.FixtureLookupError:
        bus_backend = "embedded"
    nats: list[NatsServer] = []

    def start(bus: dict, services: dict | None = None, extra: dict | None = None) -> BusNode:
        bus = dict(bus)
        bus.setdefault("listen", "127.0.0.1:0")
        if bus_backend == "nats" or bus.get("backend") == "nats":
            if not nats:
                nats.append(NatsServer(processes, tmp_path))
            bus["backend"] = "nats"
            bus.setdefault("nats", {"servers": [nats[0].url]})
            for key in ("data_dir", "durability", "sync_interval", "segment_bytes",
                        "state_checkpoint_bytes"):
                bus.pop(key, None)
        else:
            bus.setdefault("data_dir", str(tmp_path / "bus-data"))
        config = {"admin": {"listen": "127.0.0.1:0"}, "bus": bus}
        if services:
            config["services"] = services
        config.update(extra or {})  # other top-level blocks (mesh:, ...)
        return BusNode(start_ferry, config, start_ferry(config))

    return start


def cloud_event(ce_id: str, type_: str = "order.created", data=None, **extra) -> dict:
    """A CloudEvent for structured mode (BusClient.publish_event), source /shop."""
    e = {"specversion": "1.0", "id": ce_id, "source": "/shop", "type": type_}
    if data is not None:
        e["data"] = data
    e.update(extra)
    return e


def fast_queue(**overrides) -> dict:
    """A queue config with short waits so redelivery tests run in well under a second."""
    q = {"lease": "30s", "max_deliveries": 5,
         "backoff": {"initial": "100ms", "max": "500ms", "multiplier": 2}}
    q.update(overrides)
    return q


def stored_ever(stats: dict) -> int:
    """Messages a queue's or topic's store took since it was made: the embedded message log's
    appends, or the JetStream stream's last sequence."""
    if "messages_log" in stats:
        return stats["messages_log"]["appends"]
    return stats["stream"]["last_sequence"]


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
