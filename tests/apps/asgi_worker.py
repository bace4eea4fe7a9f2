"""A raw ASGI 3 application for the ASGI worker's operational tests (tests/test_asgi_worker.py,
tests/test_lossless.py's asgi variant).

Where a test needs what the app saw after the response is gone, the app appends one JSON
line to ``$ASGI_WORKER_MARKERS/<name>``.

Paths:
    /                   ``?s=SECONDS`` (default 0.02, so that requests are in flight when
                        a signal lands): ``await asyncio.sleep`` first; answers
                        "slept S pid N" with an X-Worker-Pid header (the ASGI twin of
                        apps/slow.py)
    /loop               the running event loop's class and module, as JSON
    /stream             ``mib`` MiB (default 64) in 64 KiB ``more_body`` messages, as fast as
                        send() lets it, with a Content-Length; each piece is ``piece(i)``;
                        records ``{"event": "done"}`` under ``stream`` once the last send()
                        returned
    /early-hints        a 103 Early Hints with a Link header, then 200 "final"
    /ignore-disconnect  records ``started`` under ``?name``, then sleeps 30 s without ever
                        calling receive(); records ``cancelled`` (with the time) when the
                        task is cancelled
    /block              ``time.sleep(s)``: blocks the event loop
    /access             reads the body, sleeps ``s`` seconds (default 0), answers 201 with
                        ``X-Out: out-value`` and an ``n``-byte body

``create_app()`` is an app factory returning an ASGI 3 app; ``Asgi2App`` is an ASGI 2
double callable (instantiated with the scope, then awaited with receive and send).
"""

import asyncio
import json
import os
import time
from urllib.parse import parse_qs

MARKERS = os.environ.get("ASGI_WORKER_MARKERS")

PIECE = 64 * 1024
_BLOCK = bytes((i * 7 + 3) % 251 for i in range(PIECE))


def piece(i: int) -> bytes:
    """The `i`th 64 KiB piece of /stream: its index, then a fixed pattern."""
    return i.to_bytes(8, "big") + _BLOCK[8:]


def record(name, value):
    if not MARKERS or not name:
        return
    with open(os.path.join(MARKERS, name), "a") as f:
        f.write(json.dumps(value) + "\n")


async def respond(send, body, status=200, headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-worker-pid", str(os.getpid()).encode())] + list(headers)})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    assert scope["type"] == "http", scope["type"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]

    if path == "/loop":
        loop = asyncio.get_running_loop()
        body = json.dumps({"module": type(loop).__module__,
                           "type": type(loop).__name__}).encode()
        return await respond(send, body)

    if path == "/stream":
        count = int(float(query.get("mib", "64")) * 1024 * 1024) // PIECE
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(count * PIECE).encode())]})
        for i in range(count):
            await send({"type": "http.response.body", "body": piece(i),
                        "more_body": i + 1 < count})
        record("stream", {"event": "done", "t": time.time()})
        return

    if path == "/early-hints":
        await send({"type": "http.response.informational", "status": 103,
                    "headers": [(b"link", b"</style.css>; rel=preload; as=style")]})
        return await respond(send, b"final")

    if path == "/ignore-disconnect":
        name = query.get("name", "ignore")
        record(name, {"event": "started", "t": time.time(), "pid": os.getpid()})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            record(name, {"event": "cancelled", "t": time.time()})
            raise
        record(name, {"event": "slept", "t": time.time()})
        return await respond(send, b"slept")

    if path == "/block":
        time.sleep(float(query.get("s", "10")))
        return await respond(send, b"unblocked")

    if path == "/access":
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        await asyncio.sleep(float(query.get("s", "0")))
        return await respond(send, b"x" * int(query.get("n", "5")), status=201,
                             headers=[(b"x-out", b"out-value")])

    seconds = float(query.get("s", "0.02"))
    if seconds:
        await asyncio.sleep(seconds)
    await respond(send, ("slept %s pid %d\n" % (seconds, os.getpid())).encode())


def create_app():
    """An app factory (`asgi_worker:create_app()`)."""

    async def made(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        await respond(send, b"made by the factory")

    return made


class Asgi2App:
    """An ASGI 2 application: the class takes the scope, the instance is awaited."""

    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        if self.scope["type"] == "lifespan":
            return await lifespan(receive, send)
        await respond(send, ("asgi2 %s" % self.scope["path"]).encode())
