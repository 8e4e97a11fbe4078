"""Routing, prefix rewrite, load balancing, forwarding headers, hop-by-hop removal."""

import collections
import threading
import time

import pytest

from conftest import assert_error_json, basic_config, curl


def instance(result) -> str:
    assert result.status == 200, (result.status, result.body)
    return result.json()["instance"]


def seen_headers(result) -> dict:
    assert result.status == 200, (result.status, result.body)
    return result.json()["headers"]


# --- routing --------------------------------------------------------------------------------


def test_prefix_route_rewrites_prefix_and_keeps_query(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/catalog/"}, "service": "svc", "rewrite_prefix": "/"}]))
    r = curl(ferry.url("/api/catalog/items/7?x=1&y=2"))
    assert r.status == 200
    assert r.json()["path"] == "/items/7?x=1&y=2"


def test_unknown_route_is_404_json(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/"}, "service": "svc"}]))
    r = curl(ferry.url("/other"))
    assert r.status == 404
    assert r.headers["content-type"].startswith("application/json")
    assert_error_json(r.body, 404, "no_route")


@pytest.fixture
def routed(start_ferry, start_echo):
    """Five services behind one listener, each an echo_service named after it."""
    names = ["exact", "host", "post", "header", "fallback"]
    echoes = {n: start_echo(n) for n in names}
    config = basic_config([echoes["fallback"].address], routes=[
        {"match": {"path": "/exact"}, "service": "exact"},
        {"match": {"host": "Shop.Example.com"}, "service": "host"},
        {"match": {"methods": ["POST", "PUT"]}, "service": "post"},
        {"match": {"headers": {"X-Api-Version": "2"}}, "service": "header"},
        {"match": {"prefix": "/"}, "service": "svc"},
    ])
    for n in names[:-1]:
        config["services"][n] = {"endpoints": [echoes[n].address]}
    return start_ferry(config)


@pytest.mark.parametrize("path,args,expected", [
    ("/exact", [], "exact"),
    ("/exact/more", [], "fallback"),              # path is exact, not a prefix
    ("/x", ["-H", "Host: shop.example.com:8080"], "host"),  # case-insensitive, port ignored
    ("/x", ["-H", "Host: other.example.com"], "fallback"),
    ("/x", ["-X", "PUT"], "post"),
    ("/x", ["-X", "DELETE"], "fallback"),
    ("/x", ["-H", "x-api-version: 2"], "header"),  # header name case-insensitive
    ("/x", ["-H", "X-Api-Version: 3"], "fallback"),
])
def test_route_match(routed, path, args, expected):
    assert instance(curl(routed.url(path), *args)) == expected


# --- load balancing ---------------------------------------------------------------------------


def test_round_robin_alternates_endpoints(start_ferry, echo_pair):
    ferry = start_ferry(basic_config([e.address for e in echo_pair],
                                     service_extra={"lb": "round_robin"}))
    served = [instance(curl(ferry.url("/"))) for _ in range(10)]
    assert collections.Counter(served) == {"e1": 5, "e2": 5}, served
    assert all(a != b for a, b in zip(served, served[1:])), served


def test_random_uses_every_endpoint(start_ferry, echo_pair):
    ferry = start_ferry(basic_config([e.address for e in echo_pair],
                                     service_extra={"lb": "random"}))
    served = {instance(curl(ferry.url("/"))) for _ in range(30)}
    assert served == {"e1", "e2"}  # fails by chance with probability 2^-29


def test_hash_on_header_is_sticky(start_ferry, echo_pair):
    ferry = start_ferry(basic_config([e.address for e in echo_pair], service_extra={
        "lb": "hash", "hash_on": {"header": "X-User-Id"}}))
    for user in ("alice", "bob", "carol"):
        served = {instance(curl(ferry.url("/"), "-H", f"X-User-Id: {user}")) for _ in range(5)}
        assert len(served) == 1, (user, served)


def test_hash_on_header_spreads_keys(start_ferry, echo_pair):
    ferry = start_ferry(basic_config([e.address for e in echo_pair], service_extra={
        "lb": "hash", "hash_on": {"header": "X-User-Id"}}))
    served = {instance(curl(ferry.url("/"), "-H", f"X-User-Id: user-{i}")) for i in range(24)}
    assert served == {"e1", "e2"}


def test_hash_on_client_address_is_sticky(start_ferry, echo_pair):
    ferry = start_ferry(basic_config([e.address for e in echo_pair], service_extra={
        "lb": "hash", "hash_on": "client_address"}))
    served = {instance(curl(ferry.url("/"))) for _ in range(8)}
    assert len(served) == 1, served


def test_least_request_avoids_busy_endpoint(start_ferry, echo_pair):
    ferry = start_ferry(basic_config([e.address for e in echo_pair],
                                     service_extra={"lb": "least_request"}))
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=curl(ferry.url("/delay/2500"))))
    t.start()
    try:
        time.sleep(0.4)  # the slow request is in flight on one endpoint
        served = [instance(curl(ferry.url("/"))) for _ in range(8)]
    finally:
        t.join(15)
    busy = instance(slow["r"])
    assert busy not in served, (busy, served)


