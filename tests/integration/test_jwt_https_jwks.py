"""JWKS fetched over https:// (docs/security.md#jwt-authentication): a Python HTTPS server on
127.0.0.1 (the ssl module, certificates from the openssl command line) serves the provider's
JWKS. With `jwks_ca` naming the CA that issued its certificate, tokens of its keys pass and a
rotated key (new kid) is fetched again; a server the CA does not vouch for, or whose certificate
does not name the URL's host, is a failed fetch, so the routes answer 503 jwks_unavailable; without
`jwks_ca` the system's store is used (which does not hold the test CA); an unreadable jwks_ca
stops the start and `ferry validate`."""

import json
import subprocess
import time

import pytest
import yaml

from conftest import FERRY_BIN, assert_error_json, curl, wait_until
from jwt_support import JwksServer, Key, jwks
from test_jwt import assert_invalid, config, get
from tls_support import Pki


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    p = Pki(d)
    p.make_ca("root")
    p.make_ca("other")
    p.leaf("root", "idp", "IP:127.0.0.1,DNS:idp.test")
    p.leaf("other", "rogue", "IP:127.0.0.1,DNS:idp.test")  # the right name, the wrong CA
    p.leaf("root", "misnamed", "DNS:elsewhere.test")  # the right CA, not 127.0.0.1
    return p


@pytest.fixture
def https_servers():
    made = []

    def start(pki, name):
        server = JwksServer(pki.path(f"{name}.pem"), pki.path(f"{name}.key"))
        made.append(server)
        return server

    yield start
    for server in made:
        server.close()


@pytest.fixture
def keys():
    return {"r1": Key("r1"), "e1": Key("e1", "ec"), "r2": Key("r2")}


def test_https_jwks_verified_with_jwks_ca_accepts_its_tokens_and_rotates(
        start_ferry, echo, pki, https_servers, keys):
    server = https_servers(pki, "idp")
    server.body = jwks(keys["r1"], keys["e1"])
    ferry = start_ferry(config(echo, server.url, jwks_ca=pki.path("root.pem"),
                               jwks_refresh="10m"))
    r = get(ferry, keys["r1"].token())
    assert r.status == 200, r.body
    assert r.json()["headers"]["x-user"] == "alice"  # claims forwarded: the token was checked
    assert get(ferry, keys["e1"].token(sub="bob")).json()["headers"]["x-user"] == "bob"
    assert_invalid(get(ferry, keys["r2"].token()), "a kid the JWKS does not hold")
    assert server.requests == 1
    # Rotation at the provider: r2 in, r1 out. The unknown kid asks for a re-fetch, at most
    # once per 10 s (the one above may just have asked for it).
    server.body = jwks(keys["r2"])
    started = time.monotonic()
    wait_until(lambda: get(ferry, keys["r2"].token()).status == 200, 25, interval=0.3,
               what="the re-fetched JWKS to accept the new kid")
    assert time.monotonic() - started < 20
    assert server.requests == 2
    assert_invalid(get(ferry, keys["r1"].token()), "the key the provider removed")
    status, body = ferry.admin("/config")
    assert status == 200
    assert json.loads(body)["auth"]["jwt"]["idp"]["jwks_ca"] == pki.path("root.pem")


@pytest.mark.parametrize("name, why", [
    ("rogue", "certificate verify failed"),
    ("misnamed", "does not name the address '127.0.0.1'"),
])
def test_a_server_the_ca_does_not_vouch_for_means_jwks_unavailable(
        start_ferry, echo, pki, https_servers, keys, name, why):
    server = https_servers(pki, name)
    server.body = jwks(keys["r1"])
    ferry = start_ferry(config(echo, server.url, jwks_ca=pki.path("root.pem")))
    r = get(ferry, keys["r1"].token())
    assert r.status == 503, r.body
    doc = assert_error_json(r.body, 503, "jwks_unavailable")
    assert "idp" in doc["error"]["message"]
    assert r.headers.get("retry-after") == "1"
    assert curl(ferry.url("/open/x")).status == 200  # other routes are not affected
    assert server.requests == 0  # nothing was asked of a server that failed the check
    wait_until(lambda: why in ferry.log_text(), 5, what=f"the log to say '{why}'")
    # Still refused after a retry (backoff: 1 s, then 2 s).
    time.sleep(1.5)
    assert get(ferry, keys["r1"].token()).status == 503
    assert server.requests == 0


def test_without_jwks_ca_the_system_store_is_used(start_ferry, echo, pki, https_servers, keys):
    server = https_servers(pki, "idp")
    server.body = jwks(keys["r1"])
    ferry = start_ferry(config(echo, server.url))  # the test CA is not in the system's store
    r = get(ferry, keys["r1"].token())
    assert r.status == 503, r.body
    assert_error_json(r.body, 503, "jwks_unavailable")
    wait_until(lambda: "certificate verify failed" in ferry.log_text(), 5,
               what="the verification failure to be logged")
    assert server.requests == 0


def test_an_unreadable_jwks_ca_stops_the_start_and_validate(echo, tmp_path):
    c = config(echo, "https://127.0.0.1:1/jwks.json", jwks_ca=str(tmp_path / "missing.pem"))
    path = tmp_path / "ferry.yaml"
    path.write_text(yaml.safe_dump(c))
    r = subprocess.run([str(FERRY_BIN), "validate", "-c", str(path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "auth.jwt.idp.jwks_ca" in r.stderr and "missing.pem" in r.stderr, r.stderr
    r = subprocess.run([str(FERRY_BIN), "run", "-c", str(path)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "auth.jwt.idp.jwks_ca" in r.stdout + r.stderr
