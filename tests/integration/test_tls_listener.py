"""TLS on listeners (docs/security.md#tls-on-listeners, #mesh-listeners): the real binary, with
certificates made here by the openssl CLI, and real clients (curl, openssl s_client, Python's
ssl module)."""

import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FERRY_BIN, require_tool, wait_until


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=20, **kw)


class Pki:
    """A CA in `dir` and the certificates it issues (EC P-256 keys, mode 600)."""

    def __init__(self, dir: Path, name: str):
        require_tool("openssl")
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.ca = dir / f"{name}-ca.pem"
        self.ca_key = dir / f"{name}-ca.key"
        r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", str(self.ca_key), "-out", str(self.ca), "-subj",
                 f"/CN={name} CA", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        assert r.returncode == 0, r.stderr

    def issue(self, name: str, sans: str, days: int = 1) -> tuple[Path, Path]:
        cert, key, csr = (self.dir / f"{name}.pem", self.dir / f"{name}.key",
                          self.dir / f"{name}.csr")
        r = run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}"])
        assert r.returncode == 0, r.stderr
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
        tmp = self.dir / f"{name}.pem.tmp"
        r = run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey",
                 str(self.ca_key), "-CAcreateserial", "-out", str(tmp), "-days", str(days),
                 "-extfile", str(ext)])
        assert r.returncode == 0, r.stderr
        os.replace(tmp, cert)
        os.chmod(key, 0o600)
        return cert, key


def tls_config(echo_port: int, tls, *, mesh=None, workers=1) -> dict:
    config = {"workers": workers, "admin": {"listen": "127.0.0.1:0"}}
    if mesh:
        config["mesh"] = mesh
    config["listeners"] = [{"name": "pub", "listen": "127.0.0.1:0", "tls": tls,
                            "routes": [{"service": "svc"}]}]
    config["services"] = {"svc": {"endpoints": [f"127.0.0.1:{echo_port}"]}}
    return config


def s_client(port: int, *args, stdin: str = "") -> subprocess.CompletedProcess:
    return run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args], input=stdin)


def subject_cn(port: int, *args) -> str:
    r = s_client(port, *args)
    for line in r.stdout.splitlines():
        if line.startswith("subject="):
            return line.split("CN = ")[-1].strip()
    raise AssertionError(f"no certificate: {r.stdout}\n{r.stderr}")


@pytest.fixture
def site(tmp_path):
    pki = Pki(tmp_path / "pki", "site")
    cert, key = pki.issue("a.test", "DNS:a.test,DNS:localhost")
    return pki, cert, key


def curl_https(port: int, ca: Path, path: str = "/", *extra) -> subprocess.CompletedProcess:
    curl = require_tool("curl")
    return run([curl, "-sS", "--cacert", str(ca), "--resolve", f"a.test:{port}:127.0.0.1",
                "-H", "x-ferry-caller: spoofed", *extra, f"https://a.test:{port}{path}"])


def test_https_reaches_the_echo_service_with_forwarded_proto_https(start_ferry, echo, site):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    r = run([str(FERRY_BIN), "validate", "-c", str(ferry.config_path)])
    assert r.returncode == 0, r.stderr
    r = curl_https(ferry.port(), pki.ca, "/hello")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    headers = {k.lower(): v for k, v in body["headers"].items()}
    assert headers["x-forwarded-proto"] == "https"
    assert "x-ferry-caller" not in headers  # not a mesh client: never set, spoof stripped


def test_large_bodies_both_ways_over_tls(start_ferry, echo, site, tmp_path):
    import zlib
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    payload = os.urandom(8 * 1024 * 1024)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(payload)
    r = curl_https(ferry.port(), pki.ca, "/upload", "--data-binary", f"@{upload}")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["received"] == len(payload)
    assert got["crc32"] == zlib.crc32(payload)
    out = tmp_path / "download.bin"
    r = curl_https(ferry.port(), pki.ca, f"/bytes/{6 * 1024 * 1024}", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == 6 * 1024 * 1024


def test_alpn_offers_h2_then_http11(start_ferry, echo, site):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    r = s_client(ferry.port(), "-alpn", "http/1.1,h2")
    assert "ALPN protocol: h2" in r.stdout, r.stdout  # the server's order wins
    r = s_client(ferry.port(), "-alpn", "http/1.1")
    assert "ALPN protocol: http/1.1" in r.stdout, r.stdout


def test_alpn_http11_only_with_http2_false(start_ferry, echo, site):
    pki, cert, key = site
    config = tls_config(echo.port, {"cert": str(cert), "key": str(key)})
    config["listeners"][0]["http2"] = False
    ferry = start_ferry(config)
    r = s_client(ferry.port(), "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in r.stdout, r.stdout
    r = s_client(ferry.port(), "-alpn", "h2")
    assert "No ALPN negotiated" in r.stdout, r.stdout


def test_tls10_and_tls11_are_refused(start_ferry, echo, site):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    for flag in ("-tls1", "-tls1_1"):
        # SECLEVEL=0 lets the client offer the old version at all: the refusal is the server's.
        r = s_client(ferry.port(), flag, "-cipher", "DEFAULT@SECLEVEL=0")
        assert r.returncode != 0, r.stdout
        assert "Cipher is (NONE)" in r.stdout and "read 7 bytes" in r.stdout, r.stdout  # an alert
    r = s_client(ferry.port(), "-tls1_2")
    assert r.returncode == 0 and "TLSv1.2" in r.stdout, r.stdout
    r = s_client(ferry.port(), "-tls1_3")
    assert r.returncode == 0 and "TLSv1.3" in r.stdout, r.stdout


def test_min_version_13_refuses_a_tls12_client(start_ferry, echo, site):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key),
                                               "min_version": "1.3"}))
    r = s_client(ferry.port(), "-tls1_2")
    assert r.returncode != 0 and "Cipher is (NONE)" in r.stdout, r.stdout
    r = s_client(ferry.port(), "-tls1_3")
    assert r.returncode == 0 and "TLSv1.3" in r.stdout, r.stdout


