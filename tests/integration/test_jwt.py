"""JWT authentication against the real binary (docs/security.md#jwt-authentication): tokens are
made here with PyJWT and `cryptography` (python3-jwt, python3-cryptography), sent with curl.
A valid token reaches the echo service with its claims forwarded as headers; a missing one gets
401 with WWW-Authenticate; every forged or wrong token gets 401 invalid_token; the JWKS rotates
(from a file and from an http:// URL, with the re-fetch on an unknown kid); a JWKS that cannot
be had at start makes the route answer 503 jwks_unavailable until it appears."""

import json
import time

import jwt
import pytest

from conftest import assert_error_json, basic_config, curl, wait_until
from jwt_support import ISSUER, JwksServer, Key, b64, hs256, jwks, unsigned

@pytest.fixture
def jwks_server():
    server = JwksServer()
    yield server
    server.close()


def config(echo, jwks_source: str, **provider_extra) -> dict:
    c = basic_config([echo.address], routes=[
        {"match": {"prefix": "/api/"}, "service": "svc", "auth": {"jwt": "idp"}},
        {"match": {"prefix": "/open/"}, "service": "svc"}])
    provider = {"issuer": ISSUER, "audiences": ["api", "other"], "jwks": jwks_source,
                "clock_skew": "5s", "cookie": "session",
                "forward_claims": {"sub": "x-user", "roles": "x-roles"}}
    provider.update(provider_extra)
    c["auth"] = {"jwt": {"idp": provider}}
    return c


def get(ferry, token: str | None = None, *args: str, path: str = "/api/x"):
    headers = ["-H", f"Authorization: Bearer {token}"] if token is not None else []
    return curl(ferry.url(path), *headers, *args)


def assert_invalid(r, what: str):
    assert r.status == 401, (what, r.status, r.body)
    assert_error_json(r.body, 401, "jwt_invalid")
    challenge = r.headers.get("www-authenticate", "")
    assert challenge.startswith('Bearer realm="idp", error="invalid_token", error_description="'), (
        what, challenge)


@pytest.fixture
def keys():
    return {"r1": Key("r1"), "e1": Key("e1", "ec"), "r2": Key("r2")}


