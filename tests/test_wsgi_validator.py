"""A plain app wrapped in `wsgiref.validate.validator`, served for real: GET, HEAD, POST,
chunked uploads, query strings, percent-encoded and latin-1 paths, large request and response
headers, the write() callable and streamed bodies must draw no complaint from the validator."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import requests

from conftest import RawResponse, raw_request

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def validated(serve, tmp_path):
    log = tmp_path / "validator.jsonl"
    log.touch()
    server = serve("wsgi_validated:app", env={"WSGI_VALIDATOR_LOG": str(log)})
    server.complaints = lambda: [json.loads(line) for line in log.read_text().splitlines()]
    return server


def _get(server, target: bytes, extra: bytes = b"", method: bytes = b"GET") -> RawResponse:
    return RawResponse(raw_request(
        server.address, method + b" " + target + b" HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n",
        timeout=15,
    ))


def _assert_no_complaints(server):
    # One more request: an iterator dropped unclosed by the previous one has been
    # collected (and complained about) by the time this one is answered.
    assert _get(server, b"/final").status == 200
    complaints = server.complaints()
    assert complaints == [], "validator complaints:\n" + "\n".join(
        "%s: %s" % (c["kind"], c["detail"]) for c in complaints
    )
    assert "AssertionError" not in server.stderr_text()
    assert "Iterator garbage collected" not in server.stderr_text()


def test_get_head_and_query_strings(validated):
    for target, query in [
        (b"/", ""),
        (b"/plain?a=1&b=2", "a=1&b=2"),
        (b"/q?x=%20y%26&empty=&flag&u=%E9%C3%A9", "x=%20y%26&empty=&flag&u=%E9%C3%A9"),
        (b"/q?", ""),
    ]:
        resp = _get(validated, target)
        assert resp.status == 200
        assert json.loads(resp.body)["query"] == query
        head = _get(validated, target, method=b"HEAD")
        assert head.status == 200
        assert head.raw_body == b""
        # The app's Content-Length for HEAD is kept: the same JSON, naming HEAD.
        head_json = resp.body.replace(b'"method": "GET"', b'"method": "HEAD"')
        assert head.header("content-length") == str(len(head_json))
    _assert_no_complaints(validated)


def test_percent_encoded_and_latin1_paths(validated):
    for target, path in [
        (b"/caf%C3%A9", "/caf\u00c3\u00a9"),  # UTF-8 bytes, decoded as latin-1 (PEP 3333)
        (b"/caf%E9/cr%E8me", "/caf\u00e9/cr\u00e8me"),  # latin-1 bytes
        (b"/a%20b/%2F/%25", "/a b///%"),
        (b"/%FF%00x", "/\u00ff\x00x"),
    ]:
        resp = _get(validated, target)
        assert resp.status == 200, resp.raw[:300]
        assert json.loads(resp.body)["path"] == path
    _assert_no_complaints(validated)


@pytest.mark.parametrize("how", ["read", "readline", "readlines", "iter"])
def test_post_with_content_length(validated, how):
    body = os.urandom(150_000).replace(b"\n", b"") + b"\nlast line\n" + b"x" * 999
    resp = requests.post(validated.url + "/echo?how=" + how, data=body, timeout=15)
    assert resp.status_code == 200
    assert resp.json() == {
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_length": str(len(body)),
    }
    _assert_no_complaints(validated)


@pytest.mark.parametrize("how", ["read", "readline", "iter"])
def test_chunked_upload(validated, how):
    pieces = [os.urandom(n) for n in (1, 100, 4096, 70_000, 3)]
    body = b"".join(pieces)
    resp = requests.post(validated.url + "/echo?how=" + how, data=iter(pieces), timeout=15)
    assert resp.status_code == 200
    assert resp.json() == {
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_length": None,
    }
    _assert_no_complaints(validated)


def test_empty_post(validated):
    resp = _get(validated, b"/echo", b"Content-Length: 0\r\n", method=b"POST")
    assert json.loads(resp.body)["length"] == 0
    _assert_no_complaints(validated)


def test_large_request_headers(validated):
    # Just under the default limits: 8190 bytes per field line, 100 fields.
    big = b"X-Big: " + b"b" * 8100 + b"\r\n"
    many = b"".join(b"X-H%d: value-%d\r\n" % (i, i) for i in range(90))
    resp = _get(validated, b"/headers", big + many)
    assert resp.status == 200, resp.raw[:300]
    info = json.loads(resp.body)
    assert info["header_count"] == 1 + 1 + 90  # Host, X-Big, X-H*
    assert info["header_bytes"] >= 8100
    _assert_no_complaints(validated)


def test_large_response_headers(validated):
    resp = _get(validated, b"/big-headers")
    assert resp.status == 200
    assert resp.header("x-large") == "v" * 16000
    assert [resp.header("x-many-%d" % i) for i in range(150)] == [
        "value %d" % i for i in range(150)
    ]
    assert resp.body == b"big headers"
    _assert_no_complaints(validated)


def test_write_callable_and_streamed_body(validated):
    written = _get(validated, b"/write")
    assert written.body == b"written through write() then returned"
    streamed = _get(validated, b"/stream")
    assert streamed.header("transfer-encoding") == "chunked"
    assert streamed.body == b"".join(b"piece %d\n" % i for i in range(5))
    head = _get(validated, b"/stream", method=b"HEAD")
    assert head.raw_body == b""
    _assert_no_complaints(validated)


def test_validator_complaints_are_seen(validated):
    # The harness itself: an app that yields a str must be reported.
    _get(validated, b"/bad-app")
    assert _get(validated, b"/final").status == 200
    kinds = [c["kind"] for c in validated.complaints()]
    assert "assertion" in kinds
    assert any("non-bytestring" in c["detail"] for c in validated.complaints())
