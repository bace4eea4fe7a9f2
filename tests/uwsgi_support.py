"""The uWSGI protocol from the proxy's side, for the tests: a packet builder, the vars nginx's
stock `uwsgi_params` send for a request, and a client over raw sockets.

A packet is a 4-byte header (modifier1, the vars block's size as u16 little-endian,
modifier2), the vars block (`u16le keylen, key, u16le vallen, val` each) and the body.
"""

from __future__ import annotations

import socket
import struct
import time
from urllib.parse import unquote_to_bytes

from conftest import RawResponse


def _bytes(text) -> bytes:
    return text if isinstance(text, bytes) else text.encode("latin-1")


def vars_block(pairs) -> bytes:
    out = bytearray()
    for key, value in pairs:
        for item in (_bytes(key), _bytes(value)):
            out += struct.pack("<H", len(item)) + item
    return bytes(out)


def packet(pairs, body: bytes = b"", modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A whole request packet: header, vars (pairs of str or bytes), body."""
    block = vars_block(pairs)
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block + body


def nginx_vars(method: str = "GET", uri: str = "/", *, headers=(), body: bytes = b"",
               content_type: str = "", https: bool = False,
               remote=("127.0.0.1", "50000"), server=("localhost", "80"),
               protocol: str = "HTTP/1.1", host: str | None = None, extra=()) -> list:
    """The vars nginx sends with `include uwsgi_params;` for a request to `uri`: PATH_INFO is
    `$document_uri`, the path nginx percent-decoded; CONTENT_LENGTH and CONTENT_TYPE are
    empty when the request has none; then HTTP_HOST (`host`, else the server name) and one
    HTTP_* var per request header."""
    path, _, query = uri.partition("?")
    pairs = [
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", content_type),
        ("CONTENT_LENGTH", str(len(body)) if body else ""),
        ("REQUEST_URI", uri),
        ("PATH_INFO", unquote_to_bytes(path)),
        ("DOCUMENT_ROOT", "/srv/www"),
        ("SERVER_PROTOCOL", protocol),
        ("REQUEST_SCHEME", "https" if https else "http"),
        ("HTTPS", "on" if https else ""),
        ("REMOTE_ADDR", remote[0]),
        ("REMOTE_PORT", remote[1]),
        ("SERVER_PORT", server[1]),
        ("SERVER_NAME", server[0]),
        ("HTTP_HOST", server[0] if host is None else host),
    ]
    for name, value in headers:
        pairs.append(("HTTP_" + name.upper().replace("-", "_"), value))
    pairs.extend(extra)
    return pairs


def request_packet(method: str = "GET", uri: str = "/", body: bytes = b"", **kw) -> bytes:
    return packet(nginx_vars(method, uri, body=body, **kw), body)


def connect(address, timeout: float) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    return socket.create_connection(address, timeout=timeout)


def _complete(data: bytes):
    """The length of the whole response in `data` when its head gives a Content-Length."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value.strip())
    return None


def exchange(address, data, timeout: float = 15.0, pause: float = 0.0,
             wait_close: bool = False) -> RawResponse:
    """Send `data` (bytes, or pieces `pause` seconds apart), keep our side open, and read
    the response: until its Content-Length is complete, else until the server closes. The
    result's `closed` says whether the server closed the connection after it (a response
    with a Content-Length: only looked for, for up to 2 s, with `wait_close`; else False),
    `elapsed` how long the answer took."""
    pieces = data if isinstance(data, list) else [data]
    started = time.monotonic()
    with connect(address, timeout) as sock:
        for i, piece in enumerate(pieces):
            if i and pause:
                time.sleep(pause)
            sock.sendall(piece)
        received = b""
        closed = False
        while True:
            want = _complete(received)
            if want is not None and len(received) >= want:
                break
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            received += chunk
        elapsed = time.monotonic() - started
        if not closed and wait_close:
            sock.settimeout(2.0)
            try:
                closed = sock.recv(1) == b""
            except (socket.timeout, ConnectionResetError):
                closed = False
    response = RawResponse(received)
    response.closed = closed
    response.elapsed = elapsed
    return response


def get(address, uri: str = "/", timeout: float = 15.0, wait_close: bool = False,
        **kw) -> RawResponse:
    return exchange(address, request_packet("GET", uri, **kw), timeout=timeout,
                    wait_close=wait_close)
