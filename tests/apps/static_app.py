"""The app behind tests/test_static.py's static mounts: every request that reaches it
(WSGI `app`, ASGI `asgi`) answers ``app:<path>``, so a test can tell a path the mount
served from one that went to the app."""

from asgi_worker import lifespan


def app(environ, start_response):
    body = ("app:" + environ["PATH_INFO"]).encode("latin-1")
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    )
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    body = ("app:" + scope["path"]).encode("utf-8")
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
