"""API keys on a route (`api_keys:`), through the binary with curl: an accepted key reaches the
upstream without its header, a missing or wrong one gets 401 with WWW-Authenticate and never
reaches the upstream, GET /config shows names and no hashes, and a reload changes the keys."""

import hashlib
import json

from conftest import assert_error_json, basic_config, curl, keepalive_handler

ACME = "acme-7c1f0b2e9d4a"
GLOBEX = "globex-51aa93e0c6"


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _config(upstream, keys, header=None):
    api_keys = {"keys": [{"name": name, "sha256": sha256(key)} for name, key in keys]}
    if header:
        api_keys["header"] = header
    return basic_config([upstream.address], routes=[
        {"name": "reports", "match": {"prefix": "/"}, "service": "svc", "api_keys": api_keys}])


def test_an_accepted_key_reaches_the_upstream_without_the_key(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, [("partner-acme", ACME), ("partner-globex", GLOBEX)]))
    for key in (ACME, GLOBEX):
        r = curl(ferry.url("/reports/1"), "-H", f"X-Api-Key: {key}")
        assert r.status == 200, r.body
    assert len(up.requests) == 2
    for request in up.requests:
        assert b"x-api-key" not in request.lower(), request
        assert ACME.encode() not in request and GLOBEX.encode() not in request


def test_a_missing_key_is_401_with_a_challenge(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, [("partner-acme", ACME)]))
    r = curl(ferry.url("/reports/1"))
    assert r.status == 401, r.body
    assert_error_json(r.body, 401, "api_key_missing")
    assert r.headers["www-authenticate"] == 'ApiKey header="x-api-key"'
    empty = curl(ferry.url("/reports/1"), "-H", "X-Api-Key;")  # curl's syntax for an empty value
    assert empty.status == 401
    assert_error_json(empty.body, 401, "api_key_missing")
    assert up.requests == []
    assert ferry.metric("ferry_local_replies_total", code="api_key_missing") == 2


def test_a_wrong_key_is_401_invalid_and_is_not_echoed(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, [("partner-acme", ACME)]))
    for wrong in (ACME[:-1], ACME.upper(), sha256(ACME), GLOBEX):
        r = curl(ferry.url("/x"), "-H", f"x-api-key: {wrong}")
        assert r.status == 401, r.body
        assert_error_json(r.body, 401, "api_key_invalid")
        assert wrong.encode() not in r.body
        assert r.headers["www-authenticate"] == 'ApiKey header="x-api-key"'
    assert up.requests == []
    assert ferry.metric("ferry_local_replies_total", code="api_key_invalid") == 4


def test_the_header_is_configurable(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, [("partner-acme", ACME)], header="X-Partner-Key"))
    assert curl(ferry.url("/x"), "-H", f"x-api-key: {ACME}").status == 401
    r = curl(ferry.url("/x"), "-H", f"X-Partner-Key: {ACME}")
    assert r.status == 200, r.body
    assert b"x-partner-key" not in up.requests[0].lower()
    challenge = curl(ferry.url("/x")).headers["www-authenticate"]
    assert challenge == 'ApiKey header="x-partner-key"'


def test_config_shows_the_names_and_no_hashes(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, [("partner-acme", ACME)]))
    status, body = ferry.admin("/config")
    assert status == 200
    assert sha256(ACME).encode() not in body and ACME.encode() not in body
    route = json.loads(body)["listeners"][0]["routes"][0]
    assert route["api_keys"] == {"header": "x-api-key", "keys": [{"name": "partner-acme"}]}


def test_a_reload_adds_and_removes_keys(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, [("partner-acme", ACME)]))
    assert curl(ferry.url("/x"), "-H", f"x-api-key: {GLOBEX}").status == 401
    ferry.reload(_config(up, [("partner-globex", GLOBEX)]))
    assert curl(ferry.url("/x"), "-H", f"x-api-key: {GLOBEX}").status == 200
    assert curl(ferry.url("/x"), "-H", f"x-api-key: {ACME}").status == 401


def test_a_plain_key_in_the_config_is_refused_at_start(tmp_path):
    import subprocess

    from conftest import FERRY_BIN

    config = tmp_path / "ferry.yaml"
    config.write_text(
        "services: {svc: {endpoints: ['127.0.0.1:9']}}\n"
        "listeners:\n"
        "  - name: pub\n"
        "    listen: 127.0.0.1:0\n"
        "    routes:\n"
        f"      - {{service: svc, api_keys: {{keys: [{{name: a, sha256: {ACME}}}]}}}}\n")
    proc = subprocess.run([str(FERRY_BIN), "validate", "-c", str(config)], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode != 0
    assert "must be the key's SHA-256 as 64 hex digits" in proc.stdout + proc.stderr
