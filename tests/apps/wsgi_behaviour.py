"""Exercises the server side of PEP 3333: start_response rules, write(), Content-Length,
hop-by-hop headers, no-body statuses, errors before and after the headers, and close().

Every iterable this app returns is a `Tracked` whose `close()` creates
`$WSGI_MARKER_DIR/<name>.closed` (appending one line per call), so a test can tell that the
server called `close()` and how often. Paths are listed in `ROUTES`.
"""

import io
import os
import sys
import time
from urllib.parse import parse_qs

MARKER_DIR = os.environ.get("WSGI_MARKER_DIR", "")


def mark(name, what="closed"):
    if MARKER_DIR:
        with open(os.path.join(MARKER_DIR, "%s.%s" % (name, what)), "a") as f:
            f.write("%d\n" % os.getpid())


class Tracked:
    """An iterable over `produce()` (a generator) whose close() leaves a marker."""

    def __init__(self, name, produce):
        self.name = name
        self._gen = produce()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._gen)

    def close(self):
        mark(self.name)
        close = getattr(self._gen, "close", None)  # list iterators have none
        if close is not None:
            close()


class TrackedFile(io.FileIO):
    """A real file (so sendfile can be used) whose close() leaves a marker."""

    def __init__(self, path, name):
        super().__init__(path, "rb")
        self.marker_name = name

    def close(self):
        if not self.closed:
            mark(self.marker_name)
        super().close()


def ok(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return Tracked(q.get("name", "ok"), lambda: iter([b"ok"]))


def exc_info_before_body(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("changed my mind")
    except ValueError:
        start_response("503 Service Unavailable",
                       [("Content-Type", "text/plain"), ("X-Second", "2")], sys.exc_info())
    return Tracked("exc-info-before-body", lambda: iter([b"recovered"]))


def exc_info_after_body(environ, start_response, q):
    def produce():
        yield b"partial"
        try:
            raise ValueError("late failure after the headers")
        except ValueError:
            # Too late to change the response: start_response must re-raise this error.
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        yield b"never sent"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked("exc-info-after-body", produce)


def second_call(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"unreachable"]


def second_call_in_iter(environ, start_response, q):
    def produce():
        start_response("201 Created", [("Content-Type", "text/plain")])
        yield b"unreachable"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked("second-call-in-iter", produce)


def change_after_body(environ, start_response, q):
    def produce():
        yield b"first"
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        yield b"unreachable"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked("change-after-body", produce)


def write_callable(environ, start_response, q):
    headers = [("Content-Type", "text/plain")]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    write = start_response("200 OK", headers)
    write(b"one,")
    write(b"")
    write(b"two,")
    return Tracked("write", lambda: iter([b"three"]))


def content_length(environ, start_response, q):
    body = q.get("body", "").encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", q["cl"])])
    return Tracked("content-length", lambda: iter([body[:3], body[3:]]))


def hop_by_hop(environ, start_response, q):
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", "3"),
        ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=99"),
        ("Proxy-Authenticate", "Basic"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("TE", "trailers"),
        ("Trailers", "X-Checksum"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "h2c"),
        ("Server", "app-server/9.9"),
        ("Date", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("X-Kept", "yes"),
    ])
    return Tracked("hop", lambda: iter([b"hop"]))


def status(environ, start_response, q):
    headers = [("Content-Type", "text/plain"), ("Content-Length", "9")]
    start_response(q["status"], headers)
    return Tracked("status-%s" % q["status"][:3], lambda: iter([b"body-text"]))


def empty_pieces(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked("empty-pieces", lambda: iter([b"a", b"", b"b", b"", b"c"]))


def raise_before_headers(environ, start_response, q):
    raise KeyError("raised before start_response")


def raise_after_start(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise LookupError("raised after start_response, before any body")


def raise_in_iter_before_body(environ, start_response, q):
    def produce():
        raise RuntimeError("raised by the iterable before its first item")
        yield b""  # makes this a generator
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked("raise-in-iter-before-body", produce)


def raise_after_body(environ, start_response, q):
    def produce():
        yield b"partial body"
        raise RuntimeError("raised by the iterable after the headers went out")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked("raise-after-body", produce)


def forever(environ, start_response, q):
    def produce():
        i = 0
        while True:
            i += 1
            time.sleep(0.005)
            yield b"%08d" % i + b"." * 4088
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Tracked("forever", produce)


KEPT = []


def keeps_environ(environ, start_response, q):
    # An app-level cache that holds on to the environ (and so wsgi.input and the
    # start_response state) after the request.
    KEPT.append(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"kept"]


def reference_cycle(environ, start_response, q):
    try:
        raise ValueError("handled inside the app")
    except ValueError as exc:
        # exception -> traceback -> this frame -> `caught`: a cycle that also holds the
        # environ until the cyclic garbage collector runs, as framework error handlers do.
        caught = exc  # noqa: F841
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not here"]


def file_wrapper(environ, start_response, q):
    path = os.path.join(MARKER_DIR, "payload.bin")
    with open(path, "wb") as f:
        f.write(b"0123456789" * 10000)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", "100000")])
    return environ["wsgi.file_wrapper"](TrackedFile(path, "file-wrapper"), 8192)


ROUTES = {
    "/ok": ok,
    "/exc-info-before-body": exc_info_before_body,
    "/exc-info-after-body": exc_info_after_body,
    "/second-call": second_call,
    "/second-call-in-iter": second_call_in_iter,
    "/change-after-body": change_after_body,
    "/write": write_callable,
    "/content-length": content_length,
    "/hop-by-hop": hop_by_hop,
    "/status": status,
    "/empty-pieces": empty_pieces,
    "/raise-before-headers": raise_before_headers,
    "/raise-after-start": raise_after_start,
    "/raise-in-iter-before-body": raise_in_iter_before_body,
    "/raise-after-body": raise_after_body,
    "/forever": forever,
    "/file-wrapper": file_wrapper,
    "/keeps-environ": keeps_environ,
    "/reference-cycle": reference_cycle,
}


def app(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    return ROUTES.get(environ["PATH_INFO"], ok)(environ, start_response, q)
