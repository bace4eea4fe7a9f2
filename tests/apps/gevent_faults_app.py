"""A WSGI app for tests/test_gevent_faults.py: the faults reviewers found in the gevent
worker, and the body-memory fault it shared with the gthread and sync workers.

gevent is imported inside the routes that need it, so the same app serves ``-k gthread``
and ``-k sync`` too. Routes:

- ``/spawnread``: reads ``wsgi.input`` in a greenlet of its own and waits at most a second
  for it; a body that does not come in time is answered ``408``, the reader left parked
  in its read (``&kill=1``: killed first). With ``?write=1`` the response starts
  (``start_response`` and ``write``) while that greenlet is still in its read, and ends
  with what became of the read.
- ``/count?size=N``: reads ``wsgi.input.read(N)`` until EOF; JSON with the byte count,
  the pid, and the worker's ``VmRSS``/``VmHWM`` in KiB (from /proc/self/status).
- ``/mem``: the pid, ``VmRSS`` and ``VmHWM`` only.
- ``/leak``: starts a ``gevent.Timeout(0.3)`` it never cancels, and answers 200.
- ``/ctx?user=NAME``: answers with what the context variable ``user`` held when the
  request came in, then sets it to NAME.
- ``/hints``: sends 103 Early Hints (``wsgi.early_hints``), then echoes the body.
- ``/echo?marker=PATH``: creates PATH (the request reached the app), then echoes the
  body; the read's exception, if any, propagates.
- ``/noread``: answers without reading the body.
- anything else: ``ok``.
Every answer has an ``X-Worker-Pid`` header.
"""

import contextvars
import json
import os
from urllib.parse import parse_qs

USER = contextvars.ContextVar("user", default=None)


def _mem():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])  # kB
    return {"pid": os.getpid(), "rss_kb": fields["VmRSS"], "hwm_kb": fields["VmHWM"]}


def _headers(*extra, ctype="text/plain"):
    return [("Content-Type", ctype), ("X-Worker-Pid", str(os.getpid()))] + list(extra)


def _answer(start_response, body, status="200 OK", extra=(), ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, _headers(("Content-Length", str(len(body))), *extra, ctype=ctype))
    return [body]


def _json(start_response, data):
    return _answer(start_response, json.dumps(data), ctype="application/json")


def spawn_read(environ, start_response, query):
    import gevent

    reader = gevent.spawn(environ["wsgi.input"].read)
    if "write" not in query:
        try:
            data = reader.get(timeout=1)
        except gevent.Timeout:
            if "kill" in query:
                reader.kill(block=False)
            return _answer(start_response, "body too slow\n", "408 Request Timeout")
        return _answer(start_response, "read %d\n" % len(data))
    gevent.sleep(0.05)  # the reader is now parked in its read
    write = start_response("200 OK", _headers())
    write(b"started\n")
    try:
        data = reader.get(timeout=1)
        tail = "read %d\n" % len(data)
    except gevent.Timeout:
        tail = "timeout\n"
    except Exception as e:  # the read itself gave up
        tail = "read failed: %s\n" % type(e).__name__
    if "kill" in query:
        reader.kill(block=False)
    return [tail.encode()]


def count(environ, size):
    stream = environ["wsgi.input"]
    total = 0
    while True:
        data = stream.read(size)
        if not data:
            break
        total += len(data)
    return dict(_mem(), bytes=total)


def stream_until_gone(start_response, marker):
    """An event stream with no end: only the client leaving ends it, and its `finally`
    writes `marker`."""
    import gevent

    start_response("200 OK", [("Content-Type", "text/event-stream")])

    def events():
        i = 0
        try:
            while True:
                yield b"data: %d\n\n" % i
                i += 1
                gevent.sleep(0.1)
        finally:
            with open(marker, "w") as f:
                f.write(str(i))

    return events()


def timeout_while_locked(environ, start_response):
    """A spawned greenlet parks in a body read that never ends, holding the request; this
    greenlet then calls start_response inside a gevent.Timeout, which must fire."""
    import gevent

    reader = gevent.spawn(environ["wsgi.input"].read)
    gevent.sleep(0.05)
    outcome = "no timeout"
    try:
        with gevent.Timeout(1):
            start_response("200 OK", [("Content-Type", "text/plain")])
    except gevent.Timeout:
        outcome = "timeout raised"
    reader.kill(block=False)
    if outcome == "timeout raised":
        # The first call never got to set anything.
        start_response("200 OK", _headers())
    return [outcome.encode()]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/spawnread":
        return spawn_read(environ, start_response, query)
    if path == "/count":
        return _json(start_response, count(environ, int(query["size"][0])))
    if path == "/mem":
        return _json(start_response, _mem())
    if path == "/leak":
        import gevent

        gevent.Timeout(0.3).start()
        return _answer(start_response, "leaked a timer\n")
    if path == "/ctx":
        seen = USER.get()
        USER.set(query.get("user", [None])[0])
        return _json(start_response, {"seen": seen, "pid": os.getpid()})
    if path == "/hints":
        environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload")])
        return _answer(start_response, environ["wsgi.input"].read())
    if path == "/echo":
        open(query["marker"][0], "w").close()
        return _answer(start_response, environ["wsgi.input"].read())
    if path == "/noread":
        return _answer(start_response, "not read\n")
    if path == "/nap":
        import gevent

        open(query["marker"][0], "w").close()
        gevent.sleep(float(query["s"][0]))
        return _answer(start_response, "napped\n")
    if path == "/stream":
        return stream_until_gone(start_response, query["marker"][0])
    if path == "/timeout-while-locked":
        return timeout_while_locked(environ, start_response)
    return _answer(start_response, "ok pid %d\n" % os.getpid())
