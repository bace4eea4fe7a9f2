"""Falcon and Bottle on the real server: routing, JSON and form bodies, uploads, streamed
responses, files through wsgi.file_wrapper, and error statuses."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests

from conftest import RawResponse, raw_request

pytestmark = pytest.mark.timeout(60)

FILE_DATA = bytes(range(256)) * 1024


def _raw(server, request: bytes) -> RawResponse:
    # raw_request reads to EOF: every response must also end the connection.
    return RawResponse(raw_request(server.address, request, timeout=10))


# ---------------------------------------------------------------------------
# Falcon


@pytest.fixture
def falcon_server(serve):
    return serve("falcon_app:app", ready_path="/things/1")


def test_falcon_routes_and_media(falcon_server):
    url = falcon_server.url
    thing = requests.get(url + "/things/42?q=x&tag=a&tag=b", timeout=10)
    assert thing.status_code == 200
    assert thing.headers["Content-Type"].startswith("application/json")
    assert thing.json() == {"id": 42, "kind": "int", "q": "x", "tags": ["a", "b"]}
    assert requests.get(url + "/things/abc", timeout=10).status_code == 404
    assert requests.post(url + "/things/1", timeout=10).status_code == 405
    created = requests.post(url + "/things", json={"id": 7, "name": "seven"}, timeout=10)
    assert created.status_code == 201
    assert created.headers["Location"].endswith("/things/7")
    assert created.json() == {"created": {"id": 7, "name": "seven"}}
    deleted = _raw(falcon_server, b"DELETE /things/7 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert deleted.status == 204
    assert deleted.raw_body == b""
    assert deleted.header("content-length") is None


def test_falcon_uploads(falcon_server):
    payload = os.urandom(1_500_000)
    expected = {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    with_length = requests.put(falcon_server.url + "/upload", data=payload, timeout=20)
    assert with_length.json() == dict(expected, content_length=len(payload))
    pieces = (payload[i:i + 100_000] for i in range(0, len(payload), 100_000))
    chunked = requests.put(falcon_server.url + "/upload", data=pieces, timeout=20)
    assert chunked.json() == dict(expected, content_length=None)


def test_falcon_streamed_response_and_file(falcon_server):
    streamed = _raw(falcon_server, b"GET /stream?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert streamed.header("transfer-encoding") == "chunked"
    assert streamed.body == b"falcon 0\nfalcon 1\nfalcon 2\n"
    served = requests.get(falcon_server.url + "/file", timeout=10)
    assert served.headers["Content-Length"] == str(len(FILE_DATA))
    assert served.content == FILE_DATA
    head = _raw(falcon_server, b"HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.header("content-length") == str(len(FILE_DATA))
    assert head.raw_body == b""


def test_falcon_errors(falcon_server):
    teapot = _raw(falcon_server, b"GET /teapot HTTP/1.1\r\nHost: x\r\nAccept: application/json"
                                 b"\r\n\r\n")
    assert teapot.status_line == "HTTP/1.1 418 I'm a teapot"
    assert b"I'm a teapot" in teapot.body
    missing = _raw(falcon_server, b"GET /missing HTTP/1.0\r\n\r\n")
    assert missing.status == 404


# ---------------------------------------------------------------------------
# Bottle


@pytest.fixture
def bottle_server(serve):
    return serve("bottle_app:app", ready_path="/hello/ready")


def test_bottle_routes(bottle_server):
    url = bottle_server.url
    assert requests.get(url + "/hello/world", timeout=10).text == "hello world"
    assert requests.get(url + "/items/5?q=z", timeout=10).json() == {"id": 5, "q": "z"}
    assert requests.get(url + "/items/five", timeout=10).status_code == 404
    assert requests.delete(url + "/hello/x", timeout=10).status_code == 405
    redirect = requests.get(url + "/redirect", timeout=10, allow_redirects=False)
    assert redirect.status_code in (302, 303)
    assert redirect.headers["Location"].endswith("/hello/redirected")
    forbidden = _raw(bottle_server, b"GET /forbidden HTTP/1.1\r\nHost: x\r\n\r\n")
    assert forbidden.status == 403
    assert b"no entry" in forbidden.body
    head = _raw(bottle_server, b"HEAD /hello/world HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.status == 200
    assert head.raw_body == b""


def test_bottle_form_json_and_body(bottle_server):
    url = bottle_server.url
    form = requests.post(url + "/form", data={"name": "Zoë", "colour": ["red", "blue"]},
                         timeout=10)
    assert form.json() == {"name": "Zoë", "colours": ["red", "blue"], "file": None}
    payload = os.urandom(200_000)
    multipart = requests.post(url + "/form", data={"name": "n"},
                              files={"attachment": ("a.bin", payload)}, timeout=10)
    assert multipart.json()["file"] == {"filename": "a.bin",
                                        "sha256": hashlib.sha256(payload).hexdigest()}
    assert requests.post(url + "/json", json={"k": [1, 2]}, timeout=10).json() == {
        "received": {"k": [1, 2]}
    }
    # Larger than Bottle's MEMFILE_MAX, so Bottle spools it to a temporary file.
    big = os.urandom(600_000)
    assert requests.post(url + "/body", data=big, timeout=10).json() == {
        "bytes": len(big), "sha256": hashlib.sha256(big).hexdigest()
    }


def test_bottle_stream_and_static_file(bottle_server):
    streamed = _raw(bottle_server, b"GET /stream?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert streamed.body == b"bottle 0\nbottle 1\nbottle 2\n"
    static = requests.get(bottle_server.url + "/static/data.bin", timeout=10)
    assert static.status_code == 200
    assert static.headers["Content-Length"] == str(len(FILE_DATA))
    assert static.content == FILE_DATA
    assert "Last-Modified" in static.headers
    ranged = requests.get(bottle_server.url + "/static/data.bin", timeout=10,
                          headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.content == FILE_DATA[100:200]
    not_modified = _raw(bottle_server, b"GET /static/data.bin HTTP/1.1\r\nHost: x\r\n"
                        b"If-Modified-Since: " + static.headers["Last-Modified"].encode()
                        + b"\r\n\r\n")
    assert not_modified.status == 304
    assert not_modified.raw_body == b""
