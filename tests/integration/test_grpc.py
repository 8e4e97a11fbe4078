"""gRPC through Ferry (issue 14 items 4 and 9): Debian's python3-grpcio as client and server,
stubs generated at test time from examples/grpc/greeter.proto with protoc and
grpc_python_plugin. The client speaks h2c to Ferry's listener; Ferry calls the grpcio server as
a `protocol: http2` service. Unary and the three streaming kinds, statuses, messages and
trailing metadata intact, and a large streamed message both ways (flow control end to end)."""

import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT, basic_config, curl, free_port, require_tool, wait_until

PROTO_DIR = REPO_ROOT / "examples" / "grpc"

grpc = pytest.importorskip("grpc", reason="python3-grpcio is not installed (scripts/install-deps)")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    protoc = require_tool("protoc")
    plugin = require_tool("grpc_python_plugin")
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run([protoc, f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_out={out}",
                    f"--plugin=protoc-gen-grpc={plugin}", "greeter.proto", "health.proto"],
                   check=True)
    sys.path.insert(0, str(out))
    import greeter_pb2
    import greeter_pb2_grpc
    yield out, greeter_pb2, greeter_pb2_grpc
    sys.path.remove(str(out))


class Greeter:
    """examples/grpc/greeter_server.py on 127.0.0.1 (h2c), stopped by PID with the test."""

    def __init__(self, processes, tmp_path, stubs_dir):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.not_serving = tmp_path / f"greeter-{self.port}-not-serving"  # exists: NOT_SERVING
        self.process = processes.start(
            ["/usr/bin/python3", str(PROTO_DIR / "greeter_server.py"), str(self.port),
             str(stubs_dir), str(self.not_serving)], tmp_path / f"greeter-{self.port}.log")
        wait_until(self._listening, 15, what="the grpcio server to listen")

    def _listening(self):
        if not self.process.alive():
            raise AssertionError(f"greeter exited: {self.process.log_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return "listening" in self.process.log_text()
        except OSError:
            return False


@pytest.fixture
def greeter(processes, tmp_path, stubs):
    return Greeter(processes, tmp_path, stubs[0])


def grpc_config(greeter_address, route_extra=None):
    route = {"service": "svc"}
    route.update(route_extra or {})
    return basic_config([greeter_address], routes=[route],
                        service_extra={"protocol": "http2"})


def channel(port):
    options = [("grpc.max_receive_message_length", 64 << 20),
               ("grpc.max_send_message_length", 64 << 20),
               ("grpc.enable_retries", 0)]
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=options)


def test_all_four_kinds_with_trailing_metadata(start_ferry, greeter, stubs):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address))
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        reply, call = stub.SayHello.with_call(pb.HelloRequest(name="ann"), timeout=10)
        assert reply.message == "hello ann"
        assert call.code() == grpc.StatusCode.OK
        trailing = dict(call.trailing_metadata())
        assert trailing["x-served-by"] == "greeter" and trailing["x-name"] == "ann"

        replies = stub.StreamHellos(pb.HelloRequest(name="bo", count=5), timeout=10)
        assert [r.message for r in replies] == [f"hello bo {i}" for i in range(5)]
        assert dict(replies.trailing_metadata())["x-served-by"] == "greeter"
        assert replies.code() == grpc.StatusCode.OK

        requests = (pb.HelloRequest(name=n, payload=b"x" * 10) for n in ["a", "b", "c"])
        reply, call = stub.CollectHellos.with_call(requests, timeout=10)
        assert reply.message == "hello a,b,c" and reply.payload_bytes == 30
        assert dict(call.trailing_metadata())["x-served-by"] == "greeter"

        chat = stub.Chat(iter([pb.HelloRequest(name=str(i)) for i in range(20)]), timeout=10)
        assert [r.message for r in chat] == [f"hi {i}" for i in range(20)]
        assert chat.code() == grpc.StatusCode.OK
    # Per-method metrics, by grpc-status.
    for method in ["SayHello", "StreamHellos", "CollectHellos", "Chat"]:
        assert ferry.metric("ferry_grpc_calls_total", route="pub#0", grpc_status="0",
                            method=f"/ferry.example.Greeter/{method}") == 1, method