# --- forwarding headers -------------------------------------------------------------------


@pytest.fixture
def one(start_ferry, echo):
    return start_ferry(basic_config([echo.address]))


def test_x_forwarded_for_set_to_client_ip(one):
    assert seen_headers(curl(one.url("/")))["x-forwarded-for"] == "127.0.0.1"


def test_x_forwarded_for_appends_client_ip(one):
    h = seen_headers(curl(one.url("/"), "-H", "X-Forwarded-For: 203.0.113.9"))
    assert h["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"


def test_x_forwarded_proto_is_http(one):
    assert seen_headers(curl(one.url("/")))["x-forwarded-proto"] == "http"


def test_x_forwarded_proto_from_client_is_overwritten(one):
    h = seen_headers(curl(one.url("/"), "-H", "X-Forwarded-Proto: https"))
    assert h["x-forwarded-proto"] == "http"


def test_x_request_id_kept_when_present(one):
    h = seen_headers(curl(one.url("/"), "-H", "X-Request-Id: my-id-123"))
    assert h["x-request-id"] == "my-id-123"


def test_x_request_id_generated_and_unique(one):
    a = seen_headers(curl(one.url("/"))).get("x-request-id", "")
    b = seen_headers(curl(one.url("/"))).get("x-request-id", "")
    assert len(a) >= 8 and len(b) >= 8, (a, b)
    assert a != b


def test_host_header_passed_through(one):
    assert seen_headers(curl(one.url("/"), "-H", "Host: api.example"))["host"] == "api.example"


# --- hop-by-hop headers ---------------------------------------------------------------------


@pytest.mark.parametrize("sent,absent", [
    (["Connection: close"], "connection"),
    (["Connection: keep-alive, X-Foo", "X-Foo: 1"], "x-foo"),
    (["Keep-Alive: timeout=5"], "keep-alive"),
    (["Proxy-Connection: keep-alive"], "proxy-connection"),
    (["TE: trailers"], "te"),
    (["Upgrade: websocket"], "upgrade"),
    (["Proxy-Authorization: Basic Zm9vOmJhcg=="], "proxy-authorization"),
])
def test_hop_by_hop_request_header_not_forwarded(one, sent, absent):
    args = [a for h in sent for a in ("-H", h)]
    h = seen_headers(curl(one.url("/"), *args))
    assert absent not in h, h


def test_end_to_end_header_forwarded(one):
    # Control for the hop-by-hop tests: an ordinary header does reach the upstream.
    assert seen_headers(curl(one.url("/"), "-H", "X-Foo: 1"))["x-foo"] == "1"


def test_response_connection_header_from_upstream_not_forwarded(one):
    # /close answers with Connection: close; the client's connection to Ferry stays reusable.
    r = curl(one.url("/close"), "-H", "Connection: keep-alive")
    assert r.status == 200
    assert r.headers.get("connection", "").lower() != "close", r.headers
