"""`wsgi.input`: read(), read(n), readline(), readline(n), readlines(hint) and iteration, with
bodies framed by Content-Length or chunked and arriving all at once or in trickles; and when
`100 Continue` goes out.

The expected results come from `io.BytesIO` holding the whole body: Gunicorn 27's `Body` gives
exactly its size semantics (checked by running this file against Gunicorn 27.0.1), except that
it ignores the hint of `readlines(hint)`, which PEP 3333 allows a server to do. A server may
honour the hint or not; either answer is accepted, and nothing else.
"""

from __future__ import annotations

import io
import json
import random
import socket
import time

import pytest

from conftest import RawResponse, raw_request

TEXT = (
    b"first line\n"
    b"\n"
    b"crlf line\r\n"
    b"a" * 3000 + b"\n"  # longer than Gunicorn's 1 KiB readline step
    b"tab\tand \xe9\xff bytes\n"
    b"short\n"
    b"x\n"
    b"no newline at the end"
)


def _big_body() -> bytes:
    rng = random.Random(3333)
    lines = []
    total = 0
    while total < 300_000:
        line = bytes(rng.choice(range(256)) for _ in range(rng.randint(0, 5000))).replace(
            b"\n", b"."
        ) + b"\n"
        lines.append(line)
        total += len(line)
    return b"".join(lines) + b"tail without newline"


BIG = _big_body()

SCRIPTS = {
    "read": "read",
    "read-None": "read:None",
    "read-negative": "read:-1",
    "read-sizes": "read:0,read:1,read:7,read:1000,read:5000,read:100000,read",
    "readline-repeated": ",".join(["readline"] * 9) + ",read",
    "readline-sizes": "readline:0,readline:1,readline:5,readline:2000,readline:-1,"
                      "readline:None,readline:3,readline:2000,read",
    "readlines": "readlines",
    "readlines-hint": "read:3,readlines:10,read",
    "readlines-hint-zero": "readlines:0",
    "iter": "iter",
    "next-and-iter": "next,next,read:10,iter,next",
    "mixed": "readline,read:10,readline:4,iter",
    "wrong-type": "read:str,readline:str,read",
    "past-the-end": "read,read,read:5,readline,readlines,iter,next",
}

BIG_SCRIPTS = {
    "read-64k-steps": ",".join(["read:65536"] * 6) + ",read",
    "iter": "iter",
    "readline-sizes": ",".join(["readline:700", "readline", "read:4097"] * 20) + ",read",
}


def model(body: bytes, script: str, honour_hint: bool):
    """What `wsgi.input` must answer for `script`, computed on a BytesIO of the body."""
    stream = io.BytesIO(body)
    results = []
    for op in script.split(","):
        name, _, arg = op.partition(":")
        if arg == "str":
            results.append({"error": "TypeError"})
            continue
        args = () if not arg else ((None if arg == "None" else int(arg)),)
        if name == "iter":
            results.append([line.decode("latin-1") for line in stream])
        elif name == "next":
            line = stream.readline()
            results.append(line.decode("latin-1") if line else None)
        elif name == "readlines":
            lines = stream.readlines(*args) if honour_hint else stream.readlines()
            results.append([line.decode("latin-1") for line in lines])
        else:
            results.append(getattr(stream, name)(*args).decode("latin-1"))
    return results