def test_upstream_status_message_and_metadata_intact(start_ferry, greeter, stubs):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address))
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SayHello(pb.HelloRequest(name="cy", fail_code=9), timeout=10)
    err = caught.value
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "failed cy ü%"  # percent-encoded on the wire, decoded by grpcio
    assert dict(err.trailing_metadata())["x-name"] == "cy"
    assert ferry.metric("ferry_grpc_calls_total", method="/ferry.example.Greeter/SayHello",
                        grpc_status="9") == 1


def test_large_messages_stream_both_ways_with_flow_control(start_ferry, greeter, stubs):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address))
    big = bytes(range(256)) * (16 << 10)  # 4 MiB: far past every HTTP/2 window on the way
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        reply = stub.SayHello(pb.HelloRequest(name="big", payload=big), timeout=30)
        assert reply.payload == big
        replies = list(stub.StreamHellos(pb.HelloRequest(name="s", count=8, payload=big),
                                         timeout=60))
        assert len(replies) == 8 and all(r.payload == big for r in replies)
        reply = stub.CollectHellos(iter([pb.HelloRequest(name="c", payload=big)] * 4),
                                   timeout=60)
        assert reply.payload_bytes == 4 * len(big)


# --- Ferry's own failures as gRPC statuses (docs/grpc.md), and deadlines


def nghttp_grpc(ferry, path, tmp_path, message=b"\x0a\x00", headers=()):
    """A gRPC POST by nghttp -v (one length-prefixed message; by default a HelloRequest with
    an empty name): the raw frames of Ferry's answer, as text."""
    nghttp = require_tool("nghttp")
    body = tmp_path / "grpc-body.bin"
    body.write_bytes(b"\x00" + len(message).to_bytes(4, "big") + message)
    argv = [nghttp, "-v", "-H", "content-type: application/grpc", "-H", "te: trailers"]
    for h in headers:
        argv += ["-H", h]
    out = subprocess.run(argv + ["-d", str(body), ferry.url(path)],
                         capture_output=True, text=True, timeout=20)
    return out.stdout


def assert_trailers_only(frames_text, grpc_status):
    """One HEADERS frame with END_STREAM (flags 0x05), :status 200 and the grpc-status; no DATA."""
    answer = frames_text[frames_text.index("recv (stream_id="):]  # (fields print before frames)
    assert re.search(r"recv HEADERS frame <[^>]*flags=0x05", answer), frames_text
    assert "recv DATA frame" not in answer, frames_text
    assert re.search(r"\(stream_id=\d+\) :status: 200", answer), frames_text
    assert re.search(r"\(stream_id=\d+\) content-type: application/grpc", answer), frames_text
    assert re.search(rf"\(stream_id=\d+\) grpc-status: {grpc_status}\b", answer), frames_text
    return answer


def test_no_route_is_unimplemented_trailers_only(start_ferry, greeter, stubs, tmp_path):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address, {"match": {"prefix": "/other/"}}))
    with channel(ferry.port()) as ch:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.GreeterStub(ch).SayHello(pb.HelloRequest(name="x"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "no route" in caught.value.details()
    answer = assert_trailers_only(nghttp_grpc(ferry, "/ferry.example.Greeter/SayHello", tmp_path),
                                  12)
    assert re.search(r"grpc-message: no route for POST /ferry\.example\.Greeter/SayHello", answer)
    assert ferry.metric("ferry_grpc_calls_total", route="", grpc_status="12") == 2
    # A request that is not gRPC still gets the JSON 404.
    assert curl(ferry.url("/nowhere")).status == 404


def test_unreachable_upstream_is_unavailable(start_ferry, stubs, tmp_path):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(f"127.0.0.1:{free_port()}"))  # nothing listens there
    with channel(ferry.port()) as ch:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.GreeterStub(ch).SayHello(pb.HelloRequest(name="x"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert_trailers_only(nghttp_grpc(ferry, "/ferry.example.Greeter/SayHello", tmp_path), 14)


def test_rate_limit_is_resource_exhausted(start_ferry, greeter, stubs):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address, {"rate_limit": {"rps": 1, "burst": 1}}))
    codes = []
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        for _ in range(4):
            try:
                stub.SayHello(pb.HelloRequest(name="x"), timeout=10)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
    assert codes[0] == grpc.StatusCode.OK
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, codes


def test_route_timeout_is_deadline_exceeded(start_ferry, greeter, stubs, tmp_path):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address, {"timeout": "500ms"}))
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            stub.SayHello(pb.HelloRequest(name="slow", sleep_ms=3000), timeout=20)
        took = time.monotonic() - start
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert took < 2.5, took  # Ferry's 500 ms, not the server's 3 s nor the client's 20 s


