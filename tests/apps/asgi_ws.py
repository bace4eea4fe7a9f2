"""A raw ASGI application (no framework) for the WebSocket tests.

HTTP requests get ``200 ok`` (plain text, with the worker pid in ``X-Pid``), so the
ready probe and the "the worker still serves" checks have something to fetch.
Lifespan is supported (startup and shutdown complete at once).

WebSocket routes, chosen by path:

- ``/echo``: accept, then send every message back as it came (text as text, bytes as
  bytes) until the client leaves.
- ``/scope`` (and any path below it): accept, send the scope as one JSON text message
  (bytes shown as latin-1 strings), then echo.
- ``/accept-extras``: accept choosing the *last* offered subprotocol, with extra
  response headers ``X-WS-Extra: hello`` and ``Set-Cookie: ws=1``; then echo.
- ``/app-close``: accept, then close with code 4001 and reason ``bye from app``.
- ``/raise-after-accept``: accept, then raise.
- ``/raise-before-accept``: raise before accepting.
- ``/close-before-accept``: receive the connect event, then send websocket.close.
- ``/return-without-accept``: receive the connect event, then return.
- ``/deny``: refuse with the ``websocket.http.response`` extension (401, own headers and
  body) when the server offers it, else close before accepting.

When ``ASGI_WS_LOG`` names a file, the app appends one JSON object per event to it
(``connect``, ``receive`` with the message kind and length, ``disconnect`` with the code
and reason the server gave, ``send-failed``), each with the path, the query string and the
worker pid, so a test can see what the application itself was told. Tests sharing one
server tell their connections apart by a query string of their own.
"""

import json
import os

LOG = os.environ.get("ASGI_WS_LOG")


class DeliberateError(Exception):
    pass


def record(scope, **event):
    if not LOG:
        return
    event["path"] = scope["path"]
    event["query"] = scope["query_string"].decode("latin-1")
    event["pid"] = os.getpid()
    with open(LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\n")


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


async def _echo(scope, receive, send):
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            record(scope, event="disconnect", code=message.get("code"),
                   reason=message.get("reason"))
            return
        if kind != "websocket.receive":
            record(scope, event="unexpected", type=kind)
            continue
        text = message.get("text")
        if text is not None:
            record(scope, event="receive", kind="text", length=len(text))
            reply = {"type": "websocket.send", "text": text}
        else:
            data = message.get("bytes") or b""
            record(scope, event="receive", kind="bytes", length=len(data))
            reply = {"type": "websocket.send", "bytes": data}
        try:
            await send(reply)
        except OSError as exc:
            # ASGI 2.4: a send on a closed WebSocket raises an OSError subclass; the
            # disconnect event is still to come from receive().
            record(scope, event="send-failed", error=type(exc).__name__)


async def _connect(scope, receive):
    message = await receive()
    record(scope, event="connect", type=message["type"])
    return message


async def websocket(scope, receive, send):
    path = scope["path"]
    if path == "/raise-before-accept":
        raise DeliberateError("deliberate failure before accept")
    await _connect(scope, receive)
    if path == "/echo":
        await send({"type": "websocket.accept"})
        await _echo(scope, receive, send)
    elif path.startswith("/scope"):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(_jsonable(scope))})
        await _echo(scope, receive, send)
    elif path == "/accept-extras":
        offered = scope.get("subprotocols") or []
        await send({
            "type": "websocket.accept",
            "subprotocol": offered[-1] if offered else None,
            "headers": [(b"x-ws-extra", b"hello"), (b"set-cookie", b"ws=1")],
        })
        await _echo(scope, receive, send)
    elif path == "/app-close":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "bye from app"})
        message = await receive()
        record(scope, event="after-close", type=message["type"], code=message.get("code"))
    elif path == "/raise-after-accept":
        await send({"type": "websocket.accept"})
        raise DeliberateError("deliberate failure after accept")
    elif path == "/close-before-accept":
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/return-without-accept":
        return
    elif path == "/deny":
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"www-authenticate", b'Bearer realm="ws"'),
                    (b"x-denied-by", b"asgi_ws"),
                ],
            })
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"entry\n"})
        else:
            await send({"type": "websocket.close"})
    else:
        await send({"type": "websocket.close", "code": 1008})


async def http(scope, receive, send):
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"x-pid", str(os.getpid()).encode())],
    })
    await send({"type": "http.response.body", "body": b"ok"})


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "websocket":
        await websocket(scope, receive, send)
    elif kind == "http":
        await http(scope, receive, send)
    elif kind == "lifespan":
        await lifespan(scope, receive, send)
