"""TLS on the admin API and the bus API (`admin.tls`, `bus.tls`: a listener's tls map, and
`tls: mesh`), docs/security.md#tls-on-listeners: curl and openssl s_client reach both over TLS
with the certificate verified; a plain HTTP request gets no answer and is counted as a failed
handshake; the bus CLI publishes and
consumes over https:// with --ca and refuses a server it cannot verify; a certificate replaced
on disk is served to new connections without a restart; with `tls: mesh` a client without a
mesh certificate is refused in the handshake."""

import json
import os
import re
import subprocess

import pytest

from conftest import FERRY_BIN, require_tool, wait_until
from tls_support import Pki


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    p = Pki(d)
    p.make_ca("root")
    p.leaf("root", "admin", "IP:127.0.0.1")
    p.leaf("root", "bus", "IP:127.0.0.1")
    return p


def https(port: int, path: str, ca: str, *extra: str) -> subprocess.CompletedProcess:
    return run([require_tool("curl"), "-sS", "--max-time", "5", "--cacert", ca,
                "-w", "\n%{http_code}", *extra, f"https://127.0.0.1:{port}{path}"])


def status_of(r: subprocess.CompletedProcess) -> int:
    return int(r.stdout.rsplit("\n", 1)[1]) if r.returncode == 0 else 0


def start_tls_node(start_ferry, pki, tmp_path, admin_tls=None, bus_tls=None, extra=None):
    admin_tls = admin_tls or {"cert": pki.path("admin.pem"), "key": pki.path("admin.key")}
    bus_tls = bus_tls or {"cert": pki.path("bus.pem"), "key": pki.path("bus.key")}
    config = {"admin": {"listen": "127.0.0.1:0", "tls": admin_tls},
              "bus": {"listen": "127.0.0.1:0", "data_dir": str(tmp_path / "bus-data"),
                      "tls": bus_tls, "queues": {"jobs": {}}}}
    config.update(extra or {})
    ferry = start_ferry(config, check_ready=False)  # the fixture's readiness check is plain HTTP
    m = wait_until(lambda: re.search(r"bus API on 127\.0\.0\.1:(\d+)", ferry.log_text()), 15,
                   what="the bus API address in the log")
    return ferry, int(m.group(1))


def subject_cn(port: int, ca: str) -> str:
    r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", ca,
             "-verify_return_error"], input="")
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
    m = re.search(r"subject=.*CN\s*=\s*([\w.-]+)", r.stdout)
    assert m, r.stdout
    return m.group(1)


