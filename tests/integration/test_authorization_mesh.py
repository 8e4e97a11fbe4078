"""Authorization of mesh callers: a `tls: mesh` listener (its clients' certificates issued by
`ferry ca`, each naming its service as spiffe://shop.test/service/NAME), rules by caller
identity, and real TLS clients (curl with each service's certificate). A caller the rules allow
gets through (and the upstream sees it in x-ferry-caller); one they do not gets 403."""

import json
import subprocess

from conftest import FERRY_BIN, assert_error_json, require_tool


def ferry_ca(*args):
    r = subprocess.run([str(FERRY_BIN), "ca", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r


def curl_as(port, ca_dir, service, path, method="GET"):
    args = [require_tool("curl"), "-sS", "-k", "-X", method, "-o", "-", "-w", "\n%{http_code}"]
    if service:
        args += ["--cert", str(ca_dir / f"{service}.pem"), "--key", str(ca_dir / f"{service}.key")]
    r = subprocess.run(args + [f"https://127.0.0.1:{port}{path}"], capture_output=True,
                       timeout=20)
    body, _, status = r.stdout.rpartition(b"\n")
    return (int(status) if status.strip().isdigit() else 0), body, r


def test_mesh_callers_are_allowed_and_denied_by_identity(start_ferry, echo, tmp_path):
    ca_dir = tmp_path / "ca"
    ferry_ca("init", "--dir", str(ca_dir), "--trust-domain", "shop.test")
    for service in ("gateway", "web", "batch"):
        ferry_ca("issue", "--dir", str(ca_dir), "--service", service)
    config = {
        "workers": 1,
        "admin": {"listen": "127.0.0.1:0"},
        "mesh": {"cert": str(ca_dir / "gateway.pem"), "key": str(ca_dir / "gateway.key"),
                 "ca": str(ca_dir / "ca.pem")},
        "listeners": [{"name": "pub", "listen": "127.0.0.1:0", "tls": "mesh", "routes": [
            {"name": "orders", "match": {"prefix": "/orders"}, "service": "svc"}]}],
        "services": {"svc": {"endpoints": [f"127.0.0.1:{echo.port}"]}},
        "authorization": {"rules": [
            {"allow": {"routes": ["orders"], "callers": ["spiffe://shop.test/service/web"],
                       "methods": ["GET", "POST"]}},
        ]},
    }
    ferry = start_ferry(config)
    port = ferry.port()

    status, body, r = curl_as(port, ca_dir, "web", "/orders/7")
    assert status == 200, (r.stderr, body)
    # The echo service answers with what it got: the verified caller, set by Ferry.
    headers = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert headers["x-ferry-caller"] == "spiffe://shop.test/service/web"

    status, body, r = curl_as(port, ca_dir, "batch", "/orders/7")
    assert status == 403, (r.stderr, body)
    assert_error_json(body, 403, "forbidden")

    status, body, r = curl_as(port, ca_dir, "web", "/orders/7", "DELETE")
    assert status == 403, (r.stderr, body)

    assert ferry.metric("ferry_authz_decisions_total", route="orders", decision="allow") == 1
    assert ferry.metric("ferry_authz_decisions_total", route="orders", decision="deny") == 2
