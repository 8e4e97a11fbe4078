"""Fixtures for Ferry's integration tests: the real `ferry` binary on loopback, in front of real
`echo_service` processes (or a tiny Python upstream when a test needs a misbehaving origin).

Every process is started by a fixture and killed by PID in its teardown, whatever the test's
outcome. Ports are port 0 wherever Ferry allows it (listeners and admin: the bound ports are read
back from Ferry's log and /stats), so parallel runs on one machine do not collide.

Binaries: FERRY_BIN and ECHO_BIN (absolute, or relative to the repository root); defaults are
the debug build's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _binary(env_name: str, default: str) -> Path:
    p = Path(os.environ.get(env_name, default))
    return p if p.is_absolute() else (REPO_ROOT / p)


FERRY_BIN = _binary("FERRY_BIN", "build/debug/src/app/ferry")
ECHO_BIN = _binary("ECHO_BIN", "build/debug/examples/echo_service")


def require_tool(name: str) -> str:
    """The path of an external tool; missing fails in CI and skips loudly elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed: this test did NOT run (install it: scripts/install-deps)"
    if IN_CI:
        pytest.fail(message)
    import warnings

    warnings.warn(message)
    pytest.skip("LOUD SKIP: " + message)


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Polls predicate until it returns a truthy value; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port that was free a moment ago (for things that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process with its output in a file. stop() and kill() act on this PID only."""

    def __init__(self, argv: list[str], log_path: Path):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        self.pid = self.popen.pid

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within timeout."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self._log.close()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")


class ProcessSet:
    """Owns every process a test starts; teardown kills whatever is still running."""

    def __init__(self):
        self.processes: list[Process] = []

    def start(self, argv: list[str], log_path: Path) -> Process:
        p = Process(argv, log_path)
        self.processes.append(p)
        return p

    def kill_all(self) -> None:
        for p in reversed(self.processes):
            try:
                p.kill()
            except Exception:  # noqa: BLE001 - teardown must reach every process
                pass


@pytest.fixture
def processes():
    ps = ProcessSet()
    yield ps
    ps.kill_all()


# --- echo_service -------------------------------------------------------------------------


class Echo:
    def __init__(self, process: Process, name: str, port: int):
        self.process = process
        self.name = name
        self.port = port
        self.address = f"127.0.0.1:{port}"


@pytest.fixture
def start_echo(processes, tmp_path):
    """start_echo(name) -> Echo: an echo_service on a kernel-chosen port, listening."""
    if not ECHO_BIN.exists():
        pytest.fail(f"echo_service binary not found at {ECHO_BIN} (set ECHO_BIN)")

    def start(name: str) -> Echo:
        log = tmp_path / f"echo-{name}.log"
        p = processes.start([str(ECHO_BIN), "--listen", "127.0.0.1:0", "--name", name], log)

        def bound():
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", p.log_text())
            if not m and not p.alive():
                raise AssertionError(f"echo_service {name} exited: {p.log_text()}")
            return m

        m = wait_until(bound, 10, what=f"echo_service {name} to listen")
        return Echo(p, name, int(m.group(1)))

    return start


@pytest.fixture
def echo(start_echo) -> Echo:
    return start_echo("e1")


@pytest.fixture
def echo_pair(start_echo) -> tuple[Echo, Echo]:
    return start_echo("e1"), start_echo("e2")


# --- a scriptable Python upstream -----------------------------------------------------------


def read_http_message(conn: socket.socket, buf: bytearray) -> bytes | None:
    """Reads one request (head + Content-Length or chunked body) from conn; None on EOF."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf.extend(data)
    head_end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:head_end])
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        # A chunked body: read until the whole message is buffered, then take it off.
        while (message := read_http_message_nonblocking(buf)) is None:
            data = conn.recv(65536)
            if not data:
                return None
            buf.extend(data)
        return message
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(buf) < head_end + length:
        data = conn.recv(65536)
        if not data:
            return None
        buf.extend(data)
    message = bytes(buf[: head_end + length])
    del buf[: head_end + length]
    return message


def ok_response(body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
            f"\r\n{extra}\r\n").encode() + body


