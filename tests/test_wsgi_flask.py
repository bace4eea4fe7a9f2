"""Flask on the real server: routing, form and multipart POSTs, a 50 MB streamed upload that
must not grow the worker's memory, and a streamed response that arrives piece by piece."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import pytest
import requests

from conftest import RawResponse, raw_request

pytestmark = pytest.mark.timeout(120)

MB = 1024 * 1024
UPLOAD_SIZE = 50 * MB
# Reading 50 MB must cost the worker far less than 50 MB: it streams, it does not buffer.
MAX_GROWTH = 20 * MB


@pytest.fixture
def flask_server(serve):
    return serve("flask_full:app")


def test_routing(flask_server):
    url = flask_server.url
    assert requests.get(url + "/", timeout=10).text == "flask full index"
    post = requests.get(url + "/users/7/posts/hello-world?page=3", timeout=10)
    assert post.json() == {"user": 7, "slug": "hello-world", "page": 3}
    assert requests.get(url + "/users/x/posts/y", timeout=10).status_code == 404
    created = requests.post(url + "/things", json={"name": "widget"}, timeout=10)
    assert created.status_code == 201
    assert created.json() == {"created": "widget"}
    assert requests.delete(url + "/things", timeout=10).status_code == 405
    assert requests.get(url + "/teapot", timeout=10).status_code == 418
    head = requests.head(url + "/users/7/posts/a", timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) > 0


def test_form_post_urlencoded_and_multipart(flask_server):
    form = requests.post(flask_server.url + "/form",
                         data={"name": "Ada Lovelace", "tags": ["a", "b & c"]}, timeout=10)
    assert form.json() == {"fields": {"name": ["Ada Lovelace"], "tags": ["a", "b & c"]},
                           "file": None}
    payload = os.urandom(300_000)
    multipart = requests.post(
        flask_server.url + "/form",
        data={"title": "report"},
        files={"attachment": ("report.bin", payload, "application/octet-stream")},
        timeout=10,
    )
    assert multipart.json() == {
        "fields": {"title": ["report"]},
        "file": {"filename": "report.bin", "content_type": "application/octet-stream",
                 "sha256": hashlib.sha256(payload).hexdigest()},
    }


def _proc_kib(pid: int, field: str) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("%s not in /proc/%d/status" % (field, pid))


class _Sampler(threading.Thread):
    """Samples a process's VmRSS every 20 ms until stopped; keeps the largest."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, _proc_kib(self.pid, "VmRSS") * 1024)
            self.samples += 1
            self._stop_event.wait(0.02)

    def stop(self):
        self._stop_event.set()
        self.join(5)


class _Body:
    """50 MB produced on the fly (never held whole), readable as a file of known length."""

    def __init__(self, size: int):
        self.size = size
        self.block = os.urandom(MB)
        self.sent = 0
        self.digest = hashlib.sha256()

    def __len__(self):
        return self.size - self.sent

    def read(self, n: int = -1) -> bytes:
        if self.sent >= self.size:
            return b""
        n = min(n if n and n > 0 else MB, MB, self.size - self.sent)
        offset = self.sent % MB
        piece = (self.block[offset:] + self.block)[:n]
        self.sent += len(piece)
        self.digest.update(piece)
        return piece

    def pieces(self, size: int = 64 * 1024):
        while True:
            piece = self.read(size)
            if not piece:
                return
            yield piece


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_50mb_streamed_upload_keeps_worker_memory_flat(flask_server, framing):
    url = flask_server.url + "/upload"
    # Warm up: the first requests import and allocate what any request needs.
    for _ in range(2):
        warm = requests.post(url, data=os.urandom(2 * MB), timeout=30)
        assert warm.status_code == 200
    pid = warm.json()["pid"]
    assert flask_server.worker_pids() == [pid]
    rss_before = _proc_kib(pid, "VmRSS") * 1024
    hwm_before = _proc_kib(pid, "VmHWM") * 1024

    body = _Body(UPLOAD_SIZE)
    sampler = _Sampler(pid)
    sampler.start()
    try:
        data = body.pieces() if framing == "chunked" else body
        resp = requests.post(url, data=data, timeout=90)
    finally:
        sampler.stop()
    hwm_after = _proc_kib(pid, "VmHWM") * 1024

    assert resp.status_code == 200
    result = resp.json()
    assert result["bytes"] == UPLOAD_SIZE
    assert result["sha256"] == body.digest.hexdigest()
    assert result["pid"] == pid
    assert sampler.samples > 3
    growth = max(sampler.peak, hwm_after) - max(rss_before, hwm_before)
    assert growth < MAX_GROWTH, (
        "worker grew by %.1f MB while reading a %d MB upload (RSS before %.1f MB, "
        "peak sampled %.1f MB, VmHWM %.1f -> %.1f MB)"
        % (growth / MB, UPLOAD_SIZE // MB, rss_before / MB, sampler.peak / MB,
           hwm_before / MB, hwm_after / MB)
    )


def test_streaming_response_arrives_piece_by_piece(flask_server):
    started = time.monotonic()
    arrivals = []
    with requests.get(flask_server.url + "/stream?n=5&delay=0.3&label=flask", stream=True,
                      timeout=10) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in resp.headers
        lines = []
        for line in resp.iter_lines():
            arrivals.append(time.monotonic() - started)
            lines.append(line)
    assert lines == [b"line %d of flask" % i for i in range(5)]
    # The first line came before the generator had finished sleeping (4 x 0.3 s).
    assert arrivals[0] < 0.9, arrivals
    assert arrivals[-1] >= 1.1, arrivals


def test_error_pages_end_the_connection(flask_server):
    # Werkzeug's NotFound/MethodNotAllowed are raised and caught inside Flask: the traceback
    # keeps the environ in a reference cycle. The server must still close the connection.
    for request in (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"PUT /things HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                    b"GET /nope HTTP/1.0\r\n\r\n"):
        raw = raw_request(flask_server.address, request, timeout=5)
        assert RawResponse(raw).status in (404, 405)


def test_streaming_response_on_http10_is_delimited_by_close(flask_server):
    raw = raw_request(flask_server.address, b"GET /stream?n=3 HTTP/1.0\r\n\r\n", timeout=10)
    resp = RawResponse(raw)
    assert resp.header("transfer-encoding") is None
    assert resp.raw_body == b"line 0 of stream\nline 1 of stream\nline 2 of stream\n"
