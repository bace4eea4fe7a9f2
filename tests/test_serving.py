"""Serving requests with the sync worker: methods, request bodies, response framing,
application errors, and real frameworks (Flask, Django)."""

import json
import os
import re
import socket

import pytest
import requests

from conftest import RawResponse, http_get, raw_request

pytestmark = pytest.mark.timeout(60)


def test_get_hello(serve):
    server = serve("hello:app")
    resp = requests.get(server.url + "/", timeout=10)
    assert resp.status_code == 200
    assert resp.text == "Hello, World!\n"
    assert resp.headers["Content-Type"] == "text/plain"
    assert resp.headers["Content-Length"] == "14"
    # The server supplies Date and Server itself (Gunicorn strips the app's).
    assert "Date" in resp.headers
    assert re.match(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$", resp.headers["Date"])
    assert resp.headers.get("Server")


def test_head_keeps_length_but_sends_no_body(serve):
    server = serve("hello:app")
    resp = http_get(server.address, "/", method="HEAD")
    assert resp.status == 200
    assert resp.header("content-length") == "14"
    assert resp.raw_body == b""


def test_response_status_line_echoes_request_version(serve):
    server = serve("hello:app")
    assert http_get(server.address, "/", version="HTTP/1.1").status_line == "HTTP/1.1 200 OK"
    assert http_get(server.address, "/", version="HTTP/1.0").status_line == "HTTP/1.0 200 OK"


def test_post_with_content_length(serve):
    server = serve("echo:app")
    payload = os.urandom(200_000)
    resp = requests.post(server.url + "/upload", data=payload, timeout=10)
    assert resp.status_code == 200
    assert resp.content == payload
    assert resp.headers["X-Method"] == "POST"
    assert resp.headers["X-Content-Length"] == str(len(payload))


def test_post_with_empty_body(serve):
    server = serve("echo:app")
    resp = http_get(server.address, "/", method="POST", headers={"Content-Length": "0"})
    assert resp.status == 200
    assert resp.body == b""
    assert resp.header("x-content-length") == "0"


def test_post_chunked_request_body(serve):
    server = serve("echo:app")
    pieces = [
        b"POST /chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhello\r\n",
        b"1A\r\n" + b"abcdefghijklmnopqrstuvwxyz" + b"\r\n",
        # Split mid-chunk so the server must keep decoding state across reads.
        b"8;ext=1\r\n, wor",
        b"ld!\r\n",
        b"0\r\n\r\n",
    ]
    resp = RawResponse(raw_request(server.address, pieces, pause=0.05))
    assert resp.status == 200
    assert resp.body == b"hello" + b"abcdefghijklmnopqrstuvwxyz" + b", world!"
    # A chunked request has no CONTENT_LENGTH in the environ.
    assert resp.header("x-content-length") == "-"
    assert resp.header("x-transfer-encoding") == "chunked"


def test_post_chunked_request_body_with_trailer(serve):
    server = serve("echo:app")
    data = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    resp = RawResponse(raw_request(server.address, data))
    assert resp.status == 200
    assert resp.body == b"abc"


def test_streamed_response_is_chunked_on_http11(serve):
    server = serve("stream:app")
    resp = http_get(server.address, "/?n=4&delay=0.05")
    assert resp.status == 200
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.header("content-length") is None
    assert resp.body == b"chunk-0\nchunk-1\nchunk-2\nchunk-3\n"
    # Each yielded item goes out as its own chunk.
    assert resp.chunk_sizes == [8, 8, 8, 8]


def test_streamed_response_on_http10_is_delimited_by_close(serve):
    server = serve("stream:app")
    resp = http_get(server.address, "/?n=3", version="HTTP/1.0")
    assert resp.status == 200
    assert resp.header("transfer-encoding") is None
    assert resp.raw_body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_streamed_response_with_requests(serve):
    server = serve("stream:app")
    with requests.get(server.url + "/?n=50", stream=True, timeout=10) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert lines == [("chunk-%d" % i).encode() for i in range(50)]


@pytest.mark.parametrize(
    "path",
    ["/?n=5", "/?n=200&delay=0.01", "/?n=20000"],
    ids=["short-stream", "slow-stream", "long-stream"],
)
def test_client_hanging_up_mid_response_does_not_wedge_the_worker(serve, path):
    server = serve("stream:app")
    for _ in range(3):
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
            assert sock.recv(16).startswith(b"HTTP/1.1 200")
        # The one worker must be free again for the next client.
        resp = requests.get(server.url + "/?n=3", timeout=10)
        assert resp.status_code == 200
        assert resp.text == "chunk-0\nchunk-1\nchunk-2\n"
    assert len(server.worker_pids()) == 1


def test_sync_worker_closes_every_connection(serve):
    server = serve("hello:app")
    # HTTP/1.1 would default to keep-alive, and the client even asks for it.
    data = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    # raw_request only returns once the server closed the socket.
    resp = RawResponse(raw_request(server.address, data, timeout=10))
    assert resp.status == 200
    assert resp.header("connection") == "close"
    assert resp.body == b"Hello, World!\n"


def test_app_exception_gives_500_and_traceback_then_recovers(serve):
    server = serve("raising:app", ready_path="/ok")
    resp = http_get(server.address, "/boom")
    assert resp.status == 500
    assert resp.header("connection") == "close"
    assert b"Internal Server Error" in resp.body
    server.wait_for_log(r"Error handling request")
    server.wait_for_log(r"Traceback \(most recent call last\)")
    server.wait_for_log(r"BoomError: deliberate failure from raising\.py")
    # The worker survived: the next request is served normally.
    follow = requests.get(server.url + "/ok", timeout=10)
    assert follow.status_code == 200
    assert follow.text == "ok"
    # And it is the same worker: an app exception is not a crash.
    assert len(server.worker_pids()) == 1


@pytest.mark.parametrize(
    "data, status_line, logged",
    [
        (b"BADREQUEST\r\n\r\n", "HTTP/1.1 400 Bad Request",
         "Invalid HTTP request line: 'BADREQUEST'"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 414 URI Too Long",
         "Request Line is too large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
         "HTTP/1.1 431 Request Header Fields Too Large", "limit request headers fields size"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip2, chunked\r\n\r\n",
         "HTTP/1.1 501", "Unsupported transfer coding: 'gzip2, chunked'"),
    ],
    ids=["bad-request-line", "uri-too-long", "header-too-large", "unsupported-coding"],
)
def test_malformed_request_gets_error_page(serve, data, status_line, logged):
    server = serve("hello:app")
    resp = RawResponse(raw_request(server.address, data))
    assert resp.status_line.startswith(status_line)
    assert resp.header("connection") == "close"
    assert resp.header("content-type") == "text/html"
    assert resp.header("content-length") == str(len(resp.body))
    assert b"<title>" in resp.body
    server.wait_for_log(r"\[WARNING\] Invalid request from ip=127\.0\.0\.1: " + re.escape(logged))
    # A bad client costs a response, not the worker.
    assert requests.get(server.url, timeout=10).status_code == 200
    assert len(server.worker_pids()) == 1


def test_query_string_and_path_reach_the_app(serve):
    server = serve("environ_dump:app")
    resp = requests.get(server.url + "/some/path%20x?a=1&b=two", timeout=10)
    data = resp.json()
    assert data["REQUEST_METHOD"] == "GET"
    assert data["PATH_INFO"] == "/some/path x"
    assert data["QUERY_STRING"] == "a=1&b=two"
    assert data["RAW_URI"] == "/some/path%20x?a=1&b=two"
    assert data["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert data["REMOTE_ADDR"] == "127.0.0.1"
    assert data["SERVER_NAME"] == "127.0.0.1"
    assert data["SERVER_PORT"] == str(server.port)
    assert data["wsgi.url_scheme"] == "http"
    assert data["wsgi.version"] == [1, 0]
    assert data["wsgi.multithread"] is False
    assert data["wsgi.multiprocess"] is False


# ---------------------------------------------------------------------------
# Flask


def test_flask_routes(serve):
    server = serve("flask_app:app")
    assert requests.get(server.url + "/", timeout=10).text == "flask index"
    assert requests.get(server.url + "/hello/ferris", timeout=10).text == "hello ferris"
    item = requests.get(server.url + "/items/21", timeout=10)
    assert item.status_code == 200
    assert item.headers["Content-Type"] == "application/json"
    assert item.json() == {"id": 21, "double": 42}
    assert requests.get(server.url + "/nope", timeout=10).status_code == 404
    assert requests.get(server.url + "/form", timeout=10).status_code == 405


def test_flask_form_post(serve):
    server = serve("flask_app:app")
    resp = requests.post(
        server.url + "/form", data={"name": "Ada Lovelace", "colour": "blue & green"}, timeout=10
    )
    assert resp.status_code == 200
    assert resp.text == "name=Ada Lovelace;colour=blue & green"


def test_flask_json_post(serve):
    server = serve("flask_app:app")
    payload = {"a": 1, "b": [1, 2, 3], "c": "x" * 5000}
    resp = requests.post(server.url + "/json", json=payload, timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"received": payload, "count": 3}


# ---------------------------------------------------------------------------
# Django


def test_django_get(serve):
    server = serve("djproject.wsgi:application", ready_path="/greet/")
    resp = requests.get(server.url + "/greet/?q=ferrocorn", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"greeting": "hello from django", "q": "ferrocorn"}
    # CommonMiddleware's APPEND_SLASH redirect proves the URL conf is live.
    redirect = requests.get(server.url + "/greet", timeout=10, allow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["Location"].endswith("/greet/")


def test_django_post_form_and_json(serve):
    server = serve("djproject.wsgi:application", ready_path="/greet/")
    form = requests.post(server.url + "/submit/", data={"title": "t1", "n": "3"}, timeout=10)
    assert form.status_code == 201
    assert form.json() == {"method": "POST", "data": {"title": "t1", "n": "3"}}
    body = json.dumps({"nested": {"k": [1, 2]}})
    as_json = requests.post(
        server.url + "/submit/",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert as_json.status_code == 201
    assert as_json.json() == {"method": "POST", "data": {"nested": {"k": [1, 2]}}}
    assert requests.get(server.url + "/submit/", timeout=10).status_code == 405