class PyUpstream:
    """A TCP server on a thread. handler(conn, index, upstream) serves one accepted connection.

    It records every connection accepted and every byte received, so a test can prove what did
    (or did not) reach the upstream.
    """

    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests: list[bytes] = []
        self.received = bytearray()
        self._stop = False
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                index = self.accepted
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn, index):
        try:
            self.handler(conn, index, self)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def record(self, message: bytes) -> None:
        with self.lock:
            self.requests.append(message)

    def close(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    c.close()
                except OSError:
                    pass


def keepalive_handler(conn, index, up):
    """Answers 200 to each request, keeping the connection open."""
    buf = bytearray()
    while True:
        msg = read_http_message(conn, buf)
        if msg is None:
            return
        up.record(msg)
        conn.sendall(ok_response(json.dumps({"conn": index}).encode()))


def recording_handler(conn, index, up):
    """Records every byte received; answers 200 to each complete request."""
    buf = bytearray()
    while True:
        data = conn.recv(65536)
        if not data:
            return
        with up.lock:
            up.received.extend(data)
        buf.extend(data)
        while (msg := read_http_message_nonblocking(buf)) is not None:
            up.record(msg)
            conn.sendall(ok_response())


def read_http_message_nonblocking(buf: bytearray) -> bytes | None:
    """Takes one whole request (Content-Length or chunked body) off buf, or returns None."""
    if b"\r\n\r\n" not in buf:
        return None
    head_end = buf.index(b"\r\n\r\n") + 4
    head = bytes(buf[:head_end])
    end = head_end
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        while True:
            line_end = buf.find(b"\r\n", end)
            if line_end < 0:
                return None
            size = int(bytes(buf[end:line_end]).split(b";")[0], 16)
            end = line_end + 2 + size + 2
            if len(buf) < end:
                return None
            if size == 0:
                break
    else:
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        end += int(m.group(1)) if m else 0
        if len(buf) < end:
            return None
    msg = bytes(buf[:end])
    del buf[:end]
    return msg


@pytest.fixture
def py_upstream():
    """py_upstream(handler=keepalive_handler) -> PyUpstream, closed at teardown."""
    started: list[PyUpstream] = []

    def start(handler=keepalive_handler) -> PyUpstream:
        up = PyUpstream(handler)
        started.append(up)
        return up

    yield start
    for up in started:
        up.close()


# --- ferry --------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text format -> [(name, labels, value)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)', line)
        assert m, f"unparsable metrics line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


class Ferry:
    def __init__(self, process: Process, config_path: Path, admin_port: int):
        self.process = process
        self.config_path = config_path
        self.admin_port = admin_port
        self.pid = process.pid
        self._ports: dict[str, int] = {}

    # admin
    def admin(self, path: str) -> tuple[int, bytes]:
        return http_get(f"http://127.0.0.1:{self.admin_port}{path}")

    def stats(self) -> dict:
        status, body = self.admin("/stats")
        assert status == 200, body
        return json.loads(body)

    def metrics_text(self) -> str:
        status, body = self.admin("/metrics")
        assert status == 200, body
        return body.decode()

    def metric(self, name: str, **labels) -> float:
        """Sum of the series of `name` whose labels include `labels` (0 if none)."""
        total = 0.0
        for n, ls, v in parse_metrics(self.metrics_text()):
            if n == name and all(ls.get(k) == str(val) for k, val in labels.items()):
                total += v
        return total

    # listeners
    def port(self, listener: str = "pub") -> int:
        if listener not in self._ports:
            addr = self.stats()["listeners"][listener]
            self._ports[listener] = int(addr.rsplit(":", 1)[1])
        return self._ports[listener]

    def url(self, path: str = "/", listener: str = "pub") -> str:
        return f"http://127.0.0.1:{self.port(listener)}{path}"

    # config
    def write_config(self, config: dict | str) -> None:
        """Replaces the config file atomically (a new inode, as editors and deploy tools do)."""
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    def reload(self, config: dict | str) -> None:
        """Writes config, sends SIGHUP and waits until Ferry counted the reload (ok or failed)."""
        before = self.metric("ferry_config_reloads_total") + self.metric(
            "ferry_config_reload_failures_total")
        self.write_config(config)
        self.process.signal(signal.SIGHUP)
        wait_until(lambda: self.metric("ferry_config_reloads_total")
                   + self.metric("ferry_config_reload_failures_total") > before,
                   10, what="the reload to be counted")
        # The main thread counts the reload, then posts the new snapshot to each worker; give
        # the workers a moment (their queues are empty in these tests) to apply it.
        time.sleep(0.1)

    def log_text(self) -> str:
        return self.process.log_text()


def basic_config(endpoints, *, routes=None, limits=None, service_extra=None, workers=1,
                 drain_time=None, access_log=None) -> dict:
    """A one-listener ("pub", port 0), one-service ("svc") config."""
    listener = {"name": "pub", "listen": "127.0.0.1:0"}
    if limits:
        listener["limits"] = limits
    listener["routes"] = routes if routes is not None else [{"service": "svc"}]
    service = {"endpoints": list(endpoints)}
    service.update(service_extra or {})
    config = {"workers": workers}
    if drain_time:
        config["drain_time"] = drain_time
    config["admin"] = {"listen": "127.0.0.1:0"}
    if access_log:
        config["access_log"] = access_log
    config["listeners"] = [listener]
    config["services"] = {"svc": service}
    return config


@pytest.fixture
def start_ferry(processes, tmp_path):
    """start_ferry(config) -> Ferry, ready (admin /ready answered 200)."""
    if not FERRY_BIN.exists():
        pytest.fail(f"ferry binary not found at {FERRY_BIN} (set FERRY_BIN)")
    counter = [0]

    def start(config: dict | str, *, check_ready: bool = True) -> Ferry:
        counter[0] += 1
        config_path = tmp_path / f"ferry-{counter[0]}.yaml"
        text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
        config_path.write_text(text)
        p = processes.start([str(FERRY_BIN), "run", "-c", str(config_path)],
                            tmp_path / f"ferry-{counter[0]}.log")

        def admin_bound():
            m = re.search(r"admin on 127\.0\.0\.1:(\d+)", p.log_text())
            if not m and not p.alive():
                raise AssertionError(f"ferry exited with {p.popen.returncode}: {p.log_text()}")
            return m

        m = wait_until(admin_bound, 15, what="ferry to log its admin address")
        ferry = Ferry(p, config_path, int(m.group(1)))
        if check_ready:
            wait_until(lambda: _ready(ferry), 15, what="ferry /ready to answer 200")
        return ferry

    return start


def _ready(ferry: Ferry) -> bool:
    try:
        return ferry.admin("/ready")[0] == 200
    except OSError:
        return False


# --- clients ------------------------------------------------------------------------------


class CurlResult:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, stderr: str,
                 returncode: int):
        self.status = status
        self.headers = headers
        self.body = body
        self.stderr = stderr
        self.returncode = returncode

    def json(self):
        return json.loads(self.body)


