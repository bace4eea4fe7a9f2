"""The gthread tests' app: says which worker and thread served a request, and what it got.

- ``?size=N``: answers N bytes of ``x`` (a body held in memory, as a one-item list).
- any path, ``?s=SECONDS``: sleeps first, then answers JSON with the path, query, worker pid,
  thread id and ``wsgi.multithread``. ``?spin=SECONDS`` busy-loops in Python instead (holding
  the GIL except where CPython makes it switch). ``?started=PATH`` first writes the worker's
  pid to PATH, so a test can wait until the request is in the app.
- ``POST /upload``: reads the body in 64 KiB pieces and answers JSON with its length and
  sha256, so a large body is checked without echoing it back.
- ``POST /stream?early=N``: reads N bytes of the body, sends a first chunk saying so, then
  reads the rest and sends its length and sha256. The client can therefore see that the app
  started before the whole body was sent.

Every response carries ``X-Worker-Pid`` and ``X-Thread``.
"""

import hashlib
import json
import os
import threading
import time
from urllib.parse import parse_qs

from marker import write_marker

PIECE = 64 * 1024


def _read_exactly(stream, size):
    """Read `size` bytes, fewer only when the body ends first."""
    got = []
    left = size
    while left > 0:
        data = stream.read(min(PIECE, left))
        if not data:
            break
        got.append(data)
        left -= len(data)
    return b"".join(got)


def _read_all(stream, digest):
    total = 0
    while True:
        data = stream.read(PIECE)
        if not data:
            return total
        digest.update(data)
        total += len(data)


def _headers(content_type, length=None):
    headers = [
        ("Content-Type", content_type),
        ("X-Worker-Pid", str(os.getpid())),
        ("X-Thread", str(threading.get_ident())),
    ]
    if length is not None:
        headers.append(("Content-Length", str(length)))
    return headers


def _stream(environ, start_response, early):
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    first = _read_exactly(stream, early)
    digest.update(first)
    start_response("200 OK", _headers("text/plain"))
    yield ("got %d\n" % len(first)).encode()
    total = len(first) + _read_all(stream, digest)
    yield ("total %d sha256 %s\n" % (total, digest.hexdigest())).encode()


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    path = environ.get("PATH_INFO", "")
    if environ["REQUEST_METHOD"] == "POST" and path == "/stream":
        return _stream(environ, start_response, int(query.get("early", ["0"])[0]))
    if "size" in query:
        body = b"x" * int(query["size"][0])
        start_response("200 OK", _headers("application/octet-stream", len(body)))
        return [body]
    if environ["REQUEST_METHOD"] == "POST" and path == "/upload":
        digest = hashlib.sha256()
        total = _read_all(environ["wsgi.input"], digest)
        data = {"length": total, "sha256": digest.hexdigest()}
    else:
        if "started" in query:
            write_marker(query["started"][0], str(os.getpid()))
        seconds = float(query.get("s", ["0"])[0])
        if seconds:
            time.sleep(seconds)
        spin = float(query.get("spin", ["0"])[0])
        until = time.monotonic() + spin
        while time.monotonic() < until:
            pass
        data = {
            "path": path,
            "query": environ.get("QUERY_STRING", ""),
            "multithread": environ.get("wsgi.multithread"),
        }
    data["pid"] = os.getpid()
    data["thread"] = threading.get_ident()
    body = json.dumps(data, sort_keys=True).encode()
    start_response("200 OK", _headers("application/json", len(body)))
    return [body]
