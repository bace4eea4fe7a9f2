"""A plain WSGI app wrapped in `wsgiref.validate.validator`, recording every complaint.

The validator checks both sides: the environ, `wsgi.input`, `wsgi.errors` and the iterator
protocol the server drives (it must call `close()`, and never iterate after it). Its complaints
are AssertionErrors (raised into the server, or from `__del__` when an iterator is dropped
unclosed) and WSGIWarnings; each one is appended as a JSON line to `$WSGI_VALIDATOR_LOG`, which
the test reads.

Paths: `/echo` reads the body (`?how=read|readline|readlines|iter`, in 1000-byte steps for
`read`) and reports its length and digest; `/big-headers` answers with large and many
response headers; `/write` sends its body through the `write()` callable; `/stream` yields
several pieces; `/bad-app` yields a str (the validator must complain); everything else reports the request line, query and header sizes.
"""

import hashlib
import json
import os
import sys
import traceback
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

LOG = os.environ.get("WSGI_VALIDATOR_LOG", os.devnull)


def record(kind, detail):
    with open(LOG, "a") as f:
        f.write(json.dumps({"kind": kind, "detail": detail, "pid": os.getpid()}) + "\n")


def _showwarning(message, category, filename, lineno, file=None, line=None):
    record("warning", "%s: %s" % (category.__name__, message))


warnings.simplefilter("always", WSGIWarning)
warnings.showwarning = _showwarning
_previous_unraisable = sys.unraisablehook


def _unraisable(info):
    record("unraisable", "%s: %s" % (type(info.exc_value).__name__, info.exc_value))
    _previous_unraisable(info)


sys.unraisablehook = _unraisable


def _read_body(stream, how):
    if how == "readline":
        parts = []
        while True:
            line = stream.readline()
            if not line:
                return b"".join(parts)
            parts.append(line)
    if how == "readlines":
        return b"".join(stream.readlines())
    if how == "iter":
        return b"".join(stream)
    parts = []
    while True:
        # The validator allows read() with exactly one argument.
        piece = stream.read(1000)
        if not piece:
            return b"".join(parts)
        parts.append(piece)


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ["QUERY_STRING"])
    errors = environ["wsgi.errors"]
    errors.write("validated app: %s %s\n" % (environ["REQUEST_METHOD"], path))
    errors.writelines(["a line for wsgi.errors\n"])
    errors.flush()
    if path == "/echo":
        body = _read_body(environ["wsgi.input"], query.get("how", ["read"])[0])
        out = json.dumps({
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_length": environ.get("CONTENT_LENGTH"),
        }).encode()
    elif path == "/big-headers":
        headers = [("Content-Type", "text/plain"), ("X-Large", "v" * 16000)]
        headers += [("X-Many-%d" % i, "value %d" % i) for i in range(150)]
        start_response("200 OK", headers)
        return [b"big headers"]
    elif path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"through write()")
        return [b" then returned"]
    elif path == "/bad-app":
        # The app breaks the spec on purpose: proves complaints reach the log.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str, not bytes"]
    elif path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (("piece %d\n" % i).encode() for i in range(5))
    else:
        out = json.dumps({
            "method": environ["REQUEST_METHOD"],
            "path": path,
            "query": environ["QUERY_STRING"],
            "header_bytes": sum(len(v) for k, v in environ.items() if k.startswith("HTTP_")),
            "header_count": sum(1 for k in environ if k.startswith("HTTP_")),
        }).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
    )
    return [out]


validated = validator(inner)


class _Recording:
    """Passes the validator's iterator through, recording AssertionErrors on the way."""

    def __init__(self, iterable):
        self._iterable = iterable
        self._iterator = iter(iterable)

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._iterator)
        except AssertionError:
            record("assertion", traceback.format_exc())
            raise

    def close(self):
        try:
            self._iterable.close()
        except AssertionError:
            record("assertion", traceback.format_exc())
            raise


def app(environ, start_response):
    try:
        return _Recording(validated(environ, start_response))
    except AssertionError:
        record("assertion", traceback.format_exc())
        raise