def _request_pieces(body: bytes, script: str, framing: str) -> list:
    head = "POST /?ops=%s HTTP/1.1\r\nHost: x\r\n" % script
    if framing == "chunked":
        rng = random.Random(len(body))
        chunks, pos = [], 0
        while pos < len(body):
            size = rng.randint(1, 9000)
            piece = body[pos:pos + size]
            chunks.append(b"%x\r\n%s\r\n" % (len(piece), piece))
            pos += size
        data = b"".join(chunks) + b"0\r\n\r\n"
        head += "Transfer-Encoding: chunked\r\n\r\n"
    else:
        data = body
        head += "Content-Length: %d\r\n\r\n" % len(body)
    if framing == "length-at-once":
        return [head.encode() + data]
    # Odd-sized pieces sent apart, so reads must block for bytes still on the way.
    step = max(1, len(data) // 12) + 7
    return [head.encode()] + [data[i:i + step] for i in range(0, len(data), step)]


def _run_script(server, body, script, framing):
    raw = raw_request(server.address, _request_pieces(body, script, framing), timeout=20,
                      pause=0.01)
    resp = RawResponse(raw)
    assert resp.status == 200, raw[:600]
    return json.loads(resp.body)


def _check(live, body, name, script):
    honoured, ignored = model(body, script, True), model(body, script, False)
    assert live in (honoured, ignored), (
        "wsgi.input answered %s (%r) differently from BytesIO semantics" % (name, script)
    )


@pytest.fixture
def input_server(serve):
    return serve("wsgi_input:app", ready_path="/?skip=1")


@pytest.mark.parametrize("framing", ["length-at-once", "length-trickle", "chunked"])
def test_small_body_scripts(input_server, framing):
    for name, script in SCRIPTS.items():
        live = _run_script(input_server, TEXT, script, framing)
        _check(live, TEXT, name, script)


@pytest.mark.parametrize("framing", ["length-at-once", "length-trickle", "chunked"])
def test_large_body_scripts(input_server, framing):
    for name, script in BIG_SCRIPTS.items():
        live = _run_script(input_server, BIG, script, framing)
        _check(live, BIG, name, script)


def test_read_n_returns_exactly_n_while_bytes_trickle_in(input_server):
    # Three bytes at a time, 10 ms apart: read(10) must wait for all ten, never return short.
    body = b"0123456789" * 5
    head = b"POST /?ops=read:10,read:10,read:25,read:10 HTTP/1.1\r\nHost: x\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    pieces = [head] + [body[i:i + 3] for i in range(0, len(body), 3)]
    raw = raw_request(input_server.address, pieces, pause=0.01, timeout=20)
    assert json.loads(RawResponse(raw).body) == [
        "0123456789", "0123456789", "0123456789012345678901234", "56789"
    ]


def test_readlines_hint_is_honoured_or_ignored(input_server):
    script = "readlines:12,read"
    live = _run_script(input_server, TEXT, script, "length-at-once")
    lines, rest = live
    # Whole lines only, in order, and together with the rest they are the body.
    assert "".join(lines) + rest == TEXT.decode("latin-1")
    assert all(line.endswith("\n") for line in lines[:-1])
    assert sum(len(line) for line in lines) >= 12


def test_no_body_reads_empty(input_server):
    resp = RawResponse(raw_request(
        input_server.address,
        b"GET /?ops=read,read:5,readline,readlines,iter,next HTTP/1.1\r\nHost: x\r\n\r\n",
    ))
    assert json.loads(resp.body) == ["", "", "", [], [], None]


# ---------------------------------------------------------------------------
# Expect: 100-continue


def _recv_until(sock, marker: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def _read_to_eof(sock, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_expect_continue_is_answered_before_the_body_is_sent(input_server):
    with socket.create_connection(input_server.address, timeout=10) as sock:
        sock.sendall(b"POST /?ops=read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 11\r\n\r\n")
        interim = _recv_until(sock, b"\r\n\r\n", timeout=5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello world")
        resp = RawResponse(_read_to_eof(sock))
    assert resp.status == 200
    assert json.loads(resp.body) == ["hello world"]


def test_expect_continue_with_a_chunked_body(input_server):
    with socket.create_connection(input_server.address, timeout=10) as sock:
        sock.sendall(b"POST /?ops=readline,read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        assert _recv_until(sock, b"\r\n\r\n", timeout=5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"5\r\nab\ncd\r\n0\r\n\r\n")
        resp = RawResponse(_read_to_eof(sock))
    assert json.loads(resp.body) == ["ab\n", "cd"]


def test_http10_expect_gets_no_interim_response(input_server):
    raw = raw_request(input_server.address,
                      b"POST /?ops=read HTTP/1.0\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 3\r\n\r\nabc")
    assert raw.startswith(b"HTTP/1.0 200 OK\r\n")
    assert json.loads(RawResponse(raw).body) == ["abc"]


@pytest.mark.ferrocorn_only
def test_continue_is_sent_on_the_first_read_not_before_the_app_runs(input_server, tmp_path):
    # Gunicorn sends 100 Continue before calling the app (docs/differences.md).
    marker = tmp_path / "app-started"
    with socket.create_connection(input_server.address, timeout=10) as sock:
        sock.sendall(b"POST /?ops=read&marker=%s HTTP/1.1\r\nHost: x\r\n"
                     b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n" % str(marker).encode())
        assert _recv_until(sock, b"\r\n\r\n", timeout=5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        # The app had already started (and created the marker) when the 100 came.
        assert marker.exists()
        sock.sendall(b"data")
        resp = RawResponse(_read_to_eof(sock))
    assert json.loads(resp.body) == ["data"]


def _unread_expect_body(address, length: int) -> RawResponse:
    """POST with `Expect: 100-continue` to an app that never reads the body, sending only
    the head; the whole answer, read to EOF."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"POST /?skip=1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % length)
        return RawResponse(_read_to_eof(sock))


@pytest.mark.ferrocorn_only
def test_app_that_never_reads_sends_no_continue(input_server):
    # The final answer comes without the client ever sending the million bytes.
    resp = _unread_expect_body(input_server.address, 1000000)
    assert resp.status_line == "HTTP/1.1 200 OK"
    assert b"100 Continue" not in resp.raw
    assert json.loads(resp.body) == []
    # The worker is free for the next client.
    raw = raw_request(input_server.address, b"GET /?skip=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.ferrocorn_only
def test_keepalive_app_that_never_reads_gets_no_late_continue(serve):
    """With keep-alive (gthread), a client still waiting for `100 Continue` when the app
    answers is never invited afterwards: the interim response would follow the final one.
    The connection closes instead."""
    server = serve("wsgi_input:app", "-k", "gthread", "--threads", "2", ready_path="/?skip=1")
    resp = _unread_expect_body(server.address, 4)
    assert resp.status_line == "HTTP/1.1 200 OK"
    assert b"100 Continue" not in resp.raw
    assert resp.header("Connection") == "close"


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_a_body_that_stops_coming_raises_timeout_error(serve, worker):
    """A client that stops sending its body makes `wsgi.input.read()` raise TimeoutError
    (an OSError) after --timeout, which the app can catch and answer. Gunicorn's sync worker
    is aborted by the master instead; its gthread worker blocks on."""
    server = serve("wsgi_input:app", "-k", worker, "--timeout", "2", ready_path="/?skip=1")
    # Over 1 MiB, so that gthread hands the request to a thread before the body is in (a
    # smaller body is gathered by the event loop, which closes a connection whose request
    # does not arrive within --timeout, without running the app).
    with socket.create_connection(server.address, timeout=15) as sock:
        sock.sendall(b"POST /?ops=read HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nabc"
                     % (2 << 20))
        resp = RawResponse(_read_to_eof(sock))
    assert resp.status == 200
    assert json.loads(resp.body) == [{"error": "TimeoutError"}]
    assert "WORKER TIMEOUT" not in server.stderr_text()


@pytest.mark.ferrocorn_only
def test_a_trickled_body_holds_a_sync_worker_no_longer_than_timeout(serve):
    """A client sending its body a byte at a time gets --timeout from the head for all of it
    (as the whole request would under Gunicorn before the master killed the worker), and the
    worker, waiting on the client, is never taken for a hung one."""
    server = serve("wsgi_input:app", "-k", "sync", "--timeout", "2", ready_path="/?skip=1")
    with socket.create_connection(server.address, timeout=15) as sock:
        sock.sendall(b"POST /?ops=read HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        start = time.monotonic()
        sock.settimeout(0.4)
        raw = b""
        while not raw and time.monotonic() - start < 15:
            try:
                sock.sendall(b"x")
                raw = sock.recv(65536)
            except socket.timeout:
                continue
        waited = time.monotonic() - start
        sock.settimeout(15)
        resp = RawResponse(raw + _read_to_eof(sock))
    assert json.loads(resp.body) == [{"error": "TimeoutError"}]
    assert 1.5 <= waited <= 6, waited
    assert "WORKER TIMEOUT" not in server.stderr_text()
