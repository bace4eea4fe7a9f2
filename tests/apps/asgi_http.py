"""A raw ASGI 3 application (no framework) for the HTTP side of the ASGI worker.

Each path is one behaviour; query parameters tune it. Where the test needs to see what
the application saw after the response is gone (a disconnect, an exception raised by
send(), a receive() after the response), the application appends one JSON line to
``$ASGI_HTTP_MARKERS/<name>`` (``?record=<name>``).

Paths:
    /scope              the scope as JSON (bytes as latin-1 text, tuples as lists) plus
                        the Python type of every value under "types"
    /body               reads the whole body; answers the messages it got as JSON
    /continue           ``?read=1`` reads the body (Expect: 100-continue), else does not
    /longpoll           reads the body, then waits in receive() for http.disconnect
    /after-response     answers, then calls receive() and records what it returns
    /send-after-disconnect  waits for http.disconnect, then calls send() and records it
    /respond            ``status``, ``h=name:value`` (repeatable, in order), ``cl=1`` for
                        a Content-Length, ``b=piece`` (repeatable, each one message)
    /stream             ``n`` body messages of ``size`` bytes (no Content-Length),
                        ``delay`` seconds apart
    /raise-before, /raise-after, /no-response, /mid-response
                        the application errors; ``token`` goes into the message
    /body-before-start, /start-twice
                        invalid message order (a second start after the first body
                        piece); ``catch=1`` catches what send() raises, records it and
                        answers normally
    /inflight           counts requests running at once, sleeps ``delay``; /max-inflight
                        answers the largest count seen
    /block              time.sleep(``s``): blocks the event loop
    /state              the lifespan state copy; adds a key and appends to a shared list
    /pathsend           answers ``path`` with http.response.pathsend
    anything else       200 "ok"
"""

import asyncio
import hashlib
import json
import os
import time
from urllib.parse import parse_qs

MARKERS = os.environ.get("ASGI_HTTP_MARKERS")

_inflight = 0
_max_inflight = 0


def record(name, value):
    if not MARKERS or not name:
        return
    with open(os.path.join(MARKERS, name), "a") as f:
        f.write(json.dumps(value) + "\n")