def test_a_valid_token_reaches_the_upstream_with_its_claims(start_ferry, echo, tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(jwks(keys["r1"], keys["e1"]))
    ferry = start_ferry(config(echo, str(path)))
    token = keys["r1"].token()
    r = get(ferry, token, "-H", "X-User: mallory")
    assert r.status == 200, r.body
    seen = r.json()["headers"]
    assert seen["x-user"] == "alice"  # the client's own x-user was replaced
    assert seen["x-roles"] == "admin,dev"
    assert seen["authorization"] == f"Bearer {token}"  # forwarded: the upstream may relay it
    # ES256, the scheme in another case, and the cookie.
    r = curl(ferry.url("/api/x"), "-H", f"authorization: bEARER {keys['e1'].token(sub='bob')}")
    assert r.status == 200, r.body
    assert r.json()["headers"]["x-user"] == "bob"
    r = curl(ferry.url("/api/x"), "-H", f"Cookie: theme=dark; session={keys['r1'].token(sub='carol')}")
    assert r.status == 200, r.body
    assert r.json()["headers"]["x-user"] == "carol"
    assert ferry.metric("ferry_jwt_verifications_total", provider="idp", result="ok") == 3
    # A route without auth needs no token.
    assert curl(ferry.url("/open/x")).status == 200


def test_a_missing_token_is_401_with_www_authenticate(start_ferry, echo, tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(jwks(keys["r1"]))
    ferry = start_ferry(config(echo, str(path)))
    for args in ([], ["-H", "Authorization: Basic YWxpY2U6c2VjcmV0"], ["-H", "Authorization: Bearer"]):
        r = curl(ferry.url("/api/x"), *args)
        assert r.status == 401, (args, r.body)
        assert r.headers["www-authenticate"] == 'Bearer realm="idp"', args
        doc = assert_error_json(r.body, 401, "jwt_missing")
        assert doc["request_id"] == r.headers["x-request-id"]
    assert ferry.metric("ferry_jwt_verifications_total", provider="idp", result="missing") == 3
    assert ferry.metric("ferry_local_replies_total", code="jwt_missing") == 3


def test_every_forged_or_wrong_token_is_refused(start_ferry, echo, tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(jwks(keys["r1"], keys["e1"]))
    ferry = start_ferry(config(echo, str(path)))
    r1 = keys["r1"]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "api", "sub": "alice", "exp": now + 300}
    good = r1.token()
    head, payload, signature = good.split(".")
    forged = {
        "alg none": unsigned({"alg": "none", "kid": "r1"}, claims),
        "alg confusion (HS256 with the RSA public key)":
            hs256({"alg": "HS256", "kid": "r1"}, claims, r1.public_pem()),
        "expired": r1.token(exp=now - 3600),
        "not yet valid": r1.token(nbf=now + 3600),
        "wrong issuer": r1.token(iss="https://evil.example"),
        "wrong audience": r1.token(aud="someone-else"),
        "no exp": r1.token(exp=None),
        "bad signature": Key("r1").token(),  # same kid, another key
        "payload swapped": head + "." + b64(json.dumps(dict(claims, sub="root")).encode()) + "." +
                           signature,
        "unknown kid": Key("zz").token(),
        "ES256 header on the RSA key": r1.token(alg="RS256", kid="e1"),
        "crit": jwt.encode(claims, r1.private, algorithm="RS256",
                           headers={"kid": "r1", "crit": ["exp"]}),
        "truncated": good[: len(good) - 20],
        "two parts": head + "." + payload,
        "garbage": "not-a-token",
        "padding": good + "==",
    }
    for what, token in forged.items():
        assert_invalid(get(ferry, token), what)
    assert ferry.metric("ferry_local_replies_total", code="jwt_invalid") == len(forged)
    for result in ("bad_algorithm", "expired", "not_yet_valid", "wrong_issuer", "wrong_audience",
                   "bad_signature", "unknown_kid", "no_fitting_key", "unknown_crit", "malformed"):
        assert ferry.metric("ferry_jwt_verifications_total", provider="idp", result=result) >= 1, result
    assert get(ferry, good).status == 200  # and the good one still passes


def test_jwks_file_rotation(start_ferry, echo, tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(jwks(keys["r1"]))
    ferry = start_ferry(config(echo, str(path)))
    old, new = keys["r1"].token(), keys["r2"].token()
    assert get(ferry, old).status == 200
    assert_invalid(get(ferry, new), "new key not published yet")
    path.write_text(jwks(keys["r1"], keys["r2"]))  # the provider publishes the next key
    wait_until(lambda: get(ferry, new).status == 200, 5, what="the new key to be accepted")
    assert get(ferry, old).status == 200
    path.write_text(jwks(keys["r2"]))  # and retires the old one
    wait_until(lambda: get(ferry, old).status == 401, 5, what="the old key to be refused")
    assert_invalid(get(ferry, old), "retired key")
    assert get(ferry, new).status == 200


def test_jwks_url_rotation_refetches_on_an_unknown_kid(start_ferry, echo, jwks_server, keys):
    jwks_server.body = jwks(keys["r1"])
    ferry = start_ferry(config(echo, jwks_server.url, jwks_refresh="10m"))
    old, new = keys["r1"].token(), keys["r2"].token()
    assert get(ferry, old).status == 200
    fetches = jwks_server.requests
    assert fetches == 1
    jwks_server.body = jwks(keys["r2"])  # rotated at the provider: r1 gone, r2 in
    # The first token with kid r2 is refused (unknown kid) and asks for a re-fetch, which comes
    # at most once per 10 s; a storm of unknown kids does not become a storm of fetches.
    started = time.monotonic()
    wait_until(lambda: get(ferry, new).status == 200, 20, interval=0.2,
               what="the re-fetched JWKS to accept the new kid")
    assert time.monotonic() - started < 15
    assert jwks_server.requests == fetches + 1
    assert_invalid(get(ferry, old), "the key the provider removed")


def test_jwks_unavailable_at_start_is_503_until_it_appears(start_ferry, echo, tmp_path, keys):
    path = tmp_path / "later.json"
    ferry = start_ferry(config(echo, str(path)))  # the file is not there: Ferry starts anyway
    token = keys["r1"].token()
    r = get(ferry, token)
    assert r.status == 503, r.body
    doc = assert_error_json(r.body, 503, "jwks_unavailable")
    assert "idp" in doc["error"]["message"]
    assert curl(ferry.url("/open/x")).status == 200  # other routes are not affected
    path.write_text("{not json")  # a broken JWKS changes nothing
    time.sleep(1.5)
    assert get(ferry, token).status == 503
    path.write_text(jwks(keys["r1"]))
    wait_until(lambda: get(ferry, token).status == 200, 5, what="the JWKS file to be loaded")
    assert "jwks_unavailable" in ferry.log_text()


def test_jwks_url_down_at_start_recovers_with_backoff(start_ferry, echo, jwks_server, keys):
    jwks_server.body = None  # 500s
    ferry = start_ferry(config(echo, jwks_server.url))
    token = keys["r1"].token()
    r = get(ferry, token)
    assert r.status == 503, r.body
    assert_error_json(r.body, 503, "jwks_unavailable")
    time.sleep(3)
    tries = jwks_server.requests
    assert 2 <= tries <= 4, tries  # at start, then after 1 s and 2 s: backing off, not spinning
    jwks_server.body = jwks(keys["r1"])
    wait_until(lambda: get(ferry, token).status == 200, 15, interval=0.2,
               what="the JWKS URL to be fetched again")


def test_hs256_only_with_the_configured_secret(start_ferry, echo, tmp_path, keys):
    secret = "s3cret-" + "x" * 40  # printable, so GET /config can be searched for it
    secret_path = tmp_path / "hs256.key"
    secret_path.write_text(secret)
    secret_path.chmod(0o600)
    path = tmp_path / "jwks.json"
    path.write_text(jwks(keys["r1"]))
    ferry = start_ferry(config(echo, str(path), algorithms=["RS256", "HS256"],
                               secret_file=str(secret_path)))
    claims = {"iss": ISSUER, "aud": "api", "sub": "svc", "exp": int(time.time()) + 300}
    r = get(ferry, jwt.encode(claims, secret, algorithm="HS256"))
    assert r.status == 200, r.body
    assert r.json()["headers"]["x-user"] == "svc"
    assert_invalid(get(ferry, jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256")),
                   "HS256 with another secret")
    assert_invalid(get(ferry, hs256({"alg": "HS256", "kid": "r1"}, claims,
                                    keys["r1"].public_pem())), "HS256 with the RSA public key")
    assert get(ferry, keys["r1"].token()).status == 200  # RS256 still works beside it
    status, body = ferry.admin("/config")
    assert status == 200
    assert str(secret_path).encode() in body  # the path shows ...
    assert secret.encode() not in body  # ... the secret never


def test_a_reload_keeps_the_loaded_keys(start_ferry, echo, tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(jwks(keys["r1"]))
    ferry = start_ferry(config(echo, str(path)))
    assert get(ferry, keys["r1"].token()).status == 200
    # The JWKS file goes away (the keys loaded stay), and a reload changes the provider: the new
    # provider starts with the keys of the old one (same source), so there is no 503 window.
    path.unlink()
    ferry.reload(config(echo, str(path), audiences=["api", "mobile"]))
    assert get(ferry, keys["r1"].token(aud="mobile")).status == 200
    assert get(ferry, keys["r1"].token()).status == 200
