"""HTTP/2 upstreams (a service's `protocol:`, docs/configuration.md#servicesnamehttp2): Ferry
calls Debian's `nghttpd` in h2c mode (prior knowledge, `protocol: http2` without tls:) and over
TLS (ALPN: `protocol: http2` offers h2, `protocol: auto` offers h2 and http/1.1), with curl
speaking HTTP/1.1 to Ferry: GETs of files, a POST body echoed back (--echo-upload), and many
concurrent requests carried by one upstream connection (ferry_upstream_connections), or by as
many as the streams-per-connection cap needs."""

import concurrent.futures
import os
import socket

import pytest

from conftest import basic_config, curl, free_port, require_tool, wait_until
from tls_support import Pki


class Nghttpd:
    """nghttpd serving `docroot` on 127.0.0.1:port (h2c, or TLS with cert and key)."""

    def __init__(self, processes, tmp_path, docroot, cert=None, key=None, max_streams=100):
        binary = require_tool("nghttpd")
        self.port = free_port()
        argv = [binary, "--address=127.0.0.1", f"--htdocs={docroot}", "--echo-upload",
                f"--max-concurrent-streams={max_streams}", "-v"]
        argv += [str(self.port), key, cert] if cert else ["--no-tls", str(self.port)]
        self.process = processes.start(argv, tmp_path / f"nghttpd-{self.port}.log")
        self.address = f"127.0.0.1:{self.port}"
        wait_until(self._listening, 10, what="nghttpd to listen")

    def _listening(self):
        if not self.process.alive():
            raise AssertionError(f"nghttpd exited: {self.process.log_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def log(self):
        return self.process.log_text()


@pytest.fixture
def docroot(tmp_path):
    d = tmp_path / "htdocs"
    d.mkdir()
    (d / "hello.txt").write_text("hello over h2\n")
    (d / "big.bin").write_bytes(os.urandom(3 << 20))
    return d


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    p = Pki(d)
    p.make_ca("root")
    p.leaf("root", "api", "DNS:api.test,IP:127.0.0.1")
    return p


def _get_all(url, n, workers=50):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: curl(url), range(n)))


def test_h2c_get_and_post_through_ferry(processes, tmp_path, docroot, start_ferry):
    up = Nghttpd(processes, tmp_path, docroot)
    ferry = start_ferry(basic_config([up.address], service_extra={"protocol": "http2"}))
    r = curl(ferry.url("/hello.txt"))
    assert r.status == 200, r.stderr
    assert r.body == b"hello over h2\n"
    big = curl(ferry.url("/big.bin"))
    assert big.status == 200
    assert big.body == (docroot / "big.bin").read_bytes()
    body = os.urandom(1 << 20)
    posted = curl(ferry.url("/hello.txt"), "-X", "POST", "--data-binary", "@-", input=body)
    assert posted.status == 200, posted.stderr
    assert posted.body == body  # nghttpd --echo-upload sends the request body back
    # nghttpd saw HTTP/2 frames from Ferry: the preface's SETTINGS and HEADERS with :authority.
    log = up.log()
    assert "recv SETTINGS frame" in log and "recv HEADERS frame" in log
    assert ":path: /big.bin" in log


def test_many_concurrent_requests_share_one_upstream_connection(processes, tmp_path, docroot,
                                                               start_ferry):
    up = Nghttpd(processes, tmp_path, docroot)
    ferry = start_ferry(basic_config([up.address], service_extra={"protocol": "http2"}))
    results = _get_all(ferry.url("/hello.txt"), 200)
    assert all(r.status == 200 and r.body == b"hello over h2\n" for r in results)
    wait_until(lambda: ferry.metric("ferry_upstream_connections", service="svc") > 0, 5,
               what="the connections gauge")
    assert ferry.metric("ferry_upstream_connections", service="svc") == 1
    wait_until(lambda: ferry.metric("ferry_upstream_http2_streams_total", service="svc") == 200,
               5, what="200 HTTP/2 streams counted")


def test_the_streams_per_connection_cap_opens_more_connections(processes, tmp_path, docroot,
                                                               start_ferry):
    # A cap of 2 streams per connection: 3 MiB bodies to 40 concurrent clients keep streams
    # open long enough to need several connections; the gauge shows them.
    up = Nghttpd(processes, tmp_path, docroot)
    config = basic_config([up.address], service_extra={
        "protocol": "http2", "http2": {"max_streams_per_connection": 2}})
    ferry = start_ferry(config)
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        results = list(pool.map(lambda _: curl(ferry.url("/big.bin"), "--limit-rate", "4M"),
                                range(40)))
    assert all(r.status == 200 and len(r.body) == 3 << 20 for r in results)
    wait_until(lambda: ferry.metric("ferry_upstream_connections", service="svc") > 1, 5,
               what="more than one upstream connection")
    wait_until(lambda: ferry.metric("ferry_upstream_http2_streams_total", service="svc") == 40,
               5, what="40 HTTP/2 streams counted")


@pytest.mark.parametrize("protocol", ["http2", "auto"])
def test_h2_over_tls_by_alpn(processes, tmp_path, docroot, pki, start_ferry, protocol):
    cert, key = pki.path("api.pem"), pki.path("api.key")
    up = Nghttpd(processes, tmp_path, docroot, cert=cert, key=key)
    config = basic_config([up.address], service_extra={
        "protocol": protocol, "tls": {"ca": pki.path("root.pem")}})
    ferry = start_ferry(config)
    results = _get_all(ferry.url("/hello.txt"), 20)
    assert all(r.status == 200 and r.body == b"hello over h2\n" for r in results), \
        [r.stderr for r in results if r.status != 200]
    body = os.urandom(300_000)
    posted = curl(ferry.url("/hello.txt"), "-X", "POST", "--data-binary", "@-", input=body)
    assert posted.body == body
    wait_until(lambda: ferry.metric("ferry_upstream_http2_streams_total", service="svc") == 21,
               5, what="21 HTTP/2 streams counted")
    assert "recv HEADERS frame" in up.log()


def test_auto_speaks_http1_when_the_server_picks_it(tmp_path, pki, start_ferry):
    # The server's ALPN picks http/1.1 (python's ssl with set_alpn_protocols): Ferry speaks
    # HTTP/1.1 on that connection, and no HTTP/2 stream is counted.
    from tls_support import ThreadedServer, server_context
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - the http.server API
            body = b"h1 answer"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    context = server_context(pki.path("api.pem"), pki.path("api.key"))
    context.set_alpn_protocols(["http/1.1"])
    server = ThreadedServer(Handler, context)
    try:
        ferry = start_ferry(basic_config([server.address], service_extra={
            "protocol": "auto", "tls": {"ca": pki.path("root.pem")}}))
        r = curl(ferry.url("/"))
        assert r.status == 200 and r.body == b"h1 answer", r.stderr
        # (The gauge shows the connection once the metrics were published: the counter was too.)
        wait_until(lambda: ferry.metric("ferry_upstream_connections", service="svc") == 1, 5,
                   what="the connection in the gauge")
        assert ferry.metric("ferry_upstream_http2_streams_total", service="svc") == 0
    finally:
        server.close()
