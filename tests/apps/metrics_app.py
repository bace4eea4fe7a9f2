"""A WSGI app whose answers the metrics tests count (tests/test_statsd.py,
tests/test_prometheus.py).

Every answer names its worker in an X-Worker-Pid header. Paths:
    /missing      404
    /boom         raises before start_response (the server answers 500)
    /status       answers ``?code=NNN`` (e.g. 302), empty body
    /sleep        sleeps ``?s=SECONDS`` (default 0); ``?started=PATH`` first writes the
                  worker's pid to PATH, so a test can wait until the request is in the app;
                  with ``?release=PATH`` it returns as soon as PATH exists (``s`` is then
                  the most it waits, default 15), so a test decides when it ends
    anything else 200 for GET and HEAD, 201 for POST (the body is read first), 204 for
                  DELETE, 200 for other methods

With METRICS_BOOT_GATE=PATH in the environment, importing the module waits (at most 30 s)
until PATH exists: a worker stays booting until the test lets it finish.
"""

import os
import time
from http import HTTPStatus
from urllib.parse import parse_qs

from marker import write_marker

_GATE = os.environ.get("METRICS_BOOT_GATE")
if _GATE:
    _deadline = time.monotonic() + 30
    while not os.path.exists(_GATE) and time.monotonic() < _deadline:
        time.sleep(0.01)


def _status_line(code: int) -> str:
    try:
        return "%d %s" % (code, HTTPStatus(code).phrase)
    except ValueError:
        return "%d Custom" % code


def answer(path, method, query):
    """The status and body for a request (shared with the ASGI twin, metrics_asgi.py)."""
    if path == "/status":
        status = int(query.get("code", "200"))
    elif path == "/missing":
        status = 404
    elif method == "POST":
        status = 201
    elif method == "DELETE":
        status = 204
    else:
        status = 200
    body = ("%d pid %d\n" % (status, os.getpid())).encode()
    if status in (204, 304) or path == "/status":
        body = b""
    return status, body


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    method = environ["REQUEST_METHOD"]
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/boom":
        raise RuntimeError("deliberate failure from metrics_app.py")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    if path == "/sleep":
        if "started" in query:
            write_marker(query["started"], str(os.getpid()))
        if "release" in query:
            deadline = time.monotonic() + float(query.get("s", "15"))
            while not os.path.exists(query["release"]) and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            time.sleep(float(query.get("s", "0")))
    status, body = answer(path, method, query)
    headers = [("Content-Type", "text/plain"), ("X-Worker-Pid", str(os.getpid()))]
    if status not in (204, 304):
        headers.append(("Content-Length", str(len(body))))
    start_response(_status_line(status), headers)
    return [body]


application = app