def test_sni_picks_the_certificate(start_ferry, echo, site, tmp_path):
    pki, cert, key = site
    b_cert, b_key = pki.issue("b.test", "DNS:b.test,DNS:*.b.test")
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key),
                                               "certificates": [{"cert": str(b_cert),
                                                                 "key": str(b_key)}]}))
    port = ferry.port()
    assert subject_cn(port, "-servername", "b.test") == "b.test"
    assert subject_cn(port, "-servername", "api.b.test") == "b.test"  # wildcard
    assert subject_cn(port, "-servername", "a.test") == "a.test"
    assert subject_cn(port, "-servername", "other.test") == "a.test"  # no match: the first
    assert subject_cn(port, "-noservername") == "a.test"


def test_session_resumption(start_ferry, echo, site, tmp_path):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    sess = tmp_path / "session.pem"
    for version in ("-tls1_2", "-tls1_3"):
        request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        r = s_client(ferry.port(), version, "-sess_out", str(sess), "-ign_eof", stdin=request)
        assert r.returncode == 0 and sess.exists(), r.stdout + r.stderr
        r = s_client(ferry.port(), version, "-sess_in", str(sess), "-ign_eof", stdin=request)
        assert "Reused, TLSv1." in r.stdout, (version, r.stdout)
        sess.unlink()


def test_session_resumption_off(start_ferry, echo, site, tmp_path):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key),
                                               "session_resumption": False}))
    sess = tmp_path / "session.pem"
    request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    r = s_client(ferry.port(), "-tls1_2", "-sess_out", str(sess), "-ign_eof", stdin=request)
    assert r.returncode == 0 and "New, TLSv1.2" in r.stdout, r.stdout
    assert "TLS session ticket:" not in r.stdout, r.stdout  # no ticket given
    if sess.exists():  # s_client writes none when there is nothing to resume
        r = s_client(ferry.port(), "-tls1_2", "-sess_in", str(sess), "-ign_eof", stdin=request)
        assert "Reused" not in r.stdout and "New, TLSv1.2" in r.stdout, r.stdout


def https_connection(port: int, ca: Path):
    import http.client
    context = ssl.create_default_context(cafile=str(ca))
    # The certificate names a.test and localhost; Ferry listens on 127.0.0.1.
    return http.client.HTTPSConnection("localhost", port, context=context, timeout=5)


def test_a_swapped_certificate_is_served_to_new_connections(start_ferry, echo, site):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    port = ferry.port()
    old_serial = run(["openssl", "x509", "-in", str(cert), "-noout", "-serial"]).stdout
    kept = https_connection(port, pki.ca)
    kept.request("GET", "/before")
    first = kept.getresponse()
    assert first.status == 200 and first.read()

    pki.issue("a.test", "DNS:a.test,DNS:localhost")  # same names, new key and serial
    new_serial = run(["openssl", "x509", "-in", str(cert), "-noout", "-serial"]).stdout
    assert new_serial != old_serial

    def served_serial():
        r = s_client(port, "-servername", "a.test", "-showcerts")
        pem = r.stdout[r.stdout.find("-----BEGIN CERTIFICATE-----"):
                       r.stdout.find("-----END CERTIFICATE-----") + 25]
        return run(["openssl", "x509", "-noout", "-serial"], input=pem).stdout

    wait_until(lambda: served_serial() == new_serial, 10, interval=0.2,
               what="new connections to get the new certificate")
    # The connection made before the swap keeps working.
    kept.request("GET", "/after")
    response = kept.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["headers"]
    kept.close()
    assert ferry.metric("ferry_config_reloads_total") >= 1


