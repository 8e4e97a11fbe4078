"""Upstream TLS (a service's `tls:`, docs/security.md#upstream-tls): Ferry calls an HTTPS
upstream (python's ssl module on a thread) and verifies it — CA bundles with several roots, the
host name or IP, SNI, pins — and, with `tls: mesh`, calls it over mutual TLS with the node's
mesh certificate and checks the server's SPIFFE ID. Certificates come from `ferry ca` (mesh)
and from the openssl command line (DNS and IP SANs)."""

import http.server
import json
import os
import subprocess
import time

import pytest
import yaml

from bus_support import fast_queue, start_bus  # noqa: F401 - fixture
from conftest import FERRY_BIN, assert_error_json, basic_config, curl, wait_until
from tls_support import Pki, ThreadedServer, run, server_context


class TlsUpstream:
    """An HTTPS server on 127.0.0.1 (a thread). Records the SNI of each handshake and the
    client certificate's URI SANs; answers 200 with {"sni", "client"} as JSON."""

    def __init__(self, cert, key, client_ca=None):
        self.snis = []
        self.requests = []
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - the http.server API
                self._answer()

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                self.rfile.read(length)
                self._answer()

            def _answer(self):
                peer = self.connection.getpeercert() or {}
                uris = [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]
                upstream.requests.append({"path": self.path, "client": uris,
                                          "headers": dict(self.headers)})
                body = json.dumps({"sni": upstream.snis[-1] if upstream.snis else None,
                                   "client": uris}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        context = server_context(cert, key, client_ca, sni_seen=self.snis)
        self.server = ThreadedServer(Handler, context)
        self.port = self.server.port
        self.address = self.server.address

    def close(self):
        self.server.close()


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    p = Pki(d)
    p.make_ca("root")
    p.make_ca("other")
    p.leaf("root", "api", "DNS:api.test,IP:127.0.0.1")
    return p


@pytest.fixture
def upstreams():
    made = []

    def start(*args, **kwargs):
        u = TlsUpstream(*args, **kwargs)
        made.append(u)
        return u

    yield start
    for u in made:
        u.close()


def start_with_tls(start_ferry, address, tls, extra=None):
    config = basic_config([address], service_extra={"tls": tls, "connect_timeout": "2s"})
    config.update(extra or {})
    return start_ferry(config)


def test_a_bundle_with_several_roots_verifies_and_sni_is_sent(pki, upstreams, start_ferry):
    bundle = pki.path("bundle.pem")
    with open(bundle, "w") as f:
        f.write(open(pki.path("other.pem")).read() + open(pki.path("root.pem")).read())
    up = upstreams(pki.path("api.pem"), pki.path("api.key"))
    ferry = start_with_tls(start_ferry, up.address, {"ca": bundle, "server_name": "api.test"})
    r = curl(ferry.url("/hello"))
    assert r.status == 200, r.body
    assert r.json()["sni"] == "api.test"
    # Keep-alive: the second request reuses the TLS connection (one handshake).
    assert curl(ferry.url("/again")).status == 200
    assert len(up.snis) == 1, up.snis


def test_an_ip_endpoint_is_verified_against_the_san_ip_without_sni(pki, upstreams, start_ferry):
    up = upstreams(pki.path("api.pem"), pki.path("api.key"))
    ferry = start_with_tls(start_ferry, up.address, {"ca": pki.path("root.pem")})
    r = curl(ferry.url("/"))
    assert r.status == 200, r.body
    assert r.json()["sni"] is None


def test_another_ca_is_a_502_upstream_tls_failed(pki, upstreams, start_ferry):
    up = upstreams(pki.path("api.pem"), pki.path("api.key"))
    ferry = start_with_tls(start_ferry, up.address,
                           {"ca": pki.path("other.pem"), "server_name": "api.test"})
    r = curl(ferry.url("/"))
    assert r.status == 502, r.body
    doc = assert_error_json(r.body, 502, "upstream_tls_failed")
    assert "certificate verify failed" in doc["error"]["message"], doc
    wait_until(lambda: "certificate verify failed" in ferry.log_text(), 5,
               what="the refused server to be logged with the reason")
    assert up.requests == []


def test_a_wrong_host_name_is_a_502(pki, upstreams, start_ferry):
    up = upstreams(pki.path("api.pem"), pki.path("api.key"))
    ferry = start_with_tls(start_ferry, up.address,
                           {"ca": pki.path("root.pem"), "server_name": "wrong.test"})
    r = curl(ferry.url("/"))
    doc = assert_error_json(r.body, 502, "upstream_tls_failed")
    assert "wrong.test" in doc["error"]["message"], doc
    assert up.requests == []


def test_pins_match_and_mismatch(pki, upstreams, start_ferry):
    up = upstreams(pki.path("api.pem"), pki.path("api.key"))
    good = start_with_tls(start_ferry, up.address,
                          {"ca": pki.path("root.pem"), "server_name": "api.test",
                           "pin_sha256": [pki.pin(pki.path("other.pem")),
                                          pki.pin(pki.path("api.pem"))]})
    assert curl(good.url("/")).status == 200
    bad = start_with_tls(start_ferry, up.address,
                         {"ca": pki.path("root.pem"), "server_name": "api.test",
                          "pin_sha256": [pki.pin(pki.path("other.pem"))]})
    r = curl(bad.url("/"))
    doc = assert_error_json(r.body, 502, "upstream_tls_failed")
    assert "pin" in doc["error"]["message"], doc


def test_a_plain_http_upstream_times_out_the_handshake_within_connect_timeout(pki, start_ferry,
                                                                              echo):
    # echo_service waits for an HTTP head that a ClientHello never completes.
    config = basic_config([echo.address], service_extra={
        "tls": {"ca": pki.path("root.pem")}, "connect_timeout": "300ms"})
    ferry = start_ferry(config)
    started = time.monotonic()
    r = curl(ferry.url("/"))
    doc = assert_error_json(r.body, 502, "upstream_connect_failed")
    assert "TLS handshake with 127.0.0.1" in doc["error"]["message"], doc
    assert "timed out" in doc["error"]["message"], doc
    assert time.monotonic() - started < 5


def test_a_key_others_can_read_stops_the_start(pki, tmp_path, processes):
    os.chmod(pki.path("api.key"), 0o644)
    config = basic_config(["127.0.0.1:9"], service_extra={"tls": {
        "ca": pki.path("root.pem"),
        "client_certificate": {"cert": pki.path("api.pem"), "key": pki.path("api.key")}}})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    r = subprocess.run([str(FERRY_BIN), "run", "-c", str(path)], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 1
    assert "chmod 600" in r.stdout + r.stderr


# --- the mesh -----------------------------------------------------------------------------


@pytest.fixture
def mesh(tmp_path):
    """A mesh CA (ferry ca) with certificates for gateway, orders and billing."""
    d = tmp_path / "mesh"
    run(str(FERRY_BIN), "ca", "init", "--dir", str(d), "--trust-domain", "example.org")
    for name in ("gateway", "orders", "billing"):
        run(str(FERRY_BIN), "ca", "issue", "--dir", str(d), "--service", name, "--ttl", "1h")
    return d


def mesh_config(mesh, address, service="orders"):
    config = basic_config([address], service_extra={"tls": "mesh"})
    config["services"] = {service: config["services"]["svc"]}
    config["listeners"][0]["routes"] = [{"service": service}]
    config["mesh"] = {"cert": str(mesh / "gateway.pem"), "key": str(mesh / "gateway.key"),
                      "ca": str(mesh / "ca.pem")}
    return config


def test_mesh_calls_the_service_over_mutual_tls(mesh, upstreams, start_ferry):
    up = upstreams(str(mesh / "orders.pem"), str(mesh / "orders.key"),
                   client_ca=str(mesh / "ca.pem"))
    ferry = start_ferry(mesh_config(mesh, up.address))
    r = curl(ferry.url("/orders/1"))
    assert r.status == 200, r.body
    # The upstream saw the node's mesh certificate.
    assert r.json()["client"] == ["spiffe://example.org/service/gateway"]
    wait_until(lambda: "the server must be spiffe://example.org/service/orders" in
               ferry.log_text(), 5, what="the mesh identity expected to be logged")


def test_mesh_refuses_a_server_with_another_identity(mesh, upstreams, start_ferry):
    up = upstreams(str(mesh / "billing.pem"), str(mesh / "billing.key"),
                   client_ca=str(mesh / "ca.pem"))
    ferry = start_ferry(mesh_config(mesh, up.address))
    r = curl(ferry.url("/orders/1"))
    doc = assert_error_json(r.body, 502, "upstream_tls_failed")
    assert ("the server is spiffe://example.org/service/billing, not "
            "spiffe://example.org/service/orders") in doc["error"]["message"], doc
    assert up.requests == []


def test_a_renewed_mesh_certificate_is_used_without_a_restart(mesh, upstreams, start_ferry):
    up = upstreams(str(mesh / "orders.pem"), str(mesh / "orders.key"),
                   client_ca=str(mesh / "ca.pem"))
    ferry = start_ferry(mesh_config(mesh, up.address))
    assert curl(ferry.url("/")).status == 200
    serial_before = run("openssl", "x509", "-in", str(mesh / "gateway.pem"), "-noout", "-serial")
    run(str(FERRY_BIN), "ca", "issue", "--dir", str(mesh), "--service", "gateway", "--ttl", "2h")
    assert run("openssl", "x509", "-in", str(mesh / "gateway.pem"), "-noout",
               "-serial") != serial_before
    wait_until(lambda: "new TLS context" in ferry.log_text(), 10,
               what="the node to notice the renewed certificate")
    handshakes = len(up.snis)
    assert curl(ferry.url("/")).status == 200
    # The pooled connection of the old certificate was not reused: a new handshake.
    assert len(up.snis) == handshakes + 1


def test_bus_push_delivers_over_mesh_tls(mesh, upstreams, start_bus):
    up = upstreams(str(mesh / "orders.pem"), str(mesh / "orders.key"),
                   client_ca=str(mesh / "ca.pem"))
    push = {"service": "orders", "path": "/hook", "timeout": "2s"}
    bus_block = {"queues": {"jobs": fast_queue(push=push)}}
    services = {"orders": {"endpoints": [up.address], "tls": "mesh"}}
    config_mesh = {"cert": str(mesh / "gateway.pem"), "key": str(mesh / "gateway.key"),
                   "ca": str(mesh / "ca.pem")}
    bus = start_bus(bus_block, services, extra={"mesh": config_mesh})
    r = bus.client.publish("jobs", "hello")
    assert r.status in (200, 201, 202), r
    wait_until(lambda: any(q["path"] == "/hook" for q in up.requests), 10,
               what="the push to arrive over TLS")
    hook = next(q for q in up.requests if q["path"] == "/hook")
    assert hook["client"] == ["spiffe://example.org/service/gateway"]



def test_validate_checks_the_files_of_a_services_tls(pki, tmp_path):
    config = basic_config(["127.0.0.1:9"], service_extra={"tls": {
        "ca": str(tmp_path / "missing-roots.pem")}})
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(config))
    r = subprocess.run([str(FERRY_BIN), "validate", "-c", str(path)], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "missing-roots.pem" in r.stderr
    config["services"]["svc"]["tls"]["ca"] = pki.path("root.pem")
    path.write_text(yaml.safe_dump(config))
    r = subprocess.run([str(FERRY_BIN), "validate", "-c", str(path)], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
