"""The app behind the deploy guide's examples (docs/deploy/), served through nginx, under a
systemd-style start and as a container's command.

- ``/`` and ``/healthz``: ``ok``.
- ``/env``: JSON of what the app sees of the proxy in front of it (REMOTE_ADDR, the scheme,
  the X-Forwarded-* headers, ...) and ``conn``, an id of the connection the request came on
  (worker pid and the socket's inode), so a test can tell reused upstream connections apart.
- ``/upload``: reads the body in pieces and answers its length and SHA-256.
- ``/download?n=BYTES``: a body of that many bytes (a repeating pattern), for proxy buffering.
- ``/slow?s=SECONDS&started=DIR``: writes a marker file into DIR once the request is in the
  app (one per request), then sleeps.

Every answer carries ``X-Worker-Pid``.
"""

import hashlib
import itertools
import json
import os
import threading
import time
from urllib.parse import parse_qs

from marker import write_marker

PATTERN = bytes(range(256)) * 256  # 64 KiB
_requests = itertools.count()

SEEN = (
    "REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_PROTOCOL",
    "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_SSL", "HTTP_X_FORWARDED_PROTOCOL", "HTTP_CONNECTION",
    "PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "CONTENT_LENGTH",
)


def connection_id(environ) -> str:
    sock = environ.get("gunicorn.socket")
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except (AttributeError, OSError):
        inode = 0
    return "%d:%d" % (os.getpid(), inode)


def answer(start_response, body: bytes, content_type="text/plain"):
    start_response("200 OK", [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("X-Worker-Pid", str(os.getpid())),
    ])
    return [body]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/env":
        seen = {k: environ.get(k) for k in SEEN}
        seen["conn"] = connection_id(environ)
        seen["pid"] = os.getpid()
        return answer(start_response, json.dumps(seen).encode(), "application/json")
    if path == "/upload":
        digest = hashlib.sha256()
        length = 0
        stream = environ["wsgi.input"]
        while True:
            piece = stream.read(65536)
            if not piece:
                break
            digest.update(piece)
            length += len(piece)
        body = json.dumps({"length": length, "sha256": digest.hexdigest()}).encode()
        return answer(start_response, body, "application/json")
    if path == "/download":
        size = int(query.get("n", ["0"])[0])
        start_response("200 OK", [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(size)),
            ("X-Worker-Pid", str(os.getpid())),
        ])
        return download(size)
    if path == "/slow":
        if "started" in query:
            name = "%d-%d-%d" % (os.getpid(), threading.get_ident(), next(_requests))
            write_marker(os.path.join(query["started"][0], name), name)
        time.sleep(float(query.get("s", ["0"])[0]))
        return answer(start_response, b"slept\n")
    return answer(start_response, b"ok\n")


def download(size: int):
    while size > 0:
        piece = PATTERN[:size]
        size -= len(piece)
        yield piece
