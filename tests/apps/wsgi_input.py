"""Runs a script of `wsgi.input` calls given in the query string and answers with the results.

`?ops=read:5,readline,readline:3,readlines:10,iter,next,read` runs, in order, `read(5)`,
`readline()`, `readline(3)`, `readlines(10)`, `list(input)`, `next(input)` and `read()`. An
argument may be `None`, a negative number, or `str` (a wrong type). The answer is a JSON list
with one entry per call: the bytes returned as latin-1 text, a list of those for
`readlines`/`iter`, `null` when `next` hit the end, or `{"error": "<ExceptionType>"}`.

`?marker=PATH` makes the app create PATH before touching `wsgi.input` (to tell when
`100 Continue` went out); `?skip=1` answers without reading the body at all.
"""

import json
import os
from urllib.parse import parse_qs

from marker import write_marker


def _arg(text):
    if text == "None":
        return None
    if text == "str":
        return "3"
    return int(text)


def _run(stream, op):
    name, _, arg = op.partition(":")
    args = (_arg(arg),) if arg else ()
    if name == "iter":
        return [line.decode("latin-1") for line in stream]
    if name == "next":
        try:
            return next(iter(stream)).decode("latin-1")
        except StopIteration:
            return None
    result = getattr(stream, name)(*args)
    if isinstance(result, list):
        return [line.decode("latin-1") for line in result]
    return result.decode("latin-1")


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    marker = query.get("marker", [None])[0]
    if marker:
        write_marker(marker, "app started before reading wsgi.input\n")
    results = []
    if not query.get("skip"):
        stream = environ["wsgi.input"]
        for op in query.get("ops", ["read"])[0].split(","):
            try:
                results.append(_run(stream, op))
            except Exception as exc:  # reported to the test, which expects some of these
                results.append({"error": type(exc).__name__})
    body = json.dumps(results).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
         ("X-Pid", str(os.getpid()))],
    )
    return [body]
