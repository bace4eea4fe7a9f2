"""A WSGI app that calls the dirty apps of dirty_tasks.py (tests/test_dirty_api.py).

Routes (query ``q`` is a JSON list ``[app, action, *args]``):
- ``/call?q=...``: ``{"result": ...}`` or ``{"error": type, "message", "traceback"}``.
- ``/stream?q=...``: the chunks of ``client.stream`` as ``{"chunks": [...]}`` (or an error).
- ``/stream_head?q=...``: the first 3 chunks, then the stream is closed.
- ``/stash?q=[op, *args]``: a ``stash`` module function's result.
- ``/timeout``: the default timeout of this thread's client.
Every answer carries the HTTP worker's pid in ``X-Worker-Pid``.
"""

import json
import os
from urllib.parse import parse_qs

try:
    from ferrocorn import dirty
except ImportError:  # the suite also runs against Gunicorn
    from gunicorn import dirty


def _error(e):
    return {
        "error": type(e).__name__,
        "message": getattr(e, "message", str(e)),
        "traceback": getattr(e, "traceback", None),
    }


def app(environ, start_response):
    path = environ["PATH_INFO"]
    q = parse_qs(environ.get("QUERY_STRING", "")).get("q", ["[]"])[0]
    args = json.loads(q)
    client = dirty.get_dirty_client()
    try:
        if path == "/call":
            out = {"result": client.execute(*args)}
        elif path == "/stream":
            out = {"chunks": list(client.stream(*args))}
        elif path == "/stream_head":
            # The first 3 chunks, then the stream is dropped.
            it = client.stream(*args)
            out = {"chunks": [next(it) for _ in range(3)]}
            it.close()
        elif path == "/stash":
            out = {"result": getattr(dirty.stash, args[0])(*args[1:])}
        elif path == "/timeout":
            out = {"result": client.timeout}
        else:
            out = {"result": "ok"}
    except dirty.DirtyError as e:
        out = _error(e)
    body = json.dumps(out).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("X-Worker-Pid", str(os.getpid()))]
    )
    return [body]
