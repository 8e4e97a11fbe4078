"""`ferry ca serve` and certificate renewal (docs/security.md#ferry-ca-serve): the CA as an
HTTPS service, one-time bootstrap tokens (`ferry ca token`), and nodes with `mesh.renew` that
get their first certificate with a token and renew it with their current one before it ends,
swapping it in without a restart and without dropping connections. Real clients: curl and
openssl (CSRs, s_client), python's ssl module for a kept-alive mesh connection."""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import types

import pytest
import yaml

from conftest import FERRY_BIN, assert_error_json, free_port, require_tool, wait_until


def ferry_ca(*args, check=True):
    r = subprocess.run([str(FERRY_BIN), "ca", *args], capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, r.stderr
    return r


class CaServer:
    def __init__(self, process, port, ca_dir):
        self.process = process
        self.port = port
        self.dir = ca_dir
        self.url = f"https://127.0.0.1:{port}"
        self.ca = ca_dir / "ca.pem"


@pytest.fixture
def ca_dir(tmp_path):
    d = tmp_path / "ca"
    ferry_ca("init", "--dir", str(d), "--trust-domain", "shop.test")
    return d


@pytest.fixture
def start_ca(processes, tmp_path):
    """start_ca(ca_dir, ttl) -> CaServer, listening (its port read from its log)."""

    def start(ca_dir, ttl="24h"):
        p = processes.start([str(FERRY_BIN), "ca", "serve", "--dir", str(ca_dir),
                             "--listen", "127.0.0.1:0", "--ttl", ttl], tmp_path / "ca-serve.log")

        def bound():
            m = re.search(r"listening on https://127\.0\.0\.1:(\d+)", p.log_text())
            if not m and not p.alive():
                raise AssertionError(f"ferry ca serve exited: {p.log_text()}")
            return m

        m = wait_until(bound, 15, what="ferry ca serve to log its address")
        return CaServer(p, int(m.group(1)), ca_dir)

    return start


def token(ca_dir, service, ttl="1h"):
    return ferry_ca("token", "--dir", str(ca_dir), "--service", service, "--ttl", ttl).stdout.strip()


def make_csr(tmp_path, name, spiffe_id):
    key, csr = tmp_path / f"{name}.key", tmp_path / f"{name}.csr"
    r = subprocess.run([require_tool("openssl"), "req", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(csr),
                        "-subj", f"/CN={name}", "-addext", f"subjectAltName=URI:{spiffe_id}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return csr


def sign(ca, body, *extra):
    """POST body to /v1/sign with curl: (status, headers text, body)."""
    r = subprocess.run([require_tool("curl"), "-sS", "--cacert", str(ca.ca), "-D", "-",
                        "--data-binary", "@-", *extra, f"{ca.url}/v1/sign"],
                       input=body, capture_output=True, timeout=30)
    head, _, payload = r.stdout.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/\S+ (\d+)", head)
    return (int(m.group(1)) if m else 0), head.decode("latin-1").lower(), payload, r


def serial_of_pem(path):
    r = subprocess.run([require_tool("openssl"), "x509", "-in", str(path), "-noout", "-serial"],
                       capture_output=True, text=True, timeout=30)
    return r.stdout.strip().split("=")[-1]


def served_serial(port, client_cert, client_key):
    """The serial of the certificate a TLS listener presents, as openssl s_client sees it."""
    r = subprocess.run([require_tool("openssl"), "s_client", "-connect", f"127.0.0.1:{port}",
                        "-cert", str(client_cert), "-key", str(client_key), "-showcerts"],
                       input="", capture_output=True, text=True, timeout=30)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout, re.S)
    assert pem, r.stdout + r.stderr
    x = subprocess.run([require_tool("openssl"), "x509", "-noout", "-serial"], input=pem.group(0),
                       capture_output=True, text=True, timeout=30)
    return x.stdout.strip().split("=")[-1]


def validate(path):
    return subprocess.run([str(FERRY_BIN), "validate", "-c", str(path)], capture_output=True,
                          text=True, timeout=30)


def node_config(tmp_path, echo_port, ca, *, service="orders", token_file=None, cert=None):
    node = tmp_path / "node"
    node.mkdir(exist_ok=True)
    renew = {"url": ca.url, "service": service}
    if token_file:
        renew["token_file"] = str(token_file)
    mesh = {"cert": str(cert or node / f"{service}.pem"), "key": str(node / f"{service}.key"),
            "ca": str(ca.ca), "renew": renew}
    return {
        "workers": 1,
        "admin": {"listen": "127.0.0.1:0"},
        "mesh": mesh,
        "listeners": [{"name": "pub", "listen": "127.0.0.1:0", "tls": "mesh",
                       "routes": [{"service": "svc"}]}],
        "services": {"svc": {"endpoints": [f"127.0.0.1:{echo_port}"]}},
    }


def mesh_client_context(ca_dir, service):
    ctx = ssl.create_default_context(cafile=str(ca_dir / "ca.pem"))
    ctx.check_hostname = False  # the mesh checks identities, not host names
    ctx.load_cert_chain(str(ca_dir / f"{service}.pem"), str(ca_dir / f"{service}.key"))
    return ctx


def get_on(conn, path="/"):
    conn.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the connection closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "the connection closed mid-body"
        body += chunk
    return int(head.split()[1]), body


# --- the CA service ---------------------------------------------------------------------------


def test_ca_serve_starts_answers_tls_and_stops_by_pid(start_ca, ca_dir):
    ca = start_ca(ca_dir)
    # Its own certificate (issued at start for the listen address) verifies against the root.
    r = subprocess.run([require_tool("openssl"), "s_client", "-connect", f"127.0.0.1:{ca.port}",
                        "-CAfile", str(ca.ca), "-verify_ip", "127.0.0.1", "-verify_return_error"],
                       input="", capture_output=True, text=True, timeout=30)
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
    assert "CN = ferry-ca" in r.stdout
    assert os.stat(ca_dir / "serve.key").st_mode & 0o777 == 0o600
    status, _, body, _ = sign(ca, b"", "-X", "GET")
    assert status == 405
    assert_error_json(body, 405, "method_not_allowed")
    ca.process.signal(signal.SIGTERM)
    assert ca.process.wait(10) == 0


def test_ca_cli_usage(ca_dir, tmp_path):
    r = subprocess.run([str(FERRY_BIN), "ca", "serve", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--listen" in r.stdout
    r = subprocess.run([str(FERRY_BIN), "ca", "token", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--service" in r.stdout
    r = subprocess.run([str(FERRY_BIN), "ca", "serve", "--dir", str(ca_dir)], capture_output=True)
    assert r.returncode == 2  # no --listen
    r = subprocess.run([str(FERRY_BIN), "ca", "token", "--dir", str(ca_dir), "--service", "a/b"],
                       capture_output=True)
    assert r.returncode == 2
    r = ferry_ca("serve", "--dir", str(tmp_path / "nothing"), "--listen", "127.0.0.1:0",
                 check=False)
    assert r.returncode == 1 and "ca.pem" in r.stderr
    # The token is printed alone; the CA keeps only its hash.
    t = token(ca_dir, "orders")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", t)
    files = list((ca_dir / "tokens").iterdir())
    assert len(files) == 1 and t not in files[0].read_text()
    assert files[0].stat().st_mode & 0o777 == 0o600


def test_sign_refusals(start_ca, ca_dir, tmp_path):
    ca = start_ca(ca_dir)
    orders_csr = make_csr(tmp_path, "orders", "spiffe://shop.test/service/orders").read_bytes()
    billing_csr = make_csr(tmp_path, "billing", "spiffe://shop.test/service/billing").read_bytes()

    status, head, body, _ = sign(ca, orders_csr)
    assert status == 401, body
    assert_error_json(body, 401, "token_missing")
    assert "www-authenticate: bearer" in head

    status, _, body, _ = sign(ca, b"not a csr", "-H", f"authorization: Bearer {token(ca_dir, 'x')}")
    assert status == 400
    assert_error_json(body, 400, "csr_invalid")

    other_domain = make_csr(tmp_path, "evil", "spiffe://evil.test/service/orders").read_bytes()
    status, _, body, _ = sign(ca, other_domain, "-H", f"authorization: Bearer {token(ca_dir, 'orders')}")
    assert status == 400
    assert "evil.test" in json.loads(body)["error"]["message"]

    # A token for orders does not get a certificate for billing, and stays usable for orders.
    t = token(ca_dir, "orders")
    status, _, body, _ = sign(ca, billing_csr, "-H", f"authorization: Bearer {t}")
    assert status == 403
    assert_error_json(body, 403, "token_wrong_service")
    status, _, body, _ = sign(ca, orders_csr, "-H", f"authorization: bearer {t}")
    assert status == 200, body
    assert b"BEGIN CERTIFICATE" in body
    # Spent: a second use is refused, also after a restart of the CA.
    status, _, body, _ = sign(ca, orders_csr, "-H", f"authorization: Bearer {t}")
    assert status == 401
    assert_error_json(body, 401, "token_invalid")
    assert ca.process.stop() == 0
    ca = start_ca(ca_dir)
    status, _, body, _ = sign(ca, orders_csr, "-H", f"authorization: Bearer {t}")
    assert status == 401
    assert_error_json(body, 401, "token_invalid")

    # An expired token is refused.
    short = token(ca_dir, "orders", ttl="1s")
    time.sleep(2.1)
    status, _, body, _ = sign(ca, orders_csr, "-H", f"authorization: Bearer {short}")
    assert status == 401
    assert_error_json(body, 401, "token_expired")

    # A valid mesh certificate renews its own identity, never another one (not even with a
    # token for that one beside it).
    ferry_ca("issue", "--dir", str(ca_dir), "--service", "web")
    as_web = ["--cert", str(ca_dir / "web.pem"), "--key", str(ca_dir / "web.key")]
    status, _, body, _ = sign(ca, orders_csr, *as_web, "-H",
                              f"authorization: Bearer {token(ca_dir, 'orders')}")
    assert status == 403
    assert_error_json(body, 403, "identity_mismatch")
    web_csr = make_csr(tmp_path, "web", "spiffe://shop.test/service/web").read_bytes()
    status, _, body, _ = sign(ca, web_csr, *as_web)
    assert status == 200, body

    # A client certificate of another CA does not get through the handshake.
    other = tmp_path / "other"
    ferry_ca("init", "--dir", str(other), "--trust-domain", "shop.test")
    ferry_ca("issue", "--dir", str(other), "--service", "web")
    status, _, body, r = sign(ca, web_csr, "--cert", str(other / "web.pem"), "--key",
                              str(other / "web.key"))
    assert status == 0 and r.returncode != 0, body


# --- nodes that renew ------------------------------------------------------------------------


def test_a_node_with_a_token_and_no_certificate_gets_one_and_serves_mesh(
        start_ca, start_ferry, ca_dir, echo, tmp_path):
    ca = start_ca(ca_dir)
    token_file = tmp_path / "orders.token"
    token_file.write_text(token(ca_dir, "orders") + "\n")
    config = node_config(tmp_path, echo.port, ca, token_file=token_file)
    # Before the first start there is no certificate: validate checks the CA bundle and the
    # token file instead (without spending the token), and says so.
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    r = validate(path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the mesh certificate is not issued yet" in r.stdout
    missing = dict(config, mesh=dict(config["mesh"], renew=dict(
        config["mesh"]["renew"], token_file=str(tmp_path / "no.token"))))
    path.write_text(yaml.safe_dump(missing))
    r = validate(path)
    assert r.returncode == 1 and "mesh.renew.token_file" in r.stderr, r.stdout + r.stderr
    ferry = start_ferry(config)

    cert, key = tmp_path / "node" / "orders.pem", tmp_path / "node" / "orders.key"
    assert os.stat(key).st_mode & 0o777 == 0o600
    r = subprocess.run([require_tool("openssl"), "verify", "-CAfile", str(ca.ca), str(cert)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([require_tool("openssl"), "x509", "-in", str(cert), "-noout", "-ext",
                        "subjectAltName"], capture_output=True, text=True, timeout=30)
    assert "URI:spiffe://shop.test/service/orders" in r.stdout

    # The listener serves that certificate to mesh clients.
    ferry_ca("issue", "--dir", str(ca_dir), "--service", "web")
    with socket.create_connection(("127.0.0.1", ferry.port()), timeout=10) as raw:
        with mesh_client_context(ca_dir, "web").wrap_socket(raw) as conn:
            assert conn.getpeercert()["subjectAltName"] == (
                ("URI", "spiffe://shop.test/service/orders"),)
            status, body = get_on(conn, "/hello")
            assert status == 200, body
    assert ferry.metric("ferry_mesh_renewals_total") == 1
    assert ferry.metric("ferry_mesh_renewal_failures_total") == 0
    assert "by bootstrap token" in ca.process.log_text()
    # With the certificate issued, validate loads it as a start does.
    path.write_text(yaml.safe_dump(config))
    r = validate(path)
    assert r.returncode == 0 and "not issued yet" not in r.stdout, r.stdout + r.stderr

    # The token is spent: a second node with it does not start.
    (tmp_path / "second").mkdir()
    path = tmp_path / "second.yaml"
    path.write_text(yaml.safe_dump(
        node_config(tmp_path / "second", echo.port, ca, token_file=token_file)))
    started = time.monotonic()
    r = subprocess.run([str(FERRY_BIN), "run", "-c", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert "token_invalid" in r.stdout + r.stderr
    assert time.monotonic() - started < 60


def test_a_short_lived_certificate_is_renewed_before_expiry_without_dropping_connections(
        start_ca, start_ferry, ca_dir, echo, tmp_path):
    # 24 s certificates (backdated 6 s: a 30 s life): renewed 20 s into it, 10 s before the end.
    ca = start_ca(ca_dir, ttl="24s")
    token_file = tmp_path / "orders.token"
    token_file.write_text(token(ca_dir, "orders"))
    # By name: the CA's own certificate names localhost for its loopback address.
    ca.url = f"https://localhost:{ca.port}"
    ferry = start_ferry(node_config(tmp_path, echo.port, ca, token_file=token_file))
    ferry_ca("issue", "--dir", str(ca_dir), "--service", "web")
    web = (ca_dir / "web.pem", ca_dir / "web.key")
    first = served_serial(ferry.port(), *web)
    assert first == serial_of_pem(tmp_path / "node" / "orders.pem")

    with socket.create_connection(("127.0.0.1", ferry.port()), timeout=10) as raw:
        with mesh_client_context(ca_dir, "web").wrap_socket(raw) as conn:
            assert get_on(conn, "/before")[0] == 200
            renewed = wait_until(lambda: served_serial(ferry.port(), *web) != first, 60,
                                 interval=0.5, what="a renewed certificate on new connections")
            assert renewed
            # The kept-alive connection made before the renewal is still served.
            status, body = get_on(conn, "/after")
            assert status == 200, body
    second = served_serial(ferry.port(), *web)
    assert second == serial_of_pem(tmp_path / "node" / "orders.pem")
    assert ferry.metric("ferry_mesh_renewals_total") >= 2
    assert ferry.metric("ferry_mesh_renewal_failures_total") == 0
    assert ferry.metric("ferry_mesh_certificate_expiry_seconds") > time.time()
    assert "by certificate" in ca.process.log_text()
    assert ferry.process.alive()


def test_failed_renewals_are_counted_and_retried(start_ferry, ca_dir, echo, tmp_path):
    # A certificate due for renewal at once, and no CA listening at the URL.
    ferry_ca("issue", "--dir", str(ca_dir), "--service", "orders", "--ttl", "6s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]

    class Dead:
        url = f"https://127.0.0.1:{dead_port}"
        ca = ca_dir / "ca.pem"

    config = node_config(tmp_path, echo.port, Dead, cert=ca_dir / "orders.pem")
    config["mesh"]["key"] = str(ca_dir / "orders.key")
    ferry = start_ferry(config)
    wait_until(lambda: ferry.metric("ferry_mesh_renewal_failures_total") >= 2, 30,
               what="two failed renewals")
    assert ferry.metric("ferry_mesh_renewals_total") == 0
    assert "renewal failed" in ferry.log_text()



def test_a_reload_that_adds_renew_starts_renewing(start_ca, start_ferry, ca_dir, echo, tmp_path):
    ca = start_ca(ca_dir)
    node = tmp_path / "node"
    node.mkdir()
    # 12 s (backdated 3 s): due for renewal 7 s after it is made.
    ferry_ca("issue", "--dir", str(ca_dir), "--service", "orders", "--ttl", "12s")
    for suffix in ("pem", "key"):
        (node / f"orders.{suffix}").write_bytes((ca_dir / f"orders.{suffix}").read_bytes())
    os.chmod(node / "orders.key", 0o600)
    config = node_config(tmp_path, echo.port, ca)
    renew = config["mesh"].pop("renew")
    ferry = start_ferry(config)
    first = serial_of_pem(node / "orders.pem")

    config["mesh"]["renew"] = renew
    ferry.reload(config)
    assert ferry.metric("ferry_config_reload_failures_total") == 0
    wait_until(lambda: ferry.metric("ferry_mesh_renewals_total") == 1, 30,
               what="the renewer the reload started")
    assert serial_of_pem(node / "orders.pem") != first
    assert "by certificate" in ca.process.log_text()


def test_a_sigterm_while_waiting_for_an_unreachable_ca_stops_the_start_at_once(
        processes, ca_dir, echo, tmp_path):
    # The CA is not running: the node retries for up to 30 s; a SIGTERM must not wait that out.
    token_file = tmp_path / "orders.token"
    token_file.write_text(token(ca_dir, "orders") + "\n")
    unreachable = types.SimpleNamespace(url=f"https://127.0.0.1:{free_port()}",
                                        ca=ca_dir / "ca.pem")
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(node_config(tmp_path, echo.port, unreachable,
                                               token_file=token_file)))
    node = processes.start([str(FERRY_BIN), "run", "-c", str(path)], tmp_path / "node.log")
    wait_until(lambda: "getting a certificate failed" in node.log_text(), 15,
               what="the first failed try")
    stopped_at = time.monotonic()
    os.kill(node.pid, signal.SIGTERM)
    assert node.wait(timeout=10) == 0, node.log_text()
    assert time.monotonic() - stopped_at < 5, node.log_text()
    assert "stopped by a signal" in node.log_text()
