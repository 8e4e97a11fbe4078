"""A short wrk run: every response 2xx, no socket errors. Throughput is never asserted."""

import re
import subprocess

from conftest import basic_config, require_tool


def test_wrk_smoke_no_errors(start_ferry, echo_pair):
    wrk = require_tool("wrk")
    ferry = start_ferry(basic_config([e.address for e in echo_pair], workers=2))
    r = subprocess.run([wrk, "-t1", "-c10", "-d2s", ferry.url("/")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    requests = re.search(r"(\d+) requests in", out)
    assert requests and int(requests.group(1)) > 0, out
    assert "Socket errors" not in out, out
    assert "Non-2xx or 3xx responses" not in out, out
    assert ferry.metric("ferry_http_requests_total", code="5xx") == 0
    assert ferry.metric("ferry_http_requests_total", code="2xx") >= int(requests.group(1))
