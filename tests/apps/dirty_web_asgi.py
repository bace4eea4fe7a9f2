"""The ASGI twin of dirty_web.py: the same routes, through get_dirty_client_async,
execute_async and stream_async."""

import json
import os
from urllib.parse import parse_qs

try:
    from ferrocorn import dirty
except ImportError:  # the suite also runs against Gunicorn
    from gunicorn import dirty


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    q = parse_qs(scope.get("query_string", b"").decode()).get("q", ["[]"])[0]
    args = json.loads(q)
    client = await dirty.get_dirty_client_async()
    try:
        if scope["path"] == "/call":
            out = {"result": await client.execute_async(*args)}
        elif scope["path"] == "/stream":
            out = {"chunks": [c async for c in client.stream_async(*args)]}
        else:
            out = {"result": "ok"}
    except dirty.DirtyError as e:
        out = {
            "error": type(e).__name__,
            "message": e.message,
            "traceback": getattr(e, "traceback", None),
        }
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"x-worker-pid", str(os.getpid()).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(out).encode()})
