#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, sends one GET on each, reads the whole
answer, then holds them all open and idle until SIGTERM (closing them by exiting).

Prints "ready OK FAILED" on stdout once every connection is idle, so the caller can measure the
target's memory. Needs `ulimit -n` above N."""
import signal
import socket
import sys
import time


def read_response(sock: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    ok = lines[0].split(b" ")[1:2] == [b"200"]
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        return False  # the origin answers with Content-Length; anything else is unexpected here
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        body += chunk
    return ok


def main() -> int:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    socks, failed = [], 0
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: idle_conns\r\n\r\n"
    deadline = time.monotonic() + 60
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(request)
            socks.append(s)
        except OSError:
            failed += 1
        if time.monotonic() > deadline:
            break
    held = []
    for s in socks:
        try:
            if read_response(s):
                held.append(s)
                continue
        except OSError:
            pass
        failed += 1
        s.close()
    print(f"ready {len(held)} {failed}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
