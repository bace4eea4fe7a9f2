"""Request bodies through the ASGI worker's receive(): streamed http.request messages for
large Content-Length and chunked uploads, the empty body, `Expect: 100-continue`, and
http.disconnect when the client leaves mid-request, while the app waits after the body,
and after the response."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
import requests

from asgi_support import (Client, json_body, records, report_on_failure, request_bytes,
                          shared_server, wait_records)
from conftest import RawResponse, raw_request, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def _shared(tmp_path_factory):
    yield from shared_server(tmp_path_factory, "asgi-body")


@pytest.fixture
def server(request, _shared):
    yield _shared
    report_on_failure(request, _shared)


def assert_streamed(result, payload):
    messages = result["messages"]
    assert all(m[0] == "http.request" for m in messages), messages
    # Streamed: more than one message, every one but the last says more_body.
    assert len(messages) > 1, messages
    assert [m[2] for m in messages] == [True] * (len(messages) - 1) + [False]
    assert sum(m[1] for m in messages) == len(payload) == result["total"]
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()


def test_large_content_length_body_arrives_in_several_messages(server):
    payload = os.urandom(1 << 20)
    with requests.Session() as session:
        resp = session.post(server.url + "/body", data=payload, timeout=15)
        assert resp.status_code == 200
        assert_streamed(resp.json(), payload)
        # The body was framed completely: the connection serves the next request.
        assert session.get(server.url + "/", timeout=15).content == b"ok"


def test_large_chunked_body_arrives_in_several_messages(server):
    payload = os.urandom(16 * 65536)
    with Client(server.address) as conn:
        conn.send(request_bytes("/body", method="POST",
                                headers=[("Transfer-Encoding", "chunked")]))
        for i in range(16):
            piece = payload[i * 65536:(i + 1) * 65536]
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            if i % 4 == 3:
                time.sleep(0.02)  # let the server read the pieces separately
        conn.send(b"0\r\n\r\n")
        assert_streamed(json_body(conn.read_response()), payload)
        assert conn.request("/").body == b"ok"


def test_chunked_body_with_extensions_and_trailer(server):
    data = (request_bytes("/body", method="POST", headers=[("Transfer-Encoding", "chunked"),
                                                            ("Connection", "close")])
            + b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
    result = json_body(RawResponse(raw_request(server.address, data)))
    assert result["total"] == 11
    assert result["sha256"] == hashlib.sha256(b"hello world").hexdigest()
    assert result["messages"][-1][2] is False


@pytest.mark.parametrize("method, headers", [
    ("GET", []),
    ("POST", [("Content-Length", "0")]),
])
def test_empty_body_is_one_message(server, method, headers):
    with Client(server.address) as conn:
        result = json_body(conn.request("/body", method=method, headers=headers))
    assert result["messages"] == [["http.request", 0, False]]
    assert result["total"] == 0


def test_expect_100_continue_is_sent_when_the_app_reads(server):
    with Client(server.address) as conn:
        conn.send(request_bytes("/continue?read=1", method="POST",
                                headers=[("Content-Length", "5"),
                                         ("Expect", "100-continue")]))
        # The server answers 100 before the client sends the body.
        assert conn.read_head() == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.send(b"hello")
        resp = conn.read_response()
        assert resp.status_line == "HTTP/1.1 200 OK"
        assert resp.body == b"got:hello"


def test_expect_100_continue_is_not_sent_when_the_app_does_not_read(server):
    data = request_bytes("/continue", method="POST",
                         headers=[("Content-Length", "5"), ("Expect", "100-continue"),
                                  ("Connection", "close")])
    raw = raw_request(server.address, data)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw[:200]
    assert b"100 Continue" not in raw
    assert RawResponse(raw).body == b"not read"


def test_client_leaving_mid_body_gives_http_disconnect(server):
    conn = Client(server.address)
    conn.send(request_bytes("/body?record=mid-body", method="POST",
                            headers=[("Content-Length", "100000")]) + b"0123456789")
    conn.close()
    (result,) = wait_records(server, "mid-body")
    messages = result["messages"]
    # Whatever part of the body the app got first, it ends with http.disconnect.
    assert messages[-1] == ["http.disconnect", 0, False], messages
    for message in messages[:-1]:
        assert message[0] == "http.request" and message[2] is True, messages
    assert result["total"] <= 10
    # The worker goes on serving.
    assert raw_request(server.address, request_bytes("/", headers=[("Connection", "close")])
                       ).endswith(b"ok")


def test_app_waiting_after_the_body_sees_the_client_leave(server):
    conn = Client(server.address)
    conn.send(request_bytes("/longpoll?record=longpoll"))
    wait_records(server, "longpoll")  # the app now waits in its second receive()
    time.sleep(0.2)  # and it keeps waiting while the client is there
    assert len(records(server, "longpoll")) == 1
    conn.close()
    done = wait_records(server, "longpoll", count=2)[1]
    assert done["messages"] == [["http.request", 0, False], ["http.disconnect", 0, False]]


def test_receive_after_the_response_gives_http_disconnect(server):
    with Client(server.address) as conn:
        resp = conn.request("/after-response?record=after")
        assert resp.body == b"done"
    (result,) = wait_records(server, "after")
    assert result["type"] == "http.disconnect"


def test_send_after_the_client_left_does_not_break_the_worker(server):
    conn = Client(server.address)
    conn.send(request_bytes("/send-after-disconnect?record=late-send"))
    time.sleep(0.1)
    conn.close()
    (result,) = wait_records(server, "late-send")
    assert result["received"] == "http.disconnect"
    # ASGI 2.4: send() on a closed connection is a no-op or raises an OSError subclass
    # (Gunicorn 27: a no-op on HTTP/1).
    assert result["raised"] is None or result["oserror"] is True, result
    assert raw_request(server.address, request_bytes("/", headers=[("Connection", "close")])
                       ).endswith(b"ok")


@pytest.mark.ferrocorn_only
def test_receive_after_the_response_returns_at_once(server):
    # ASGI: http.disconnect "is sent if receive is called after a response has been sent".
    # Gunicorn 27 blocks that receive() until the client goes away, and with
    # `Connection: close` it waits for the app before closing: both sides wait until the
    # client gives up.
    with Client(server.address) as conn:
        assert conn.request("/after-response?record=prompt").body == b"done"
        (result,) = wait_records(server, "prompt", timeout=3)
        assert result["type"] == "http.disconnect"
        assert result["waited"] < 1.0
        assert conn.request("/").body == b"ok"
    with Client(server.address) as conn:
        resp = conn.request("/after-response?record=prompt-close",
                            headers=[("Connection", "close")])
        assert resp.body == b"done"
        assert conn.closed_by_server(timeout=3)
    wait_until(lambda: records(server, "prompt-close"), timeout=3, what="the app's record")