def test_a_broken_new_certificate_keeps_the_old_one(start_ferry, echo, site):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    port = ferry.port()
    cert.write_text("not a certificate\n")
    wait_until(lambda: "keeps its current certificate" in ferry.log_text(), 10,
               what="the broken file to be reported")
    r = curl_https(port, pki.ca, "/still")
    assert r.returncode == 0, r.stderr


def test_a_key_readable_by_others_is_refused(start_ferry, echo, site, tmp_path, processes):
    pki, cert, key = site
    os.chmod(key, 0o644)
    config_path = tmp_path / "bad.yaml"
    import yaml
    config_path.write_text(yaml.safe_dump(tls_config(echo.port, {"cert": str(cert),
                                                                 "key": str(key)})))
    r = run([str(FERRY_BIN), "validate", "-c", str(config_path)])
    assert r.returncode == 1
    assert "chmod 600" in r.stderr and str(key) in r.stderr, r.stderr
    p = processes.start([str(FERRY_BIN), "run", "-c", str(config_path)], tmp_path / "bad.log")
    wait_until(lambda: not p.alive(), 10, what="ferry to refuse to start")
    assert p.popen.returncode != 0
    assert "chmod 600" in p.log_text()


def test_plaintext_http_to_a_tls_listener_fails_cleanly(start_ferry, echo, site):
    pki, cert, key = site
    ferry = start_ferry(tls_config(echo.port, {"cert": str(cert), "key": str(key)}))
    port = ferry.port()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"HTTP/1.1 200" not in data
    wait_until(lambda: ferry.metric("ferry_tls_handshake_failures_total") >= 1, 5,
               what="the failed handshake to be counted")
    r = curl_https(port, pki.ca, "/after")
    assert r.returncode == 0, r.stderr
    assert ferry.process.alive()


# --- Mesh listeners -----------------------------------------------------------------------------

@pytest.fixture
def mesh(tmp_path):
    pki = Pki(tmp_path / "mesh", "mesh")
    node_cert, node_key = pki.issue("gateway", "URI:spiffe://mesh.test/service/gateway")
    return pki, {"cert": str(node_cert), "key": str(node_key), "ca": str(pki.ca)}


def curl_mesh(port: int, *client) -> subprocess.CompletedProcess:
    curl = require_tool("curl")
    args = [curl, "-sS", "-k", "-H", "x-ferry-caller: spiffe://mesh.test/service/admin"]
    if client:
        args += ["--cert", str(client[0]), "--key", str(client[1])]
    return run(args + [f"https://127.0.0.1:{port}/mesh"])


def test_mesh_listener_admits_only_valid_mesh_clients(start_ferry, echo, mesh, tmp_path):
    pki, block = mesh
    ferry = start_ferry(tls_config(echo.port, "mesh", mesh=block))
    port = ferry.port()

    orders = pki.issue("orders", "URI:spiffe://mesh.test/service/orders")
    r = curl_mesh(port, *orders)
    assert r.returncode == 0, r.stderr
    headers = {k.lower(): v for k, v in json.loads(r.stdout)["headers"].items()}
    assert headers["x-ferry-caller"] == "spiffe://mesh.test/service/orders"
    assert headers["x-forwarded-proto"] == "https"

    refused = {
        "no certificate": (),
        "another CA": Pki(tmp_path / "other", "other").issue(
            "orders", "URI:spiffe://mesh.test/service/orders"),
        "expired": pki.issue("expired", "URI:spiffe://mesh.test/service/expired", days=0),
        "wrong trust domain": pki.issue("foreign", "URI:spiffe://other.test/service/orders"),
        "no SPIFFE ID": pki.issue("plain", "DNS:plain.test"),
    }
    time.sleep(1.1)  # the expired certificate's notAfter is now
    before = ferry.metric("ferry_tls_handshake_failures_total")
    for what, client in refused.items():
        r = curl_mesh(port, *client)
        assert r.returncode != 0, (what, r.stdout)
        assert '"headers"' not in r.stdout, what
    wait_until(lambda: ferry.metric("ferry_tls_handshake_failures_total") >= before + 4, 5,
               what="the refused handshakes to be counted")
    # Still serving.
    assert curl_mesh(port, *orders).returncode == 0


def test_mesh_listener_needs_the_mesh_block(tmp_path, echo):
    import yaml
    config_path = tmp_path / "nomesh.yaml"
    config_path.write_text(yaml.safe_dump(tls_config(echo.port, "mesh")))
    r = run([str(FERRY_BIN), "validate", "-c", str(config_path)])
    assert r.returncode == 1 and "needs a mesh: block" in r.stderr, r.stderr
