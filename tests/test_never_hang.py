"""Bytes that can never become a valid request are answered at once, not after a timeout.

Each case sends a prefix that no continuation can make valid, keeps the write side
open and sends nothing more, then expects the error status (and the close that
follows an error response) within ``ANSWER_WITHIN`` seconds. The server runs with
``--timeout 30``, so a server that waits for more input instead of judging what it has
would be obvious. Gunicorn 27.0.1 itself waits for the end of the header block (or
for the body) before judging some of these; those cases are ``ferrocorn_only``.

The last tests pin Gunicorn's sync-worker semantics for pipelined requests: exactly
one response, marked ``Connection: close``, and then the server closes, without the
client having to shut its side.
"""

from __future__ import annotations

import socket
import time

import pytest

from conftest import RawResponse, read_until_eof

# Generous for a loaded two-core machine, yet far from the 30 s worker timeout a
# server waiting for more input would run into.
ANSWER_WITHIN = 1.5

SERVER_ARGS = ("-k", "sync", "-w", "1", "--timeout", "30", "echo:app")


def read_until_closed(address, data: bytes, within: float):
    """Send `data` with the write side left open; read until EOF or `within` seconds.

    Returns (bytes received, seconds until the status line arrived or None, closed?).
    """
    with socket.create_connection(address, timeout=5.0) as sock:
        sock.sendall(data)
        start = time.monotonic()
        received, first_line_at, closed = b"", None, False
        while True:
            left = start + within - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
            if first_line_at is None and b"\r\n" in received:
                first_line_at = time.monotonic() - start
    return received, first_line_at, closed


def assert_answered_at_once(server, data: bytes, status: int):
    received, first_line_at, closed = read_until_closed(server.address, data, ANSWER_WITHIN)
    assert first_line_at is not None, (
        "no status line within %ss (got %r); the server is waiting for input that can "
        "never make this request valid" % (ANSWER_WITHIN, received)
    )
    response = RawResponse(received)
    assert response.status == status, response.status_line
    assert response.header("connection") == "close"
    assert closed, "the connection stayed open after the error response"


HEADERS_UNTERMINATED = b"GET / HTTP/1.1\r\nHost: a\r\n"

CASES = [
    # (id, bytes sent, status, gunicorn 27.0.1 also answers at once)
    ("bare-lf-request-line", b"GET / HTTP/1.1\nHost: a\n", 400, True),
    ("bare-lf-in-header", b"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n", 400, True),
    ("control-byte-in-header-value", HEADERS_UNTERMINATED + b"X-Value: plain\x07injected\r\n", 400,
     False),
    ("nul-in-target", b"GET /\x00 HTTP/1.1\r\n", 400, True),
    # Headers complete, body missing: no client can send 10**40 bytes.
    ("content-length-digit-run",
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n", 400, False),
    ("invalid-chunk-size",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, True),
    # Default limit_request_line is 4094; no CRLF has arrived yet.
    ("request-line-over-limit", b"GET /" + b"a" * 8200, 414, True),
    # Default limit_request_fields is 100; the blank line ending the headers never comes.
    ("too-many-headers",
     HEADERS_UNTERMINATED + b"".join(b"X-H%d: v\r\n" % i for i in range(150)), 431, False),
]


@pytest.mark.parametrize(
    "data, status",
    [
        pytest.param(data, status, id=name,
                     marks=() if gunicorn_too else (pytest.mark.ferrocorn_only,))
        for name, data, status, gunicorn_too in CASES
    ],
)
def test_hopeless_input_is_answered_at_once(serve, data, status):
    server = serve(*SERVER_ARGS)
    assert_answered_at_once(server, data, status)


PIPELINES = [
    pytest.param(
        b"POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nfirst"
        b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nsecond",
        id="http11",
    ),
    pytest.param(
        b"POST /one HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nfirst"
        b"POST /two HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 6\r\n\r\nsecond",
        id="http10-keep-alive",
    ),
    pytest.param(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n" * 3,
        id="http11-three-gets",
    ),
]


@pytest.mark.parametrize("data", PIPELINES)
def test_sync_worker_answers_one_pipelined_request_then_closes(serve, data):
    server = serve(*SERVER_ARGS)
    received, first_line_at, closed = read_until_closed(server.address, data, ANSWER_WITHIN)
    assert closed, "the sync worker kept the connection open: %r" % received
    response = RawResponse(received)
    assert response.status == 200, response.status_line
    assert response.header("connection") == "close"
    # Exactly one response: its declared length accounts for every byte after the head.
    assert len(response.raw_body) == int(response.header("content-length"))
    expected_body = b"first" if b"first" in data else b""
    assert response.body == expected_body
    assert received.startswith(b"HTTP/1.") and b"\r\nHTTP/1." not in received


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("data", [
    pytest.param(b"GET /half HTTP/1.1\r\nHost: a\r\nX-Half: ", id="half-a-head"),
    pytest.param(b"GET /whole HTTP/1.1\r\nHost: a\r\n\r\n", id="whole-then-silent"),
    pytest.param(b"POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
                 id="body-stalls"),
])
def test_sync_worker_waiting_on_a_client_is_not_taken_for_a_hung_worker(serve, data):
    """The sync worker waits `--timeout` for a head and lingers after a response; a client
    that then keeps its socket open must not get the worker aborted by the master, whose limit
    is that same `--timeout` (found by ``make fuzz-server``: WORKER TIMEOUT under load).
    Gunicorn's sync worker blocks in the read and is aborted."""
    server = serve("-k", "sync", "-w", "1", "--timeout", "1", "echo:app")
    server.wait_for_log(r"Booting worker with pid: \d+")
    with socket.create_connection(server.address, timeout=15) as sock:
        sock.sendall(data)
        received = read_until_eof(sock, 15)
        # The client stays connected, silent, for longer than the worker's linger (2 s) and
        # its timeout: long enough for the master to abort a worker that stopped beating.
        with pytest.raises(AssertionError):
            server.wait_for_log(r"WORKER TIMEOUT", timeout=3.5)
    if b"whole" in data:
        assert RawResponse(received).status == 200
    elif b"body" in data:
        # The app's read fails with a timeout it can recognise; the answer is a 500.
        assert RawResponse(received).status == 500
        server.wait_for_log(r"TimeoutError: timed out waiting for the request body")
    else:
        assert received == b""
    # The same worker serves the next client; it was never aborted or replaced.
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        assert RawResponse(read_until_eof(sock, 15)).status == 200
    log = server.stderr_text()
    assert "WORKER TIMEOUT" not in log, log
    assert log.count("Booting worker") == 1, log

