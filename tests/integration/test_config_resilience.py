"""The resilience keys of the config file as the running node sees them (GET /config): policies
merged over the default, a route's effective policy and timeout, and both following a reload; a
reload naming an unknown policy is refused and the running config keeps serving."""

import copy
import json

from conftest import basic_config


def with_policies(echo, policies, *, service_policy=None, route=None):
    config = basic_config([echo.address], routes=[dict({"service": "svc"}, **(route or {}))],
                          service_extra={"policy": service_policy} if service_policy else None)
    config["policies"] = policies
    return config


def effective(ferry):
    status, body = ferry.admin("/config")
    assert status == 200
    return json.loads(body)


def test_a_policy_is_the_default_with_its_written_fields_replaced(start_ferry, echo):
    ferry = start_ferry(with_policies(
        echo, {"default": {"timeout": "4s"}, "standard": {"retry": {"attempts": 3}}},
        service_policy="standard"))
    c = effective(ferry)
    default, standard = c["policies"]["default"], c["policies"]["standard"]
    assert default["timeout"] == "4s"
    assert standard["timeout"] == "4s"  # from the written default
    assert standard["retry"]["attempts"] == 3
    assert standard["retry"]["on"] == ["connect_failure", "reset", 502, 503, "unavailable"]
    assert standard["retry"]["budget"] == {"ratio": "20%", "min_per_second": 10}
    assert standard["outlier_detection"]["consecutive_failures"] == 5
    assert standard["circuit_breaker"] is False
    route = c["listeners"][0]["routes"][0]
    assert route["policy"] == "standard"  # its service's
    assert route["timeout"] == "4s"  # its policy's
    assert c["services"]["svc"]["policy"] == "standard"


def test_reload_follows_a_changed_policy(start_ferry, echo):
    config = with_policies(echo, {"standard": {"timeout": "3s"}}, route={"policy": "standard"})
    ferry = start_ferry(config)
    assert effective(ferry)["listeners"][0]["routes"][0]["timeout"] == "3s"
    changed = copy.deepcopy(config)
    changed["policies"]["standard"] = {"timeout": "7s", "circuit_breaker": {"open_for": "1s"}}
    ferry.reload(changed)
    assert ferry.metric("ferry_config_reload_failures_total") == 0
    c = effective(ferry)
    assert c["listeners"][0]["routes"][0]["timeout"] == "7s"
    assert c["policies"]["standard"]["circuit_breaker"]["open_for"] == "1s"


def test_reload_naming_an_unknown_policy_is_refused(start_ferry, echo):
    config = with_policies(echo, {"standard": {}}, route={"policy": "standard"})
    ferry = start_ferry(config)
    bad = copy.deepcopy(config)
    bad["listeners"][0]["routes"][0]["policy"] = "missing"
    ferry.reload(bad)
    assert ferry.metric("ferry_config_reload_failures_total") == 1
    assert "unknown policy 'missing' (defined policies: default, standard)" in ferry.log_text()
    assert effective(ferry)["listeners"][0]["routes"][0]["policy"] == "standard"