def test_upstream_sees_the_smaller_grpc_timeout(start_ferry, greeter, stubs):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address, {"timeout": "3s"}))
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        # The client's 20 s is cut to the route's 3 s on the way... (The server measures what
        # is left with clocks of its own: a few ms either way.)
        left = stub.SayHello(pb.HelloRequest(name="a"), timeout=20).time_remaining_ms
        assert 0 < left <= 3050, left
        # ...and the client's own 1.5 s, the nearer one, goes on (less the time spent).
        left = stub.SayHello(pb.HelloRequest(name="b"), timeout=1.5).time_remaining_ms
        assert 0 < left <= 1550, left


def test_grpc_timeout_is_enforced_by_ferry(start_ferry, greeter, tmp_path):
    """A client whose grpc-timeout (300 ms) is shorter than the route's timeout gets
    DEADLINE_EXCEEDED from Ferry itself (nghttp does not enforce grpc-timeout), as
    Trailers-Only, well before the server's 2 s sleep ends."""
    ferry = start_ferry(grpc_config(greeter.address, {"timeout": "30s"}))
    sleep_2000 = b"\x20\xd0\x0f"  # HelloRequest{sleep_ms: 2000}
    start = time.monotonic()
    frames = nghttp_grpc(ferry, "/ferry.example.Greeter/SayHello", tmp_path, sleep_2000,
                         ["grpc-timeout: 300m"])
    took = time.monotonic() - start
    answer = assert_trailers_only(frames, 4)
    assert "grpc-timeout" in answer, answer  # grpc-message names what ran out
    assert took < 1.8, took


def test_grpc_health_v1_as_the_active_health_check(start_ferry, greeter, stubs):
    """health: {grpc: ...}: Ferry calls grpc.health.v1.Health/Check; NOT_SERVING takes the one
    endpoint out (calls get UNAVAILABLE from Ferry), SERVING brings it back."""
    _, pb, pb_grpc = stubs
    config = grpc_config(greeter.address)
    config["services"]["svc"]["health"] = {
        "grpc": {"service": "ferry.example.Greeter"}, "interval": "200ms", "timeout": "150ms",
        "unhealthy_after": 1, "healthy_after": 1}
    ferry = start_ferry(config)

    def code():
        with channel(ferry.port()) as ch:
            try:
                pb_grpc.GreeterStub(ch).SayHello(pb.HelloRequest(name="h"), timeout=5)
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

    wait_until(lambda: code() == grpc.StatusCode.OK, 10, 0.1, what="the endpoint to serve")
    greeter.not_serving.write_text("down")
    wait_until(lambda: code() == grpc.StatusCode.UNAVAILABLE, 10, 0.1,
               what="NOT_SERVING to take the endpoint out")
    greeter.not_serving.unlink()
    wait_until(lambda: code() == grpc.StatusCode.OK, 10, 0.1, what="SERVING to bring it back")
    assert "grpc.health.v1.Health/Check" in ferry.log_text()


