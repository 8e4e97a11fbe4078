"""Authorization rules (`authorization:`), through the binary with API-key callers (curl):
allowed and denied per route, method and path, first match decides, default deny (and allow),
routes no rule applies to, and ferry_authz_decisions_total at the admin /metrics."""

import copy
import hashlib
import re

import yaml

from conftest import (FERRY_BIN, Ferry, assert_error_json, basic_config, curl, keepalive_handler,
                      wait_until)

KEYS = {"billing": "kb-0d81f7", "reports": "kr-99c2aa", "partner-acme": "kp-5e17b0"}


def _keys():
    return {"keys": [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                     for name, key in KEYS.items()]}


def _config(upstream, rules, default=None):
    config = basic_config([upstream.address], routes=[
        {"name": "orders", "match": {"prefix": "/orders"}, "service": "svc", "api_keys": _keys()},
        {"name": "reports", "match": {"prefix": "/reports"}, "service": "svc",
         "api_keys": _keys()},
        {"name": "open", "match": {"prefix": "/"}, "service": "svc"}])
    config["authorization"] = {"rules": copy.deepcopy(rules)}
    if default:
        config["authorization"]["default"] = default
    return config


def _call(ferry, caller, path, method="GET"):
    args = ["-X", method]
    if caller:
        args += ["-H", f"x-api-key: {KEYS[caller]}"]
    return curl(ferry.url(path), *args)


RULES = [
    {"deny": {"routes": ["orders"], "methods": ["DELETE"]}},
    {"allow": {"routes": ["orders"], "callers": ["billing"]}},
    {"allow": {"routes": ["orders"], "callers": ["partner-*"], "methods": ["GET"],
               "paths": ["/orders/public/*"]}},
    {"allow": {"routes": ["reports"], "callers": ["reports", "billing"], "methods": ["GET"]}},
]


def test_callers_are_allowed_and_denied_per_route_method_and_path(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, RULES))
    cases = [
        ("billing", "/orders/7", "GET", 200),
        ("billing", "/orders/7", "POST", 200),
        ("billing", "/orders/7", "DELETE", 403),             # rule 0 comes first
        ("reports", "/orders/7", "GET", 403),                # no rule: default deny
        ("partner-acme", "/orders/public/menu", "GET", 200),
        ("partner-acme", "/orders/7", "GET", 403),           # path outside the prefix
        ("partner-acme", "/orders/public/menu", "POST", 403),  # method
        ("reports", "/reports/q3", "GET", 200),
        ("billing", "/reports/q3", "GET", 200),
        ("reports", "/reports/q3", "PUT", 403),
        ("partner-acme", "/reports/q3", "GET", 403),
    ]
    for caller, path, method, status in cases:
        r = _call(ferry, caller, path, method)
        assert r.status == status, (caller, path, method, r.status, r.body)
        if status == 403:
            assert_error_json(r.body, 403, "forbidden")
    assert len(up.requests) == sum(1 for c in cases if c[3] == 200)
    assert ferry.metric("ferry_authz_decisions_total", route="orders", decision="allow") == 3
    assert ferry.metric("ferry_authz_decisions_total", route="orders", decision="deny") == 4
    assert ferry.metric("ferry_authz_decisions_total", route="reports", decision="allow") == 2
    assert ferry.metric("ferry_authz_decisions_total", route="reports", decision="deny") == 2
    assert ferry.metric("ferry_local_replies_total", code="forbidden") == 6


def test_authentication_comes_first(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, RULES))
    r = _call(ferry, None, "/orders/7")
    assert r.status == 401
    assert_error_json(r.body, 401, "api_key_missing")
    # Refused before authorization: no decision counted.
    assert ferry.metric("ferry_authz_decisions_total", route="orders") == 0


def test_a_route_no_rule_applies_to_has_no_authorization(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    ferry = start_ferry(_config(up, RULES))
    r = _call(ferry, None, "/elsewhere")
    assert r.status == 200, r.body
    assert ferry.metric("ferry_authz_decisions_total", route="open") == 0


def test_a_rule_without_routes_applies_everywhere_and_default_allow(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    rules = [{"deny": {"methods": ["DELETE"]}}]
    ferry = start_ferry(_config(up, rules, default="allow"))
    assert _call(ferry, None, "/elsewhere", "DELETE").status == 403
    assert _call(ferry, None, "/elsewhere", "GET").status == 200
    assert _call(ferry, "reports", "/orders/1", "GET").status == 200
    assert _call(ferry, "reports", "/orders/1", "DELETE").status == 403
    assert ferry.metric("ferry_authz_decisions_total", route="open", decision="deny") == 1
    assert ferry.metric("ferry_authz_decisions_total", route="open", decision="allow") == 1


def test_a_reload_changes_the_rules(start_ferry, py_upstream):
    up = py_upstream(keepalive_handler)
    config = _config(up, RULES)
    ferry = start_ferry(config)
    assert _call(ferry, "reports", "/orders/7").status == 403
    config["authorization"]["rules"].insert(0, {"allow": {"routes": ["orders"],
                                                          "callers": ["reports"]}})
    ferry.reload(config)
    assert _call(ferry, "reports", "/orders/7").status == 200


def test_the_debug_log_says_which_rule_decided(processes, tmp_path, py_upstream):
    up = py_upstream(keepalive_handler)
    config_path = tmp_path / "ferry.yaml"
    config_path.write_text(yaml.safe_dump(_config(up, RULES), sort_keys=False))
    p = processes.start([str(FERRY_BIN), "run", "-c", str(config_path), "--log-level", "debug"],
                        tmp_path / "ferry.log")
    m = wait_until(lambda: re.search(r"admin on 127\.0\.0\.1:(\d+)", p.log_text()), 15,
                   what="the admin address")
    ferry = Ferry(p, config_path, int(m.group(1)))
    wait_until(lambda: ferry.admin("/ready")[0] == 200, 15, what="ready")
    assert _call(ferry, "billing", "/orders/7", "DELETE").status == 403
    assert _call(ferry, "reports", "/orders/7").status == 403
    log = wait_until(lambda: "rule 0 (deny)" in p.log_text() and p.log_text(), 5,
                     what="the decision in the log")
    assert re.search(r"authorization: denied DELETE /orders/7 on route orders .*api_key='billing'"
                     r".*: rule 0 \(deny\)", log), log
    assert "api_key='reports' jwt=false: no rule matched (default deny)" in log
    assert KEYS["billing"] not in log  # the key itself is never logged
