"""A caller of the example Greeter (greeter.proto) for the demo: the "frontend" service, which
reaches the Greeter through its own sidecar (h2c on TARGET, host:port).

Usage: greeter_client.py TARGET STUBS_DIR
Prints one line per call: a unary call with its reply and trailing metadata, a server stream,
a call with a 2 s deadline (the reply tells the time the Greeter was given), and a call to a
method no route serves (Ferry answers it as a gRPC status itself). Exits 1 if a call does not
end as shown.
"""

import sys

import grpc

sys.path.insert(0, sys.argv[2])
import greeter_pb2  # noqa: E402
import greeter_pb2_grpc  # noqa: E402


def main():
    ok = True
    with grpc.insecure_channel(sys.argv[1], options=[("grpc.enable_retries", 0)]) as channel:
        stub = greeter_pb2_grpc.GreeterStub(channel)
        reply, call = stub.SayHello.with_call(greeter_pb2.HelloRequest(name="frontend"),
                                              timeout=10)
        trailers = dict(call.trailing_metadata())
        print(f"unary SayHello: {call.code().name}, \"{reply.message}\", "
              f"trailers x-served-by={trailers.get('x-served-by')}")
        ok &= call.code() == grpc.StatusCode.OK and trailers.get("x-served-by") == "greeter"

        stream = stub.StreamHellos(greeter_pb2.HelloRequest(name="frontend", count=3), timeout=10)
        messages = [r.message for r in stream]
        print(f"server stream StreamHellos: {stream.code().name}, {len(messages)} replies: "
              + ", ".join(f'"{m}"' for m in messages))
        ok &= stream.code() == grpc.StatusCode.OK and len(messages) == 3

        reply = stub.SayHello(greeter_pb2.HelloRequest(name="deadline"), timeout=2)
        print(f"with a 2 s deadline: the Greeter was given {reply.time_remaining_ms} ms "
              "(the caller's deadline, carried through both sidecars as grpc-timeout)")
        # The Greeter measures the time left on its own clock: a few ms either way.
        ok &= 0 < reply.time_remaining_ms <= 2100

        health = channel.unary_unary("/grpc.health.v1.Health/Watch")  # no route serves it
        try:
            health(b"", timeout=10)
            print("a method no route serves: answered (unexpected)")
            ok = False
        except grpc.RpcError as e:
            print(f"a method no route serves: {e.code().name} \"{e.details()}\" (from the sidecar)")
            ok &= e.code() == grpc.StatusCode.UNIMPLEMENTED
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
