"""Regressions from a code review of the ASGI worker (fixed in 3976845): a receive()
cancelled by a timeout swallowed the next message; bytes sent before a WebSocket
handshake was answered were buffered without limit; a WebSocket client leaving before
accept went unnoticed; the body timer ran while the server itself paused the read; an
unanswered `Expect: 100-continue` left the connection open; a client leaving mid-response
was logged as an app error; the app's `Connection: close` was ignored; pathsend of a
directory, a missing path and an empty file."""

import json
import os
import socket
import time

import pytest

from asgi_support import ASGI_ARGS, Client, records, request_bytes, wait_records
from ws_support import (OP_BINARY, OP_CLOSE, OP_TEXT, RawWebSocket, build_frame,
                        handshake_request, new_key)

APP = "asgi_review:app"


def start(serve, tmp_path, *args, **kwargs):
    """`serve` the review app with the ASGI worker, one worker and a marker directory."""
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    server = serve(*(ASGI_ARGS + ["-w", "1"] + list(args) + [APP]),
                   env={"ASGI_REVIEW_MARKERS": str(markers)}, **kwargs)
    server.markers = markers
    return server


def still_serving(server):
    with Client(server.address) as conn:
        resp = conn.request("/", headers=[("Connection", "close")])
    assert resp.status == 200 and resp.body == b"ok", resp.raw[:300]
    return int(resp.header("x-pid"))


def vm_rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


# ---------------------------------------------------------------------------
# 1. A receive() cancelled by a timeout must not take the next message with it.


