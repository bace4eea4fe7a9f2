"""Raw ASGI applications (no framework) for the lifespan tests.

When ``LIFESPAN_LOG`` names a file, every call and lifespan event is appended to it as a
JSON object with the worker pid, so a test sees what each worker ran and in what order:
``call`` (every scope the app is called with, and its type), ``startup`` (with the
lifespan scope's keys) and ``startup-complete`` (``LIFESPAN_STARTUP_DELAY`` seconds
later), ``shutdown``, ``request-start`` / ``request-done`` (with the path).

- ``app``: supports lifespan. Startup stores ``token`` (``tok-<pid>``) and ``shared`` (a
  list) in ``scope["state"]``; shutdown completes. HTTP requests answer JSON:
  ``{"pid", "started": did startup run in this process first, "state": the request's
  state}``. ``/mutate`` changes its state (a new key, a changed key, and an append to
  the shared list) before answering; ``/slow?s=1.5`` sleeps before answering.
- ``failing_app``: answers ``lifespan.startup`` with ``lifespan.startup.failed`` and the
  message ``database unreachable``.
- ``raising_app``: raises (an assertion) when called with anything but http.
- ``returning_app``: returns at once from a lifespan call, without a word.
"""

import asyncio
import json
import os
from urllib.parse import parse_qs

LOG = os.environ.get("LIFESPAN_LOG")
STARTUP_DELAY = float(os.environ.get("LIFESPAN_STARTUP_DELAY", "0"))
STARTED = False


def record(event, **data):
    if not LOG:
        return
    data["event"] = event
    data["pid"] = os.getpid()
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(data) + "\n")


async def respond(send, status, payload):
    body = json.dumps(payload).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


async def http(scope, receive, send):
    path = scope["path"]
    record("request-start", path=path)
    state = scope.get("state")
    if path == "/mutate" and state is not None:
        state["mutated"] = True
        state["token"] = "changed"
        state["shared"].append("from /mutate")
    if path == "/slow":
        query = parse_qs(scope["query_string"].decode())
        await asyncio.sleep(float(query.get("s", ["1"])[0]))
    record("request-done", path=path)
    await respond(send, 200, {
        "pid": os.getpid(),
        "started": STARTED,
        "state": dict(state) if state is not None else None,
    })


async def app(scope, receive, send):
    global STARTED
    record("call", type=scope["type"])
    if scope["type"] == "http":
        await http(scope, receive, send)
        return
    if scope["type"] != "lifespan":
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            record("startup", scope_keys=sorted(scope),
                   asgi=scope.get("asgi"), state_type=type(scope.get("state")).__name__)
            await asyncio.sleep(STARTUP_DELAY)
            scope["state"]["token"] = "tok-%d" % os.getpid()
            scope["state"]["shared"] = []
            STARTED = True
            record("startup-complete")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            record("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def failing_app(scope, receive, send):
    record("call", type=scope["type"])
    if scope["type"] == "http":
        await respond(send, 200, {"pid": os.getpid()})
        return
    message = await receive()
    if message["type"] == "lifespan.startup":
        record("startup-failing")
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


async def raising_app(scope, receive, send):
    record("call", type=scope["type"])
    assert scope["type"] == "http", "raising_app only speaks http"
    await respond(send, 200, {"pid": os.getpid(), "state": scope.get("state")})


async def returning_app(scope, receive, send):
    record("call", type=scope["type"])
    if scope["type"] != "http":
        return
    await respond(send, 200, {"pid": os.getpid()})