def test_idempotent_methods_are_retried_on_grpc_statuses(start_ferry, greeter, stubs):
    """A Trailers-Only UNAVAILABLE from the server is retried for a method of grpc.idempotent
    (the policy's retry.on: unavailable), and not for any other method."""
    _, pb, pb_grpc = stubs
    config = grpc_config(greeter.address,
                         {"grpc": {"idempotent": ["/ferry.example.Greeter/SayHello"]}})
    config["policies"] = {"default": {"retry": {"attempts": 3, "on": ["reset", "unavailable"]}}}
    ferry = start_ferry(config)
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        reply = stub.SayHello(pb.HelloRequest(name="r1", fail_code=14, fail_times=2), timeout=10)
        assert reply.calls == 3  # two UNAVAILABLE answers, retried; the third call served
        # Not in retry.on: the status goes to the client as it came.
        with pytest.raises(grpc.RpcError) as caught:
            stub.SayHello(pb.HelloRequest(name="r2", fail_code=8, fail_times=1), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.SayHello(pb.HelloRequest(name="r2"), timeout=10).calls == 2
    assert ferry.metric("ferry_upstream_retries_total", service="svc", reason="grpc_14") == 2


def test_methods_not_listed_are_not_retried(start_ferry, greeter, stubs):
    _, pb, pb_grpc = stubs
    config = grpc_config(greeter.address,
                         {"grpc": {"idempotent": ["/ferry.example.Greeter/Other"]}})
    config["policies"] = {"default": {"retry": {"attempts": 3, "on": ["unavailable"]}}}
    ferry = start_ferry(config)
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        with pytest.raises(grpc.RpcError) as caught:
            stub.SayHello(pb.HelloRequest(name="n1", fail_code=14, fail_times=1), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert stub.SayHello(pb.HelloRequest(name="n1"), timeout=10).calls == 2  # one try only


def test_max_message_bytes_both_ways(start_ferry, greeter, stubs):
    _, pb, pb_grpc = stubs
    ferry = start_ferry(grpc_config(greeter.address, {"grpc": {"max_message_bytes": "64KiB"}}))
    with channel(ferry.port()) as ch:
        stub = pb_grpc.GreeterStub(ch)
        assert stub.SayHello(pb.HelloRequest(name="s", payload=b"x" * 1000), timeout=10).calls
        # A request message over the limit: RESOURCE_EXHAUSTED from Ferry, not sent on.
        with pytest.raises(grpc.RpcError) as caught:
            stub.SayHello(pb.HelloRequest(name="big", payload=b"x" * 100_000), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_message_bytes" in caught.value.details()
        assert stub.SayHello(pb.HelloRequest(name="big"), timeout=10).calls == 1
        # A response message over it: the messages before it arrive, then RESOURCE_EXHAUSTED.
        got = []
        with pytest.raises(grpc.RpcError) as caught:
            for r in stub.Chat(iter([pb.HelloRequest(name="a", payload=b"y" * 100),
                                     pb.HelloRequest(name="b", reply_bytes=100_000)]),
                               timeout=10):
                got.append(r.message)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert got == ["hi a"]


def test_method_labels_are_capped(start_ferry, greeter, tmp_path):
    """Clients choose the path: past 200 distinct methods, the rest count as "other"."""
    ferry = start_ferry(grpc_config(greeter.address, {"match": {"prefix": "/none/"}}))
    nghttp = require_tool("nghttp")
    body = tmp_path / "empty.bin"
    body.write_bytes(b"\x00\x00\x00\x00\x00")
    urls = [ferry.url(f"/pkg.Svc/M{i}") for i in range(210)]
    for chunk in range(0, len(urls), 50):
        subprocess.run([nghttp, "-H", "content-type: application/grpc", "-d", str(body),
                        *urls[chunk:chunk + 50]], capture_output=True, timeout=30)
    text = ferry.metrics_text()
    methods = set(re.findall(r'ferry_grpc_calls_total\{[^}]*method="([^"]*)"', text))
    assert len(methods) == 201, len(methods)  # 200 of them, and "other"
    assert ferry.metric("ferry_grpc_calls_total", method="other") == 10