def test_admin_and_bus_answer_over_verified_tls(start_ferry, pki, tmp_path):
    ferry, bus_port = start_tls_node(start_ferry, pki, tmp_path)
    ca = pki.path("root.pem")
    wait_until(lambda: status_of(https(ferry.admin_port, "/ready", ca)) == 200, 15,
               what="/ready over TLS")
    stats = https(ferry.admin_port, "/stats", ca)
    assert status_of(stats) == 200
    assert json.loads(stats.stdout.rsplit("\n", 1)[0])["bus"] == f"127.0.0.1:{bus_port}"
    config = json.loads(https(ferry.admin_port, "/config", ca).stdout.rsplit("\n", 1)[0])
    assert config["admin"]["tls"]["certificates"][0]["cert"] == pki.path("admin.pem")
    assert config["bus"]["tls"]["certificates"][0]["cert"] == pki.path("bus.pem")
    assert subject_cn(ferry.admin_port, ca) == "admin"
    assert subject_cn(bus_port, ca) == "bus"
    # Plain HTTP to a TLS listener gets no HTTP answer.
    for port in (ferry.admin_port, bus_port):
        r = run(["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://127.0.0.1:{port}/ready"])
        assert r.stdout in ("000", ""), r.stdout

    def handshake_failures():
        text = https(ferry.admin_port, "/metrics", ca).stdout
        m = re.search(r"^ferry_tls_handshake_failures_total (\d+)", text, re.M)
        return int(m.group(1)) if m else None

    # Each of those two was a failed handshake, counted like a proxy listener's.
    wait_until(lambda: handshake_failures() == 2, 10, what="one failed handshake on each API")
    # The bus API over TLS: curl publishes, the CLI (--ca) publishes and consumes.
    r = https(bus_port, "/v1/queues/jobs/messages", ca, "-X", "POST", "-H",
              "content-type: text/plain", "--data-binary", "from-curl")
    assert status_of(r) in (200, 201), r.stdout + r.stderr
    url = f"https://127.0.0.1:{bus_port}"
    r = run([str(FERRY_BIN), "publish", "-q", "jobs", "-d", "from-cli", "--url", url, "--ca", ca])
    assert r.returncode == 0, r.stderr
    r = run([str(FERRY_BIN), "consume", "-q", "jobs", "--max", "5", "--ack", "--url", url,
             "--ca", ca])
    assert r.returncode == 0, r.stderr
    assert "from-curl" in r.stdout and "from-cli" in r.stdout, r.stdout
    # Without --ca the system's store is used, which does not hold the test CA.
    r = run([str(FERRY_BIN), "publish", "-q", "jobs", "-d", "x", "--url", url])
    assert r.returncode == 1
    assert "certificate verify failed" in r.stderr, r.stderr
    wait_until(lambda: handshake_failures() == 3, 10, what="the refused CLI's handshake counted")
    ferry.process.stop()


def test_a_replaced_certificate_is_served_to_new_connections(start_ferry, pki, tmp_path):
    ferry, bus_port = start_tls_node(start_ferry, pki, tmp_path)
    ca = pki.path("root.pem")
    wait_until(lambda: status_of(https(ferry.admin_port, "/ready", ca)) == 200, 15,
               what="/ready over TLS")
    assert subject_cn(ferry.admin_port, ca) == "admin"
    # New certificates (other CNs) written over the files, as a renewal does.
    for name, target in (("admin2", "admin"), ("bus2", "bus")):
        pem, key = pki.leaf("root", name, "IP:127.0.0.1")
        os.replace(key, pki.path(f"{target}.key"))
        os.replace(pem, pki.path(f"{target}.pem"))
    wait_until(lambda: subject_cn(ferry.admin_port, ca) == "admin2", 10,
               what="the admin API to serve the new certificate")
    wait_until(lambda: subject_cn(bus_port, ca) == "bus2", 10,
               what="the bus API to serve the new certificate")
    assert ferry.process.alive()
    assert status_of(https(ferry.admin_port, "/ready", ca)) == 200
    ferry.process.stop()


def test_mesh_tls_on_the_admin_api_refuses_a_client_without_a_mesh_certificate(
        start_ferry, pki, tmp_path):
    mesh = tmp_path / "mesh"
    for argv in (["ca", "init", "--dir", str(mesh), "--trust-domain", "shop.test"],
                 ["ca", "issue", "--dir", str(mesh), "--service", "node"],
                 ["ca", "issue", "--dir", str(mesh), "--service", "ops"]):
        r = run([str(FERRY_BIN), *argv])
        assert r.returncode == 0, r.stderr
    ferry, _ = start_tls_node(
        start_ferry, pki, tmp_path, admin_tls="mesh",
        extra={"mesh": {"cert": str(mesh / "node.pem"), "key": str(mesh / "node.key"),
                        "ca": str(mesh / "ca.pem")}})
    ops = ["--cert", str(mesh / "ops.pem"), "--key", str(mesh / "ops.key"), "-k"]
    wait_until(lambda: status_of(https(ferry.admin_port, "/ready", str(mesh / "ca.pem"), *ops))
               == 200, 15, what="/ready over mesh TLS with a mesh client certificate")
    r = https(ferry.admin_port, "/ready", str(mesh / "ca.pem"), "-k")
    assert status_of(r) == 0, r.stdout  # no client certificate: no answer
    ferry.process.stop()
