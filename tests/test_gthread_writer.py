"""Responses the gthread worker hands to its writer thread (bodies returned as a list).

With a core to spare (fewer workers than cores) an app thread that finishes a response in
memory leaves the send to a writer thread and goes on to the next request. These tests
check what a client could notice: an answer given before the request body was sent still
arrives at once, and a client that never reads its responses neither holds up the others
nor keeps its connection past `timeout` (that one only on ferrocorn).
"""

from __future__ import annotations

import socket
import time

import pytest

from conftest import raw_request, wait_until
from netstate import TCP_ESTABLISHED, tcp_sockets

pytestmark = pytest.mark.timeout(60)

APP = "gthread_app:app"


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response head: %r" % data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise AssertionError("no Content-Length in %r" % head)


def test_answer_before_the_body_arrives_is_not_held_back(serve):
    # The app answers without reading a 1.2 MB body (larger than the worker gathers before
    # calling it). The client waits for that answer before sending the rest, as a client
    # using Expect-like logic would: the answer must not wait for the body. (What happens
    # to the connection afterwards is not checked: Gunicorn and ferrocorn both close it.)
    server = serve("-k", "gthread", "-w", "1", "--threads", "2", APP)
    total = 1_200_000
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        sock.sendall(b"a" * 300_000)
        sock.settimeout(3)
        start = time.monotonic()
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert time.monotonic() - start < 3
        while len(rest) < content_length(head):
            rest += sock.recv(65536)
        assert b'"path": "/early"' in rest


@pytest.mark.ferrocorn_only
def test_client_that_never_reads_neither_blocks_others_nor_outlives_the_timeout(serve):
    # Gunicorn 27.0.1 keeps writing to such a client for as long as it stays connected
    # (its gthread sockets have no send timeout); ferrocorn gives up after --timeout.
    server = serve("-k", "gthread", "-w", "1", "--threads", "2", "--timeout", "3", APP)
    size, count = 100_000, 200
    with socket.create_connection(server.address, timeout=10) as greedy:
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        greedy.sendall(b"GET /big?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % size * count)
        greedy_port = greedy.getsockname()[1]

        def server_end():
            """The server's end of the greedy connection, or None once it is closed."""
            ends = [s for s in tcp_sockets(server.port) if s["remote_port"] == greedy_port]
            return ends[0] if ends else None

        # The server is stuck writing to the greedy client: its send queue holds data the
        # client does not take.
        wait_until(lambda: (server_end() or {}).get("tx_queue", 0) > 0, timeout=10,
                   what="the server's writes to the greedy client to back up")
        for i in range(5):
            start = time.monotonic()
            raw = raw_request(server.address, b"GET /small%d HTTP/1.1\r\nHost: x\r\n"
                              b"Connection: close\r\n\r\n" % i, timeout=10)
            assert raw.startswith(b"HTTP/1.1 200 OK"), raw[:200]
            assert time.monotonic() - start < 1.5, "request %d took too long" % i
        # Past --timeout without reading, the server gives up on this client: it closes
        # (or resets) its end of the connection.
        wait_until(lambda: (server_end() or {}).get("state") != TCP_ESTABLISHED, timeout=15,
                   what="the server to give up on the greedy client")
        received = 0
        greedy.settimeout(10)
        try:
            while True:
                chunk = greedy.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < size * count, "every response arrived: the server never gave up"


def test_bad_request_pipelined_after_a_written_response_is_answered_at_once(serve):
    # The writer hands the connection back, the table finds an unparseable request in what
    # followed, and the leader (asleep in epoll) must be woken to answer it with a 400.
    server = serve("-k", "gthread", "-w", "1", "--threads", "2", APP)
    start = time.monotonic()
    for _ in range(10):
        with socket.create_connection(server.address, timeout=10) as sock:
            sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\nNOT-HTTP\r\n\r\n")
            data = b""
            while data.count(b"HTTP/1.1 ") < 2:
                chunk = sock.recv(65536)
                assert chunk, "closed early: %r" % data
                data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        assert b"HTTP/1.1 400" in data, data[-300:]
    # Ten exchanges take milliseconds; waiting for the leader's 250 ms housekeeping tick
    # instead would take over a second.
    assert time.monotonic() - start < 0.8
