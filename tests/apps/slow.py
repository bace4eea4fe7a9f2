"""Sleeps `?s=SECONDS` (default 0) before answering, and reports the worker pid."""

import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    seconds = float(query.get("s", ["0"])[0])
    if seconds:
        time.sleep(seconds)
    body = ("slept %s pid %d\n" % (seconds, os.getpid())).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Worker-Pid", str(os.getpid())),
        ],
    )
    return [body]
