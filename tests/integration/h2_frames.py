"""Hand-built HTTP/2 frames (RFC 9113) for tests that need shapes no well-behaved client sends:
smuggling fields, floods, and a drain watched frame by frame. HPACK is the minimum: requests use
literal fields without indexing (no Huffman); responses are decoded only as far as :status."""

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PROTOCOL_ERROR, CANCEL = 0x1, 0x8


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream & 0x7FFFFFFF) + payload


def _integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack(fields) -> bytes:
    """Literal header fields without indexing, new names, no Huffman (RFC 7541 6.2.2)."""
    out = bytearray()
    for name, value in fields:
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        out += b"\x00" + _integer(len(name), 7) + name + _integer(len(value), 7) + value
    return bytes(out)


def request_fields(path="/", method="GET", authority="localhost", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path),
            (":authority", authority), *extra]


class Conn:
    """A raw HTTP/2 client connection: sends frames, reads them back one by one."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.closed = False

    def start(self, settings: bytes = b""):
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read_frame(self, timeout: float = 5.0):
        """(type, flags, stream, payload), or None when the server closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                length = int.from_bytes(self.buf[0:3], "big")
                if len(self.buf) >= 9 + length:
                    kind, flags = self.buf[3], self.buf[4]
                    stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                    payload = bytes(self.buf[9:9 + length])
                    del self.buf[:9 + length]
                    if kind == SETTINGS and not flags & ACK:
                        self.send(frame(SETTINGS, ACK, 0))
                    return kind, flags, stream, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None
            self.buf += chunk

    def frames_until(self, predicate, timeout: float = 5.0):
        """Reads frames until predicate(frame) holds or the connection closes; all read."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.05, deadline - time.monotonic()))
            if f is None:
                return seen
            seen.append(f)
            if predicate(f):
                return seen

    def close(self):
        self.sock.close()


def status_of(headers_payload: bytes, flags: int) -> int:
    """The :status of a response HEADERS payload (its first field, as nghttp2 encodes it)."""
    p = headers_payload
    if flags & 0x8:  # PADDED
        p = p[1:len(p) - headers_payload[0]]
    if flags & 0x20:  # PRIORITY
        p = p[5:]
    first = p[0]
    static = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}
    if first & 0x80:
        return static[first & 0x7F]
    # A literal whose name is a static :status entry (index 8..14), value a plain string.
    if first & 0x40:
        index, rest = first & 0x3F, p[1:]
    else:
        index, rest = first & 0x0F, p[1:]
    assert 8 <= index <= 14, f"first field is not :status: {p[:8].hex()}"
    length = rest[0] & 0x7F
    assert not rest[0] & 0x80, "huffman-coded :status"
    return int(rest[1:1 + length])
