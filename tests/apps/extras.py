"""Uses the environ keys tied to the connection: wsgi.early_hints and gunicorn.socket."""

import json
import os


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hints":
        hints = environ["wsgi.early_hints"]
        hints([("Link", "</style.css>; rel=preload; as=style")])
        hints([(b"Link", b"</app.js>; rel=preload; as=script")])
        body = b"after hints"
    elif path == "/bad-hint":
        try:
            environ["wsgi.early_hints"]([("Link", "a\r\nX-Injected: 1")])
            body = b"accepted"
        except Exception:  # Gunicorn raises its own InvalidResponseHeader
            body = b"rejected"
    elif path == "/late-hint":
        start_response("200 OK", [("Content-Length", "4")])
        yield b"body"
        environ["wsgi.early_hints"]([("Link", "</late>")])
        return
    elif path == "/socket":
        sock = environ["gunicorn.socket"]
        body = json.dumps({"peer": list(sock.getpeername()), "local": list(sock.getsockname())}).encode()
    elif path in ("/socket-id", "/socket-close"):
        sock = environ["gunicorn.socket"]
        body = json.dumps({"id": id(sock), "peer": list(sock.getpeername()),
                           "pid": os.getpid(), "fds": len(os.listdir("/proc/self/fd"))}).encode()
        if path == "/socket-close":
            sock.close()
    else:
        body = b"?"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    yield body
