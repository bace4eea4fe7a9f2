"""The app the logging-configuration tests serve.

Paths:
    /print?t=TOKEN    print("x-TOKEN", flush=True), os.write(1, b"raw-TOKEN\\n") and
                      os.write(2, b"err-TOKEN\\n") from the worker
    /noflush?t=TOKEN  print("y-TOKEN") without a flush
    /boom             raises LogcfgBoom before start_response
    anything else     200 "ok\\n"
Every answer carries the worker's pid in X-Worker-Pid.
"""

import os
from urllib.parse import parse_qs


class LogcfgBoom(RuntimeError):
    pass


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    token = parse_qs(environ.get("QUERY_STRING", "")).get("t", [""])[0]
    if path == "/boom":
        raise LogcfgBoom("deliberate failure from logcfg_app")
    if path == "/print":
        print("x-%s" % token, flush=True)
        os.write(1, ("raw-%s\n" % token).encode())
        os.write(2, ("err-%s\n" % token).encode())
    elif path == "/noflush":
        print("y-%s" % token)
    body = b"ok\n"
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("X-Worker-Pid", str(os.getpid())),
    ])
    return [body]