def curl(url: str, *args: str, timeout: float = 20, input: bytes | None = None) -> CurlResult:
    """Runs curl; returns the final response's status, headers (lowercase names) and body."""
    proc = subprocess.run(["curl", "-sS", "-D", "-", "--max-time", str(timeout), *args, url],
                          input=input, capture_output=True, timeout=timeout + 10)
    out = proc.stdout
    status, headers = 0, {}
    # Skip interim (1xx) heads: the last head before the body is the final one.
    while out.startswith(b"HTTP/"):
        head, sep, rest = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        out = rest
        if status >= 200:
            break
    return CurlResult(status, headers, out, proc.stderr.decode(errors="replace"), proc.returncode)


def raw_exchange(port: int, payload: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Sends payload on a fresh connection and reads until the peer closes or timeout.

    Returns (everything received, whether the peer closed the connection).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        data = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return bytes(data), False
            except ConnectionResetError:
                return bytes(data), True
            if not chunk:
                return bytes(data), True
            data.extend(chunk)
        return bytes(data), False


def read_response(sock: socket.socket) -> bytes:
    """Reads one Content-Length-framed response from sock (head and body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert m, f"no content-length in {head!r}"
    while len(body) < int(m.group(1)):
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return head + b"\r\n\r\n" + body


def status_of(response: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", response)
    assert m, f"not an HTTP response: {response[:200]!r}"
    return int(m.group(1))


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def assert_error_json(body: bytes, status: int, code: str) -> dict:
    doc = json.loads(body)
    assert doc["error"]["code"] == code, doc
    assert doc["error"]["status"] == status, doc
    return doc
