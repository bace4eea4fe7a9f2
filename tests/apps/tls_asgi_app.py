"""An ASGI 3 app for the TLS tests (tests/test_tls_serving.py, tests/test_tls_clients.py).

Paths:
    /       ``scheme=<scope["scheme"]>``
    /tls    JSON: ``{"scheme": ..., "has_tls": bool, "tls": <scope["extensions"]["tls"]>,
            "client": <scope["client"]>}``,
            with bytes as latin-1 text and tuples as lists; ``tls`` is null without the
            extension.

``fastapi_app()`` is a factory for a FastAPI app whose ``/`` answers
``{"framework": "fastapi", "scheme": <request.url.scheme>}`` (FastAPI is imported only
when it is called).
"""

import json

# The same bytes-as-latin-1 JSON conversion the WebSocket test app uses.
from asgi_ws import _jsonable as _plain


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    extensions = scope.get("extensions") or {}
    if scope["path"] == "/tls":
        body = json.dumps({
            "scheme": scope.get("scheme"),
            "has_tls": "tls" in extensions,
            "tls": _plain(extensions.get("tls")),
            "client": list(scope["client"]) if scope.get("client") else None,
        }).encode()
        ctype = b"application/json"
    else:
        body = ("scheme=%s" % scope.get("scheme")).encode()
        ctype = b"text/plain"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def fastapi_app():
    from fastapi import FastAPI, Request

    fastapi = FastAPI()

    @fastapi.get("/")
    async def index(request: Request):
        return {"framework": "fastapi", "scheme": request.url.scheme}

    return fastapi
