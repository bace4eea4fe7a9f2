"""Responses through the ASGI worker's send(): status line and headers, the server's own
headers, framing (Content-Length, chunked on HTTP/1.1, close-delimited on HTTP/1.0),
streaming, no body for HEAD/204/304, and the application's errors: an exception before
or after the start, no response, an unfinished response, and messages out of order."""

from __future__ import annotations

import email.utils
import http.client
import time
from datetime import datetime, timezone

import pytest

from asgi_support import (Client, records, report_on_failure, request_bytes, shared_server,
                          wait_records)
from conftest import RawResponse, raw_request

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def _shared(tmp_path_factory):
    yield from shared_server(tmp_path_factory, "asgi-response")


@pytest.fixture
def server(request, _shared):
    yield _shared
    report_on_failure(request, _shared)


def get(server, target, **kwargs) -> RawResponse:
    headers = list(kwargs.pop("headers", [])) + [("Connection", "close")]
    return RawResponse(raw_request(server.address, request_bytes(target, headers=headers,
                                                                 **kwargs)))


def still_serving(server):
    assert get(server, "/").body == b"ok"


# ---------------------------------------------------------------------------
# Status line, headers, framing


def test_status_and_headers_as_given_app_headers_first(server):
    resp = get(server, "/respond?status=201&h=X-B:2&h=Content-Type:text/plain&h=X-A:1"
                       "&h=Set-Cookie:a=1;+Path=/&h=Set-Cookie:b=2&cl=1&b=hello")
    assert resp.status_line == "HTTP/1.1 201 Created"
    names = [name.lower() for name, _ in resp.header_list]
    # The app's headers come first, in its order, duplicates kept.
    assert [(n.lower(), v) for n, v in resp.header_list[:6]] == [
        ("x-b", "2"), ("content-type", "text/plain"), ("x-a", "1"),
        ("set-cookie", "a=1; Path=/"), ("set-cookie", "b=2"), ("content-length", "5")]
    assert resp.headers_named("set-cookie") == ["a=1; Path=/", "b=2"]
    # The server adds one Date (and a Server header, whose value is not checked).
    dates = resp.headers_named("date")
    assert len(dates) == 1
    sent = email.utils.parsedate_to_datetime(dates[0])
    assert abs((datetime.now(timezone.utc) - sent).total_seconds()) < 60
    assert names.count("server") == 1
    assert resp.raw_body == b"hello"


def test_app_date_header_is_not_duplicated(server):
    resp = get(server, "/respond?h=Date:Mon,+01+Jan+2001+00:00:00+GMT&cl=1&b=x")
    assert resp.headers_named("date") == ["Mon, 01 Jan 2001 00:00:00 GMT"]


@pytest.mark.parametrize("status, line", [
    (200, "HTTP/1.1 200 OK"),
    (404, "HTTP/1.1 404 Not Found"),
    (503, "HTTP/1.1 503 Service Unavailable"),
    # Codes outside Gunicorn's reason table get "Unknown", 418 included.
    (418, "HTTP/1.1 418 Unknown"),
    (599, "HTTP/1.1 599 Unknown"),
])
def test_status_line_reason(server, status, line):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/respond?status=%d&cl=1&b=x" % status)
        resp = conn.getresponse()
        assert "HTTP/1.1 %d %s" % (resp.status, resp.reason) == line
        assert resp.read() == b"x"
    finally:
        conn.close()


def test_response_without_length_is_chunked_on_http11(server):
    resp = get(server, "/stream?n=3&size=5")
    assert resp.status_line == "HTTP/1.1 200 OK"
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.header("content-length") is None
    assert resp.chunk_sizes == [5, 5, 5]
    assert resp.body == b"aaaaabbbbbccccc"


