"""The admin API: /live, /ready, /config, /stats, /metrics (Prometheus text, checked by
promtool)."""

import json
import subprocess

import pytest

from conftest import basic_config, curl, parse_metrics, require_tool


@pytest.fixture
def ferry(start_ferry, echo):
    config = basic_config([echo.address], routes=[
        {"name": "api", "match": {"prefix": "/api/"}, "service": "svc", "timeout": "750ms"}])
    return start_ferry(config)


@pytest.fixture
def trafficked(ferry):
    for _ in range(5):
        assert curl(ferry.url("/api/x")).status == 200
    assert curl(ferry.url("/nope")).status == 404
    return ferry


def test_live_is_200(ferry):
    status, body = ferry.admin("/live")
    assert status == 200
    assert json.loads(body) == {"live": True}


def test_ready_is_200(ferry):
    status, body = ferry.admin("/ready")
    assert status == 200
    assert json.loads(body) == {"ready": True}


def test_unknown_admin_path_is_404(ferry):
    assert ferry.admin("/nope")[0] == 404


def test_config_reflects_config_with_defaults(ferry, echo):
    status, body = ferry.admin("/config")
    assert status == 200
    c = json.loads(body)
    assert c["workers"] == 1
    assert c["drain_time"] == "5s"
    assert c["access_log"] == {"enabled": False, "path": "stdout"}
    listener = c["listeners"][0]
    assert listener["name"] == "pub"
    assert listener["limits"]["max_headers"] == 100
    assert listener["limits"]["max_header_bytes"] == 64 * 1024
    assert listener["limits"]["header_read_timeout"] == "10s"
    route = listener["routes"][0]
    assert route["name"] == "api"
    assert route["match"] == {"prefix": "/api/"}
    assert route["timeout"] == "750ms"
    assert route["policy"] == "default"
    assert c["policies"]["default"]["timeout"] == "15s"
    assert c["policies"]["default"]["retry"]["on"] == ["connect_failure", "reset", 502, 503,
                                                     "unavailable"]
    service = c["services"]["svc"]
    assert service["endpoints"] == [echo.address]
    assert service["lb"] == "round_robin"
    assert service["connect_timeout"] == "2s"
    assert service["max_connections_per_endpoint"] == 1024


def test_stats_has_listeners_and_metrics(ferry):
    stats = ferry.stats()
    assert stats["ready"] is True
    assert stats["workers"] == 1
    assert stats["listeners"]["pub"] == f"127.0.0.1:{ferry.port()}"
    assert "ferry_http_requests_total" in stats["metrics"]


def test_metrics_pass_promtool(trafficked):
    promtool = require_tool("promtool")
    text = trafficked.metrics_text()
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_content_type_is_prometheus_text(ferry):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{ferry.admin_port}/metrics") as r:
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_metrics_count_requests_per_route(trafficked):
    assert trafficked.metric("ferry_http_requests_total", listener="pub", route="api",
                             code="2xx") == 5


def test_metrics_count_requests_per_service(trafficked):
    assert trafficked.metric("ferry_upstream_requests_total", service="svc", code="2xx") == 5


def test_metrics_route_latency_histogram(trafficked):
    series = [(n, l, v) for n, l, v in parse_metrics(trafficked.metrics_text())
              if n.startswith("ferry_http_request_duration_seconds") and l.get("route") == "api"]
    buckets = [(l["le"], v) for n, l, v in series if n.endswith("_bucket")]
    assert ("+Inf", 5) in buckets
    assert [v for n, _, v in series if n.endswith("_count")] == [5]
    assert [v for n, _, v in series if n.endswith("_sum")][0] > 0


def test_metrics_service_latency_histogram(trafficked):
    assert trafficked.metric("ferry_upstream_request_duration_seconds_count", service="svc") == 5


def test_metrics_active_connections(trafficked):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", trafficked.port(), timeout=5)
    conn.request("GET", "/api/x")
    conn.getresponse().read()
    try:
        assert trafficked.metric("ferry_downstream_connections_active") == 1
    finally:
        conn.close()


def test_metrics_have_reload_counters(ferry):
    names = {n for n, _, _ in parse_metrics(ferry.metrics_text())}
    assert {"ferry_config_reloads_total", "ferry_config_reload_failures_total",
            "ferry_upstream_connections", "ferry_downstream_connections_active"} <= names
