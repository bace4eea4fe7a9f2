"""The app of tests/test_tls_robustness.py and tests/test_tls_rotation.py: `app` (WSGI)
and `asgi_app` (ASGI).

Paths (both flavours unless noted):
    /           ``?s=SECONDS`` sleeps first (default 0); answers "hello pid N" with an
                X-Worker-Pid header
    /big        BIG: 1 MiB, each 4-byte word its own index (a misplaced or lost piece
                shows), with a Content-Length
    /file       (WSGI only) the same 1 MiB from a file through ``wsgi.file_wrapper``
    /upload     reads the whole body; answers ``<length> <sha256 hex>``
"""

import asyncio
import hashlib
import os
import tempfile
import time
from urllib.parse import parse_qs

BIG = b"".join(i.to_bytes(4, "big") for i in range(1 << 18))  # 1 MiB
# One file for every worker and run (same bytes), written whole before it is renamed in.
FILE_PATH = os.path.join(tempfile.gettempdir(), "ferrocorn-tls-big-1mib.bin")


def _file():
    if not os.path.exists(FILE_PATH):
        tmp = "%s.%d.tmp" % (FILE_PATH, os.getpid())
        with open(tmp, "wb") as f:
            f.write(BIG)
        os.replace(tmp, FILE_PATH)
    return open(FILE_PATH, "rb")


def _hello(query):
    seconds = float(query.get("s", ["0"])[0])
    return seconds, ("hello pid %d\n" % os.getpid()).encode()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    headers = [("Content-Type", "application/octet-stream"), ("X-Worker-Pid", str(os.getpid()))]
    if path == "/big":
        start_response("200 OK", headers + [("Content-Length", str(len(BIG)))])
        return [BIG]
    if path == "/file":
        start_response("200 OK", headers + [("Content-Length", str(len(BIG)))])
        return environ["wsgi.file_wrapper"](_file(), 65536)
    if path == "/upload":
        data = environ["wsgi.input"].read()
        body = ("%d %s" % (len(data), hashlib.sha256(data).hexdigest())).encode()
    else:
        seconds, body = _hello(query)
        if seconds:
            time.sleep(seconds)
    start_response("200 OK", headers + [("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = parse_qs(scope["query_string"].decode("latin-1"))
    path = scope["path"]
    if path == "/big":
        body = BIG
    elif path == "/upload":
        digest, length = hashlib.sha256(), 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            digest.update(chunk)
            length += len(chunk)
            if not message.get("more_body"):
                break
        body = ("%d %s" % (length, digest.hexdigest())).encode()
    else:
        seconds, body = _hello(query)
        if seconds:
            await asyncio.sleep(seconds)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-worker-pid", str(os.getpid()).encode())]})
    await send({"type": "http.response.body", "body": body})
