"""The access log: off by default; when enabled, one JSON line per request."""

import datetime
import json

import pytest

from conftest import basic_config, curl, wait_until


@pytest.fixture
def logged(start_ferry, echo, tmp_path):
    path = tmp_path / "access.log"
    ferry = start_ferry(basic_config([echo.address], routes=[
        {"name": "api", "match": {"prefix": "/api/"}, "service": "svc", "rewrite_prefix": "/"}],
        access_log={"enabled": True, "path": str(path)}))
    ferry.access_log = path
    ferry.echo = echo
    return ferry


def lines(path, n):
    def ready():
        if not path.exists():
            return None
        got = path.read_text().splitlines()
        return got if len(got) >= n else None

    return wait_until(ready, 5, what=f"{n} access log line(s)")


def test_one_json_line_per_request(logged):
    for i in range(3):
        assert curl(logged.url(f"/api/{i}")).status == 200
    got = lines(logged.access_log, 3)
    assert len(got) == 3
    assert [json.loads(l)["path"] for l in got] == ["/api/0", "/api/1", "/api/2"]


def test_line_has_every_field(logged):
    r = curl(logged.url("/api/bytes/1234?q=1"), "-H", "X-Request-Id: log-me")
    assert r.status == 200
    entry = json.loads(lines(logged.access_log, 1)[0])
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/bytes/1234?q=1"  # as the client sent it
    assert entry["status"] == 200
    assert entry["bytes_sent"] == 1234
    assert entry["request_id"] == "log-me"
    assert entry["route"] == "api"
    assert entry["upstream"] == logged.echo.address
    assert isinstance(entry["duration"], (int, float)) and entry["duration"] >= 0
    t = datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - t).total_seconds()) < 60


def test_bytes_received_counts_request_body(logged):
    assert curl(logged.url("/api/upload"), "--data-binary", "x" * 777).status == 200
    assert json.loads(lines(logged.access_log, 1)[0])["bytes_received"] == 777


def test_local_reply_is_logged(logged):
    assert curl(logged.url("/nope")).status == 404
    entry = json.loads(lines(logged.access_log, 1)[0])
    assert entry["status"] == 404
    assert entry["upstream"] == ""


def test_off_by_default(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    assert curl(ferry.url("/marker-path")).status == 200
    import time

    time.sleep(0.3)  # past a flush interval
    assert "/marker-path" not in ferry.log_text()
