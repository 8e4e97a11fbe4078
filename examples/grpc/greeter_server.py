"""The example Greeter (greeter.proto) on grpcio, as an upstream for Ferry's tests.

Usage: greeter_server.py PORT STUBS_DIR [NOT_SERVING_FILE]  (STUBS_DIR holds the greeter_pb2*
and health_pb2* modules protoc made). Listens on 127.0.0.1:PORT (h2c) and prints "listening"
once it does. Every call gets the trailing metadata `x-served-by: greeter` (and unary calls
`x-name: <name>`), so a test can see trailers arrive intact. grpc.health.v1's Check answers
SERVING for "" and "ferry.example.Greeter" (NOT_SERVING while NOT_SERVING_FILE exists),
NOT_FOUND for any other service.
"""

import os
import sys
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, sys.argv[2])
import greeter_pb2  # noqa: E402
import greeter_pb2_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402


def _remaining_ms(context):
    left = context.time_remaining()
    return -1 if left is None or left > 10**8 else int(left * 1000)


class Greeter(greeter_pb2_grpc.GreeterServicer):
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}

    def SayHello(self, request, context):
        with self.lock:
            calls = self.calls[request.name] = self.calls.get(request.name, 0) + 1
        if request.sleep_ms:
            time.sleep(request.sleep_ms / 1000)
        context.set_trailing_metadata((("x-served-by", "greeter"), ("x-name", request.name)))
        if request.fail_code and (request.fail_times == 0 or calls <= request.fail_times):
            context.abort(_code(request.fail_code), f"failed {request.name} ü%")
        return greeter_pb2.HelloReply(message=f"hello {request.name}", payload=request.payload,
                                      payload_bytes=len(request.payload),
                                      time_remaining_ms=_remaining_ms(context), calls=calls)

    def StreamHellos(self, request, context):
        context.set_trailing_metadata((("x-served-by", "greeter"),))
        for i in range(request.count):
            yield greeter_pb2.HelloReply(message=f"hello {request.name} {i}",
                                         payload=request.payload)

    def CollectHellos(self, request_iterator, context):
        context.set_trailing_metadata((("x-served-by", "greeter"),))
        names, total = [], 0
        for r in request_iterator:
            names.append(r.name)
            total += len(r.payload)
        return greeter_pb2.HelloReply(message="hello " + ",".join(names), payload_bytes=total)

    def Chat(self, request_iterator, context):
        context.set_trailing_metadata((("x-served-by", "greeter"),))
        for r in request_iterator:
            payload = b"z" * r.reply_bytes if r.reply_bytes else r.payload
            yield greeter_pb2.HelloReply(message=f"hi {r.name}", payload=payload)


class Health(health_pb2_grpc.HealthServicer):
    def __init__(self, not_serving_file):
        self.not_serving_file = not_serving_file

    def Check(self, request, context):
        if request.service not in ("", "ferry.example.Greeter"):
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service}")
        down = self.not_serving_file and os.path.exists(self.not_serving_file)
        status = health_pb2.HealthCheckResponse.NOT_SERVING if down else \
            health_pb2.HealthCheckResponse.SERVING
        return health_pb2.HealthCheckResponse(status=status)


def _code(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN


def main():
    port = int(sys.argv[1])
    options = [("grpc.max_receive_message_length", 64 << 20),
               ("grpc.max_send_message_length", 64 << 20)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    not_serving_file = sys.argv[3] if len(sys.argv) > 3 else None
    health_pb2_grpc.add_HealthServicer_to_server(Health(not_serving_file), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("listening", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
