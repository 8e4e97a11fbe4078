"""Reload on SIGHUP and on a change of the config file, without dropping requests,
connections or listening sockets; a bad config is rejected and counted."""

import copy
import http.client
import signal
import threading
import time

from conftest import basic_config, curl, wait_until


def with_route(config, prefix, service="svc"):
    c = copy.deepcopy(config)
    c["listeners"][0]["routes"].insert(0, {"match": {"prefix": prefix}, "service": service,
                                           "rewrite_prefix": "/"})
    return c


def api_only(echo):
    return basic_config([echo.address], routes=[{"match": {"prefix": "/api/"}, "service": "svc"}])


def test_sighup_applies_new_route(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    assert curl(ferry.url("/new/x")).status == 404
    ferry.reload(with_route(config, "/new/"))
    r = curl(ferry.url("/new/x"))
    assert r.status == 200
    assert r.json()["path"] == "/x"


def test_sighup_counts_reload(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    ferry.reload(with_route(config, "/new/"))
    assert ferry.metric("ferry_config_reloads_total") == 1
    assert ferry.metric("ferry_config_reload_failures_total") == 0


def test_config_file_change_detected_without_signal(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    assert curl(ferry.url("/new/x")).status == 404
    ferry.write_config(with_route(config, "/new/"))
    wait_until(lambda: curl(ferry.url("/new/x")).status == 200, 8,
               what="the edited config file to be picked up")


def test_bad_config_on_sighup_keeps_old_config(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    bad = with_route(config, "/new/", service="no-such-service")
    ferry.reload(bad)
    assert ferry.metric("ferry_config_reload_failures_total") == 1
    assert ferry.metric("ferry_config_reloads_total") == 0
    assert curl(ferry.url("/api/x")).status == 200
    assert curl(ferry.url("/new/x")).status == 404
    assert ferry.process.alive()


def test_unparsable_config_on_sighup_keeps_old_config(start_ferry, echo):
    ferry = start_ferry(api_only(echo))
    ferry.reload("listeners: [\n")
    assert ferry.metric("ferry_config_reload_failures_total") == 1
    assert curl(ferry.url("/api/x")).status == 200


def test_in_flight_request_completes_across_reload(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=curl(ferry.url("/api/delay/1500"))))
    t.start()
    time.sleep(0.3)
    ferry.reload(with_route(config, "/new/"))
    t.join(15)
    assert result["r"].status == 200
    assert result["r"].json()["path"] == "/api/delay/1500"


def get_on(conn, path):
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_keepalive_connection_survives_reload(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    assert get_on(conn, "/api/before")[0] == 200
    local = conn.sock.getsockname()
    ferry.reload(with_route(config, "/new/"))
    status, body = get_on(conn, "/api/after")
    assert status == 200, body
    assert conn.sock.getsockname() == local  # same connection, not a silent reconnect
    conn.close()


def test_keepalive_connection_uses_new_config_after_reload(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    conn = http.client.HTTPConnection("127.0.0.1", ferry.port(), timeout=10)
    assert get_on(conn, "/api/before")[0] == 200
    ferry.reload(with_route(config, "/new/"))
    assert curl(ferry.url("/new/x")).status == 200  # the workers have the new config
    status, body = get_on(conn, "/new/after")  # a request sent after the reload completed
    conn.close()
    assert status == 200, body


def test_listening_socket_kept_through_20_reloads(start_ferry, echo):
    config = api_only(echo)
    ferry = start_ferry(config)
    port = ferry.port()
    failures, successes = [], [0]
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/x")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    successes[0] += 1
                else:
                    failures.append(status)
            except OSError as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            ferry.reload(with_route(config, f"/v{i}/"))
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert failures == []
    assert successes[0] > 20
    assert ferry.metric("ferry_config_reloads_total") == 20
    assert ferry.port() == port
    assert ferry.stats()["listeners"]["pub"].endswith(f":{port}")


def test_sighup_does_not_stop_ferry(start_ferry, echo):
    ferry = start_ferry(api_only(echo))
    ferry.process.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert ferry.process.alive()
    assert ferry.admin("/ready")[0] == 200