def plain(value):
    """`value` made JSON-able: bytes as latin-1 text, tuples as lists."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def type_names(value):
    """The Python type of `value`, recursing into lists and tuples."""
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [type_names(v) for v in value]]
    return type(value).__name__


def query_of(scope):
    return parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)


async def respond(send, status=200, body=b"ok", headers=None):
    headers = list(headers or [(b"content-type", b"text/plain")])
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send, value, status=200):
    await respond(send, status, json.dumps(value).encode(),
                  [(b"content-type", b"application/json")])


async def read_body(receive):
    """Every message up to the end of the body or a disconnect, and the body."""
    messages, body = [], b""
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        body += chunk
        messages.append([message["type"], len(chunk), message.get("more_body", False)])
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages, body


async def lifespan(receive, send, scope):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            state = scope.get("state")
            if state is not None:
                state["started"] = "yes"
                state["shared_list"] = []
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    global _inflight, _max_inflight
    if scope["type"] == "lifespan":
        await lifespan(receive, send, scope)
        return
    assert scope["type"] == "http"
    path = scope["path"]
    query = query_of(scope)
    arg = lambda name, default="": query.get(name, [default])[0]  # noqa: E731

    if path == "/scope" or path.startswith("/scope/") or path.endswith("/scope"):
        out = {key: plain(value) for key, value in scope.items() if key != "state"}
        out["types"] = {key: type_names(value) for key, value in scope.items()}
        out["state_keys"] = sorted(scope["state"]) if "state" in scope else None
        await respond_json(send, out)

    elif path == "/body":
        messages, body = await read_body(receive)
        result = {"messages": messages, "total": len(body),
                  "sha256": hashlib.sha256(body).hexdigest()}
        record(arg("record"), result)
        await respond_json(send, result)

    elif path == "/continue":
        if arg("read") == "1":
            _, body = await read_body(receive)
            await respond(send, 200, b"got:" + body)
        else:
            await respond(send, 200, b"not read")

    elif path == "/longpoll":
        messages, _ = await read_body(receive)
        record(arg("record"), {"event": "waiting"})
        message = await receive()
        messages.append([message["type"], len(message.get("body", b"")),
                         message.get("more_body", False)])
        record(arg("record"), {"event": "done", "messages": messages})
        await respond(send, 200, b"too late")

    elif path == "/after-response":
        await read_body(receive)
        await respond(send, 200, b"done")
        started = time.monotonic()
        message = await receive()
        record(arg("record"), {"type": message["type"],
                               "waited": time.monotonic() - started})

    elif path == "/send-after-disconnect":
        await read_body(receive)
        message = await receive()
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
            outcome = {"received": message["type"], "raised": None}
        except BaseException as exc:  # noqa: B036 - the test wants to see what it was
            outcome = {"received": message["type"], "raised": type(exc).__name__,
                       "oserror": isinstance(exc, OSError), "message": str(exc)}
        record(arg("record"), outcome)

    elif path == "/respond":
        headers = []
        for item in query.get("h", []):
            name, _, value = item.partition(":")
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
        pieces = [p.encode("latin-1") for p in query.get("b", [])]
        if arg("cl") == "1":
            headers.append((b"content-length", str(sum(map(len, pieces))).encode()))
        await send({"type": "http.response.start", "status": int(arg("status", "200")),
                    "headers": headers})
        for i, piece in enumerate(pieces):
            await send({"type": "http.response.body", "body": piece,
                        "more_body": i < len(pieces) - 1})
        if not pieces:
            await send({"type": "http.response.body", "body": b""})

    elif path == "/stream":
        n, size, delay = int(arg("n", "3")), int(arg("size", "5")), float(arg("delay", "0"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": bytes([97 + i % 26]) * size,
                        "more_body": True})
            if delay:
                await asyncio.sleep(delay)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    elif path == "/raise-before":
        raise ValueError("failure before start " + arg("token"))

    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("failure after start " + arg("token"))

    elif path == "/no-response":
        return

    elif path == "/mid-response":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        return

    elif path in ("/body-before-start", "/start-twice"):
        first = ({"type": "http.response.body", "body": b"early"} if path == "/body-before-start"
                 else {"type": "http.response.start", "status": 200,
                       "headers": [(b"x-start", b"first"), (b"content-length", b"4")]})
        if path == "/start-twice":
            await send(first)
            await send({"type": "http.response.body", "body": b"bo", "more_body": True})
        wrong = (first if path == "/body-before-start"
                 else {"type": "http.response.start", "status": 404,
                       "headers": [(b"x-start", b"second")]})
        if arg("catch") != "1":
            await send(wrong)
            await send({"type": "http.response.body",
                        "body": b"dy" if path == "/start-twice" else b"body"})
            return
        try:
            await send(wrong)
            outcome = {"raised": None}
        except Exception as exc:
            outcome = {"raised": type(exc).__name__, "message": str(exc)}
        record(arg("record"), outcome)
        if path == "/body-before-start":
            await respond_json(send, outcome)
        else:
            await send({"type": "http.response.body", "body": b"dy"})

    elif path == "/inflight":
        _inflight += 1
        _max_inflight = max(_max_inflight, _inflight)
        try:
            await asyncio.sleep(float(arg("delay", "1")))
        finally:
            _inflight -= 1
        await respond(send, 200, b"done")

    elif path == "/max-inflight":
        await respond(send, 200, str(_max_inflight).encode())

    elif path == "/block":
        time.sleep(float(arg("s", "10")))
        await respond(send, 200, b"unblocked")

    elif path == "/state":
        state = scope.get("state")
        if state is None:
            await respond_json(send, None)
            return
        seen = {"keys": sorted(state), "shared_list": list(state.get("shared_list", []))}
        state["per_request"] = arg("n")
        state.setdefault("shared_list", []).append(arg("n"))
        await respond_json(send, seen)

    elif path == "/pathsend":
        file_path = arg("path")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(os.path.getsize(file_path)).encode())]})
        await send({"type": "http.response.pathsend", "path": file_path})

    else:
        await respond(send, 200, b"ok")
