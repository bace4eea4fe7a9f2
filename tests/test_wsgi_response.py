"""The server side of PEP 3333 responses: start_response rules (exc_info, second calls, no
change after the first body byte), the write() callable, Content-Length, hop-by-hop headers,
the server's own Server and Date, no body for HEAD/1xx/204/304, app errors before and after
the headers, and `close()` of the app's iterable on every path, client disconnects included.

Every iterable of `apps/wsgi_behaviour.py` leaves `<name>.closed` in a marker directory when
its close() runs, one line per call.
"""

from __future__ import annotations

import email.utils
import socket
import time
from datetime import datetime, timezone

import pytest

from conftest import RawResponse, is_gunicorn, raw_request

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def behaviour(serve, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    server = serve("wsgi_behaviour:app", env={"WSGI_MARKER_DIR": str(markers)},
                   ready_path="/ok?name=probe")
    server.markers = markers
    return server


def get(server, target: str, method: str = "GET", version: str = "HTTP/1.1") -> RawResponse:
    data = "%s %s %s\r\nHost: x\r\n\r\n" % (method, target, version)
    return RawResponse(raw_request(server.address, data.encode(), timeout=15))


def raw_get(server, target: str) -> bytes:
    return raw_request(server.address, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target.encode(),
                       timeout=15)


def close_calls(server, name: str, timeout: float = 10.0, expect: int = 1) -> int:
    """How many times close() ran for `name`, waiting up to `timeout` for `expect` calls."""
    path = server.markers / ("%s.closed" % name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= expect:
            break
        time.sleep(0.05)  # poll interval
    return len(path.read_text().splitlines()) if path.exists() else 0


def split_head(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


# ---------------------------------------------------------------------------
# start_response


def test_exc_info_before_the_body_replaces_the_status(behaviour):
    resp = get(behaviour, "/exc-info-before-body")
    assert resp.status_line == "HTTP/1.1 503 Service Unavailable"
    assert resp.header("x-second") == "2"
    assert resp.body == b"recovered"
    assert close_calls(behaviour, "exc-info-before-body") == 1


@pytest.mark.ferrocorn_only
def test_exc_info_before_the_body_replaces_the_headers_too(behaviour):
    # PEP 3333: the second call's headers replace the first's. Gunicorn 27 appends them, so
    # its response carries X-First and two Content-Types.
    resp = get(behaviour, "/exc-info-before-body")
    assert resp.header("x-first") is None
    assert resp.headers_named("content-type") == ["text/plain"]


def test_exc_info_after_the_body_started_is_re_raised(behaviour):
    raw = raw_get(behaviour, "/exc-info-after-body")
    lines, body = split_head(raw)
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Transfer-Encoding: chunked" in lines
    # The first chunk went out; then the connection was closed with nothing appended:
    # no last chunk, no error page.
    assert body == b"7\r\npartial\r\n"
    behaviour.wait_for_log(r"\[ERROR\] Error handling request\n")
    behaviour.wait_for_log(r"ValueError: late failure after the headers")
    assert close_calls(behaviour, "exc-info-after-body") == 1


def test_second_call_without_exc_info_is_an_error(behaviour):
    for target in ("/second-call", "/second-call-in-iter"):
        resp = get(behaviour, target)
        assert resp.status_line == "HTTP/1.1 500 Internal Server Error"
        assert b"Internal Server Error" in resp.body
    behaviour.wait_for_log(r"AssertionError: Response headers already set!", count=2)
    assert close_calls(behaviour, "second-call-in-iter") == 1


def test_headers_cannot_change_after_the_first_body_byte(behaviour):
    raw = raw_get(behaviour, "/change-after-body")
    lines, body = split_head(raw)
    assert lines[0] == "HTTP/1.1 200 OK"
    assert body == b"5\r\nfirst\r\n"
    assert b"404" not in raw
    behaviour.wait_for_log(r"AssertionError: Response headers already set!")
    assert close_calls(behaviour, "change-after-body") == 1


def test_write_callable_then_iterable(behaviour):
    resp = get(behaviour, "/write")
    assert resp.header("transfer-encoding") == "chunked"
    # write(b"") sends nothing: an empty chunk would end the body.
    assert resp.chunk_sizes == [4, 4, 5]
    assert resp.body == b"one,two,three"
    http10 = get(behaviour, "/write", version="HTTP/1.0")
    assert http10.header("transfer-encoding") is None
    assert http10.raw_body == b"one,two,three"
    assert close_calls(behaviour, "write", expect=2) == 2


def test_write_callable_honours_content_length(behaviour):
    resp = get(behaviour, "/write?cl=5")
    assert resp.header("content-length") == "5"
    assert resp.raw_body == b"one,t"


# ---------------------------------------------------------------------------
# Framing and headers


def test_body_longer_than_content_length_is_cut(behaviour):
    resp = get(behaviour, "/content-length?cl=3&body=abcdef")
    assert resp.header("content-length") == "3"
    assert resp.raw_body == b"abc"


def test_body_shorter_than_content_length_closes_the_connection(behaviour):
    started = time.monotonic()
    with socket.create_connection(behaviour.address, timeout=10) as sock:
        sock.sendall(b"GET /content-length?cl=10&body=12345 HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: keep-alive\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)  # a timeout here means the connection was kept open
            if not chunk:
                break
            data += chunk
    assert time.monotonic() - started < 5
    lines, body = split_head(data)
    assert "Content-Length: 10" in lines
    assert "Connection: close" in lines
    assert body == b"12345"
    assert close_calls(behaviour, "content-length") == 1


def test_hop_by_hop_headers_are_dropped_and_server_date_replaced(behaviour):
    resp = get(behaviour, "/hop-by-hop")
    names = [name.lower() for name, _ in resp.header_list]
    for hop in ("keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                "transfer-encoding", "upgrade"):
        assert hop not in names, hop
    assert resp.headers_named("connection") == ["close"]
    assert resp.header("x-kept") == "yes"
    assert resp.raw_body == b"hop"
    servers = resp.headers_named("server")
    assert servers == ["gunicorn" if is_gunicorn() else "ferrocorn"]
    dates = resp.headers_named("date")
    assert len(dates) == 1
    sent = email.utils.parsedate_to_datetime(dates[0])
    assert abs((datetime.now(timezone.utc) - sent).total_seconds()) < 60
    # The server's own headers come first, in Gunicorn's order.
    assert names[:4] == ["server", "date", "connection", "content-type"]


@pytest.mark.parametrize(
    "status, keeps_length",
    [("204 No Content", False), ("304 Not Modified", True), ("199 Odd", False)],
)
def test_no_body_statuses(behaviour, status, keeps_length):
    resp = get(behaviour, "/status?status=" + status.replace(" ", "+"))
    assert resp.status_line == "HTTP/1.1 " + status
    assert resp.raw_body == b""
    assert resp.header("transfer-encoding") is None
    assert resp.header("content-length") == ("9" if keeps_length else None)
    assert close_calls(behaviour, "status-" + status[:3]) == 1


def test_head_has_no_body_but_keeps_the_length(behaviour):
    resp = get(behaviour, "/ok?name=head", method="HEAD")
    assert resp.status == 200
    assert resp.header("content-length") == "2"
    assert resp.raw_body == b""
    streamed = get(behaviour, "/empty-pieces", method="HEAD")
    assert streamed.header("transfer-encoding") is None
    assert streamed.raw_body == b""
    assert close_calls(behaviour, "head") == 1
    assert close_calls(behaviour, "empty-pieces") == 1


def test_empty_items_do_not_end_a_chunked_body(behaviour):
    resp = get(behaviour, "/empty-pieces")
    assert resp.chunk_sizes == [1, 1, 1]
    assert resp.body == b"abc"


# ---------------------------------------------------------------------------
# Application errors


@pytest.mark.parametrize(
    "target, error",
    [
        ("/raise-before-headers", "KeyError: 'raised before start_response'"),
        ("/raise-after-start", "LookupError: raised after start_response, before any body"),
        ("/raise-in-iter-before-body",
         "RuntimeError: raised by the iterable before its first item"),
    ],
)
def test_error_before_the_headers_gives_a_500_page_and_a_traceback(behaviour, target, error):
    resp = get(behaviour, target)
    assert resp.status_line == "HTTP/1.1 500 Internal Server Error"
    assert resp.header("connection") == "close"
    assert resp.header("content-type") == "text/html"
    assert resp.header("content-length") == str(len(resp.body))
    assert b"<h1><p>Internal Server Error</p></h1>" in resp.body
    # Gunicorn's line names the method and the URI, then the traceback follows.
    behaviour.wait_for_log(r"\[ERROR\] Error handling request GET %s\nTraceback \(most recent"
                           % target)
    behaviour.wait_for_log(error.replace("(", r"\(").replace(")", r"\)"))
    if target == "/raise-in-iter-before-body":
        assert close_calls(behaviour, "raise-in-iter-before-body") == 1
    # The worker goes on.
    assert get(behaviour, "/ok").body == b"ok"
    assert len(behaviour.worker_pids()) == 1


def test_error_after_the_headers_closes_with_nothing_appended(behaviour):
    raw = raw_get(behaviour, "/raise-after-body")
    lines, body = split_head(raw)
    assert lines[0] == "HTTP/1.1 200 OK"
    assert body == b"C\r\npartial body\r\n"
    assert b"Internal Server Error" not in raw
    behaviour.wait_for_log(r"\[ERROR\] Error handling request\nTraceback \(most recent")
    behaviour.wait_for_log(r"RuntimeError: raised by the iterable after the headers went out")
    assert close_calls(behaviour, "raise-after-body") == 1
    assert get(behaviour, "/ok").body == b"ok"
    assert len(behaviour.worker_pids()) == 1


# ---------------------------------------------------------------------------
# The connection ends with the response


def read_to_eof(server, request: bytes, within: float = 5.0) -> bytes:
    """Send `request` and read until the server closes; fail if it has not within `within`."""
    with socket.create_connection(server.address, timeout=within) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + within
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                raise AssertionError(
                    "connection still open %ss after the response %r" % (within, data[:200])
                ) from None
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize("target", ["/keeps-environ", "/reference-cycle"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_connection_is_closed_even_if_the_app_keeps_the_environ(behaviour, target, method):
    # The sync worker closes every connection after its response. An app that still holds
    # the environ (a cache, or a reference cycle through a caught exception's traceback, as
    # Flask's and Django's error handling make) must not keep the socket open: a client
    # reading to EOF would hang, and the worker leaks a descriptor per request.
    for _ in range(3):
        raw = read_to_eof(behaviour, b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n"
                          % (method.encode(), target.encode()))
        assert raw.startswith(b"HTTP/1.1 ")
        assert b"\r\nConnection: close\r\n" in raw


def test_http10_response_without_length_ends_at_eof_despite_a_cycle(behaviour):
    raw = read_to_eof(behaviour, b"GET /reference-cycle HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 404 Not Found\r\n")
    assert raw.endswith(b"\r\n\r\nnot here")


# ---------------------------------------------------------------------------
# close() on every path


def test_close_is_called_once_on_a_normal_response(behaviour):
    for i in range(3):
        assert get(behaviour, "/ok?name=normal").body == b"ok"
    assert close_calls(behaviour, "normal", expect=3) == 3


@pytest.mark.parametrize("sendfile", [True, False], ids=["sendfile", "no-sendfile"])
def test_close_reaches_the_file_behind_file_wrapper(serve, tmp_path, sendfile):
    markers = tmp_path / "markers"
    markers.mkdir()
    args = [] if sendfile else ["--no-sendfile"]
    server = serve(*args, "wsgi_behaviour:app", env={"WSGI_MARKER_DIR": str(markers)},
                   ready_path="/ok?name=probe")
    server.markers = markers
    resp = get(server, "/file-wrapper")
    assert resp.raw_body == b"0123456789" * 10000
    assert close_calls(server, "file-wrapper") == 1


def test_client_disconnect_mid_stream_closes_the_iterable_and_the_worker_goes_on(behaviour):
    with socket.create_connection(behaviour.address, timeout=10) as sock:
        sock.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while len(received) < 50_000:
            received += sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        # Reset rather than a polite FIN, like a browser tab being closed.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert close_calls(behaviour, "forever", timeout=15) == 1
    assert get(behaviour, "/ok?name=after").body == b"ok"
    assert close_calls(behaviour, "after") == 1
    assert len(behaviour.worker_pids()) == 1
    # A client going away is not an application error.
    assert "Traceback" not in behaviour.stderr_text()


def test_client_disconnect_with_fin_closes_the_iterable(behaviour):
    with socket.create_connection(behaviour.address, timeout=10) as sock:
        sock.sendall(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(16).startswith(b"HTTP/1.1 200")
    assert close_calls(behaviour, "forever", timeout=15) == 1
    assert get(behaviour, "/ok").body == b"ok"
    assert len(behaviour.worker_pids()) == 1
