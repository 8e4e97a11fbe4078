"""SIGTERM: /ready turns 503, listeners stop accepting, idle keep-alive connections close at
once, in-flight requests drain up to drain_time, then the process exits 0."""

import signal
import socket
import threading
import time

import pytest

from conftest import basic_config, curl, read_response, status_of


class InFlight:
    """A slow request on a thread, started and given time to reach the upstream."""

    def __init__(self, ferry, path):
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(ferry.url(path),))
        self.thread.start()
        time.sleep(0.4)

    def _run(self, url):
        self.result = curl(url, timeout=30)

    def join(self):
        self.thread.join(40)
        return self.result


def idle_keepalive_connection(ferry) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", ferry.port()), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(read_response(s)) == 200
    return s


@pytest.fixture
def draining(start_ferry, echo):
    """A Ferry (drain_time 30s) with a /delay/1500 request in flight, just sent SIGTERM."""
    ferry = start_ferry(basic_config([echo.address], drain_time="30s"))
    ferry.idle = idle_keepalive_connection(ferry)
    ferry.slow = InFlight(ferry, "/delay/1500")
    ferry.term_at = time.monotonic()
    ferry.process.signal(signal.SIGTERM)
    yield ferry
    ferry.idle.close()
    ferry.slow.join()


def test_ready_turns_503_while_draining(draining):
    time.sleep(0.2)
    assert draining.admin("/ready")[0] == 503


def test_live_stays_200_while_draining(draining):
    time.sleep(0.2)
    assert draining.admin("/live")[0] == 200


def test_in_flight_request_completes_with_200(draining):
    r = draining.slow.join()
    assert r.status == 200, (r.status, r.body, r.stderr)
    assert r.json()["path"] == "/delay/1500"


def test_idle_keepalive_connection_closed_promptly(draining):
    draining.idle.settimeout(5)
    assert draining.idle.recv(65536) == b""
    assert time.monotonic() - draining.term_at < 1.0  # well before the in-flight one ends
    assert draining.process.alive()


def test_new_connections_refused_while_draining(draining):
    time.sleep(0.2)
    with pytest.raises(OSError):
        with socket.create_connection(("127.0.0.1", draining.port()), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(2)
            if not s.recv(65536):
                raise ConnectionResetError("closed without an answer")  # also a refusal


def test_exits_0_once_in_flight_done(draining):
    code = draining.process.wait(timeout=15)
    elapsed = time.monotonic() - draining.term_at
    assert code == 0
    assert elapsed < 10, elapsed  # drain_time is 30s: it left as soon as it was idle


def test_exits_0_at_drain_time_with_request_still_in_flight(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address], drain_time="1s"))
    slow = InFlight(ferry, "/delay/20000")
    started = time.monotonic()
    ferry.process.signal(signal.SIGTERM)
    code = ferry.process.wait(timeout=15)
    elapsed = time.monotonic() - started
    assert code == 0
    assert 0.8 < elapsed < 5, elapsed
    r = slow.join()
    assert r.status != 200


def test_idle_node_exits_0_at_once(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))  # default drain_time 5s
    started = time.monotonic()
    ferry.process.signal(signal.SIGTERM)
    assert ferry.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 2.5


def test_sigint_also_drains_and_exits_0(start_ferry, echo):
    ferry = start_ferry(basic_config([echo.address]))
    ferry.process.signal(signal.SIGINT)
    assert ferry.process.wait(timeout=10) == 0
