"""A plain WSGI app for the gevent worker tests (tests/test_gevent.py).

It is written as ordinary blocking code: `time.sleep`, `requests` and sockets only yield
to other requests because the worker monkey-patches them. Routes:

- ``/sleep?s=SECONDS``: sleeps with plain ``time.sleep`` while counted as in flight; the
  JSON answer carries the highest number of requests ever seen in flight at once
  (``peak``). ``&n=N`` first waits (cooperatively, for at most ``&wait=`` seconds, 20 by
  default) until N requests are in flight, so a test knows they all reached the app.
- ``/stats``: ``{"inflight": ..., "peak": ...}`` right now.
- ``/fetch?url=URL``: GETs URL with ``requests`` and answers with its status and body.
- ``/upload``: hashes ``wsgi.input`` read in 64 KiB pieces, never holding the whole body.
- ``/download?mb=N``: a generator of N MiB in 64 KiB pieces, ``piece(i)`` below.
- ``/boom``: raises before start_response.
- ``/block?s=SECONDS``: blocks the whole process with the unpatched ``time.sleep``.
- anything else: ``ok`` and the worker pid.
Every answer has an ``X-Worker-Pid`` header.
"""

import hashlib
import json
import os
import threading
import time
from urllib.parse import parse_qs

import requests
from gevent import monkey

PIECE = 64 * 1024

_lock = threading.Lock()  # a gevent lock once patched; keeps the counts right either way
_counts = {"inflight": 0, "peak": 0}


class GeventAppBoom(RuntimeError):
    pass


def piece(i: int) -> bytes:
    """Piece `i` of a download: 64 KiB that differ from piece to piece."""
    return hashlib.sha256(b"piece %d" % i).digest() * (PIECE // 32)


def _enter():
    with _lock:
        _counts["inflight"] += 1
        _counts["peak"] = max(_counts["peak"], _counts["inflight"])


def _leave():
    with _lock:
        _counts["inflight"] -= 1


def sleep_counted(query):
    seconds = float(query.get("s", ["1"])[0])
    wanted = int(query.get("n", ["0"])[0])
    wait = float(query.get("wait", ["20"])[0])
    _enter()
    try:
        reached = True
        if wanted:
            deadline = time.monotonic() + wait
            while _counts["inflight"] < wanted:
                if time.monotonic() > deadline:
                    reached = False
                    break
                time.sleep(0.01)
        time.sleep(seconds)
        return {"peak": _counts["peak"], "reached": reached, "pid": os.getpid()}
    finally:
        _leave()


def fetch(query):
    upstream = requests.get(query["url"][0], timeout=30)
    return {"status": upstream.status_code, "body": upstream.text, "pid": os.getpid()}


def upload(environ):
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = pieces = 0
    while True:
        data = stream.read(PIECE)
        if not data:
            break
        digest.update(data)
        total += len(data)
        pieces += 1
    return {"bytes": total, "pieces": pieces, "sha256": digest.hexdigest(), "pid": os.getpid()}


def block_the_hub(seconds):
    # The original, unpatched sleep: the hub cannot run, so no other request can either.
    monkey.get_original("time", "sleep")(seconds)
    return {"unblocked": True}


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))),
                            ("X-Worker-Pid", str(os.getpid()))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/sleep":
        return _json(start_response, sleep_counted(query))
    if path == "/stats":
        return _json(start_response, dict(_counts))
    if path == "/fetch":
        return _json(start_response, fetch(query))
    if path == "/upload":
        return _json(start_response, upload(environ))
    if path == "/block":
        return _json(start_response, block_the_hub(float(query.get("s", ["60"])[0])))
    if path == "/boom":
        raise GeventAppBoom("deliberate failure from gevent_app.py")
    if path == "/download":
        count = int(query.get("mb", ["1"])[0]) * (1024 * 1024 // PIECE)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Worker-Pid", str(os.getpid()))])
        return (piece(i) for i in range(count))
    body = ("ok pid %d\n" % os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body))),
                              ("X-Worker-Pid", str(os.getpid()))])
    return [body]
