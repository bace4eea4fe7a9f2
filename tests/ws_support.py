"""Frame-level WebSocket helpers for the ASGI worker tests.

A high-level client refuses to send broken frames and hides the handshake bytes, so
the protocol-error and handshake tests talk RFC 6455 by hand: `RawWebSocket` does the
opening handshake over a plain socket, writes client frames (masked unless told not to)
and reads server frames.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import struct
import time
from pathlib import Path

from conftest import RawResponse, wait_until

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_url(server, path: str = "/echo") -> str:
    host, port = server.address
    return "ws://%s:%d%s" % (host, port, path)


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def handshake_request(path: str, key: str | None, version: str = "13",
                      extra: list | None = None) -> bytes:
    lines = [
        "GET %s HTTP/1.1" % path,
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
    ]
    if key is not None:
        lines.append("Sec-WebSocket-Key: %s" % key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: %s" % version)
    for name, value in extra or []:
        lines.append("%s: %s" % (name, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def build_frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True,
                rsv1: bool = False, rsv2: bool = False, rsv3: bool = False) -> bytes:
    """One client frame, masked with a random key unless `mask` is False."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    first |= (0x10 if rsv3 else 0) | (opcode & 0x0F)
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = bytes([first, mask_bit | length])
    elif length < 65536:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int | None = None, reason: str = "") -> bytes:
    if code is None:
        return b""
    return struct.pack("!H", code) + reason.encode("utf-8")


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")

    def __repr__(self):
        return "Frame(fin=%s, rsv=%s, opcode=%#x, masked=%s, payload=%r)" % (
            self.fin, self.rsv, self.opcode, self.masked, self.payload[:80])


def parse_head(head: bytes) -> RawResponse:
    """A RawResponse of a response head alone (a chunked body is not read yet)."""
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        response = RawResponse(head + b"0\r\n\r\n")
        response.raw_body = response.body = b""
        response.chunk_sizes = None
        return response
    return RawResponse(head)


class RawWebSocket:
    """A hand-driven client connection: handshake, frames out, frames in."""

    def __init__(self, address, timeout: float = 10.0):
        self.sock = socket.create_connection(address, timeout=timeout)
        self.buffer = b""
        self.response = None

    # -- context manager -------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- bytes -------------------------------------------------------------------
    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; False on EOF."""
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("wanted %d bytes, have %r" % (n, self.buffer[:200]))
            if not self._fill(deadline):
                raise EOFError("connection closed with %r unread" % self.buffer[:200])
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, data: bytes):
        self.sock.sendall(data)

    # -- handshake ---------------------------------------------------------------
    def handshake(self, path: str = "/echo", key: str | None = None, version: str = "13",
                  extra: list | None = None, timeout: float = 10.0) -> RawResponse:
        """Send an opening handshake and read the response head (and a body framed by
        Content-Length). Returns the response; `.key` is the key sent."""
        self.key = key if key is not None else new_key()
        self.send(handshake_request(path, self.key, version, extra))
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no response head; got %r" % self.buffer)
            if not self._fill(deadline):
                break
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("connection closed before a response head: %r" % self.buffer)
        self.buffer = rest
        self.head = head + sep
        response = parse_head(self.head)
        length = response.header("content-length")
        if response.status != 101 and length is not None:
            response.raw_body = response.body = self._take(int(length), deadline)
        self.response = response
        return response

    def open(self, path: str = "/echo", extra: list | None = None) -> RawResponse:
        """A handshake that must succeed."""
        response = self.handshake(path, extra=extra)
        assert response.status == 101, self.head
        assert response.header("sec-websocket-accept") == accept_for(self.key), self.head
        return response

    # -- frames ------------------------------------------------------------------
    def send_frame(self, opcode: int, payload: bytes = b"", **kw):
        self.send(build_frame(opcode, payload, **kw))

    def send_text(self, text: str):
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_close(self, code: int | None = 1000, reason: str = ""):
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def read_frame(self, timeout: float = 10.0) -> Frame:
        deadline = time.monotonic() + timeout
        first, second = self._take(2, deadline)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2, deadline))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8, deadline))[0]
        masked = bool(second & 0x80)
        key = self._take(4, deadline) if masked else b""
        payload = self._take(length, deadline)
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return Frame(bool(first & 0x80), (first >> 4) & 0x7, first & 0x0F, masked, payload)

    def read_message(self, timeout: float = 10.0) -> Frame:
        """The next data or close frame, skipping pings and pongs."""
        while True:
            frame = self.read_frame(timeout)
            if frame.opcode not in (OP_PING, OP_PONG):
                return frame

    def expect_close(self, timeout: float = 10.0) -> Frame:
        """Read up to the server's close frame (data frames before it are skipped) and
        return it."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(0.01, deadline - time.monotonic()))
            if frame.opcode == OP_CLOSE:
                return frame

    def wait_eof(self, timeout: float = 10.0) -> bytes:
        """Wait until the server closes the TCP connection; return whatever came first."""
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("server kept the connection open; unread %r" % self.buffer[:200])
            try:
                if not self._fill(deadline):
                    return self.buffer
            except socket.timeout:
                continue


def handshake_only(address, path: str = "/echo", **kw) -> tuple[RawResponse, bytes]:
    """A handshake on a fresh connection: the response, and every byte after the head
    until the server closes the connection."""
    with RawWebSocket(address) as ws:
        response = ws.handshake(path, **kw)
        rest = ws.wait_eof()
        return response, rest


# ---------------------------------------------------------------------------
# The app's event log (ASGI_WS_LOG / LIFESPAN_LOG): one JSON object per line.


def read_events(path: Path) -> list:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_event(log: Path, timeout: float = 10.0, **match) -> dict:
    """Wait until an event with all the `match` items is in the log; return it."""
    def found():
        for event in read_events(log):
            if all(event.get(k) == v for k, v in match.items()):
                return event
        return None

    return wait_until(found, timeout=timeout, what="app event %r in %s" % (match, log))
