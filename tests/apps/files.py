"""Serves a generated file through wsgi.file_wrapper.

`/?cl=N` sends a Content-Length of N (default: the file size; `none` sends no length).
`/bytesio` wraps an in-memory file, which has no file descriptor.
`/skip` reads the first 100 bytes before handing the file over (offset handling).
`/big` sends a 32 MiB file, more than any socket buffer holds.
"""

import io
import os
import tempfile
from urllib.parse import parse_qs

DATA = bytes(range(256)) * 1024  # 256 KiB
PATH = os.path.join(tempfile.gettempdir(), "ferrocorn-test-file-%d.bin" % os.getpid())


def _ensure():
    if not os.path.exists(PATH):
        with open(PATH, "wb") as f:
            f.write(DATA)


BIG_SIZE = 32 << 20
BIG_PATH = PATH + ".big"


def _ensure_big():
    if not os.path.exists(BIG_PATH):
        with open(BIG_PATH, "wb") as f:
            f.truncate(BIG_SIZE)


def app(environ, start_response):
    _ensure()
    if environ["PATH_INFO"] == "/big":
        _ensure_big()
        start_response("200 OK", [("Content-Length", str(BIG_SIZE))])
        return environ["wsgi.file_wrapper"](open(BIG_PATH, "rb"), 8192)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    path = environ["PATH_INFO"]
    if path == "/bytesio":
        filelike = io.BytesIO(DATA)
        size = len(DATA)
    else:
        filelike = open(PATH, "rb")
        size = len(DATA)
        if path == "/skip":
            filelike.seek(100)
            size -= 100
    cl = query.get("cl", [str(size)])[0]
    headers = [("Content-Type", "application/octet-stream")]
    if cl != "none":
        headers.append(("Content-Length", cl))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](filelike, 8192)