def test_http_receive_after_a_timed_out_receive_gets_the_body(serve, tmp_path):
    server = start(serve, tmp_path)
    with Client(server.address) as conn:
        # Chunked: the request reaches the app with its head alone.
        conn.send(request_bytes("/timeout-body?record=http-timeout", method="POST",
                                headers=[("Transfer-Encoding", "chunked")]))
        # The app's wait_for(receive(), 0.3) timed out: that receive() future is cancelled,
        # and for a second no other receive() waits. The chunk arrives then; it used to be
        # handed to the cancelled future and lost.
        assert wait_records(server, "http-timeout")[0] == {"event": "timed-out"}
        conn.send(b"5\r\nhello\r\n")
        conn.send(b"0\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 200, resp.raw[:300]
    assert resp.body == b"hello"
    done = wait_records(server, "http-timeout", count=2)[1]
    assert done["event"] == "done"
    assert [m[0] for m in done["messages"]] == ["http.request"] * len(done["messages"]), done
    assert sum(m[1] for m in done["messages"]) == 5, done
    assert done["messages"][-1][2] is False, done


def test_websocket_receive_after_a_timed_out_receive_gets_the_message(serve, tmp_path):
    server = start(serve, tmp_path)
    with RawWebSocket(server.address) as ws:
        ws.open("/ws-timeout?record=ws-timeout")
        # As above: "hello" arrives while only the cancelled receive() was waiting.
        assert wait_records(server, "ws-timeout")[0] == {"event": "timed-out"}
        ws.send_text("hello")
        frame = ws.read_message(timeout=5)
        assert frame.opcode == OP_TEXT, frame
        assert frame.payload == b"hello"
        assert ws.read_message(timeout=5).opcode == OP_CLOSE
    received = wait_records(server, "ws-timeout", count=2)[1]["message"]
    assert received["type"] == "websocket.receive" and received["text"] == "hello", received


# ---------------------------------------------------------------------------
# 2. Bytes sent before the handshake is answered are bounded; TCP holds back the rest.


def test_bytes_before_the_websocket_accept_do_not_grow_the_worker(serve, tmp_path):
    # Before the fix the worker read everything into memory (+16 MiB); now it keeps at
    # most 64 KiB and the client blocks after a few MiB of socket buffers.
    server = start(serve, tmp_path)
    pid = still_serving(server)
    frame = build_frame(OP_BINARY, b"\0" * 65536)  # one masked 64 KiB frame, sent over and over
    before = vm_rss_kib(pid)
    with RawWebSocket(server.address) as ws:
        # The handshake, and at once as many frames as TCP takes (the app waits 2.5 s).
        ws.send(handshake_request("/ws-late-accept?sleep=2.5&record=late", new_key()))
        ws.sock.setblocking(False)
        pushed, view, blocked_since = 0, memoryview(frame), None
        while pushed < 16 << 20:
            try:
                n = ws.sock.send(view)
            except BlockingIOError:
                now = time.monotonic()
                blocked_since = blocked_since or now
                if now - blocked_since >= 0.5:
                    break
                time.sleep(0.01)
                continue
            blocked_since = None
            pushed += n
            view = view[n:] or memoryview(frame)
        grown = vm_rss_kib(pid) - before
        # The app had not accepted yet: the bytes are still waiting for the worker.
        assert records(server, "late") == [], "the app accepted before the measurement"
    assert grown < 8 * 1024, "worker RSS grew by %d KiB after %d bytes before accept" % (
        grown, pushed)
    still_serving(server)


# ---------------------------------------------------------------------------
# 3. A client leaving before the app accepted cancels the app's task.


def test_websocket_client_leaving_before_accept_cancels_the_app(serve, tmp_path):
    server = start(serve, tmp_path, "--asgi-disconnect-grace-period", "1")
    with RawWebSocket(server.address) as ws:
        ws.send(handshake_request("/ws-wait?record=wait", new_key()))
        assert wait_records(server, "wait")[0] == {"event": "waiting"}
    # The client left; the app, sleeping 30 s before accepting, is cancelled after the
    # 1 s grace (it used to sleep on, its connection long gone).
    events = wait_records(server, "wait", count=2, timeout=8)
    assert events[1] == {"event": "cancelled"}, events
    still_serving(server)


# ---------------------------------------------------------------------------
# 4. The body timer does not run while the server itself holds the read back.


def test_body_timer_stops_while_the_app_has_not_read_yet(serve, tmp_path):
    server = start(serve, tmp_path, "--timeout", "2")
    size = 2 << 20
    with Client(server.address, timeout=20) as conn:
        conn.send(request_bytes("/late-read?sleep=3", method="POST",
                                headers=[("Content-Type", "application/octet-stream")],
                                body=os.urandom(size)))
        resp = conn.read_response()
    assert resp.status == 200, resp.raw[:300]
    result = json.loads(resp.body)
    # All of it: the body timer (2 s) did not fire while the worker held the read back
    # for an app that had not read yet (which used to end the body with http.disconnect).
    assert result["total"] == size, result
    assert result["last"][0] == "http.request" and result["last"][2] is False, result


# ---------------------------------------------------------------------------
# 5. An app that answers `Expect: 100-continue` without reading: the client's next
#    request must not be taken for the body.


def test_expect_continue_answered_without_reading_does_not_swallow_the_next_request(
        serve, tmp_path):
    server = start(serve, tmp_path, "--keep-alive", "30")
    with Client(server.address) as conn:
        conn.send(request_bytes("/no-read", method="POST",
                                headers=[("Content-Length", "30"), ("Expect", "100-continue")]))
        resp = conn.read_response()
        assert resp.status == 200 and resp.body == b"not read", resp.raw[:300]
        assert not conn.informational, conn.informational
        # The server closes the connection (Gunicorn 27 at once, without saying so in
        # the response); a server that keeps it open must take what the client sends
        # next as its next request, not as the 30 bytes of body it never sent.
        if not conn.closed_by_server(timeout=2):
            assert resp.header("connection", "").lower() != "close", resp.raw[:300]
            nxt = conn.request("/", headers=[("Connection", "close")])
            assert nxt.status == 200 and nxt.body == b"ok", nxt.raw[:300]


@pytest.mark.ferrocorn_only
def test_expect_continue_answered_without_reading_closes(serve, tmp_path):
    # Gunicorn 27 closes too, but its response does not say `Connection: close`.
    server = start(serve, tmp_path, "--keep-alive", "30")
    with Client(server.address) as conn:
        conn.send(request_bytes("/no-read", method="POST",
                                headers=[("Content-Length", "30"), ("Expect", "100-continue")]))
        resp = conn.read_response()
        assert resp.status == 200, resp.raw[:300]
        assert resp.header("connection") == "close", resp.raw[:300]
        assert conn.closed_by_server(timeout=5)
    still_serving(server)


# ---------------------------------------------------------------------------
# 6. A client leaving mid-response is not an application error.


def test_client_leaving_mid_stream_is_not_logged_as_an_error(serve, tmp_path):
    server = start(serve, tmp_path)
    with socket.create_connection(server.address, timeout=10) as sock:
        # 400 pieces of 16 KiB, 2 ms apart; the client reads 64 KiB of it and leaves (with
        # bytes unread, so the close is a reset).
        sock.sendall(request_bytes("/stream?n=400&size=16384&delay=0.002&record=stream"))
        got = b""
        while len(got) < 64 * 1024:
            chunk = sock.recv(65536)
            assert chunk, "server closed after %d bytes" % len(got)
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 ")
    (end,) = wait_records(server, "stream", timeout=15)
    # The app streamed on (send() is a no-op once the client is gone) and returned.
    assert end["outcome"] == "returned", end
    # The connection's side has handled the app's end by the time the worker answers a
    # request that comes after it.
    still_serving(server)
    errors = [line for line in server.stderr_text().splitlines() if "[ERROR]" in line]
    assert errors == [], errors


# ---------------------------------------------------------------------------
# 7. The app's own `Connection: close` is honoured.


@pytest.mark.ferrocorn_only
def test_app_connection_close_header_closes_the_connection(serve, tmp_path):
    # Gunicorn 27 passes the header on but keeps the connection open (until its
    # keep-alive timeout) and serves another request on it. The keep-alive timeout here
    # is far beyond the wait: the close is the response's, not the idle connection's.
    server = start(serve, tmp_path, "--keep-alive", "30")
    with Client(server.address) as conn:
        resp = conn.request("/conn-close")
        assert resp.status == 200 and resp.body == b"bye", resp.raw[:300]
        assert [v.lower() for v in resp.headers_named("connection")] == ["close"], resp.raw[:300]
        assert conn.closed_by_server(timeout=5)


# ---------------------------------------------------------------------------
# 8. http.response.pathsend: only a regular file; an empty one framed right.


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("which", ["directory", "missing"])
def test_pathsend_of_a_non_file_is_a_500(serve, tmp_path, which):
    server = start(serve, tmp_path, "--keep-alive", "30")
    target = tmp_path if which == "directory" else tmp_path / "no-such-file"
    with Client(server.address) as conn:
        resp = conn.request("/pathsend?path=%s" % target)
        assert resp.status == 500, resp.raw[:300]
        assert resp.header("connection") == "close", resp.raw[:300]
        assert conn.closed_by_server(timeout=5)
    still_serving(server)


@pytest.mark.ferrocorn_only
@pytest.mark.parametrize("te", ["", "1"], ids=["unframed", "app-chunked"])
def test_pathsend_of_an_empty_file(serve, tmp_path, te):
    server = start(serve, tmp_path)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with Client(server.address) as conn:
        resp = conn.request("/pathsend?path=%s&te=%s" % (empty, te))
        assert resp.status == 200, resp.raw[:300]
        assert resp.body == b"", resp.raw
        if te:
            # The app framed it itself: exactly the last chunk, once.
            assert resp.header("transfer-encoding") == "chunked", resp.raw
            assert resp.raw_body == b"0\r\n\r\n", resp.raw
        else:
            assert resp.header("content-length") == "0", resp.raw
        # Nothing stray follows: the next request on the connection is answered.
        nxt = conn.request("/", headers=[("Connection", "close")])
        assert nxt.status_line == "HTTP/1.1 200 OK" and nxt.body == b"ok", nxt.raw[:300]