def test_chunk_sizes_are_lower_case_hex(server):
    resp = get(server, "/stream?n=2&size=171")
    assert resp.raw_body.startswith(b"ab\r\n" + b"a" * 171 + b"\r\nab\r\n"), resp.raw_body[:20]
    assert resp.raw_body.endswith(b"\r\n0\r\n\r\n")


def test_response_without_length_is_close_delimited_on_http10(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/stream?n=3&size=4", version="HTTP/1.0"))
        resp = conn.read_response()  # read to EOF: neither length nor chunks
        assert conn.eof
    assert resp.status_line == "HTTP/1.0 200 OK"
    assert resp.header("transfer-encoding") is None
    assert resp.header("content-length") is None
    assert resp.raw_body == b"aaaabbbbcccc"


def test_content_length_body_in_several_messages(server):
    with Client(server.address) as conn:
        resp = conn.request("/respond?cl=1&b=hel&b=lo&b=!")
        assert resp.header("content-length") == "6"
        assert resp.header("transfer-encoding") is None
        assert resp.raw_body == b"hello!"
        assert conn.request("/").body == b"ok"


def test_more_body_messages_are_sent_as_they_come(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/stream?n=2&size=5&delay=0.5"))
        started = time.monotonic()
        conn.read_head()
        while b"aaaaa" not in conn.buf:
            assert conn._fill()
        # The first piece arrived while the app was still sleeping before the second.
        assert b"bbbbb" not in conn.buf
        assert time.monotonic() - started < 0.45
        while not conn.buf.endswith(b"0\r\n\r\n"):
            assert conn._fill()
        assert b"bbbbb" in conn.buf


def test_head_keeps_the_length_drops_the_body_and_warns(server):
    with Client(server.address) as conn:
        resp = conn.request("/respond?cl=1&b=hello", method="HEAD")
        assert resp.status_line == "HTTP/1.1 200 OK"
        assert resp.header("content-length") == "5"
        streamed = conn.request("/stream?n=2", method="HEAD")
        assert streamed.header("transfer-encoding") is None
        # No body bytes were sent: the next response on the connection parses.
        assert conn.request("/").body == b"ok"
    server.wait_for_log(r"\[WARNING\] ASGI app sent body bytes on a no-body response "
                        r"\(method=HEAD status=200\); dropping per RFC 9110\.$")


def test_204_has_no_body_and_no_length(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/respond?status=204&h=Content-Length:5&b=hello"))
        head = conn.read_head()
        assert head.startswith(b"HTTP/1.1 204 No Content\r\n")
        resp = RawResponse(head)
        assert resp.header("content-length") is None
        assert resp.header("transfer-encoding") is None
        # Nothing follows the head: the next response starts right after it.
        assert conn.request("/").body == b"ok"
    server.wait_for_log(r"\[WARNING\] ASGI app sent body bytes on a no-body response "
                        r"\(method=GET status=204\); dropping per RFC 9110\.$")


def test_304_keeps_the_length_but_has_no_body(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/respond?status=304&h=Content-Length:5&b=hello"))
        head = conn.read_head()
        assert head.startswith(b"HTTP/1.1 304 Not Modified\r\n")
        resp = RawResponse(head)
        assert resp.header("content-length") == "5"
        assert resp.header("transfer-encoding") is None
        assert conn.request("/").body == b"ok"


# ---------------------------------------------------------------------------
# Application errors


def test_exception_before_start_gives_500_and_logs_the_traceback(server):
    with Client(server.address) as conn:
        resp = conn.request("/raise-before?token=tok-before")
        assert resp.status_line == "HTTP/1.1 500 Internal Server Error"
        assert resp.header("connection") == "close"
        assert resp.body == b"Internal Server Error"
        assert conn.closed_by_server(timeout=5)
    server.wait_for_log(r"\[ERROR\] Error in ASGI application\nTraceback \(most recent call "
                        r"last\):\n(.*\n)*?ValueError: failure before start tok-before$")
    still_serving(server)


def test_exception_after_start_closes_the_connection(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/raise-after?token=tok-after"))
        raw = conn.read_to_eof()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    # The piece sent went out; no last chunk, nothing else.
    assert body == b"7\r\npartial\r\n"
    server.wait_for_log(r"\[ERROR\] Error in ASGI application\n(.*\n)*?"
                        r"ValueError: failure after start tok-after$")
    still_serving(server)


def test_app_returning_without_a_response_gives_500(server):
    resp = get(server, "/no-response")
    assert resp.status_line == "HTTP/1.1 500 Internal Server Error"
    assert resp.header("connection") == "close"
    assert resp.body == b"Internal Server Error"
    still_serving(server)


def test_app_returning_mid_response_closes_the_connection(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/mid-response"))
        raw = conn.read_to_eof()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\n7\r\npartial\r\n")
    server.wait_for_log(r"\[ERROR\] ASGI application returned without completing the "
                        r"response; closing the connection$")
    still_serving(server)


def test_body_before_start_is_an_application_error(server):
    resp = get(server, "/body-before-start")
    assert resp.status_line == "HTTP/1.1 500 Internal Server Error"
    server.wait_for_log(r"\[ERROR\] Error in ASGI application\n(.*\n)*?RuntimeError")
    still_serving(server)


def test_second_start_does_not_reach_the_client(server):
    raw = raw_request(server.address, request_bytes("/start-twice",
                                                    headers=[("Connection", "close")]))
    resp = RawResponse(raw)
    # What follows the first piece depends on where the error surfaces (Gunicorn 27
    # finishes the response and raises after the app returns), but the first start is
    # the one the client got.
    assert resp.status_line == "HTTP/1.1 200 OK"
    assert resp.headers_named("x-start") == ["first"]
    assert resp.raw_body.startswith(b"bo")
    assert b"404" not in raw and b"second" not in raw
    still_serving(server)


# ---------------------------------------------------------------------------
# Where Gunicorn 27 departs from the ASGI spec


@pytest.mark.ferrocorn_only
def test_invalid_message_order_raises_in_the_app(server):
    # The spec: the server raises on a message it cannot take. Gunicorn 27's send()
    # returns normally and raises only once the app returns.
    resp = get(server, "/body-before-start?catch=1&record=order-body")
    assert resp.status == 200
    (body_first,) = records(server, "order-body")
    assert body_first["raised"] == "RuntimeError", body_first
    resp = get(server, "/start-twice?catch=1&record=order-start")
    assert resp.status_line == "HTTP/1.1 200 OK"
    assert resp.raw_body == b"body"
    (start_twice,) = wait_records(server, "order-start")
    assert start_twice["raised"] == "RuntimeError", start_twice
    still_serving(server)


@pytest.mark.ferrocorn_only
def test_500_for_no_response_closes_the_connection(server):
    # The 500 says `Connection: close`; Gunicorn 27 keeps the connection open anyway
    # (until the keep-alive timeout) and would serve a request on it.
    with Client(server.address) as conn:
        resp = conn.request("/no-response")
        assert resp.status == 500
        assert resp.header("connection") == "close"
        assert conn.closed_by_server(timeout=1.0)


@pytest.mark.ferrocorn_only
def test_unframed_http10_keep_alive_response_closes_the_connection(server):
    # An HTTP/1.0 client asked for keep-alive, but the response has no Content-Length
    # and HTTP/1.0 has no chunked coding: only the close can end the body. Gunicorn 27
    # keeps the connection open until the keep-alive timeout.
    with Client(server.address) as conn:
        conn.send(request_bytes("/stream?n=2&size=3", version="HTTP/1.0",
                                headers=[("Connection", "keep-alive")]))
        head = conn.read_head()
        assert head.startswith(b"HTTP/1.0 200 OK\r\n")
        assert b"transfer-encoding" not in head.lower()
        assert conn.read_to_eof(timeout=1.0) == b"aaabbb"
