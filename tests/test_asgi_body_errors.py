"""ASGI request bodies that go wrong after the request reached the app: a malformed chunk
gets Gunicorn's 400, and a body that stops arriving lets the app answer (it hears
http.disconnect after `timeout`), then the connection closes. Both found by the server
fuzzer (fuzz/server_fuzz.py --worker asgi)."""

import json
import socket
import time

from asgi_support import start

HEAD = b"POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def read_all(sock, timeout=15.0):
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise AssertionError("no close within %.0f s; got %r" % (timeout, data))
        if not chunk:
            return data
        data += chunk


def test_a_bad_chunk_after_the_request_reached_the_app_gets_400(serve, tmp_path):
    server = start(serve, tmp_path)
    with socket.create_connection(server.address) as sock:
        # Chunked requests go to the app as soon as the head is in: the bad terminator
        # arrives while the app is reading the body.
        sock.sendall(HEAD + b"5\r\nhel")
        sock.sendall(b"loXX")
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert b"\r\nConnection: close\r\n" in reply


def test_a_body_that_stops_arriving_lets_the_app_answer(serve, tmp_path):
    server = start(serve, tmp_path, "--timeout", "2")
    with socket.create_connection(server.address) as sock:
        sock.sendall(HEAD + b"5\r\nhello\r\n")
        started = time.monotonic()
        reply = read_all(sock)
    assert time.monotonic() - started >= 1.5
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), reply
    # The app's own answer: it read "hello", then heard the disconnect.
    if b"chunked" in head.lower():
        size, _, rest = body.partition(b"\r\n")
        body = rest[: int(size, 16)]
    result = json.loads(body)
    assert result["total"] == 5
    assert result["messages"][-1][0] == "http.disconnect"
