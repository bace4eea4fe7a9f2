"""A raw ASGI 3 application (no framework) for `test_asgi_review.py`: the regressions a
code review of the ASGI worker found.

Where a test needs to see what the application saw, the application appends one JSON
line to ``$ASGI_REVIEW_MARKERS/<name>`` (``?record=<name>``).

HTTP paths:
    /                   200 "ok", the worker pid in ``X-Pid``
    /timeout-body       waits for the body with ``asyncio.wait_for(receive(), 0.3)`` until
                        one wait times out (records ``timed-out``), sleeps ``pause``
                        seconds (default 1) with no receive() waiting, then reads the body
                        with plain receive() calls and answers it
    /late-read          sleeps ``sleep`` seconds, then reads the whole body; answers its
                        length and the messages as JSON
    /no-read            answers 200 "not read" without reading the body
    /conn-close         answers 200 "bye" with its own ``Connection: close``
    /stream             ``n`` body messages of ``size`` bytes, ``delay`` seconds apart;
                        records ``end`` (sent, cancelled, raised) when it finishes
    /pathsend           answers ``path`` with http.response.pathsend; ``te=1`` adds the
                        app's own ``Transfer-Encoding: chunked``

WebSocket paths:
    /ws-timeout         accept, one ``wait_for(receive(), 0.3)`` (records its outcome),
                        sleeps ``pause`` seconds (default 1), then echoes the next message
    /ws-late-accept     sleeps ``sleep`` seconds before accepting (records ``accepting``),
                        then closes
    /ws-wait            records ``waiting``, then sleeps 30 s before accepting; records
                        ``cancelled`` if the task is cancelled
"""

import asyncio
import json
import os
import time
from urllib.parse import parse_qs

MARKERS = os.environ.get("ASGI_REVIEW_MARKERS")


def record(name, value):
    if not MARKERS or not name:
        return
    with open(os.path.join(MARKERS, name), "a") as f:
        f.write(json.dumps(value) + "\n")


async def respond(send, status=200, body=b"ok", headers=None):
    headers = list(headers or [(b"content-type", b"text/plain")])
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append((b"x-pid", str(os.getpid()).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive, messages=None):
    """Every message up to the end of the body or a disconnect, and the body."""
    messages = [] if messages is None else messages
    body = b""
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        body += chunk
        messages.append([message["type"], len(chunk), message.get("more_body", False)])
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages, body


async def http(scope, receive, send):
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    arg = lambda name, default="": query.get(name, [default])[0]  # noqa: E731
    name = arg("record")

    if path == "/timeout-body":
        # Whatever comes before the first timeout is kept; a message that arrives after
        # the cancelled receive() must reach the next one.
        messages, body = [], b""
        while True:
            try:
                message = await asyncio.wait_for(receive(), 0.3)
            except asyncio.TimeoutError:
                record(name, {"event": "timed-out"})
                # A window in which the client's next bytes arrive while no receive() is
                # waiting: only the cancelled one was.
                await asyncio.sleep(float(arg("pause", "1")))
                break
            messages.append([message["type"], len(message.get("body", b"")),
                             message.get("more_body", False)])
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        if not messages or messages[-1][2]:
            _, rest = await read_body(receive, messages)
            body += rest
        record(name, {"event": "done", "messages": messages})
        await respond(send, 200, body)

    elif path == "/late-read":
        await asyncio.sleep(float(arg("sleep", "3")))
        messages, body = await read_body(receive)
        result = {"total": len(body), "count": len(messages), "last": messages[-1]}
        await respond(send, 200, json.dumps(result).encode(),
                      [(b"content-type", b"application/json")])

    elif path == "/no-read":
        await respond(send, 200, b"not read")

    elif path == "/conn-close":
        await respond(send, 200, b"bye",
                      [(b"content-type", b"text/plain"), (b"connection", b"close")])

    elif path == "/stream":
        n, size, delay = int(arg("n", "10")), int(arg("size", "1")), float(arg("delay", "0"))
        sent, outcome = 0, "returned"
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream")]})
            piece = b"x" * size
            for _ in range(n):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                sent += 1
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as exc:  # ASGI 2.4 lets send() raise an OSError after a disconnect
            outcome = "raised %s" % type(exc).__name__
        finally:
            record(name, {"event": "end", "sent": sent, "outcome": outcome})

    elif path == "/pathsend":
        headers = [(b"content-type", b"application/octet-stream")]
        if arg("te") == "1":
            headers.append((b"transfer-encoding", b"chunked"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": arg("path")})

    else:
        await respond(send, 200, b"ok")


async def websocket(scope, receive, send):
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    arg = lambda name, default="": query.get(name, [default])[0]  # noqa: E731
    name = arg("record")
    connect = await receive()
    assert connect["type"] == "websocket.connect", connect

    if path == "/ws-timeout":
        await send({"type": "websocket.accept"})
        try:
            message = await asyncio.wait_for(receive(), 0.3)
            record(name, {"event": "got", "type": message["type"]})
        except asyncio.TimeoutError:
            record(name, {"event": "timed-out"})
            await asyncio.sleep(float(arg("pause", "1")))
        message = await receive()
        record(name, {"event": "received", "message": {
            k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in message.items()}})
        if message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text"),
                        "bytes": message.get("bytes")})
            await send({"type": "websocket.close", "code": 1000})

    elif path == "/ws-late-accept":
        await asyncio.sleep(float(arg("sleep", "2")))
        record(name, {"event": "accepting", "at": time.time()})
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    elif path == "/ws-wait":
        record(name, {"event": "waiting"})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            record(name, {"event": "cancelled"})
            raise
        record(name, {"event": "slept"})
        await send({"type": "websocket.close", "code": 1000})

    else:
        await send({"type": "websocket.close", "code": 1000})


async def app(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
