"""Bodies streamed in both directions, Content-Length and chunked; bounded memory for 1 GiB;
Expect: 100-continue."""

import http.client
import os
import subprocess
import threading
import zlib

import pytest

from conftest import basic_config, curl

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.fixture
def ferry(start_ferry, echo):
    return start_ferry(basic_config([echo.address], routes=[{"service": "svc", "timeout": "0"}]))


@pytest.fixture
def payload(tmp_path):
    data = os.urandom(3 * MiB + 17)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data


def test_upload_content_length(ferry, payload):
    path, data = payload
    r = curl(ferry.url("/upload"), "--data-binary", f"@{path}")
    assert r.status == 200
    assert r.json()["received"] == len(data)
    assert r.json()["crc32"] == zlib.crc32(data)


def test_upload_chunked(ferry, payload):
    path, data = payload
    r = curl(ferry.url("/upload"), "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{path}")
    assert r.status == 200
    assert r.json()["received"] == len(data)
    assert r.json()["crc32"] == zlib.crc32(data)


def test_download_content_length(ferry):
    r = curl(ferry.url(f"/bytes/{5 * MiB + 3}"))
    assert r.status == 200
    assert r.headers.get("content-length") == str(5 * MiB + 3)
    assert len(r.body) == 5 * MiB + 3


def test_download_chunked(ferry):
    r = curl(ferry.url(f"/chunked/{5 * MiB + 3}"))
    assert r.status == 200
    assert r.headers.get("transfer-encoding") == "chunked"
    assert len(r.body) == 5 * MiB + 3


def test_download_chunked_to_http10_client_until_close(ferry):
    r = curl(ferry.url(f"/chunked/{MiB}"), "--http1.0")
    assert r.status == 200
    assert "transfer-encoding" not in r.headers
    assert len(r.body) == MiB


def test_head_request_gets_no_body_and_connection_stays_usable(ferry):
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    conn.request("HEAD", f"/bytes/{MiB}")
    head = conn.getresponse()
    assert head.status == 200
    assert head.getheader("content-length") == str(MiB)
    assert head.read() == b""
    # Had Ferry sent body bytes after the HEAD response, they would corrupt this exchange.
    conn.request("GET", "/bytes/10")
    get = conn.getresponse()
    assert get.status == 200
    assert len(get.read()) == 10
    conn.close()


def test_expect_100_continue(ferry, payload):
    path, data = payload
    r = curl(ferry.url("/upload"), "-v", "-H", "Expect: 100-continue",
             "--expect100-timeout", "10", "--data-binary", f"@{path}")
    assert r.status == 200
    assert "< HTTP/1.1 100 Continue" in r.stderr
    assert r.json()["received"] == len(data)


def test_expect_100_continue_not_sent_when_rejected(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], limits={"max_body_bytes": "1KiB"}))
    r = curl(ferry.url("/upload"), "-v", "-H", "Expect: 100-continue",
             "--expect100-timeout", "10", "--data-binary", "x" * 4096)
    assert r.status == 413
    assert "100 Continue" not in r.stderr


# --- 1 GiB through Ferry with bounded memory --------------------------------------------------


class RssSampler:
    """Samples a process's VmRSS every 50ms on a thread; peak in KiB."""

    def __init__(self, process):
        self.process = process
        self.peak = process.rss_kib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.process.rss_kib())
            except (OSError, AssertionError):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def warm_up(ferry):
    for _ in range(3):
        assert curl(ferry.url(f"/bytes/{4 * MiB}")).status == 200
        assert curl(ferry.url("/upload"), "--data-binary", "@-", input=b"x" * MiB).status == 200


def test_1gib_upload_content_length_rss_bounded(ferry):
    warm_up(ferry)
    baseline = ferry.process.rss_kib()
    block = os.urandom(MiB)

    def body():
        for _ in range(GiB // MiB):
            yield block

    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=120)
    with RssSampler(ferry.process) as rss:
        conn.request("POST", "/upload", body=body(), headers={"Content-Length": str(GiB)})
        resp = conn.getresponse()
        doc = resp.read()
    conn.close()
    assert resp.status == 200, doc
    assert b'"received":%d' % GiB in doc.replace(b" ", b"")
    growth_mib = (rss.peak - baseline) / 1024
    assert growth_mib < 32, f"RSS grew by {growth_mib:.1f} MiB during a 1 GiB upload"


def test_1gib_upload_chunked_from_pipe_rss_bounded(ferry):
    warm_up(ferry)
    baseline = ferry.process.rss_kib()
    with RssSampler(ferry.process) as rss:
        head = subprocess.Popen(["head", "-c", str(GiB), "/dev/zero"], stdout=subprocess.PIPE)
        try:
            # -T - streams stdin as a chunked body (--data-binary @- would buffer it in curl).
            proc = subprocess.run(["curl", "-sS", "--max-time", "120", "-X", "POST", "-T", "-",
                                   ferry.url("/upload")], stdin=head.stdout, capture_output=True,
                                  timeout=150)
        finally:
            head.stdout.close()
            head.kill()
            head.wait()
    assert proc.returncode == 0, proc.stderr
    assert b'"received":%d' % GiB in proc.stdout, proc.stdout
    growth_mib = (rss.peak - baseline) / 1024
    assert growth_mib < 32, f"RSS grew by {growth_mib:.1f} MiB during a 1 GiB chunked upload"


def test_1gib_download_rss_bounded(ferry):
    warm_up(ferry)
    baseline = ferry.process.rss_kib()
    with RssSampler(ferry.process) as rss:
        proc = subprocess.run(["curl", "-sS", "--max-time", "120", "-o", "/dev/null",
                               "-w", "%{http_code} %{size_download}", ferry.url(f"/bytes/{GiB}")],
                              capture_output=True, text=True, timeout=150)
    assert proc.stdout == f"200 {GiB}", proc.stdout + proc.stderr
    growth_mib = (rss.peak - baseline) / 1024
    assert growth_mib < 32, f"RSS grew by {growth_mib:.1f} MiB during a 1 GiB download"
