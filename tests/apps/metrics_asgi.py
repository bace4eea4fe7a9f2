"""The ASGI twin of metrics_app.py (same paths, statuses and query parameters), for
`-k asgi`; its waits are ``await asyncio.sleep``."""

import asyncio
import os
import time
from urllib.parse import parse_qs

from asgi_worker import lifespan
from marker import write_marker
from metrics_app import answer


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    assert scope["type"] == "http", scope["type"]
    path = scope["path"]
    method = scope["method"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/boom":
        raise RuntimeError("deliberate failure from metrics_asgi.py")
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    if path == "/sleep":
        if "started" in query:
            write_marker(query["started"], str(os.getpid()))
        if "release" in query:
            deadline = time.monotonic() + float(query.get("s", "15"))
            while not os.path.exists(query["release"]) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        else:
            await asyncio.sleep(float(query.get("s", "0")))
    status, body = answer(path, method, query)
    headers = [(b"content-type", b"text/plain"), (b"x-worker-pid", str(os.getpid()).encode())]
    if status not in (204, 304):
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
