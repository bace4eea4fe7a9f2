"""wsgi.file_wrapper: real files (sendfile), file-likes without a descriptor, Content-Length
smaller than the file, HEAD, HTTP/1.0 and chunked framing, with sendfile on and off."""

import pytest
import requests

from conftest import RawResponse, is_gunicorn, raw_request

DATA = bytes(range(256)) * 1024


@pytest.fixture(params=["sendfile", "no-sendfile"])
def file_server(request, serve):
    args = ["--access-logfile", "-"]
    if request.param == "no-sendfile":
        args.append("--no-sendfile")
    server = serve(*args, "files:app")
    server.sendfile = request.param == "sendfile"
    return server


def test_whole_file(file_server):
    resp = requests.get(file_server.url + "/", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Length"] == str(len(DATA))
    assert resp.content == DATA
    # ferrocorn's access log counts the body bytes actually written; Gunicorn logs 0 for
    # sendfile responses (docs/differences.md).
    sent = 0 if (is_gunicorn() and file_server.sendfile) else len(DATA)
    file_server.wait_for_log(r'"GET / HTTP/1.1" 200 %d ' % sent, text=file_server.stdout_text)


def test_content_length_smaller_than_the_file(file_server):
    resp = requests.get(file_server.url + "/?cl=1000", timeout=10)
    assert resp.content == DATA[:1000]


def test_offset_of_a_partly_read_file(file_server):
    resp = requests.get(file_server.url + "/skip", timeout=10)
    assert resp.content == DATA[100:]


def test_no_length_is_chunked_on_http11(file_server):
    raw = raw_request(
        file_server.address, b"GET /?cl=none HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10
    )
    resp = RawResponse(raw)
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.body == DATA  # RawResponse decodes the chunks strictly, last chunk included


def test_no_length_on_http10_is_delimited_by_close(file_server):
    raw = raw_request(file_server.address, b"GET /?cl=none HTTP/1.0\r\n\r\n", timeout=10)
    resp = RawResponse(raw)
    assert resp.header("transfer-encoding") is None
    assert resp.body == DATA


def test_head_sends_no_body(file_server):
    raw = raw_request(file_server.address, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    resp = RawResponse(raw)
    assert resp.status == 200
    assert resp.header("content-length") == str(len(DATA))
    assert resp.body == b""


def test_file_like_without_descriptor(file_server):
    resp = requests.get(file_server.url + "/bytesio", timeout=10)
    assert resp.content == DATA


def test_sendfile_env_zero_still_serves(serve):
    server = serve("files:app", env={"SENDFILE": "0"})
    assert requests.get(server.url + "/", timeout=10).content == DATA
