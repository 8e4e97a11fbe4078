"""The bus commands of the CLI (`ferry publish`, `ferry consume`, `ferry dlq list|replay`) against
a running node: what they send, what they print, and their exit codes (0 ok, 1 the node answered
an error or cannot be reached, 2 bad usage)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bus_support import fast_queue, free_port, start_bus, wait_until  # noqa: F401 - fixture
from conftest import FERRY_BIN

QUEUE = "queues/jobs"
BILLING = "topics/orders/subscriptions/billing"


def cli(*args: str, url: str | None = None, input: str | None = None, timeout: float = 30):
    argv = [str(FERRY_BIN), *args]
    if url is not None:
        argv += ["--url", url]
    return subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def node(start_bus):
    n = start_bus({
        "queues": {"jobs": fast_queue(max_deliveries=2)},
        "topics": {"orders": {"subscriptions": {"billing": {"max_deliveries": 1}}}},
    })
    n.url = f"http://{n.address}"
    return n


def test_publish_then_consume_with_ack(node):
    r = cli("publish", "--queue", "jobs", "--data", "hello", url=node.url)
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["duplicate"] is False and answer["id"]

    r = cli("consume", "--queue", "jobs", "--max", "5", "--ack", url=node.url)
    assert r.returncode == 0, r.stderr
    [message] = json_lines(r.stdout)
    assert message["id"] == answer["id"]
    assert message["data"] == "hello"
    assert message["attempt"] == 1
    assert "acked 1" in r.stderr
    counts = node.client.stats("queues/jobs")["counts"]
    assert counts["acked"] == 1, counts
    assert node.client.messages(QUEUE, wait="200ms") == []


def test_consume_and_dlq_list_print_the_data_byte_for_byte(node):
    # The node keeps JSON data as sent; the CLI must not re-render it through a double.
    data = '{"big":12345678901234567890123,"tiny":1e-400,"s":"caf\\u00e9"}'
    r = cli("publish", "--queue", "jobs", "--id", "exact-1", "--content-type",
            "application/json", "--data", data, url=node.url)
    assert r.returncode == 0, r.stderr
    r = cli("consume", "--queue", "jobs", "--wait", "5s", "--nack", url=node.url)
    assert r.returncode == 0, r.stderr
    assert '"data":' + data in r.stdout, r.stdout
    r = cli("consume", "--queue", "jobs", "--wait", "5s", "--nack", url=node.url)  # max_deliveries=2: dead now
    assert r.returncode == 0, r.stderr
    wait_until(lambda: node.client.stats("queues/jobs")["dead_letters"] == 1, 10,
               what="the message in the dead letters")
    r = cli("dlq", "list", "--queue", "jobs", url=node.url)
    assert r.returncode == 0, r.stderr
    assert '"data":' + data in r.stdout, r.stdout


def test_publish_with_id_is_deduplicated(node):
    first = cli("publish", "-q", "jobs", "-d", "a", "--id", "job-1", url=node.url)
    second = cli("publish", "-q", "jobs", "-d", "a", "--id", "job-1", url=node.url)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout) == {**json.loads(second.stdout), "duplicate": False}
    assert json.loads(second.stdout)["duplicate"] is True
    assert len(node.client.drain(QUEUE, quiet="200ms")) == 1


def test_publish_binary_mode_event_from_file(node, tmp_path):
    data = tmp_path / "order.json"
    data.write_text('{"order_id": "o-1", "amount": 12.5}')
    r = cli("publish", "--topic", "orders", "--file", str(data), "--id", "o-1", "--type",
            "order.created", "--source", "/shop", "--subject", "o-1", "--key", "customer-7",
            "--content-type", "application/json", url=node.url)
    assert r.returncode == 0, r.stderr
    [event] = node.client.messages(BILLING, max=10, wait="2s")
    assert event["id"] == "o-1"
    assert event["type"] == "order.created"
    assert event["source"] == "/shop"
    assert event["subject"] == "o-1"
    assert event["partitionkey"] == "customer-7"
    assert event["data"] == {"order_id": "o-1", "amount": 12.5}


def test_publish_reads_stdin_and_defaults_missing_attributes(node):
    r = cli("publish", "--topic", "orders", "--type", "note", url=node.url, input="from stdin")
    assert r.returncode == 0, r.stderr
    r = cli("consume", "--topic", "orders", "--subscription", "billing", "--wait", "2s", "--ack",
            url=node.url)
    assert r.returncode == 0, r.stderr
    [event] = json_lines(r.stdout)
    assert event["data"] == "from stdin"
    assert event["type"] == "note"
    assert event["source"] == "ferry-cli"
    assert len(event["id"]) == 36  # a generated UUID


def test_publish_with_delay_is_delivered_later(node):
    r = cli("publish", "-q", "jobs", "-d", "later", "--delay", "1s", url=node.url)
    assert r.returncode == 0, r.stderr
    now = cli("consume", "-q", "jobs", url=node.url)
    assert now.returncode == 0 and now.stdout == "", now.stdout
    assert "no message" in now.stderr
    later = cli("consume", "-q", "jobs", "--wait", "5s", "--ack", url=node.url)
    assert [m["data"] for m in json_lines(later.stdout)] == ["later"], later.stderr


def test_consume_nack_redelivers(node):
    cli("publish", "-q", "jobs", "-d", "x", url=node.url)
    first = cli("consume", "-q", "jobs", "--nack", url=node.url)
    assert first.returncode == 0, first.stderr
    assert json_lines(first.stdout)[0]["attempt"] == 1
    again = cli("consume", "-q", "jobs", "--wait", "5s", "--ack", url=node.url)
    assert json_lines(again.stdout)[0]["attempt"] == 2, again.stderr


def test_dead_letters_list_and_replay(node):
    cli("publish", "-q", "jobs", "-d", "poison", "--id", "p-1", url=node.url)
    cli("publish", "-q", "jobs", "-d", "other", "--id", "p-2", url=node.url)
    for _ in range(2):  # max_deliveries: 2
        r = cli("consume", "-q", "jobs", "--max", "10", "--wait", "5s", "--nack", url=node.url)
        assert r.returncode == 0 and len(json_lines(r.stdout)) == 2, r.stdout + r.stderr
    wait_until(lambda: node.client.stats("queues/jobs")["dead_letters"] == 2, 10,
               what="both messages to be dead-lettered")

    r = cli("dlq", "list", "--queue", "jobs", url=node.url)
    assert r.returncode == 0, r.stderr
    dead = json_lines(r.stdout)
    assert sorted(d["id"] for d in dead) == ["p-1", "p-2"]
    assert all(d["attempts"] == 2 and d["reason"] for d in dead), dead

    r = cli("dlq", "replay", "--queue", "jobs", "--id", "p-1", url=node.url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"replayed": 1}
    r = cli("consume", "-q", "jobs", "--wait", "5s", "--ack", url=node.url)
    assert [(m["id"], m["data"]) for m in json_lines(r.stdout)] == [("p-1", "poison")], r.stderr
    assert [d["id"] for d in json_lines(cli("dlq", "list", "-q", "jobs", url=node.url).stdout)] \
        == ["p-2"]

    r = cli("dlq", "replay", "-q", "jobs", url=node.url)  # no --id: all of them
    assert json.loads(r.stdout) == {"replayed": 1}, r.stderr
    r = cli("dlq", "list", "-q", "jobs", url=node.url)
    assert r.returncode == 0 and r.stdout == "" and "no dead letters" in r.stderr


def test_subscription_dead_letters(node):
    node.client.publish_event("orders", {"specversion": "1.0", "id": "e-1", "source": "/t",
                                         "type": "t"})
    r = cli("consume", "-t", "orders", "-s", "billing", "--wait", "5s", "--nack", url=node.url)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: json_lines(cli("dlq", "list", "-t", "orders", "-s", "billing",
                                      url=node.url).stdout), 10, what="a dead letter")
    r = cli("dlq", "replay", "-t", "orders", "-s", "billing", url=node.url)
    assert json.loads(r.stdout) == {"replayed": 1}, r.stderr


@pytest.mark.parametrize("args", [
    ["publish", "-d", "x"],                                    # no target
    ["publish", "-q", "a", "-t", "b", "-d", "x"],              # two targets
    ["publish", "-q", "a", "-d", "x", "-f", "/etc/hostname"],  # two data sources
    ["publish", "-q", "a", "-f", "/no/such/file"],
    ["publish", "-q", "a", "-d", "x", "--delay", "soon"],
    ["publish", "-q", "a", "-d", "x", "--url", "ftp://127.0.0.1:1"],
    ["publish", "-q", "a", "-d", "x", "--ca", "/no/such/ca.pem"],
    ["publish", "-q", "a", "-d", "x", "--url", "http://127.0.0.1:99999"],
    ["consume"],
    ["consume", "-t", "orders"],                               # a topic needs a subscription
    ["consume", "-q", "jobs", "-s", "billing"],                # a queue has none
    ["consume", "-q", "jobs", "--max", "0"],
    ["consume", "-q", "jobs", "--wait", "5parsecs"],
    ["consume", "-q", "jobs", "--ack", "--nack"],
    ["consume", "-q", "jobs", "--bogus"],
    ["dlq"],
    ["dlq", "purge", "-q", "jobs"],
    ["dlq", "list"],
    ["dlq", "replay", "-t", "orders"],
])
def test_bad_usage_exits_2(args):
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip(), "a usage error says why"


@pytest.mark.parametrize("args", [["publish", "--help"], ["consume", "--help"], ["dlq", "--help"],
                                  ["dlq", "list", "--help"], ["dlq", "replay", "--help"]])
def test_help_exits_0(args):
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout
    if args != ["dlq", "--help"]:
        assert "--url" in r.stdout


@pytest.mark.parametrize("args", [
    ["publish", "-q", "nope", "-d", "x"],
    ["publish", "-t", "nope", "-d", "x"],
    ["consume", "-q", "nope"],
    ["consume", "-t", "orders", "-s", "nope"],
    ["dlq", "list", "-q", "nope"],
    ["dlq", "replay", "-q", "nope"],
])
def test_unknown_queue_or_topic_exits_1_with_the_api_message(node, args):
    r = cli(*args, url=node.url)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert "HTTP 404" in r.stderr and "nope" in r.stderr, r.stderr


def test_unreachable_node_exits_1():
    r = cli("publish", "-q", "jobs", "-d", "x", url=f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 1
    assert "cannot connect" in r.stderr, r.stderr


def test_url_from_environment(node):
    env = {**os.environ, "FERRY_BUS_URL": node.url}
    r = subprocess.run([str(FERRY_BIN), "publish", "-q", "jobs", "-d", "env"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert [m["data"] for m in node.client.drain(QUEUE, quiet="200ms")] == ["env"]
