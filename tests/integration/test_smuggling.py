"""Request smuggling: every ambiguous or malformed request gets 400, the connection is closed,
and nothing reaches the upstream. Payloads go over a raw socket, exactly as written here."""

import pytest

from conftest import (assert_error_json, basic_config, body_of, raw_exchange, recording_handler,
                      status_of)

# Sent right after each payload: if Ferry kept parsing the connection after the bad request,
# this would come back as a second response (or reach the upstream).
FOLLOW_UP = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

PAYLOADS = {
    "cl_and_te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 5\r\n\r\n0\r\n\r\n",
    "two_different_cl": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                        b"Content-Length: 6\r\n\r\nhello!",
    "cl_list_different": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "cl_not_a_number": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5a\r\n\r\nhello",
    "cl_negative": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\nhello",
    "cl_plus_sign": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "bad_chunk_size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
    "chunk_size_negative": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"-5\r\nhello\r\n0\r\n\r\n",
    "chunk_data_longer_than_size": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                   b"\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "bare_cr_in_value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "bare_lf_line_ends": b"GET / HTTP/1.1\nHost: x\n\n",
    "bare_lf_one_header": b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
    "te_chunked_not_last": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip"
                           b"\r\n\r\n0\r\n\r\n",
    "te_gzip_only": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    "te_two_headers_chunked_first": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                    b"\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
    "te_xchunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
                   b"0\r\n\r\n",
    # CVE-2024-27982 (Node.js/llhttp): a space before a header name made it count.
    "cve_2024_27982_space_before_name": b"POST / HTTP/1.1\r\nHost: x\r\n Content-Length: 5"
                                        b"\r\n\r\nhello",
    "space_before_colon": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    # CVE-2023-30589 (Node.js/llhttp): a bare CR accepted as a header line terminator.
    "cve_2023_30589_bare_cr_line_end": b"GET / HTTP/1.1\r\nHost: x\rContent-Length: 5\r\n\r\n"
                                       b"hello",
    "cve_2023_30589_bare_cr_before_te": b"POST / HTTP/1.1\r\nHost: x\r\nX-A: a\r"
                                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "nul_in_header_value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "nul_in_header_name": b"GET / HTTP/1.1\r\nHost: x\r\nX-\x00A: b\r\n\r\n",
    "bad_version": b"GET / HTTP/1.7\r\nHost: x\r\n\r\n",
}

# RFC 9112 MUSTs beyond the list: a Host header missing or repeated (3.2) lets Ferry
# and the upstream disagree on the host a route matched; Transfer-Encoding in HTTP/1.0 (6.1)
# must be treated as faulty framing.
RFC_MUST_REJECT = {
    "missing_host_http11": b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "te_chunked_in_http10": b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"0\r\n\r\n",
}


@pytest.fixture(scope="module")
def guarded(request, tmp_path_factory):
    """One Ferry for the module (the payloads do not change its state) in front of an upstream
    that records every byte it receives."""
    # Module-scoped versions of the function-scoped fixtures, started by hand.
    from conftest import FERRY_BIN, ProcessSet, PyUpstream, Ferry, wait_until, _ready
    import re
    import yaml

    up = PyUpstream(recording_handler)
    processes = ProcessSet()
    tmp = tmp_path_factory.mktemp("smuggling")
    config = tmp / "ferry.yaml"
    config.write_text(yaml.safe_dump(basic_config([up.address])))
    p = processes.start([str(FERRY_BIN), "run", "-c", str(config)], tmp / "ferry.log")
    try:
        m = wait_until(lambda: re.search(r"admin on 127\.0\.0\.1:(\d+)", p.log_text()), 15,
                       what="ferry admin address")
        ferry = Ferry(p, config, int(m.group(1)))
        wait_until(lambda: _ready(ferry), 15, what="ferry ready")
        ferry.upstream = up
        yield ferry
    finally:
        processes.kill_all()
        up.close()


@pytest.fixture
def clean(guarded):
    with guarded.upstream.lock:
        guarded.upstream.received.clear()
        guarded.upstream.requests.clear()
    return guarded


def test_valid_request_with_follow_up_reaches_upstream(clean):
    # Control: the same framing, well-formed, gives two responses and two upstream requests.
    data, _ = raw_exchange(clean.port(), b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                           b"\r\nhello" + FOLLOW_UP, timeout=1.0)
    assert data.count(b"HTTP/1.1 200 ") == 2, data
    assert len(clean.upstream.requests) == 2


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_smuggling_payload_rejected(clean, name):
    data, closed = raw_exchange(clean.port(), PAYLOADS[name] + FOLLOW_UP)
    assert status_of(data) == 400, data
    assert_error_json(body_of(data).split(b"\n")[0], 400, "bad_request")
    assert data.count(b"HTTP/1.") == 1, data  # nothing after the 400: the follow-up was dropped
    assert closed, "connection left open after a 400"
    assert bytes(clean.upstream.received) == b"", clean.upstream.received


@pytest.mark.parametrize("name", sorted(RFC_MUST_REJECT))
def test_rfc9112_must_reject(clean, name):
    data, closed = raw_exchange(clean.port(), RFC_MUST_REJECT[name] + FOLLOW_UP)
    assert status_of(data) == 400, data
    assert closed
    assert bytes(clean.upstream.received) == b"", clean.upstream.received
