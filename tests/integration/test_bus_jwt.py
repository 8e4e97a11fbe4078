"""JWT on the bus API (`bus.api.auth: {jwt: NAME}`, docs/bus.md#authentication-and-authorization),
through the binary over real sockets, with tokens made by PyJWT: no token gets 401 jwt_missing
and a forged, expired or foreign one 401 jwt_invalid, both with WWW-Authenticate and before
anything is stored; a valid token publishes and consumes; the authorization rules match its
claims; verifications are counted."""

import time

from bus_support import BusNode, fast_queue
from conftest import assert_error_json, wait_until
from jwt_support import ISSUER, Key, jwks


def _config(tmp_path, provider, rules=None):
    config = {
        "admin": {"listen": "127.0.0.1:0"},
        "auth": {"jwt": {"idp": {"issuer": ISSUER, "audiences": ["api"], **provider}}},
        "bus": {"listen": "127.0.0.1:0", "data_dir": str(tmp_path / "bus-data"),
                "queues": {"jobs": fast_queue(), "payments": fast_queue()},
                "api": {"auth": {"jwt": "idp"}}},
    }
    if rules is not None:
        config["authorization"] = {"rules": rules}
    return config


def _start(start_ferry, tmp_path, key, rules=None, provider=None):
    path = tmp_path / "jwks.json"
    path.write_text(jwks(key))
    config = _config(tmp_path, {"jwks": str(path), **(provider or {})}, rules)
    node = BusNode(start_ferry, config, start_ferry(config))
    # The JWKS updater loads the provider's keys within a tick of the bus starting; until
    # then its requests are answered 503 jwks_unavailable.
    probe = _bearer(key.token())
    wait_until(lambda: node.client.request("GET", "/v1/queues", headers=probe).status == 200, 5,
               what="the provider's keys to be loaded")
    return node


def _bearer(token):
    return {"authorization": f"Bearer {token}"}


def test_tokens_are_checked_before_anything_is_stored(start_ferry, tmp_path):
    key = Key("r1")
    node = _start(start_ferry, tmp_path, key)
    token = key.token()
    c = node.client
    ok_before = node.ferry.metric("ferry_jwt_verifications_total", provider="idp", result="ok")
    r = c.publish("jobs", b"no token")
    assert r.status == 401, r
    assert_error_json(r.body, 401, "jwt_missing")
    assert r.headers["www-authenticate"] == 'Bearer realm="idp"'
    other = Key("r1")  # the same kid, another key: a forged signature
    for what, bad in [("forged", other.token()),
                      ("expired", key.token(exp=int(time.time()) - 3600)),
                      ("wrong issuer", key.token(iss="https://evil.example")),
                      ("wrong audience", key.token(aud="other")),
                      ("not a JWT", "abc.def")]:
        r = c.publish("jobs", what.encode(), headers=_bearer(bad))
        assert r.status == 401, (what, r)
        assert_error_json(r.body, 401, "jwt_invalid")
        assert r.headers["www-authenticate"].startswith(
            'Bearer realm="idp", error="invalid_token", error_description="'), what
    r = c.publish("jobs", b"good", headers=_bearer(token))
    assert r.status in (200, 201), r
    r = c.request("GET", "/v1/queues/jobs/messages?max=10&wait=0s",
                  headers={"authorization": f"bearer {token}"})  # the scheme in any case
    assert r.status == 200, r
    assert [m["data"] for m in r.json()["messages"]] == ["good"]
    assert node.ferry.metric("ferry_jwt_verifications_total", provider="idp",
                             result="ok") == ok_before + 2
    assert node.ferry.metric("ferry_jwt_verifications_total", provider="idp",
                             result="missing") == 1


def test_authorization_rules_match_the_tokens_claims(start_ferry, tmp_path):
    key = Key("r1")
    rules = [{"allow": {"routes": ["bus.publish"], "claims": {"scope": "bus.write"},
                        "paths": ["/v1/queues/jobs/*"]}},
             {"allow": {"routes": ["bus.consume"], "claims": {"roles": "ops"}}}]
    node = _start(start_ferry, tmp_path, key, rules)
    writer = key.token(scope="bus.write", roles=["dev"])
    reader = key.token(roles=["dev", "ops"])  # an array claim matches by any element
    c = node.client
    assert c.publish("jobs", b"a", headers=_bearer(writer)).status in (200, 201)
    r = c.publish("payments", b"b", headers=_bearer(writer))  # a path no rule allows
    assert r.status == 403, r
    assert_error_json(r.body, 403, "forbidden")
    r = c.publish("jobs", b"c", headers=_bearer(reader))  # no scope claim
    assert r.status == 403, r
    r = c.request("GET", "/v1/queues/jobs/messages?max=10&wait=0s", headers=_bearer(writer))
    assert r.status == 403, r
    r = c.request("GET", "/v1/queues/jobs/messages?max=10&wait=0s", headers=_bearer(reader))
    assert r.status == 200, r
    assert [m["data"] for m in r.json()["messages"]] == ["a"]
    assert node.ferry.metric("ferry_authz_decisions_total", route="bus.publish",
                             decision="deny") == 2


def test_the_providers_cookie_carries_the_token_when_no_bearer_header_came(start_ferry, tmp_path):
    key = Key("r1")
    node = _start(start_ferry, tmp_path, key, provider={"cookie": "session"})
    c = node.client
    r = c.publish("jobs", b"by cookie", headers={"cookie": f"theme=dark; session={key.token()}"})
    assert r.status in (200, 201), r
    r = c.publish("jobs", b"bad cookie", headers={"cookie": "session=abc.def"})
    assert r.status == 401, r
    assert_error_json(r.body, 401, "jwt_invalid")
    r = c.request("GET", "/v1/queues/jobs/messages?max=10&wait=0s",
                  headers={"cookie": f"session={key.token()}"})
    assert r.status == 200, r
    assert [m["data"] for m in r.json()["messages"]] == ["by cookie"]


def test_before_the_keys_are_loaded_the_answer_is_503_with_retry_after(start_ferry, tmp_path):
    key = Key("r1")
    # A JWKS file that does not exist yet: the provider has no keys.
    config = _config(tmp_path, {"jwks": str(tmp_path / "missing-jwks.json")})
    node = BusNode(start_ferry, config, start_ferry(config))
    r = node.client.publish("jobs", b"early", headers=_bearer(key.token()))
    assert r.status == 503, r
    assert_error_json(r.body, 503, "jwks_unavailable")
    assert r.headers["retry-after"] == "1"
