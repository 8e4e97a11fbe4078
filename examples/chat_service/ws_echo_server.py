"""A WebSocket echo service (python3-websockets), run as its own process: the upstream of the
demo's WebSocket step and of tests/integration/test_websocket.py.

    ws_echo_server.py          -> prints "listening on 127.0.0.1:PORT", serves until killed

Every message comes back as it came (text as text, bytes as bytes), except the text "ping-me":
the server then pings the client and answers "pong-received" once the pong came back. A GET
that is not an upgrade gets 200 "plain". It logs what a test checks: "request PATH" for every
request it saw, "closed CODE REASON" when a client closed.
"""
import asyncio
import http
import sys

import websockets
import websockets.legacy.server


def log(line: str) -> None:
    print(line, flush=True)


async def process_request(path, headers):
    log(f"request {path}")
    if headers.get("Upgrade", "").lower() != "websocket":
        return http.HTTPStatus.OK, {"Content-Type": "text/plain"}, b"plain"
    return None


async def handler(ws, path=None):
    try:
        async for message in ws:
            if message == "ping-me":
                waiter = await ws.ping()
                await waiter
                await ws.send("pong-received")
            else:
                await ws.send(message)
    finally:
        log(f"closed {ws.close_code} {ws.close_reason}")


async def main():
    async with websockets.legacy.server.serve(handler, "127.0.0.1", 0,
                                              process_request=process_request,
                                              ping_interval=None, max_size=4 * 1024 * 1024,
                                              compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        log(f"listening on 127.0.0.1:{port}")
        await asyncio.Future()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
